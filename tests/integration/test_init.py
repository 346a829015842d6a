"""`drillbook init` as a user runs it in a project: real processes, real files, real invoke.

A new project gets a runbook that `drillbook check` accepts, a tasks.py through which `invoke`
lists drillbook's tasks, and a .gitignore entry; a project with files of its own keeps them.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from drillbook.scaffold import SCHEMA_PATH, TASKS_LINES, service_name, starter_runbook

BIN = Path(sys.executable).parent
DRILLBOOK = str(BIN / "drillbook")
INVOKE = str(BIN / "invoke")
OWN_TASKS = '''\
from invoke import task


@task
def lint(c):
    """The project's own lint."""


@task
def hello(c):
    """The project's own hello."""
'''


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DRILLBOOK_DEBUG"}
    env["NO_COLOR"] = "1"
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def listed(cwd: Path) -> set[str]:
    done = run([INVOKE, "--list", "--list-format", "json"], cwd)
    assert done.returncode == 0, done.stderr
    return {t["name"] for t in json.loads(done.stdout)["tasks"]}


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "Orders API"
    root.mkdir()
    return root


def test_init_in_an_empty_project_writes_what_check_and_invoke_accept(project: Path) -> None:
    done = run([DRILLBOOK, "init"], project)

    assert done.returncode == 0, done.stderr
    runbook = project / "runbooks" / "orders-api.yaml"
    assert runbook.read_text() == starter_runbook("orders-api")
    assert runbook.read_text().startswith(
        "# yaml-language-server: $schema=runbook-v1.schema.json\n"
    )
    schema = json.loads((project / SCHEMA_PATH).read_text())
    assert "drillbook" in schema["properties"]
    assert (project / ".gitignore").read_text().splitlines()[-1] == ".drillbook/"
    for path in ("runbooks/orders-api.yaml", SCHEMA_PATH, "tasks.py", ".gitignore"):
        assert f"wrote     {path}" in done.stdout
    assert "next steps:" in done.stdout
    assert "  `invoke --list` shows the same tasks beside your own" in done.stdout

    checked = run([DRILLBOOK, "check"], project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 valid, 0 invalid" in checked.stdout
    assert {"check", "plan", "release", "rehearse", "docs", "init"} <= listed(project)
    via_invoke = run([INVOKE, "check"], project)
    assert via_invoke.returncode == 0, via_invoke.stdout + via_invoke.stderr


def test_the_tasks_py_of_init_says_when_invoke_runs_in_a_python_without_drillbook(
    project: Path,
) -> None:
    assert run([DRILLBOOK, "init"], project).returncode == 0
    # invoke as a Python without drillbook runs it (pipx's, or a venv not activated): here the
    # same interpreter, with drillbook made unimportable before invoke loads tasks.py.
    code = textwrap.dedent(
        """
        import sys

        class NoDrillbook:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "drillbook":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, NoDrillbook())
        sys.argv = ["invoke", "check"]
        from invoke.main import program
        program.run()
        """
    )
    done = run([sys.executable, "-c", code], project)

    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        f"tasks.py: drillbook is not installed for {sys.executable}, which runs invoke; "
        "install it there (pip install drillbook), or run `drillbook TASK` from its venv"
    )


def test_init_twice_changes_nothing(project: Path) -> None:
    assert run([DRILLBOOK, "init"], project).returncode == 0
    before = snapshot(project)

    again = run([DRILLBOOK, "init"], project)

    assert again.returncode == 0, again.stderr
    assert snapshot(project) == before
    assert again.stdout.count("unchanged ") == 4


def test_init_inside_a_project_refuses_to_nest_another(project: Path) -> None:
    assert run([DRILLBOOK, "init"], project).returncode == 0
    inside = project / "config"
    inside.mkdir()
    before = snapshot(project)

    nested = run([DRILLBOOK, "init"], inside)

    assert nested.returncode == 2, nested
    assert f"{inside} is inside the project at {project}" in nested.stderr
    assert "drillbook init --service NAME" in nested.stderr
    assert snapshot(project) == before


def test_init_keeps_the_projects_own_tasks_and_gitignore(project: Path) -> None:
    (project / "tasks.py").write_text(OWN_TASKS)
    (project / ".gitignore").write_text("node_modules/")  # no newline at the end

    done = run([DRILLBOOK, "init", "--service", "shop"], project)

    assert done.returncode == 0, done.stderr
    assert (project / "tasks.py").read_text() == OWN_TASKS
    assert "kept      tasks.py" in done.stdout
    for line in TASKS_LINES:
        assert line in done.stdout
    assert (project / ".gitignore").read_text() == (
        "node_modules/\n# drillbook's journal and locks\n.drillbook/\n"
    )
    assert (project / "runbooks" / "shop.yaml").is_file()
    assert listed(project) == {"lint", "hello"}
    # invoke lists the project's own tasks alone until then, and the next steps say so.
    assert "once the lines above end tasks.py, `invoke --list` shows the same tasks" in done.stdout

    # The three lines shown are all it takes; the project's own lint wins over drillbook's.
    with (project / "tasks.py").open("a") as handle:
        handle.write("\n" + "\n".join(TASKS_LINES) + "\n")
    names = listed(project)
    assert {"lint", "hello", "release", "check"} <= names
    own_lint = run([INVOKE, "--help", "lint"], project)
    assert "The project's own lint." in own_lint.stdout


def test_init_never_duplicates_the_gitignore_entry(project: Path) -> None:
    (project / ".gitignore").write_text("/.drillbook\n*.pyc\n")

    assert run([DRILLBOOK, "init"], project).returncode == 0

    assert (project / ".gitignore").read_text() == "/.drillbook\n*.pyc\n"


def test_init_refuses_to_overwrite_a_runbook_and_writes_nothing(project: Path) -> None:
    (project / "runbooks").mkdir()
    mine = project / "runbooks" / "orders-api.yaml"
    mine.write_text("# my own runbook\n")
    before = snapshot(project)

    done = run([DRILLBOOK, "init"], project)

    assert done.returncode == 3
    assert "runbooks/orders-api.yaml exists and differs" in done.stderr
    assert "nothing was written" in done.stderr
    assert "--force" in done.stderr
    assert snapshot(project) == before


def test_init_force_replaces_the_runbook_and_adds_to_tasks(project: Path) -> None:
    (project / "runbooks").mkdir()
    (project / "runbooks" / "orders-api.yaml").write_text("# my own runbook\n")
    (project / "tasks.py").write_text(OWN_TASKS)
    (project / ".gitignore").write_text(".drillbook/\n")

    done = run([DRILLBOOK, "init", "--force"], project)

    assert done.returncode == 0, done.stderr
    assert "overwrote runbooks/orders-api.yaml (--force)" in done.stdout
    assert (project / "runbooks" / "orders-api.yaml").read_text() == starter_runbook("orders-api")
    tasks = (project / "tasks.py").read_text()
    assert tasks.startswith(OWN_TASKS)  # the project's own tasks stay
    assert tasks.rstrip().endswith(TASKS_LINES[-1])
    assert (project / ".gitignore").read_text() == ".drillbook/\n"
    assert {"lint", "hello", "release"} <= listed(project)
    # The lines keep the starter gate (ruff) passing: isort's blank line after the import.
    sorted_imports = run([str(BIN / "ruff"), "check", "--isolated", "--select", "I", "."], project)
    assert sorted_imports.returncode == 0, sorted_imports.stdout


def test_init_rejects_a_service_name_the_format_refuses(project: Path) -> None:
    done = run([DRILLBOOK, "init", "--service", "my shop"], project)

    assert done.returncode == 2
    assert "--service expects" in done.stderr
    assert "--service my-shop" in done.stderr
    assert not any(project.iterdir())


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("Orders API", "orders-api"),
        ("my_service", "my_service"),
        ("--weird..name--", "weird-name"),
        ("Ünïcode Café", "unicode-cafe"),
        ("...", "my-service"),
    ],
)
def test_service_name_from_the_folder(folder: str, expected: str) -> None:
    assert service_name(folder) == expected


@pytest.mark.parametrize(
    "locale", [{}, {"LC_ALL": "C", "PYTHONUTF8": "0"}, {"LC_ALL": "POSIX", "PYTHONUTF8": "0"}]
)
def test_the_service_named_after_the_folder_is_the_same_in_any_locale(
    tmp_path: Path, locale: dict[str, str]
) -> None:
    # Under a locale that is not UTF-8 the folder `Ünïcode Café` made the runbook caf-n.yaml.
    root = tmp_path / "Ünïcode Café"
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DRILLBOOK_DEBUG", "LANG")}
    done = subprocess.run(
        [DRILLBOOK, "init"],
        cwd=root,
        capture_output=True,
        env={**env, **locale, "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (root / "runbooks" / "unicode-cafe.yaml").read_text() == starter_runbook("unicode-cafe")


def test_plan_of_the_starter_says_nothing_will_start_a_staging_that_is_down(
    project: Path,
) -> None:
    # The starter runbook has its deploy commented out: nothing will start staging.
    assert run([DRILLBOOK, "init"], project).returncode == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free once closed: nothing listens there
    runbook = project / "runbooks" / "orders-api.yaml"
    runbook.write_text(runbook.read_text().replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
    for argv in (
        ["init", "-q"],
        ["config", "user.name", "A"],
        ["config", "user.email", "a@example.com"],
        ["add", "-A"],
        ["commit", "-qm", "start"],
    ):
        subprocess.run(["git", *argv], cwd=project, check=True, capture_output=True)

    done = run([DRILLBOOK, "plan"], project)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"fail staging: http://127.0.0.1:{port} does not answer (Connection refused), and the "
        "runbook has no deploy to start it: its checks would fail"
    ) in done.stdout


def test_init_outside_a_git_repository_says_to_make_one(project: Path) -> None:
    outside = run([DRILLBOOK, "init"], project)
    assert outside.returncode == 0, outside.stderr
    assert "4. git init && git add -A && git commit, then: drillbook release" in outside.stdout
    assert "this folder is in no git repository yet" in outside.stdout

    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    inside = run([DRILLBOOK, "init"], project)
    assert inside.returncode == 0, inside.stderr
    assert "4. git add -A && git commit, then: drillbook release" in inside.stdout
    assert "git repository" not in inside.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a repository to another user")
def test_init_in_a_repository_git_refuses_says_why_not_git_init(project: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["chown", "-R", "65534:65534", str(project)], check=True)
    env = {**os.environ, "NO_COLOR": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    env.pop("DRILLBOOK_DEBUG", None)
    done = subprocess.run(
        [DRILLBOOK, "init"], cwd=project, capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"4. first this: git refuses to work in {project}: it is owned by another user"
        in done.stdout
    )
    assert f"safe.directory {shlex.quote(str(project))})" in done.stdout
    assert "git init" not in done.stdout


@pytest.mark.parametrize("name", ["tasks.py", ".gitignore"])
def test_init_refuses_a_folder_where_it_adds_to_a_file_and_writes_nothing(
    project: Path, name: str
) -> None:
    (project / name).mkdir()
    before = snapshot(project)

    done = run([DRILLBOOK, "init"], project)

    assert done.returncode == 2, done.stdout + done.stderr
    said = f"{name} exists and is not a file, expected one to add lines to; nothing was written"
    assert said in done.stderr
    assert f"hint: move {project / name} out of the way" in done.stderr
    assert "internal error" not in done.stderr
    assert snapshot(project) == before
    assert not (project / "runbooks").exists()


def test_init_refuses_a_second_runbook_of_a_service_and_writes_nothing(project: Path) -> None:
    # A runbook of the service under another file name: init wrote runbooks/orders-api.yaml
    # beside it, and `check` then refused the project (one runbook per service).
    (project / "runbooks").mkdir()
    (project / "runbooks" / "main.yml").write_text(
        starter_runbook("orders-api").replace("team-orders-api", "team-orders")
    )
    before = snapshot(project)

    done = run([DRILLBOOK, "init"], project)

    assert done.returncode == 3, done.stdout + done.stderr
    assert "runbooks/main.yml describes service 'orders-api' already" in done.stderr
    assert "nothing was written" in done.stderr
    assert "--service NAME" in done.stderr
    assert snapshot(project) == before
    other = run([DRILLBOOK, "init", "--service", "payments"], project)
    assert other.returncode == 0, other.stdout + other.stderr
    checked = run([DRILLBOOK, "check"], project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 valid, 0 invalid" in checked.stdout


def test_init_on_a_read_only_mount_says_so_and_writes_nothing(project: Path) -> None:
    # Root writes through every permission: a mount read-only is what refuses it, made in a
    # mount namespace of the run's own. init stopped with "internal error: OSError".
    where = shlex.quote(str(project))
    script = f"mount -t tmpfs -o ro tmpfs {where} && cd {where} && exec {DRILLBOOK} init"
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    probe = subprocess.run([*argv[:4], "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here: {probe.stderr.decode().strip()}")

    done = run(argv, project)

    assert done.returncode == 3, done.stdout + done.stderr
    assert f"cannot write runbooks/orders-api.yaml to {project / 'runbooks'}" in done.stderr
    assert "mounted read-only; nothing was written" in done.stderr
    assert "internal error" not in done.stderr


def test_init_keeps_a_projects_tasks_package_reachable(project: Path) -> None:
    # A tasks.py written beside the package tasks/ was what invoke loaded: every task of the
    # project's own was gone from `invoke --list`.
    (project / "tasks").mkdir()
    (project / "tasks" / "__init__.py").write_text(OWN_TASKS)

    done = run([DRILLBOOK, "init"], project)

    assert done.returncode == 0, done.stderr
    assert not (project / "tasks.py").exists()
    assert "kept      tasks/__init__.py (it is the project's own" in done.stdout
    assert "add these lines at the end of tasks/__init__.py:" in done.stdout
    assert "once the lines above end tasks/__init__.py, `invoke --list`" in done.stdout
    assert listed(project) == {"lint", "hello"}

    forced = run([DRILLBOOK, "init", "--force"], project)
    assert forced.returncode == 0, forced.stderr
    assert "appended  tasks/__init__.py (--force)" in forced.stdout
    assert not (project / "tasks.py").exists()
    assert {"lint", "hello", "release", "check"} <= listed(project)
    via_invoke = run([INVOKE, "check"], project)
    assert via_invoke.returncode == 0, via_invoke.stdout + via_invoke.stderr
