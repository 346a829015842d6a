"""The runbook format, version 1, as frozen pydantic models.

The models check one field at a time (types, units, shapes). Rules that need the whole runbook
(named checks exist, hosts are allowed, paths stay inside the project) live in `crossfield`.
The JSON Schema in `schema/runbook-v1.json` is exported from these models.

Validators raise `PydanticCustomError("drillbook", message, {"drillbook_hint": hint})` so that
`explain` can show their message as written, with a hint beside it.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from drillbook.versions import SEMVER_PATTERN, is_semver, tag_name_problem

FORMAT_VERSION = 1

_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h)\s*)+$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_NAME = re.compile(NAME_PATTERN)
PLACEHOLDERS = ("env", "version", "previous", "url", "service")
HOST_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?)$"
_HOST = re.compile(HOST_PATTERN)
#: A header name: an HTTP token (RFC 9110, 5.6.2).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def _describe(value: Any) -> str:
    """How a found value is named in an error message."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {source_text(value)}"
    if isinstance(value, str):
        # Masked before the cut, which would leave a secret's head that no masker knows.
        from drillbook.secrets import Masker, remembered

        value = Masker.from_environ(extra=remembered()).mask(value)
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the text {shown!r}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def source_text(value: Any) -> str:
    """A scalar as it was written: numbers keep their text (`0755`, `1.10`), booleans read
    `true`/`false`."""
    text = getattr(value, "text", None)
    if isinstance(text, str):
        return text
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def fail(message: str, hint: str | None = None, *, field: str | None = None) -> NoReturn:
    """Raise a validation error whose message `runbook` shows as written, with a hint.

    `field`: from a model validator, the field the problem is about (its line is shown); a
    dotted path reaches into a nested mapping (`expect.p95`).
    """
    context: dict[str, str] = {}
    if hint:
        context["drillbook_hint"] = hint
    if field:
        context["drillbook_field"] = field
    raise PydanticCustomError("drillbook", message, context or None)


# --- scalars -----------------------------------------------------------------------------------


def _duration(value: Any, *, zero_ok: bool) -> float:
    expected = "expected a duration with a unit, such as 250ms, 2s or 5m"
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            fail(
                f"{expected}, got {_describe(value)} without a unit",
                f"write {source_text(value)}s for seconds, or {source_text(value)}ms",
            )
        fail(f"{expected}, got {_describe(value)}")
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(_DURATION_PART.sub("", value)) or not value.strip():
        fail(f"{expected}, got {value!r}", "units are ms, s, m and h")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds < 0 or (seconds == 0 and not zero_ok):
        fail(f"expected a duration above zero, got {value!r}")
    return seconds


def parse_duration(value: Any) -> float:
    """Seconds from a duration with a unit (`250ms`, `2s`, `1.5s`, `5m`, `1h`, `1m30s`)."""
    return _duration(value, zero_ok=False)


def _parse_delay(value: Any) -> float:
    return _duration(value, zero_ok=True)


