"""A strict, safe YAML reader for runbooks and config files.

It reads libyaml's event stream (the C parser, never the pure-Python one) and builds plain
Python data itself, so that it can:

- read scalars as YAML 1.2 does (only `true`/`false` are booleans; `on`, `yes`, `no` stay text);
- refuse every tag, so nothing is ever constructed from one;
- refuse duplicate keys, naming both lines;
- bound nesting depth and the nodes that aliases expand to (alias bombs), in bounded memory,
  because the tree is built iteratively and aliases share the object they point to;
- remember where each key and value starts, for messages that name FILE:LINE:COLUMN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - refusing is the point: the pure-Python parser is 8x slower
    _Loader = None

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000

_NULL = frozenset(("", "~", "null", "Null", "NULL"))
_TRUE = frozenset(("true", "True", "TRUE"))
_FALSE = frozenset(("false", "False", "FALSE"))
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(inf|Inf|INF)$")
_NAN = frozenset((".nan", ".NaN", ".NAN"))


@dataclass(frozen=True)
class Mark:
    """Where a key or value starts: 1-based line and column."""

    line: int
    column: int


@dataclass
class YamlProblem:
    """One thing wrong with the YAML itself."""

    line: int
    column: int
    message: str
    hint: str | None = None
    field: str = ""


@dataclass
class Document:
    """Parsed YAML data and where each part of it came from."""

    data: Any
    root_mark: Mark
    # id(container) -> {key or index: (mark of key, mark of value)}
    marks: dict[int, dict[Any, tuple[Mark, Mark]]] = field(default_factory=dict)
    _keep: list[Any] = field(default_factory=list)

    def locate(self, path: tuple[Any, ...]) -> tuple[Mark, bool]:
        """The mark of the deepest part of `path` found in the data, and whether all was found.

        For a missing key, this is the mark of the mapping that lacks it.
        """
        node = self.data
        mark = self.root_mark
        for step in path:
            entries = self.marks.get(id(node))
            if entries is None or step not in entries:
                return mark, False
            mark = entries[step][1]
            node = node[step]
        return mark, True

    def key_mark(self, path: tuple[Any, ...]) -> Mark | None:
        """The mark of the key at the end of `path`, when it is a mapping key."""
        if not path:
            return None
        parent_mark, found = self.locate(path[:-1])
        if not found:
            return None
        node = self.data
        for step in path[:-1]:
            node = node[step]
        entries = self.marks.get(id(node), {})
        if path[-1] in entries:
            return entries[path[-1]][0]
        return parent_mark


class YamlError(Exception):
    """The text is not YAML drillbook accepts; `problems` says where and why."""

    def __init__(self, problems: list[YamlProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


def _mark(m: Any) -> Mark:
    return Mark(m.line + 1, m.column + 1)


def scalar_value(value: str, style: str | None) -> Any:
    """A scalar as YAML 1.2's core schema reads it."""
    if style:  # quoted or block scalars are always text; plain style is '' or None
        return value
    if value in _NULL:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    first = value[:1]
    if first and (first.isdigit() or first in "+-."):
        if _INT.match(value):
            return int(value)
        if _OCT.match(value):
            return int(value[2:], 8)
        if _HEX.match(value):
            return int(value[2:], 16)
        if _FLOAT.match(value):
            return float(value)
        if _INF.match(value):
            return float("-inf") if value.startswith("-") else float("inf")
        if value in _NAN:
            return float("nan")
    return value


