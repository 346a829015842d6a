"""Templates rendered in a jinja2 sandbox; a project's `templates/` overrides the defaults.

Runbook text reaches templates only as data, so `{{ ... }}` written in a runbook field is printed
as it is and never evaluated. Undefined names are errors, not empty strings.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import stat
import sys
import time
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drillbook import __version__
from drillbook.errors import Problem, UsageError
from drillbook.files import write_atomic
from drillbook.resources import resource

_BACKTICKS = re.compile("`+")

#: The most text one render may make. A page or a note holds its runbook's text a few times
#: over, and a runbook is at most a few MiB; far more is a template looping out of control,
#: stopped before it fills the memory or the disk.
MAX_RENDER_CHARS = 32 * 2**20
#: The longest one render may take. A page takes milliseconds; a template that loops for
#: minutes would hold a release's preflight or a docs build until someone stops it.
RENDER_SECONDS = 30.0


class _RenderLimit(Exception):
    """A render went past `MAX_RENDER_CHARS` or `RENDER_SECONDS`."""


class _TemplateRefused(Exception):
    """A project's template that cannot be used as it is: `name` as asked for, the file as
    shown (`templates/NAME`) and its line when known, what is wrong, and what to do."""

    def __init__(
        self, name: str, detail: str, hint: str, *, shown: str | None = None, line: int = 0
    ) -> None:
        where = f"template {shown}{f':{line}' if line else ''} " if shown else ""
        super().__init__(where + detail)
        self.name, self.detail, self.hint, self.shown, self.line = name, detail, hint, shown, line


#: When the render running in this process must end (`time.monotonic`); checked on each
#: call a template makes, which is where its loops get their items (`range`, `.items()`).
_deadline = [float("inf")]
#: The masker of the render running in this process, for `_shown`.
_masker: list[Masker | None] = [None]
#: What a page must not hold as it is: C0 controls but tab and newline, DEL, C1, and the
#: bidirectional controls. An escape sequence in a runbook's text would repaint the terminal
#: of whoever reads the page with `cat`; an override would show the text after it reversed.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

if TYPE_CHECKING:
    from jinja2 import BaseLoader, Template
    from jinja2.bccache import Bucket, BytecodeCache
    from jinja2.sandbox import SandboxedEnvironment

    from drillbook.secrets import Masker


@functools.cache
def environment(project_root: Path | None, *, autoescape: bool = False) -> SandboxedEnvironment:
    """One sandboxed environment per project and escaping mode, reused for every render."""
    from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined

    loaders: list[BaseLoader] = []
    if project_root is not None and (project_root / "templates").is_dir():
        loaders.append(_project_loader(project_root))
    loaders.append(FileSystemLoader(resource("templates")))
    env = _sandbox_class()(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=autoescape,
        # A run renders with the templates as they were when it started: no stat of the file
        # on every render (`docs` renders two pages per service).
        auto_reload=False,
        bytecode_cache=bytecode_cache(autoescape),
        **_OPTIONS,
    )
    from drillbook.model import format_duration

    env.filters["duration"] = format_duration
    env.filters["md_cell"] = md_cell
    env.filters["md_code"] = md_code
    env.filters["md_text"] = md_text
    env.filters["md_link"] = md_link
    return env


def overridden(project_root: Path, name: str) -> bool:
    """Whether the project's `templates/` holds something named `name`: its own template, or
    what stands in its place (a folder, a broken link) that a render of `name` refuses."""
    # jinja2 reads "/x" as "x": joined as it is, the name would leave templates/ for "/x".
    return os.path.lexists(project_root / "templates" / name.lstrip("/"))


def _project_loader(project_root: Path) -> BaseLoader:
    """The loader of a project's `templates/`, which holds its files to the project's rules.

    jinja2's own loader reads any file that a link in the folder points to and passes over a
    name that is a folder or a broken link, so the default was used without a word. Here a
    name the folder holds is the project's template or an error: a link that leads out of the
    project (as for every path of a runbook), something that is not a file, text that is not
    UTF-8. A UTF-8 byte order mark, as some editors write, is not part of the text.
    """
    from jinja2 import BaseLoader, TemplateNotFound

    folder = project_root / "templates"
    real_root = os.path.realpath(project_root)

    class ProjectLoader(BaseLoader):
        def get_source(self, environment: Any, template: str) -> tuple[str, str, Any]:
            pieces = [piece for piece in template.split("/") if piece not in ("", ".")]
            if ".." in pieces:
                raise _TemplateRefused(
                    template,
                    f"template name {template!r} leads out of templates/",
                    "a template is named by its path inside templates/, without '..'",
                )
            path = folder.joinpath(*pieces)
            if not pieces or not os.path.lexists(path):  # no name ("", "."): not templates/
                raise TemplateNotFound(template)
            shown = os.path.relpath(path, project_root)
            real = os.path.realpath(path)
            if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
                raise _TemplateRefused(
                    template,
                    f"resolves to {real}, outside the project {real_root}; expected a file "
                    "inside the project",
                    "a symlink may lead out; copy the template into templates/",
                    shown=shown,
                )
            try:
                info = path.stat()
                if not stat.S_ISREG(info.st_mode):
                    kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
                    raise _TemplateRefused(
                        template,
                        f"is {kind}, expected a file",
                        f"remove {shown}, or put the template there under that name",
                        shown=shown,
                    )
                data = path.read_bytes()
            except FileNotFoundError:
                raise _TemplateRefused(
                    template,
                    f"is a symlink to {path.readlink()}, which does not exist; expected a file",
                    "point the link at a template inside the project, or remove it",
                    shown=shown,
                ) from None
            except OSError as exc:
                raise _TemplateRefused(
                    template,
                    f"cannot be read: {exc.strerror or exc}",
                    f"make {shown} readable, then run the command again",
                    shown=shown,
                ) from None
            try:
                source = data.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                # The error's own bytes: without the byte order mark, which it does not count.
                text = bytes(exc.object)
                line = text.count(b"\n", 0, exc.start) + 1
                raise _TemplateRefused(
                    template,
                    f"is not UTF-8 text: byte 0x{text[exc.start]:02x} ({exc.reason}); "
                    "expected UTF-8",
                    "save the template as UTF-8",
                    shown=shown,
                    line=line,
                ) from None
            mtime = info.st_mtime

            def uptodate() -> bool:
                try:
                    return path.stat().st_mtime == mtime
                except OSError:
                    return False

            return source, os.path.normpath(path), uptodate

    return ProjectLoader()


@functools.cache
def _sandbox_class() -> type[SandboxedEnvironment]:
    """jinja2's sandbox, with `a.b` on a plain dict looked up without a raised exception."""
    from jinja2.sandbox import SandboxedEnvironment

    dict_names = frozenset(dir(dict))

    class Sandbox(SandboxedEnvironment):
        # Routed through `call_binop`, so that `*` and `**` are bounded; jinja2 then also
        # leaves them out of its constant folding, which would run them while compiling.
        intercepted_binops = frozenset({"*", "**"})

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            if time.monotonic() > _deadline[0]:
                raise _RenderLimit(f"took over {RENDER_SECONDS:g} s")
            return super().call(__context, __obj, *args, **kwargs)

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def getattr(self, obj: Any, attribute: str) -> Any:
            # jinja2 tries the attribute first and the key after its AttributeError. A plain
            # dict has no attribute but dict's own, so for any other name the key is the
            # answer it would reach: taken at once, the same result, at a sixth of the cost
            # (a docs page looks up about 500 keys).
            if type(obj) is dict and attribute not in dict_names:
                try:
                    return obj[attribute]
                except KeyError:
                    pass
            return super().getattr(obj, attribute)

    return Sandbox