def format_duration(seconds: float) -> str:
    """A duration as a person writes it: `250ms`, `2s`, `1.5s`, `5m`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60 or seconds % 60:
        return f"{seconds:g}s"
    return f"{seconds / 60:g}m"


_DURATION_SCHEMA = {"type": "string", "pattern": DURATION_PATTERN, "examples": ["250ms", "2s"]}

Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]
Delay = Annotated[float, BeforeValidator(_parse_delay), WithJsonSchema(_DURATION_SCHEMA)]


def _check_semver(value: Any) -> str:
    expected = "expected a semver version such as 1.2.0"
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = source_text(value)
        whole = ".".join([*text.split("."), "0", "0"][:3])
        fail(f"{expected}, got {_describe(value)}", f"a version has three parts: write {whole}")
    if not isinstance(value, str):
        fail(f"{expected}, got {_describe(value)}")
    if not is_semver(value):
        bare = value.strip()
        hint = "three whole numbers: MAJOR.MINOR.PATCH, optionally -pre.release or +build"
        if bare[:1] in ("v", "V") and is_semver(bare[1:]):
            hint = f"drop the v: {bare[1:]} (the tag adds it: tag defaults to v{{version}})"
        elif bare[:1] in ("v", "V") or re.fullmatch(r"\d+(\.\d+)?", bare):
            numbers = bare.lstrip("vV").split(".")
            if all(n.isdigit() for n in numbers) and len(numbers) < 3:
                hint = f"write {'.'.join([*numbers, '0', '0'][:3])}"
        fail(f"{expected}, got {value!r}", hint)
    return value


Version = Annotated[
    str,
    BeforeValidator(_check_semver),
    WithJsonSchema({"type": "string", "pattern": SEMVER_PATTERN}),
]


Name = Annotated[str, Field(min_length=1, max_length=100, pattern=NAME_PATTERN)]


#: The placeholders of commands that a tag format does not fill.
_OTHER_PLACEHOLDER = re.compile(r"\{(?:env|previous|url)\}")


def _check_tag_format(value: str) -> str:
    expected = "expected a tag format with {version} once, such as v{version}"
    if value.count("{version}") != 1:
        fail(f"{expected}, got {value!r}", "every release needs a tag of its own: v{version}")
    unfilled = _OTHER_PLACEHOLDER.search(value)
    if unfilled:
        # As a command's placeholders are written: left as it is, it would be in every tag.
        fail(
            f"expected only {{version}} and {{service}} in a tag format, got {value!r}, whose "
            f"{unfilled.group()} would be in the tag as it is written",
            "a tag marks a version of the service, the same on every environment: "
            "{service}/v{version}",
        )
    # A pre-release with build metadata holds every character a version can bring.
    for sample in ("1.0.0", "1.0.0-rc.1+build.5"):
        problem = tag_name_problem(value.replace("{version}", sample))
        if problem is not None:
            fail(
                f"expected a format that makes a valid git tag name, got {value!r}, whose tag "
                f"for {sample} is not one: {problem}",
                "formats such as v{version} or release/{version} make valid tag names",
            )
    return value


TagFormat = Annotated[str, AfterValidator(_check_tag_format)]


def _invisible(stripped: str) -> bool:
    """Whether text with no whitespace at its ends holds no character that shows.

    A zero-width space or a byte-order mark pasted in an owner's place looks blank on every
    page and in every message, and names nobody.
    """
    return not any(char.isprintable() and not char.isspace() for char in stripped)


def _not_blank(hint: str) -> BeforeValidator:
    """A validator refusing text that is empty or only whitespace, with `hint` to say why.

    It runs before the type check, so an empty text gets the hint too; what is not text is
    left to the type check and its own message.
    """

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        # Inline, as every text of every runbook passes here: a visible first character ends it.
        stripped = value.strip()
        if not stripped or (not stripped[0].isprintable() and _invisible(stripped)):
            blank = ", which is only whitespace or invisible characters" if value else ""
            fail(f"expected some text, got {_describe(value)}{blank}", hint)
        return value

    return BeforeValidator(check)


# Text a person reads (an owner, a summary, a name): blank text would show as nothing in the
# rollback note and the docs, so it is refused as a missing value is. The schema says so too
# (`\S`: at least one character that is not whitespace), for editors.
Text = Annotated[
    str,
    Field(min_length=1, json_schema_extra={"pattern": r"\S"}),
    _not_blank("write it in words; a blank value says nothing"),
]
ServiceOwner = Annotated[
    Text, _not_blank("name the team or person accountable for the service, such as team-web")
]
ChangeOwner = Annotated[
    Text, _not_blank("name the person or team who owns this change, such as alice")
]


def _as_text(value: Any) -> Any:
    """Numbers and booleans where text is wanted (an env value, a header) become their text."""
    if isinstance(value, int | float):
        return source_text(value)
    return value


def _texts(value: Any) -> Any:
    """A mapping whose scalar values become text (environment variables, headers)."""
    if value is None:  # `env:` with nothing after it
        return {}
    if isinstance(value, dict):
        return {k: _as_text(v) for k, v in value.items()}
    return value


def _text_list(value: Any) -> Any:
    if isinstance(value, list):
        return [_as_text(v) for v in value]
    return value


Scalar = str | int | float | bool
TextMap = Annotated[
    dict[str, str], BeforeValidator(_texts, json_schema_input_type=dict[str, Scalar] | None)
]


def _null_list(value: Any) -> Any:
    """A key with nothing after it (`steps:`, `releases:`) is an empty list."""
    return [] if value is None else value


def _null_dict(value: Any) -> Any:
    """A key with nothing after it (`checks:`, `rules:`) is an empty mapping."""
    return {} if value is None else value


def _or_empty_list(tp: Any) -> Any:
    return BeforeValidator(_null_list, json_schema_input_type=tp | None)


def _or_empty_dict(tp: Any) -> Any:
    return BeforeValidator(_null_dict, json_schema_input_type=tp | None)


Texts = Annotated[list[str], _or_empty_list(list[str])]


def _check_relpath(value: str) -> str:
    if value.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:[\\/]", value):
        fail(
            f"expected a path relative to the project root, got the absolute path {value!r}",
            "paths in a runbook are relative to the folder that holds runbooks/",
        )
    depth = 0
    for part in re.split(r"[\\/]+", value):
        if part == "..":
            depth -= 1
            if depth < 0:
                fail(
                    f"expected a path inside the project, got {value!r}, which leads out of it",
                    "paths in a runbook are relative to the folder that holds runbooks/",
                )
        elif part not in ("", "."):
            depth += 1
    return value


RelPath = Annotated[str, Field(min_length=1), AfterValidator(_check_relpath)]

#: The config files verify-config reads, by how the name ends (a file named just `.env` too).
CONFIG_SUFFIXES = (".env", ".yaml", ".yml", ".json", ".toml")


def _check_config_suffix(value: str) -> str:
    # Found here rather than at the first verify-config: `check` passing a runbook whose
    # config file can never be read would only move the error to release day.
    name = re.split(r"[\\/]", value)[-1].lower()
    if not name.endswith(CONFIG_SUFFIXES):
        fail(
            f"expected a config file ending in {', '.join(CONFIG_SUFFIXES)}, got {value!r}",
            "verify-config reads .env, YAML, JSON and TOML files",
        )
    return value


ConfigPath = Annotated[RelPath, AfterValidator(_check_config_suffix)]


def _check_argv(value: Any) -> Any:
    """A command is a list of arguments; numbers are accepted and kept as the text written."""
    if isinstance(value, str):
        fail(
            f"expected a command as a list of arguments such as [ruff, check, .], got the text "
            f"{value!r}",
            "split it into a list, or add `shell: true` to run it through a shell",
        )
    if isinstance(value, list):
        out: list[Any] = []
        for i, item in enumerate(value):
            if isinstance(item, int | float):
                out.append(source_text(item))
            elif isinstance(item, dict) and len(item) == 1 and next(iter(item)) in PLACEHOLDERS:
                name = next(iter(item))
                fail(
                    f"expected text as argument {i + 1} of the command, got a mapping {{{name}}}",
                    f'quote the placeholder: "{{{name}}}" (unquoted braces are a YAML mapping)',
                )
            elif not isinstance(item, str):
                fail(
                    f"expected text as argument {i + 1} of the command, got {_describe(item)}",
                    "every argument of a command is text",
                )
            else:
                out.append(item)
        if not out:
            fail("expected a command with at least one argument, got an empty list")
        return out
    return value


Argv = Annotated[
    list[Annotated[str, Field(min_length=0)]],
    BeforeValidator(_check_argv, json_schema_input_type=list[Scalar]),
    Field(min_length=1),
]


def _check_run(value: Any) -> Any:
    """`run` of a step or check: an argument list, or (with `shell: true`) one string."""
    if isinstance(value, list):
        return _check_argv(value)
    if isinstance(value, str):
        return value
    fail(
        f"expected a command as a list of arguments such as [ruff, check, .], "
        f"got {_describe(value)}"
    )


Run = Annotated[
    Argv | str,
    BeforeValidator(_check_run),
    Field(description="Argument list; a single string only with shell: true."),
]


class Model(BaseModel):
    """Base of every runbook model: frozen, strict, and closed to unknown keys.

    `defer_build`: a model's validator is built on first use, so `import drillbook.model` stays
    cheap and only the models a process validates are ever built.
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", defer_build=True)


