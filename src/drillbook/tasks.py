"""drillbook's invoke tasks: the only layer that prints and chooses exit codes.

A project's own `tasks.py` exposes these with `from drillbook.tasks import namespace`; the
`drillbook` console script runs the same collection. Task bodies import the library lazily so
that `drillbook --help` stays as quick as importing invoke.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke import Collection, Context, Exit, task

from drillbook.cli import REST_ATTRIBUTE
from drillbook.console import Console
from drillbook.errors import EXIT_INVALID, DrillbookError, InvalidInput

F = TypeVar("F", bound=Callable[..., Any])


def drill_task(*, rest: str | None = None, **options: Any) -> Callable[[F], Any]:
    """An invoke task whose DrillbookErrors become a clear message and the right exit code."""

    def wrap(fn: F) -> Any:
        @functools.wraps(fn)
        def body(c: Context, *args: Any, **kwargs: Any) -> Any:
            name = fn.__name__.replace("_", "-")
            try:
                return fn(c, *args, **kwargs)
            except DrillbookError as exc:
                report_error(exc, task_name=name)
                raise Exit(code=exc.exit_code) from None
            except (Exit, KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                # A bug, not an input problem; the traceback helps only the maintainers.
                if os.environ.get("DRILLBOOK_DEBUG"):
                    raise
                Console().error(
                    f"drillbook {name}: internal error: {type(exc).__name__}: {exc}\n"
                    "  hint: this is a bug in drillbook; run again with DRILLBOOK_DEBUG=1 for "
                    "the traceback and report it"
                )
                raise Exit(code=EXIT_INVALID) from None

        if rest is not None:
            setattr(body, REST_ATTRIBUTE, rest)
        return task(**options)(body)

    return wrap


def report_error(exc: DrillbookError, *, task_name: str, console: Console | None = None) -> None:
    """Show an error the way every task does: what, where, the fix, whether a retry is safe."""
    console = console or Console(masker=_masker())
    if isinstance(exc, InvalidInput):
        for problem in exc.problems:
            console.error(str(problem))
        files = len({p.file for p in exc.problems})
        count = len(exc.problems)
        console.error(
            f"drillbook {task_name}: {count} problem{'s' if count != 1 else ''} in "
            f"{files} file{'s' if files != 1 else ''}; nothing ran"
        )
        return
    console.error(f"drillbook {task_name}: {exc.message}")
    if exc.hint:
        console.error(f"  hint: {exc.hint}")
    if exc.retry_safe is not None:
        console.error(f"  retry safe: {'yes' if exc.retry_safe else 'no'}")


def _masker() -> Any:
    try:
        from drillbook.secrets import Masker
    except ImportError:  # only while the package is half-installed
        return None
    return Masker.from_environ()


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
    from drillbook.runbook import find_runbook_files, load_runbook

    _require_format(format)
    console = Console()
    targets = [Path(p) for p in path] if path else [Path("runbooks")]
    files = find_runbook_files(targets)
    results: list[dict[str, Any]] = []
    for file in files:
        try:
            loaded = load_runbook(file)
        except InvalidInput as exc:
            results.append(
                {
                    "file": str(file),
                    "valid": False,
                    "service": None,
                    "problems": [p.as_dict() for p in exc.problems],
                    "_problems": exc.problems,
                }
            )
            continue
        rb = loaded.runbook
        results.append(
            {
                "file": str(file),
                "valid": True,
                "service": rb.service,
                "releases": [r.version for r in rb.releases],
                "problems": [],
            }
        )
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


def _require_format(value: str) -> None:
    from drillbook.errors import UsageError

    if value not in ("text", "json"):
        msg = f"--format expects text or json, got {value!r}"
        raise UsageError(msg)


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


namespace = Collection(check, schema)