def _shown(value: str, masker: Masker | None = None) -> str:
    """Text with its control characters written as their escapes (`\\x1b`, `\\u202e`); a
    secret that one splits is masked first, from end to end. `masker`: else the render's."""
    if _CONTROLS.search(value) is None:
        return value
    from drillbook.expectations import printable

    masker = masker or _masker[0]
    return printable(masker.mask_unseen(value) if masker else value, lines=True)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse `text * n` and `a ** b` whose result would be past what a render may make."""
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
            if sized and len(seq) * count > MAX_RENDER_CHARS:
                raise _RenderLimit(f"repeats a text or list {count:,} times")
    elif _huge_power(left, right):
        raise _RenderLimit(f"raises {left} to the power {right:,}")


def _huge_power(left: Any, right: Any) -> bool:
    """Whether `left ** right` has more bits than a render may make (it would take minutes)."""
    if not (isinstance(left, int) and isinstance(right, int)) or right <= 0 or abs(left) < 2:
        return False
    return right * left.bit_length() > 8 * MAX_RENDER_CHARS


def _bounded(template: Template, context: dict[str, Any]) -> str:
    """`template.render(**context)`, done as jinja2 does it, stopped at `MAX_RENDER_CHARS`."""
    pieces = template.root_render_func(template.new_context(dict(context)))
    out: list[str] = []
    size = 0
    try:
        # Counted 512 pieces at a time, so that the count costs little next to the render
        # (a docs page is about 350 pieces).
        while chunk := list(islice(pieces, 512)):
            size += sum(map(len, chunk))
            if size > MAX_RENDER_CHARS:
                raise _RenderLimit(f"made over {MAX_RENDER_CHARS // 2**20} MiB of text")
            out += chunk
    except Exception:
        # As `render` does: the traceback is rewritten so that its frames name the
        # template's file and line, and the error is raised again.
        template.environment.handle_exception()
    return "".join(out)


#: The filters drillbook adds to jinja2's (`environment`), as a message names them.
FILTERS = ("duration", "md_cell", "md_code", "md_text", "md_link")

#: How every template is read; part of the bytecode cache's key, since they shape the code.
_OPTIONS = {"keep_trailing_newline": True, "trim_blocks": True, "lstrip_blocks": True}


def bytecode_cache(autoescape: bool) -> BytecodeCache | None:
    """Templates compiled once and kept between runs, or None when no safe folder is found.

    Compiling the rollback note's template costs about as much as rendering it a hundred
    times, and a run renders it once. The compiled code is loaded like a `.pyc`, so it lives
    only in a folder that this user owns and nobody else can write (the user's cache folder,
    `$XDG_CACHE_HOME/drillbook`), never in the project: a cloned repository cannot bring code
    that would run. The folder's name holds every version and option the code depends on, and
    jinja2 checks each entry against its template's source, so an edited template is compiled
    again. The sandbox is not weakened: its checks run when the code runs.
    """
    from jinja2 import __version__ as jinja_version
    from jinja2.bccache import FileSystemBytecodeCache

    try:
        # A relative XDG_CACHE_HOME is invalid by the XDG spec and ignored; taken as it is, it
        # would put the compiled code in whatever folder the command runs in: the project.
        xdg = Path(os.environ.get("XDG_CACHE_HOME", ""))
        base = (xdg if xdg.is_absolute() else Path.home() / ".cache") / "drillbook"
        if not base.is_absolute():  # a relative HOME: no folder known to be the user's own
            return None
        # "page": code compiled with a `finalize` (once in use) must not be read.
        shape = (__version__, jinja_version, sys.version_info[:2], autoescape, _OPTIONS, "page")
        key = hashlib.sha256(repr(shape).encode()).hexdigest()[:16]
        folder = base / f"templates-{key}"
        base.parent.mkdir(parents=True, exist_ok=True)
        # Made 0700, not as the umask says: under 002 (a user's default on many systems) it
        # was group-writable, so never private enough to be used, and every run compiled.
        base.mkdir(mode=0o700, exist_ok=True)
        folder.mkdir(mode=0o700, exist_ok=True)
        if not (_private(base, 0o022) and _private(folder, 0o077)):
            return None
    except (OSError, RuntimeError):  # no home, or a cache folder that cannot be made
        return None

    class QuietCache(FileSystemBytecodeCache):
        """A cache whose failures (a full disk, a folder removed) only cost a compile."""

        def load_bytecode(self, bucket: Bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except (OSError, ValueError, EOFError):
                bucket.reset()

        def dump_bytecode(self, bucket: Bucket) -> None:
            with contextlib.suppress(OSError):
                super().dump_bytecode(bucket)

    return QuietCache(str(folder), "%s.jinja2")


def _private(folder: Path, forbidden: int) -> bool:
    """Whether `folder` is a real folder of this user's, without the `forbidden` mode bits."""
    info = folder.lstat()
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not stat.S_IMODE(info.st_mode) & forbidden
    )


