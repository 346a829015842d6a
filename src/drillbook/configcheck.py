"""verify-config: an environment's config file checked against the runbook's `config:` rules.

The file's extension says how it is read:

- `.env` (also a file named just `.env`): `KEY=VALUE` lines, optionally `export KEY=VALUE`;
  blank lines and lines starting with `#` are skipped. Lines end in LF or CRLF; a lone CR or a
  NUL byte is an error. A value in single quotes is taken as written; in double quotes, `\\n`,
  `\\t`, `\\r`, `\\"` and `\\\\` are unescaped. An unquoted value ends at ` #` (an inline
  comment) and loses its surrounding blanks. Values span one line only. A key set twice is an
  error, since the application would silently read only one of the two.
- `.yaml` / `.yml`: one document holding a mapping, read by `yamlsafe` (libyaml, YAML 1.2
  scalars: only `true`/`false` are booleans, `yes`/`on` stay text; tags refused; aliases bounded).
- `.json`: an object.
- `.toml`: read with `tomllib`.

Nested mappings are flattened with dots: `database: {url: x}` gives the key `database.url`.
Keys are printed as they are, so a key holding a control character (a newline, an escape
sequence) is an error. Every value is compared as text: booleans are `true`/`false`, null and
an empty mapping are the empty text, integers are written in decimal, JSON and TOML decimals as
written in the file (YAML ones as Python writes the float), and a list is written as JSON. Line
numbers are known for `.env` and YAML files; JSON and TOML give none.

Keys are compared as written, as environment variables are: a rule, a required key, a secret or
a drift on `log_level` that the file has only as `LOG_LEVEL` fails and names `LOG_LEVEL`, even
for a rule on an optional key, which would otherwise pass without checking anything.

A `pattern` is matched with `re.search` in a child process with a deadline (`PATTERN_SECONDS`
for all the patterns of one file): `re` has no timeout, and a pattern with nested repetition
such as `(a+)+$` backtracks for days on a short value that almost matches. A pattern still
matching at the deadline stops verify-config as invalid input (exit 2) naming its rule; it is
not refused at `check` time, since nested repetition is often sound (`^[a-z]+(-[a-z]+)*$`).

Secret values (keys listed in `config.secrets`, and keys whose names say token, secret, password
or key) never appear in a finding: their `got` says `set (masked)` or describes the value without
showing it, and `secrets.Masker` replaces any of their values found in another finding's text
(a listed secret from 3 characters, one guessed from its name from 4 unless it reads as a
setting such as `true` or `3600`), as well as passwords inside URLs and the members named like
secrets inside a value that is JSON text (a list, or a `.env` value holding JSON of settings).
"""

from __future__ import annotations

import contextlib
import re
import stat
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from drillbook.errors import InvalidInput, Problem, UsageError
from drillbook.model import CONFIG_SUFFIXES, ConfigRule, ConfigRules, IntRange
from drillbook.secrets import Masker, is_secret_name, is_setting_word

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from drillbook.model import Runbook
    from drillbook.yamlsafe import Document

#: Config files above this size are refused rather than read into memory.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
#: Deeper nesting than this is refused: a config file has no business being deeper.
MAX_DEPTH = 50
SUFFIXES = CONFIG_SUFFIXES
_MAX_SHOWN = 200

# The spellings YAML 1.2 reads as booleans.
_BOOLEANS = frozenset({"true", "True", "TRUE", "false", "False", "FALSE"})

ConfigValues = dict[str, tuple[str, int | None]]


@dataclass(frozen=True)
class ConfigFinding:
    """The outcome of one rule on one key."""

    key: str
    outcome: Literal["pass", "fail"]
    #: "required", "one_of", "integer", "pattern", "boolean", "url", "drift" or "secret set".
    rule: str
    expected: str
    #: What was found; a secret's value never: "set (masked)", "empty", "only whitespace",
    #: "missing".
    got: str
    #: The line in `file` when known.
    line: int | None
    #: The config file the line belongs to (a drift finding may point into the other env's file).
    file: str | None = None
    #: A passing remark rather than a verdict (a key only this environment has).
    note: bool = False


@dataclass(frozen=True)
class ConfigReport:
    """Every finding of verify-config on one environment's config file."""

    env: str
    path: str
    findings: tuple[ConfigFinding, ...]

    @property
    def ok(self) -> bool:
        """Whether every finding passed."""
        return all(f.outcome == "pass" for f in self.findings)

    @property
    def failures(self) -> tuple[ConfigFinding, ...]:
        """The findings that failed, in report order."""
        return tuple(f for f in self.findings if f.outcome == "fail")


def format_finding(finding: ConfigFinding) -> str:
    """One finding as a person would say it, with the file and line when known."""
    where = ""
    if finding.file:
        where = f" ({finding.file}:{finding.line})" if finding.line else f" ({finding.file})"
    if finding.note:
        return f"{finding.key}: note: {finding.got}{where}"
    if finding.outcome == "pass":
        return f"{finding.key}: {finding.got}, as expected: {finding.expected}{where}"
    if finding.got == "missing":
        return f"{finding.key}: expected {finding.expected}, but it is missing{where}"
    return f"{finding.key}: expected {finding.expected}, got {finding.got}{where}"


# --- reading ------------------------------------------------------------------------------------


