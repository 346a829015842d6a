"""The lock file: created atomically, refused while held, taken over when its holder is gone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from drillbook.errors import LockHeld, PreconditionFailed, UsageError
from drillbook.lock import Lock, acquire_lock, argv_text, lock_path


def dead_pid() -> int:
    """A pid that belonged to a process which has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def write_lock(root: Path, scope: str, record: dict | str) -> Path:
    path = lock_path(root, scope)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


def holder(**overrides: object) -> dict:
    record = {
        "run": "20261101T000000Z-0ld0ld",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": "2026-11-01T00:00:00Z",
        "argv": ["drillbook", "release"],
    }
    record.update(overrides)
    return record


def test_acquire_writes_who_holds_it_and_release_removes_it(tmp_path: Path) -> None:
    lock = acquire_lock(tmp_path, "staging", "run-1", argv=["drillbook", "deploy"])
    path = tmp_path / ".drillbook" / "locks" / "staging.lock"
    assert lock.path == path
    record = json.loads(path.read_text())
    assert record["run"] == "run-1"
    assert record["pid"] == os.getpid()
    assert record["host"] == socket.gethostname()
    assert record["argv"] == ["drillbook", "deploy"]
    assert record["started"].endswith("Z")
    assert lock.taken_over_from is None
    assert lock.warning is None
    assert lock.release()
    assert not path.exists()
    assert not lock.release()  # twice is fine


def test_context_manager_releases(tmp_path: Path) -> None:
    with acquire_lock(tmp_path, "staging", "run-1") as lock:
        assert lock.path.exists()
    assert not lock.path.exists()


def test_held_lock_is_refused_with_who_and_what_to_do(tmp_path: Path) -> None:
    with acquire_lock(tmp_path, "staging", "run-1", argv=["drillbook", "release"]) as lock:
        with pytest.raises(LockHeld) as caught:
            acquire_lock(tmp_path, "staging", "run-2")
        message = str(caught.value)
        assert "run run-1" in message
        assert f"pid {os.getpid()}" in message
        assert f"host {socket.gethostname()}" in message
        assert lock.record["started"] in message
        assert "Wait for it to finish" in message
        assert f"remove {lock.path}" in message
        assert caught.value.exit_code == 75
        # Another scope is another lock.
        with acquire_lock(tmp_path, "production", "run-2"):
            pass


def test_dead_holder_is_taken_over(tmp_path: Path) -> None:
    pid = dead_pid()
    path = write_lock(tmp_path, "staging", holder(pid=pid))
    lock = acquire_lock(tmp_path, "staging", "run-new")
    assert lock.taken_over_from is not None
    assert lock.taken_over_from["pid"] == pid
    assert lock.taken_over_from["run"] == "20261101T000000Z-0ld0ld"
    assert lock.warning is not None
    assert "its process is gone" in lock.warning
    assert json.loads(path.read_text())["run"] == "run-new"
    lock.release()
    assert not path.exists()


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '{"run": "x"}', '{"pid": -4}'])
def test_corrupt_lock_file_is_treated_as_stale(tmp_path: Path, content: str) -> None:
    write_lock(tmp_path, "staging", content)
    lock = acquire_lock(tmp_path, "staging", "run-new")
    assert lock.taken_over_from is not None
    assert "corrupt" in lock.taken_over_from
    assert lock.warning is not None
    assert "treated it as stale" in lock.warning
    lock.release()


def test_a_dangling_symlink_in_place_of_the_lock_is_treated_as_stale(tmp_path: Path) -> None:
    # Not a run holding the lock (drillbook writes none): it must not be reported as one.
    path = lock_path(tmp_path, "staging")
    path.parent.mkdir(parents=True)
    path.symlink_to(tmp_path / "gone")
    lock = acquire_lock(tmp_path, "staging", "run-new")
    assert lock.taken_over_from == {"corrupt": "a symbolic link to a missing file"}
    assert lock.warning is not None
    assert "treated it as stale" in lock.warning
    assert not path.is_symlink()
    assert json.loads(path.read_text())["run"] == "run-new"
    lock.release()
    assert not (tmp_path / "gone").exists()


