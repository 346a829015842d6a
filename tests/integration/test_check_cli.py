"""`drillbook check` and `invoke check` as a user runs them: real processes, real files.

Every bad runbook exits 2 naming its file and line, without a traceback and without writing
anything; every good one exits 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from test_runbook_errors import CASES

BIN = Path(sys.executable).parent
DRILLBOOK = str(BIN / "drillbook")
INVOKE = str(BIN / "invoke")
GOOD = Path(__file__).resolve().parents[1] / "fixtures" / "runbooks" / "good"
SPEC = GOOD / "spec-outline.yaml"


def run(argv: list[str], cwd: Path, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DRILLBOOK_DEBUG"}
    env["NO_COLOR"] = "1"
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert "Traceback" not in done.stdout, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    return done


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and modification time."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose runbooks/ holds every good runbook."""
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for path in GOOD.glob("*.yaml"):
        shutil.copyfile(path, folder / path.name)
    return tmp_path


def test_check_without_arguments_reads_runbooks_in_the_cwd(project: Path) -> None:
    count = len(list(GOOD.glob("*.yaml")))
    done = run([DRILLBOOK, "check"], project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{count} runbooks checked: {count} valid, 0 invalid" in done.stdout
    line = next(ln for ln in done.stdout.splitlines() if "runbooks/spec-outline.yaml" in ln)
    assert "demo-service" in line


def test_check_with_files_and_with_a_folder(project: Path) -> None:
    done = run([DRILLBOOK, "check", "runbooks/minimal.yaml", "runbooks/anchors.yaml"], project)
    assert done.returncode == 0, done.stderr
    assert "2 runbooks checked: 2 valid" in done.stdout
    done = run([DRILLBOOK, "check", str(project / "runbooks")], project.parent)
    assert done.returncode == 0, done.stderr
    done = run([DRILLBOOK, "check", "--format", "json", "runbooks"], project)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["ok"] is True
    assert payload["invalid"] == 0


def test_check_json_reports_every_problem(project: Path) -> None:
    bad = (SPEC.read_text().replace("owner: alice", "owner: 42")).replace(
        "timeout: 60s", "timeout: 9"
    )
    (project / "runbooks" / "zz-bad.yaml").write_text(bad)
    done = run([DRILLBOOK, "check", "--format", "json"], project)
    assert done.returncode == 2
    payload = json.loads(done.stdout)
    assert payload["ok"] is False
    assert payload["invalid"] == 1
    assert payload["valid"] == payload["checked"] - 1
    (entry,) = [f for f in payload["files"] if not f["valid"]]
    assert entry["file"].endswith("zz-bad.yaml")
    fields = {p["field"]: p for p in entry["problems"]}
    assert set(fields) == {"deploy.timeout", "releases[0].changes[0].owner"}
    owner = fields["releases[0].changes[0].owner"]
    assert (owner["line"], owner["column"]) == (55, 16)
    assert "got the number 42" in owner["message"]
    assert owner["hint"]
    assert fields["deploy.timeout"]["line"] == 32


def test_check_a_bad_runbook_exits_2_with_file_line_and_column(project: Path) -> None:
    (project / "runbooks" / "bad.yaml").write_text(
        SPEC.read_text().replace("        rollback:  ", "        rollbak:  ")
    )
    done = run([DRILLBOOK, "check", "runbooks/bad.yaml"], project)
    assert done.returncode == 2
    out = done.stdout + done.stderr
    assert (
        "runbooks/bad.yaml:63:9: releases[0].changes[0].rollbak: unknown key `rollbak` in change "
        "'audit-log' of release 1.1.0 (did you mean `rollback`?)"
    ) in out
    assert "runbooks/bad.yaml:53:9: releases[0].changes[0].rollback: change 'audit-log'" in out
    assert "1 runbook checked: 0 valid, 1 invalid (2 problems)" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "runbooks/missing.yaml"],
        ["check", "nowhere/"],
        ["check", "--format", "yaml"],
    ],
)
def test_usage_errors_exit_2_without_a_traceback(project: Path, argv: list[str]) -> None:
    done = run([DRILLBOOK, *argv], project)
    assert done.returncode == 2
    assert "drillbook check:" in done.stderr