def _invalid(
    file: str, line: int, column: int, message: str, *, field: str = "", hint: str | None = None
) -> InvalidInput:
    return InvalidInput([Problem(file, line, column, field, message, hint)])


def _kind(path: Path) -> Literal["env", "yaml", "json", "toml"] | None:
    name = path.name.lower()
    if name == ".env" or name.endswith(".env"):
        return "env"
    if name.endswith((".yaml", ".yml")):
        return "yaml"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".toml"):
        return "toml"
    return None


def read_config(path: Path, *, display: str | None = None) -> ConfigValues:
    """The keys of a config file, flattened, each with its value as text and its line if known.

    `display` is how the file is named in errors (default: the path as given). Raises
    `InvalidInput` when the file is missing, unreadable, not UTF-8 or malformed.
    """
    name = display or str(path)
    kind = _kind(path)
    if kind is None:
        msg = f"expected a config file ending in {', '.join(SUFFIXES)}, got {path.name!r}"
        raise _invalid(name, 1, 1, msg)
    text = _decode(_read_bytes(path, name), name)
    if kind == "env":
        return _parse_env(text, name)
    doc = None
    if kind == "yaml":
        tree, doc = _parse_yaml(text, name)
    elif kind == "json":
        tree = _parse_json(text, name)
    else:
        tree = _parse_toml(text, name)
    return _flatten(tree, doc, name)


def _read_bytes(path: Path, name: str) -> bytes:
    hint = "create it, or correct the environment's `config:` path in the runbook"
    try:
        # A FIFO or device at the path would block or never end; only regular files are read.
        info = path.stat()
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            raise _invalid(name, 1, 1, "expected a config file, found a folder", hint=hint)
        if not stat.S_ISREG(mode):
            raise _invalid(name, 1, 1, "expected a config file, found a special file", hint=hint)
        size = info.st_size
        if size > MAX_CONFIG_BYTES:
            msg = f"expected a config file of at most {MAX_CONFIG_BYTES:,} bytes, found {size:,}"
            raise _invalid(name, 1, 1, msg)
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise _invalid(
            name, 1, 1, "expected a config file, found no such file", hint=hint
        ) from None
    except OSError as exc:
        msg = f"expected a readable config file, but it cannot be read: {exc.strerror or exc}"
        raise _invalid(name, 1, 1, msg) from None
    return data


def _decode(data: bytes, name: str) -> str:
    from drillbook import yamlsafe  # its decode names the bad byte; the runbook loaded it already

    try:
        return yamlsafe.decode(data, max_bytes=MAX_CONFIG_BYTES)
    except yamlsafe.YamlError as exc:
        problems = [Problem(name, p.line, p.column, "", p.message, p.hint) for p in exc.problems]
        raise InvalidInput(problems) from None


def salvage_secrets(path: Path, names: Iterable[str]) -> list[str]:
    """The values that `names` seem to hold in a config file `read_config` refuses.

    For masking only: a file with one broken line is still read by the application or by a
    command that greps it, and its secrets must stay masked in what that command prints. Each
    name is looked for as `NAME=`, `NAME:` or `"NAME":` (the last part of a dotted name, for a
    nested key); a quoted value runs to its closing quote, over lines if need be (a PEM key), and
    an unquoted value, or one whose quote is never closed, to the end of its line. Returns
    nothing for a file that cannot be read at all.
    """
    try:
        data = _read_bytes(path, str(path))
    except InvalidInput:
        return []
    text = data.decode("utf-8", errors="replace")
    found: list[str] = []
    for name in names:
        leaf = re.escape(name.rsplit(".", 1)[-1])
        assignment = re.compile(
            rf"(?<![\w.-])[\"']?{leaf}[\"']?[ \t]*[=:][ \t]*"
            r"(?:\"((?:[^\"\\]|\\.)*)\"|'([^']*)'|[\"']?([^\r\n]*))"
        )
        for match in assignment.finditer(text):
            double, single, bare = match.groups()
            if bare is not None:
                # An unquoted value ends at an inline comment and at the punctuation that
                # follows a value in JSON, TOML or a YAML flow mapping.
                bare = _INLINE_COMMENT.split(bare, maxsplit=1)[0].rstrip(" \t,}]")
            value = double if double is not None else single if single is not None else bare
            if value and value.strip():
                found.append(value)
    return found