def test_a_named_pipe_in_place_of_the_lock_is_taken_over_not_read(tmp_path: Path) -> None:
    # A plain read of a pipe waits for a writer: every run hung at its start.
    path = lock_path(tmp_path, "staging")
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    taken: list[Lock] = []
    runner = threading.Thread(
        target=lambda: taken.append(acquire_lock(tmp_path, "staging", "run-new")), daemon=True
    )

    runner.start()
    runner.join(timeout=60)  # only a hang takes this long

    assert not runner.is_alive(), "acquire_lock hung on the named pipe"
    (lock,) = taken
    assert lock.taken_over_from == {"corrupt": "a named pipe, not a regular file"}
    assert lock.warning is not None
    assert "was a named pipe, not a regular file; treated it as stale" in lock.warning
    assert json.loads(path.read_text())["run"] == "run-new"
    lock.release()


def test_holder_on_another_host_is_never_taken_over(tmp_path: Path) -> None:
    write_lock(tmp_path, "staging", holder(host="build-agent-7", pid=dead_pid()))
    with pytest.raises(LockHeld, match="another host"):
        acquire_lock(tmp_path, "staging", "run-new")


def test_holder_from_before_a_reboot_is_taken_over(tmp_path: Path) -> None:
    if not Path("/proc/sys/kernel/random/boot_id").exists():
        pytest.skip("no boot id on this system")
    write_lock(tmp_path, "staging", holder(boot_id="00000000-0000-0000-0000-000000000000"))
    lock = acquire_lock(tmp_path, "staging", "run-new")
    assert lock.warning is not None
    assert "rebooted" in lock.warning
    lock.release()


def test_reused_pid_is_recognised(tmp_path: Path) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc")
    # Our own pid is alive, but it started at another time than the holder's did.
    write_lock(tmp_path, "staging", holder(pid_start=1))
    lock = acquire_lock(tmp_path, "staging", "run-new")
    assert lock.warning is not None
    assert "now belongs to another process" in lock.warning
    lock.release()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path: Path) -> None:
    lock = acquire_lock(tmp_path, "staging", "run-1")
    write_lock(tmp_path, "staging", holder(run="run-other"))
    assert not lock.release()
    assert json.loads(lock.path.read_text())["run"] == "run-other"


def test_bad_scope_is_refused(tmp_path: Path) -> None:
    for scope in ("../x", "", ".hidden", "a/b"):
        with pytest.raises(UsageError):
            acquire_lock(tmp_path, scope, "run-1")


def test_lock_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / ".drillbook").write_text("a file where a folder should be")
    with pytest.raises(PreconditionFailed, match="cannot create the lock"):
        acquire_lock(tmp_path, "staging", "run-1")


def test_a_command_line_byte_that_is_not_utf8_is_recorded_escaped(tmp_path: Path) -> None:
    # As Python hands over `drillbook --config=$'\xff' deploy` typed on a terminal.
    argv = ["drillbook", "--config=" + os.fsdecode(b"\xff"), "deploy", "caf\u00e9"]
    assert argv_text(argv) == ["drillbook", "--config=\\xff", "deploy", "caf\u00e9"]
    with acquire_lock(tmp_path, "staging", "20261201T000000Z-abcdef", argv=argv):
        record = json.loads(lock_path(tmp_path, "staging").read_text(encoding="utf-8"))
    assert record["argv"] == ["drillbook", "--config=\\xff", "deploy", "caf\u00e9"]


@pytest.mark.parametrize("fault", ["file", "dangling link"])
def test_a_locks_folder_that_cannot_be_made_is_named_not_called_file_exists(
    tmp_path: Path, fault: str
) -> None:
    # mkdir says "File exists" of both, which reads as a lock someone holds.
    folder = lock_path(tmp_path, "staging").parent
    folder.parent.mkdir(parents=True)
    if fault == "file":
        folder.write_text("not a folder\n")
        found = f"{folder} is a file, expected a folder"
    else:
        folder.symlink_to(tmp_path / "unmounted")
        found = f"{folder} is a symbolic link to {tmp_path / 'unmounted'}, which does not exist"

    with pytest.raises(PreconditionFailed) as caught:
        acquire_lock(tmp_path, "staging", "20261101T000000Z-aaaaaa")

    assert found in caught.value.message
    assert "File exists" not in caught.value.message
    assert caught.value.hint is not None
    assert "nothing was started" in caught.value.hint
