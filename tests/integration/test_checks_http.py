"""HTTP checks against real servers on 127.0.0.1: pass, fail or inconclusive, expected and got."""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _http_fixtures import (
    Handler,
    LoopbackServer,
    Reply,
    closed_port,
    closes_kept_connections,
    raw_answer,
    serving,
    silent_listener,
    trickling_server,
)
from _project import DRILLBOOK, make_project

from drillbook.checks import CheckRunner
from drillbook.errors import PreconditionFailed
from drillbook.model import Environment, HttpCheck


def http_check(**fields: Any) -> HttpCheck:
    return HttpCheck.model_validate(fields)


def env(url: str, allow_hosts: list[str] | None = None) -> Environment:
    data: dict[str, Any] = {"url": url}
    if allow_hosts is not None:
        data["allow_hosts"] = allow_hosts
    return Environment.model_validate(data)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with serving() as srv:
        yield srv


@pytest.fixture
def runner(server: LoopbackServer) -> Iterator[CheckRunner]:
    with CheckRunner(env(server.url), env_name="staging") as r:
        yield r


def json_reply(data: Any, status: int = 200, delay: float = 0.0) -> Reply:
    return Reply(status, json.dumps(data), {"Content-Type": "application/json"}, delay)


# --- pass and fail ------------------------------------------------------------------------------


def test_pass(server: LoopbackServer, runner: CheckRunner) -> None:
    server.routes["/health"] = json_reply({"status": "ok"})
    result = runner.run(http_check(get="/health", expect={"status": 200, "json": {"status": "ok"}}))
    assert result.outcome == "pass"
    assert result.passed
    assert result.name == "GET /health"
    assert result.expected == "status 200; json status=ok"
    assert result.got.startswith("status 200; json status=ok; time ")
    assert result.message.startswith("GET /health -> 200 (attempt 1/1; retry safe)")
    assert result.attempts == 1
    assert result.retry_safe is True
    assert result.excerpt == '{"status": "ok"}'
    assert result.timings_ms == ()


def test_500_fails_with_expected_and_got(server: LoopbackServer, runner: CheckRunner) -> None:
    server.routes["/health"] = Reply(500, "boom: database unavailable")
    result = runner.run(http_check(get="/health"), name="healthy")
    assert result.outcome == "fail"
    assert result.name == "healthy"
    assert result.expected == "status 200"
    assert result.got == "status 500"
    assert result.message == "GET /health -> 500, expected 200 (attempt 1/1; retry safe)"
    assert result.excerpt == "boom: database unavailable"
    assert result.as_dict()["outcome"] == "fail"
    assert json.dumps(result.as_dict())


def test_status_list_and_default_2xx(server: LoopbackServer, runner: CheckRunner) -> None:
    server.routes["/made"] = Reply(201, "made")
    server.routes["/gone"] = Reply(404, "gone")
    listed = http_check(get="/gone", expect={"status": [200, 404]})
    assert runner.run(listed).outcome == "pass"
    # Without a status in expect, a 2xx is required: a 404 page that happens to match fails.
    only_body = http_check(get="/made", expect={"body_contains": "made"})
    assert runner.run(only_body).outcome == "pass"
    result = runner.run(http_check(get="/gone", expect={"body_contains": "gone"}))
    assert result.outcome == "fail"
    assert result.expected == "status 2xx; body contains 'gone'"
    assert "-> 404, expected 2xx" in result.message


def test_path_joined_under_base_path_with_placeholders(server: LoopbackServer) -> None:
    server.routes["/api/v1/version/1.2.0"] = json_reply({"version": "1.2.0", "env": "staging"})
    environment = env(server.url + "/api/v1/")
    placeholders = {"version": "1.2.0", "service": "demo"}
    with CheckRunner(environment, env_name="staging", placeholders=placeholders) as runner:
        check = http_check(
            get="/version/{version}",
            headers={"X-Service": "{service}"},
            expect={"json": {"version": "{version}"}},
        )
        # The path, the headers and the expected values are all filled in.
        result = runner.run(check)
    assert server.hits["/api/v1/version/1.2.0"] == 1
    assert server.requests[0][2]["X-Service"] == "demo"
    assert result.outcome == "pass"
    assert result.expected == "status 2xx; json version=1.2.0"


def test_post_body_and_retry_not_safe(server: LoopbackServer, runner: CheckRunner) -> None:
    seen: list[bytes] = []

    def echo(handler: Handler) -> Reply:
        seen.append(handler.request_body)
        return Reply(503, "busy")

    server.routes["/orders"] = echo
    check = http_check(
        post="/orders", body={"env": "{env}"}, retry={"attempts": 2, "interval": "10ms"}
    )
    result = runner.run(check)
    assert json.loads(seen[0]) == {"env": "staging"}
    assert result.outcome == "fail"
    assert result.retry_safe is False
    assert result.message == "POST /orders -> 503, expected 200 (attempt 2/2; retry not safe)"


# --- no answer ----------------------------------------------------------------------------------


def test_connection_refused_is_inconclusive_and_retry_safe() -> None:
    port = closed_port()
    with CheckRunner(env(f"http://127.0.0.1:{port}"), env_name="staging") as runner:
        result = runner.run(http_check(get="/health", retry={"attempts": 3, "interval": "10ms"}))
    assert result.outcome == "inconclusive"
    assert result.got == "no answer: connection refused"
    assert result.retry_safe is True
    assert result.attempts == 3
    assert result.message == ("GET /health no answer: connection refused (attempt 3/3; retry safe)")


@pytest.mark.parametrize(
    ("answer", "got"),
    [
        (
            b"SSH-2.0-OpenSSH_8.9\r\n",
            "the answer is not HTTP: it begins 'SSH-2.0-OpenSSH_8.9\\r\\n'",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
            "the answer's headers cannot be read: got more than 65536 bytes when reading header",
        ),
        (
            b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 150 + b"\r\n",
            "the answer's headers cannot be read: got more than 100 headers",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok",
            "answer cut short: the connection closed after 2 of 100 bytes of the body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
            "answer cut short: a chunk of the body is malformed",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nnotgz",
            "the body cannot be decoded: Received response with content-encoding: gzip, but",
        ),
    ],
    ids=["not-http", "long-header", "many-headers", "short-body", "bad-chunk", "bad-gzip"],
)
def test_an_answer_that_cannot_be_read_says_what_is_wrong_with_it(answer: bytes, got: str) -> None:
    with raw_answer(answer) as url, CheckRunner(env(url), env_name="staging") as runner:
        result = runner.run(http_check(get="/health", timeout="2s"))
    assert result.outcome == "inconclusive"
    assert result.got.startswith(f"no answer: {got}"), result.got
    assert result.retry_safe


def test_interim_answers_are_read_past_to_the_final_one() -> None:
    # A 103 Early Hints (or 102 Processing) comes before the answer; it is not the answer.
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"
    processing = b"HTTP/1.1 102 Processing\r\n\r\n"
    body = b'{"status": "ok"}'
    # Connection: close, as the port closes after each answer: a kept connection, found closed
    # by the next check, would make that one's answer "no answer".
    ok = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n"
        b"Connection: close\r\n\r\n" + body
    )
    crash = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom"
    check = http_check(get="/health", expect={"status": 200, "json": {"status": "ok"}})
    answers = [hints + processing + ok, hints + crash]
    with raw_answer(answers) as url, CheckRunner(env(url), env_name="staging") as runner:
        passed = runner.run(check)
        failed = runner.run(check)
    assert passed.outcome == "pass", passed.message
    assert passed.got.startswith("status 200; json status=ok; time ")
    assert failed.outcome == "fail"
    assert failed.got == "status 500"
    assert failed.message.startswith("GET /health -> 500, expected 200 (")
    assert failed.excerpt == "boom"
    # Interim answers without end are no answer at all.
    with raw_answer(hints * 101) as url, CheckRunner(env(url), env_name="staging") as runner:
        endless = runner.run(check)
    assert endless.outcome == "inconclusive"
    assert endless.got == (
        "no answer: the answer's headers cannot be read: more than 100 interim (1xx) answers "
        "before the final one"
    )


