"""The admin area per release: the list, the audit trail (1.1.0) and the slow enrichment (1.2.0)."""

from __future__ import annotations

import time


def _timed_get(client, url: str, **kwargs) -> tuple[float, object]:
    began = time.perf_counter()
    response = client.get(url, **kwargs)
    return (time.perf_counter() - began) * 1000, response


def test_admin_list_is_paginated_by_admin_page_size(make_client):
    client = make_client("1.0.0", admin_page_size=20)
    first = client.get("/admin/orders", params={"format": "json"}).json()
    assert (first["page"], first["pages"], first["page_size"], first["total"]) == (1, 3, 20, 50)
    assert [order["id"] for order in first["orders"]] == list(range(50, 30, -1))
    last = client.get("/admin/orders", params={"page": 3, "format": "json"}).json()
    assert len(last["orders"]) == 10


def test_admin_list_is_an_html_page_by_default(make_client):
    response = make_client("1.0.0", admin_page_size=5).get("/admin/orders")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.count("<tr><td>") == 5
    assert "/audit" not in response.text  # no audit links before 1.1.0


def test_the_audit_trail_does_not_exist_in_1_0_0(make_client):
    assert make_client("1.0.0").get("/admin/orders/1/audit").status_code == 404


def test_1_1_0_records_who_changed_an_order_and_when(make_client):
    client = make_client("1.1.0")
    assert client.get("/admin/orders/1/audit").json() == {"order_id": 1, "entries": []}
    changed = client.patch(
        "/api/orders/1", json={"status": "shipped", "quantity": 2}, headers={"X-Actor": "alice"}
    )
    assert changed.status_code == 200
    entries = client.get("/admin/orders/1/audit").json()["entries"]
    assert {entry["field"] for entry in entries} == {"status", "quantity"}
    status = next(entry for entry in entries if entry["field"] == "status")
    assert status["actor"] == "alice"
    assert status["new_value"] == "shipped"
    assert status["at"].endswith("Z")
    assert status["request_id"] == changed.headers["x-request-id"]
    assert client.get("/admin/orders/9999/audit").status_code == 404
    assert '<a href="/admin/orders/50/audit">' in client.get("/admin/orders").text


def test_rolling_back_to_1_0_0_leaves_the_audit_table_alone(make_client):
    newer = make_client("1.1.0")
    newer.patch("/api/orders/2", json={"status": "paid"}, headers={"X-Actor": "alice"})
    older = make_client("1.0.0")  # same database, as after a redeploy of 1.0.0
    assert older.patch("/api/orders/2", json={"status": "shipped"}).status_code == 200
    assert older.get("/admin/orders").status_code == 200
    again = make_client("1.1.0")
    assert len(again.get("/admin/orders/2/audit").json()["entries"]) == 1


def test_admin_list_is_fast_before_1_2_0(make_client):
    client = make_client("1.1.0", admin_page_size=20)
    client.get("/admin/orders")  # warm-up
    took, response = _timed_get(client, "/admin/orders")
    assert response.status_code == 200
    assert took < 250


def test_1_2_0_enriches_each_row_one_lookup_at_a_time_and_is_slow(make_client, log_lines):
    client = make_client("1.2.0", admin_page_size=20)
    took, response = _timed_get(client, "/admin/orders", params={"format": "json"})
    assert response.status_code == 200
    orders = response.json()["orders"]
    assert len(orders) == 20
    assert all(order["profile"]["tier"] in {"gold", "silver", "bronze"} for order in orders)
    assert took > 300  # 20 rows x 25 ms: the regression the demo's p95 check catches
    slow = [line for line in log_lines() if line["route"] == "/admin/orders"]
    assert slow[-1]["level"] == "warning"
    assert slow[-1]["duration_ms"] > 250
    assert "slow request" in slow[-1]["msg"]


def test_an_audit_of_an_order_id_too_big_for_the_database_is_refused_not_a_500(make_client):
    assert make_client("1.1.0").get(f"/admin/orders/{2**63}/audit").status_code == 422
