"""run_command with real processes: output, failures, timeouts, grandchildren, stop tokens."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from drillbook.process import StopToken, run_command
from drillbook.secrets import Masker

PY = sys.executable


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


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class Lines:
    """Collects streamed lines; the first line of the tests' commands is the group id."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.times: list[float] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        self.times.append(time.monotonic())

    @property
    def pgid(self) -> int:
        return int(self.lines[0])


def test_ok_command(tmp_path: Path) -> None:
    result = run_command(["true"], cwd=tmp_path, timeout=10)
    assert result.outcome == "ok"
    assert result.ok
    assert result.exit == 0
    assert result.detail == "exited 0"
    assert result.argv == ("true",)
    assert result.duration_ms >= 0


def test_failed_command_keeps_stdout_and_stderr_in_order(tmp_path: Path) -> None:
    result = run_command(
        ["sh", "-c", "echo out1; echo err1 >&2; echo out2; exit 3"], cwd=tmp_path, timeout=10
    )
    assert result.outcome == "failed"
    assert result.exit == 3
    assert result.detail == "exited 3"
    assert result.output_tail == "out1\nerr1\nout2"


def test_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    seen = Lines()
    result = run_command(
        ["sh", "-c", "for i in $(seq 1 100); do echo line$i; done"],
        cwd=tmp_path,
        timeout=10,
        tail_lines=3,
        on_line=seen,
    )
    assert result.output_tail == "line98\nline99\nline100"
    assert len(seen.lines) == 100


def test_the_tail_of_wide_output_is_cut_to_a_size_a_journal_line_can_carry(
    tmp_path: Path,
) -> None:
    from drillbook.process import MAX_TAIL_CHARS

    script = "for i in range(40): print(f'{i:02d} ' + 'x' * 4000)"
    result = run_command([sys.executable, "-c", script], cwd=tmp_path, timeout=10)
    assert result.ok
    assert len(result.output_tail) <= MAX_TAIL_CHARS + len("[...]\n")
    assert result.output_tail.startswith("[...]\n")
    # Whole lines where it can: the last two of 4,004 characters, not a piece of a third.
    assert result.output_tail.split("\n")[1:] == [
        "38 " + "x" * 4000,
        "39 " + "x" * 4000,
    ]


def test_last_line_without_newline_and_bad_utf8_are_kept(tmp_path: Path) -> None:
    result = run_command(["printf", "caf\\303\\251 \\377\\nno newline"], cwd=tmp_path, timeout=10)
    assert result.output_tail == "café \ufffd\nno newline"


def test_output_is_streamed_while_the_command_runs(tmp_path: Path) -> None:
    # The command waits for a file that only the on_line callback of its first line creates:
    # it can finish only if lines reach the callback while it is still running.
    flag = tmp_path / "seen"
    script = f"echo first; while [ ! -e {flag} ]; do sleep 0.01; done; echo second"

    def on_line(line: str) -> None:
        if line == "first":
            flag.touch()

    result = run_command(["sh", "-c", script], cwd=tmp_path, timeout=10, on_line=on_line)
    assert result.outcome == "ok"
    assert result.output_tail == "first\nsecond"


def test_on_line_runs_in_the_calling_thread(tmp_path: Path) -> None:
    threads: set[int] = set()
    run_command(
        ["echo", "hi"],
        cwd=tmp_path,
        timeout=10,
        on_line=lambda _line: threads.add(threading.get_ident()),
    )
    assert threads == {threading.get_ident()}


def test_secrets_are_masked_in_lines_tail_argv_and_detail(tmp_path: Path) -> None:
    masker = Masker(["hunter2-secret"])
    seen = Lines()
    result = run_command(
        ["sh", "-c", "echo pw=hunter2-secret url=https://u:pw@h; exit 4", "hunter2-secret"],
        cwd=tmp_path,
        timeout=10,
        masker=masker,
        on_line=seen,
    )
    assert seen.lines == ["pw=*** url=https://u:***@h"]
    assert result.output_tail == "pw=*** url=https://u:***@h"
    assert result.argv[-1] == "***"


def test_long_lines_are_cut_in_pieces(tmp_path: Path) -> None:
    seen = Lines()
    run_command(
        [PY, "-c", "import sys; sys.stdout.write('x' * 200000)"],
        cwd=tmp_path,
        timeout=10,
        on_line=seen,
    )
    assert "".join(seen.lines) == "x" * 200000
    assert max(len(line) for line in seen.lines) <= 65536


