"""The pure parts of checks: JSON paths, percentiles, URLs, placeholders, no-answer wording."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest
import requests

from drillbook.checks import CheckResult, CheckRunner, describe_no_answer, redact_url
from drillbook.errors import PreconditionFailed
from drillbook.expectations import json_matches, json_path, nearest_rank
from drillbook.model import Environment, HttpCheck

DATA = {"status": "ok", "data": {"items": [{"id": 7}, {"id": 8}]}, "app.version": "1.0.0"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("status", "ok"),
        ("data.items.0.id", 7),
        ("data.items.-1.id", 8),
        ("app.version", "1.0.0"),
        ("data.items", [{"id": 7}, {"id": 8}]),
    ],
)
def test_json_path(path: str, value: Any) -> None:
    assert json_path(DATA, path) == value


def test_json_path_through_a_key_with_dots_and_a_nested_one_alike() -> None:
    # `app.version` is both a key of its own and a path into `app`: each is found where it is.
    data = {"app.version": {"major": 1}, "app": {"version": {"minor": 2}}, "a": {"b.c": None}}
    assert json_path(data, "app.version.major") == 1
    assert json_path(data, "app.version.minor") == 2
    assert json_path(data, "app.version") == {"major": 1}
    assert json_path(data, "a.b.c") is None
    assert json_matches({"app.version.minor": 2, "app": {"version.minor": 2}}, data)


@pytest.mark.parametrize("path", ["missing", "data.items.2.id", "data.items.x", "status.deeper"])
def test_json_path_missing(path: str) -> None:
    assert not json_matches(None, json_path(DATA, path))


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a.b": 1}, {"a": {"b": 1}}, True),
        ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, True),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": True}, {"a": 1}, False),
        ({"a": 1}, {"a": True}, False),
        ({"a": "1"}, {"a": 1}, False),
        ({"a": [1, 2]}, {"a": [1, 2]}, True),
        ({"a": [1]}, {"a": [1, 2]}, False),
        ({"a": None}, {"a": None}, True),
        ({"a": None}, {}, False),
        ({"a": {"b": 1}}, {"a": [1]}, False),
    ],
)
def test_json_matches(expected: Any, actual: Any, matches: bool) -> None:
    assert json_matches(expected, actual) is matches


def test_nearest_rank() -> None:
    values = list(range(1, 21))  # 1..20
    assert nearest_rank(values, 50) == 10
    assert nearest_rank(values, 95) == 19
    assert nearest_rank(values, 99) == 20
    assert nearest_rank([5.0, 1.0], 50) == 1.0
    assert nearest_rank([3.0], 99) == 3.0


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bob:pw@host/x", "https://***@host/x"),
        ("http://token@host:81/x?y=@", "http://***@host:81/x?y=@"),
        ("http://host/x?user=a@b", "http://host/x?user=a@b"),
        ("//u:p@host/", "//***@host/"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def runner(url: str = "http://127.0.0.1:8181/base/", **kw: Any) -> CheckRunner:
    environment = Environment.model_validate({"url": url, **kw})
    return CheckRunner(environment, env_name="staging", placeholders={"version": "1.2.0"})


@pytest.mark.parametrize(
    ("target", "url"),
    [
        ("/health", "http://127.0.0.1:8181/base/health"),
        ("health?full=1", "http://127.0.0.1:8181/base/health?full=1"),
        ("/", "http://127.0.0.1:8181/base/"),
        ("http://127.0.0.1:9999/x", "http://127.0.0.1:9999/x"),
        ("HTTP://127.0.0.1./x", "HTTP://127.0.0.1./x"),
    ],
)
def test_resolve_url(target: str, url: str) -> None:
    assert runner().resolve_url(target) == url


def test_allow_hosts_adds_to_the_own_host() -> None:
    r = runner(allow_hosts=["LOCALHOST", "[::1]"])
    assert r.resolve_url("http://localhost/x") == "http://localhost/x"
    assert r.resolve_url("http://[::1]:80/x") == "http://[::1]:80/x"
    assert r.resolve_url("/x").startswith("http://127.0.0.1:8181/")
    with pytest.raises(PreconditionFailed, match=r"host example\.com is not on allow_hosts"):
        r.resolve_url("https://example.com/")


def test_bad_port_refused() -> None:
    with pytest.raises(PreconditionFailed, match="port"):
        runner().resolve_url("http://127.0.0.1:99999/")


def test_placeholders_in_path_and_url() -> None:
    r = runner()
    check = HttpCheck.model_validate({"get": "{url}/v/{version}/{env}"})
    prep = r._prepare(check)
    assert prep.url == "http://127.0.0.1:8181/base/v/1.2.0/staging"


def test_result_as_dict() -> None:
    result = CheckResult("n", "pass", "status 200", "status 200", "m", 1, 5, True, "", (1.5, 2.0))
    data = result.as_dict()
    assert data["timings_ms"] == [1.5, 2.0]
    assert data["outcome"] == "pass"
    assert result.passed


def _chained(inner: BaseException) -> requests.ConnectionError:
    try:
        try:
            raise inner
        except OSError as exc:
            raise requests.ConnectionError("wrapped") from exc
    except requests.ConnectionError as outer:
        return outer


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (requests.exceptions.ConnectTimeout("x"), "no connection within 3.05s (connect timeout)"),
        (requests.exceptions.ReadTimeout("x"), "no answer within 2s (read timeout)"),
        (_chained(ConnectionRefusedError(111, "refused")), "connection refused"),
        (_chained(socket.gaierror(-2, "Name or service not known")), "DNS lookup failed"),
        (_chained(ConnectionResetError(104, "reset")), "connection closed without an answer"),
        (requests.exceptions.SSLError("certificate verify failed"), "TLS error: certificate"),
        (requests.exceptions.InvalidHeader("bad\nheader"), "InvalidHeader: bad header"),
    ],
)
def test_describe_no_answer(exc: BaseException, words: str) -> None:
    assert describe_no_answer(exc, connect_s=3.05, read_s=2.0).startswith(words)


def test_importing_checks_does_not_import_requests() -> None:
    code = "import sys, drillbook.checks; print('requests' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("status", "value", "wait"),
    [
        (429, "120", 120.0),
        (503, " 5 ", 5.0),
        (429, "Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        (429, "Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # a date gone by: at once
        (429, "soon", None),
        (429, "-1", None),
        (500, "120", None),  # only 429 and 503 ask to come back
    ],
)
def test_retry_after(status: int, value: str, wait: float | None) -> None:
    from drillbook.checks import retry_after
    from drillbook.expectations import Sample

    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    sample = Sample(status=status, headers={"Retry-After": value})
    assert retry_after([sample], now=now) == wait
