"""`init`: a starter runbook, the schema, a tasks.py and a .gitignore entry for this project."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Context

from drillbook.console import Console
from drillbook.tasks._base import drill_task

if TYPE_CHECKING:
    from drillbook.errors import DrillbookError

_SAY = {
    "write": "wrote     ",
    "overwrite": "overwrote ",
    "append": "appended  ",
    "unchanged": "unchanged ",
    "keep": "kept      ",
}


@drill_task(
    help={
        "service": "the service name (default: this folder's name, made a valid name)",
        "force": "overwrite a runbook or schema that exists; add drillbook's lines to an "
        "existing tasks.py (your tasks stay)",
    }
)
def init(c: Context, service: str | None = None, force: bool = False) -> None:
    """Scaffold runbooks/<service>.yaml, its schema, a tasks.py and .gitignore in this project."""
    from drillbook.scaffold import TASKS_LINES, TASKS_PACKAGE, apply_init, plan_init

    console = Console()
    root = Path.cwd()
    _refuse_inside_a_project(root)
    plan = plan_init(root, service, force=force)
    apply_init(plan)
    for action in plan.actions:
        word = _SAY[action.action]
        if action.changes:
            word = console.paint(word, "green")
        elif action.action == "keep":
            word = console.paint(word, "yellow")
        reason = f" ({action.reason})" if action.reason else ""
        console.print(f"  {word}{action.path}{reason}")
        if action.action == "keep" and action.path in ("tasks.py", TASKS_PACKAGE):
            console.print(f"      add these lines at the end of {action.path}:")
            for line in TASKS_LINES:
                console.print(f"        {line}".rstrip())
    runbook = f"runbooks/{plan.service}.yaml"
    console.print("")
    console.print("next steps:", style="bold")
    steps = [
        f"1. edit {runbook}: the owner, staging's url, your deploy command, the checks",
        "2. drillbook check     validates it, naming FILE:LINE:COLUMN for each problem",
        "3. drillbook plan      shows every step a release would run; changes nothing",
    ]
    problem = _git_problem(root)
    if problem is None:
        steps.append("4. git add -A && git commit, then: drillbook release")
    elif problem.message == f"not a git repository: {root}":
        steps.append("4. git init && git add -A && git commit, then: drillbook release")
        steps.append("   (this folder is in no git repository yet, and a release tags a commit)")
    else:
        # A repository git refuses (another user's, one a ceiling hides, a git that fails):
        # `git init` would not help, and may make a repository inside the repository.
        steps.append(f"4. first this: {problem.message}")
        if problem.hint:
            steps.append(f"   ({problem.hint})")
        steps.append("   then git add -A && git commit, then: drillbook release")
    kept = [a.path for a in plan.kept if a.path in ("tasks.py", TASKS_PACKAGE)]
    if kept:
        # Until the lines shown above are in it, the project's tasks list its own alone.
        steps.append(
            f"once the lines above end {kept[0]}, `invoke --list` shows the same tasks beside "
            "your own; `drillbook demo` shows a tour"
        )
    else:
        steps.append(
            "`invoke --list` shows the same tasks beside your own; `drillbook demo` shows a tour"
        )
    for line in steps:
        console.print(f"  {line}")


def _git_problem(here: Path) -> DrillbookError | None:
    """Why git cannot work in `here` (a release needs it: it tags a commit), or None."""
    from drillbook import gitops
    from drillbook.errors import DrillbookError

    try:
        gitops.repo_root(here)
    except DrillbookError as exc:
        return exc
    return None


def _refuse_inside_a_project(here: Path) -> None:
    """Refuse to start a project inside another: every task run from here would act on the
    nested one, and the outer project's history would look empty from here."""
    from drillbook.errors import DrillbookError, UsageError
    from drillbook.project import find_project_root

    if (here / "runbooks").is_dir():
        return  # this folder is a project already: init adds to it
    try:
        outer = find_project_root(here)
    except DrillbookError:
        return
    msg = f"{here} is inside the project at {outer}, which holds runbooks/ already"
    raise UsageError(
        msg,
        hint=f"run `drillbook init --service NAME` in {outer} to add a runbook there, or init "
        "in a folder outside it",
    )