def test_shell_runs_a_string_through_sh(tmp_path: Path) -> None:
    command = "echo $((2 + 3)) | sed s/5/five/"
    result = run_command(command, cwd=tmp_path, timeout=10, shell=True)  # noqa: S604
    assert result.output_tail == "five"
    assert result.argv == ("/bin/sh", "-c", "echo $((2 + 3)) | sed s/5/five/")


def test_shell_reports_a_missing_command(tmp_path: Path) -> None:
    result = run_command("no-such-command-xyz", cwd=tmp_path, timeout=10, shell=True)  # noqa: S604
    assert result.outcome == "failed"
    assert result.exit == 127
    assert "did not find the command" in result.detail


def test_a_list_never_goes_through_a_shell(tmp_path: Path) -> None:
    result = run_command(["echo", "$HOME; rm -rf /"], cwd=tmp_path, timeout=10)
    assert result.output_tail == "$HOME; rm -rf /"


def test_wrong_argument_types_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        run_command("echo hi", cwd=tmp_path, timeout=10)
    with pytest.raises(TypeError):
        run_command(["echo", "hi"], cwd=tmp_path, timeout=10, shell=True)  # noqa: S604


def test_env_is_laid_over_the_environment(tmp_path: Path) -> None:
    result = run_command(
        ["sh", "-c", 'echo "$DRILLBOOK_ENV:${PATH:+has-path}"'],
        cwd=tmp_path,
        timeout=10,
        env={"DRILLBOOK_ENV": "staging"},
    )
    assert result.output_tail == "staging:has-path"
    result = run_command(
        ["/bin/sh", "-c", 'echo "$ONLY:${HOME:-no-home}"'],
        cwd=tmp_path,
        timeout=10,
        env={"ONLY": "this"},
        inherit_env=False,
    )
    assert result.output_tail == "this:no-home"


def test_stdin_is_empty(tmp_path: Path) -> None:
    result = run_command(["cat"], cwd=tmp_path, timeout=10)
    assert result.outcome == "ok"
    assert result.output_tail == ""


def test_cwd_is_used(tmp_path: Path) -> None:
    result = run_command(["pwd"], cwd=tmp_path, timeout=10)
    assert result.output_tail == str(tmp_path)


def test_command_not_found(tmp_path: Path) -> None:
    result = run_command(["rufff", "check"], cwd=tmp_path, timeout=10)
    assert result.outcome == "not_found"
    assert result.exit is None
    assert result.detail == "command not found: 'rufff' (is it installed and on PATH?)"


def test_relative_command_not_found(tmp_path: Path) -> None:
    result = run_command(["./deploy.sh"], cwd=tmp_path, timeout=10)
    assert result.outcome == "not_found"
    assert result.detail == "command not found: './deploy.sh' (no such file)"


def test_command_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "deploy.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = run_command(["./deploy.sh"], cwd=tmp_path, timeout=10)
    if os.geteuid() == 0 and result.outcome == "ok":
        pytest.skip("root may execute anything")  # pragma: no cover
    assert result.outcome == "error"
    assert "permission denied" in result.detail


def test_script_without_shebang(tmp_path: Path) -> None:
    script = tmp_path / "binary"
    script.write_bytes(b"\x7fNOTELF\x00\x01")
    script.chmod(0o755)
    result = run_command(["./binary"], cwd=tmp_path, timeout=10)
    assert result.outcome == "error"
    assert "not an executable format" in result.detail


def test_missing_working_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = run_command(["true"], cwd=missing, timeout=10)
    assert result.outcome == "error"
    assert result.detail == f"working directory does not exist: {missing}"
    (tmp_path / "file").write_text("")
    result = run_command(["true"], cwd=tmp_path / "file", timeout=10)
    assert result.outcome == "error"
    assert "is not a directory" in result.detail


def test_empty_command(tmp_path: Path) -> None:
    result = run_command([], cwd=tmp_path, timeout=10)
    assert result.outcome == "error"
    assert result.detail == "empty command"


def test_killed_by_a_signal(tmp_path: Path) -> None:
    result = run_command(["sh", "-c", "kill -KILL $$"], cwd=tmp_path, timeout=10)
    assert result.outcome == "failed"
    assert result.exit == -signal.SIGKILL
    assert result.detail == "killed by SIGKILL"


