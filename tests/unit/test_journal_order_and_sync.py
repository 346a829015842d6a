"""The journal's order of runs within one second, deferred fsyncs, and one event a line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from drillbook import journal as journal_module
from drillbook.journal import Journal, list_runs


def test_runs_of_the_same_second_sort_by_their_first_event(tmp_path: Path) -> None:
    # The random part of these ids sorts the other way round from their start.
    times = iter([1_795_000_000.100, 1_795_000_000.900])
    for run_id in ("20261123T232914Z-ffffff", "20261123T232914Z-000000"):
        stamp = next(times)
        with Journal.open(tmp_path, run_id, clock=lambda s=stamp: s) as journal:
            journal.write("run_started")

    assert [info.run_id for info in list_runs(tmp_path)] == [
        "20261123T232914Z-000000",
        "20261123T232914Z-ffffff",
    ]


def test_unsynced_events_are_written_at_once_and_synced_with_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    journal = Journal.open(tmp_path, "20261123T232914Z-3f9a1c")
    before = len(synced)

    journal.write("step_started", sync=False, step="lint")
    assert len(synced) == before
    assert '"step":"lint"' in journal.path.read_text()
    journal.write("deployed", version="1.0.0")
    assert len(synced) == before + 1
    journal.write("step_finished", sync=False, step="checks")
    journal.close()
    assert len(synced) == before + 2  # closing syncs what is still unsynced


def test_line_separators_inside_strings_are_escaped(tmp_path: Path) -> None:
    with Journal.open(tmp_path, "20261123T232914Z-3f9a1c") as journal:
        journal.write("output", text="a\u2028b\u2029c\x85d é")
    raw = journal.path.read_text(encoding="utf-8")
    [line] = raw.splitlines()
    assert json.loads(line)["text"] == "a\u2028b\u2029c\x85d é"
    assert "é" in line  # everything else stays as written