def _shell_text_needs_shell(run: Any, shell: bool) -> None:
    if isinstance(run, str) and not shell:
        fail(
            f"expected a command as a list of arguments, got the text {run!r}",
            "split it into a list such as [" + ", ".join(run.split()[:3]) + "], or set "
            "`shell: true` to run it through a shell",
            field="run",
        )


# --- steps -------------------------------------------------------------------------------------


class Step(Model):
    """A command that changes something: a deploy, or an extra rollback step."""

    run: Run
    name: Text | None = None
    shell: bool = False
    timeout: Duration = Field(default=600.0, description="Default 10m.")
    env: TextMap = Field(default_factory=dict, description="Extra environment variables.")
    cwd: RelPath | None = None

    @model_validator(mode="after")
    def _shell_matches_run(self) -> Step:
        _shell_text_needs_shell(self.run, self.shell)
        return self


def _step_from_list(value: Any) -> Any:
    """A step may be written as a bare argument list: `lint: [ruff, check, .]`."""
    if isinstance(value, list):
        return {"run": value}
    if isinstance(value, str):
        return _check_argv(value)
    return value


Gate = Annotated[Step, BeforeValidator(_step_from_list, json_schema_input_type=Step | list[Scalar])]


@functools.cache
def _default_step(name: str, argv: tuple[str, ...]) -> Step:
    return Step(run=list(argv), name=name)