def md_cell(value: object) -> str:
    """Text made safe for one Markdown table cell: pipes escaped, lines joined."""
    return " ".join(_shown(str(value)).split()).replace("|", "\\|")


#: Outside code spans, what Markdown would read as its own: raw HTML and autolinks (`<`), links
#: (`[`, `]`), a backtick no run closes (three open a code block), entities (`&amp;`), and a
#: backslash that would escape what follows it.
_MD_ALWAYS = re.compile(r"[<\[\]`]|&(?=#?[0-9A-Za-z]+;)|\\(?=[!-/:-@\[-`{-~]|$)")
#: Emphasis and strike-through (`*`, `_`, `~`): a run of them stands for itself only between
#: spaces, and `_` also inside a word (`payment_id`); the mask `***` between words stays.
_MD_RUNS = re.compile(r"\*+|_+|~+")
#: What makes a line that text starts a heading, a quote, a list or a rule.
_MD_LINE_START = re.compile(r"[#>+=-]|\d{1,9}(?=[.)](\s|$))")
#: Any character that `md_text` may escape.
_MD_SPECIAL = re.compile(r"[<\[\]`&\\*_~#]")
#: A heading's closing `#`s, which a heading would drop.
_MD_TRAILING_HASHES = re.compile(r"(?<=\s)#+$")


