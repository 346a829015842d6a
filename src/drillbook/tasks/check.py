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
    emit_json,
    require_format,
    require_path,
)

# --- check ------------------------------------------------------------------------------------


@drill_task(
    rest="path",
    iterable=["path"],
    help={
        "path": (
            "PATH: a runbook file or a folder of them; repeatable (default: the project's "
            "runbooks/); `drillbook check PATH...` takes them as bare words too"
        ),
        "format": "text (default) or json",
    },
)
def check(c: Context, path: list[str] | None = None, format: str = "text") -> None:
    """Validate runbooks (check [PATH...]): every problem with FILE:LINE:COLUMN, exit 2 if any."""
    from drillbook import parallel
    from drillbook.runbook import find_runbook_files
    from drillbook.secrets import Masker

    require_format(format)
    for typed in path or []:
        require_path(typed, "PATH")
    # Problems quote what they found, and a found value may be a secret of the environment.
    console = Console(masker=Masker.from_environ())
    targets = [Path(p) for p in path] if path else [_project_runbooks()]
    files = find_runbook_files(targets)
    results = parallel.map_ordered(_check_file, files)
    warnings = _one_runbook_a_service(results)
    templates = _template_problems(files)
    invalid = [r for r in results if not r["valid"]]
    problems = sum(len(r["problems"]) for r in results)
    summary = (
        f"{len(results)} runbook{'s' if len(results) != 1 else ''} checked: "
        f"{len(results) - len(invalid)} valid, {len(invalid)} invalid"
        + (f" ({problems} problem{'s' if problems != 1 else ''})" if problems else "")
    )
    if templates:
        summary += f"; {len(templates)} template problem{'s' if len(templates) != 1 else ''}"
    if format == "json":
        payload = {
            "ok": not invalid and not templates,
            "checked": len(results),
            "valid": len(results) - len(invalid),
            "invalid": len(invalid),
            "files": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
            "warnings": [w.as_dict() for w in warnings],
            "templates": [t.as_dict() for t in templates],
            "summary": summary,
        }
        emit_json(json.dumps(payload, indent=2), console)
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
        for problem in templates:
            console.print(str(problem))
        for warning in warnings:
            console.print(f"warning: {warning}", style="yellow")
        console.print(summary, style="bold" if not (invalid or templates) else "red")
    if invalid or templates:
        raise Exit(code=InvalidInput.exit_code)


def _template_problems(files: list[Path]) -> list[Any]:
    """What compiling the own templates of the runbooks' projects finds wrong (`Problem`s):
    a release, a rehearsal or `docs` would refuse to start for it."""
    from drillbook.runbook import project_root_for

    roots = dict.fromkeys(project_root_for(file).resolve() for file in files)
    if not any((root / "templates").is_dir() for root in roots):
        return []  # no jinja2 to import: most projects keep the defaults
    from drillbook.render import template_problems

    return [problem for root in roots for problem in template_problems(root)]


def _one_runbook_a_service(results: list[dict[str, Any]]) -> list[Any]:
    """Mark a runbook invalid when another one of its project declares the same service; and
    warn, once for each format, of services of one project that tag their releases alike.

    Tasks find a service's runbook by its name; two would make `release --service S` act on
    whichever was found first. A tag names a released version; shared, one service's tags
    may be taken for the other's (its previous version, its rollback target) when their
    version numbers meet. That is a warning, not a failure: it is safe while they do not.
    """
    from drillbook.errors import Problem
    from drillbook.runbook import project_root_for

    first: dict[tuple[Path, str], str] = {}
    tagging: dict[tuple[Path, str], list[dict[str, Any]]] = {}
    roots: dict[Path, Path] = {}  # a folder's project, resolved once (not once a runbook)
    for result in results:
        if not result["valid"]:
            continue
        folder = Path(result["file"]).parent
        if folder not in roots:
            roots[folder] = project_root_for(Path(result["file"])).resolve()
        root = roots[folder]
        key = (root, result["service"])
        if key not in first:
            first[key] = result["file"]
            tagging.setdefault((root, result["_tag"]), []).append(result)
            continue
        line, column = _top_line(Path(result["file"]), "service")
        problem = Problem(
            result["file"],
            line,
            column,
            "service",
            f"expected one runbook per service, got {result['service']!r} here and in {first[key]}",
            "rename one service, or merge the two runbooks",
        )
        result.update(valid=False, problems=[problem.as_dict()], _problems=[problem])
    warnings = []
    for (_, tag), alike in tagging.items():
        if len(alike) < 2:
            continue
        names = [r["service"] for r in alike]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        line, column = _top_line(Path(alike[0]["file"]), "tag")
        warnings.append(
            Problem(
                alike[0]["file"],
                line,
                column,
                "tag",
                f"{len(alike)} services of this project tag their releases {tag!r} ({shown}): "
                "a version of one may be taken for another's",
                'give each a format of its own, such as `tag: "{service}/v{version}"`',
            )
        )
    return warnings


def _top_line(file: Path, key: str) -> tuple[int, int]:
    """Where the top-level `key:` value is written (1, 1 when it is not written: a default)."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return 1, 1
    head = f"{key}:"
    for number, text in enumerate(lines, start=1):
        if text.startswith(head):
            value = text[len(head) :]
            return number, len(head) + len(value) - len(value.lstrip()) + 1
    return 1, 1


def _project_runbooks() -> Path:
    """The project's runbooks/ folder, as a path from here (`runbooks`, `../runbooks`)."""
    import os

    from drillbook.project import find_project_root

    return Path(os.path.relpath(find_project_root() / "runbooks"))


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
        "_tag": rb.tag_format,
    }


# --- schema -----------------------------------------------------------------------------------


@drill_task(
    help={"out": "a file, or a folder for runbook-v1.json, to write it to (default: print)"}
)
def schema(c: Context, out: str | None = None) -> None:
    """Print (or write) the JSON Schema of the runbook format, generated from the model."""
    from drillbook.model import json_schema

    require_path(out, "--out")
    text = json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
    if out is None:
        Console().print(text.rstrip("\n"))
        return
    from drillbook.errors import PreconditionFailed
    from drillbook.files import write_atomic

    target = Path(out)
    if target.is_dir() or out.endswith(("/", "\\")):
        target = target / "runbook-v1.json"
    try:
        write_atomic(target, text, into_special=True)
    except OSError as exc:
        msg = f"cannot write the schema to {target}: {exc.strerror or exc}"
        raise PreconditionFailed(msg, hint="choose another --out, or fix the folder") from None
    Console().print(f"wrote {target}")