def _default_gate(name: str, argv: list[str]) -> Any:
    # Defaults are built once and shared: the models are frozen, and building one per runbook
    # is a validation each time.
    return Field(
        default_factory=lambda: _default_step(name, tuple(argv)),
        json_schema_extra={"default": argv},
    )


class Gates(Model):
    """The checklist's commands that run before anything is deployed."""

    lint: Gate | None = _default_gate("lint", ["ruff", "check", "."])
    unit: Gate | None = _default_gate("unit", ["pytest", "-q"])


class Deploy(Step):
    """How a version reaches an environment."""


# --- checks ------------------------------------------------------------------------------------


class Retry(Model):
    """How often a check is tried before it fails."""

    attempts: int = Field(default=1, ge=1, le=1000)
    interval: Delay = 1.0


@functools.cache
def _default_retry() -> Retry:
    return Retry()


def _check_status(value: Any) -> Any:
    expected = "expected an HTTP status such as 200, or a list of them such as [200, 204]"
    if value is None:
        return value
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        fail(f"{expected}, got an empty list")
    for item in items:
        where = " in the list" if isinstance(value, list) else ""
        if isinstance(item, bool) or not isinstance(item, int):
            hint = None
            if isinstance(item, str) and item.strip().isdigit():
                hint = f"write {item.strip()} without quotes"
            fail(f"{expected}, got {_describe(item)}{where}", hint)
        if not 100 <= item <= 599:
            fail(f"expected an HTTP status between 100 and 599, got the number {item}{where}")
        if 100 <= item < 200 and item != 101:
            # The checks read past interim answers (103 Early Hints) to the final one.
            fail(
                f"expected a final HTTP status, got the interim status {item}{where}",
                "a 1xx answer comes before the final one and is not judged: expect the status "
                "that follows it, such as 200",
            )
    return value


Status = Annotated[
    int | list[int] | None,
    BeforeValidator(_check_status),
    Field(description="A status or a list of them."),
]


def _header_map(value: Any) -> Any:
    """`header: "Content-Type: application/json"` is one header, as a mapping."""
    if isinstance(value, str):
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            fail(
                f"expected a header as a mapping such as {{Content-Type: application/json}}, "
                f"got {value!r}"
            )
        return {name.strip(): text.strip()}
    return _texts(value)