def decode(raw: bytes, *, max_bytes: int = MAX_BYTES) -> str:
    """UTF-8 text from bytes, or a YamlError naming the size or the first bad byte."""
    if len(raw) > max_bytes:
        msg = f"the file is {len(raw):,} bytes, over the {max_bytes:,}-byte limit for this file"
        raise YamlError([YamlProblem(1, 1, msg, "split it, or remove what is not needed")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        msg = (
            f"expected UTF-8 text, got the byte 0x{raw[exc.start]:02x} at byte offset "
            f"{exc.start}, which is not UTF-8"
        )
        raise YamlError([YamlProblem(line, column, msg, "save the file as UTF-8")]) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def _explain_parse_error(exc: yaml.MarkedYAMLError, text: str) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or "invalid YAML"
    hint = None
    at = text[mark.index] if mark is not None and 0 <= mark.index < len(text) else ""
    if at == "\t" or "'\\t'" in problem:
        problem = "a tab character here; YAML is indented with spaces only"
        hint = "replace the tab with spaces"
    elif "found unexpected end of stream" in problem or "while scanning a quoted" in str(
        exc.context or ""
    ):
        if exc.context and "quoted" in exc.context:
            cm = exc.context_mark
            if cm is not None:
                line, column = cm.line + 1, cm.column + 1
            problem = "a quoted text that is never closed"
            hint = "add the closing quote"
    elif exc.context:
        problem = f"{problem} ({exc.context})"
    return YamlProblem(line, column, f"invalid YAML: {problem}", hint)


def parse(
    text: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
    what: str = "file",
) -> Document:
    """Parse one YAML document into plain data with marks; raise YamlError on any problem."""
    if _Loader is None:  # pragma: no cover
        msg = "PyYAML was built without libyaml; install PyYAML with its C extension"
        raise YamlError([YamlProblem(1, 1, msg)])
    problems: list[YamlProblem] = []
    marks: dict[int, dict[Any, tuple[Mark, Mark]]] = {}
    anchors: dict[str, tuple[Any, int]] = {}
    keep: list[Any] = []
    # Each frame: [container, is_mapping, pending_key, pending_key_mark, anchor, nodes, start_mark]
    stack: list[list[Any]] = []
    root: Any = None
    root_mark = Mark(1, 1)
    documents = 0
    nodes = 0

    def add(value: Any, mark: Mark, size: int) -> None:
        nonlocal root, root_mark
        if not stack:
            root, root_mark = value, mark
            return
        frame = stack[-1]
        frame[5] += size
        container = frame[0]
        if frame[1]:
            if frame[2] is _NO_KEY:
                # A key. Only scalar keys make sense in a runbook.
                if isinstance(value, dict | list):
                    problems.append(
                        YamlProblem(mark.line, mark.column, "a mapping key must be plain text")
                    )
                    frame[2], frame[3] = _BAD_KEY, mark
                    return
                frame[2], frame[3] = value, mark
                return
            key, key_mark = frame[2], frame[3]
            frame[2] = _NO_KEY
            if key is _BAD_KEY:
                return
            entries = marks.setdefault(id(container), {})
            if key in entries:
                first = entries[key][0]
                problems.append(
                    YamlProblem(
                        key_mark.line,
                        key_mark.column,
                        f"duplicate key {key!r}: it is also at line {first.line}",
                        "keep one of the two",
                    )
                )
                return
            container[key] = value
            entries[key] = (key_mark, mark)
        else:
            marks.setdefault(id(container), {})[len(container)] = (mark, mark)
            container.append(value)

    try:
        for event in yaml.parse(text, Loader=_Loader):
            kind = type(event)
            if kind is yaml.ScalarEvent:
                mark = _mark(event.start_mark)
                if event.tag is not None:
                    problems.append(_tag_problem(event.tag, mark))
                nodes += 1
                if stack and stack[-1][1] and stack[-1][2] is _NO_KEY:
                    value: Any = event.value  # keys stay text: `on:` is the key "on"
                else:
                    value = scalar_value(event.value, event.style)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
                add(value, mark, 1)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                mark = _mark(event.start_mark)
                if event.tag is not None:
                    problems.append(_tag_problem(event.tag, mark))
                if len(stack) >= max_depth:
                    msg = f"nesting deeper than {max_depth} levels"
                    raise YamlError(
                        [YamlProblem(mark.line, mark.column, msg, "a runbook is never this deep")]
                    )
                nodes += 1
                is_map = kind is yaml.MappingStartEvent
                container = {} if is_map else []
                keep.append(container)
                stack.append([container, is_map, _NO_KEY, None, event.anchor, 1, mark])
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                if frame[4] is not None:
                    anchors[frame[4]] = (frame[0], frame[5])
                add(frame[0], frame[6], frame[5])
            elif kind is yaml.AliasEvent:
                mark = _mark(event.start_mark)
                target = anchors.get(event.anchor)
                if target is None:
                    msg = f"alias *{event.anchor} refers to no anchor defined before it"
                    raise YamlError([YamlProblem(mark.line, mark.column, msg)])
                nodes += target[1]
                if nodes > max_nodes:
                    msg = (
                        f"aliases expand this {what} to more than {max_nodes:,} values "
                        "(an alias bomb?)"
                    )
                    raise YamlError([YamlProblem(mark.line, mark.column, msg)])
                add(target[0], mark, target[1])
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    mark = _mark(event.start_mark)
                    msg = f"a second YAML document starts here; a {what} is one document"
                    raise YamlError(
                        [YamlProblem(mark.line, mark.column, msg, "remove the `---` line")]
                    )
            if nodes > max_nodes:
                msg = f"more than {max_nodes:,} values in one {what}"
                raise YamlError([YamlProblem(1, 1, msg)])
    except yaml.MarkedYAMLError as exc:
        problems.append(_explain_parse_error(exc, text))
        raise YamlError(problems) from None
    except yaml.YAMLError as exc:
        problems.append(YamlProblem(1, 1, f"invalid YAML: {exc}"))
        raise YamlError(problems) from None
    if problems:
        raise YamlError(problems)
    return Document(root, root_mark, marks, keep)


class _NoKey:
    __slots__ = ()


_NO_KEY = _NoKey()
_BAD_KEY = _NoKey()


def _tag_problem(tag: str, mark: Mark) -> YamlProblem:
    return YamlProblem(
        mark.line,
        mark.column,
        f"the YAML tag {tag!r} is not allowed; runbooks hold plain data only",
        "remove the tag (nothing is ever constructed from a tag)",
    )