@pytest.mark.parametrize(
    ("argv", "message", "hint"),
    [
        (["relase"], "no task named 'relase'", "did you mean `release`?"),
        (
            ["check", "--formt", "json"],
            "`check` has no option --formt; its options: --format, --path",
            "did you mean `--format`?",
        ),
        (
            ["history", "--snice", "2h"],
            "`history` has no option --snice; its options: --env, --format, --since",
            "did you mean `--since`?",
        ),
        (["--lst"], "drillbook has no option --lst", "did you mean `--list`?"),
        (["xyzzy"], "no task named 'xyzzy'", "`drillbook --list` lists the tasks"),
        (["help"], "no task named 'help'", "did you mean `drillbook --help`?"),
        (["version"], "no task named 'version'", "did you mean `drillbook --version`?"),
    ],
)
def test_a_mistyped_task_or_option_exits_2_with_the_closest_name(
    project: Path, argv: list[str], message: str, hint: str
) -> None:
    done = run([DRILLBOOK, *argv], project)
    assert done.returncode == 2
    assert f"drillbook: {message}\n" in done.stderr
    assert f"hint: {hint}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "message", "hint"),
    [
        # No `--command-timeout` offered: it is invoke's, for `c.run`, which no task uses.
        (
            ["deploy", "--timeout", "5"],
            "`deploy` has no option --timeout; its options: --env, --format, --service, "
            "--version, --yes",
            "`drillbook deploy --help` lists its options",
        ),
        # The shared `--` made `--nope` close to `--complete`.
        (["check", "--nope"], "`check` has no option --nope", "`drillbook check --help`"),
        (["release", "--hlep"], "`release` has no option --hlep", "did you mean `--help`?"),
        (["deploy", "--yes=1"], "--yes is a switch and takes no value; got --yes=1", "`drillbook"),
        (["plan", "1.2.0"], "`plan` takes no bare words; got '1.2.0'", "`drillbook plan --help`"),
        (["lint", "unti"], "`lint` takes no bare words; got 'unti'", "did you mean `unit`?"),
        # A value typed without its option: `deploy staging` was told "did you mean `tag`?".
        (
            ["deploy", "staging"],
            "`deploy` takes no bare words; got 'staging'",
            "did you mean `--env staging`?",
        ),
        (
            ["release", "v1.2.0"],
            "`release` takes no bare words; got 'v1.2.0'",
            "did you mean `--version 1.2.0`?",
        ),
        (
            ["plan", "stray"],
            "`plan` takes no bare words",
            "did you mean `--env stray`?",
        ),
        (["lint", "staging"], "`lint` takes no bare words", "hint: `drillbook lint --help`"),
        (["-h", "nosuch"], "no task named 'nosuch'", "`drillbook --list` lists the tasks"),
        ([""], "no task named ''", "`drillbook --list` lists the tasks"),
    ],
)
def test_a_usage_error_says_what_was_wrong_and_what_is_expected(
    project: Path, argv: list[str], message: str, hint: str
) -> None:
    done = run([DRILLBOOK, *argv], project)
    assert done.returncode == 2, done
    first, second = done.stderr.splitlines()[:2]
    assert first.startswith(f"drillbook: {message}"), done.stderr
    assert second.startswith("  hint: ") and hint in second, done.stderr
    assert "No idea what" not in done.stderr
    assert "--complete" not in done.stderr


def test_check_without_a_runbooks_folder(tmp_path: Path) -> None:
    done = run([DRILLBOOK, "check"], tmp_path)
    assert done.returncode == 2
    assert "runbooks" in done.stderr


def test_check_help(tmp_path: Path) -> None:
    done = run([DRILLBOOK, "check", "--help"], tmp_path)
    assert done.returncode == 0
    assert "--format" in done.stdout


