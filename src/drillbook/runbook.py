"""Load a runbook file into a validated `Runbook`, or say exactly what is wrong and where.

Every problem is reported as `FILE:LINE:COLUMN: field.path: what is wrong (expected X, got Y)`,
all problems of a file at once. Nothing from the file is ever evaluated: tags are refused,
template-looking text stays text, and paths must stay inside the project.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from drillbook import model, yamlsafe
from drillbook.errors import InvalidInput, Problem, UsageError
from drillbook.model import Change, HttpCheck, Runbook

RUNBOOK_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedRunbook:
    """A validated runbook with where it came from."""

    runbook: Runbook
    path: Path
    root: Path
    sha256: str

    @property
    def display_path(self) -> str:
        """The runbook's path relative to its project, for messages."""
        try:
            return str(self.path.relative_to(self.root))
        except ValueError:
            return str(self.path)


def project_root_for(path: Path) -> Path:
    """The project root of a runbook file: the folder that holds `runbooks/`."""
    path = path.absolute()
    if path.parent.name == "runbooks":
        return path.parent.parent
    return path.parent


def display(path: Path) -> str:
    """A path as a person typed it: relative to the working directory when inside it."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_runbook(path: Path, *, root: Path | None = None) -> LoadedRunbook:
    """Read, parse and validate one runbook; raise InvalidInput with every problem found."""
    name = display(path)
    try:
        with path.open("rb") as handle:
            # One byte over the cap is enough to refuse it: a huge file is never read whole.
            raw = handle.read(yamlsafe.MAX_BYTES + 1)
            size = os.fstat(handle.fileno()).st_size if len(raw) > yamlsafe.MAX_BYTES else 0
    except OSError as exc:
        problem = Problem(name, 1, 1, "", f"cannot read the file: {exc.strerror or exc}")
        raise InvalidInput([problem]) from None
    if size:
        msg = (
            f"the file is {size:,} bytes, over the {yamlsafe.MAX_BYTES:,}-byte limit for a runbook"
        )
        problem = Problem(name, 1, 1, "", msg, "split it, or remove what is not needed")
        raise InvalidInput([problem])
    path = path.absolute()
    return load_runbook_bytes(raw, name=name, path=path, root=root or project_root_for(path))


def load_runbook_bytes(raw: bytes, *, name: str, path: Path, root: Path) -> LoadedRunbook:
    """Validate runbook bytes; `name` is how the file is named in messages."""
    source = _Source(raw, name)
    data = source.data()
    if data is None:
        msg = "the runbook is empty; expected a mapping that starts with `drillbook: 1`"
        raise InvalidInput([Problem(name, 1, 1, "", msg)])
    if not isinstance(data, dict):
        found = "a list" if isinstance(data, list) else model._describe(data)
        msg = f"expected a mapping at the top level (drillbook: 1, service: ...), got {found}"
        mark = source.doc().root_mark
        raise InvalidInput([Problem(name, mark.line, mark.column, "", msg)])
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_explain(exc, source.doc(), name)) from None
    problems = list(_cross_field(runbook, source, name, root))
    if problems:
        raise InvalidInput(sorted(problems, key=lambda p: (p.line, p.column)))
    return LoadedRunbook(runbook, path.absolute(), root.absolute(), hashlib.sha256(raw).hexdigest())


class _Source:
    """A runbook's text, its data, and (read only when a message needs them) its positions.

    Most runbooks are valid, so the data is read first without positions (`parse_data`); the
    positions are read, by a second parse, only for a file that has a problem to report.
    """

    def __init__(self, raw: bytes, name: str) -> None:
        self.name = name
        try:
            self.text = yamlsafe.decode(raw)
        except yamlsafe.YamlError as exc:
            raise InvalidInput(self._problems(exc)) from None
        self._doc: yamlsafe.Document | None = None

    def data(self) -> Any:
        try:
            return yamlsafe.parse_data(self.text)
        except yamlsafe.NeedsFullParse:
            return self.doc().data

    def doc(self) -> yamlsafe.Document:
        if self._doc is None:
            try:
                self._doc = yamlsafe.parse(self.text, what="runbook")
            except yamlsafe.YamlError as exc:
                raise InvalidInput(self._problems(exc)) from None
        return self._doc

    def _problems(self, exc: yamlsafe.YamlError) -> list[Problem]:
        return [
            Problem(self.name, p.line, p.column, p.field, p.message, p.hint) for p in exc.problems
        ]


def find_runbook_files(paths: Iterable[Path]) -> list[Path]:
    """Runbook files named directly or found (not recursively) in the given folders."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            files = sorted(
                (p for p in path.iterdir() if p.suffix in RUNBOOK_SUFFIXES and p.is_file()),
                key=lambda p: p.name,
            )
            if not files:
                msg = f"no runbooks in {display(path)} (expected *.yaml or *.yml files)"
                raise UsageError(msg, hint="run `drillbook init` to write a starter runbook")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            msg = f"no such file or folder: {display(path)}"
            raise UsageError(msg)
    return found


