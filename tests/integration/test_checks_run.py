"""Command checks with real subprocesses: pass, fail, not found, timeout, placeholders."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from drillbook.checks import CheckRunner
from drillbook.errors import PreconditionFailed
from drillbook.model import Environment, HttpCheck, RunCheck
from drillbook.process import StopToken
from drillbook.secrets import Masker

PY = sys.executable
PLACEHOLDERS = {"version": "1.2.0", "previous": "1.1.0", "service": "demo-service"}


def run_check(**fields: Any) -> RunCheck:
    return RunCheck.model_validate(fields)


@pytest.fixture
def runner(tmp_path: Path) -> CheckRunner:
    environment = Environment.model_validate({"url": "http://127.0.0.1:8181"})
    return CheckRunner(environment, env_name="staging", cwd=tmp_path, placeholders=PLACEHOLDERS)


def test_pass_with_output(runner: CheckRunner) -> None:
    check = run_check(
        run=[PY, "-c", "print('smoke ok'); print('done')"],
        expect={"exit": 0, "output_contains": "smoke ok"},
    )
    result = runner.run(check)
    assert result.outcome == "pass"
    assert result.expected == "exit 0; output contains 'smoke ok'"
    assert result.got == "exit 0; output contains 'smoke ok'"
    assert result.excerpt == "smoke ok\ndone"
    assert result.message.endswith("-> exit 0 (attempt 1/1; retry not safe)")
    assert result.retry_safe is False


def test_output_found_before_the_tail(runner: CheckRunner) -> None:
    code = "print('marker'); [print(i) for i in range(200)]"
    check = run_check(run=[PY, "-c", code], expect={"output_contains": "marker"})
    assert runner.run(check).outcome == "pass"


def test_output_is_searched_as_one_text_across_lines_and_the_cuts_of_long_ones(
    runner: CheckRunner,
) -> None:
    from drillbook.process import MAX_LINE_BYTES

    # One line of JSON too long to hold whole is passed on in pieces: what runs across the
    # cut between two of them is in the output all the same. A needle longer than a piece runs
    # across one, wherever the cuts fall.
    ids = ",".join(map(str, range(20_000)))
    assert len(ids) > MAX_LINE_BYTES
    code = f"import sys; sys.stdout.write('{{\"ids\": [' + {ids!r} + ']}}' + '\\n' * 50)"
    check = run_check(run=[PY, "-c", code], expect={"output_contains": ids})
    result = runner.run(check)
    assert result.outcome == "pass", result.message
    # A text of several lines, as `output_contains: |` writes it, is found as printed.
    code = "print('migrations:'); print('  0007 applied'); print('done')"
    check = run_check(
        run=[PY, "-c", code], expect={"output_contains": "migrations:\n  0007 applied\n"}
    )
    assert runner.run(check).outcome == "pass"
    # Lines are not glued together: the end of one and the start of the next is no match.
    check = run_check(
        run=[PY, "-c", "print('rea'); print('dy')"], expect={"output_contains": "ready"}
    )
    result = runner.run(check)
    assert result.outcome == "fail"
    assert result.got == "exit 0; output without 'ready'"


def test_wrong_exit_fails(runner: CheckRunner) -> None:
    check = run_check(
        run=[PY, "-c", "import sys; print('orders table missing'); sys.exit(3)"], name="smoke"
    )
    result = runner.run(check)
    assert result.outcome == "fail"
    assert result.name == "smoke"
    assert result.got == "exit 3"
    assert "-> exit 3, expected 0 (attempt 1/1; retry not safe)" in result.message
    assert result.excerpt == "orders table missing"


def test_missing_output_fails(runner: CheckRunner) -> None:
    check = run_check(run=[PY, "-c", "print('nope')"], expect={"output_contains": "ready"})
    result = runner.run(check)
    assert result.outcome == "fail"
    assert result.got == "exit 0; output without 'ready'"


def test_expected_nonzero_exit(runner: CheckRunner) -> None:
    check = run_check(run=[PY, "-c", "raise SystemExit(4)"], expect={"exit": 4})
    assert runner.run(check).outcome == "pass"


def test_not_found_is_inconclusive(runner: CheckRunner) -> None:
    result = runner.run(run_check(run=["drillbook-no-such-tool-xyz", "--check"]))
    assert result.outcome == "inconclusive"
    assert result.got.startswith("command not found: 'drillbook-no-such-tool-xyz'")


def test_timeout_is_inconclusive_and_bounded(runner: CheckRunner) -> None:
    check = run_check(run=[PY, "-c", "import time; time.sleep(30)"], timeout="300ms")
    started = time.monotonic()
    result = runner.run(check)
    assert time.monotonic() - started < 0.3 + 2
    assert result.outcome == "inconclusive"
    assert result.got == "no result: timed out after 300ms"


def test_retries_then_passes(runner: CheckRunner, tmp_path: Path) -> None:
    code = (
        "import pathlib, sys; p = pathlib.Path('count'); "
        "n = int(p.read_text()) + 1 if p.exists() else 1; p.write_text(str(n)); "
        "sys.exit(0 if n >= 3 else 1)"
    )
    check = run_check(run=[PY, "-c", code], retry={"attempts": 5, "interval": "10ms"})
    result = runner.run(check)
    assert result.outcome == "pass"
    assert result.attempts == 3
    assert result.retry_safe is True
    assert (tmp_path / "count").read_text() == "3"


def test_placeholders_per_argument_and_as_env(runner: CheckRunner) -> None:
    code = (
        "import os, sys; print(sys.argv[1:]); "
        "print(os.environ['DRILLBOOK_VERSION'], os.environ['DRILLBOOK_ENV'], "
        "os.environ['DRILLBOOK_PREVIOUS'], os.environ['DRILLBOOK_SERVICE'], "
        "os.environ['DRILLBOOK_URL'], os.environ['EXTRA'])"
    )
    check = run_check(
        run=[PY, "-c", code, "--version", "{version}", "v{version}-{env}"],
        env={"EXTRA": "for {service}"},
    )
    result = runner.run(check)
    assert result.outcome == "pass", result.message
    lines = result.excerpt.splitlines()
    assert lines[0] == "['--version', '1.2.0', 'v1.2.0-staging']"
    assert lines[1] == "1.2.0 staging 1.1.0 demo-service http://127.0.0.1:8181 for demo-service"


def test_shell_gets_env_vars_never_substituted_text(runner: CheckRunner) -> None:
    check = RunCheck.model_validate(
        {
            "run": 'echo "text={version} var=$DRILLBOOK_VERSION"',
            "shell": True,
            "expect": {"output_contains": "var=1.2.0"},
        }
    )
    result = runner.run(check)
    assert result.outcome == "pass"
    assert result.excerpt == "text={version} var=1.2.0"


def test_secret_in_output_is_masked(tmp_path: Path) -> None:
    environment = Environment.model_validate({"url": "http://127.0.0.1:8181"})
    masker = Masker(["hunter2-secret"])
    with CheckRunner(environment, env_name="staging", cwd=tmp_path, masker=masker) as runner:
        check = run_check(run=[PY, "-c", "print('password is hunter2-secret'); exit(1)"])
        result = runner.run(check)
    assert result.outcome == "fail"
    assert "hunter2-secret" not in str(result.as_dict())
    assert result.excerpt == "password is ***"


def test_stopped_run_is_inconclusive(runner: CheckRunner, tmp_path: Path) -> None:
    stop = StopToken()
    stop.stop()
    environment = Environment.model_validate({"url": "http://127.0.0.1:8181"})
    stopped = CheckRunner(environment, env_name="staging", cwd=tmp_path, stop=stop)
    result = stopped.run(run_check(run=[PY, "-c", "pass"], retry={"attempts": 3}))
    assert result.outcome == "inconclusive"
    assert result.attempts == 1
    assert result.got.startswith("no result: not started: the run was interrupted")


def test_run_many_mixes_commands_and_http_in_order(runner: CheckRunner) -> None:
    checks = [
        ("one", run_check(run=[PY, "-c", "print(1)"])),
        ("two", run_check(run=[PY, "-c", "raise SystemExit(1)"])),
        ("three", run_check(run=[PY, "-c", "print(3)"], expect={"output_contains": "3"})),
    ]
    results = runner.run_many(checks)
    assert [(r.name, r.outcome) for r in results] == [
        ("one", "pass"),
        ("two", "fail"),
        ("three", "pass"),
    ]
    # An HTTP check is validated up front, even among commands.
    refused = HttpCheck.model_validate({"get": "http://evil.example/"})
    with pytest.raises(PreconditionFailed, match="not on allow_hosts"):
        runner.run_many([("ok", checks[0][1]), ("bad", refused)])


def test_a_command_check_carries_the_run_id_and_reports_its_start(tmp_path: Path) -> None:
    environment = Environment.model_validate({"url": "http://127.0.0.1:8181"})
    started: list[int] = []
    runner = CheckRunner(
        environment,
        env_name="staging",
        cwd=tmp_path,
        command_env={"DRILLBOOK_RUN": "20261201T000000Z-abcdef"},
        on_command_start=started.append,
    )
    check = run_check(
        run=[PY, "-c", "import os; print('run', os.environ['DRILLBOOK_RUN'], os.getpid())"],
        expect={"output_contains": "run 20261201T000000Z-abcdef"},
    )
    result = runner.run(check)
    assert result.outcome == "pass", result
    assert len(started) == 1
    assert f"20261201T000000Z-abcdef {started[0]}" in result.excerpt


def test_escape_sequences_in_output_are_escaped_in_the_excerpt(runner: CheckRunner) -> None:
    # A command check often prints staging's answer (curl): it reaches the terminal too.
    code = "print('\\x1b[2J\\x1b]0;pwned\\x07body'); print('next line'); exit(1)"
    result = runner.run(run_check(run=[PY, "-c", code]))
    assert result.outcome == "fail"
    assert result.excerpt == "\\x1b[2J\\x1b]0;pwned\\x07body\nnext line"


def test_a_command_check_naming_a_placeholder_with_no_value_is_not_run(tmp_path: Path) -> None:
    environment = Environment.model_validate({"url": "http://127.0.0.1:8181"})
    placeholders = {"version": "1.0.0", "previous": ""}
    ran = tmp_path / "ran"
    runner = CheckRunner(environment, env_name="staging", cwd=tmp_path, placeholders=placeholders)
    argv = run_check(run=[PY, "-c", f"open({str(ran)!r}, 'w')", "{previous}"])
    shell = RunCheck.model_validate(
        {"run": f'touch {ran}; test -n "$DRILLBOOK_PREVIOUS"', "shell": True}
    )
    needle = run_check(
        run=[PY, "-c", "print('on 1.0.0')"], expect={"output_contains": "{previous}"}
    )
    results = [runner.run(check) for check in (argv, shell, needle)]
    for result in results:
        assert result.outcome == "inconclusive", result
        assert result.exit is None
        assert "not run: it needs {previous}" in result.message
    assert results[0].argv is not None and results[0].argv[-1] == "{previous}"
    assert results[1].argv is not None and results[1].argv[:2] == ("/bin/sh", "-c")
    assert results[2].expected == "exit 0; output contains '{previous}'"
    assert not ran.exists()  # nothing was started
    with_previous = CheckRunner(
        environment, env_name="staging", cwd=tmp_path, placeholders=PLACEHOLDERS
    )
    assert with_previous.run(needle).outcome == "fail"  # run, and judged, once it has a value
