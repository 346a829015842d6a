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
    ("argv", "word", "hint"),
    [
        (["relase"], "relase", "did you mean `release`?"),
        (["check", "--formt", "json"], "--formt", "did you mean `--format`?"),
        (["history", "--snice", "2h"], "--snice", "did you mean `--since`?"),
        (["--lst"], "--lst", "did you mean `--list`?"),
        (["xyzzy"], "xyzzy", "`drillbook --list` lists the tasks"),
    ],
)
def test_a_mistyped_task_or_option_exits_2_with_the_closest_name(
    project: Path, argv: list[str], word: str, hint: str
) -> None:
    done = run([DRILLBOOK, *argv], project)
    assert done.returncode == 2
    assert f"No idea what '{word}' is!" in done.stderr
    assert f"hint: {hint}" in done.stderr
    assert "Traceback" not in done.stderr


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
