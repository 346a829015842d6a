"""The drillbook commands that drillbook prints, as a person must type them.

In a project of several runbooks, a command that acts on one service is refused without
`--service` (exit 2: which runbook?). Every command drillbook prints for a service, in its
output, its errors, its JSON, the rollback note and the tag message, gets the flag put in here,
so that the command as printed is the command that works.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Tasks that act on one service's runbook: with several runbooks they need `--service`.
SERVICE_TASKS = frozenset(
    ("deploy", "rollback", "rehearse", "release", "integration", "tag", "rollback-note", "plan")
)

# A task name ends where a flag, a quote, the end of a sentence or of the line begins: not in
# `drillbook rollback-note` (a task of its own) nor in a path such as `drillbook/release.py`.
_SERVICE_COMMAND = re.compile(
    r"(?<![\w./-])(drillbook (?:"
    + "|".join(sorted(SERVICE_TASKS, key=len, reverse=True))
    + r"))(?=[\s`'\";:,.)]|$)(?! --service)"
)


def first_release_undo(rollbacks: Iterable[str]) -> str:
    """How to undo a first release, which no command goes back from: its changes' own
    `rollback:` words, as the journal, history and the docs say it."""
    how = " ".join(text for text in rollbacks if text)
    return "no earlier version to go back to (first release)" + (f": {how}" if how else "")


#: The service whose commands this process prints, when its project has several runbooks.
_named: str | None = None


def several_runbooks(root: Path) -> bool:
    """Whether the project's runbooks/ holds more than one runbook."""
    from drillbook.runbook import is_runbook_name

    folder = root / "runbooks"
    try:
        return sum(1 for p in folder.iterdir() if is_runbook_name(p)) > 1
    except OSError:
        return False


def for_service(value: Any, service: str) -> Any:
    """`value` with `--service SERVICE` put into every drillbook command it holds that acts on
    one service (`drillbook rollback --env staging` -> `drillbook rollback --service shop
    --env staging`): in a project of several runbooks, the command as printed must work."""
    if isinstance(value, str):
        if "drillbook " not in value:
            return value
        return _SERVICE_COMMAND.sub(lambda m: f"{m.group(1)} --service {service}", value)
    if isinstance(value, dict):
        return {k: for_service(v, service) for k, v in value.items()}
    if isinstance(value, list):
        return [for_service(v, service) for v in value]
    return value


def name_service(root: Path, service: str | None) -> None:
    """Remember `service` for every command this process prints from here on, when the
    project at `root` has several runbooks (with one, the commands work as they are)."""
    global _named  # noqa: PLW0603 - one task a process, as the masker's remembered secrets
    _named = service if service and several_runbooks(root) else None


def as_typed(value: Any) -> Any:
    """`value` with the remembered service put into its drillbook commands (see `name_service`)."""
    return for_service(value, _named) if _named is not None else value


def service_named() -> str | None:
    """The service remembered by `name_service`, if any."""
    return _named
