"""`check` and `schema`: the runbook format, validated and exported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from invoke import Context, Exit

from drillbook.console import Console
from drillbook.errors import InvalidInput
from drillbook.tasks._base import (
    drill_task,
    require_format,
)

# --- check ------------------------------------------------------------------------------------


@drill_task(
    rest="path",
    iterable=["path"],
    help={
        "path": "a runbook file or a folder of them (repeatable; default: runbooks/)",
        "format": "text (default) or json",
    },
)
def check(c: Context, path: list[str] | None = None, format: str = "text") -> None:
    """Validate runbooks: every problem with FILE:LINE:COLUMN, exit 2 if any."""
    from drillbook import parallel
    from drillbook.runbook import find_runbook_files

    require_format(format)
    console = Console()
    targets = [Path(p) for p in path] if path else [Path("runbooks")]
    files = find_runbook_files(targets)
    results = parallel.map_ordered(_check_file, files)
    invalid = [r for r in results if not r["valid"]]
    problems = sum(len(r["problems"]) for r in results)
    summary = (
        f"{len(results)} runbook{'s' if len(results) != 1 else ''} checked: "
        f"{len(results) - len(invalid)} valid, {len(invalid)} invalid"
        + (f" ({problems} problem{'s' if problems != 1 else ''})" if problems else "")
    )
    if format == "json":
        payload = {
            "ok": not invalid,
            "checked": len(results),
            "valid": len(results) - len(invalid),
            "invalid": len(invalid),
            "files": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
            "summary": summary,
        }
        console.print(json.dumps(payload, indent=2))
    else:
        for result in results:
            if result["valid"]:
                releases = ", ".join(result["releases"]) or "no releases"
                console.print(
                    f"{console.paint('ok', 'green')}   {result['file']} "
                    f"({result['service']}; {releases})"
                )
            else:
                for problem in result["_problems"]:
                    console.print(str(problem))
        console.print(summary, style="bold" if not invalid else "red")
    if invalid:
        raise Exit(code=InvalidInput.exit_code)


def _check_file(file: Path) -> dict[str, Any]:
    """What `check` reports of one runbook; a file it cannot read at all raises."""
    from drillbook.runbook import load_runbook

    try:
        loaded = load_runbook(file)
    except InvalidInput as exc:
        return {
            "file": str(file),
            "valid": False,
            "service": None,
            "problems": [p.as_dict() for p in exc.problems],
            "_problems": exc.problems,
        }
    rb = loaded.runbook
    return {
        "file": str(file),
        "valid": True,
        "service": rb.service,
        "releases": [r.version for r in rb.releases],
        "problems": [],
    }


# --- schema -----------------------------------------------------------------------------------


@drill_task(help={"out": "where to write the schema (default: print it)"})
def schema(c: Context, out: str | None = None) -> None:
    """Print (or write) the JSON Schema of the runbook format, generated from the model."""
    from drillbook.model import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
    if out is None:
        Console().print(text.rstrip("\n"))
        return
    from drillbook.files import write_atomic

    write_atomic(Path(out), text)
    Console().print(f"wrote {out}")
