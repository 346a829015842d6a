"""pydantic's validation errors, explained: each a `Problem` a person can fix at once.

A problem names FILE:LINE:COLUMN (from the YAML's positions), the field as a dotted path, what
was expected and what was found, and a hint where one helps (`did you mean ...?`). Union
members that pydantic adds to a location are dropped, so the path is the one in the file.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from drillbook import model, yamlsafe
from drillbook.errors import Problem
from drillbook.model import HttpCheck, Runbook

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
        if (
            not last
            and part == "run"
            and isinstance(node, dict)
            and isinstance(loc[i + 1], str)
            and loc[i + 1] in node
        ):
            # The union tag of a command check, spelled like its `run` key: what follows is a
            # key beside `run`, not inside it, so this `run` is the tag.
            continue
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


def explain(exc: ValidationError, doc: yamlsafe.Document, name: str) -> list[Problem]:
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
        close = closest(str(path[-1]), allowed)
        hint = f"did you mean `{close}`?" if close else None
        if not close and allowed:
            hint = "the keys allowed here are " + ", ".join(allowed)
        if path[-1] in ("get", "head", "post") and "run" in allowed:
            hint = "a check runs a command (`run`) or sends a request (`get`, `head`, `post`), "
            hint += "never both: make them two checks"
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
    close = closest(str(path[-1]), [str(k) for k in parent])
    if close:
        return f"is `{close}` meant to be `{path[-1]}`?"
    return None


def closest(word: str, choices: list[str]) -> str | None:
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
