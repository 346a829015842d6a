"""A strict, safe YAML reader for runbooks and config files.

It reads libyaml's event stream (the C parser, never the pure-Python one) and builds plain
Python data itself, so that it can:

- read scalars as YAML 1.2 does (only `true`/`false` are booleans; `on`, `yes`, `no` stay text),
  numbers remembering the text they were written as (`0755` stays `0755` as an argument);
- refuse every tag, so nothing is ever constructed from one;
- refuse duplicate keys, naming both lines; read `<<` merge keys as PyYAML does;
- bound nesting depth, and the values and the text that aliases expand to (alias bombs), in
  bounded memory, because the tree is built iteratively and aliases share the object they
  point to;
- remember where each key and value starts, for messages that name FILE:LINE:COLUMN.

Two readers build the same data: `parse_data` is the fast one, without positions, for the
common case; `parse` also records positions and says what is wrong. `load` tries the first and
falls back to the second, which is also what a caller does when it has a problem to report.
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
# Characters of scalar text (keys and values) in one document, each alias counted as all the
# text under its anchor. Without aliases a document's scalar text is never longer than the
# document (no scalar is longer than its source), so at most MAX_BYTES. Aliases cost nothing
# here, since they share one object, but whatever uses the runbook copies every use (a step's
# argv, a note, the docs): this bounds those copies to 8 MiB of text, tens of MB at worst, not
# the ~180 GB that one 900 KB text used 200,000 times would be. 8x is far above legitimate
# reuse: a shared check of a few hundred characters used on a few hundred changes is ~100 KB.
# It is checked at each alias, since only aliases multiply the text.
MAX_CHARS = 8 * MAX_BYTES

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


class SourceInt(int):
    """A whole number that remembers how it was written (`0755`, `+1`, `0x1f`).

    Made only when the text differs from `str(number)`, so that a command argument `0755`
    stays the text `0755`; it equals and validates as the plain int.
    """

    text: str


class SourceFloat(float):
    """A number that remembers how it was written (`1.10`, `.5`, `1e3`); see `SourceInt`."""

    text: str


def _written(number: Any, text: str) -> Any:
    if str(number) == text:
        return number
    kept = SourceInt(number) if isinstance(number, int) else SourceFloat(number)
    kept.text = text
    return kept


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
            if len(value) > 1000:  # int() refuses over 4,300 digits; no runbook means one
                return value
            return _written(int(value), value)
        if _OCT.match(value):
            return _written(int(value[2:], 8), value)
        if _HEX.match(value):
            return _written(int(value[2:], 16), value)
        if _FLOAT.match(value):
            return _written(float(value), value)
        if _INF.match(value):
            return _written(float("-inf") if value.startswith("-") else float("inf"), value)
        if value in _NAN:
            return _written(float("nan"), value)
    return value


def decode(raw: bytes, *, max_bytes: int = MAX_BYTES) -> str:
    """UTF-8 text from bytes, or a YamlError naming the size or the first bad byte."""
    if len(raw) > max_bytes:
        msg = f"the file is {len(raw):,} bytes, over the {max_bytes:,}-byte limit for this file"
        raise YamlError([YamlProblem(1, 1, msg, "split it, or remove what is not needed")])
    if wide := _utf16_or_32(raw):
        # Windows PowerShell's `>` writes UTF-16: read as UTF-8, its first byte is "not UTF-8"
        # or, without a byte order mark, every other character a NUL.
        msg = f"expected UTF-8 text, got {wide} text"
        hint = (
            "save the file as UTF-8 (in PowerShell: Out-File -Encoding utf8, or Set-Content "
            "-Encoding utf8)"
        )
        raise YamlError([YamlProblem(1, 1, msg, hint)])
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


def _utf16_or_32(raw: bytes) -> str | None:
    """The name of the encoding, UTF-16 or UTF-32, that `raw` starts with a byte order mark of,
    or whose first characters are ASCII spread over 2 or 4 bytes; None otherwise."""
    head = raw[:64]
    if b"\x00" not in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None  # every file read comes here: UTF-8 text has neither, and no NUL
    for bom, name in (
        (b"\xff\xfe\x00\x00", "UTF-32"),
        (b"\x00\x00\xfe\xff", "UTF-32"),
        (b"\xff\xfe", "UTF-16"),
        (b"\xfe\xff", "UTF-16"),
    ):
        if raw.startswith(bom):
            return name
    for width, name in ((4, "UTF-32"), (2, "UTF-16")):
        count = min(len(raw), 64) // width
        units = [raw[i * width : (i + 1) * width] for i in range(count)]
        # Little- or big-endian: an ASCII byte at one end of each unit, NULs in the rest.
        for ascii_at in (0, width - 1):
            if units and all(0 < u[ascii_at] < 0x80 and u.count(0) == width - 1 for u in units):
                return name
    return None


def _explain_reader_error(exc: yaml.reader.ReaderError, text: str) -> YamlProblem:
    """A character YAML does not allow (a NUL, another control character)."""
    position = exc.position if isinstance(exc.position, int) else 0
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    if 0 <= position < len(text) and ord(text[position]) == code:
        offset = len(text[:position].encode("utf-8"))
    else:  # libyaml counts bytes of the UTF-8 text, not characters
        offset = position
        position = len(text.encode("utf-8")[:position].decode("utf-8", "ignore"))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    name = {0: " (NUL)", 0x1B: " (ESC)", 0x7F: " (DEL)"}.get(code, "")
    msg = (
        f"expected text, got the control character U+{code:04X}{name} at byte offset {offset}; "
        "YAML does not allow it"
    )
    return YamlProblem(line, column, msg, "remove it; is this a binary file?")


def _unclosed_quote(exc: yaml.MarkedYAMLError, text: str) -> YamlProblem | None:
    """A quoted text whose closing quote is missing swallows the lines after it, and YAML breaks
    where the next quote closes it: name the line where that quote was opened instead."""
    mark = exc.problem_mark
    if mark is None:
        return None
    suspect = None
    try:
        for token in yaml.scan(text, Loader=_Loader):
            if token.start_mark.index >= mark.index:
                break
            if (
                type(token) is yaml.ScalarToken
                and token.style in ("'", '"')
                and token.end_mark.line > token.start_mark.line
                and token.end_mark.line >= mark.line - 1
            ):
                suspect = token
                break
    except yaml.YAMLError:
        pass
    if suspect is None:
        return None
    start = suspect.start_mark
    quote = suspect.style
    msg = (
        f"invalid YAML: the text quoted with {quote} here is not closed on its line; it runs "
        f"on to line {suspect.end_mark.line + 1}, where the YAML breaks"
    )
    return YamlProblem(start.line + 1, start.column + 1, msg, f"add the closing {quote}")


_FLOW_STARTS = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken)
_FLOW_ENDS = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)


def _open_flow(text: str, mark: yaml.Mark) -> yaml.Token | None:
    """The `[` or `{` still open where the YAML broke at `mark`, as its scanner token."""
    opened: list[yaml.Token] = []
    try:
        for token in yaml.scan(text, Loader=_Loader):
            if token.start_mark.index >= mark.index:
                break
            if isinstance(token, _FLOW_STARTS):
                opened.append(token)
            elif opened and isinstance(token, _FLOW_ENDS):
                opened.pop()
    except yaml.YAMLError:
        pass  # the scanner fails where the parser did, or sooner: what it read is enough
    return opened[-1] if opened else None


def _explain_parse_error(exc: yaml.MarkedYAMLError, text: str, what: str) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or "invalid YAML"
    hint = None
    at = text[mark.index] if mark is not None and 0 <= mark.index < len(text) else ""
    if problem == "exceeded maximum nesting depth":
        # libyaml 0.2.6 stops at 1,000 levels while scanning ahead, before drillbook's own
        # limit (counted on events) is reached: the same refusal, in drillbook's words.
        problem = f"nesting deeper than {MAX_DEPTH} levels"
        return YamlProblem(line, column, problem, f"a {what} is never this deep")
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
    elif (
        exc.context
        and exc.context.startswith("while parsing a flow")
        and exc.context_mark is not None
    ):
        cm = exc.context_mark
        opened = _open_flow(text, exc.problem_mark or cm)
        if opened is not None:
            # libyaml says "a flow node" at the end of the text, and marks the end: the
            # bracket itself says which it was, and where.
            opener = "[" if isinstance(opened, yaml.FlowSequenceStartToken) else "{"
            cm = opened.start_mark
        else:
            opener = "[" if "sequence" in exc.context else "{"
        closer = "]" if opener == "[" else "}"
        problem = (
            f"the {opener} opened here is not closed: {exc.problem} by line {line}, column {column}"
        )
        line, column = cm.line + 1, cm.column + 1
        hint = f"add the closing {closer}, or a comma between items"
    else:
        unclosed = _unclosed_quote(exc, text)
        if unclosed is not None:
            return unclosed
        if exc.context:
            problem = f"{problem} ({exc.context})"
    return YamlProblem(line, column, f"invalid YAML: {problem}", hint)


class NeedsFullParse(Exception):
    """The fast reader met something only `parse` judges: a tag, a merge key, a duplicate key,
    a key that is not text, too deep, too many values or too much text, several documents, or
    broken YAML."""


_SCALAR = yaml.ScalarEvent
_MAP_START = yaml.MappingStartEvent
_MAP_END = yaml.MappingEndEvent
_SEQ_START = yaml.SequenceStartEvent
_SEQ_END = yaml.SequenceEndEvent
_ALIAS = yaml.AliasEvent
_DOC_START = yaml.DocumentStartEvent
_STREAM_END = yaml.StreamEndEvent
# A plain scalar whose first character is not one of these is text: no need to resolve it.
_MAYBE_NOT_TEXT = frozenset("0123456789+-.~nNtTfF")
_WORDS: dict[str, Any] = {
    **dict.fromkeys(_NULL - {""}),
    **dict.fromkeys(_TRUE, True),
    **dict.fromkeys(_FALSE, False),
}


def parse_data(
    text: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
    max_chars: int = MAX_CHARS,
) -> Any:
    """The plain data of one YAML document, read fast and without positions.

    It accepts exactly what `parse` accepts and builds the same data; on anything that `parse`
    would refuse or treat specially it raises `NeedsFullParse`, and the caller runs `parse`,
    which says what is wrong and where. Positions cost time, so they are read only then.
    """
    if _Loader is None:  # pragma: no cover
        raise NeedsFullParse
    loader = _Loader(text)
    get_event = loader.get_event
    no_key = _NO_KEY
    maybe_not_text = _MAYBE_NOT_TEXT
    words = _WORDS
    holder: list[Any] = []
    current: Any = holder
    is_map = False
    key: Any = no_key
    # Each frame: (container, is_mapping, anchor, values before it, characters aliases had
    # added before it, where its source starts) of the enclosing node.
    stack: list[tuple[Any, bool, str | None, int, int, int]] = []
    # anchor -> (value, values in it, at most the characters of text in it, aliases inside
    # expanded). An anchored collection's text is bounded by its span in the source, so no
    # scalar is measured: the text a document stands for is at most the document plus what
    # its aliases add. That bound is never below `parse`'s exact count, so this reader never
    # accepts what `parse` refuses; near the limit, `parse` judges.
    anchors: dict[str, tuple[Any, int, int]] = {}
    nodes = 0
    added = 0
    room = max_chars - len(text)
    documents = 0
    try:
        while True:
            event = get_event()
            kind = event.__class__
            if kind is _SCALAR:
                if event.tag is not None:
                    raise NeedsFullParse
                nodes += 1
                if nodes > max_nodes:
                    raise NeedsFullParse
                value = event.value
                if is_map and key is no_key:
                    # Keys stay text (`on:` is the key "on"); `<<` is a merge, read by `parse`.
                    if value in current or (value == "<<" and not event.style):
                        raise NeedsFullParse
                    key = value
                    continue
                if not event.style:
                    if not value:
                        value = None
                    elif value[0] in maybe_not_text:
                        value = words[value] if value in words else scalar_value(value, None)
                if is_map:
                    current[key] = value
                    key = no_key
                else:
                    current.append(value)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1, len(event.value))
            elif kind is _MAP_START or kind is _SEQ_START:
                if event.tag is not None or len(stack) >= max_depth:
                    raise NeedsFullParse
                nodes += 1
                new: Any = {} if kind is _MAP_START else []
                if is_map:
                    if key is no_key:
                        raise NeedsFullParse
                    current[key] = new
                else:
                    current.append(new)
                start = event.start_mark.index if event.anchor is not None else 0
                stack.append((current, is_map, event.anchor, nodes, added, start))
                current = new
                is_map = kind is _MAP_START
                key = no_key
            elif kind is _MAP_END or kind is _SEQ_END:
                done = current
                current, is_map, anchor, before, added_before, start = stack.pop()
                key = no_key
                if anchor is not None:
                    span = event.end_mark.index - start
                    anchors[anchor] = (done, nodes - before + 1, span + added - added_before)
            elif kind is _ALIAS:
                target = anchors.get(event.anchor)
                if target is None:
                    raise NeedsFullParse
                nodes += target[1]
                added += target[2]
                if nodes > max_nodes or added > room:
                    raise NeedsFullParse
                if is_map:
                    if key is no_key:
                        raise NeedsFullParse
                    current[key] = target[0]
                    key = no_key
                else:
                    current.append(target[0])
            elif kind is _STREAM_END:
                break
            elif kind is _DOC_START:
                documents += 1
                if documents > 1:
                    raise NeedsFullParse
    except yaml.YAMLError:
        raise NeedsFullParse from None
    finally:
        loader.dispose()
    if nodes > max_nodes:
        raise NeedsFullParse
    return holder[0] if holder else None


def load(text: str, *, what: str = "file") -> Any:
    """The plain data of one YAML document; YamlError with positions when it is not accepted."""
    try:
        return parse_data(text)
    except NeedsFullParse:
        return parse(text, what=what).data


def parse(
    text: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
    max_chars: int = MAX_CHARS,
    what: str = "file",
    quote_names: bool = True,
) -> Document:
    """Parse one YAML document into plain data with marks; raise YamlError on any problem.

    `max_nodes` and `max_chars` bound the values and the characters of scalar text that the
    document stands for, each alias counted as everything under its anchor. With
    `quote_names=False` a message says where a tag or an alias is but not its name: in a config
    file, `SECRET_KEY: !pa55` or `*pa55` is a secret that YAML reads as a tag or an alias.
    """
    if _Loader is None:  # pragma: no cover
        msg = "PyYAML was built without libyaml; install PyYAML with its C extension"
        raise YamlError([YamlProblem(1, 1, msg)])
    problems: list[YamlProblem] = []
    marks: dict[int, dict[Any, tuple[Mark, Mark]]] = {}
    # anchor -> (value, values in it, characters of text in it), aliases inside expanded
    anchors: dict[str, tuple[Any, int, int]] = {}
    keep: list[Any] = []
    # Each frame: [container, is_mapping, pending_key, pending_key_mark, anchor, nodes,
    #              start_mark, mappings merged in with `<<`, characters before it]
    stack: list[list[Any]] = []
    root: Any = None
    root_mark = Mark(1, 1)
    documents = 0
    nodes = 0
    chars = 0

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
            if key is _MERGE:
                sources = value if isinstance(value, list) else [value]
                if not all(isinstance(source, dict) for source in sources):
                    problems.append(
                        YamlProblem(
                            mark.line,
                            mark.column,
                            "`<<` merges a mapping into this one, got something else",
                            "write `<<: *name` where `&name` marks a mapping",
                        )
                    )
                    return
                frame[7].extend(sources)
                return
            entries = marks.setdefault(id(container), {})
            if key in entries:
                first = entries[key][0]
                problems.append(
                    YamlProblem(
                        key_mark.line,
                        key_mark.column,
                        f"duplicate key {key!r}: it is also at line {first.line} (set twice: "
                        f"lines {first.line} and {key_mark.line})",
                        "keep one of the two (YAML would silently keep only the last)",
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
                    problems.append(_tag_problem(event.tag, mark, what, quote_names))
                nodes += 1
                chars += len(event.value)
                if stack and stack[-1][1] and stack[-1][2] is _NO_KEY:
                    value: Any = event.value  # keys stay text: `on:` is the key "on"
                    if value == "<<" and not event.style:
                        value = _MERGE  # a merge key, as YAML 1.1 and PyYAML read it
                else:
                    value = scalar_value(event.value, event.style)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1, len(event.value))
                add(value, mark, 1)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                mark = _mark(event.start_mark)
                if event.tag is not None:
                    problems.append(_tag_problem(event.tag, mark, what, quote_names))
                if len(stack) >= max_depth:
                    msg = f"nesting deeper than {max_depth} levels"
                    raise YamlError(
                        [YamlProblem(mark.line, mark.column, msg, f"a {what} is never this deep")]
                    )
                nodes += 1
                is_map = kind is yaml.MappingStartEvent
                container = {} if is_map else []
                keep.append(container)
                stack.append([container, is_map, _NO_KEY, None, event.anchor, 1, mark, [], chars])
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                if frame[7]:
                    _merge(frame[0], frame[7], marks)
                if frame[4] is not None:
                    anchors[frame[4]] = (frame[0], frame[5], chars - frame[8])
                add(frame[0], frame[6], frame[5])
            elif kind is yaml.AliasEvent:
                mark = _mark(event.start_mark)
                target = anchors.get(event.anchor)
                if target is None:
                    alias = f"alias *{event.anchor}" if quote_names else "an alias (*)"
                    msg = f"{alias} refers to no anchor defined before it"
                    hint = None if quote_names else "quote the value if it is text starting with *"
                    raise YamlError([YamlProblem(mark.line, mark.column, msg, hint)])
                nodes += target[1]
                if nodes > max_nodes:
                    msg = (
                        f"aliases expand this {what} to more than {max_nodes:,} values "
                        "(an alias bomb?)"
                    )
                    raise YamlError([YamlProblem(mark.line, mark.column, msg)])
                chars += target[2]
                if chars > max_chars:
                    msg = (
                        f"aliases expand this {what} to more than {max_chars:,} characters of "
                        "text (an alias bomb?)"
                    )
                    hint = "each alias repeats all the text under its anchor: repeat less of it"
                    raise YamlError([YamlProblem(mark.line, mark.column, msg, hint)])
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
        problems.append(_explain_parse_error(exc, text, what))
        raise YamlError(problems) from None
    except yaml.reader.ReaderError as exc:
        problems.append(_explain_reader_error(exc, text))
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
_MERGE = _NoKey()


def _merge(
    target: dict[Any, Any],
    sources: list[dict[Any, Any]],
    marks: dict[int, dict[Any, tuple[Mark, Mark]]],
) -> None:
    """Apply `<<` merges: keys written in the mapping win, then the first source that has it."""
    entries = marks.setdefault(id(target), {})
    for source in sources:
        source_marks = marks.get(id(source), {})
        for key, value in source.items():
            if key not in target:
                target[key] = value
                if key in source_marks:
                    entries[key] = source_marks[key]


def _tag_problem(tag: str, mark: Mark, what: str, quote_names: bool = True) -> YamlProblem:
    shown = "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org") else tag
    name = f"the YAML tag `{shown}`" if quote_names else "a YAML tag (a value starting with !)"
    return YamlProblem(
        mark.line,
        mark.column,
        f"{name} is not allowed: a {what} holds plain data only",
        "remove the tag; nothing is ever constructed from a tag"
        if quote_names
        else "quote the value if it is text starting with !, or remove the tag",
    )