def test_runs_in_its_own_process_group(tmp_path: Path) -> None:
    seen = Lines()
    run_command(["sh", "-c", "echo $$; ps -o pgid= -p $$"], cwd=tmp_path, timeout=10, on_line=seen)
    assert int(seen.lines[1]) == seen.pgid
    assert seen.pgid != os.getpgrp()


def test_timeout_stops_the_shell_and_its_background_grandchild(tmp_path: Path) -> None:
    seen = Lines()
    started = time.monotonic()
    result = run_command(
        ["sh", "-c", "echo $$; sleep 300 & sleep 300"],
        cwd=tmp_path,
        timeout=1,
        grace=2,
        on_line=seen,
    )
    elapsed = time.monotonic() - started
    assert result.outcome == "timeout"
    assert result.exit == -signal.SIGTERM
    assert elapsed < 1 + 2 + 1.5
    assert result.detail == "timed out after 1s; process group stopped (TERM)"
    assert_group_gone(seen.pgid)


GRANDCHILD = """
import os, signal, sys, time
print(os.getpid(), flush=True)
if os.fork() == 0:
    # The grandchild ignores TERM and keeps the inherited stdout open.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("grandchild", flush=True)
    time.sleep(300)
    os._exit(0)
time.sleep(300)
"""


def test_timeout_kills_a_grandchild_that_ignores_term_and_holds_the_output(
    tmp_path: Path,
) -> None:
    seen = Lines()
    started = time.monotonic()
    result = run_command([PY, "-c", GRANDCHILD], cwd=tmp_path, timeout=1, grace=1, on_line=seen)
    elapsed = time.monotonic() - started
    assert result.outcome == "timeout"
    assert elapsed < 1 + 1 + 1.5
    assert result.detail == "timed out after 1s; process group stopped (TERM, then KILL after 1s)"
    assert "grandchild" in result.output_tail
    assert_group_gone(seen.pgid)


def test_background_process_holding_the_output_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    # The command exited, but a process of its group still holds the output: the command is not
    # over. At the timeout the group is stopped, and the detail says what to change.
    seen = Lines()
    started = time.monotonic()
    result = run_command(
        ["sh", "-c", "echo $$; (sleep 30; echo late) & echo parent done"],
        cwd=tmp_path,
        timeout=1,
        grace=1,
        on_line=seen,
    )
    elapsed = time.monotonic() - started
    try:
        assert result.outcome == "timeout"
        assert result.exit == 0
        assert elapsed < 1 + 1.5
        assert "the command itself had exited 0" in result.detail
        assert "kept the output open" in result.detail
        assert result.output_tail.endswith("parent done")
        assert_group_gone(seen.pgid)
    finally:
        kill_group(seen.pgid)


def test_background_process_with_its_own_output_is_not_waited_for(tmp_path: Path) -> None:
    seen = Lines()
    started = time.monotonic()
    result = run_command(
        ["sh", "-c", "echo $$; sleep 30 >/dev/null 2>&1 & echo parent done"],
        cwd=tmp_path,
        timeout=60,
        on_line=seen,
    )
    try:
        assert time.monotonic() - started < 1.0
        assert result.detail == "exited 0"
    finally:
        kill_group(seen.pgid)


def test_failing_on_line_does_not_lose_the_result(tmp_path: Path) -> None:
    calls: list[str] = []

    def on_line(line: str) -> None:
        calls.append(line)
        raise BrokenPipeError(32, "Broken pipe")

    result = run_command(["sh", "-c", "echo a; echo b"], cwd=tmp_path, timeout=10, on_line=on_line)
    assert result.outcome == "ok"
    assert calls == ["a"]
    assert result.output_tail == "a\nb"
    assert "output display failed (BrokenPipeError" in result.detail


def test_stop_token_interrupts_a_running_command(tmp_path: Path) -> None:
    token = StopToken()
    seen = Lines()
    timer = threading.Timer(0.5, token.stop, args=(signal.SIGINT,))
    timer.start()
    started = time.monotonic()
    result = run_command(
        ["sh", "-c", "echo $$; sleep 300 & sleep 300"],
        cwd=tmp_path,
        timeout=60,
        on_line=seen,
        stop=token,
    )
    assert time.monotonic() - started < 3
    assert result.outcome == "interrupted"
    assert result.detail == "interrupted by SIGINT; process group stopped (TERM)"
    assert token.signum == signal.SIGINT
    assert_group_gone(seen.pgid)