# .env ---------------------------------------------------------------------------------------------

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPORT = re.compile(r"export[ \t]+")
_INLINE_COMMENT = re.compile(r"[ \t]#")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _parse_env(text: str, file: str) -> ConfigValues:
    values: ConfigValues = {}
    # split("\n") rather than splitlines(): editors count lines by newlines only, and form feeds
    # or U+2028 inside a value must not shift the line numbers of later errors.
    for lineno, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        _refuse_control(line, file, lineno)
        body = line.lstrip(" \t")
        if not body or body.startswith("#"):
            continue
        col = len(line) - len(body)  # 0-based offset of `body` within the line
        export = _EXPORT.match(body)
        if export:
            col += export.end()
            body = body[export.end() :]
        key_match = _ENV_KEY.match(body)
        if not key_match:
            # The line itself is not echoed: a stray line in a .env file is often a secret.
            got = "a line that does not start with a key"
            if invisible := _invisible(body[0]):
                got = f"{invisible} before the key, {_SHOWS_AS}"
            msg = (
                "expected KEY=VALUE with a key of letters, digits and '_' that does not start "
                f"with a digit, got {got}"
            )
            raise _invalid(file, lineno, col + 1, msg, hint=_INVISIBLE_HINT if invisible else None)
        key = key_match.group()
        rest = body[key_match.end() :]
        after_key = rest.lstrip(" \t")
        col += key_match.end() + len(rest) - len(after_key)
        if not after_key.startswith("="):
            # Neither the word nor the line is echoed: a line without '=' may be a pasted secret.
            invisible = _invisible(after_key[0]) if after_key else None
            got = "the end of the line" if not after_key else "other text"
            if invisible:
                got = f"{invisible}, {_SHOWS_AS}"
            msg = f"expected KEY=VALUE with '=' after the key, got {got}"
            raise _invalid(file, lineno, col + 1, msg, hint=_INVISIBLE_HINT if invisible else None)
        raw_value = after_key[1:]
        value_text = raw_value.lstrip(" \t")
        col += 1 + len(raw_value) - len(value_text)
        value = _env_value(value_text, file, lineno, col, key)
        if key in values:
            first = values[key][1]
            msg = f"expected each key once, got {key} on lines {first} and {lineno}"
            hint = "keep one of them; the application reads only one"
            raise _invalid(file, lineno, 1, msg, field=key, hint=hint)
        values[key] = (value, lineno)
    return values


_SHOWS_AS = "a character that shows as nothing or as a space"
_INVISIBLE_HINT = (
    "delete it and type the line again; text copied from a web page or a chat brings it"
)


def _invisible(char: str) -> str | None:
    """How a character that an editor shows as nothing, or as a plain space, is named.

    A byte order mark or a no-break space before or after a key makes the line look right and
    read wrong. Only such a character is named: naming it shows nothing of a secret, while a
    printable character may be the first of one.
    """
    import unicodedata

    if unicodedata.category(char) not in ("Cf", "Zs", "Zl", "Zp") or char == " ":
        return None
    name = unicodedata.name(char, "").lower() or "an invisible character"
    return f"U+{ord(char):04X} ({name})"


def _refuse_control(line: str, file: str, lineno: int) -> None:
    """Refuse a lone carriage return or a NUL in a `.env` line; neither is ever meant.

    A file saved with old Mac line endings (CR alone) would otherwise read as one line, the
    whole file the value of its first key, while tools that split at CR see every key; and no
    environment variable can hold a NUL.
    """
    for char, msg, hint in (
        (
            "\r",
            "expected lines that end in LF or CRLF, got a carriage return (CR) alone",
            "save the file with LF line endings",
        ),
        ("\x00", "expected text, got a NUL byte, which no environment variable can hold", None),
    ):
        index = line.find(char)
        if index >= 0:
            raise _invalid(file, lineno, index + 1, msg, hint=hint)


def _env_value(text: str, file: str, lineno: int, col: int, key: str) -> str:
    """The value of one `.env` line, from the text after `=` (`col` is its 0-based column)."""
    quote = text[:1]
    if quote not in ("'", '"'):
        comment = _INLINE_COMMENT.search(text)
        if comment:
            text = text[: comment.start()]
        return text.rstrip(" \t")
    end = -1
    if quote == "'":
        end = text.find("'", 1)
        value = text[1:end]
    else:
        out: list[str] = []
        i = 1
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text):
                out.append(_ESCAPES.get(text[i + 1], text[i : i + 2]))
                i += 2
                continue
            if char == '"':
                end = i
                break
            out.append(char)
            i += 1
        value = "".join(out)
    if end < 0:
        msg = f"expected a closing {quote} for the value of {key}, got the end of the line"
        hint = "a quoted value must end on the same line"
        raise _invalid(file, lineno, col + 1, msg, field=key, hint=hint)
    after = text[end + 1 :]
    trailing = after.lstrip(" \t")
    if trailing.rstrip(" \t") and not trailing.startswith("#"):
        msg = f"expected the end of the line after the closing {quote} of {key}, got more text"
        column = col + end + 1 + len(after) - len(trailing) + 1
        raise _invalid(file, lineno, column, msg, field=key)
    return value


# YAML -----------------------------------------------------------------------------------------


def _parse_yaml(text: str, file: str) -> tuple[dict[str, Any], Document | None]:
    from drillbook import yamlsafe  # only YAML config files pay for PyYAML here

    try:
        # A value YAML reads as a tag or an alias may be a secret: never quoted in a message.
        doc = yamlsafe.parse(text, what="config file", quote_names=False)
    except yamlsafe.YamlError as exc:
        problems = [
            Problem(file, p.line, p.column, p.field, p.message, p.hint) for p in exc.problems
        ]
        raise InvalidInput(problems) from None
    if doc.data is None:  # an empty file
        return {}, None
    if not isinstance(doc.data, dict):
        got = "a list" if isinstance(doc.data, list) else "a single value"
        mark = doc.root_mark
        msg = f"expected a mapping of keys to values, got {got}"
        raise _invalid(file, mark.line, mark.column, msg)
    return doc.data, doc


