"""The program's edge: every line a person reads passes through here, masked.

Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
"""

from __future__ import annotations

import errno
import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from drillbook.secrets import Masker

_CODES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2", "cyan": "36"}


class Console:
    """Writes masked lines to stdout and stderr, with colour where it helps."""

    #: Set by a run (`session.open_session`): a reader that went away (`| head`, a `tee` that
    #: the same Ctrl-C stopped, a closed terminal) must not stop a release half-way, or turn
    #: its interruption into a crash; what is not shown is in the journal.
    keep_going: bool = False

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
        self._write(self.out, text)

    def error(self, text: str) -> None:
        """One line (or several) to stderr."""
        self._write(self.err, self.mask(text))

    def _write(self, stream: TextIO, text: str) -> None:
        try:
            print(text, file=stream, flush=True)
        except OSError as exc:
            if not self.keep_going or exc.errno not in (errno.EPIPE, errno.EIO):
                raise
            _to_devnull(stream)

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


def _to_devnull(stream: TextIO) -> None:
    """Point the file descriptor under `stream` at /dev/null: later writes, the interpreter's
    last flush included, go nowhere instead of failing."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a StringIO): nothing to point
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