def md_text(value: object, *, starts_line: bool = False) -> str:
    """Runbook text as one line of Markdown that reads as written.

    Its lines are joined, so no heading, list or table row starts inside it; raw HTML, links,
    images, entities and emphasis are escaped, so a `<script>`, a `[link](javascript:...)` or a
    `*.log` shows as typed. Code spans are kept: they show their text as typed already.
    `starts_line`: the text begins a line of the page (a description, release notes).
    """
    # Controls first (`_shown`): escaped after, a secret they split would no longer be seen.
    escaped = text = " ".join(_shown(str(value)).split())
    if _MD_SPECIAL.search(text):  # most text holds none: a docs page shows a few hundred
        out: list[str] = []
        at = 0
        for start, end in _code_spans(text):
            out.append(_md_escape(text[at:start]))
            out.append(text[start:end])
            at = end
        out.append(_md_escape(text[at:]))
        escaped = _MD_TRAILING_HASHES.sub(lambda m: "\\" + m.group(), "".join(out))
    if starts_line and (lead := _MD_LINE_START.match(escaped)):
        cut = lead.end() if lead.group().isdigit() else 0
        escaped = f"{escaped[:cut]}\\{escaped[cut:]}"
    return escaped


def _md_escape(text: str) -> str:
    """`md_text` of a piece of text that holds no code span."""
    text = _MD_ALWAYS.sub(lambda m: "\\" + m.group(), text)

    def run(match: re.Match[str]) -> str:
        before = text[match.start() - 1] if match.start() else ""
        after = text[match.end()] if match.end() < len(text) else ""
        if before.isspace() and after.isspace():
            return match.group()
        if match.group()[0] == "_" and before.isalnum() and after.isalnum():
            return match.group()
        return "".join("\\" + char for char in match.group())

    return _MD_RUNS.sub(run, text)


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` holds code spans, as Markdown finds them: a run of backticks up to the
    next run of as many; a run that no such run closes is text."""
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(text)]
    # The next run of the same length, for each run: found once, so that text of many
    # backticks costs one pass, not one search per run.
    closer: list[int | None] = [None] * len(runs)
    last: dict[int, int] = {}
    for i in reversed(range(len(runs))):
        length = runs[i][1] - runs[i][0]
        closer[i] = last.get(length)
        last[length] = i
    spans = []
    i = 0
    while i < len(runs):
        j = closer[i]
        if j is None:
            i += 1
            continue
        spans.append((runs[i][0], runs[j][1]))
        i = j + 1
    return spans


def md_link(value: object) -> str:
    """A link of a change: an autolink when it is a web address, else its text as text."""
    text = _shown(str(value))
    web = text.startswith(("https://", "http://"))
    if web and not any(char.isspace() or char in "<>" or not char.isprintable() for char in text):
        return f"<{text}>"
    return md_text(text)


def md_code(value: object) -> str:
    """Text as one Markdown code span, fenced with more backticks than it holds."""
    text = " ".join(_shown(str(value)).splitlines())
    ticks = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _longest_backtick_run(text: str) -> int:
    if "`" not in text:
        return 0
    return max(len(run) for run in _BACKTICKS.findall(text))