class Expect(Model):
    """What an HTTP check must see for it to pass."""

    status: Status = None
    json_: dict[str, Any] | None = Field(
        default=None,
        alias="json",
        description="Dotted paths and the values found there (a subset match).",
    )
    # An empty text is in every body: such a check would pass whatever staging answers.
    body_contains: str | None = Field(default=None, min_length=1)
    header: (
        Annotated[
            dict[str, str],
            BeforeValidator(_header_map, json_schema_input_type=dict[str, Scalar] | str),
        ]
        | None
    ) = Field(default=None, description="Header names and their values (or 'Name: value').")
    max_time: Duration | None = None
    p50: Duration | None = None
    p95: Duration | None = None
    p99: Duration | None = None

    model_config = ConfigDict(populate_by_name=True)

    def statuses(self) -> list[int]:
        """The accepted statuses as a list."""
        if self.status is None:
            return []
        return [self.status] if isinstance(self.status, int) else list(self.status)

    def percentiles(self) -> dict[str, float]:
        """The percentile limits that are set, by name."""
        return {
            name: value
            for name, value in (("p50", self.p50), ("p95", self.p95), ("p99", self.p99))
            if value is not None
        }


@functools.cache
def _default_expect() -> Expect:
    return Expect(status=200)


def _strip_url_placeholder(value: Any) -> Any:
    """`{url}/health` is the path `/health` under the environment's url."""
    if isinstance(value, str) and value.startswith("{url}"):
        rest = value[len("{url}") :]
        return rest if rest.startswith("/") else "/" + rest
    return value


Target = Annotated[str | None, BeforeValidator(_strip_url_placeholder)]


class HttpCheck(Model):
    """A request to the environment and what its answer must be."""

    get: Target = None
    head: Target = None
    post: Target = None
    name: Text | None = None
    headers: TextMap = Field(default_factory=dict)
    body: str | dict[str, Any] | list[Any] | None = Field(
        default=None, description="For post: text, or a mapping or list sent as JSON."
    )
    expect: Expect = Field(
        default_factory=_default_expect, json_schema_extra={"default": {"status": 200}}
    )
    timeout: Duration = Field(default=5.0, description="Connect and read timeout of one request.")
    deadline: Duration | None = Field(
        default=None, description="Overall limit for all attempts; default from timeout x attempts."
    )
    retry: Retry = Field(
        default_factory=_default_retry, json_schema_extra={"default": {"attempts": 1}}
    )
    samples: int = Field(default=1, ge=1, le=10000)
    concurrency: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="before")
    @classmethod
    def _json_body(cls, data: Any) -> Any:
        """`json: {...}` on a post check is its body, sent as JSON (as `requests` spells it)."""
        if isinstance(data, dict) and "json" in data and "body" not in data and "post" in data:
            data = dict(data)
            data["body"] = data.pop("json")
        return data

    @model_validator(mode="after")
    def _sendable_headers(self) -> HttpCheck:
        """Header names are HTTP tokens, values one line of Latin-1: what http.client sends."""
        for name, value in self.headers.items():
            where = f"headers.{name}" if "." not in name else "headers"
            if not _HEADER_NAME.match(name):
                fail(
                    f"expected a header name of letters, digits and -, got {name!r}",
                    "a header name has no spaces, colons or quotes, such as X-Request-Id",
                    field="headers",
                )
            if any(c in value for c in "\r\n\0"):
                fail(
                    f"expected a header value on one line, got {value!r}",
                    "a header value cannot hold a line break",
                    field=where,
                )
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                fail(
                    f"expected a header value in Latin-1, as HTTP sends it, got {value!r}",
                    "percent-encode the text, or send it in the body of a post check",
                    field=where,
                )
        return self

    @model_validator(mode="after")
    def _one_method(self) -> HttpCheck:
        methods = [m for m in ("get", "head", "post") if getattr(self, m) is not None]
        if len(methods) != 1:
            fail(
                "expected exactly one of get, head or post, got "
                + (" and ".join(methods) if methods else "none of them"),
                "a check is `get: /path`, `head: /path`, `post: /path` or `run: [command]`",
            )
        if self.body is not None and methods[0] != "post":
            fail(f"expected body only with post, got it with {methods[0]}", field="body")
        if methods[0] == "head":
            # An answer to HEAD has no body: such a check could never pass.
            for key, name in (("body_contains", "body_contains"), ("json_", "json")):
                if getattr(self.expect, key) is not None:
                    fail(
                        f"expected no body expectation on a head check (its answer has no "
                        f"body), got {name}",
                        "use get to check the body, or check status and header with head",
                        field=f"expect.{name}",
                    )
        if self.expect.percentiles() and self.samples < 2:
            names = ", ".join(self.expect.percentiles())
            fail(
                f"expected samples of 2 or more to measure {names}, got samples {self.samples}",
                "add `samples: 20` (or more) to the check",
                field="samples"
                if "samples" in self.model_fields_set
                else "expect." + next(iter(self.expect.percentiles())),
            )
        return self

    @property
    def method(self) -> str:
        """The HTTP method in capitals."""
        return "GET" if self.get is not None else "HEAD" if self.head is not None else "POST"

    @property
    def target(self) -> str:
        """The path or URL requested."""
        return self.get or self.head or self.post or ""