def load_project_runbook(root: Path, service: str | None = None) -> LoadedRunbook:
    """The runbook a task acts on: the only one in `runbooks/`, or the one for `service`."""
    folder = root / "runbooks"
    if not folder.is_dir():
        msg = f"no runbooks/ folder in {root}; drillbook runs from a project's root"
        raise UsageError(msg, hint="run `drillbook init` here, or cd to the project's root")
    files = find_runbook_files([folder])
    if service is not None:
        for file in files:
            if file.stem == service:
                return load_runbook(file, root=root)
        loaded = [load_runbook(f, root=root) for f in files]
        for item in loaded:
            if item.runbook.service == service:
                return item
        names = ", ".join(sorted(f.stem for f in files))
        msg = f"no runbook for service {service!r} in runbooks/ (found: {names})"
        raise UsageError(msg)
    if len(files) > 1:
        names = ", ".join(sorted(f.stem for f in files))
        msg = f"several runbooks in runbooks/ ({names}); say which with --service NAME"
        raise UsageError(msg)
    return load_runbook(files[0], root=root)


# --- pydantic errors -> problems --------------------------------------------------------------

_TYPE_WORDS = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}

_EXPECT_KEYS = frozenset(
    ("status", "json", "body_contains", "header", "max_time", "p50", "p95", "p99", "exit")
)
_BOOLEAN_LOOKALIKES = frozenset(("yes", "no", "on", "off", "y", "n", "true", "false"))


def _strip_tags(loc: tuple[Any, ...], data: Any) -> tuple[tuple[Any, ...], bool]:
    """The data path of a pydantic `loc`, without union tags; and whether it ends on a key.

    Union members appear in a loc as extra parts ('http', 'int', 'list[int]') that are not
    in the data; they are dropped. A last part that is missing from the data is the name of a
    missing field and is kept.
    """
    path: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif (
            isinstance(node, dict) and isinstance(part, str) and part == "json_" and "json" in node
        ):
            path.append("json")
            node = node["json"]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif last and isinstance(node, dict) and isinstance(part, str) and not _is_tag(part):
            path.append(part)
        # else: a union tag, dropped
    return tuple(path), False


def _is_tag(part: str) -> bool:
    return part in {"http", "run", "named", "int", "str", "list[int]", "function-after"} or (
        "[" in part and "]" in part
    )


