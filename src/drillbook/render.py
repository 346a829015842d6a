"""Templates rendered in a jinja2 sandbox; a project's `templates/` overrides the defaults.

Runbook text reaches templates only as data, so `{{ ... }}` written in a runbook field is printed
as it is and never evaluated. Undefined names are errors, not empty strings.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drillbook.errors import UsageError
from drillbook.files import write_atomic
from drillbook.resources import resource

_BACKTICKS = re.compile("`+")

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

    from drillbook.secrets import Masker


@functools.cache
def environment(project_root: Path | None, *, autoescape: bool = False) -> SandboxedEnvironment:
    """One sandboxed environment per project and escaping mode, reused for every render."""
    from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    loaders = []
    if project_root is not None and (project_root / "templates").is_dir():
        loaders.append(FileSystemLoader(project_root / "templates"))
    loaders.append(FileSystemLoader(resource("templates")))
    env = SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # A run renders with the templates as they were when it started: no stat of the file
        # on every render (`docs` renders two pages per service).
        auto_reload=False,
    )
    from drillbook.model import format_duration

    env.filters["duration"] = format_duration
    env.filters["md_cell"] = md_cell
    env.filters["md_code"] = md_code
    return env


def md_cell(value: object) -> str:
    """Text made safe for one Markdown table cell: pipes escaped, lines joined."""
    return " ".join(str(value).split()).replace("|", "\\|")


def md_code(value: object) -> str:
    """Text as one Markdown code span, fenced with more backticks than it holds."""
    text = " ".join(str(value).splitlines())
    ticks = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _longest_backtick_run(text: str) -> int:
    if "`" not in text:
        return 0
    return max(len(run) for run in _BACKTICKS.findall(text))


def render(
    name: str,
    context: dict[str, Any],
    *,
    project_root: Path | None = None,
    masker: Masker | None = None,
    autoescape: bool | None = None,
) -> str:
    """Render template `name` with `context`; secrets masked in the result."""
    from jinja2 import TemplateError, TemplateNotFound

    if autoescape is None:
        autoescape = name.endswith((".html", ".html.j2", ".svg.j2"))
    env = environment(project_root.resolve() if project_root else None, autoescape=autoescape)
    try:
        text = env.get_template(name).render(**context)
    except TemplateNotFound:
        msg = f"template {name!r} not found in the project's templates/ or drillbook's defaults"
        raise UsageError(msg) from None
    except TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}" if getattr(exc, "lineno", None) else name
        msg = f"template {where} failed to render: {exc}"
        raise UsageError(msg, hint="fix the template; undefined names are errors") from None
    return masker.mask(text) if masker is not None else text


def render_to(
    path: Path,
    name: str,
    context: dict[str, Any],
    *,
    project_root: Path | None = None,
    masker: Masker | None = None,
) -> Path:
    """Render a template and write it atomically."""
    text = render(name, context, project_root=project_root, masker=masker)
    return write_atomic(path, text)
