"""A task run from a subfolder acts on its project; outside any project it says so (exit 2).

As git finds its repository, drillbook finds the folder that holds `runbooks/` from where it
runs. A task that reads journals (history, resume) must never answer "nothing happened" just
because it ran one folder too deep.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from _project import DRILLBOOK, Project


def run_in(folder: Path, shop: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DRILLBOOK), *args],
        cwd=folder,
        env=shop.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_task_from_a_subfolder_acts_on_the_project(released: Project) -> None:
    shop = released
    sub = shop.root / "config"

    history = run_in(sub, shop, "history", "--format", "json")
    assert history.returncode == 0, history
    rows = json.loads(history.stdout)
    assert [(r["kind"], r["version"]) for r in rows] == [("release", "1.0.0")]

    check = run_in(sub, shop, "check")
    assert check.returncode == 0, check
    assert "ok   ../runbooks/shop.yaml (shop;" in check.stdout

    resume = run_in(sub, shop, "resume")
    assert resume.returncode == 0, resume
    assert "no interrupted or unfinished runs" in resume.stdout + resume.stderr

    plan = run_in(sub, shop, "plan", "--version", "1.1.0")
    assert plan.returncode == 0, plan
    assert "plan: release 1.1.0 of shop on staging" in plan.stdout

    docs = run_in(sub, shop, "docs")
    assert docs.returncode == 0, docs
    assert (shop.root / "site" / "index.html").is_file()
    assert not (sub / "site").exists()
    assert "../site" in docs.stdout

    # An --out written on the command line is a path from where the person typed it.
    docs = run_in(sub, shop, "docs", "--out", "here")
    assert docs.returncode == 0, docs
    assert (sub / "here" / "index.html").is_file()


def test_outside_any_project_tasks_say_so_and_exit_2(tmp_path: Path, shop: Project) -> None:
    # A git repository with no runbooks/: the search stops at its top, never above it.
    other = tmp_path / "elsewhere"
    (other / "deeper").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    (tmp_path / "runbooks").mkdir()  # around the repository: must not be taken

    for args in (("history",), ("check",), ("resume",), ("docs",), ("plan",)):
        done = run_in(other / "deeper", shop, *args)
        assert done.returncode == 2, (args, done)
        assert "no runbooks/ folder in " in done.stderr, (args, done.stderr)
        assert "or above it" in done.stderr
        assert f"up to {other}, the top of its git repository" in done.stderr
        assert "drillbook init" in done.stderr
        assert "Traceback" not in done.stderr


def test_docs_of_a_project_inside_a_larger_repository_read_its_tags(tmp_path: Path) -> None:
    # The project is services/shop of a monorepo: git's .git is two folders up.
    from drillbook.docs_service import _tag_lister
    from drillbook.runbook import load_runbook

    repo = tmp_path / "mono"
    project = repo / "services" / "shop"
    (project / "runbooks").mkdir(parents=True)
    source = Path(__file__).resolve().parents[1] / "fixtures" / "runbooks" / "good"
    (project / "runbooks" / "billing.yaml").write_text(
        (source / "minimal-release.yaml").read_text()
    )
    for args in (
        ["init", "-q"],
        [
            "-c",
            "user.name=A",
            "-c",
            "user.email=a@example.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        ["tag", "v0.1.0"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    loaded = load_runbook(project / "runbooks" / "billing.yaml", root=project)

    assert _tag_lister(project)(loaded.runbook) == ["0.1.0"]


def test_a_working_directory_deleted_under_the_shell_is_refused_naming_it(
    released: Project,
) -> None:
    # `git switch` to a branch without the folder, a workspace cleaned: the shell stays in it.
    gone = released.root / "build"
    for args in (("check",), ("history", "--format", "json"), ("release",)):
        gone.mkdir()
        done = subprocess.run(
            ["sh", "-c", f'cd "{gone}" && rmdir "{gone}" && exec "$0" "$@"', DRILLBOOK, *args],
            env=released.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, (args, done)
        assert f"the working directory ({gone}) no longer exists" in done.stderr, args
        assert "hint: cd into the project again" in done.stderr
        assert "internal error" not in done.stderr
        if "json" in args:
            assert json.loads(done.stdout)["exit"] == 2
