"""The run journal: written line by line to disk, masked, read back despite torn writes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from drillbook.errors import JournalUnwritable, UsageError
from drillbook.journal import (
    TAIL_BYTES,
    Journal,
    check_run_id,
    format_ts,
    journal_path,
    list_runs,
    new_run_id,
    read_journal,
)
from drillbook.secrets import Masker

RUN = "20261123T232914Z-3f9a1c"


def fixed_clock(start: float = 1_795_000_000.0, step: float = 0.25):
    now = [start - step]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_new_run_id_is_utc_time_and_random_hex() -> None:
    run_id = new_run_id(datetime(2026, 11, 23, 23, 29, 14, tzinfo=UTC))
    assert re.fullmatch(r"20261123T232914Z-[0-9a-f]{6}", run_id)
    east = timezone(timedelta(hours=2))
    assert new_run_id(datetime(2026, 11, 24, 1, 29, 14, tzinfo=east)).startswith("20261123T2329")
    assert new_run_id(datetime(2026, 11, 23, 23, 29, 14)).startswith("20261123T232914Z-")
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", new_run_id())
    assert new_run_id() != new_run_id()


def test_run_ids_sort_by_time() -> None:
    ids = [new_run_id(datetime(2026, 1, d, tzinfo=UTC)) for d in (3, 1, 2)]
    assert sorted(ids) == [ids[1], ids[2], ids[0]]


def test_bad_run_ids_are_refused(tmp_path: Path) -> None:
    for bad in ("../etc/passwd", "", "a/b", ".hidden", "x" * 200):
        with pytest.raises(UsageError):
            check_run_id(bad)
    with pytest.raises(UsageError):
        Journal.open(tmp_path, "../../escape")


def test_write_adds_ts_run_seq_and_writes_compact_json(tmp_path: Path) -> None:
    with Journal.open(tmp_path, RUN, clock=fixed_clock()) as journal:
        first = journal.write("run_started", service="demo", note="café ✓")
        second = journal.write("step_finished", step="lint", exit=0, argv=["ruff", "check"])
    path = tmp_path / ".drillbook" / "journal" / f"{RUN}.jsonl"
    assert path == journal.path == journal_path(tmp_path, RUN)
    raw = path.read_text(encoding="utf-8")
    assert raw.splitlines()[0] == (
        '{"ts":"2026-11-18T11:06:40.000Z","run":"20261123T232914Z-3f9a1c","seq":1,'
        '"event":"run_started","service":"demo","note":"café ✓"}'
    )
    assert raw.endswith("\n")
    assert first["seq"] == 1
    assert second == {
        "ts": "2026-11-18T11:06:40.250Z",
        "run": RUN,
        "seq": 2,
        "event": "step_finished",
        "step": "lint",
        "exit": 0,
        "argv": ["ruff", "check"],
    }
    assert lines(path)[1] == second
    assert journal.seq == 2


def test_format_ts_has_milliseconds_and_z() -> None:
    assert format_ts(0.1234) == "1970-01-01T00:00:00.123Z"


def test_every_string_is_masked(tmp_path: Path) -> None:
    masker = Masker(["hunter2-secret"])
    with Journal.open(tmp_path, RUN, masker=masker) as journal:
        written = journal.write(
            "step_finished",
            argv=["deploy", "--token=hunter2-secret"],
            output_tail="connecting to postgresql://app:pw@db\nhunter2-secret",
            nested={"hunter2-secret": ("hunter2-secret",)},
            path=Path("/tmp/hunter2-secret/x"),
        )
    raw = journal.path.read_text(encoding="utf-8")
    assert "hunter2" not in raw
    assert ":pw@" not in raw
    assert written["argv"] == ["deploy", "--token=***"]
    assert lines(journal.path)[0]["path"] == "/tmp/***/x"


def test_reserved_fields_cannot_be_overridden(tmp_path: Path) -> None:
    with Journal.open(tmp_path, RUN) as journal, pytest.raises(ValueError, match="seq"):
        journal.write("x", seq=5)


def test_open_creates_the_folder_with_parents(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "project"
    root.mkdir(parents=True)
    with Journal.open(root, RUN, sync=False) as journal:
        journal.write("run_started")
    assert (root / ".drillbook" / "journal").is_dir()


@pytest.mark.parametrize("what", ["journal", "named pipe", "dangling link"])
def test_a_new_journal_never_joins_what_is_already_at_its_path(tmp_path: Path, what: str) -> None:
    # Appended to, a journal of the same id would hold two runs' events as one run's.
    folder = tmp_path / ".drillbook" / "journal"
    folder.mkdir(parents=True)
    path = folder / f"{RUN}.jsonl"
    if what == "journal":
        with Journal.open(tmp_path, RUN, sync=False) as journal:
            journal.write("run_started")
        before = path.read_bytes()
    elif what == "named pipe":
        os.mkfifo(path)  # read to find its last seq, it would wait for a writer
    else:
        path.symlink_to(tmp_path / "elsewhere.jsonl")

    with pytest.raises(JournalUnwritable) as caught:
        Journal.open(tmp_path, RUN, new=True)

    assert caught.value.exit_code == 3
    assert f"cannot start the journal {path}: something is already there" in caught.value.message
    assert "it was left as it was, and nothing ran" in caught.value.message
    assert "run the command again: a new run gets a new id" in (caught.value.hint or "")
    if what == "journal":
        assert path.read_bytes() == before
    elif what == "named pipe":
        assert path.is_fifo()
    else:
        assert not (tmp_path / "elsewhere.jsonl").exists()


def test_unwritable_journal_raises_and_stays_broken(tmp_path: Path) -> None:
    # /dev/full accepts the open and fails every write with ENOSPC, like a full disk.
    folder = tmp_path / ".drillbook" / "journal"
    folder.mkdir(parents=True)
    (folder / f"{RUN}.jsonl").symlink_to("/dev/full")
    journal = Journal.open(tmp_path, RUN)
    with pytest.raises(JournalUnwritable) as caught:
        journal.write("run_started")
    assert str(folder / f"{RUN}.jsonl") in caught.value.message
    assert "No space left on device" in caught.value.message
    assert journal.broken
    with pytest.raises(JournalUnwritable, match="No space left"):
        journal.write("step_started")
    journal.close()


@pytest.mark.parametrize("how", ["file", "folder", "moved folder"])
def test_a_journal_deleted_while_the_run_writes_it_is_written_again(
    tmp_path: Path, how: str
) -> None:
    # Someone cleans .drillbook/ (or moves the folder away) mid-run: the run's lines went on
    # into a file no reader sees. The next synced event puts them back where they belong.
    journal = Journal.open(tmp_path, RUN, clock=fixed_clock())
    journal.write("run_started", env="staging")
    journal.write("check_finished", sync=False, outcome="pass")
    path = journal_path(tmp_path, RUN)
    if how == "file":
        path.unlink()
    elif how == "folder":
        path.unlink()
        path.parent.rmdir()
        path.parent.parent.rmdir()
    else:
        path.parent.rename(tmp_path / "elsewhere")
    journal.write("check_finished", sync=False, outcome="pass")
    journal.write("step_started", step="deploy")
    journal.write("run_finished", outcome="ok")
    journal.close()

    events = lines(path)
    assert [e["event"] for e in events] == [
        "run_started",
        "check_finished",
        "check_finished",
        "journal_restored",
        "step_started",
        "run_finished",
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert "deleted or moved while the run wrote it" in events[3]["got"]
    assert not journal.broken


def test_a_journal_cut_short_while_the_run_writes_it_is_written_again_whole(
    tmp_path: Path,
) -> None:
    # `: > file`, or logrotate's copytruncate: the run's first lines, run_started among them,
    # were gone, and with them the run from history, resume and the unfinished-run check.
    journal = Journal.open(tmp_path, RUN, clock=fixed_clock())
    journal.write("run_started", env="staging")
    journal.write("step_started", step="unit")
    path = journal_path(tmp_path, RUN)
    inode = path.stat().st_ino
    with path.open("r+b") as f:
        f.truncate(0)
    journal.write("step_finished", sync=False, step="unit", outcome="ok")
    journal.write("step_started", step="deploy")
    journal.close()

    events = lines(path)
    assert [e["event"] for e in events] == [
        "run_started",
        "step_started",
        "step_finished",
        "journal_restored",
        "step_started",
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert "cut short to " in events[3]["got"]
    assert path.stat().st_ino != inode  # replaced whole, atomically
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_a_continued_journal_cut_short_under_the_run_stops_it(tmp_path: Path) -> None:
    # Its lines from before this process opened it are not held: they cannot be put back.
    with Journal.open(tmp_path, RUN) as journal:
        journal.write("run_started")
    again = Journal.open(tmp_path, RUN)
    again.write("step_started", step="deploy")
    with journal.path.open("r+b") as f:
        f.truncate(0)

    with pytest.raises(JournalUnwritable) as caught:
        again.write("run_closed", how="abandoned")

    assert "it was cut short to 0 bytes while the run wrote it" in caught.value.message
    assert caught.value.hint is not None
    assert "copytruncate" in caught.value.hint
    assert again.broken
    again.close()


def test_a_journal_replaced_by_another_file_is_not_overwritten_and_stops_the_run(
    tmp_path: Path,
) -> None:
    journal = Journal.open(tmp_path, RUN)
    journal.write("run_started")
    path = journal_path(tmp_path, RUN)
    path.unlink()
    path.write_text("someone else's file\n")

    with pytest.raises(JournalUnwritable) as caught:
        journal.write("step_started", step="deploy")

    assert "another file took its place while the run wrote it" in caught.value.message
    assert str(path) in caught.value.message
    assert caught.value.hint is not None
    assert f"move the file at {path} away" in caught.value.hint
    assert journal.broken
    with pytest.raises(JournalUnwritable):
        journal.write("run_finished")
    journal.close()
    assert path.read_text() == "someone else's file\n"


def test_an_immutable_journal_is_named_with_the_flag_that_refuses_it(tmp_path: Path) -> None:
    # Root writes through every permission: an immutable flag is what refuses it.
    with Journal.open(tmp_path, RUN) as journal:
        journal.write("run_started")
    flagged = subprocess.run(["chattr", "+i", str(journal.path)], capture_output=True, check=False)
    if flagged.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {flagged.stderr.decode().strip()}")
    try:
        with pytest.raises(JournalUnwritable) as caught:
            Journal.open(tmp_path, RUN)
    finally:
        subprocess.run(["chattr", "-i", str(journal.path)], check=False)
    assert "Operation not permitted" in caught.value.message
    assert caught.value.hint is not None
    assert "shows an immutable (i) flag" in caught.value.hint
    assert "free disk space" not in caught.value.hint


def test_an_append_only_journal_with_a_torn_line_is_continued_after_it(tmp_path: Path) -> None:
    # chattr +a: a journal no run may rewrite. Its torn line cannot be cut, only ended.
    with Journal.open(tmp_path, RUN) as journal:
        journal.write("run_started")
    with journal.path.open("ab") as f:
        f.write(b'{"event":"tor')  # the crash
    flagged = subprocess.run(["chattr", "+a", str(journal.path)], capture_output=True, check=False)
    if flagged.returncode != 0:
        pytest.skip(f"chattr +a is not available here: {flagged.stderr.decode().strip()}")
    try:
        with Journal.open(tmp_path, RUN) as again:
            written = again.write("run_closed", how="abandoned")
    finally:
        subprocess.run(["chattr", "-a", str(journal.path)], check=False)

    assert written["seq"] == 2
    read = read_journal(journal.path)
    assert [e["event"] for e in read.events] == ["run_started", "run_closed"]
    assert read.skipped == 1
    assert not read.torn


def test_journal_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / ".drillbook").write_text("a file where a folder should be")
    with pytest.raises(JournalUnwritable) as caught:
        Journal.open(tmp_path, RUN)
    assert ".drillbook" in caught.value.message
    assert caught.value.exit_code == 3


def test_write_after_close_is_refused(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, RUN)
    journal.close()
    journal.close()
    with pytest.raises(ValueError, match="closed"):
        journal.write("x")


def test_read_ignores_a_torn_last_line(tmp_path: Path) -> None:
    with Journal.open(tmp_path, RUN) as journal:
        journal.write("run_started")
        journal.write("step_started", step="deploy")
    with journal.path.open("ab") as f:
        f.write(b'{"ts":"2026-11-23T23:29:15.000Z","run":"x","seq":3,"event":"step_fin')
    read = read_journal(journal.path)
    assert [e["event"] for e in read.events] == ["run_started", "step_started"]
    assert read.torn
    assert read.skipped == 0


def test_read_skips_and_counts_bad_lines_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"event":"a"}\nnot json\n\n[1, 2]\n\xff\xfe\n{"event":"b"}\n')
    read = read_journal(path)
    assert [e["event"] for e in read.events] == ["a", "b"]
    assert read.skipped == 3
    assert not read.torn


def test_read_missing_journal(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no journal at"):
        read_journal(tmp_path / "nope.jsonl")


def test_reopening_continues_seq_after_a_torn_line(tmp_path: Path) -> None:
    with Journal.open(tmp_path, RUN) as journal:
        journal.write("run_started")
        journal.write("step_started")
    with journal.path.open("ab") as f:
        f.write(b'{"event":"tor')  # the crash
    with Journal.open(tmp_path, RUN) as again:
        written = again.write("run_resumed")
    assert written["seq"] == 3
    read = read_journal(journal.path)
    assert [e["event"] for e in read.events] == ["run_started", "step_started", "run_resumed"]
    # The torn event was never whole: it is cut off, so every line stays one JSON object.
    assert read.skipped == 0
    assert not read.torn
    for line in journal.path.read_text().splitlines():
        json.loads(line)


def test_reopening_keeps_a_whole_last_event_saved_without_its_newline(tmp_path: Path) -> None:
    # An editor that writes no final newline: the last event is whole, and readers show it.
    with Journal.open(tmp_path, RUN) as journal:
        journal.write("run_started")
        journal.write("run_finished", outcome="interrupted")
    journal.path.write_bytes(journal.path.read_bytes().rstrip(b"\n"))
    assert [e["event"] for e in read_journal(journal.path).events][-1] == "run_finished"

    with Journal.open(tmp_path, RUN) as again:
        written = again.write("run_closed", how="abandoned")

    assert written["seq"] == 3
    assert [e["event"] for e in lines(journal.path)] == [
        "run_started",
        "run_finished",
        "run_closed",
    ]
    assert lines(journal.path)[1]["outcome"] == "interrupted"


def test_a_torn_line_longer_than_a_block_is_cut_off_whole(tmp_path: Path) -> None:
    with Journal.open(tmp_path, RUN) as journal:
        journal.write("run_started")
    size = journal.path.stat().st_size
    with journal.path.open("ab") as f:
        f.write(b'{"event":"step_finished","output_tail":"' + b"x" * 200_000)
    with Journal.open(tmp_path, RUN) as again:
        again.write("run_resumed")
    lines = journal.path.read_bytes().splitlines()
    assert len(lines) == 2
    assert journal.path.read_bytes()[:size].endswith(b"\n")
    assert [json.loads(line)["event"] for line in lines] == ["run_started", "run_resumed"]


def test_list_runs_leaves_out_a_copy_of_a_journal_beside_its_original(tmp_path: Path) -> None:
    with Journal.open(tmp_path, RUN) as journal:
        journal.write("run_started", env="staging")
    folder = journal.path.parent
    (folder / f"{RUN}-copy.jsonl").write_bytes(journal.path.read_bytes())
    # Alone, a journal whose events name another run is still listed, under its file's name.
    (folder / "20261124T000000Z-aaaaaa.jsonl").write_bytes(
        journal.path.read_bytes().replace(RUN.encode(), b"20261124T000000Z-bbbbbb")
    )

    runs = list_runs(tmp_path)

    assert sorted(info.run_id for info in runs) == [RUN, "20261124T000000Z-aaaaaa"]


def test_list_runs_newest_first_with_first_last_and_finished(tmp_path: Path) -> None:
    assert list_runs(tmp_path) == []
    old, new, torn = (
        "20261101T000000Z-aaaaaa",
        "20261102T000000Z-bbbbbb",
        "20261103T000000Z-cccccc",
    )
    with Journal.open(tmp_path, old) as journal:
        journal.write("run_started", action="release")
        journal.write("run_finished", outcome="ok")
    with Journal.open(tmp_path, new) as journal:
        journal.write("run_started", action="deploy")
        journal.write("step_started", step="deploy")
    with Journal.open(tmp_path, torn) as journal:
        journal.write("run_started", action="rehearse")
    with journal.path.open("ab") as f:
        f.write(b'{"event":"run_fin')
    (journal.path.parent / "notes.txt").write_text("not a journal")

    runs = list_runs(tmp_path)
    assert [r.run_id for r in runs] == [torn, new, old]
    assert runs[0].first is not None
    assert runs[0].first["action"] == "rehearse"
    assert runs[0].last == runs[0].first
    assert not runs[0].finished
    assert runs[1].last is not None
    assert runs[1].last["event"] == "step_started"
    assert not runs[1].finished
    assert runs[2].finished
    assert runs[2].path == journal_path(tmp_path, old)


def test_list_runs_reads_only_the_ends_of_a_long_journal(tmp_path: Path) -> None:
    with Journal.open(tmp_path, RUN, sync=False) as journal:
        journal.write("run_started", action="release")
        for i in range(3000):
            journal.write("output", line=f"line {i} " + "x" * 40)
        journal.write("run_finished", outcome="ok")
        journal.write("lock_released")
    assert journal.path.stat().st_size > 2 * TAIL_BYTES
    (info,) = list_runs(tmp_path)
    assert info.first is not None
    assert info.first["event"] == "run_started"
    assert info.last is not None
    assert info.last["event"] == "lock_released"
    assert info.finished
