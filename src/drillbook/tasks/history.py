"""`history`: what changed, newest first, with owners and the command that undoes it."""

from __future__ import annotations

import json
from typing import Any

from invoke import Context

from drillbook.console import Console
from drillbook.tasks._base import drill_task, emit_json, require_format


@drill_task(
    help={
        "since": "how far back: 30m, 24h (default), 7d, a UTC date or time such as "
        "2026-11-23T14:30, or all",
        "env": "only runs on this environment",
        "format": "text (default, a table) or json (a list of objects)",
    }
)
def history(c: Context, since: str = "24h", env: str | None = None, format: str = "text") -> None:
    """What changed: releases, deploys, rollbacks and rehearsals, owners and undo commands."""
    from drillbook.history import entries, parse_since, since_words, table
    from drillbook.project import find_project_root
    from drillbook.secrets import Masker

    require_format(format)
    console = Console(masker=Masker.from_environ())
    cutoff = parse_since(since)
    root = find_project_root()
    rows = entries(root, since=cutoff, env=env)
    if env is not None and not rows:
        unread = _require_known_env(root, env)
        if unread:
            console.error(
                f"note: {', '.join(unread)} cannot be read (see `drillbook check`), so whether "
                f"{env!r} is one of its environments is not known"
            )
    if format == "json":
        emit_json(json.dumps([e.as_dict() for e in rows], indent=2), console)
        return
    span = since_words(since, cutoff)
    where = f" on {env}" if env else ""
    if not rows:
        console.print(f"no releases, deploys, rollbacks or rehearsals{where} {span}")
        if cutoff is not None:
            # Said from what the journals hold: a person under pressure must not widen the span
            # again and again for an environment that never ran, nor be offered a shorter one.
            earlier = len(entries(root, since=None, env=env))
            if earlier:
                runs = f"{earlier} earlier run{'s' if earlier != 1 else ''}"
                also = f" --env {env}" if env else ""
                console.print(f"  hint: {runs}: `drillbook history --since all{also}` lists them")
            else:
                console.print(f"  no journal of this project holds one{where} at all")
        return
    count = f"{len(rows)} run{'s' if len(rows) != 1 else ''}"
    console.print(f"what changed{where} {span}: {count}, newest first", style="bold")
    for line in table(rows):
        console.print(line)


def _require_known_env(root: Any, env: str) -> list[str]:
    """Refuse an environment that no runbook declares and no journal names: a typo, surely.

    Returns the runbooks that cannot be read (relative paths) when `env` is not known: then it
    is not refused, since it may be one of theirs.
    """
    from drillbook.errors import DrillbookError, UsageError
    from drillbook.journal import list_runs
    from drillbook.runbook import find_runbook_files, load_runbook

    known = {str(info.first.get("env")) for info in list_runs(root) if info.first}
    unread: list[str] = []
    for file in find_runbook_files([root / "runbooks"]):
        try:
            known.update(load_runbook(file, root=root).runbook.environments)
        except DrillbookError:  # a broken runbook is `check`'s to report
            unread.append(
                file.relative_to(root).as_posix() if file.is_relative_to(root) else str(file)
            )
    known.discard("None")
    if env in known:
        return []
    if not unread:
        msg = f"no environment {env!r} in the runbooks or the journals (known: "
        msg += ", ".join(sorted(known)) + ")" if known else "none)"
        raise UsageError(msg)
    return unread
