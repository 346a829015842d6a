"""The program's edge: every line a person reads passes through here, masked.

Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from drillbook.secrets import Masker

_CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2", "cyan": "36"}


class Console:
    """Writes masked lines to stdout and stderr, with colour where it helps."""

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        *,
        masker: Masker | None = None,
        color: bool | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.masker = masker
        if color is None:
            color = (
                "NO_COLOR" not in os.environ
                and os.environ.get("TERM") != "dumb"
                and hasattr(self.out, "isatty")
                and self.out.isatty()
            )
        self.color = color

    def mask(self, text: str) -> str:
        """Text with every known secret masked."""
        return self.masker.mask(text) if self.masker is not None else text

    def paint(self, text: str, style: str) -> str:
        """Text in a colour, when colour is on."""
        if not self.color or style not in _CODES:
            return text
        return f"\033[{_CODES[style]}m{text}\033[0m"

    def print(self, text: str = "", *, style: str | None = None) -> None:
        """One line (or several) to stdout."""
        text = self.mask(text)
        if style:
            text = self.paint(text, style)
        print(text, file=self.out, flush=True)

    def error(self, text: str) -> None:
        """One line (or several) to stderr."""
        print(self.mask(text), file=self.err, flush=True)

    def outcome(self, outcome: str) -> str:
        """An outcome word, coloured by what it means."""
        style = {
            "pass": "green",
            "ok": "green",
            "done": "green",
            "fail": "red",
            "failed": "red",
            "error": "red",
            "inconclusive": "yellow",
            "skipped": "dim",
            "interrupted": "yellow",
            "timeout": "red",
        }.get(outcome, "bold")
        return self.paint(outcome, style)