def test_every_bad_runbook_in_one_run(tmp_path: Path) -> None:
    """The whole table of bad inputs through the console script: exit 2, every file named
    with its line, no traceback, nothing written, nothing constructed from a tag."""
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for i, case in enumerate(CASES):
        data = case.text.encode("utf-8") if isinstance(case.text, str) else case.text
        (folder / f"{i:03d}-{case.id}.yaml").write_bytes(data)
    before = snapshot(tmp_path)
    done = run([DRILLBOOK, "check", "--format", "json"], tmp_path)
    assert done.returncode == 2, done.stderr
    assert snapshot(tmp_path) == before, "check wrote to the project"
    assert not (tmp_path / "PWNED").exists()
    payload = json.loads(done.stdout)
    assert payload["checked"] == len(CASES)
    assert payload["invalid"] == len(CASES)
    by_file = {Path(f["file"]).name: f for f in payload["files"]}
    for i, case in enumerate(CASES):
        entry = by_file[f"{i:03d}-{case.id}.yaml"]
        line, _ = case.position()
        lines = [p["line"] for p in entry["problems"]]
        assert line in lines, (case.id, line, entry["problems"])
        for secret in case.absent:
            assert secret not in done.stdout
            assert secret not in done.stderr


def test_every_bad_runbook_in_text_mode(tmp_path: Path) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for i, case in enumerate(CASES):
        data = case.text.encode("utf-8") if isinstance(case.text, str) else case.text
        (folder / f"{i:03d}-{case.id}.yaml").write_bytes(data)
    done = run([DRILLBOOK, "check"], tmp_path)
    assert done.returncode == 2
    out = done.stdout + done.stderr
    for i, case in enumerate(CASES):
        line, _ = case.position()
        assert f"runbooks/{i:03d}-{case.id}.yaml:{line}:" in out, case.id
    assert f"{len(CASES)} invalid" in out
    assert "hunter2secret" not in out


def test_nothing_is_written_by_a_good_check(project: Path) -> None:
    before = snapshot(project)
    done = run([DRILLBOOK, "check"], project)
    assert done.returncode == 0
    assert snapshot(project) == before


TASKS_FORMS = {
    "namespace": "from drillbook.tasks import namespace\n",
    "ns": "from drillbook.tasks import namespace as ns\n",
}