class RunExpect(Model):
    """What a command check must see for it to pass."""

    # A process exits with 0 to 255; anything else is a check that could never pass.
    exit: int = Field(default=0, ge=0, le=255, description="The exit status, 0 to 255.")
    # An empty text is in every output: such a check would pass whatever the command printed.
    output_contains: str | None = Field(default=None, min_length=1)


@functools.cache
def _default_run_expect() -> RunExpect:
    return RunExpect()


class RunCheck(Model):
    """A command whose exit status is the check."""

    run: Run
    name: Text | None = None
    shell: bool = False
    env: TextMap = Field(default_factory=dict)
    expect: RunExpect = Field(
        default_factory=_default_run_expect, json_schema_extra={"default": {}}
    )
    timeout: Duration = 60.0
    retry: Retry = Field(
        default_factory=_default_retry, json_schema_extra={"default": {"attempts": 1}}
    )

    @model_validator(mode="after")
    def _shell_matches_run(self) -> RunCheck:
        _shell_text_needs_shell(self.run, self.shell)
        return self


def _check_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "run" in value:
            return "run"
        return "http"
    if isinstance(value, RunCheck):
        return "run"
    if isinstance(value, HttpCheck):
        return "http"
    return None


Check = Annotated[
    Annotated[HttpCheck, Tag("http")] | Annotated[RunCheck, Tag("run")],
    Discriminator(
        _check_kind,
        custom_error_type="check_kind",
        custom_error_message="expected a check: a mapping with get, head, post or run",
    ),
]


def _check_ref(value: Any) -> str | None:
    if isinstance(value, str):
        return "named"
    return _check_kind(value)


CheckRef = Annotated[
    Annotated[str, Tag("named")]
    | Annotated[HttpCheck, Tag("http")]
    | Annotated[RunCheck, Tag("run")],
    Discriminator(
        _check_ref,
        custom_error_type="check_ref",
        custom_error_message=(
            "expected the name of a check, or a check: a mapping with get, head, post or run"
        ),
    ),
]


CheckRefs = Annotated[list[CheckRef], _or_empty_list(list[CheckRef])]


# --- environments, config, logs --------------------------------------------------------------


def _check_host(value: Any) -> Any:
    if not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return source_text(value)
        return value
    if "://" in value or "/" in value or "@" in value:
        fail(
            f"expected a host name such as localhost or 127.0.0.1, got {value!r}",
            "list hosts only: no scheme, path or user",
        )
    if value.count(":") == 1 and not value.startswith("["):
        host = value.split(":")[0]
        fail(
            f"expected a host name such as localhost or 127.0.0.1, got {value!r}",
            f"list the host without its port: {host}",
        )
    if "*" in value:
        # Read as "any host", a wildcard would match nothing: the checks compare hosts whole.
        fail(
            f"expected a host name such as localhost or 127.0.0.1, got {value!r}",
            "allow_hosts has no wildcards: list each host the checks may reach",
        )
    if not _HOST.match(value) and ":" not in value:
        fail(f"expected a host name such as localhost or 127.0.0.1, got {value!r}")
    return value


Host = Annotated[str, BeforeValidator(_check_host), Field(min_length=1)]


def host_key(host: str) -> str:
    """A host as allow_hosts compares it: without IPv6 brackets or a trailing dot, lowercase
    (`[::1]` is `::1`, `LocalHost.` is `localhost`)."""
    return host.strip().strip("[]").rstrip(".").lower()


class Environment(Model):
    """Where a version runs, and what its checks may reach."""

    url: str = Field(description="Base URL; http or https.")
    config: ConfigPath | None = Field(
        default=None, description="The file verify-config checks: .env, .yaml, .json or .toml."
    )
    allow_hosts: list[Host] | None = Field(
        default=None, description="Hosts checks may reach; default: the host of url."
    )
    deploy_env: TextMap = Field(default_factory=dict)