def field_path(path: tuple[Any, ...]) -> str:
    """`releases[0].changes[1].owner` from ('releases', 0, 'changes', 1, 'owner')."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _where_in_releases(data: Any, path: tuple[Any, ...]) -> tuple[str | None, str | None]:
    """The change id and the release version that `path` lies in, as far as they are known."""
    if len(path) < 2 or path[0] != "releases" or not isinstance(data, dict):
        return None, None
    try:
        release = data["releases"][path[1]]
    except (KeyError, IndexError, TypeError):
        return None, None
    version = release.get("version") if isinstance(release, dict) else None
    cid = None
    if len(path) >= 4 and path[2] == "changes" and isinstance(release, dict):
        try:
            change = release["changes"][path[3]]
        except (KeyError, IndexError, TypeError):
            change = None
        cid = change.get("id") if isinstance(change, dict) else None
    shown = model.source_text(version) if isinstance(version, str | int | float) else None
    return (str(cid) if isinstance(cid, str) else None), shown


def _change_context(data: Any, path: tuple[Any, ...]) -> str:
    """` (in change 'audit-log' of release 1.1.0)` when the path lies inside a change."""
    cid, version = _where_in_releases(data, path)
    if cid is not None:
        return f" (in change {cid!r}" + (f" of release {version})" if version else ")")
    if version is not None and len(path) > 2 and path[2] != "version":
        return f" (in release {version})"
    return ""


_WHY_REQUIRED_AT_TOP = {
    "owner": "the team or person accountable for the service",
}
_WHY_REQUIRED = {
    "owner": "every change names who owns it",
    "expected": "every change says what result is expected",
    "rollback": "every change says how to roll it back",
    "title": "every change says in a few words what it is",
    "id": "every change has a short id such as audit-log",
    "version": "every release names its version, such as 1.2.0",
    "changes": "a release lists the changes it ships",
    "drillbook": "the format version, `drillbook: 1`, comes first in every runbook",
    "service": "the service this runbook releases, such as demo-service",
    "environments": "at least `staging`, with its url",
    "url": "the base URL of the environment, such as http://127.0.0.1:8181",
    "run": "the command, as a list of arguments such as [python, deploy.py]",
    "name": "a short name",
    "where": "the path of the log file, or a URL",
    "summary": "say it in words",
}


def _holder(data: Any, path: tuple[Any, ...]) -> str:
    """How the mapping at `path` is named in a message: `change 'audit-log' in release 1.1.0`."""
    cid, version = _where_in_releases(data, path)
    if len(path) == 4 and path[2] == "changes":
        number = path[3] + 1 if isinstance(path[3], int) else path[3]
        named = f"change {cid!r}" if cid else f"change {number}"
        release = path[1] + 1 if isinstance(path[1], int) else path[1]
        return named + (f" in release {version}" if version else f" of release {release}")
    if len(path) == 2 and path[0] == "releases":
        number = path[1] + 1 if isinstance(path[1], int) else path[1]
        return f"release {version}" if version else f"release {number}"
    if len(path) == 2 and path[0] == "environments":
        return f"environment `{path[1]}`"
    if len(path) == 2 and path[0] == "checks":
        return f"check `{path[1]}`"
    if not path:
        return "the runbook"
    inner = f"`{field_path(path)}`"
    context = _change_context(data, path)
    return inner + context


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model accepts at the mapping that `loc` (an error's loc) points into."""
    current: Any = Runbook
    for part in loc[:-1]:
        current = _descend(current, part)
        if current is None:
            return []
    return _model_keys(current)


def _model_keys(tp: Any) -> list[str]:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _descend(tp: Any, part: Any) -> Any:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = [_unwrap(m) for m in typing.get_args(tp)]
        by_tag = {"http": HttpCheck, "run": model.RunCheck, "named": str}
        if part in by_tag:
            return by_tag[part]
        for member in members:
            found = _descend(member, part)
            if found is not None:
                return found
        return None
    if origin is list and isinstance(part, int):
        return typing.get_args(tp)[0]
    if origin is dict:
        return typing.get_args(tp)[1]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    return None


def _explain(exc: ValidationError, doc: yamlsafe.Document, name: str) -> list[Problem]:
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    order: list[tuple[Any, ...]] = []
    for err in exc.errors(include_url=False):
        path, _ = _strip_tags(err["loc"], doc.data)
        field = (err.get("ctx") or {}).get("drillbook_field")
        for part in field.split(".") if field else ():
            node = _node(doc.data, path)
            if not isinstance(node, dict) or part not in node:
                break
            path = (*path, part)
        key = (err["type"] in ("missing", "extra_forbidden"), path)
        if key not in grouped:
            grouped[key] = []
            order.append(key)
        grouped[key].append(err)
    problems = [_one_problem(grouped[key], key[1], doc, name) for key in order]
    return sorted(problems, key=lambda p: (p.line, p.column, p.field))


