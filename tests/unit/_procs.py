"""Processes as /proc shows them, for tests that must see what is left running."""

from __future__ import annotations

from pathlib import Path

from drillbook.process import proc_stat


def live_children(pid: int) -> list[int]:
    """The children of `pid` that are not zombies."""
    found = []
    for entry in Path("/proc").iterdir():
        fields = proc_stat(entry.name) if entry.name.isdigit() else []
        if len(fields) > 1 and fields[1] == str(pid).encode() and fields[0] not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether `pid` is a process that is not a zombie."""
    fields = proc_stat(pid)
    return bool(fields) and fields[0] not in (b"Z", b"X")