@pytest.mark.parametrize("form", list(TASKS_FORMS))
def test_invoke_check_in_a_project(project: Path, form: str) -> None:
    (project / "tasks.py").write_text(TASKS_FORMS[form])
    done = run([INVOKE, "--list"], project)
    assert done.returncode == 0, done.stderr
    assert "check" in done.stdout
    done = run([INVOKE, "check"], project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "runbooks checked" in done.stdout
    done = run([INVOKE, "check", "--path", "runbooks/minimal.yaml"], project)
    assert done.returncode == 0, done.stderr
    assert "1 runbook checked: 1 valid" in done.stdout
    (project / "runbooks" / "bad.yaml").write_text("drillbook: 2\n")
    done = run([INVOKE, "check", "--path", "runbooks/bad.yaml"], project)
    assert done.returncode == 2
    assert "runbooks/bad.yaml:1:12: drillbook:" in done.stdout + done.stderr


def test_a_path_with_two_slashes_is_a_url_without_its_scheme(tmp_path: Path) -> None:
    # `//evil.example.com/x` would be joined to no base: it is a host, not a path under the
    # environment's url, and it is refused before anything runs.
    folder = tmp_path / "runbooks"
    folder.mkdir()
    text = (GOOD / "minimal-release.yaml").read_text()
    text = text.replace(
        "          summary: The service answers on /health.\n",
        "          summary: The service answers on /health.\n"
        "          checks: [{get: //evil.example.com/health}]\n",
    )
    (folder / "billing.yaml").write_text(text)

    done = run([DRILLBOOK, "check"], tmp_path)

    assert done.returncode == 2, done
    assert (
        "runbooks/billing.yaml:15:26: releases[0].changes[0].expected.checks[0].get: expected a "
        "path starting with one / or an http(s) URL, got '//evil.example.com/health'"
    ) in done.stdout


def test_two_runbooks_of_one_service_are_refused_and_a_file_named_twice_is_checked_once(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    shutil.copyfile(GOOD / "minimal-release.yaml", folder / "billing.yaml")
    shutil.copyfile(GOOD / "minimal-release.yaml", folder / "billing-copy.yaml")

    done = run([DRILLBOOK, "check"], tmp_path)

    assert done.returncode == 2, done
    assert (
        "runbooks/billing.yaml:2:10: service: expected one runbook per service, got "
        "'billing_api' here and in runbooks/billing-copy.yaml"
    ) in done.stdout
    assert "2 runbooks checked: 1 valid, 1 invalid" in done.stdout

    (folder / "billing-copy.yaml").unlink()
    twice = run([DRILLBOOK, "check", "runbooks/billing.yaml", "runbooks"], tmp_path)
    assert twice.returncode == 0, twice
    assert "1 runbook checked: 1 valid, 0 invalid" in twice.stdout


def test_check_never_shows_a_secret_of_the_environment(tmp_path: Path) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    text = (GOOD / "minimal-release.yaml").read_text()
    text += "deploy:\n  run: [./deploy]\n  timeout: tokval-9876\n"
    (folder / "billing.yaml").write_text(text)
    env_secret = {"MY_TOKEN": "tokval-9876"}

    for form in ([], ["--format", "json"]):
        done = subprocess.run(
            [DRILLBOOK, "check", *form],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NO_COLOR": "1", **env_secret},
            check=False,
        )
        assert done.returncode == 2, done
        assert "expected a duration with a unit" in done.stdout
        assert "tokval-9876" not in done.stdout + done.stderr
        assert "got '***'" in done.stdout


def test_json_is_written_when_check_cannot_start(tmp_path: Path) -> None:
    done = run([DRILLBOOK, "check", "nothere.yaml", "--format", "json"], tmp_path)
    assert done.returncode == 2, done
    payload = json.loads(done.stdout)
    assert payload["exit"] == 2
    assert payload["outcome"] == "invalid"
    assert payload["error"] == "no such file or folder: nothere.yaml"

    outside = run([DRILLBOOK, "check", "--format", "json"], tmp_path)
    assert outside.returncode == 2, outside
    assert "no runbooks/ folder in" in json.loads(outside.stdout)["error"]


def test_schema_out_a_folder_writes_the_schema_into_it(tmp_path: Path) -> None:
    done = run([DRILLBOOK, "schema", "--out", str(tmp_path)], tmp_path)
    assert done.returncode == 0, done
    written = json.loads((tmp_path / "runbook-v1.json").read_text())
    assert written["title"]
    assert done.stdout.strip() == f"wrote {tmp_path / 'runbook-v1.json'}"


def test_help_shows_what_drillbook_is_and_its_tasks_before_invokes_options(
    tmp_path: Path,
) -> None:
    for argv in ([DRILLBOOK], [DRILLBOOK, "--help"]):
        done = run(argv, tmp_path)
        assert done.returncode == 0, done
        text = done.stdout
        assert "turns a release checklist into code" in text
        assert text.index("Subcommands:") < text.index("Core options:")
        assert "  release " in text and "  rollback " in text


def test_an_option_without_its_value_is_named_plainly(tmp_path: Path) -> None:
    done = run([DRILLBOOK, "deploy", "--version"], tmp_path)
    assert done.returncode == 2, done
    assert "drillbook: --version needs a value" in done.stderr
    assert "<Argument" not in done.stderr


def run_to(argv: list[str], cwd: Path, stdout: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DRILLBOOK_DEBUG"}
    done = subprocess.run(
        argv,
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.mark.parametrize(
    "argv",
    [
        [DRILLBOOK, "check"],
        [DRILLBOOK, "check", "--format", "json"],
        [INVOKE, "check"],
        [DRILLBOOK, "--list"],
        # invoke's own printing, after it loaded the project's tasks: it let the error out.
        [INVOKE, "--list"],
        [INVOKE, "check", "--help"],
    ],
)
def test_a_reader_that_went_away_ends_the_output_quietly(project: Path, argv: list[str]) -> None:
    # `drillbook check | head -1`, the reader gone before the first line.
    (project / "tasks.py").write_text("from drillbook.tasks import namespace as ns\n")
    read, write = os.pipe()
    os.close(read)
    try:
        done = run_to(argv, project, write)
    finally:
        os.close(write)
    assert done.returncode in (0, 141), done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize(
    "argv",
    [
        [DRILLBOOK, "check"],
        [DRILLBOOK, "check", "--format", "json"],
        [INVOKE, "check"],
        [DRILLBOOK, "--list"],
        [DRILLBOOK, "--version"],
    ],
)
def test_a_stdout_that_cannot_be_written_exits_3_saying_so(project: Path, argv: list[str]) -> None:
    (project / "tasks.py").write_text("from drillbook.tasks import namespace as ns\n")
    with Path("/dev/full").open("w") as full:
        done = run_to(argv, project, full.fileno())
    assert done.returncode == 3, done.stderr
    assert "No space left on device" in done.stderr
    assert "internal error" not in done.stderr


@pytest.mark.parametrize(
    "argv",
    [["check"], ["check", "--format", "json"], ["--list"], ["--version"], ["--help"]],
)
def test_a_stdout_closed_before_the_start_exits_3_saying_so(project: Path, argv: list[str]) -> None:
    # `drillbook check --format json >&-`: nothing reaches the pipeline, and exit 0 said all
    # was well.
    done = run(["sh", "-c", 'exec "$0" "$@" >&-', str(DRILLBOOK), *argv], project)
    assert done.returncode == 3, done.stderr
    assert "stdout was closed before drillbook started" in done.stderr


@pytest.mark.parametrize("argv", [["check"], ["check", "--format", "json"]])
def test_under_invoke_a_stdout_closed_before_the_start_exits_3_saying_so(
    project: Path, argv: list[str]
) -> None:
    # The console script said so; `invoke check >&-` printed nothing and exited 0.
    (project / "tasks.py").write_text("from drillbook.tasks import namespace as ns\n")
    done = run(["sh", "-c", 'exec "$0" "$@" >&-', INVOKE, *argv], project)
    assert done.returncode == 3, done.stderr
    assert "stdout was closed before drillbook started" in done.stderr


@pytest.mark.parametrize(
    ("argv", "task", "error"),
    [
        (
            ["check", "--format", "json", "--bogus"],
            "check",
            "`check` has no option --bogus; its options: --format, --path",
        ),
        (
            ["release", "--format=json", "--pussh"],
            "release",
            "`release` has no option --pussh; its options: --dry-run, --env, --format, "
            "--if-unreleased, --no-auto-rollback, --push, --service, --version, --yes",
        ),
        (["history", "-f", "json", "--since"], "history", "--since needs a value"),
        (["plan", "extra", "--format", "json"], "plan", "`plan` takes no bare words; got 'extra'"),
        (
            ["resume", "--format", "json", "--fromat"],
            "resume",
            "`resume` has no option --fromat; its options: --format, --run",
        ),
    ],
)
def test_a_usage_error_of_a_json_run_is_json_on_stdout(
    project: Path, argv: list[str], task: str, error: str
) -> None:
    done = run([DRILLBOOK, *argv], project)
    assert done.returncode == 2, done
    payload = json.loads(done.stdout)
    assert payload["task"] == task
    assert payload["outcome"] == "invalid"
    assert payload["exit"] == 2
    assert payload["error"] == error
    assert f"`drillbook {task} --help` lists its options" in payload["hint"]
    assert f"drillbook: {error}" in done.stderr


def test_a_short_option_that_is_not_format_asks_for_no_json(project: Path) -> None:
    # init's -f is --force: `json` after it is a stray word, and init offers no JSON.
    done = run([DRILLBOOK, "init", "-f", "json"], project)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert "`init` takes no bare words; got 'json'" in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--format", "json", "nothere.yaml"],
        ["check", "--format", "json", "--bogus"],
        ["check", "--format", "json"],
    ],
)
def test_a_json_run_with_stderr_closed_keeps_stdout_json(project: Path, argv: list[str]) -> None:
    # `2>&-`: the messages meant for stderr have nowhere to go, and never go to stdout.
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" 2>&-', DRILLBOOK, *argv],
        cwd=project,
        stdout=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(done.stdout)["exit" if done.returncode else "ok"] in (2, True)


def test_schema_out_a_pipe_writes_into_it_and_leaves_it_a_pipe(tmp_path: Path) -> None:
    # `schema --out /dev/stdout` is the same: a rename would put a file in the device's place.
    fifo = tmp_path / "schema.pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open, so that a writer may open too
    try:
        done = run([DRILLBOOK, "schema", "--out", str(fifo)], tmp_path)
        assert done.returncode == 0, done
        chunks = []
        while chunk := os.read(reader, 65536):
            chunks.append(chunk)
    finally:
        os.close(reader)
    assert json.loads(b"".join(chunks))["title"]
    assert fifo.is_fifo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schema.pipe"]


@pytest.mark.parametrize("task", ["resume", "abandon"])
def test_the_help_of_a_task_with_a_bare_word_says_so(tmp_path: Path, task: str) -> None:
    done = run([DRILLBOOK, task, "--help"], tmp_path)
    assert done.returncode == 0, done
    text = " ".join(done.stdout.split())
    assert (
        f"RUN: the run id (a unique prefix is enough), or the word after `drillbook {task}`" in text
    )
    assert "without it, the runs left open are listed" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "--version", "1.0.0", "--version", "1.1.0"], "--version is given twice"),
        (["plan", "-v", "1.0.0", "--version=1.1.0"], "--version is given twice"),
        (["check", "--format", "json", "--format", "text"], "--format is given twice"),
    ],
)
def test_an_option_given_twice_is_named(project: Path, argv: list[str], message: str) -> None:
    done = run([DRILLBOOK, *argv], project)
    assert done.returncode == 2, done
    assert f"drillbook: {message} (" in done.stderr
    assert "hint: give it once;" in done.stderr
    assert "No idea what" not in done.stderr


