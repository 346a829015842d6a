"""handle_signals with a real process: the first signal stops the group, a second exits at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from drillbook.process import StopToken, handle_signals

SCRIPT = """
import sys
from pathlib import Path
from drillbook.process import StopToken, handle_signals, run_command

command, grace = sys.argv[1], float(sys.argv[2])
token = StopToken()
with handle_signals(token):
    result = run_command(
        ["sh", "-c", command],
        cwd=Path.cwd(),
        timeout=60,
        grace=grace,
        on_line=lambda line: print(line, flush=True),
        stop=token,
    )
print("result", result.outcome, result.exit, result.detail, flush=True)
sys.exit(128 + token.signum if token.signum else 0)
"""


def live_members(pgid: int) -> list[int]:
    """Processes of the group that are not zombies (an orphaned zombie waits for init)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            pids.append(int(entry.name))
    return pids


def assert_group_gone(pgid: int, *, reap_within: float = 5.0) -> None:
    """Nothing of the group runs now, and the group itself vanishes once init reaps zombies."""
    assert live_members(pgid) == []
    deadline = time.monotonic() + reap_within
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"process group {pgid} still exists"
        time.sleep(0.05)


def start(tmp_path: Path, command: str, grace: float) -> tuple[subprocess.Popen[str], int]:
    """Start the script; return it and its command's process group, once that runs."""
    script = tmp_path / "runner.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), command, str(grace)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    pgid = int(proc.stdout.readline())  # the command echoes $$ once handlers are in place
    return proc, pgid


def test_sigterm_stops_the_command_group_and_exits_143(tmp_path: Path) -> None:
    proc, pgid = start(tmp_path, "echo $$; exec sleep 30", grace=5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 143
    assert "result interrupted -15 interrupted by SIGTERM; process group stopped (TERM)" in out
    assert_group_gone(pgid)


def test_sigint_exits_130(tmp_path: Path) -> None:
    proc, pgid = start(tmp_path, "echo $$; sleep 30 & sleep 30", grace=5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "result interrupted" in out
    assert_group_gone(pgid)


def test_second_signal_kills_the_group_and_exits_at_once(tmp_path: Path) -> None:
    # The command ignores TERM and the grace period is long: only the second signal ends it.
    proc, pgid = start(tmp_path, "trap '' TERM; echo $$; sleep 60", grace=60)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proc.poll() is None  # still inside its grace period
    assert live_members(pgid) != []
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=5)
    assert time.monotonic() - started < 2
    assert proc.returncode == 130  # 128 + the second signal
    assert "result" not in out  # os._exit: nothing after the handler ran
    time.sleep(0.2)  # SIGKILL is delivered asynchronously
    assert_group_gone(pgid)


def test_previous_handlers_are_restored() -> None:
    def custom(_signum: int, _frame: object) -> None:
        pass

    old_int = signal.signal(signal.SIGINT, custom)
    old_term = signal.getsignal(signal.SIGTERM)
    try:
        with handle_signals(StopToken()):
            assert signal.getsignal(signal.SIGINT) is not custom
        assert signal.getsignal(signal.SIGINT) is custom
        assert signal.getsignal(signal.SIGTERM) == old_term
    finally:
        signal.signal(signal.SIGINT, old_int)


def test_first_signal_in_process_stops_the_token() -> None:
    token = StopToken()
    with handle_signals(token):
        os.kill(os.getpid(), signal.SIGTERM)
        # Python runs the handler at the next bytecode boundary of the main thread.
        for _ in range(100):
            if token.stopped:
                break
            time.sleep(0.01)
    assert token.signum == signal.SIGTERM


def test_stop_hooks_run_once_stopped_and_can_be_undone() -> None:
    from drillbook.process import StopToken

    token = StopToken()
    calls: list[str] = []
    undo_a = token.on_stop(lambda: calls.append("a"))
    token.on_stop(lambda: 1 / 0)  # a failing hook is dropped, the others still run
    undo_a()
    token.on_stop(lambda: calls.append("b"))
    token.stop()
    assert calls == ["b"]
    token.on_stop(lambda: calls.append("late"))  # already stopped: it runs at once
    assert calls == ["b", "late"]


def test_a_forwarding_token_stops_the_group_with_the_signal_it_got(tmp_path: Path) -> None:
    from drillbook.process import run_command

    token = StopToken(forward=True)
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "ready":
            token.stop(signal.SIGINT)  # as the demo's handler does on Ctrl-C

    command = (
        'trap "echo got INT; exit 7" INT; trap "echo got TERM; exit 8" TERM; '
        "echo ready; while :; do sleep 0.1; done"
    )
    result = run_command(
        ["sh", "-c", command], cwd=tmp_path, timeout=60, grace=10, on_line=on_line, stop=token
    )

    assert result.outcome == "interrupted"
    assert "got INT" in lines, lines
    assert "got TERM" not in lines
    assert result.detail == "interrupted by SIGINT; process group stopped (INT)"