def test_stop_token_kills_after_the_grace_period(tmp_path: Path) -> None:
    token = StopToken()
    seen = Lines()
    threading.Timer(0.3, token.stop).start()
    started = time.monotonic()
    result = run_command(
        ["sh", "-c", "trap '' TERM; echo $$; sleep 300"],
        cwd=tmp_path,
        timeout=60,
        grace=1,
        on_line=seen,
        stop=token,
    )
    assert time.monotonic() - started < 0.3 + 1 + 1.5
    assert result.outcome == "interrupted"
    assert result.exit == -signal.SIGKILL
    assert result.detail.endswith("(TERM, then KILL after 1s)")
    assert_group_gone(seen.pgid)


def test_stop_token_stops_several_commands_at_once(tmp_path: Path) -> None:
    token = StopToken()
    results = []
    pgids: list[int] = []

    def run() -> None:
        seen = Lines()
        results.append(
            run_command(
                ["sh", "-c", "echo $$; sleep 300"],
                cwd=tmp_path,
                timeout=60,
                on_line=seen,
                stop=token,
            )
        )
        pgids.append(seen.pgid)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    token.stop(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=10)
    assert [r.outcome for r in results] == ["interrupted"] * 3
    for pgid in pgids:
        assert_group_gone(pgid)


def test_first_signal_wins(tmp_path: Path) -> None:
    token = StopToken()
    token.stop(signal.SIGINT)
    token.stop(signal.SIGTERM)
    assert token.signum == signal.SIGINT
    assert token.stopped


def test_command_after_stop_is_not_started(tmp_path: Path) -> None:
    token = StopToken()
    token.stop(signal.SIGTERM)
    marker = tmp_path / "ran"
    result = run_command(["touch", str(marker)], cwd=tmp_path, timeout=10, stop=token)
    assert result.outcome == "interrupted"
    assert result.exit is None
    assert result.detail == "not started: the run was interrupted by SIGTERM"
    assert not marker.exists()


def test_token_kill_is_immediate(tmp_path: Path) -> None:
    token = StopToken()
    seen = Lines()
    threading.Timer(0.3, token.kill).start()
    started = time.monotonic()
    result = run_command(
        ["sh", "-c", "trap '' TERM; echo $$; sleep 300"],
        cwd=tmp_path,
        timeout=60,
        grace=30,
        on_line=seen,
        stop=token,
    )
    assert time.monotonic() - started < 3
    assert result.outcome == "interrupted"
    assert result.exit == -signal.SIGKILL
    assert result.detail == "interrupted; process group stopped (KILL)"
    assert_group_gone(seen.pgid)


def test_no_threads_or_descriptors_are_left_behind(tmp_path: Path) -> None:
    run_command(["true"], cwd=tmp_path, timeout=10)  # warm up
    threads = threading.active_count()
    fds = len(os.listdir("/proc/self/fd"))  # noqa: PTH208
    token = StopToken()
    for _ in range(20):
        run_command(["echo", "x"], cwd=tmp_path, timeout=10, stop=token)
    run_command(["rufff"], cwd=tmp_path, timeout=10, stop=token)
    assert threading.active_count() == threads
    assert len(os.listdir("/proc/self/fd")) == fds  # noqa: PTH208


def test_an_argument_the_locale_cannot_carry_is_a_command_not_started(tmp_path: Path) -> None:
    # An ASCII locale with Python's UTF-8 mode off: `é` cannot reach the system. The runner is
    # driven in a process of its own, since the encoding is chosen when Python starts.
    import subprocess
    import textwrap

    code = textwrap.dedent(
        """
        from pathlib import Path
        from drillbook.process import run_command
        done = run_command(["echo", "d\\u00e9ploy"], cwd=Path("."), timeout=10)
        print(done.outcome)
        print(done.detail)
        """
    )
    env = {**os.environ, "PYTHONUTF8": "0", "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome, detail = done.stdout.splitlines()
    assert outcome == "error"
    assert detail == (
        "cannot run 'echo': '\\xe9' in its arguments or environment cannot be passed in this "
        "locale's encoding (ascii); run drillbook under a UTF-8 locale (LC_ALL=C.UTF-8)"
    )