def test_the_words_after_a_double_dash_are_the_tasks_bare_words(project: Path) -> None:
    # `drillbook check -- $FILES` checks those files, one named like an option included,
    # and one that is missing fails the check rather than the default runbooks/ passing.
    shutil.copyfile(SPEC, project / "-odd.yaml")
    done = run([DRILLBOOK, "check", "--", "-odd.yaml"], project)
    assert done.returncode == 0, done
    assert "1 runbook checked: 1 valid" in done.stdout
    assert "-odd.yaml" in done.stdout
    done = run([DRILLBOOK, "check", "--", "missing.yaml"], project)
    assert done.returncode == 2, done
    assert "no such file or folder: missing.yaml" in done.stderr
    # A word spelled as one of check's options is a path too, not the option.
    for word in ("-p", "--format", "--path=x"):
        done = run([DRILLBOOK, "check", "--", word], project)
        assert done.returncode == 2, done
        assert f"no such file or folder: {word}" in done.stderr
    for argv in (["--", "run-a", "run-b"], ["run-a", "--", "run-b"]):
        done = run([DRILLBOOK, "resume", *argv], project)
        assert done.returncode == 2, done
        assert "drillbook: `resume` takes one RUN; got 'run-a', then 'run-b'" in done.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "--", "extra"], "`plan` takes no bare words, so none after `--`; got 'extra'"),
        (["--", "check"], "no task before `--`; got 'check' after it"),
    ],
)
def test_words_after_a_double_dash_that_no_task_takes_are_a_usage_error(
    project: Path, argv: list[str], message: str
) -> None:
    done = run([DRILLBOOK, *argv], project)
    assert done.returncode == 2, done
    assert f"drillbook: {message}" in done.stderr
    assert done.stdout == ""