def template_problems(project_root: Path) -> list[Problem]:
    """What is wrong in the project's own templates that reading them finds: syntax, an
    unknown filter or test, a file that is not UTF-8, a link out of the project, a folder.

    Only the templates drillbook renders are read: the project's files named like one of its
    defaults, and the files of templates/ that those include, import or extend. A templates/
    folder may hold other tools' templates too (Flask's pages, Ansible's `*.j2` with filters
    of their own), which are none of drillbook's business. Each is compiled, not rendered:
    what a template does with its data (an undefined name) is found by the command that
    renders it, before its first step.
    """
    from jinja2 import TemplateNotFound, TemplateSyntaxError, nodes

    folder = project_root / "templates"
    if not folder.is_dir():
        return []
    root = project_root.resolve()
    defaults = sorted(p.name for p in resource("templates").iterdir() if p.suffix == ".j2")
    todo = [name for name in defaults if overridden(root, name)]
    seen: set[str] = set()
    problems: list[Problem] = []
    while todo:
        name = todo.pop(0)
        if name in seen or not overridden(root, name):  # a default's own: drillbook's, tested
            continue
        seen.add(name)
        shown = os.path.relpath(folder / name)
        env = environment(root, autoescape=name.endswith((".html", ".html.j2", ".svg.j2")))
        try:
            env.get_template(name)
            source = env.loader.get_source(env, name)[0] if env.loader else ""
            kinds = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
            used = list(env.parse(source).find_all(kinds))
        except TemplateNotFound:
            continue  # named oddly ("a/./b"): the render that includes it says it is missing
        except _TemplateRefused as exc:
            problems.append(Problem(shown, exc.line or 1, 1, "", exc.detail, exc.hint))
            continue
        except TemplateSyntaxError as exc:
            message = str(exc.message or exc).rstrip(".")
            problems.append(Problem(shown, exc.lineno or 1, 1, "", message, _hint(exc)))
            continue
        for node in used:
            ref = node.template.value if isinstance(node.template, nodes.Const) else None
            if not isinstance(ref, str):
                continue  # a name made at render time: the render judges it
            if ".." in ref.split("/"):
                message = f"names the template {ref!r}, which leads out of templates/"
                hint = "a template is named by its path inside templates/, without '..'"
                problems.append(Problem(shown, node.lineno, 1, "", message, hint))
            else:
                todo.append(ref)
    return sorted(problems, key=lambda problem: problem.file)


