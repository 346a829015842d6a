"""`history`: what changed, newest first, with owners and the command that undoes it."""

from __future__ import annotations

import json
from pathlib import Path

from invoke import Context

from drillbook.console import Console
from drillbook.tasks._base import drill_task, require_format


@drill_task(
    help={
        "since": "how far back: 30m, 24h (default), 7d, or all",
        "env": "only runs on this environment",
        "format": "text (default, a table) or json (a list of objects)",
    }
)
def history(c: Context, since: str = "24h", env: str | None = None, format: str = "text") -> None:
    """What changed: releases, deploys, rollbacks and rehearsals, owners and undo commands."""
    from drillbook.history import entries, parse_since, table
    from drillbook.secrets import Masker

    require_format(format)
    console = Console(masker=Masker.from_environ())
    cutoff = parse_since(since)
    rows = entries(Path.cwd(), since=cutoff, env=env)
    if format == "json":
        console.print(json.dumps([e.as_dict() for e in rows], indent=2))
        return
    span = "since the first journal" if cutoff is None else f"in the last {since.strip()}"
    where = f" on {env}" if env else ""
    if not rows:
        console.print(f"no releases, deploys, rollbacks or rehearsals{where} {span}")
        if cutoff is not None:
            console.print("  hint: `drillbook history --since 7d` or `--since all` looks further")
        return
    count = f"{len(rows)} run{'s' if len(rows) != 1 else ''}"
    console.print(f"what changed{where} {span}: {count}, newest first", style="bold")
    for line in table(rows):
        console.print(line)
