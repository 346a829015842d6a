"""The lock between real processes: a live holder refuses, a killed one is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drillbook.errors import LockHeld
from drillbook.lock import acquire_lock, lock_path

HOLDER = """
import sys, time
from pathlib import Path
from drillbook.lock import acquire_lock
lock = acquire_lock(Path(sys.argv[1]), "staging", sys.argv[2], argv=["drillbook", "deploy"])
print("held", flush=True)
time.sleep(float(sys.argv[3]))
lock.release()
"""

CONTENDER = """
import sys, time
from pathlib import Path
from drillbook.errors import LockHeld
from drillbook.lock import acquire_lock
root, run_id, start_at = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start_at - time.time()))  # all contenders start at the same moment
try:
    lock = acquire_lock(root, "staging", run_id)
except LockHeld:
    print("held", flush=True)
else:
    print("won", flush=True)
    time.sleep(2)
    lock.release()
"""


def start_holder(tmp_path: Path, run_id: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), run_id, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_holder_refuses_and_a_killed_one_is_taken_over(tmp_path: Path) -> None:
    proc = start_holder(tmp_path, "20261123T000000Z-h01d3r", 60)
    try:
        with pytest.raises(LockHeld) as caught:
            acquire_lock(tmp_path, "staging", "20261123T000001Z-5ec0nd")
        message = str(caught.value)
        assert f"pid {proc.pid} " in message
        assert "run 20261123T000000Z-h01d3r" in message
        assert f"host {socket.gethostname()}" in message
        assert "command: drillbook deploy" in message
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()

    # SIGKILL left the lock file behind; its process is gone, so it is taken over.
    path = lock_path(tmp_path, "staging")
    assert json.loads(path.read_text())["pid"] == proc.pid
    with acquire_lock(tmp_path, "staging", "20261123T000002Z-th1rd0") as lock:
        assert lock.taken_over_from is not None
        assert lock.taken_over_from["pid"] == proc.pid
        assert lock.taken_over_from["run"] == "20261123T000000Z-h01d3r"
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_a_killed_holder_not_yet_reaped_is_taken_over(tmp_path: Path) -> None:
    # Killed, but a zombie until its parent (here: this test) reaps it, as when init is slow.
    proc = start_holder(tmp_path, "20261123T000000Z-h01d3r", 60)
    proc.send_signal(signal.SIGKILL)
    until = time.monotonic() + 5
    while time.monotonic() < until:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        if stat[stat.rfind(")") + 2] == "Z":
            break
        time.sleep(0.01)
    os.kill(proc.pid, 0)  # still there for kill(2)
    try:
        with acquire_lock(tmp_path, "staging", "20261123T000001Z-5ec0nd") as lock:
            assert lock.taken_over_from is not None
            assert lock.taken_over_from["pid"] == proc.pid
    finally:
        proc.communicate()


def test_a_holder_that_finishes_releases(tmp_path: Path) -> None:
    proc = start_holder(tmp_path, "20261123T000000Z-h01d3r", 0)
    proc.communicate(timeout=10)
    assert not lock_path(tmp_path, "staging").exists()
    with acquire_lock(tmp_path, "staging", "20261123T000001Z-5ec0nd") as lock:
        assert lock.taken_over_from is None


def test_only_one_of_many_takes_over_a_stale_lock(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    path = lock_path(tmp_path, "staging")
    path.parent.mkdir(parents=True)
    stale = {"run": "old", "pid": gone.pid, "host": socket.gethostname(), "started": "?"}
    path.write_text(json.dumps(stale))

    start_at = time.time() + 1.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONTENDER, str(tmp_path), f"run-{i}", str(start_at)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    outcomes = sorted(p.communicate(timeout=30)[0].strip() for p in procs)
    assert outcomes == ["held"] * 5 + ["won"]


FULL_DISK_HOLDER = """
import resource, sys, time
from pathlib import Path
from drillbook.errors import PreconditionFailed
from drillbook.lock import acquire_lock
# Every file this process writes is capped at 64 bytes: a write past it stops short, as on a
# disk with 64 bytes left.
resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))
try:
    lock = acquire_lock(Path(sys.argv[1]), "staging", "20261123T000000Z-fu11d1", argv=["drillbook"])
except PreconditionFailed as exc:
    print(f"refused: {exc}", flush=True)
else:
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_lock_that_cannot_be_written_whole_is_not_held(tmp_path: Path) -> None:
    # A short write would leave a torn lock file that the next run takes for a stale one and
    # takes over, while its writer goes on as if it held the lock: two runs at once.
    proc = subprocess.Popen(
        [sys.executable, "-c", FULL_DISK_HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        said = proc.stdout.readline().strip()
        assert said.startswith("refused: cannot create the lock"), said
        assert str(lock_path(tmp_path, "staging")) in said
    finally:
        proc.kill()
        proc.communicate()
    assert not lock_path(tmp_path, "staging").exists()
    with acquire_lock(tmp_path, "staging", "20261123T000001Z-5ec0nd") as lock:
        assert lock.taken_over_from is None