def _node(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _one_problem(
    errors: list[dict[str, Any]], path: tuple[Any, ...], doc: yamlsafe.Document, name: str
) -> Problem:
    err = errors[0]
    kind = err["type"]
    where = field_path(path)
    context = _change_context(doc.data, path)
    if kind == "missing":
        mark, _ = doc.locate(path[:-1])
        missing = str(path[-1])
        why = _WHY_REQUIRED_AT_TOP.get(missing) if len(path) == 1 else None
        why = why or _WHY_REQUIRED.get(missing)
        msg = f"{_holder(doc.data, path[:-1])} has no `{missing}`" + (f" ({why})" if why else "")
        hint = _missing_hint(doc.data, path)
        return Problem(name, mark.line, mark.column, where, msg, hint)
    if kind == "extra_forbidden":
        mark = doc.key_mark(path) or doc.locate(path)[0]
        allowed = _allowed_keys(err["loc"])
        close = _closest(str(path[-1]), allowed)
        hint = f"did you mean `{close}`?" if close else None
        if not close and allowed:
            hint = "the keys allowed here are " + ", ".join(allowed)
        if path[-1] in _EXPECT_KEYS and "expect" in allowed:
            hint = f"did you mean `expect: {{{path[-1]}: ...}}`? what a check must see goes there"
        msg = f"unknown key `{path[-1]}`" + (f" {context.strip()[1:-1]}" if context else "")
        return Problem(name, mark.line, mark.column, where, msg, hint)
    mark, _ = doc.locate(path)
    found = _found(err.get("input"))
    messages: list[str] = []
    hint: str | None = None
    for e in errors:
        text, e_hint = _expected_text(e, path)
        hint = hint or e_hint
        if text not in messages:
            messages.append(text)
    if len(messages) == 1 and messages[0].startswith("expected ") and ", got " in messages[0]:
        msg = messages[0]
    else:
        wanted = " or ".join(m.removeprefix("expected ") for m in messages)
        msg = f"expected {wanted}, got {found}"
    return Problem(name, mark.line, mark.column, where, msg + context, hint)


def _missing_hint(data: Any, path: tuple[Any, ...]) -> str | None:
    """`did you mean`: a key in the same mapping that looks like the missing one."""
    parent = _node(data, path[:-1])
    if not isinstance(parent, dict):
        return None
    close = _closest(str(path[-1]), [str(k) for k in parent])
    if close:
        return f"is `{close}` meant to be `{path[-1]}`?"
    return None


def _closest(word: str, choices: list[str]) -> str | None:
    """The choice a typo most likely meant: similar spelling, or one starting with the other."""
    import difflib  # only when something is wrong: keeps the valid path's start-up light

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return close[0]
    lowered = word.lower()
    for choice in choices:
        low = choice.lower()
        if len(lowered) >= 3 and (low.startswith(lowered) or lowered.startswith(low)):
            return choice
    return None


def _found(value: Any) -> str:
    text = model._describe(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _expected_text(err: dict[str, Any], path: tuple[Any, ...]) -> tuple[str, str | None]:
    """`expected X` (or a whole `expected X, got Y` message) and a hint, for one error."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "drillbook":
        return str(err["msg"]), ctx.get("drillbook_hint")
    if kind in {"model_type", "model_attributes_type"}:
        keys = _model_keys_at(path)
        shown = ", ".join(f"{k}: ..." for k in keys[:3])
        return f"expected a mapping ({shown})" if keys else "expected a mapping", None
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}", _type_hint(kind, value)
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, "), None
    if kind == "literal_error":
        if path == ("drillbook",):
            return (
                f"expected the format version 1, got {_found(value)}",
                "this drillbook reads runbook format version 1: write `drillbook: 1`",
            )
        return f"expected {ctx.get('expected', '')}", None
    if kind == "string_pattern_mismatch":
        suggestion = None
        if isinstance(value, str):
            fixed = re.sub(r"[^A-Za-z0-9_-]+", "-", value.strip()).strip("-_")
            suggestion = f"for example {fixed}" if fixed and fixed != value else None
        return (
            "expected a name of letters, digits, '-' and '_', starting with a letter or digit",
            suggestion,
        )
    if kind == "string_too_short":
        return "expected some text", None
    if kind == "string_too_long":
        return f"expected at most {ctx.get('max_length')} characters", None
    if kind == "too_short":
        if path and path[-1] == "changes":
            return "expected at least one change, got an empty list", "a release ships changes"
        return "expected at least one item, got an empty list", None
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = ctx.get("ge", ctx.get("gt", ctx.get("le", ctx.get("lt"))))
        words = {
            "greater_than_equal": "of at least",
            "greater_than": "above",
            "less_than_equal": "of at most",
            "less_than": "below",
        }[kind]
        return f"expected a whole number {words} {bound}", None
    if kind in ("check_kind", "check_ref"):
        return str(err["msg"]), None
    msg = str(err["msg"]) or "something else"
    return "expected " + msg[0].lower() + msg[1:].removeprefix("input should be "), None


def _model_keys_at(path: tuple[Any, ...]) -> list[str]:
    current: Any = Runbook
    for part in path:
        current = _descend(current, part)
        if current is None:
            return []
    unwrapped = _unwrap(current)
    if typing.get_origin(unwrapped) in (typing.Union, types.UnionType):
        for member in typing.get_args(unwrapped):
            keys = _model_keys(member)
            if keys:
                return keys
    return _model_keys(current)


def _type_hint(kind: str, value: Any) -> str | None:
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        return f'if it is meant as text, put it in quotes: "{model.source_text(value)}"'
    if kind == "string_type" and isinstance(value, bool):
        return f"YAML reads {model.source_text(value)} as a boolean; put it in quotes for text"
    if kind == "bool_type" and isinstance(value, str):
        if value.lower() in _BOOLEAN_LOOKALIKES:
            return "only true and false are booleans (YAML 1.2); write true or false"
        return "write true or false"
    if kind == "int_type" and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return f"write {value.strip()} without quotes"
    if kind == "list_type" and isinstance(value, str | int | float):
        return "write a list: [a, b], or one `- item` per line"
    return None


# --- rules across fields ----------------------------------------------------------------------


def _cross_field(runbook: Runbook, source: _Source, name: str, root: Path) -> Iterator[Problem]:
    def at(path: tuple[Any, ...], message: str, hint: str | None = None) -> Problem:
        mark, _ = source.doc().locate(path)
        return Problem(name, mark.line, mark.column, field_path(path), message, hint)

    envs = runbook.environments
    if "staging" not in envs:
        known = ", ".join(envs) or "none"
        yield at(
            ("environments",),
            f"expected a `staging` environment, got only {known}",
            "every runbook has staging: releases and rehearsals deploy to staging first",
        )
    hosts_by_env: dict[str, set[str]] = {}
    for env_name, env in envs.items():
        problem = _url_problem(env.url, ("environments", env_name, "url"), at)
        if problem:
            yield problem
            hosts_by_env[env_name] = set()
            continue
        own = (urlsplit(env.url).hostname or "").lower()
        hosts_by_env[env_name] = {h.lower() for h in env.allow_hosts} if env.allow_hosts else {own}
        if env.config is not None:
            yield from _path_problems(env.config, ("environments", env_name, "config"), root, at)
    if runbook.config and runbook.config.same_keys_as:
        other = runbook.config.same_keys_as
        if other not in envs:
            close = _closest(other, list(envs))
            yield at(
                ("config", "same_keys_as"),
                f"expected the name of an environment ({', '.join(envs)}), got {other!r}",
                f"did you mean `{close}`?" if close else None,
            )
    for i, log in enumerate(runbook.logs):
        for env_name in envs:
            where = log.where.replace("{env}", env_name)
            problems = list(_path_problems(where, ("logs", i, "where"), root, at))
            if problems:
                yield problems[0]
                break
    for step_path, step in _steps(runbook):
        yield from _shell_problems(step, step_path, at)
        if step.cwd is not None:
            yield from _path_problems(step.cwd, (*step_path, "cwd"), root, at)
    all_hosts = set().union(*hosts_by_env.values()) if hosts_by_env else set()
    for check_name, check in runbook.checks.items():
        yield from _check_problems(check, ("checks", check_name), all_hosts, at)
    seen_versions: dict[str, int] = {}
    for r, release in enumerate(runbook.releases):
        if release.version in seen_versions:
            yield at(
                ("releases", r, "version"),
                f"version {release.version} is declared twice "
                f"(also releases[{seen_versions[release.version]}])",
                "each version appears once",
            )
        seen_versions.setdefault(release.version, r)
        seen_ids: dict[str, int] = {}
        for c, change in enumerate(release.changes):
            base = ("releases", r, "changes", c)
            if change.id in seen_ids:
                yield at(
                    (*base, "id"),
                    f"change id {change.id!r} is used twice in release {release.version} "
                    f"(also changes[{seen_ids[change.id]}])",
                )
            seen_ids.setdefault(change.id, c)
            yield from _change_problems(runbook, change, base, all_hosts, at)


def _steps(runbook: Runbook) -> Iterator[tuple[tuple[Any, ...], model.Step]]:
    if runbook.deploy is not None:
        yield ("deploy",), runbook.deploy
    for gate in ("lint", "unit"):
        step = getattr(runbook.gates, gate)
        if step is not None and "gates" in runbook.model_fields_set:
            yield ("gates", gate), step
    for r, release in enumerate(runbook.releases):
        for c, change in enumerate(release.changes):
            for s, step in enumerate(change.rollback.steps):
                yield ("releases", r, "changes", c, "rollback", "steps", s), step


def _shell_problems(
    step: model.Step | model.RunCheck, path: tuple[Any, ...], at: Any
) -> Iterator[Problem]:
    if step.shell and isinstance(step.run, str):
        for name in model.PLACEHOLDERS:
            if "{" + name + "}" in step.run:
                yield at(
                    (*path, "run"),
                    f"placeholder {{{name}}} inside a shell command is never filled in",
                    f"use ${'DRILLBOOK_' + name.upper()} (values reach shell commands as "
                    "environment variables, never inside the command text)",
                )
                return


def _change_problems(
    runbook: Runbook,
    change: Change,
    base: tuple[Any, ...],
    hosts: set[str],
    at: Any,
) -> Iterator[Problem]:
    base_version = runbook.releases[base[1]].version
    for section, refs in (
        ("expected", change.expected.checks),
        ("rollback", change.rollback.checks),
    ):
        for k, ref in enumerate(refs):
            path = (*base, section, "checks", k)
            if isinstance(ref, str):
                if ref not in runbook.checks:
                    close = _closest(ref, list(runbook.checks))
                    known = ", ".join(runbook.checks) or "none: the runbook has no `checks:`"
                    yield at(
                        path,
                        f"expected the name of a check under `checks:`, got {ref!r} (in change "
                        f"{change.id!r} of release {base_version}); known checks: {known}",
                        f"did you mean `{close}`?" if close else None,
                    )
            else:
                yield from _check_problems(ref, path, hosts, at)


def _check_problems(
    check: model.HttpCheck | model.RunCheck, path: tuple[Any, ...], hosts: set[str], at: Any
) -> Iterator[Problem]:
    if isinstance(check, model.RunCheck):
        yield from _shell_problems(check, path, at)
        return
    key = check.method.lower()
    target = check.target
    if target.startswith("/"):
        return
    if "://" not in target:
        yield at(
            (*path, key),
            f"expected a path starting with / or an http(s) URL, got {target!r}",
            f"write /{target}" if not target.startswith(("{", "http")) else None,
        )
        return
    problem = _url_problem(target, (*path, key), at)
    if problem:
        yield problem
        return
    host = (urlsplit(target).hostname or "").lower()
    if host not in hosts:
        allowed = ", ".join(sorted(hosts)) or "none"
        yield at(
            (*path, key),
            f"host {host!r} is not on any environment's allow_hosts (allowed: {allowed})",
            "add it to the environment's allow_hosts if checks may reach it",
        )


def mask_url(url: str) -> str:
    """A URL with the password of its user part masked (a lone user part is masked whole)."""
    try:
        parts = urlsplit(url)
        if parts.password is None and parts.username is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = f"{parts.username or ''}:***@" if parts.password is not None else "***@"
        return parts._replace(netloc=user + host).geturl()
    except ValueError:  # not even a URL: mask whatever sits between // and the last @
        return _USERINFO.sub(r"\1***@", url)


_USERINFO = re.compile(r"(//)[^/?#]*@")


def _url_problem(url: str, path: tuple[Any, ...], at: Any) -> Problem | None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        return at(path, f"expected a URL, got {mask_url(url)!r} ({exc})")
    if parts.scheme not in ("http", "https"):
        return at(
            path,
            f"expected an http or https URL, got the scheme {parts.scheme or 'none'!r} in "
            f"{mask_url(url)!r}",
        )
    if parts.username is not None or parts.password is not None:
        return at(
            path,
            f"credentials inside a URL are not allowed, got {mask_url(url)!r}",
            "pass credentials as environment variables, never in the runbook",
        )
    if not parts.hostname:
        return at(path, f"expected a URL with a host, got {url!r}")
    return None


def _path_problems(value: str, path: tuple[Any, ...], root: Path, at: Any) -> Iterator[Problem]:
    """Paths must stay inside the project, symlinks included."""
    outside = _outside(str(root), value)
    if outside is None:
        return
    resolved, real_root = outside
    if resolved.startswith("cannot"):
        yield at(path, f"{resolved} {value!r}")
        return
    yield at(
        path,
        f"expected a path inside the project, got {value!r}, which resolves to "
        f"{resolved}, outside the project {real_root}",
        "a symlink may lead out; paths are relative to the folder that holds runbooks/",
    )


@functools.lru_cache(maxsize=4096)
def _outside(root: str, value: str) -> tuple[str, str] | None:
    """Where `value` really leads and the real root, when it leads out of `root`; else None.

    Cached: a `check` of many runbooks of one project resolves the same few paths again and
    again, and each resolution is one `lstat` per part of the path.
    """
    try:
        real_root = os.path.realpath(root)
        resolved = os.path.realpath(Path(real_root, value))
    except (OSError, ValueError) as exc:
        return f"cannot resolve the path ({exc}):", root
    if resolved == real_root or resolved.startswith(real_root.rstrip(os.sep) + os.sep):
        return None
    return resolved, real_root
