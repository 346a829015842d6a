"""The project a task acts on: the folder that holds `runbooks/`."""

from __future__ import annotations

from pathlib import Path

from drillbook.errors import UsageError


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder, `start` (default: the working directory) or above it, with `runbooks/`.

    A task run from a project's `src/` or `config/` acts on the project, as git acts on its
    repository from a subfolder. The search stops at the top of a git repository, so a project
    is never taken from a folder around this one's repository. Raises `UsageError` (exit 2) when
    there is none: a task that reads journals would otherwise answer "nothing happened".
    """
    start = (start or Path.cwd()).absolute()
    top = ""
    for folder in (start, *start.parents):
        if (folder / "runbooks").is_dir():
            return folder
        if (folder / ".git").exists():
            if folder != start:
                top = f" up to {folder}, the top of its git repository"
            break
    msg = f"no runbooks/ folder in {start} or above it{top}; drillbook acts on a project's runbooks"
    raise UsageError(msg, hint="cd into the project, or run `drillbook init` to start one here")
