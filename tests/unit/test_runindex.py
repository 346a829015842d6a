"""The run index: list_runs' summaries kept between runs, and never trusted past a change."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from drillbook.journal import Journal, list_runs
from drillbook.runindex import FORMAT, INDEX_PATH

ENDED = "20261101T000000Z-aaaaaa"
GOING = "20261102T000000Z-bbbbbb"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    with Journal.open(tmp_path, ENDED) as journal:
        journal.write("run_started", action="release", env="staging", version="1.0.0")
        journal.write("run_finished", outcome="ok")
    with Journal.open(tmp_path, GOING) as journal:
        journal.write("run_started", action="deploy", env="staging", version="1.1.0")
        journal.write("step_started", step="deploy")
    return tmp_path


def index_of(root: Path) -> dict:
    return json.loads((root / INDEX_PATH).read_text())


def test_ended_runs_are_kept_and_runs_still_going_are_not(project: Path) -> None:
    runs = {r.run_id: r for r in list_runs(project)}
    assert runs[ENDED].finished
    assert runs[ENDED].first is not None
    assert runs[ENDED].first["version"] == "1.0.0"
    kept = index_of(project)
    assert kept["format"] == FORMAT
    assert list(kept["runs"]) == [f"{ENDED}.jsonl"]  # the one still going changes every step


def test_a_kept_summary_is_used_while_the_journal_is_unchanged(project: Path) -> None:
    list_runs(project)
    # Rewrite the journal in place with the same size, inode and modification time: only the
    # index can now say "1.0.0" (a journal is append-only, so this never happens for real).
    path = project / ".drillbook" / "journal" / f"{ENDED}.jsonl"
    before = path.stat()
    text = path.read_text().replace('"version":"1.0.0"', '"version":"9.0.0"')
    with path.open("r+") as handle:
        handle.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    runs = {r.run_id: r for r in list_runs(project)}
    assert runs[ENDED].first["version"] == "1.0.0"
    # Appended to (a run_closed by abandon): its size changed, so it is read again.
    with Journal.open(project, ENDED) as journal:
        journal.write("run_closed", how="abandoned")
    runs = {r.run_id: r for r in list_runs(project)}
    assert runs[ENDED].first["version"] == "9.0.0"
    assert runs[ENDED].last["event"] == "run_closed"


def test_a_run_that_ends_is_kept_from_then_on(project: Path) -> None:
    list_runs(project)
    with Journal.open(project, GOING) as journal:
        journal.write("run_finished", outcome="ok")
    runs = {r.run_id: r for r in list_runs(project)}
    assert runs[GOING].finished
    assert f"{GOING}.jsonl" in index_of(project)["runs"]


def test_journals_that_are_gone_leave_the_index(project: Path) -> None:
    list_runs(project)
    (project / ".drillbook" / "journal" / f"{ENDED}.jsonl").unlink()
    assert [r.run_id for r in list_runs(project)] == [GOING]
    assert index_of(project)["runs"] == {}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{torn",
        b"[1, 2]",
        b'{"format": 99, "runs": {}}',
        b'{"format": 1, "runs": []}',
        b'{"format": 1, "runs": {"20261101T000000Z-aaaaaa.jsonl": [1, 2]}}',
        b"\xff\xfe",
    ],
    ids=["empty", "torn", "list", "other-format", "runs-not-a-map", "bad-entry", "not-utf8"],
)
def test_an_index_that_cannot_be_used_is_ignored_and_rewritten(
    project: Path, content: bytes
) -> None:
    expected = [(r.run_id, r.first, r.last, r.finished) for r in list_runs(project)]
    (project / INDEX_PATH).write_bytes(content)
    assert [(r.run_id, r.first, r.last, r.finished) for r in list_runs(project)] == expected
    assert index_of(project)["format"] == FORMAT


def test_an_index_that_cannot_be_written_costs_nothing_but_time(project: Path) -> None:
    (project / ".drillbook" / "cache").write_text("a file where the folder goes")
    runs = list_runs(project)
    assert [r.run_id for r in runs] == [GOING, ENDED]
    assert runs[1].finished


def test_a_named_pipe_in_place_of_the_index_is_neither_read_nor_written(project: Path) -> None:
    # A plain read of a pipe waits for a writer, a write for a reader: every listing hung.
    list_runs(project)
    (project / INDEX_PATH).unlink()
    os.mkfifo(project / INDEX_PATH)
    found: list[list[str]] = []
    lister = threading.Thread(
        target=lambda: found.append([r.run_id for r in list_runs(project)]), daemon=True
    )

    lister.start()
    lister.join(timeout=60)  # only a hang takes this long

    assert not lister.is_alive(), "list_runs hung on the named pipe"
    assert found == [[GOING, ENDED]]
    assert stat.S_ISFIFO((project / INDEX_PATH).lstat().st_mode)


def test_a_summary_holds_only_the_judging_fields(project: Path) -> None:
    with Journal.open(project, "20261103T000000Z-cccccc") as journal:
        journal.write("run_started", action="release", changes=[{"id": "x"}], argv=["a"])
        journal.write("run_finished", outcome="ok")
    info = next(r for r in list_runs(project) if r.run_id == "20261103T000000Z-cccccc")
    assert info.first is not None
    assert "changes" not in info.first
    assert "argv" not in info.first
    assert info.first["action"] == "release"
