"""The orders API, health and version, and the feature switch per version."""

from __future__ import annotations

import pytest

from app.releases import features_for


def test_health_and_version_name_the_running_version(make_client):
    client = make_client("1.1.0")
    assert client.get("/health").json() == {"status": "ok", "version": "1.1.0"}
    assert client.get("/version").json() == {"version": "1.1.0", "features": ["audit_trail"]}


def test_health_repeats_the_instance_id_of_this_start(make_client):
    # deploy.py gives each start an id and counts only an answer that carries it.
    client = make_client("1.1.0", instance="5f0c2a9e41b7d3c8")
    assert client.get("/health").json() == {
        "status": "ok",
        "version": "1.1.0",
        "instance": "5f0c2a9e41b7d3c8",
    }


@pytest.mark.parametrize(
    ("version", "audit", "enrichment"),
    [
        ("1.0.0", False, False),
        ("1.1.0", True, False),
        ("1.1.7", True, False),
        ("1.2.0-rc.1", True, False),
        ("1.2.0", True, True),
        ("2.0.0", True, True),
        ("0.9.0", False, False),
        ("not-a-version", False, False),
    ],
)
def test_a_version_gets_the_newest_feature_set_at_or_below_it(version, audit, enrichment):
    features = features_for(version)
    assert (features.audit_trail, features.admin_enrichment) == (audit, enrichment)


def test_first_start_seeds_fifty_orders_once(make_client):
    client = make_client("1.0.0")
    assert client.get("/api/orders").json()["total"] == 50
    again = make_client("1.1.0")  # same database, second start
    body = again.get("/api/orders", params={"limit": 10, "offset": 45}).json()
    assert body["total"] == 50
    assert [order["id"] for order in body["orders"]] == [46, 47, 48, 49, 50]


def test_create_then_read_an_order(make_client):
    client = make_client()
    created = client.post(
        "/api/orders",
        json={"customer_id": 2, "item": "Ceramic mug", "quantity": 2, "total_cents": 2500},
    )
    assert created.status_code == 201
    order = created.json()
    assert order["status"] == "new"
    assert created.headers["location"] == f"/api/orders/{order['id']}"
    assert client.get(f"/api/orders/{order['id']}").json() == order


@pytest.mark.parametrize(
    "body",
    [
        {"customer_id": 999, "item": "x", "quantity": 1, "total_cents": 1},
        {"customer_id": 1, "item": "", "quantity": 1, "total_cents": 1},
        {"customer_id": 1, "item": "x", "quantity": 0, "total_cents": 1},
        {"customer_id": 1, "item": "x", "quantity": 1, "total_cents": 1, "discount": 5},
    ],
)
def test_invalid_orders_are_refused(make_client, body):
    assert make_client().post("/api/orders", json=body).status_code == 422


def test_patch_changes_only_the_given_fields(make_client):
    client = make_client()
    before = client.get("/api/orders/3").json()
    after = client.patch("/api/orders/3", json={"status": "cancelled"}).json()
    assert after["status"] == "cancelled"
    assert after["item"] == before["item"]
    assert after["updated_at"] >= before["updated_at"]


def test_patch_refusals(make_client):
    client = make_client()
    assert client.patch("/api/orders/9999", json={"status": "paid"}).status_code == 404
    assert client.patch("/api/orders/1", json={}).status_code == 422
    assert client.patch("/api/orders/1", json={"status": "lost"}).status_code == 422
    assert client.get("/api/orders/9999").status_code == 404


def test_list_filters_by_status(make_client):
    body = make_client().get("/api/orders", params={"status": "paid", "limit": 200}).json()
    assert body["orders"]
    assert {order["status"] for order in body["orders"]} == {"paid"}
    assert body["total"] == len(body["orders"])


TOO_BIG = 2**63  # one more than SQLite's largest integer


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/orders/{TOO_BIG}", None),
        ("GET", f"/api/orders/{10**30}", None),
        ("PATCH", f"/api/orders/{TOO_BIG}", {"status": "paid"}),
        ("GET", f"/api/orders?offset={TOO_BIG}", None),
        (
            "POST",
            "/api/orders",
            {"customer_id": TOO_BIG, "item": "x", "quantity": 1, "total_cents": 1},
        ),
    ],
)
def test_a_number_too_big_for_the_database_is_refused_not_a_500(make_client, method, path, body):
    answer = make_client().request(method, path, json=body)
    assert answer.status_code == 422, answer.text


@pytest.mark.parametrize(
    "raw",
    [
        b'{"item": "\\ud800"}',  # a lone surrogate: valid JSON, not encodable as UTF-8
        b'{"total_cents": 1e400}',  # overflows to infinity
        b'{"total_cents": NaN}',
    ],
)
def test_a_value_json_cannot_carry_back_is_refused_with_a_422(make_client, raw):
    answer = make_client().patch(
        "/api/orders/1", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"][0] == "body"
    assert "input" not in error


def test_a_refused_value_is_not_echoed_back(make_client):
    long_item = "x" * 10_000
    body = {"customer_id": 1, "item": long_item, "quantity": 1, "total_cents": 1}
    answer = make_client().post("/api/orders", json=body)
    assert answer.status_code == 422
    assert long_item not in answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "item"]


def test_a_body_over_the_limit_is_refused_with_a_413_declared_or_streamed(make_client, log_lines):
    client = make_client()
    big = b'{"item": "' + b"x" * 1024 * 1024 + b'"}'  # an order is a few hundred bytes
    headers = {"content-type": "application/json"}

    declared = client.post("/api/orders", content=big, headers=headers)

    def chunks():
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    streamed = client.post("/api/orders", content=chunks(), headers=headers)

    assert declared.status_code == 413, declared.text
    assert streamed.status_code == 413, streamed.text
    assert [line["status"] for line in log_lines() if line["route"] == "/api/orders"] == [413, 413]
    # A body under the limit, streamed in pieces, still reaches the endpoint whole.
    order = b'{"customer_id": 1, "item": "mug", "quantity": 1, "total_cents": 1250}'
    pieces = iter([order[:10], order[10:]])
    assert client.post("/api/orders", content=pieces, headers=headers).status_code == 201


@pytest.mark.parametrize(
    ("host", "status"),
    [("127.0.0.1:8181", 200), ("localhost:8181", 200), ("attacker.example", 400)],
)
def test_only_loopback_names_are_answered(make_client, host, status):
    # A web page that DNS rebinding points at loopback still sends its own name as Host.
    client = make_client()
    assert client.get("/admin/orders", headers={"Host": host}).status_code == status