class IntRange(Model):
    """Bounds of an integer setting."""

    min: int | None = None
    max: int | None = None

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            fail(f"expected min at most max, got min {self.min} and max {self.max}", field="max")
        return self


def _int_range(value: Any) -> Any:
    """`integer: true` means any whole number."""
    if value is True:
        return {}
    return value


class ConfigRule(Model):
    """What one setting's value must look like."""

    # A rule that checks nothing would pass every value and read as if it had checked something.
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    one_of: (
        Annotated[
            list[str],
            BeforeValidator(_text_list, json_schema_input_type=list[Scalar]),
            Field(json_schema_extra={"minItems": 1}),
        ]
        | None
    ) = None
    integer: (
        Annotated[
            IntRange,
            BeforeValidator(_int_range, json_schema_input_type=IntRange | Literal[True]),
        ]
        | None
    ) = None
    pattern: str | None = None
    boolean: bool | None = None
    url: bool | None = None

    @model_validator(mode="after")
    def _checks_something(self) -> ConfigRule:
        if self.one_of == []:
            fail(
                "expected at least one allowed value, got an empty list, which no value matches",
                "list the values the setting may take, such as [debug, info]",
                field="one_of",
            )
        if not (
            self.one_of is not None
            or self.integer is not None
            or self.pattern is not None
            or self.boolean
            or self.url
        ):
            fail(
                "expected a rule that checks something (one_of, integer, pattern, boolean: true "
                "or url: true), got none",
                "add what the value must look like, or remove the rule",
            )
        return self

    @model_validator(mode="after")
    def _pattern_compiles(self) -> ConfigRule:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                fail(
                    f"expected a valid regular expression, got {self.pattern!r} ({exc})",
                    "in YAML, write the pattern in single quotes so backslashes stay as typed",
                )
            # re raises these outside re.error: a repeat count above 4294967295, or groups
            # nested deeper than its parser recurses.
            except OverflowError as exc:
                fail(f"expected a valid regular expression, got {self.pattern!r} ({exc})")
            except RecursionError:
                fail(
                    f"expected a valid regular expression, got {_describe(self.pattern)}, "
                    "whose groups are nested too deeply to compile",
                    "nest fewer groups",
                )
        return self


class ConfigRules(Model):
    """The rules that verify-config applies to an environment's config file."""

    required: Texts = Field(default_factory=list)
    secrets: Texts = Field(default_factory=list)
    rules: Annotated[dict[str, ConfigRule], _or_empty_dict(dict[str, ConfigRule])] = Field(
        default_factory=dict
    )
    same_keys_as: Name | None = None


def _log_where(value: str) -> str:
    return value if "://" in value else _check_relpath(value)


class LogSource(Model):
    """Where the person on call looks, and what for."""

    name: Name
    where: Annotated[Text, AfterValidator(_log_where)] = Field(
        description="Path of the log ({env} is filled in), or an http(s) URL."
    )
    look_for: Text | None = None
    format: Literal["jsonl", "text"] = "jsonl"


# --- releases ---------------------------------------------------------------------------------


def _summary_only(value: Any) -> Any:
    """`expected: Admin pages load` is short for `expected: {summary: Admin pages load}`."""
    if isinstance(value, str):
        return {"summary": value}
    return value


class Expected(Model):
    """The result a change is expected to have, in words and in checks (at least one)."""

    summary: (
        Annotated[
            Text,
            _not_blank(
                "say in words what the change should do, or leave `summary` out and give checks"
            ),
        ]
        | None
    ) = None
    checks: CheckRefs = Field(default_factory=list)

    @property
    def text(self) -> str:
        """The summary, or what stands in for it when only checks were given."""
        if self.summary:
            return self.summary
        count = len(self.checks)
        return f"its {count} expected check{'s' if count != 1 else ''} pass"

    @model_validator(mode="after")
    def _says_something(self) -> Expected:
        if self.summary is None and not self.checks:
            fail(
                "expected a summary or checks, got neither",
                "say in words what the change should do (`summary: ...`), and how to check it",
            )
        return self


