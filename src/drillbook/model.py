"""The runbook format, version 1, as frozen pydantic models.

The models check one field at a time (types, units, shapes). Rules that need the whole runbook
(named checks exist, hosts are allowed, paths stay inside the project) live in `runbook`.
The JSON Schema in `schema/runbook-v1.json` is exported from these models.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

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

FORMAT_VERSION = 1

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_PATTERN = r"^\d+(\.\d+)?(ms|s|m|h)$"
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_SEMVER = re.compile(SEMVER_PATTERN)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
_NAME = re.compile(NAME_PATTERN)
PLACEHOLDERS = ("env", "version", "previous", "url", "service")


def _describe(value: Any) -> str:
    """How a found value is named in an error message."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def parse_duration(value: Any) -> float:
    """Seconds from a duration with a unit (`250ms`, `2s`, `5m`, `1h`)."""
    if isinstance(value, bool) or not isinstance(value, str):
        hint = f"; write '{value}s'" if isinstance(value, int | float) else ""
        msg = (
            f"expected a duration with a unit such as 250ms, 2s or 5m, got {_describe(value)}{hint}"
        )
        raise ValueError(msg)
    match = _DURATION.match(value)
    if not match:
        msg = f"expected a duration with a unit such as 250ms, 2s or 5m, got {value!r}"
        raise ValueError(msg)
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        msg = f"expected a duration above zero, got {value!r}"
        raise ValueError(msg)
    return seconds


def format_duration(seconds: float) -> str:
    """A duration as a person writes it: `250ms`, `2s`, `1.5s`, `5m`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60 or seconds % 60:
        return f"{seconds:g}s"
    return f"{seconds / 60:g}m"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["250ms", "2s"]}),
]


def _check_semver(value: Any) -> str:
    if not isinstance(value, str):
        msg = f"expected a semver version such as 1.2.0 (quote it), got {_describe(value)}"
        raise ValueError(msg)
    if not _SEMVER.match(value):
        msg = f"expected a semver version such as 1.2.0, got {value!r}"
        raise ValueError(msg)
    return value


Version = Annotated[
    str,
    BeforeValidator(_check_semver),
    WithJsonSchema({"type": "string", "pattern": SEMVER_PATTERN}),
]


Name = Annotated[str, Field(min_length=1, max_length=100, pattern=NAME_PATTERN)]
Text = Annotated[str, Field(min_length=1)]


def _check_relpath(value: str) -> str:
    if value.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:[\\/]", value):
        msg = f"expected a path relative to the project root, got the absolute path {value!r}"
        raise ValueError(msg)
    depth = 0
    for part in re.split(r"[\\/]+", value):
        if part == "..":
            depth -= 1
            if depth < 0:
                msg = f"expected a path inside the project, got {value!r}, which leads out of it"
                raise ValueError(msg)
        elif part not in ("", "."):
            depth += 1
    return value


RelPath = Annotated[str, Field(min_length=1), AfterValidator(_check_relpath)]


def _check_argv(value: Any) -> Any:
    """A command is a list of arguments; numbers are accepted and kept as their text."""
    if isinstance(value, str):
        msg = (
            f"expected a command as a list of arguments such as [ruff, check, .], got the text "
            f"{value!r}; split it into a list, or add `shell: true` to a step to run it in a shell"
        )
        raise ValueError(msg)
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool):
                out.append(str(item))
            else:
                out.append(item)
        return out
    return value


Argv = Annotated[
    list[Annotated[str, Field(min_length=0)]],
    BeforeValidator(_check_argv),
    Field(min_length=1),
]


class Model(BaseModel):
    """Base of every runbook model: frozen, strict, and closed to unknown keys."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")


# --- steps -------------------------------------------------------------------------------------