# JSON and TOML ---------------------------------------------------------------------------------


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _parse_json(text: str, file: str) -> dict[str, Any]:
    import json

    try:
        # Numbers stay as written (parse_float/constant keep the text); duplicates are refused.
        tree = json.loads(text, object_pairs_hook=_json_object, parse_float=str, parse_constant=str)
    except json.JSONDecodeError as exc:
        msg = f"expected valid JSON, got an error: {exc.msg}"
        raise _invalid(file, exc.lineno, exc.colno, msg) from None
    except _DuplicateKeyError as exc:
        # json reports no position for a hook's error: the text is scanned again for it.
        found = _json_duplicate_at(text, exc.key)
        if found is None:
            msg = f"expected each key once in an object, got {exc.key!r} twice"
            raise _invalid(file, 1, 1, msg, field=exc.key) from None
        (line, column), (line2, column2) = found
        twice = (
            f"on lines {line} and {line2}"
            if line != line2
            else f"twice on line {line}, at columns {column} and {column2}"
        )
        msg = f"expected each key once in an object, got {exc.key!r} {twice}"
        hint = "keep one of them; the application reads only one"
        raise _invalid(file, line2, column2, msg, field=exc.key, hint=hint) from None
    except RecursionError:
        raise _invalid(file, 1, 1, f"expected at most {MAX_DEPTH} levels of nesting") from None
    if not isinstance(tree, dict):
        got = "a list" if isinstance(tree, list) else "a single value"
        raise _invalid(file, 1, 1, f"expected a JSON object of keys to values, got {got}")
    return tree


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]|\n')
_JSON_COLON = re.compile(r"\s*:")


def _json_duplicate_at(text: str, key: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Where (line, column) `key` is set twice in one object of valid JSON `text`, if found."""
    import json

    line, line_start = 1, 0
    # One frame per open object or array: where each key seen in it is (None: an array).
    stack: list[dict[str, tuple[int, int]] | None] = []
    for token in _JSON_TOKEN.finditer(text):
        lexeme = token.group()
        if lexeme == "\n":
            line, line_start = line + 1, token.end()
        elif lexeme in "{[":
            stack.append({} if lexeme == "{" else None)
        elif lexeme in "}]":
            if stack:
                stack.pop()
        else:
            seen = stack[-1] if stack else None
            if seen is None or not _JSON_COLON.match(text, token.end()):
                continue
            name = json.loads(lexeme)
            where = (line, token.start() - line_start + 1)
            if name in seen and name == key:
                return seen[name], where
            seen.setdefault(name, where)
    return None


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _parse_toml(text: str, file: str) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(text, parse_float=str)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line, column = 1, 1
        if at := _TOML_AT.search(message):
            line, column = int(at.group(1)), int(at.group(2))
            message = message[: at.start()]
        elif message.endswith("(at end of document)"):
            line = text.count("\n") + 1
            message = message.removesuffix("(at end of document)").rstrip()
        if message == "Cannot overwrite a value" and (twice := _toml_twice(text, line)):
            key, first, line = twice
            msg = f"expected each key once in a table, got {key} on lines {first} and {line}"
            hint = "keep one of them; the application reads only one"
            raise _invalid(file, line, 1, msg, field=key, hint=hint) from None
        msg = f"expected valid TOML, got an error: {message}"
        raise _invalid(file, line, column, msg) from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise _invalid(file, 1, 1, f"expected at most {MAX_DEPTH} levels of nesting") from None


_TOML_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_TOML_ASSIGN = re.compile(rf"[ \t]*({_TOML_KEY}(?:[ \t]*\.[ \t]*{_TOML_KEY})*)[ \t]*=")
_TOML_TABLE = re.compile(r"[ \t]*\[")


def _toml_twice(text: str, at: int) -> tuple[str, int, int] | None:
    """The key that tomllib found set again near line `at`, the line that set it first, and
    the line that sets it again; None when the lines do not say.

    tomllib names no key and points at the end of the second value, which may span lines: the
    second setting is the nearest line at or above `at` that starts `KEY =`, and the first the
    line above it that starts with the same key under the same table header.
    """
    lines = text.split("\n")[:at]
    again = next((n for n in range(len(lines), 0, -1) if _TOML_ASSIGN.match(lines[n - 1])), None)
    if again is None:
        return None
    match = _TOML_ASSIGN.match(lines[again - 1])
    key = re.sub(r"[ \t]*\.[ \t]*", ".", match.group(1)) if match else ""
    for n in range(again - 1, 0, -1):
        line = lines[n - 1]
        if _TOML_TABLE.match(line):
            return None  # the header of its table: the first setting is elsewhere
        other = _TOML_ASSIGN.match(line)
        if other and re.sub(r"[ \t]*\.[ \t]*", ".", other.group(1)) == key:
            return key, n, again
    return None


# flattening ----------------------------------------------------------------------------------


def _render(value: Any) -> str:
    """A parsed value as the text that the rules compare."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | dict):
        if not value and isinstance(value, dict):
            return ""
        import json

        return json.dumps(value, ensure_ascii=False, default=_render)
    if hasattr(value, "isoformat"):  # TOML dates and times
        return value.isoformat()
    return str(value)


# C0 and C1 control characters, DEL, the line and paragraph separators, and the characters an
# editor shows as nothing or as a space (no-break and zero-width spaces, direction marks, the
# byte order mark): a key holding one looks like a key the rules name and is another. And the
# lone surrogates a JSON escape (\ud800) can write, which no output can print.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00a0\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff\ud800-\udfff]"
)