class Rollback(Model):
    """How a change is undone, and how the undo is proven."""

    summary: (
        Annotated[
            Text,
            _not_blank(
                "say in words how the change is undone, or leave `summary` out and give steps "
                "or checks"
            ),
        ]
        | None
    ) = None
    retry_safe: bool = Field(
        default=False,
        description="Whether running the rollback twice is safe; false unless said.",
    )
    steps: Annotated[list[Gate], _or_empty_list(list[Gate])] = Field(default_factory=list)
    checks: CheckRefs = Field(default_factory=list)

    @property
    def text(self) -> str:
        """The summary, or what stands in for it when only steps or checks were given."""
        if self.summary:
            return self.summary
        steps = len(self.steps)
        return (
            f"{steps} rollback step{'s' if steps != 1 else ''}, then the previous version "
            "deployed again"
        )

    @model_validator(mode="after")
    def _says_something(self) -> Rollback:
        if self.summary is None and not self.steps and not self.checks:
            fail(
                "expected a summary, steps or checks, got none of them",
                "say in words how the change is undone (`summary: ...`)",
            )
        return self


class Change(Model):
    """One change in a release: who owns it, what it should do, how to undo it."""

    id: Name
    title: Annotated[Text, _not_blank("say in a few words what the change is")]
    owner: ChangeOwner
    expected: Annotated[
        Expected, BeforeValidator(_summary_only, json_schema_input_type=str | Expected)
    ]
    rollback: Annotated[
        Rollback, BeforeValidator(_summary_only, json_schema_input_type=str | Rollback)
    ]
    description: str | None = None
    links: list[str] = Field(default_factory=list)


class Release(Model):
    """A version and the changes it ships."""

    version: Version
    changes: list[Change] = Field(min_length=1)
    notes: str | None = None


@functools.cache
def _default_gates() -> Gates:
    return Gates()


class Runbook(Model):
    """A service's release checklist: drillbook runbook format, version 1."""

    drillbook: Literal[1] = Field(description="Format version.")
    service: Name
    owner: ServiceOwner
    escalation: (
        Annotated[
            Text,
            _not_blank("say where to page, such as #team-web-oncall, or leave `escalation` out"),
        ]
        | None
    ) = None
    description: str | None = None
    tag: TagFormat = Field(
        default="v{version}", description="Tag name; {version} and {service} are filled in."
    )
    environments: dict[Name, Environment]
    config: ConfigRules | None = None
    gates: Gates = Field(
        default_factory=_default_gates,
        json_schema_extra={"default": {"lint": ["ruff", "check", "."], "unit": ["pytest", "-q"]}},
    )
    deploy: Deploy | None = None
    logs: Annotated[list[LogSource], _or_empty_list(list[LogSource])] = Field(default_factory=list)
    checks: Annotated[dict[Name, Check], _or_empty_dict(dict[Name, Check])] = Field(
        default_factory=dict
    )
    releases: Annotated[list[Release], _or_empty_list(list[Release])] = Field(default_factory=list)

    def release(self, version: str) -> Release | None:
        """The release of that version, if the runbook declares it."""
        return next((r for r in self.releases if r.version == version), None)

    @property
    def tag_format(self) -> str:
        """`tag` with `{service}` filled in: `{version}` is left, once, for `tag_name`.

        Several services in one repository share a format such as `{service}/v{version}`, as
        their commands share `{service}`; a literal `{service}/v1.2.0` tag marks no service.
        """
        return self.tag.replace("{service}", self.service)

    def tag_name(self, version: str) -> str:
        """The git tag that marks a version."""
        return self.tag_format.replace("{version}", version)

    def resolve(self, ref: str | HttpCheck | RunCheck) -> HttpCheck | RunCheck:
        """A check reference made concrete (named checks looked up)."""
        if isinstance(ref, str):
            return self.checks[ref]
        return ref


def json_schema() -> dict[str, Any]:
    """The JSON Schema of runbook format v1, as written to `schema/runbook-v1.json`."""
    schema = Runbook.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://drillbook.dev/schema/runbook-v1.json"
    schema["title"] = "drillbook runbook, format version 1"
    return schema