def test_a_body_that_stops_coming_counts_as_a_sample_slower_than_its_wait() -> None:
    # The headers came, then 5 of 10 bytes, then nothing: the answer takes longer than the
    # wait, and with another sample answered, max_time is judged on it.
    stalled = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"
    with raw_answer(stalled, hold=True) as url, CheckRunner(env(url), env_name="staging") as r:
        result = r.run(http_check(get="/health", timeout="500ms"))
    assert result.outcome == "inconclusive"
    assert result.got == "no answer: answer not complete within 500ms (the body stopped coming)"

    whole = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    with raw_answer([whole, stalled], hold=True) as url, CheckRunner(env(url), env_name="s") as r:
        check = http_check(get="/health", samples=2, timeout="1s", expect={"max_time": "100ms"})
        result = r.run(check)
    assert result.outcome == "fail", result.message
    assert result.got.startswith("1 of 2 samples over 100ms (slowest 1")


def test_server_that_never_answers_is_inconclusive_within_timeout() -> None:
    with (
        silent_listener() as port,
        CheckRunner(env(f"http://127.0.0.1:{port}"), env_name="staging") as runner,
    ):
        started = time.monotonic()
        result = runner.run(http_check(get="/health", timeout="500ms"))
        elapsed = time.monotonic() - started
    assert result.outcome == "inconclusive"
    assert result.got == "no answer: no answer within 500ms (read timeout)"
    assert elapsed < 0.5 + 1.0


def test_deadline_stops_retries(server: LoopbackServer, runner: CheckRunner) -> None:
    # Attempts at about 0, 0.25 and 0.5 s; a fourth would start after the 600 ms deadline.
    server.routes["/slow"] = Reply(503, "busy", delay=0.05)
    check = http_check(
        get="/slow", timeout="1s", deadline="600ms", retry={"attempts": 50, "interval": "200ms"}
    )
    started = time.monotonic()
    result = runner.run(check)
    elapsed = time.monotonic() - started
    assert result.outcome == "fail"
    assert 2 <= result.attempts <= 3
    assert elapsed < 0.6 + 0.6  # not 50 attempts; the margin is for a busy machine
    # The last attempt may begin with less of the deadline left than the answer takes: it is
    # then said to be cut short, and the 503 of the attempt before stands.
    made = result.attempts
    assert result.message.startswith(
        (
            f"GET /slow -> 503, expected 200 (attempt {made}/50; deadline 600ms reached; ",
            f"GET /slow -> 503, expected 200 (attempt {made - 1}/50; attempt {made} cut short "
            "by the deadline 600ms; ",
        )
    ), result.message


def test_deadline_clips_a_request_and_stops_sampling(server: LoopbackServer) -> None:
    server.routes["/slow"] = Reply(200, "ok", delay=0.3)
    with CheckRunner(env(server.url), env_name="staging") as runner:
        check = http_check(get="/slow", samples=10, timeout="2s", deadline="700ms")
        started = time.monotonic()
        result = runner.run(check)
        elapsed = time.monotonic() - started
    assert elapsed < 0.7 + 0.8  # not 10 x 300 ms; the margin is for a busy machine
    assert result.outcome == "inconclusive"
    assert "of 10 samples taken: the deadline (700ms) came" in result.got
    assert "of 10 samples;" in result.message


# --- retries ------------------------------------------------------------------------------------


def test_retry_succeeds_on_attempt_3(server: LoopbackServer) -> None:
    def flaky(handler: Handler) -> Reply:
        count = handler.server.hits["/health"]
        return json_reply({"status": "ok" if count >= 3 else "starting"})

    server.routes["/health"] = flaky
    slept: list[float] = []
    with CheckRunner(env(server.url), env_name="staging", sleep=slept.append) as runner:
        check = http_check(
            get="/health",
            expect={"json": {"status": "ok"}},
            retry={"attempts": 5, "interval": "250ms"},
        )
        result = runner.run(check)
    assert result.outcome == "pass"
    assert result.attempts == 3
    assert slept == [0.25, 0.25]
    # What the attempt before the pass found is said: a pass after retries is other news.
    assert result.message == (
        "GET /health -> 200 "
        "(attempt 3/5; attempt 2: json status is starting, expected ok; retry safe)"
    )


