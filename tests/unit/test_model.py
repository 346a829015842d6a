"""The runbook model: its JSON Schema is in sync; durations and versions read right."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drillbook import model, yamlsafe
from drillbook.model import (
    Expect,
    Gates,
    HttpCheck,
    Rollback,
    Runbook,
    RunCheck,
    Step,
    format_duration,
    parse_duration,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "schema" / "runbook-v1.json"
GOOD = ROOT / "tests" / "fixtures" / "runbooks" / "good"
REGENERATE = "regenerate it with: drillbook schema --out schema/runbook-v1.json"


def test_schema_file_is_in_sync_with_the_model() -> None:
    on_disk = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert on_disk == model.json_schema(), f"schema/runbook-v1.json is stale; {REGENERATE}"


def test_schema_file_is_written_as_the_schema_task_writes_it() -> None:
    text = json.dumps(model.json_schema(), indent=2, sort_keys=False) + "\n"
    assert SCHEMA.read_text(encoding="utf-8") == text, f"formatting differs; {REGENERATE}"


def test_schema_names_itself() -> None:
    schema = model.json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["required"]) == {"drillbook", "service", "owner", "environments"}
    assert schema["additionalProperties"] is False


def _good_data() -> list[tuple[str, Any]]:
    return [
        (p.stem, yamlsafe.load(yamlsafe.decode(p.read_bytes())))
        for p in sorted(GOOD.glob("*.yaml"))
    ]


@pytest.mark.parametrize(("name", "data"), _good_data(), ids=[n for n, _ in _good_data()])
def test_good_runbooks_validate_against_the_json_schema(name: str, data: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert not errors, [(list(e.absolute_path), e.message) for e in errors]


@pytest.mark.parametrize(
    "path",
    [
        ("owner",),
        ("escalation",),
        ("releases", 0, "changes", 0, "owner"),
        ("releases", 0, "changes", 0, "title"),
        ("releases", 0, "changes", 0, "expected", "summary"),
        ("releases", 0, "changes", 0, "rollback", "summary"),
        ("logs", 0, "look_for"),
    ],
    ids=lambda path: ".".join(map(str, path)),
)
@pytest.mark.parametrize("blank", ["", "   ", "\t\n"], ids=["empty", "spaces", "tab-newline"])
def test_blank_text_is_refused_by_the_model_and_the_schema(
    path: tuple[Any, ...], blank: str
) -> None:
    data = yamlsafe.load((GOOD / "spec-outline.yaml").read_text(encoding="utf-8"))
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = blank
    with pytest.raises(ValidationError) as info:
        Runbook.model_validate(data)
    assert [error["loc"] for error in info.value.errors()] == [path]
    assert "expected some text" in info.value.errors()[0]["msg"]
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert errors, "the schema accepts what the model refuses"
    node[path[-1]] = f" {blank}x "  # blanks around some text are fine, and kept as written
    found: Any = Runbook.model_validate(data)
    for part in path:
        found = found[part] if isinstance(part, int) else getattr(found, part)
    assert found == f" {blank}x "


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("2s", 2.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        (" 2 s ", 2.0),
        ("0.5s", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", [5, 1.5, True, None, "5", "2 seconds", "5d", "", "-1s", "0s", "s"])
def test_durations_refused(bad: Any) -> None:
    with pytest.raises(Exception, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.25, "250ms"), (2.0, "2s"), (1.5, "1.5s"), (300.0, "5m"), (90.0, "90s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_models_are_frozen_and_strict() -> None:
    step = Step(run=["echo", "hi"])
    with pytest.raises(ValidationError):
        step.shell = True  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Step.model_validate({"run": ["echo"], "shel": True})
    with pytest.raises(ValidationError):
        Step.model_validate({"run": "echo hi"})
    assert Step.model_validate({"run": "echo hi", "shell": True}).run == "echo hi"


def test_defaults() -> None:
    gates = Gates()
    assert gates.lint is not None
    assert gates.lint.run == ["ruff", "check", "."]
    check = HttpCheck(get="/health")
    assert check.expect.statuses() == [200]
    assert (check.retry.attempts, check.timeout, check.samples) == (1, 5.0, 1)
    assert RunCheck(run=["true"]).expect.exit == 0
    assert Rollback(summary="redeploy").retry_safe is False


def test_expect_helpers() -> None:
    expect = Expect.model_validate({"status": [200, 204], "p95": "300ms", "p50": "100ms"})
    assert expect.statuses() == [200, 204]
    assert expect.percentiles() == {"p50": 0.1, "p95": 0.3}
    assert Expect().statuses() == []


def test_http_check_method_and_target() -> None:
    assert (HttpCheck(get="/a").method, HttpCheck(get="/a").target) == ("GET", "/a")
    assert HttpCheck(head="/b").method == "HEAD"
    post = HttpCheck.model_validate({"post": "/c", "json": {"a": 1}})
    assert (post.method, post.body) == ("POST", {"a": 1})
    assert HttpCheck.model_validate({"get": "{url}/health"}).target == "/health"


def test_runbook_helpers() -> None:
    data = yamlsafe.load((GOOD / "spec-outline.yaml").read_text())
    rb = Runbook.model_validate(data)
    assert rb.release("1.1.0") is not None
    assert rb.release("9.9.9") is None
    assert rb.tag_name("1.2.0") == "v1.2.0"
    named = rb.resolve("healthy")
    assert isinstance(named, HttpCheck)
    assert named.get == "/health"
    inline = HttpCheck(get="/x")
    assert rb.resolve(inline) is inline


def test_models_can_be_built_in_python_as_other_modules_do() -> None:
    env = model.Environment(url="http://127.0.0.1:1", allow_hosts=["127.0.0.1"])
    assert env.allow_hosts == ["127.0.0.1"]
    rule = model.ConfigRule(one_of=["a"], integer=model.IntRange(min=1, max=2))
    assert rule.integer is not None
    assert rule.integer.max == 2
    copy = env.model_copy(update={"config": "config/x.env"})
    assert copy.config == "config/x.env"