def test_shell_completion_still_gets_its_words_after_a_double_dash(project: Path) -> None:
    done = run([DRILLBOOK, "--complete", "--", "drillbook", "check", "--f"], project)
    assert done.returncode == 0, done
    assert done.stdout.split() == ["--format", "--path"]


@pytest.mark.parametrize("task", ["resume", "abandon"])
def test_two_bare_runs_are_named_as_typed_not_as_an_option_given_twice(
    project: Path, task: str
) -> None:
    done = run([DRILLBOOK, task, "run-a", "run-b"], project)
    assert done.returncode == 2, done
    assert f"drillbook: `{task}` takes one RUN; got 'run-a', then 'run-b'\n" in done.stderr
    assert "hint: name one RUN;" in done.stderr
    assert "--run" not in done.stderr
    done = run([DRILLBOOK, task, "--run", "run-a", "--run=run-b"], project)
    assert done.returncode == 2, done
    assert "drillbook: --run is given twice ('run-a', then 'run-b')" in done.stderr


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["check", ""], "PATH"),
        (["check", "runbooks", ""], "PATH"),
        (["check", "--", ""], "PATH"),
        (["schema", "--out", ""], "--out"),
        (["docs", "--out", ""], "--out"),
        (["demo", "--keep", ""], "--keep"),
    ],
)
def test_an_empty_path_is_refused_not_taken_for_the_working_directory(
    project: Path, argv: list[str], what: str
) -> None:
    # `drillbook schema --out "$DIR"` with DIR unset wrote into the working directory.
    before = snapshot(project)
    done = run([DRILLBOOK, *argv], project)
    assert done.returncode == 2, done
    assert f"{what} is empty (''), expected a path" in done.stderr
    assert "an unset shell variable gives an empty word" in done.stderr
    assert snapshot(project) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--path"],
        ["check", "-p"],
        ["check", "--path", "--format", "json"],
        ["check", "--path", "--"],
    ],
)
def test_a_repeatable_option_without_its_value_is_refused(project: Path, argv: list[str]) -> None:
    # `drillbook check --path $FILE` with FILE unset checked runbooks/ and passed.
    done = run([DRILLBOOK, *argv], project)
    assert done.returncode == 2, done
    assert "drillbook: --path needs a value\n" in done.stderr
    assert "runbooks checked" not in done.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # The option last before the task's name, the task last: a traceback, once.
        (["--yes", "deploy"], "--yes is an option of `deploy`: it goes after the task's name"),
        (["-v", "1.0.0", "plan"], "-v is an option of `plan`: it goes after the task's name"),
        (
            ["--env=staging", "deploy", "--version", "1.0.0"],
            "--env is an option of `deploy`: it goes after the task's name",
        ),
        (["--nope", "plan"], "drillbook has no option --nope"),
    ],
)
def test_a_tasks_option_typed_before_the_task_is_said_so(
    project: Path, argv: list[str], message: str
) -> None:
    done = run([DRILLBOOK, *argv], project)
    assert done.returncode == 2, done
    assert done.stderr.startswith(f"drillbook: {message}\n"), done.stderr
    task = next(word for word in argv if word in ("deploy", "plan"))
    assert f"`drillbook {task} --help` lists its options" in done.stderr


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["check", "--", "missing.yaml"], "give each as `--path WORD`"),
        (["plan", "--", "extra"], "leave them out; `invoke plan --help` lists its options"),
    ],
)
def test_invoke_refuses_words_after_a_double_dash_as_drillbook_does(
    project: Path, argv: list[str], hint: str
) -> None:
    # invoke keeps them for `c.run`: `invoke check -- a.yaml` checked runbooks/ and passed.
    (project / "tasks.py").write_text(TASKS_FORMS["ns"])
    done = run([INVOKE, *argv], project)
    assert done.returncode == 2, done
    assert f"the words after `--` are not read under invoke; got '{argv[-1]}'" in done.stderr
    assert f"hint: {hint}" in done.stderr
    assert "runbooks checked" not in done.stdout


def test_a_program_option_after_a_task_with_bare_words_keeps_its_value(project: Path) -> None:
    # The value was taken for a path: `--config` read `--path=FILE`, -D said "got '--path=x'".
    (project / "broken.yaml").write_text("x: [\n")
    done = run([DRILLBOOK, "check", "--config", "broken.yaml", "runbooks/minimal.yaml"], project)
    assert done.returncode == 2, done
    assert "cannot read the invoke config file broken.yaml" in done.stderr
    done = run([DRILLBOOK, "check", "runbooks/minimal.yaml", "-D", "x"], project)
    assert done.returncode == 2, done
    assert "drillbook: --list-depth expects a whole number, got 'x'\n" in done.stderr