def _flatten(tree: dict[str, Any], doc: Document | None, file: str) -> ConfigValues:
    """Nested mappings as dotted keys; lines come from the YAML document's marks."""
    out: ConfigValues = {}

    def walk(node: dict[str, Any], path: tuple[str, ...], at: int = 1) -> None:
        # `at`: the line of the key that holds `node`, where a refusal of it points.
        if len(path) > MAX_DEPTH:
            msg = f"expected at most {MAX_DEPTH} levels of nesting"
            raise _invalid(file, at, 1, msg, field=".".join(path[:3]) + "...")
        marks = doc.marks.get(id(node), {}) if doc is not None else {}
        for key, value in node.items():
            if _CONTROL.search(str(key)):
                # A key is printed as it is: a newline or an escape sequence in it would forge
                # or hide lines of the report, and an invisible character would make it read as
                # the key a rule names while it is another.
                line = marks[key][0].line if key in marks else 1
                msg = f"expected a key of printable characters, got {str(key)!r}"
                raise _invalid(file, line, 1, msg, field=".".join(path))
            key_path = (*path, str(key))
            line = marks[key][0].line if key in marks else None
            if isinstance(value, dict) and value:
                walk(value, key_path, line or at)
                continue
            dotted = ".".join(key_path)
            if dotted in out:
                first = out[dotted][1]
                where = f" (lines {first} and {line})" if first and line else ""
                msg = f"expected each key once, got {dotted} twice once nesting is flattened{where}"
                raise _invalid(file, line or 1, 1, msg, field=dotted)
            out[dotted] = (_render(value), line)

    walk(tree, ())
    return out


# --- verifying ----------------------------------------------------------------------------------


def _looks_secret(key: str) -> bool:
    """Whether a key's name says it holds a secret (API_KEY, DB_PASSWORD, auth.token)."""
    return is_secret_name(re.sub(r"[^A-Za-z0-9]+", "_", key))


def secret_values(values: ConfigValues, listed: Iterable[str]) -> list[tuple[str, bool]]:
    """The values of a config file that are masked, each with whether it is only guessed.

    Those of the `listed` keys (`config.secrets`), and, guessed, those of keys named like a
    secret (API_KEY) and of members so named inside a value that is JSON text. Listed secrets
    are masked from 3 characters; a guessed one from 4, and not when it reads as a setting
    (TOKEN_TTL=3600, SECRET_SCANNING=disabled), which would turn every other 3600 or "disabled"
    of a report into ***.
    """
    listed = set(listed)
    found = [(values[key][0], False) for key in listed if key in values]
    for key, (value, _) in values.items():
        if key in listed:
            continue
        if _looks_secret(key):
            guesses = [value]
        else:
            guesses = _secrets_inside(value)
        found.extend((guess, True) for guess in guesses if not _reads_as_setting(guess))
    return found


def _reads_as_setting(value: str) -> bool:
    """Whether a value under a name only guessed to be secret reads as a setting: a word such
    as `true` or `auto`, or a number of up to 6 digits (a time to live, a size, a port)."""
    return is_setting_word(value) or re.fullmatch(r"[0-9]{1,6}", value.strip()) is not None


def _secrets_inside(value: str) -> list[str]:
    """The values of members named like secrets inside a value that is JSON text.

    A list in a YAML, JSON or TOML file is compared as JSON text, and a `.env` value may hold
    JSON of settings: `[{"host": "db1", "password": "..."}]` is shown whole, so the password
    in it is masked by its name as a key of the file would be.
    """
    if not value.startswith(("[", "{")):
        return []
    import json

    try:
        tree = json.loads(value)
    except (ValueError, RecursionError):
        return []
    found: list[str] = []
    pending: list[Any] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            for key, member in node.items():
                if isinstance(member, list | dict):
                    pending.append(member)
                elif member is not None and _looks_secret(str(key)):
                    found.append(_render(member))
    return found


def _shown(value: str) -> str:
    if len(value) > _MAX_SHOWN:
        value = value[:_MAX_SHOWN] + "..."
    return repr(value)


def _integer_expected(bounds: IntRange) -> str:
    low, high = bounds.min, bounds.max
    if low is not None and high is not None:
        return f"an integer from {low} to {high}"
    if low is not None:
        return f"an integer of at least {low}"
    if high is not None:
        return f"an integer of at most {high}"
    return "an integer"


def _url_ok(value: str) -> bool:
    if not value or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError:
        return False
    return bool(parts.scheme) and bool(parts.hostname)


_RuleCheck = tuple[str, str, "Callable[[str], bool]", str]


