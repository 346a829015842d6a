"""The console: colour only on a terminal and as NO_COLOR and TERM say, on a real pty."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TextIO

import pytest

from drillbook.console import Console


@pytest.fixture
def terminal() -> Iterator[TextIO]:
    """The writing end of a real pseudo-terminal, as a text stream."""
    leader, follower = os.openpty()
    stream = os.fdopen(follower, "w", encoding="utf-8")
    try:
        yield stream
    finally:
        stream.close()
        os.close(leader)


@pytest.mark.parametrize(
    ("environ", "colour"),
    [
        ({}, True),
        ({"NO_COLOR": "1"}, False),
        ({"NO_COLOR": ""}, True),  # no-color.org: only a value that is not empty turns it off
        ({"TERM": "dumb"}, False),
    ],
)
def test_colour_on_a_terminal_follows_no_color_and_term(
    terminal: TextIO, monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], colour: bool
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    console = Console(out=terminal)
    assert console.color is colour
    assert (console.paint("ok", "green") != "ok") is colour


def test_no_colour_off_a_terminal(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    with (tmp_path / "out.txt").open("w") as out:
        assert Console(out=out).color is False