def test_a_latency_met_after_retries_says_what_the_attempt_before_took(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    def every_other_slow(handler: Handler) -> Reply:
        return Reply(200, "x", delay=1.0 if handler.server.hits["/x"] % 2 == 1 else 0.0)

    server.routes["/x"] = every_other_slow
    check = http_check(
        get="/x", expect={"max_time": "500ms"}, retry={"attempts": 3, "interval": "10ms"}
    )
    result = runner.run(check)
    assert result.outcome == "pass"
    assert result.attempts == 2
    assert re.fullmatch(
        r"GET /x -> 200 \(attempt 2/3; attempt 1: took \d+ms, expected <= 500ms; retry safe\)",
        result.message,
    ), result.message


# --- expectations -------------------------------------------------------------------------------


def test_a_retry_waits_as_long_as_retry_after_asks(server: LoopbackServer) -> None:
    def throttled_once(handler: Handler) -> Reply:
        if handler.server.hits["/health"] == 1:
            return Reply(429, "slow down", {"Retry-After": "2"})
        return Reply(200, "ok")

    server.routes["/health"] = throttled_once
    naps: list[float] = []
    with CheckRunner(env(server.url), env_name="staging", sleep=naps.append) as runner:
        check = http_check(get="/health", retry={"attempts": 3, "interval": "100ms"})
        result = runner.run(check)
    assert result.outcome == "pass", result.message
    assert naps == [2.0]

    # A wait past the check's deadline is not waited for: the check ends, saying why.
    server.routes["/health"] = Reply(503, "maintenance", {"Retry-After": "3600"})
    with CheckRunner(env(server.url), env_name="staging", sleep=naps.append) as runner:
        result = runner.run(check)
    assert result.outcome == "fail"
    assert result.attempts == 1
    assert naps == [2.0]
    assert "the service asked to retry after 60m, past the deadline" in result.message


def test_json_subset_and_dotted_paths(server: LoopbackServer, runner: CheckRunner) -> None:
    data = {"status": "ok", "data": {"items": [{"id": 7, "tags": ["a"]}], "count": 1}, "x": True}
    server.routes["/orders"] = json_reply(data)
    good = http_check(
        get="/orders",
        expect={"json": {"status": "ok", "data.items.0.id": 7, "data": {"count": 1}, "x": True}},
    )
    assert runner.run(good).outcome == "pass"
    bad = http_check(
        get="/orders",
        expect={"json": {"data.items.0.id": 8, "data.items.3.id": 1, "data.count": "1"}},
    )
    result = runner.run(bad)
    assert result.outcome == "fail"
    assert result.got == (
        "json data.items.0.id=7; json data.items.3.id missing; json data.count=the number 1"
    )
    assert "json data.items.0.id is 7, expected 8" in result.message
    assert "json data.items.3.id missing, expected 1" in result.message


def test_a_json_value_alike_on_the_page_but_of_another_kind_names_both_kinds(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    # `count: "3"` in YAML is text; the service answers the number 3. "is 3, expected 3" would
    # leave the person on call staring at two equal things.
    server.routes["/stats"] = json_reply({"count": 3, "on": True, "ids": [1, 2], "name": "3"})
    check = http_check(
        get="/stats",
        expect={"json": {"count": "3", "on": "true", "ids": "[1, 2]", "name": 3}},
    )
    result = runner.run(check)
    assert result.outcome == "fail"
    assert 'json count is the number 3, expected the text "3"' in result.message
    assert 'json on is JSON true, expected the text "true"' in result.message
    assert 'json ids is the list [1, 2], expected the text "[1, 2]"' in result.message
    assert 'json name is the text "3", expected the number 3' in result.message
    assert "json count=the number 3" in result.got


def test_a_number_of_the_runbook_is_shown_as_written_and_told_from_the_text_it_reads_like(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    from drillbook import yamlsafe

    # Unquoted, YAML 1.2 reads 1.10 as the number 1.1 and true as JSON true: "is 1.10,
    # expected 1.1" would send the person on call looking for a 1.1 nobody wrote.
    server.routes["/version"] = json_reply({"version": "1.10", "build": "007", "beta": "true"})
    check = http_check(
        **yamlsafe.load("get: /version\nexpect: {json: {version: 1.10, build: 007, beta: true}}")
    )
    result = runner.run(check)
    assert result.outcome == "fail"
    assert result.expected == "status 2xx; json version=1.10, build=007, beta=true"
    assert (
        'json version is the text "1.10", expected the number 1.10 (quoted, "1.10" is text)'
        in result.message
    )
    assert 'json build is the text "007", expected the number 007 (quoted, "007" is text)' in (
        result.message
    )
    assert 'json beta is the text "true", expected JSON true (quoted, "true" is text)' in (
        result.message
    )
    assert result.got.startswith('json version=the text "1.10"; json build=the text "007"; ')
    # Written as the number it is, it is judged as that number.
    server.routes["/version"] = json_reply({"version": 1.1, "build": 7, "beta": True})
    assert runner.run(check).outcome == "pass"


def test_non_json_body_with_json_expect_is_inconclusive(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    server.routes["/health"] = Reply(200, "<html>maintenance</html>", {"Content-Type": "text/html"})
    result = runner.run(http_check(get="/health", expect={"json": {"status": "ok"}}))
    assert result.outcome == "inconclusive"
    assert result.got == "cannot check json: the body is not JSON (text/html)"
    assert result.excerpt == "<html>maintenance</html>"
    # Nothing at all is said as such, not as a body that is not JSON.
    server.routes["/health"] = Reply(204, "", {"Content-Type": "application/json"})
    result = runner.run(http_check(get="/health", expect={"json": {"status": "ok"}}))
    assert result.outcome == "inconclusive"
    assert result.got == "cannot check json: the body is empty (status 204)"
    server.routes["/health"] = Reply(200, "\r\n", {"Content-Type": "application/json"})
    result = runner.run(http_check(get="/health", expect={"json": {"status": "ok"}}))
    assert result.got == "cannot check json: the body is empty (status 200)"


@pytest.mark.parametrize(
    ("body", "shape"),
    [
        ("[1, 2]", "a JSON list of 2"),
        ("42", "the JSON number 42"),
        ('"ok"', 'the JSON string "ok"'),
        ("null", "JSON null"),
    ],
)
def test_a_json_path_into_a_body_that_is_no_object_says_what_the_body_is(
    server: LoopbackServer, runner: CheckRunner, body: str, shape: str
) -> None:
    server.routes["/health"] = Reply(200, body, {"Content-Type": "application/json"})
    result = runner.run(http_check(get="/health", expect={"json": {"status": "ok"}}))
    assert result.outcome == "fail"
    assert result.got == f"json status missing (the body is {shape})"
    assert result.message.startswith(f"GET /health json status missing (the body is {shape}), ")


def test_json_nested_too_deep_to_parse_is_inconclusive(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    server.routes["/health"] = Reply(200, "[" * 200_000, {"Content-Type": "application/json"})
    result = runner.run(http_check(get="/health", expect={"json": {"status": "ok"}}))
    assert result.outcome == "inconclusive"
    assert result.got == "cannot check json: the body's JSON is nested too deep to read"
    assert result.retry_safe


def test_wrong_status_beats_unreadable_json(server: LoopbackServer, runner: CheckRunner) -> None:
    server.routes["/health"] = Reply(502, "<html>bad gateway</html>", {"Content-Type": "text/html"})
    result = runner.run(http_check(get="/health", expect={"status": 200, "json": {"status": "ok"}}))
    assert result.outcome == "fail"
    assert result.got == "status 502"


def test_header_and_body_contains(server: LoopbackServer, runner: CheckRunner) -> None:
    server.routes["/"] = Reply(200, "service ready", {"X-Version": "1.1.0"})
    good = http_check(get="/", expect={"header": {"x-version": "1.1.0"}, "body_contains": "ready"})
    assert runner.run(good).outcome == "pass"
    bad = http_check(
        get="/",
        expect={"header": {"X-VERSION": "1.2.0", "X-Build": "7"}, "body_contains": "healthy"},
    )
    result = runner.run(bad)
    assert result.outcome == "fail"
    assert result.expected == (
        "status 2xx; body contains 'healthy'; header X-VERSION: 1.2.0; header X-Build: 7"
    )
    assert result.got == ("body without 'healthy'; header X-VERSION: 1.1.0; header X-Build missing")
    assert "header X-VERSION is 1.1.0, expected 1.2.0" in result.message


def test_a_header_is_compared_without_the_whitespace_around_it_and_read_as_utf8() -> None:
    # RFC 9110: whitespace around a field value is not part of it; http.client keeps what
    # trails. And UTF-8 bytes in a header came as Latin-1: `café` would read `cafÃ©`.
    answer = (
        b"HTTP/1.1 200 OK\r\nX-Build: 7 \t\r\nX-Owner: " + "café".encode() + b"\r\n"
        b"X-Old: caf\xe9\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    )
    with raw_answer(answer) as url, CheckRunner(env(url), env_name="staging") as runner:
        good = {"X-Build": "7", "x-owner": "café", "X-Old": "café"}
        result = runner.run(http_check(get="/", expect={"header": good}))
        assert result.outcome == "pass", result.message
        assert result.got.startswith("status 200; header X-Build: 7; header x-owner: café; ")
        result = runner.run(http_check(get="/", expect={"header": {"X-Owner": "cafe"}}))
    assert result.outcome == "fail"
    assert result.got == "header X-Owner: café"
    assert "header X-Owner is café, expected cafe (" in result.message


def test_body_is_read_in_the_charset_its_content_type_names(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    latin = {"Content-Type": "application/json; charset=ISO-8859-1"}
    server.routes["/latin"] = Reply(200, '{"status": "café"}'.encode("latin-1"), latin)
    for expect in ({"body_contains": "café"}, {"json": {"status": "café"}}):
        result = runner.run(http_check(get="/latin", expect=expect))
        assert result.outcome == "pass", result.message
    assert result.excerpt == '{"status": "café"}'
    # UTF-8 under a Latin-1 label, a common slip of servers: the text is found all the same.
    server.routes["/mislabelled"] = Reply(200, '{"status": "café"}'.encode(), latin)
    for expect in ({"body_contains": "café"}, {"json": {"status": "café"}}):
        result = runner.run(http_check(get="/mislabelled", expect=expect))
        assert result.outcome == "pass", result.message
    # A body that says UTF-8 and is not: the check says so rather than only "not found".
    server.routes["/liar"] = Reply(200, "café".encode("latin-1"), {"Content-Type": "text/plain"})
    result = runner.run(http_check(get="/liar", expect={"body_contains": "café"}))
    assert result.outcome == "fail"
    assert result.got == "body without 'café' (the body is not valid utf-8)"


@pytest.mark.parametrize("charset", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_a_body_with_a_byte_order_mark_is_read_in_the_charset_it_marks(
    server: LoopbackServer, charset: str
) -> None:
    from drillbook.secrets import Masker

    secret = "sk_live_5f2b9c1d8e7a"
    text = f"config dump: SECRET_KEY={secret} café"
    body = text.encode(charset)
    if charset == "utf-16-be":
        body = b"\xfe\xff" + body
    # Labelled as plain text, or as Latin-1: the mark says better what the bytes are.
    for ctype in ("text/plain", "text/plain; charset=iso-8859-1"):
        server.routes["/debug"] = Reply(500, body, {"Content-Type": ctype})
        with CheckRunner(env(server.url), env_name="staging", masker=Masker([secret])) as runner:
            result = runner.run(http_check(get="/debug", expect={"body_contains": "café"}))
        assert result.outcome == "fail"
        assert result.got == "status 500"
        assert result.excerpt.endswith("config dump: SECRET_KEY=*** café"), result.excerpt


def test_body_contains_past_the_first_4_mib_is_inconclusive(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    server.routes["/big"] = Reply(200, b"x" * (5 * 1024 * 1024) + b" ready")
    result = runner.run(http_check(get="/big", expect={"body_contains": "ready"}))
    assert result.outcome == "inconclusive"
    assert result.got == (
        "cannot check body_contains: no 'ready' in the first 4 MiB, the rest not read"
    )
    server.routes["/big"] = Reply(200, b"ready " + b"x" * (5 * 1024 * 1024))
    assert runner.run(http_check(get="/big", expect={"body_contains": "ready"})).outcome == "pass"


@pytest.mark.parametrize("judges_body", [False, True])
def test_concurrent_samples_hold_bodies_only_as_their_check_needs_and_judge_one_at_a_time(
    server: LoopbackServer, runner: CheckRunner, monkeypatch: pytest.MonkeyPatch, judges_body: bool
) -> None:
    # 64 samples at once, each with a 4 MiB body kept and parsed, took gigabytes.
    from drillbook import checks

    payload = json.dumps({"status": "ok", "pad": "x" * (5 * 1024 * 1024)}).encode()
    server.routes["/big"] = Reply(200, payload, {"Content-Type": "application/json"})
    seen: list[int] = []
    judging = [0, 0]  # now, most at once
    guard = threading.Lock()
    real = checks.sample_findings

    def spy(check: Any, sample: Any, mask: Any) -> Any:
        with guard:
            judging[0] += 1
            judging[1] = max(judging)
            seen.append(len(sample.body))
        try:
            time.sleep(0.01)  # a slow judge, for another sample to come in meanwhile
            return real(check, sample, mask)
        finally:
            with guard:
                judging[0] -= 1

    monkeypatch.setattr(checks, "sample_findings", spy)
    expect: dict[str, Any] = {"status": 200, "p95": "30s"}
    if judges_body:
        expect["body_contains"] = '"status": "ok"'
    result = runner.run(
        http_check(get="/big", samples=16, concurrency=8, timeout="30s", expect=expect)
    )

    assert result.outcome == "pass", result.message
    assert len(seen) == 16
    assert judging[1] == 1
    if judges_body:
        assert set(seen) == {checks.MAX_BODY_BYTES}  # read and kept to the cap
    else:
        # Read to the cap all the same (its time includes it), but only its excerpt is kept.
        assert set(seen) == {checks._EXCERPT_BYTES}
        assert result.excerpt.startswith('{"status": "ok", "pad": "xxx')


def test_max_time(server: LoopbackServer, runner: CheckRunner) -> None:
    server.routes["/slow"] = Reply(200, "ok", delay=0.25)
    result = runner.run(http_check(get="/slow", expect={"status": 200, "max_time": "100ms"}))
    assert result.outcome == "fail"
    assert result.got.startswith("time 2")
    assert result.message.startswith("GET /slow took 2")
    assert ", expected <= 100ms (attempt 1/1; retry safe)" in result.message
    fast = runner.run(http_check(get="/slow", expect={"status": 200, "max_time": "2s"}))
    assert fast.outcome == "pass"


def test_p95_over_samples(server: LoopbackServer, runner: CheckRunner) -> None:
    def sometimes_slow(handler: Handler) -> Reply:
        # Every fourth request is slow: p50 stays fast, p95 does not.
        slow = handler.server.hits["/admin/orders"] % 4 == 0
        return Reply(200, "[]", delay=0.15 if slow else 0.0)

    server.routes["/admin/orders"] = sometimes_slow
    check = http_check(get="/admin/orders", samples=20, expect={"status": 200, "p95": "100ms"})
    result = runner.run(check)
    assert result.outcome == "fail"
    assert len(result.timings_ms) == 20
    assert result.expected == "status 200; p95 <= 100ms"
    assert result.got.startswith("p95 1")
    assert result.got.endswith("ms over 20 samples")
    assert result.message.startswith("GET /admin/orders p95 1")
    assert ", expected <= 100ms (20 samples; p50 " in result.message
    assert result.message.endswith("; attempt 1/1; retry safe)")

    loose = http_check(get="/admin/orders", samples=8, concurrency=4, expect={"p95": "1s"})
    passed = runner.run(loose)
    assert passed.outcome == "pass"
    assert passed.message.startswith("GET /admin/orders -> 200; p95 ")
    assert "ms <= 1s (8 samples; p50 " in passed.message
    # A limit met is named once, with its measure; the suffix names the other percentile.
    median = runner.run(http_check(get="/admin/orders", samples=4, expect={"p50": "1s"}))
    assert median.outcome == "pass"
    assert median.message.count("p50 ") == 1, median.message
    assert "ms <= 1s (4 samples; p95 " in median.message
    assert len(passed.timings_ms) == 8
    assert "p95 " in passed.got
    assert "over 8 samples" in passed.got


def test_samples_each_checked(server: LoopbackServer, runner: CheckRunner) -> None:
    def every_third_fails(handler: Handler) -> Reply:
        return Reply(500 if handler.server.hits["/x"] % 3 == 0 else 200, "x")

    server.routes["/x"] = every_third_fails
    result = runner.run(http_check(get="/x", samples=9, expect={"status": 200, "p95": "5s"}))
    assert result.outcome == "fail"
    assert result.got == "status 500 in 3 of 9 samples"
    assert result.message.startswith("GET /x -> 500, expected 200 in 3 of 9 samples (9 samples;")


def test_a_failing_sample_does_not_hide_that_the_others_got_no_answer(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    def first_fails_then_hangs(handler: Handler) -> Reply:
        if handler.server.hits["/x"] == 1:
            return Reply(500, "boom")
        return Reply(200, "x", delay=3.0)

    server.routes["/x"] = first_fails_then_hangs
    check = http_check(get="/x", samples=4, concurrency=4, timeout="500ms", deadline="2s")
    result = runner.run(check)
    assert result.outcome == "fail"
    assert result.got == (
        "status 500 in 1 of 4 samples; "
        "no answer: no answer within 500ms (read timeout) in 3 of 4 samples"
    )
    assert result.message.startswith(
        "GET /x -> 500, expected 200 in 1 of 4 samples; "
        "no answer: no answer within 500ms (read timeout) in 3 of 4 samples (1 of 4 samples; "
    )


def test_max_time_over_samples(server: LoopbackServer, runner: CheckRunner) -> None:
    def second_is_slow(handler: Handler) -> Reply:
        return Reply(200, "x", delay=0.2 if handler.server.hits["/x"] == 2 else 0.0)

    server.routes["/x"] = second_is_slow
    result = runner.run(http_check(get="/x", samples=4, expect={"max_time": "150ms"}))
    assert result.outcome == "fail"
    assert result.got.startswith("1 of 4 samples over 150ms (slowest 2")
    assert "expected each <= 150ms (4 samples; p50 " in result.message


def test_samples_that_time_out_count_towards_a_percentile(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    def every_second_hangs(handler: Handler) -> Reply:
        return Reply(200, "x", delay=3.0 if handler.server.hits["/x"] % 2 == 0 else 0.0)

    server.routes["/x"] = every_second_hangs
    # Two of four samples got no answer within 1s: whatever they would have taken, p95 is
    # over 100ms, so the check fails; it does not call that unknown.
    check = http_check(get="/x", samples=4, timeout="1s", expect={"p95": "100ms"})
    result = runner.run(check)
    assert result.outcome == "fail", result.message
    assert result.got.startswith("p95 at least 1")
    assert result.got.endswith("ms over 4 samples, 2 of them without an answer in time")
    assert "expected <= 100ms (2 of 4 samples; p50 " in result.message
    # A limit above the wait cannot be judged from those samples: that stays inconclusive.
    loose = http_check(get="/x", samples=4, timeout="1s", expect={"p95": "5s"})
    result = runner.run(loose)
    assert result.outcome == "inconclusive", result.message
    assert result.got == "no answer: no answer within 1000ms (read timeout) in 2 of 4 samples"


def test_samples_that_time_out_count_towards_max_time(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    def every_second_hangs(handler: Handler) -> Reply:
        return Reply(200, "x", delay=3.0 if handler.server.hits["/x"] % 2 == 0 else 0.0)

    server.routes["/x"] = every_second_hangs
    check = http_check(get="/x", samples=4, timeout="1s", expect={"max_time": "100ms"})
    result = runner.run(check)
    assert result.outcome == "fail", result.message
    assert result.got.startswith("2 of 4 samples over 100ms (slowest 1")
    # When no sample got an answer, that is what the check says: staging does not answer.
    server.routes["/x"] = Reply(200, "x", delay=3.0)
    for expect in ({"max_time": "100ms"}, {"p95": "100ms"}):
        check = http_check(get="/x", samples=2, concurrency=2, timeout="500ms", expect=expect)
        result = runner.run(check)
        assert result.outcome == "inconclusive", result.message
        assert result.got.startswith("no answer: no answer within "), result.got
        assert result.got.endswith(" (read timeout) in 2 of 2 samples"), result.got


def test_stop_ends_retries(server: LoopbackServer) -> None:
    from drillbook.process import StopToken

    server.routes["/health"] = Reply(503, "starting")
    stop = StopToken()
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:
            stop.stop()

    with CheckRunner(env(server.url), env_name="staging", sleep=nap, stop=stop) as runner:
        check = http_check(get="/health", retry={"attempts": 10, "interval": "1s"})
        result = runner.run(check)
    assert result.outcome == "fail"
    assert result.attempts == 1
    assert naps == [0.05, 0.05, 0.05]
    assert "(attempt 1/10; the run was stopped; retry safe)" in result.message


@pytest.mark.parametrize("how", ["signal", "thread"])
def test_a_stop_cuts_the_request_in_flight(how: str) -> None:
    # A service that accepts and never answers, a 30 s read timeout: the stop ends the wait.
    import signal
    import threading

    from drillbook.process import StopToken, handle_signals

    stop = StopToken()
    with silent_listener() as port, handle_signals(stop, (signal.SIGALRM,)):
        url = f"http://127.0.0.1:{port}"
        with CheckRunner(env(url), env_name="staging", stop=stop) as runner:
            if how == "signal":  # delivered to this thread, blocked in the socket's read
                signal.setitimer(signal.ITIMER_REAL, 0.3)
            else:
                threading.Timer(0.3, stop.stop).start()
            began = time.monotonic()
            result = runner.run(http_check(get="/health", timeout="30s"))
            took = time.monotonic() - began
    assert took < 2
    assert result.outcome == "inconclusive"
    assert "the run was stopped while the request waited for its answer" in result.got
    assert result.attempts == 1


def test_a_body_that_trickles_in_ends_at_the_checks_deadline() -> None:
    # A byte every 0.2 s never trips the 1 s read timeout; the answer as a whole must.
    with (
        trickling_server() as port,
        CheckRunner(env(f"http://127.0.0.1:{port}"), env_name="staging") as runner,
    ):
        began = time.monotonic()
        result = runner.run(http_check(get="/slow", timeout="1s", retry={"attempts": 2}))
        took = time.monotonic() - began
    assert result.outcome == "inconclusive"
    assert "answer not complete within 1s" in result.message
    assert result.attempts == 2
    assert took < 4, took


@pytest.mark.parametrize("head_too", [False, True], ids=["body", "head"])
def test_an_answer_cut_at_the_deadline_says_how_long_it_was_waited_for(head_too: bool) -> None:
    # The 5s timeout was never waited out: the 1s deadline cut the answer.
    with (
        trickling_server(head_too=head_too) as port,
        CheckRunner(env(f"http://127.0.0.1:{port}"), env_name="staging") as runner,
    ):
        result = runner.run(http_check(get="/slow", timeout="5s", deadline="1s"))
    assert result.outcome == "inconclusive"
    assert result.got == (
        "no answer: answer not complete within 1s (what was left of the check's deadline)"
    )


def test_a_status_line_and_headers_that_trickle_in_end_at_the_deadline_too() -> None:
    # Read timeouts never trip on them: the check's own deadline cuts its request, and only
    # its own, so a second check on the same session still gets its answer.
    with (
        trickling_server(head_too=True) as port,
        CheckRunner(env(f"http://127.0.0.1:{port}"), env_name="staging") as runner,
    ):
        began = time.monotonic()
        result = runner.run(http_check(get="/slow", timeout="1s"))
        took = time.monotonic() - began
    assert result.outcome == "inconclusive"
    assert "answer not complete within 1s" in result.message
    assert took < 2.5, took


def test_a_deadline_cuts_only_its_own_request(server: LoopbackServer) -> None:
    import threading

    server.routes["/health"] = Reply(200, "ok", {}, 0.3)
    with (
        trickling_server(head_too=True) as port,
        CheckRunner(env(server.url, allow_hosts=["127.0.0.1"]), env_name="staging") as runner,
    ):
        slow = http_check(get=f"http://127.0.0.1:{port}/slow", timeout="1s")
        good = http_check(get="/health", timeout="5s", samples=6)
        results: dict[str, object] = {}
        threads = [
            threading.Thread(target=lambda: results.update(slow=runner.run(slow))),
            threading.Thread(target=lambda: results.update(good=runner.run(good))),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert results["slow"].outcome == "inconclusive"  # type: ignore[attr-defined]
    assert results["good"].outcome == "pass", results["good"]  # type: ignore[attr-defined]


def test_a_stop_ends_the_read_of_a_body_that_trickles_in() -> None:
    import threading

    from drillbook.process import StopToken

    stop = StopToken()
    with (
        trickling_server() as port,
        CheckRunner(env(f"http://127.0.0.1:{port}"), env_name="staging", stop=stop) as runner,
    ):
        threading.Timer(0.5, stop.stop).start()
        began = time.monotonic()
        result = runner.run(http_check(get="/slow", timeout="30s"))
        took = time.monotonic() - began
    assert took < 2, took
    assert result.outcome == "inconclusive"
    assert result.attempts == 1
    # Said as it was: a stop, not a timeout that never happened.
    assert "the run was stopped" in result.message


def test_a_runner_closed_forgets_its_stop_hook() -> None:
    from drillbook.process import StopToken

    stop = StopToken()
    with serving() as srv:
        srv.routes["/health"] = Reply(200, "ok")
        with CheckRunner(env(srv.url), env_name="staging", stop=stop) as runner:
            assert runner.run(http_check(get="/health")).passed
            assert len(stop._hooks) == 1
    assert stop._hooks == {}


def test_injected_clock_drives_the_deadline(server: LoopbackServer) -> None:
    server.routes["/health"] = Reply(503, "starting")
    now = [1000.0]
    with CheckRunner(
        env(server.url),
        env_name="staging",
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    ) as runner:
        check = http_check(get="/health", deadline="10s", retry={"attempts": 100, "interval": "3s"})
        result = runner.run(check)
    # Attempts at 0, 3, 6 and 9 s; one at 12 s would start after the deadline.
    assert result.attempts == 4
    assert result.duration_ms == 9000
    assert "deadline 10s reached" in result.message


def test_an_attempt_the_deadline_cuts_short_leaves_the_answer_of_the_one_before(
    server: LoopbackServer,
) -> None:
    def slow_from_the_fourth(handler: Handler) -> Reply:
        return Reply(503, "starting", delay=3.0 if handler.server.hits["/health"] >= 4 else 0.0)

    server.routes["/health"] = slow_from_the_fourth
    now = [1000.0]
    with CheckRunner(
        env(server.url),
        env_name="staging",
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    ) as runner:
        check = http_check(
            get="/health", timeout="5s", deadline="10s", retry={"attempts": 100, "interval": "3s"}
        )
        result = runner.run(check)
    # Attempts at 0, 3, 6 and 9 s: the fourth had 1s of its 5s, and got no answer in it. That
    # says nothing of staging, which answered 503 three times: "no answer" would send the person
    # on call to the network.
    assert result.outcome == "fail"
    assert result.attempts == 4
    assert result.got == "status 503"
    assert result.message == (
        "GET /health -> 503, expected 200 "
        "(attempt 3/100; attempt 4 cut short by the deadline 10s; retry safe)"
    )
    # An attempt given its whole timeout that gets no answer is news, and is said as such.
    server.hits.clear()
    check = http_check(get="/health", timeout="500ms", retry={"attempts": 4, "interval": "10ms"})
    with CheckRunner(env(server.url), env_name="staging") as runner:
        result = runner.run(check)
    assert result.outcome == "inconclusive"
    assert result.got == "no answer: no answer within 500ms (read timeout)"
    assert result.attempts == 4


def test_percentile_timings_are_consistent_with_parallel_sampling(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    # Each answer waits until all 8 requests are in at once: only samples sent in parallel pass
    # (one after another, the first waits alone and is answered 500).
    together = threading.Barrier(8, timeout=5)

    def all_at_once(handler: object) -> Reply:
        try:
            together.wait()
        except threading.BrokenBarrierError:
            return Reply(500, "the samples came one after another")
        return Reply(200, "x", delay=0.1)

    server.routes["/x"] = all_at_once
    check = http_check(get="/x", samples=8, concurrency=8, expect={"p50": "10s"})
    result = runner.run(check)
    assert result.outcome == "pass", result.message
    assert server.hits["/x"] == 8
    assert all(t >= 100 for t in result.timings_ms)


# --- redirects ----------------------------------------------------------------------------------


def test_redirect_to_same_origin_is_followed(server: LoopbackServer, runner: CheckRunner) -> None:
    server.routes["/old"] = Reply(301, "", {"Location": "/mid"})
    server.routes["/mid"] = Reply(302, "", {"Location": f"{server.url}/new"})
    server.routes["/new"] = json_reply({"status": "ok"})
    result = runner.run(http_check(get="/old", expect={"json": {"status": "ok"}}))
    assert result.outcome == "pass"
    assert server.hits["/new"] == 1
    assert result.message.startswith("GET /old -> 301 /mid -> 302 /new -> 200 (attempt 1/1;")
    assert result.got.startswith("status 200 via 301 /mid -> 302 /new; json status=ok; ")


def test_a_redirect_followed_is_named_in_what_the_check_says(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    # /admin sends a visitor without a session to the login page, whose 200 passes a check of
    # the status alone: the person on call must see that it was not /admin that answered.
    server.routes["/admin"] = Reply(302, "", {"Location": "/login?next=/admin"})
    server.routes["/login"] = Reply(200, "please log in")
    result = runner.run(http_check(get="/admin"))
    assert result.outcome == "pass"
    assert result.message == "GET /admin -> 302 /login?next=/admin -> 200 (attempt 1/1; retry safe)"
    assert result.got.startswith("status 200 via 302 /login?next=/admin; time ")
    sampled = runner.run(http_check(get="/admin", samples=2, expect={"p95": "5s"}))
    assert sampled.message.startswith("GET /admin -> 302 /login?next=/admin -> 200; p95 ")
    server.routes["/admin"] = Reply(301, "", {"Location": f"{server.url}/gone"})
    result = runner.run(http_check(get="/admin"))
    assert result.outcome == "fail"
    assert result.got == "status 404 via 301 /gone"
    assert result.message.startswith("GET /admin -> 301 /gone -> 404, expected 200 (")


def test_a_see_other_turns_a_post_into_a_get_and_leaves_a_head_a_head(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    server.routes["/orders"] = Reply(303, "", {"Location": "/orders/7"})
    server.routes["/orders/7"] = Reply(200, "order 7")
    assert runner.run(http_check(post="/orders", body={"item": 1})).outcome == "pass"
    assert runner.run(http_check(head="/orders")).outcome == "pass"
    methods = [(method, path) for method, path, _ in server.requests]
    assert methods == [
        ("POST", "/orders"),
        ("GET", "/orders/7"),
        ("HEAD", "/orders"),
        ("HEAD", "/orders/7"),
    ]


def test_redirect_location_is_read_as_utf8(server: LoopbackServer, runner: CheckRunner) -> None:
    # http.client hands header bytes over as Latin-1; these are the bytes of "/café" in UTF-8.
    server.routes["/old"] = Reply(302, "", {"Location": "/café".encode().decode("latin-1")})
    server.routes["/caf%C3%A9"] = Reply(200, "ok")
    result = runner.run(http_check(get="/old"))
    assert result.outcome == "pass", result.message
    assert server.hits["/caf%C3%A9"] == 1


def test_redirect_location_that_is_not_utf8_is_a_result(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    server.routes["/old"] = Reply(302, "", {"Location": "/\xff\xfe"})
    server.routes["/new"] = Reply(200, "ok")
    result = runner.run(http_check(get="/old"))
    assert result.outcome == "fail"
    assert result.got == "status 404 via 302 /\xff\xfe"
    assert len(server.requests) == 2  # the redirect was followed, to a path that is not there


def test_redirect_to_another_host_is_not_followed(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    other = f"http://localhost:{server.port}/new?x=1"
    server.routes["/old"] = Reply(302, "", {"Location": other})
    server.routes["/new"] = Reply(200, "ok")
    result = runner.run(http_check(get="/old"))
    assert result.outcome == "fail"
    assert result.got == f"redirect to {other} (not followed: another host)"
    assert result.message == (
        f"GET /old -> 302 redirect to {other}, not followed: another host (attempt 1/1; retry safe)"
    )
    assert server.hits["/new"] == 0


def test_redirect_to_an_allowed_host_is_followed(server: LoopbackServer) -> None:
    server.routes["/old"] = Reply(302, "", {"Location": f"http://localhost:{server.port}/new"})
    server.routes["/new"] = Reply(200, "ok")
    environment = env(server.url, allow_hosts=["127.0.0.1", "localhost"])
    with CheckRunner(environment, env_name="staging") as runner:
        assert runner.run(http_check(get="/old")).outcome == "pass"
    assert server.hits["/new"] == 1


def test_credentials_not_sent_to_another_origin(server: LoopbackServer) -> None:
    server.routes["/old"] = Reply(302, "", {"Location": f"http://localhost:{server.port}/new"})
    server.routes["/new"] = Reply(200, "ok")
    environment = env(server.url, allow_hosts=["localhost"])
    with CheckRunner(environment, env_name="staging") as runner:
        check = http_check(get="/old", headers={"Authorization": "Bearer t0ken", "X-Trace": "1"})
        assert runner.run(check).outcome == "pass"
    first, second = server.requests
    assert first[2]["Authorization"] == "Bearer t0ken"
    assert "Authorization" not in second[2]
    assert second[2]["X-Trace"] == "1"


def test_a_redirect_to_a_huge_location_is_shown_cut() -> None:
    location = b"http://evil.example/" + b"a" * 60_000
    answer = b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"
    with raw_answer(answer) as url, CheckRunner(env(url), env_name="staging") as r:
        result = r.run(http_check(get="/old"))
    assert result.outcome == "fail"
    assert result.got.startswith("redirect to http://evil.example/aaaa")
    assert result.got.endswith("... (not followed: another host)")
    assert len(result.got) < 300


def test_redirect_loop_and_expected_redirect(server: LoopbackServer, runner: CheckRunner) -> None:
    server.routes["/loop"] = Reply(302, "", {"Location": "/loop"})
    result = runner.run(http_check(get="/loop"))
    assert result.outcome == "fail"
    assert result.got.endswith("(not followed: more than 5 redirects)")
    assert server.hits["/loop"] == 6
    # A check that expects the redirect gets it as its answer.
    server.routes["/login"] = Reply(302, "", {"Location": "https://sso.example.com/"})
    assert runner.run(http_check(get="/login", expect={"status": 302})).outcome == "pass"


def test_a_check_that_expects_a_redirect_judges_the_one_it_gets(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    # A temporary redirect where a permanent one was promised is the finding; following it
    # would show the page behind it and a status that says nothing of the redirect.
    server.routes["/old"] = Reply(302, "", {"Location": "/new"})
    server.routes["/new"] = Reply(200, "ok")
    for status in (301, [301, 308]):
        result = runner.run(http_check(get="/old", expect={"status": status}))
        assert result.outcome == "fail"
        assert result.got == "status 302"
    assert server.hits["/new"] == 0


def test_redirect_with_credentials_is_masked(server: LoopbackServer, runner: CheckRunner) -> None:
    server.routes["/old"] = Reply(302, "", {"Location": "http://bob:hunter2@evil.example/x"})
    result = runner.run(http_check(get="/old"))
    assert result.outcome == "fail"
    assert "hunter2" not in result.got + result.message
    assert "http://***@evil.example/x (not followed: credentials in the URL)" in result.got


# --- proxies from the environment ---------------------------------------------------------------

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    """A proxy named by every proxy variable, as on a machine behind a corporate proxy."""
    with serving() as srv:
        for name in PROXY_VARS:
            monkeypatch.setenv(name, srv.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        yield srv


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_loopback_check_never_goes_through_a_proxy(
    server: LoopbackServer, proxy: LoopbackServer, host: str
) -> None:
    # A proxy elsewhere cannot reach this machine's loopback: staging there is asked directly.
    server.routes["/health"] = json_reply({"status": "ok"})
    url = f"http://{host}:{server.port}"

    with CheckRunner(env(url, allow_hosts=[host]), env_name="staging") as runner:
        result = runner.run(http_check(get="/health", expect={"json": {"status": "ok"}}))

    assert result.outcome == "pass", result.message
    assert proxy.requests == []
    assert server.hits["/health"] == 1


@pytest.mark.parametrize("ca_bundle", [None, "/etc/ssl/certs/ca-certificates.crt"])
def test_a_loopback_request_gets_requests_own_settings_but_the_proxies(
    proxy: LoopbackServer, monkeypatch: pytest.MonkeyPatch, ca_bundle: str | None
) -> None:
    # The environment's proxies are not even looked up for loopback; the rest (a CA bundle
    # from REQUESTS_CA_BUNDLE, the session's own verify and cert) is what requests would use.
    import requests

    from drillbook.httpsession import cuttable_session

    if ca_bundle is None:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    else:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_bundle)
    ours, _ = cuttable_session()
    plain = requests.Session()
    for session in (ours, plain):
        session.cert = "/tmp/client.pem"
    for url in ("http://127.0.0.1:8181/health", "https://localhost:8443/health"):
        for verify in (None, True, False):
            got = ours.merge_environment_settings(url, {}, None, verify, None)
            want = plain.merge_environment_settings(url, {}, None, verify, None)
            assert want["proxies"]  # the environment names a proxy, which loopback skips
            assert got == {**want, "proxies": {}}
    away = "http://other.example.com/x"
    assert ours.merge_environment_settings(away, {}, None, None, None) == (
        plain.merge_environment_settings(away, {}, None, None, None)
    )


def test_a_check_of_another_host_still_goes_through_the_proxy(proxy: LoopbackServer) -> None:
    proxy.routes["http://staging.invalid/health"] = json_reply({"status": "ok"})

    with CheckRunner(env("http://staging.invalid"), env_name="staging") as runner:
        result = runner.run(http_check(get="/health"))

    assert result.outcome == "pass", result.message
    assert [path for _, path, _ in proxy.requests] == ["http://staging.invalid/health"]


def test_a_proxy_that_refuses_is_named_as_the_one_that_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = f"http://deploy:hunter2@127.0.0.1:{closed_port()}"
    for name in PROXY_VARS:
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    with CheckRunner(env("http://staging.invalid"), env_name="staging") as runner:
        result = runner.run(http_check(get="/health", timeout="2s"))

    assert result.outcome == "inconclusive"
    assert result.got == (
        "no answer: the proxy set in the environment (HTTP_PROXY, HTTPS_PROXY): connection refused"
    )
    assert "hunter2" not in result.message


# --- URLs that are refused before any request ---------------------------------------------------


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("http://other.example.com/x", "host other.example.com is not on allow_hosts (127.0.0.1)"),
        ("ftp://127.0.0.1/x", "scheme ftp: expected http or https"),
        ("//other.example.com/x", "scheme (none): expected http or https"),
        ("http://admin:s3cr3t-pw@127.0.0.1/x", "credentials in the URL are never sent"),
    ],
)
def test_absolute_url_refused_before_any_request(
    server: LoopbackServer, runner: CheckRunner, target: str, words: str
) -> None:
    with pytest.raises(PreconditionFailed) as info:
        runner.run(http_check(get=target))
    assert info.value.exit_code == 3
    assert words in str(info.value)
    assert "s3cr3t-pw" not in str(info.value)
    assert not server.requests


def test_credentials_masked_in_refusal() -> None:
    with (
        CheckRunner(env("http://127.0.0.1:1"), env_name="staging") as runner,
        pytest.raises(PreconditionFailed) as info,
    ):
        runner.run(http_check(get="https://deploy:tok3n@evil.example/x"))
    assert str(info.value).startswith("check URL https://***@evil.example/x refused")
    assert "tok3n" not in str(info.value)
    assert "deploy" not in str(info.value)


def test_absolute_url_on_allow_hosts(server: LoopbackServer) -> None:
    server.routes["/health"] = Reply(200, "ok")
    environment = env("http://staging.invalid:1", allow_hosts=["127.0.0.1"])
    with CheckRunner(environment, env_name="staging") as runner:
        result = runner.run(http_check(get=f"{server.url}/health"))
    assert result.outcome == "pass"
    assert result.name == f"GET {server.url}/health"


def test_run_many_refuses_before_any_request(server: LoopbackServer, runner: CheckRunner) -> None:
    server.routes["/health"] = Reply(200, "ok")
    with pytest.raises(PreconditionFailed):
        runner.run_many(
            [("a", http_check(get="/health")), ("b", http_check(get="http://evil.example/"))]
        )
    assert not server.requests


# --- masking ------------------------------------------------------------------------------------


def test_control_characters_from_the_service_are_escaped(
    server: LoopbackServer, runner: CheckRunner
) -> None:
    # What staging sends is printed to the terminal of the person on call: an escape sequence
    # there could clear the screen, retitle the window or paint a line that says all is well.
    paint = "\x1b[2J\x1b]0;pwned\x07"
    server.routes["/health"] = Reply(
        500,
        json.dumps({"status": f"{paint}ok"}) + "\r\nALL CHECKS PASSED\u202e",
        {"Content-Type": "application/json", "X-Build": f"{paint}42"},
    )
    server.routes["/data"] = json_reply({"status": f"{paint}ok"})
    checks = [
        http_check(get="/health", expect={"status": 200, "header": {"X-Build": "42"}}),
        http_check(get="/data", expect={"json": {"status": "ok"}}),
    ]
    results = runner.run_many([("a", checks[0]), ("b", checks[1])])
    for result in results:
        assert result.outcome == "fail"
        for text in (result.got, result.message, result.excerpt):
            assert not any(ord(c) < 0x20 or c == "\u202e" for c in text), repr(text)
    first, second = results
    assert first.got == "status 500; header X-Build: \\x1b[2J\\x1b]0;pwned\\x0742"
    assert first.excerpt.endswith("\\r\\nALL CHECKS PASSED\\u202e")
    assert second.got == "json status=\\x1b[2J\\x1b]0;pwned\\x07ok"


def test_secret_in_body_is_masked_in_excerpt(server: LoopbackServer) -> None:
    from drillbook.secrets import Masker

    secret = "sk_live_5f2b9c1d8e7a"
    server.routes["/debug"] = Reply(500, f"config dump: SECRET_KEY={secret} LOG_LEVEL=info")
    masker = Masker([secret])
    with CheckRunner(env(server.url), env_name="staging", masker=masker) as runner:
        result = runner.run(http_check(get="/debug", expect={"body_contains": secret}))
    assert result.outcome == "fail"
    text = json.dumps(result.as_dict())
    assert secret not in text
    assert "config dump: SECRET_KEY=" in result.excerpt
    assert "LOG_LEVEL=info" in result.excerpt


SECRET = "sk_live_5f2b9c1d8e7a"


@pytest.mark.parametrize(
    ("reply", "expect"),
    [
        (json_reply({"status": "x" * 65 + SECRET}), {"json": {"status": "ok"}}),
        (json_reply({"cfg": {"k": "x" * 60 + SECRET}}), {"json": {"cfg": {}}}),
        (json_reply("x" * 20 + SECRET), {"json": {"status": "ok"}}),
        (Reply(200, "ok", {"X-Build": "x" * 65 + SECRET}), {"header": {"X-Build": "1"}}),
        (
            Reply(302, "", {"Location": "http://evil.example/?" + "x" * 160 + SECRET}),
            {"status": 200},
        ),
    ],
    ids=["json-value", "json-value-passed", "json-string-body", "header", "location"],
)
def test_a_secret_across_the_cut_of_what_a_check_shows_is_masked_whole(
    server: LoopbackServer, reply: Reply, expect: dict[str, Any]
) -> None:
    from drillbook.secrets import Masker

    server.routes["/health"] = reply
    with CheckRunner(env(server.url), env_name="staging", masker=Masker([SECRET])) as runner:
        result = runner.run(http_check(get="/health", expect=expect))
    text = json.dumps(result.as_dict())
    # Cut after masking, not before: not even the secret's head is left.
    assert SECRET[:6] not in text, text
    assert "***" in result.got + result.message


def test_a_secret_across_the_cut_of_an_answer_that_is_not_http_is_masked_whole() -> None:
    from drillbook.secrets import Masker

    with (
        raw_answer(b"SSH-2.0-" + b"x" * 40 + SECRET.encode() + b"\r\n") as url,
        CheckRunner(env(url), env_name="staging", masker=Masker([SECRET])) as runner,
    ):
        result = runner.run(http_check(get="/health", timeout="2s"))
    assert result.outcome == "inconclusive"
    assert SECRET[:6] not in json.dumps(result.as_dict())
    assert "the answer is not HTTP: it begins 'SSH-2.0-xxx" in result.got


def test_a_secret_split_by_an_escape_sequence_is_masked(server: LoopbackServer) -> None:
    from drillbook.secrets import Masker

    secret = "sk_live_5f2b9c1d8e7a"
    split = f"{secret[:5]}\x1b[0m{secret[5:]}"
    server.routes["/debug"] = Reply(500, f"key {split}", {"X-Key": split})
    with CheckRunner(env(server.url), env_name="staging", masker=Masker([secret])) as runner:
        result = runner.run(http_check(get="/debug", expect={"header": {"X-Key": "no"}}))
    assert result.outcome == "fail"
    assert result.excerpt == "key ***"
    assert result.got == "status 500; header X-Key: ***"
    assert secret[5:] not in json.dumps(result.as_dict())
    # A check that passes shows the header it found, escaped after it is masked.
    server.routes["/debug"] = Reply(200, "ok", {"X-Key": split})
    with CheckRunner(env(server.url), env_name="staging", masker=Masker([secret])) as runner:
        result = runner.run(http_check(get="/debug", expect={"header": {"X-Key": split}}))
    assert result.outcome == "pass"
    assert result.got.startswith("status 200; header X-Key: ***; time "), result.got


# --- run_many -----------------------------------------------------------------------------------


def test_run_many_preserves_order_and_runs_in_parallel(server: LoopbackServer) -> None:
    for i in range(6):
        server.routes[f"/slow/{i}"] = Reply(200 if i != 3 else 500, str(i), delay=0.3)
    checks = [(f"slow-{i}", http_check(get=f"/slow/{i}")) for i in range(6)]
    with CheckRunner(env(server.url), env_name="staging") as runner:
        started = time.monotonic()
        results = runner.run_many(checks)
        elapsed = time.monotonic() - started
    assert [r.name for r in results] == [f"slow-{i}" for i in range(6)]
    assert [r.outcome for r in results] == ["pass", "pass", "pass", "fail", "pass", "pass"]
    assert elapsed < 6 * 0.3 / 2


def test_run_many_keeps_writes_in_order(server: LoopbackServer) -> None:
    order: list[str] = []

    def record(handler: Handler) -> Reply:
        order.append(handler.path)
        return Reply(200, "ok", delay=0.05)

    for path in ("/a", "/b", "/write", "/c", "/d"):
        server.routes[path] = record
    checks = [
        ("a", http_check(get="/a")),
        ("b", http_check(get="/b")),
        ("write", http_check(post="/write", body="x")),
        ("c", http_check(get="/c")),
        ("d", http_check(head="/d")),
    ]
    with CheckRunner(env(server.url), env_name="staging") as runner:
        results = runner.run_many(checks)
    assert [r.name for r in results] == ["a", "b", "write", "c", "d"]
    assert set(order[:2]) == {"/a", "/b"}
    assert order[2] == "/write"
    assert set(order[3:]) == {"/c", "/d"}


def test_session_is_reused(server: LoopbackServer, runner: CheckRunner) -> None:
    ports: set[int] = set()

    def remember(handler: Handler) -> Reply:
        ports.add(handler.client_address[1])
        return Reply(200, "ok")

    server.routes["/x"] = remember
    for _ in range(5):
        assert runner.run(http_check(get="/x")).outcome == "pass"
    assert len(ports) == 1


# --- TLS ----------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_untrusted_certificate_is_inconclusive(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    argv += ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        argv,
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serving() as server:
        server.routes["/health"] = Reply(200, "ok")
        server.socket = context.wrap_socket(server.socket, server_side=True)
        environment = env(f"https://127.0.0.1:{server.port}")
        with CheckRunner(environment, env_name="staging") as runner:
            result = runner.run(http_check(get="/health", timeout="2s"))
    assert result.outcome == "inconclusive"
    assert result.got.startswith("no answer: TLS error:")
    assert "certificate verify failed" in result.got
    assert not server.requests


# Run under `unshare --net --mount` as root: a network of its own with only loopback, whose
# /etc/resolv.conf names a DNS server on 127.0.0.1 that takes every question and never answers,
# as a firewalled or dead resolver does; then the command. Nothing outside the namespaces changes.
SILENT_DNS = r"""
import os, socket, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["mount", "--bind", sys.argv[1], "/etc/resolv.conf"], check=True)
silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
silent.bind(("127.0.0.1", 53))  # bound, never read: questions queue, no answer comes
silent.set_inheritable(True)  # and kept bound by the command
os.environ["RES_OPTIONS"] = "timeout:30 attempts:1"  # glibc waits 30 s for the answer
os.execvp(sys.argv[2], sys.argv[2:])
"""

CHECK_A_NAME = r"""
import json
from drillbook.checks import CheckRunner
from drillbook.model import Environment, HttpCheck

environment = Environment.model_validate({"url": "http://staging.test:8080"})
runner = CheckRunner(environment, env_name="staging", placeholders={})
check = HttpCheck.model_validate(
    {"get": "/health", "timeout": "1s", "retry": {"attempts": 2, "interval": "0s"}}
)
print(json.dumps(runner.run(check).as_dict()))
"""


def with_silent_dns(
    tmp_path: Path, *argv: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Any:
    """Run `argv` where DNS never answers (see SILENT_DNS); skipped where it cannot be made."""
    unshare = shutil.which("unshare")
    probe = [unshare, "-n", "-m", "true"] if unshare else None
    if probe is None or subprocess.run(probe, check=False, capture_output=True).returncode:
        pytest.skip("needs unshare with network and mount namespaces (root)")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    script = tmp_path / "silent_dns.py"
    script.write_text(SILENT_DNS)
    return subprocess.run(
        [unshare, "-n", "-m", sys.executable, str(script), str(resolv), *argv],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,  # far past the check's own time, short of the resolver's 30 s twice
    )


def test_a_name_dns_does_not_answer_for_ends_within_the_checks_time(tmp_path: Path) -> None:
    proc = with_silent_dns(tmp_path, sys.executable, "-c", CHECK_A_NAME)

    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    # As a service that does not answer: nothing was judged, so the check is inconclusive.
    assert result["outcome"] == "inconclusive", result
    # The second attempt had what the first left of the check's 2 s; when that was much less
    # than its 1s timeout, it was cut short, and what the first found stands.
    got = result["got"]
    assert re.fullmatch(r"no answer: DNS did not answer for staging\.test within \d+ms", got) or (
        got == "no answer: DNS did not answer for staging.test within 1s"
        and "(attempt 1/2; attempt 2 cut short by the deadline 2s; " in result["message"]
    ), result
    assert result["attempts"] == 2, result


def test_plan_says_dns_does_not_answer_for_the_environment(tmp_path: Path) -> None:
    project = make_project(tmp_path, url="http://staging.test:8080")

    plan = (str(DRILLBOOK), "plan", "--version", "1.0.0")
    proc = with_silent_dns(tmp_path, *plan, cwd=project.root, env=project.env)

    assert proc.returncode == 0, proc.stderr
    assert (
        "http://staging.test:8080 does not answer (DNS did not answer for staging.test within 2s)"
    ) in proc.stdout


def test_a_check_naming_a_placeholder_with_no_value_is_inconclusive_and_sends_nothing(
    server: LoopbackServer,
) -> None:
    # A first release has no {previous}: filled in empty, body_contains "" would pass on any
    # answer, and /version/ would ask for another page than the one meant.
    server.routes["/version"] = json_reply({"version": "1.0.0"})
    environment = env(server.url)
    placeholders = {"version": "1.0.0", "previous": ""}
    with CheckRunner(environment, env_name="staging", placeholders=placeholders) as runner:
        contains = runner.run(http_check(get="/version", expect={"body_contains": "{previous}"}))
        path = runner.run(http_check(get="/version/{previous}"))
        own = runner.run(http_check(get="/version", expect={"json": {"version": "{version}"}}))
    for result in (contains, path):
        assert result.outcome == "inconclusive", result
        assert (
            result.got
            == "not run: it needs {previous}, and no version was released before this one"
        )
        assert result.attempts == 0
        assert result.retry_safe
    assert contains.expected == "status 2xx; body contains '{previous}'"
    assert "GET /version/{previous} not run: it needs {previous}" in path.message
    assert own.outcome == "pass"
    assert server.hits["/version"] == 1  # only the check with every value it names
    assert "/version/" not in server.hits


def test_a_kept_connection_closed_under_a_get_is_asked_again_on_a_new_one() -> None:
    # The server's keep-alive ended as the next check reused the connection: that GET was
    # never answered, and is sent again, once, on a new connection, whose answer is judged.
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    crash = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom"
    check = http_check(get="/health", expect={"status": 200})
    with (
        closes_kept_connections([ok, crash]) as (url, seen),
        CheckRunner(env(url), env_name="staging") as runner,
    ):
        first = runner.run(check)
        second = runner.run(check)
    assert first.outcome == "pass", first.message
    assert second.outcome == "fail", second.message
    assert second.got == "status 500"
    assert second.attempts == 1  # asked again within the attempt, not a retry of the check
    assert seen == [b"GET /health HTTP/1.1"] * 3


def test_a_post_on_a_kept_connection_closed_under_it_is_not_sent_again() -> None:
    # A POST may have been acted on before the close: it is not sent a second time.
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    check = http_check(post="/orders", body={"id": 1}, expect={"status": 200})
    with (
        closes_kept_connections([ok]) as (url, seen),
        CheckRunner(env(url), env_name="staging") as runner,
    ):
        first = runner.run(check)
        second = runner.run(check)
    assert first.outcome == "pass", first.message
    assert second.outcome == "inconclusive", second.message
    assert "closed without an answer" in second.got
    assert seen == [b"POST /orders HTTP/1.1"] * 2