def _rule_checks(rule: ConfigRule, matched: bool | None = None) -> list[_RuleCheck]:
    """(rule name, expected, predicate, how a failing secret value is described) per rule part.

    `matched`: whether the value matched the rule's pattern, as `match_patterns` found it.
    """
    checks: list[_RuleCheck] = []
    if rule.one_of is not None:
        allowed = rule.one_of
        checks.append(
            ("one_of", f"one of {', '.join(allowed)}", lambda v: v in allowed, "a value not listed")
        )
    if rule.integer is not None:
        bounds = rule.integer

        def integer_ok(value: str) -> bool:
            # A strict pattern: int() would also take '1_000', ' 7 ' and non-ASCII digits.
            if not re.fullmatch(r"[+-]?[0-9]+", value):
                return False
            digits = value.lstrip("+-").lstrip("0") or "0"
            limit = sys.get_int_max_str_digits()
            if limit and len(digits) > limit:
                # int() refuses this many digits; the runbook's bounds were read under the same
                # limit, so the number is beyond them and its sign says which one.
                return bounds.min is None if value.startswith("-") else bounds.max is None
            number = int(value[0] + digits if value[0] in "+-" else digits)
            return (bounds.min is None or number >= bounds.min) and (
                bounds.max is None or number <= bounds.max
            )

        checks.append(("integer", _integer_expected(bounds), integer_ok, "another value"))
    if rule.pattern is not None:
        checks.append(
            (
                "pattern",
                f"text matching '{rule.pattern}'",
                lambda _v: bool(matched),
                "a value that does not match",
            )
        )
    if rule.boolean:
        checks.append(
            (
                "boolean",
                "true or false",
                lambda v: v in _BOOLEANS,
                "a value that is neither",
            )
        )
    if rule.url:
        checks.append(
            (
                "url",
                "a URL with a scheme and a host, such as https://example.com",
                _url_ok,
                "a value that is not such a URL",
            )
        )
    return checks


#: How long the pattern rules of one config file may take together, the matcher's start
#: included. A sound pattern takes microseconds; one with nested repetition, such as '(a+)+$',
#: can backtrack for days on a value of 40 characters that almost matches.
PATTERN_SECONDS = 5.0

# The matcher of a spawned interpreter, where forking this process is not safe: the same
# answers as `_answers_forked`, read from its standard output.
_MATCHER = """\
import json, re, sys
for pattern, value in json.load(sys.stdin):
    sys.stdout.write("1" if re.search(pattern, value) else "0")
    sys.stdout.flush()
"""


def match_patterns(
    patterns: dict[str, tuple[str, tuple[str, int | None]]],
    *,
    file: str,
    seconds: float = PATTERN_SECONDS,
) -> dict[str, bool]:
    """Whether each key's value matches its pattern (`re.search`), all within `seconds`.

    `patterns` maps a key to its pattern and its value with the value's line in `file`.
    Raises `InvalidInput`, naming the key's line and the rule, when a pattern is still matching
    at the deadline: the runbook's pattern is at fault, and no value is ever shown.
    """
    if not patterns:
        return {}
    from drillbook.parallel import can_fork

    pairs = [(pattern, value) for pattern, (value, _) in patterns.values()]
    # `re` gives no deadline, and a runaway match holds the interpreter: the patterns are
    # matched in a child, which answers one 1 or 0 a pattern as each ends, so that, past the
    # deadline, the count of answers names the pattern that did not end. A fork of this
    # process costs about 2 ms; starting an interpreter, about 16.
    answers, why = (_answers_forked if can_fork() else _answers_spawned)(pairs, seconds)
    if len(answers) == len(pairs):
        return {key: answer == "1" for key, answer in zip(patterns, answers, strict=True)}
    key = list(patterns)[len(answers)]
    pattern, (_, line) = patterns[key]
    msg, hint = f"expected the pattern {pattern!r} to judge the value of {key}, but {why}", None
    if not why:
        msg = (
            f"expected the pattern {pattern!r} to judge the value of {key}, but it was still "
            f"matching after {seconds:g}s: a repetition inside a repetition, such as (a+)+, "
            "can backtrack without end on a value that almost matches"
        )
        hint = "rewrite the pattern without nested repetition, e.g. '^a+$' for '^(a+)+$'"
    raise _invalid(file, line or 1, 1, msg, field=f"config.rules.{key}.pattern", hint=hint)