class Step(Model):
    """A command that changes something: a deploy, or an extra rollback step."""

    run: Argv | str = Field(description="Argument list; a single string only with shell: true.")
    name: Text | None = None
    shell: bool = False
    timeout: Duration = Field(default=600.0, description="Default 10m.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    cwd: RelPath | None = None

    @model_validator(mode="after")
    def _shell_matches_run(self) -> Step:
        if isinstance(self.run, str) and not self.shell:
            msg = (
                f"expected a command as a list of arguments, got the text {self.run!r}; split it "
                "into a list, or set `shell: true` to run it through a shell"
            )
            raise ValueError(msg)
        return self


def _step_from_list(value: Any) -> Any:
    """A gate may be written as a bare argument list: `lint: [ruff, check, .]`."""
    if isinstance(value, list):
        return {"run": value}
    if isinstance(value, str):
        return _check_argv(value)
    return value


Gate = Annotated[Step, BeforeValidator(_step_from_list)]


class Gates(Model):
    """The checklist's commands that run before anything is deployed."""

    lint: Gate | None = Step(run=["ruff", "check", "."], name="lint")
    unit: Gate | None = Step(run=["pytest", "-q"], name="unit")


class Deploy(Step):
    """How a version reaches an environment."""


# --- checks ------------------------------------------------------------------------------------


class Retry(Model):
    """How often a check is tried before it fails."""

    attempts: int = Field(default=1, ge=1, le=1000)
    interval: Duration = 1.0


class Expect(Model):
    """What an HTTP check must see for it to pass."""

    status: int | list[int] | None = Field(default=None, description="A status or a list of them.")
    json_: dict[str, Any] | None = Field(
        default=None,
        alias="json",
        description="Dotted paths and the values found there (a subset match).",
    )
    body_contains: str | None = None
    header: dict[str, str] | None = None
    max_time: Duration | None = None
    p50: Duration | None = None
    p95: Duration | None = None
    p99: Duration | None = None

    model_config = ConfigDict(populate_by_name=True)

    @model_validator(mode="after")
    def _statuses_are_http(self) -> Expect:
        statuses = self.statuses()
        for code in statuses:
            if not 100 <= code <= 599:
                msg = f"expected an HTTP status between 100 and 599, got {code}"
                raise ValueError(msg)
        return self

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


class HttpCheck(Model):
    """A request to the environment and what its answer must be."""

    get: str | None = None
    head: str | None = None
    post: str | None = None
    name: Text | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | dict[str, Any] | list[Any] | None = Field(
        default=None, description="For post: text, or a mapping or list sent as JSON."
    )
    expect: Expect = Expect(status=200)
    timeout: Duration = Field(default=5.0, description="Connect and read timeout of one request.")
    deadline: Duration | None = Field(
        default=None, description="Overall limit for all attempts; default from timeout x attempts."
    )
    retry: Retry = Retry()
    samples: int = Field(default=1, ge=1, le=10000)
    concurrency: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _one_method(self) -> HttpCheck:
        methods = [m for m in ("get", "head", "post") if getattr(self, m) is not None]
        if len(methods) != 1:
            msg = f"expected exactly one of get, head or post, got {', '.join(methods) or 'none'}"
            raise ValueError(msg)
        if self.body is not None and methods[0] != "post":
            msg = f"expected body only with post, got it with {methods[0]}"
            raise ValueError(msg)
        if self.expect.percentiles() and self.samples < 2:
            names = ", ".join(self.expect.percentiles())
            msg = f"expected samples of 2 or more to measure {names}, got samples {self.samples}"
            raise ValueError(msg)
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

    exit: int = 0
    output_contains: str | None = None


class RunCheck(Model):
    """A command whose exit status is the check."""

    run: Argv | str
    name: Text | None = None
    shell: bool = False
    env: dict[str, str] = Field(default_factory=dict)
    expect: RunExpect = RunExpect()
    timeout: Duration = 60.0
    retry: Retry = Retry()

    @model_validator(mode="after")
    def _shell_matches_run(self) -> RunCheck:
        if isinstance(self.run, str) and not self.shell:
            msg = (
                f"expected a command as a list of arguments, got the text {self.run!r}; split it "
                "into a list, or set `shell: true`"
            )
            raise ValueError(msg)
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


# --- environments, config, logs --------------------------------------------------------------


class Environment(Model):
    """Where a version runs, and what its checks may reach."""

    url: str = Field(description="Base URL; http or https.")
    config: RelPath | None = Field(default=None, description="The file verify-config checks.")
    allow_hosts: list[str] | None = Field(
        default=None, description="Hosts checks may reach; default: the host of url."
    )
    deploy_env: dict[str, str] = Field(default_factory=dict)


class IntRange(Model):
    """Bounds of an integer setting."""

    min: int | None = None
    max: int | None = None


class ConfigRule(Model):
    """What one setting's value must look like."""

    one_of: list[str] | None = None
    integer: IntRange | None = None
    pattern: str | None = None
    boolean: bool | None = None
    url: bool | None = None

    @model_validator(mode="after")
    def _pattern_compiles(self) -> ConfigRule:
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                msg = f"expected a valid regular expression, got {self.pattern!r} ({exc})"
                raise ValueError(msg) from None
        return self


class ConfigRules(Model):
    """The rules that verify-config applies to an environment's config file."""

    required: list[str] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list)
    rules: dict[str, ConfigRule] = Field(default_factory=dict)
    same_keys_as: Name | None = None


