"""What `list_runs` knows of each journal, kept between runs in `.drillbook/cache/runs.json`.

Listing the runs reads the first and last lines of every journal, and a project gains a journal
with every run: after a year of releases, a listing that opens thousands of files would cost
every release a good part of a second (a release lists twice). So the listing's summary of each
journal of an ended run is kept, under the journal's size, modification time and inode. A
journal is only ever appended to, so a journal whose three are unchanged has an unchanged
summary; any other is read again. A run still going (or killed) is not kept: its journal is
about to change, and such runs are few. A summary holds the first and the last event, with only
the fields in `SUMMARY_KEYS`, and whether the run finished; whoever needs more reads the journal.

The index is a cache. It is written atomically and never fsynced; a problem with it (missing,
torn, unreadable, from another version) costs only reading the journals again; no run ever
depends on it being there.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from drillbook.files import read_regular

#: Where the index lives, relative to the project root: beside the journals, not among them.
INDEX_PATH = Path(".drillbook") / "cache" / "runs.json"
#: The index's own format; an index of another format is ignored (and rewritten).
FORMAT = 1
#: The fields of an event a summary keeps: what the readers of `list_runs` judge a run by.
SUMMARY_KEYS = (
    "ts",
    "run",
    "seq",
    "event",
    "action",
    "env",
    "version",
    "service",
    "host",
    "pid",
    "changes_world",
    "runbook",
    "runbook_sha256",
    "outcome",
    "exit",
    "step",
    "how",
)

#: A journal file's identity: size, modification time (ns) and inode.
Stamp = tuple[int, int, int]
#: What `list_runs` knows of a journal: its first event, its last, whether the run finished.
Summary = tuple[dict[str, Any] | None, dict[str, Any] | None, bool]
#: The events after which a journal does not change any more (but for a later `run_closed`).
ENDED = ("run_finished", "run_closed")


def summarize(event: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The fields of `event` that a summary keeps."""
    if event is None:
        return None
    return {key: event[key] for key in SUMMARY_KEYS if key in event}


def stamp(stat: os.stat_result) -> Stamp:
    """What tells one state of a journal file from another."""
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


class RunIndex:
    """The summaries of a project's journals by file name, read once and saved if they changed."""

    def __init__(self, path: Path, entries: dict[str, Any]) -> None:
        self.path = path
        self._entries = entries
        self._changed = False

    @classmethod
    def load(cls, project_root: Path) -> RunIndex:
        """The project's index; an empty one when there is none or it cannot be read."""
        path = project_root / INDEX_PATH
        entries: dict[str, Any] = {}
        try:
            data = json.loads(read_regular(path))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("format") == FORMAT:
            runs = data.get("runs")
            if isinstance(runs, dict):
                entries = runs
        return cls(path, entries)

    def get(self, name: str, current: Stamp) -> Summary | None:
        """The summary of journal `name` if it was made from the file as it is now."""
        entry = self._entries.get(name)
        if not isinstance(entry, list) or len(entry) != 4 or entry[0] != list(current):
            return None
        first, last, finished = entry[1], entry[2], entry[3]
        if not all(e is None or isinstance(e, dict) for e in (first, last)):
            return None
        return first, last, finished is True

    def put(self, name: str, current: Stamp, summary: Summary) -> None:
        """Keep the summary of journal `name` as it is now, if its run has ended."""
        last = summary[1]
        if last is None or last.get("event") not in ENDED:
            self._entries.pop(name, None)
            return
        self._entries[name] = [list(current), *summary]
        self._changed = True

    def save(self, present: Iterable[str]) -> None:
        """Write the index if it changed, without the journals that are gone; never raises."""
        keep = set(present)
        gone = [name for name in self._entries if name not in keep]
        for name in gone:
            del self._entries[name]
        if not (self._changed or gone):
            return
        text = json.dumps({"format": FORMAT, "runs": self._entries}, separators=(",", ":"))
        with contextlib.suppress(OSError):
            try:
                mode: int | None = self.path.stat().st_mode
            except FileNotFoundError:
                mode = None
            if mode is not None and not stat.S_ISREG(mode):
                return  # a pipe or a device there would be written into, and block or worse
            from drillbook.files import write_atomic

            write_atomic(self.path, text, sync=False)
        self._changed = False
