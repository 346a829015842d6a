"""The admin area used by support staff: the order list and, from 1.1.0 on, the audit trail."""

from __future__ import annotations

import html
import math
import sqlite3
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from . import db
from .releases import Features
from .settings import Settings

router = APIRouter(prefix="/admin", tags=["admin"])
audit_router = APIRouter(prefix="/admin", tags=["admin"])

# The modelled network round trip of one call to the customer-profile service.
PROFILE_LOOKUP_LATENCY_S = 0.025


def fetch_customer_profile(conn: sqlite3.Connection, customer_id: int) -> dict[str, Any] | None:
    """One call to the customer-profile service for one customer.

    The "service" is modelled in-process: a real SQLite query (the profile) plus a fixed sleep
    for the network round trip that a separate service would cost. One call is cheap; the
    problem is how 1.2.0 uses it, below.
    """
    time.sleep(PROFILE_LOOKUP_LATENCY_S)
    return db.customer_profile(conn, customer_id)


def enrich(conn: sqlite3.Connection, orders: list[dict[str, Any]]) -> None:
    """Add each order's customer profile (1.2.0's `admin_enrichment`).

    THIS IS THE DELIBERATE REGRESSION OF 1.2.0, kept so the demo has something real to catch:
    an N+1 pattern, one profile lookup per listed row, each paying the round trip. With 20 rows
    a page costs 20 x 25 ms = 500 ms or more, where 1.0.0 and 1.1.0 answer in a few ms. The fix
    would be one batched lookup for the page's customer ids (or a cache), not a faster loop.
    """
    for order in orders:
        order["profile"] = fetch_customer_profile(conn, order["customer_id"])


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _features(request: Request) -> Features:
    return request.app.state.features


@router.get("/orders", response_model=None)
def admin_orders(
    request: Request,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    fmt: Annotated[Literal["html", "json"], Query(alias="format")] = "html",
) -> HTMLResponse | JSONResponse:
    """The order list, newest first, ADMIN_PAGE_SIZE orders a page; `?format=json` for data."""
    settings = _settings(request)
    features = _features(request)
    size = settings.admin_page_size
    with db.connect(settings.database_path) as conn:
        orders, total = db.admin_page(conn, page=page, size=size)
        if features.admin_enrichment:
            enrich(conn, orders)
    pages = max(1, math.ceil(total / size))
    if fmt == "json":
        return JSONResponse(
            {"page": page, "pages": pages, "page_size": size, "total": total, "orders": orders}
        )
    page_html = _render_list(orders, page=page, pages=pages, total=total, features=features)
    return HTMLResponse(page_html)


@audit_router.get("/orders/{order_id}/audit")
def order_audit(
    request: Request, order_id: Annotated[int, Path(ge=1, le=db.MAX_INTEGER)]
) -> dict[str, Any]:
    """Who changed the order and when, oldest change first (1.1.0 and later)."""
    with db.connect(_settings(request).database_path) as conn:
        if db.get_order(conn, order_id) is None:
            raise HTTPException(status_code=404, detail=f"order {order_id} not found")
        entries = db.audit_entries(conn, order_id)
    return {"order_id": order_id, "entries": entries}


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def _render_list(
    orders: list[dict[str, Any]], *, page: int, pages: int, total: int, features: Features
) -> str:
    """The admin list as a small self-contained HTML page; every value escaped."""
    esc = html.escape
    head = ["#", "customer", "item", "qty", "total", "status", "updated"]
    if features.admin_enrichment:
        head += ["tier", "lifetime orders"]
    if features.audit_trail:
        head.append("audit")
    rows = []
    for order in orders:
        cells = [
            str(order["id"]),
            esc(order["customer"]),
            esc(order["item"]),
            str(order["quantity"]),
            _money(order["total_cents"]),
            esc(order["status"]),
            esc(order["updated_at"]),
        ]
        if features.admin_enrichment:
            profile = order.get("profile") or {}
            cells += [esc(str(profile.get("tier", "?"))), str(profile.get("lifetime_orders", "?"))]
        if features.audit_trail:
            cells.append(f'<a href="/admin/orders/{order["id"]}/audit">audit</a>')
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    nav = []
    if page > 1:
        nav.append(f'<a href="?page={page - 1}">previous</a>')
    if page < pages:
        nav.append(f'<a href="?page={page + 1}">next</a>')
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Orders - admin</title></head><body>"
        f"<h1>Orders</h1><p>{total} orders, page {page} of {pages}</p>"
        "<table><thead><tr>"
        + "".join(f"<th>{name}</th>" for name in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table><nav>"
        + " ".join(nav)
        + "</nav></body></html>"
    )