class LogSource(Model):
    """Where the person on call looks, and what for."""

    name: Name
    where: RelPath = Field(description="Path of the log; {env} is filled in.")
    look_for: Text | None = None
    format: Literal["jsonl", "text"] = "jsonl"


# --- releases ---------------------------------------------------------------------------------


class Expected(Model):
    """The result a change is expected to have, in words and in checks."""

    summary: Text
    checks: list[CheckRef] = Field(default_factory=list)


class Rollback(Model):
    """How a change is undone, and how the undo is proven."""

    summary: Text
    retry_safe: bool = Field(description="Whether running the rollback twice is safe.")
    steps: list[Step] = Field(default_factory=list)
    checks: list[CheckRef] = Field(default_factory=list)


class Change(Model):
    """One change in a release: who owns it, what it should do, how to undo it."""

    id: Name
    title: Text
    owner: Text
    expected: Expected
    rollback: Rollback
    description: str | None = None
    links: list[str] = Field(default_factory=list)


class Release(Model):
    """A version and the changes it ships."""

    version: Version
    changes: list[Change] = Field(min_length=1)
    notes: str | None = None


class Runbook(Model):
    """A service's release checklist: drillbook runbook format, version 1."""

    drillbook: Literal[1] = Field(description="Format version.")
    service: Name
    owner: Text
    escalation: str | None = None
    description: str | None = None
    tag: str = Field(default="v{version}", description="Tag name; {version} is filled in.")
    environments: dict[Name, Environment]
    config: ConfigRules | None = None
    gates: Gates = Gates()
    deploy: Deploy | None = None
    logs: list[LogSource] = Field(default_factory=list)
    checks: dict[Name, Check] = Field(default_factory=dict)
    releases: list[Release] = Field(default_factory=list)

    def release(self, version: str) -> Release | None:
        """The release of that version, if the runbook declares it."""
        return next((r for r in self.releases if r.version == version), None)

    def tag_name(self, version: str) -> str:
        """The git tag that marks a version."""
        return self.tag.replace("{version}", version)

    def resolve(self, ref: str | HttpCheck | RunCheck) -> HttpCheck | RunCheck:
        """A check reference made concrete (named checks looked up)."""
        if isinstance(ref, str):
            return self.checks[ref]
        return ref


def semver_key(version: str) -> tuple[Any, ...]:
    """A sort key that orders versions as semver does (pre-releases before releases)."""
    match = _SEMVER.match(version)
    if not match:
        return (-1,)
    major, minor, patch, pre = match.group(1), match.group(2), match.group(3), match.group(4)
    pre_key: tuple[Any, ...]
    if pre is None:
        pre_key = (1,)
    else:
        pre_key = (
            0,
            tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")),
        )
    return (int(major), int(minor), int(patch), pre_key)


def is_semver(version: str) -> bool:
    """Whether the text is a semver version."""
    return bool(_SEMVER.match(version))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of runbook format v1, as written to `schema/runbook-v1.json`."""
    schema = Runbook.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://drillbook.dev/schema/runbook-v1.json"
    schema["title"] = "drillbook runbook, format version 1"
    return schema