def render(
    name: str,
    context: dict[str, Any],
    *,
    project_root: Path | None = None,
    masker: Masker | None = None,
    autoescape: bool | None = None,
) -> str:
    """Render template `name` with `context`; secrets masked in the result and in its errors
    (a template may fail on a secret: a key looked up by its value)."""
    from jinja2 import TemplateError, TemplateNotFound

    hide = masker.mask if masker is not None else str

    if autoescape is None:
        autoescape = name.endswith((".html", ".html.j2", ".svg.j2"))
    env = environment(project_root.resolve() if project_root else None, autoescape=autoescape)
    try:
        template = env.get_template(name)
        _deadline[0] = time.monotonic() + RENDER_SECONDS
        _masker[0] = masker
        text = _bounded(template, context)
    except _RenderLimit as exc:
        # Stopped by its size, the render is outside the template's frames: name its file.
        msg = (
            f"template {_where(exc, template.filename or name)} {exc}; expected a page of at most "
            f"{MAX_RENDER_CHARS // 2**20} MiB in at most {RENDER_SECONDS:g} s"
        )
        raise UsageError(
            hide(msg), hint="fix the template: a loop that never ends, or one over far too much"
        ) from None
    except _TemplateRefused as exc:
        within = "" if exc.name == name else f" (included by {name})"
        raise UsageError(hide(f"{exc}{within}"), hint=exc.hint) from None
    except TemplateNotFound as exc:
        missing = exc.name if exc.name is not None else name
        within = "" if missing == name else f" (included by {name})"
        msg = (
            f"template {missing!r}{within} not found in the project's templates/ or "
            "drillbook's defaults"
        )
        raise UsageError(hide(msg)) from None
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        where = f"{exc.filename}:{lineno}" if lineno else _where(exc, name)
        # jinja2's sentences end with a full stop; the message goes on after it.
        msg = f"template {where} failed to render: {str(exc).rstrip('.')}"
        raise UsageError(hide(msg), hint=_hint(exc)) from None
    except (RecursionError, OverflowError, MemoryError, ValueError, TypeError) as exc:
        # Raised by a template itself ({% extends %} of its own name, range(10**9), a filter
        # given the wrong thing): the template's problem, not drillbook's.
        msg = f"template {_where(exc, name)} failed to render: {type(exc).__name__}: {exc}"
        hint = (
            "fix the template: an override that extends the default of its own name extends "
            "itself, and so without end"
            if isinstance(exc, RecursionError)
            else "fix the template at that line: a filter or a test given what it cannot take"
        )
        raise UsageError(hide(msg), hint=hint) from None
    finally:
        _deadline[0] = float("inf")
        _masker[0] = None
    if not text.strip():
        # An empty override (a file made to be filled in later) made an empty rollback note,
        # and the release said where to find it.
        where = _project_path(template.filename, project_root) or name
        msg = f"template {where} rendered no text, expected a page"
        raise UsageError(hide(msg), hint="write the template, or remove it to use the default")
    # Controls are escaped in the whole page at once, not value by value (a `finalize`): a
    # page prints hundreds of values and holds a control character almost never. The
    # Markdown filters escape theirs first, before they join a field's lines.
    return hide(_shown(text, masker))


def _project_path(filename: str | None, project_root: Path | None) -> str | None:
    """`filename` relative to the project root, when it is inside it."""
    if filename is None or project_root is None:
        return filename
    try:
        return Path(filename).relative_to(project_root.resolve()).as_posix()
    except ValueError:
        return filename


def _where(exc: BaseException, name: str) -> str:
    """`FILE:LINE` of the innermost template frame of a rendering error, else `name`.

    jinja2 rewrites tracebacks so that a template's frames carry its file and line.
    """
    found = name
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def _hint(exc: BaseException) -> str:
    """What to fix, by the kind of template error."""
    from jinja2 import TemplateAssertionError, TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    if isinstance(exc, TemplateAssertionError) and "No filter named" in str(exc):
        return f"fix the template: the filters are jinja2's own and {', '.join(FILTERS)}"
    if isinstance(exc, TemplateAssertionError) and "No test named" in str(exc):
        return "fix the template: the tests are jinja2's own (defined, none, string, ...)"
    if isinstance(exc, TemplateSyntaxError):
        return "fix the template's syntax at that line"
    if isinstance(exc, UndefinedError):
        return (
            "fix the template: undefined names are errors (drillbook's default of the same "
            "name shows what a template receives)"
        )
    if isinstance(exc, SecurityError):
        return "templates render in a sandbox: internals of Python objects are not reachable"
    return "fix the template"


def render_to(
    path: Path,
    name: str,
    context: dict[str, Any],
    *,
    project_root: Path | None = None,
    masker: Masker | None = None,
) -> Path:
    """Render a template and write it atomically, its drillbook commands as they must be
    typed (a note's `drillbook rollback` needs `--service` in a project of several runbooks)."""
    from drillbook.commands import as_typed

    text = render(name, context, project_root=project_root, masker=masker)
    return write_atomic(path, as_typed(text))