def _answers_forked(pairs: list[tuple[str, str]], seconds: float) -> tuple[str, str]:
    """The answers of a forked child, and why they stop short ("": the deadline passed)."""
    import os
    import select
    import signal
    import time

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: match, answer, and leave without running any of this process's
        status = 0  # exit code, handlers or buffered output
        try:
            os.close(read_end)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            for pattern, value in pairs:
                os.write(write_end, b"1" if re.search(pattern, value) else b"0")
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    answers = bytearray()
    deadline = time.monotonic() + seconds
    try:
        while len(answers) < len(pairs):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_end], [], [], left)[0]:
                break
            chunk = os.read(read_end, 4096)
            if not chunk:  # the child ended
                break
            answers += chunk
    finally:
        os.close(read_end)
        if len(answers) < len(pairs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    timed_out = len(answers) < len(pairs) and time.monotonic() >= deadline
    why = "" if timed_out else f"the matcher ended with exit {os.waitstatus_to_exitcode(status)}"
    return answers.decode(), why


def _answers_spawned(pairs: list[tuple[str, str]], seconds: float) -> tuple[str, str]:
    """The answers of a spawned interpreter, and why they stop short ("": the deadline)."""
    import json
    import subprocess

    argv = [sys.executable, "-I", "-S", "-c", _MATCHER]
    try:
        # Values reach the matcher on its standard input, never in its arguments.
        done = subprocess.run(
            argv,
            input=json.dumps(pairs),
            capture_output=True,
            text=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:  # run() has stopped the matcher
        out = exc.stdout or ""
        return (out.decode() if isinstance(out, bytes) else out), ""
    except OSError as exc:
        return "", f"the matcher could not start: {exc.strerror or exc}"
    return done.stdout, f"the matcher ended with exit {done.returncode}"


def _config_path(project_root: Path, rel: str, field: str) -> Path:
    """The config file's path, refused when it resolves outside the project."""
    root = project_root.resolve()
    candidate = Path(rel)
    if candidate.is_absolute() or rel.startswith("~"):
        msg = f"expected a path relative to the project root {root}, got {rel!r}"
        raise _invalid(rel, 1, 1, msg, field=field)
    # resolve() follows symlinks, so a link that points out of the project is caught too.
    try:
        full = (root / candidate).resolve()
    except RuntimeError:  # Python before 3.13 raises this, not OSError, for a loop
        msg = "expected a config file, found a symlink loop: the link leads back to itself"
        hint = "point the link at a file, or correct the environment's `config:` path"
        raise _invalid(rel, 1, 1, msg, field=field, hint=hint) from None
    if not full.is_relative_to(root):
        msg = f"expected a path inside the project {root}, got {rel!r}, which leads to {full}"
        raise _invalid(rel, 1, 1, msg, field=field, hint="keep config files inside the project")
    try:
        dangling = (root / candidate).is_symlink() and not full.exists()
    except OSError:  # a name too long to look at: reading it says so
        dangling = False
    if dangling:
        # `ls` shows the file there: "no such file" alone would send the reader looking for it.
        msg = (
            f"expected a config file, found a symlink to {full.relative_to(root)}, "
            "which does not exist"
        )
        hint = "create the file it points to, or point the link at the config file"
        raise _invalid(rel, 1, 1, msg, hint=hint)
    return full


def _environment_config(runbook: Runbook, env: str, *, role: str = "") -> str:
    known = ", ".join(sorted(runbook.environments))
    if env not in runbook.environments:
        import difflib

        close = difflib.get_close_matches(env, list(runbook.environments), n=1)
        hint = f"did you mean {close[0]}?" if close else f"use one of: {known}"
        msg = f"{role}unknown environment {env!r}; the runbook declares: {known}"
        raise UsageError(msg, hint=hint)
    rel = runbook.environments[env].config
    if rel is None:
        msg = f"{role}environment {env!r} has no config file to verify"
        hint = f"add `config: config/{env}.env` under environments.{env} in the runbook"
        raise UsageError(msg, hint=hint)
    return rel


def read_environment_config(runbook: Runbook, env: str, project_root: Path) -> ConfigValues:
    """The keys of `env`'s config file, read as verify-config reads it; no rule is judged.

    Raises as `verify_config` does for an unknown environment, one without a config file, and a
    file that is missing, outside the project or malformed.
    """
    rel = _environment_config(runbook, env)
    path = _config_path(project_root, rel, f"environments.{env}.config")
    return read_config(path, display=rel)


def verify_config(runbook: Runbook, env: str, project_root: Path) -> ConfigReport:
    """Check `env`'s config file against the runbook's rules, drift and secrets.

    Raises `UsageError` for an unknown environment or one without a config file, and
    `InvalidInput` for a config file that is missing, outside the project or malformed.
    """
    rel = _environment_config(runbook, env)
    rules = runbook.config or ConfigRules()
    path = _config_path(project_root, rel, f"environments.{env}.config")
    values = read_config(path, display=rel)
    env_file = _kind(path) == "env"
    secrets = set(rules.secrets)
    masked = secrets | {key for key in values if _looks_secret(key)}
    # The environment's secrets too: another key's value may hold one (a JSON of settings).
    masker = Masker.from_environ()
    for value, guessed in secret_values(values, secrets):
        masker.add(value, guessed=guessed)

    findings: list[ConfigFinding] = []

    def add(key: str, outcome: Literal["pass", "fail"], rule: str, expected: str, got: str) -> None:
        line = values[key][1] if key in values else None
        findings.append(ConfigFinding(key, outcome, rule, expected, got, line, rel))

    cased = _by_case(values)

    def absent(key: str, rule: str, expected: str, got: str) -> None:
        """A key the file lacks; when it has the key in another case, that is the finding."""
        twin = cased.get(key.casefold())
        if twin is None:
            add(key, "fail" if got == "missing" else "pass", rule, expected, got)
            return
        # `log_level` is another environment variable than LOG_LEVEL: a rule naming one never
        # judges the other, and an optional rule would pass without checking anything.
        got = f"only {twin}, which differs in case"
        findings.append(ConfigFinding(key, "fail", rule, expected, got, values[twin][1], rel))

    def shown(key: str) -> str:
        # Masked before `_shown` cuts it: a secret across the cut would leave its head.
        return "set (masked)" if key in masked else _shown(masker.mask(values[key][0]))

    def presence(key: str, rule: str, expected: str) -> None:
        if key not in values:
            absent(key, rule, expected, "missing")
        elif not values[key][0]:
            add(key, "fail", rule, expected, "empty")
        elif not values[key][0].strip():
            # Only a quoted value can be blank ("  "): a setting no application can use.
            add(key, "fail", rule, expected, "only whitespace")
        else:
            add(key, "pass", rule, expected, shown(key))

    # A required secret is checked once, as a secret.
    for key in dict.fromkeys(k for k in rules.required if k not in secrets):
        presence(key, "required", "a non-empty value")
    for key in dict.fromkeys(rules.secrets):
        presence(key, "secret set", "a non-empty secret")

    must_be_set = set(rules.required) | secrets
    matched = match_patterns(
        {
            key: (rule.pattern, values[key])
            for key, rule in rules.rules.items()
            if rule.pattern is not None and key in values
        },
        file=rel,
    )
    for key, rule in rules.rules.items():
        present = key in values
        if key in must_be_set and not (present and values[key][0].strip()):
            continue  # already failed as missing or blank; a second finding says nothing new
        for name, expected, predicate, secret_got in _rule_checks(rule, matched.get(key)):
            if not present:
                absent(key, name, expected, "not set (optional)")
            elif predicate(values[key][0]):
                add(key, "pass", name, expected, shown(key))
            else:
                got = f"{secret_got} (masked)" if key in masked else shown(key)
                if env_file and _REFERENCE.search(values[key][0]):
                    # Else the text reads as the value a loader would make of it.
                    got += " (read as written: verify-config does not expand $ references)"
                add(key, "fail", name, expected, got)

    if env_file:
        findings.extend(_reference_notes(values, masked, rel))

    if rules.same_keys_as is not None and rules.same_keys_as != env:
        findings.extend(
            _drift(
                runbook=runbook,
                env=env,
                rel=rel,
                values=values,
                other=rules.same_keys_as,
                project_root=project_root,
            )
        )

    return ConfigReport(env, rel, tuple(_mask(f, masker) for f in findings))


def _drift(
    *,
    runbook: Runbook,
    env: str,
    rel: str,
    values: ConfigValues,
    other: str,
    project_root: Path,
) -> list[ConfigFinding]:
    other_rel = _environment_config(runbook, other, role="config.same_keys_as: ")
    other_path = _config_path(project_root, other_rel, f"environments.{other}.config")
    try:
        other_values = read_config(other_path, display=other_rel)
    except InvalidInput as exc:
        # Checking one environment stops on another's file: say why that file is read.
        why = f"it is read for config.same_keys_as, which compares {env}'s keys with {other}'s"
        problems = [replace(p, hint=f"{p.hint}; {why}" if p.hint else why) for p in exc.problems]
        raise InvalidInput(problems) from None
    expected = f"every key that {other} has"
    cased = _by_case(values)
    findings = [
        ConfigFinding(
            key,
            "fail",
            "drift",
            f"the key, as {other} has it",
            f"only {twin}, which differs in case" if twin else "missing",
            line,
            other_rel,
        )
        for key, (_, line) in other_values.items()
        if key not in values
        for twin in [cased.get(key.casefold())]
    ]
    if not findings:
        got = f"all {len(other_values)} present"
        findings.append(
            ConfigFinding(f"keys of {other}", "pass", "drift", expected, got, None, rel)
        )
    findings.extend(
        ConfigFinding(
            key,
            "pass",
            "drift",
            f"only keys that {other} has",
            f"only {env} has this key, {other} does not",
            line,
            rel,
            note=True,
        )
        for key, (_, line) in values.items()
        if key not in other_values
    )
    return findings


#: A reference to another variable in a `.env` value: `${NAME}`, `${NAME:-default}`, `$NAME`.
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _reference_notes(values: ConfigValues, masked: set[str], rel: str) -> list[ConfigFinding]:
    """A note on each `.env` value that refers to another variable.

    verify-config reads such a value as written, never expanded: what it would expand to
    depends on the loader (python-dotenv and docker compose expand `${NAME}`, docker's
    `--env-file` does not) and on the environment the application starts in, which is not
    the one verify-config runs in. The note says so, so that a rule's verdict on the text,
    or a secret found "set", is not read as a verdict on the value the application gets.
    """
    notes = []
    for key, (value, line) in values.items():
        # As typed, minus a default: `${LEVEL:-info}` is a reference to ${LEVEL}.
        names = list(
            dict.fromkeys(f"${{{a}}}" if a else f"${b}" for a, b in _REFERENCE.findall(value))
        )
        if not names:
            continue
        # A secret's value is never shown, nor the names inside it: they are part of it.
        what = (
            "another variable ($...)"
            if key in masked
            else ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        )
        got = (
            f"its value refers to {what}, which verify-config reads as written, not expanded: "
            "the rules judged that text; what a loader that expands it (python-dotenv, docker "
            "compose) puts there is not checked"
        )
        notes.append(
            ConfigFinding(key, "pass", "reference", "a value as written", got, line, rel, True)
        )
    return notes


def _by_case(values: ConfigValues) -> dict[str, str]:
    """Each key of `values` under its case-folded form (the first, when several fold alike)."""
    index: dict[str, str] = {}
    for key in values:
        index.setdefault(key.casefold(), key)
    return index


def _mask(finding: ConfigFinding, masker: Masker) -> ConfigFinding:
    """The finding with secret values, and passwords in URLs, replaced by `***`."""
    expected, got = masker.mask(finding.expected), masker.mask(finding.got)
    if (expected, got) == (finding.expected, finding.got):
        return finding
    return replace(finding, expected=expected, got=got)
