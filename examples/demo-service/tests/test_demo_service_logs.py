"""The log the person on call reads: JSON lines with the request id, errors with their cause."""

from __future__ import annotations

import re
from datetime import datetime

FIELDS = {"time", "level", "request_id", "method", "route", "status", "duration_ms", "version"}


def test_every_request_writes_one_json_line_with_the_fields(make_client, log_lines):
    client = make_client("1.1.0")
    response = client.get("/api/orders/7")
    line = log_lines()[-1]
    assert FIELDS | {"msg"} <= line.keys()
    assert line["level"] == "info"
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["method"], line["route"], line["status"]) == ("GET", "/api/orders/{order_id}", 200)
    assert line["path"] == "/api/orders/7"
    assert line["version"] == "1.1.0"
    assert isinstance(line["duration_ms"], float)
    assert line["time"].endswith("Z")
    assert datetime.fromisoformat(line["time"].replace("Z", "+00:00")).utcoffset().seconds == 0


def test_a_request_id_from_the_caller_comes_back_and_is_logged(make_client, log_lines):
    client = make_client()
    response = client.get("/health", headers={"X-Request-ID": "incident-42.a"})
    assert response.headers["x-request-id"] == "incident-42.a"
    assert log_lines()[-1]["request_id"] == "incident-42.a"


def test_an_unusable_request_id_is_replaced(make_client):
    response = make_client().get("/health", headers={"X-Request-ID": 'a b"c' + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_an_unhandled_error_is_a_500_and_an_error_line_with_its_cause(make_client, log_lines):
    client = make_client()

    @client.app.get("/api/explode/{part}")
    def explode(part: str) -> None:
        raise RuntimeError(f"gear {part} jammed")

    response = client.get("/api/explode/7", headers={"X-Request-ID": "req-boom"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error", "request_id": "req-boom"}
    assert response.headers["x-request-id"] == "req-boom"
    line = log_lines()[-1]
    assert line["level"] == "error"
    assert line["request_id"] == "req-boom"
    assert (line["route"], line["status"]) == ("/api/explode/{part}", 500)
    assert (line["error_type"], line["error"]) == ("RuntimeError", "gear 7 jammed")
    assert "RuntimeError" in line["msg"]
    assert "explode" in line["where"]


def test_start_and_stop_are_logged_and_settings_never_are(make_client, log_lines, secret):
    with make_client("1.2.0", start=False) as client:
        client.get("/health")
    lines = log_lines()
    assert lines[0]["msg"] == "started demo-service 1.2.0 on staging"
    assert lines[0]["features"] == ["audit_trail", "admin_enrichment"]
    assert lines[-1]["msg"].startswith("stopping")
    assert all(secret not in str(line) for line in lines)


def test_log_level_warning_keeps_only_warnings_and_errors(make_client, log_lines, tmp_path):
    client = make_client(log_level="warning")
    client.get("/health")
    path = tmp_path / "var" / "staging" / "logs" / "app.jsonl"
    assert not path.exists() or all(line["level"] != "info" for line in log_lines())
