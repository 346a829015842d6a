"""The orders database: SQLite, one connection per request, the schema and the seed data."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .logs import iso_time

STATUSES = ("new", "paid", "shipped", "delivered", "cancelled")
SEED_ORDERS = 50
#: SQLite's integers are 64-bit: a larger one from a request raises OverflowError in a query,
#: so every id, offset and amount a request brings is bounded by this before it gets here.
MAX_INTEGER = 2**63 - 1

_BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    tier TEXT NOT NULL,
    since TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    item TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders(customer_id);
"""

# Added by 1.1.0. Older releases never read it, so rolling back to 1.0.0 leaves it in place.
_AUDIT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    actor TEXT NOT NULL,
    field TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT,
    at TEXT NOT NULL,
    request_id TEXT
);
CREATE INDEX IF NOT EXISTS audit_order ON audit(order_id);
"""

_CUSTOMERS = [
    ("Ada Lovelace", "gold"),
    ("Grace Hopper", "gold"),
    ("Alan Turing", "silver"),
    ("Katherine Johnson", "silver"),
    ("Edsger Dijkstra", "bronze"),
    ("Barbara Liskov", "gold"),
    ("Donald Knuth", "bronze"),
    ("Margaret Hamilton", "silver"),
    ("Ken Thompson", "bronze"),
    ("Frances Allen", "silver"),
]
_ITEMS = [
    ("Espresso beans 1 kg", 2490),
    ("Pour-over kettle", 5900),
    ("Burr grinder", 14900),
    ("Ceramic mug", 1250),
    ("Paper filters x100", 690),
    ("Milk frother", 3490),
    ("Travel tumbler", 2290),
]


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection whose work is committed on success, rolled back on error, then closed."""
    conn = sqlite3.connect(path, timeout=5.0)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        with conn:
            yield conn
    finally:
        conn.close()


def init_db(path: Path, *, audit_trail: bool) -> int:
    """Create the schema this release needs and seed an empty database; the orders seeded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as conn:
        # WAL lets the admin page read while an order is written, as a real deployment would.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_BASE_SCHEMA)
        if audit_trail:
            conn.executescript(_AUDIT_SCHEMA)
    with connect(path) as conn:
        # IMMEDIATE takes the write lock first, so two starting servers cannot both seed.
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("SELECT count(*) FROM orders").fetchone()[0]:
            return 0
        return _seed(conn)


def _seed(conn: sqlite3.Connection) -> int:
    """Deterministic demo data: the same 10 customers and 50 orders on every first start."""
    start = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    for number, (name, tier) in enumerate(_CUSTOMERS, start=1):
        email = name.lower().replace(" ", ".") + "@example.com"
        since = iso_time((start - timedelta(days=40 * number)).timestamp())
        conn.execute(
            "INSERT OR IGNORE INTO customers (id, name, email, tier, since) VALUES (?, ?, ?, ?, ?)",
            (number, name, email, tier, since),
        )
    for number in range(1, SEED_ORDERS + 1):
        item, price = _ITEMS[number % len(_ITEMS)]
        quantity = 1 + (number * 7) % 4
        created = iso_time((start + timedelta(minutes=37 * number)).timestamp())
        conn.execute(
            "INSERT INTO orders (customer_id, item, quantity, total_cents, status, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                1 + (number * 3) % len(_CUSTOMERS),
                item,
                quantity,
                price * quantity,
                STATUSES[(number + number // 4) % len(STATUSES)],
                created,
                created,
            ),
        )
    return SEED_ORDERS


def ping(conn: sqlite3.Connection) -> None:
    """Raise if the database cannot answer a query."""
    conn.execute("SELECT 1 FROM orders LIMIT 1").fetchall()


def list_orders(
    conn: sqlite3.Connection, *, limit: int, offset: int, status: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """A page of orders, oldest first, and the number of orders that match."""
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    total = conn.execute(f"SELECT count(*) FROM orders {where}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT * FROM orders {where} ORDER BY id LIMIT ? OFFSET ?", [*params, limit, offset]
    ).fetchall()
    return [dict(row) for row in rows], total


def get_order(conn: sqlite3.Connection, order_id: int) -> dict[str, Any] | None:
    """One order, or None."""
    row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    return dict(row) if row else None


def customer_exists(conn: sqlite3.Connection, customer_id: int) -> bool:
    """Whether the customer is known."""
    row = conn.execute("SELECT 1 FROM customers WHERE id = ?", (customer_id,)).fetchone()
    return row is not None


def create_order(
    conn: sqlite3.Connection, *, customer_id: int, item: str, quantity: int, total_cents: int
) -> dict[str, Any]:
    """Insert a new order and return it."""
    now = iso_time()
    cursor = conn.execute(
        "INSERT INTO orders (customer_id, item, quantity, total_cents, status, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, 'new', ?, ?)",
        (customer_id, item, quantity, total_cents, now, now),
    )
    order = get_order(conn, int(cursor.lastrowid or 0))
    if order is None:  # cannot happen inside the same transaction; say so if it ever does
        msg = "the order just inserted could not be read back"
        raise RuntimeError(msg)
    return order


def update_order(
    conn: sqlite3.Connection,
    order_id: int,
    changes: dict[str, Any],
    *,
    actor: str,
    request_id: str | None,
    audit_trail: bool,
) -> dict[str, Any] | None:
    """Apply changes to an order; with the audit trail on, record each changed field."""
    before = get_order(conn, order_id)
    if before is None:
        return None
    changed = {key: value for key, value in changes.items() if before[key] != value}
    if not changed:
        return before
    now = iso_time()
    # Column names come from the request model's fixed fields, never from the client's keys.
    assignments = ", ".join(f"{key} = ?" for key in changed)
    conn.execute(
        f"UPDATE orders SET {assignments}, updated_at = ? WHERE id = ?",
        [*changed.values(), now, order_id],
    )
    if audit_trail:
        conn.executemany(
            "INSERT INTO audit (order_id, actor, field, old_value, new_value, at, request_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (order_id, actor, key, str(before[key]), str(value), now, request_id)
                for key, value in changed.items()
            ],
        )
    return get_order(conn, order_id)


def audit_entries(conn: sqlite3.Connection, order_id: int) -> list[dict[str, Any]]:
    """The audit trail of one order, oldest first."""
    rows = conn.execute(
        "SELECT at, actor, field, old_value, new_value, request_id FROM audit"
        " WHERE order_id = ? ORDER BY id",
        (order_id,),
    ).fetchall()
    return [dict(row) for row in rows]


def admin_page(
    conn: sqlite3.Connection, *, page: int, size: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of orders for the admin list, newest first, with the customer's name (one join)."""
    total = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    rows = conn.execute(
        "SELECT o.id, o.customer_id, c.name AS customer, o.item, o.quantity, o.total_cents,"
        " o.status, o.updated_at FROM orders o JOIN customers c ON c.id = o.customer_id"
        " ORDER BY o.id DESC LIMIT ? OFFSET ?",
        (size, (page - 1) * size),
    ).fetchall()
    return [dict(row) for row in rows], total


def customer_profile(conn: sqlite3.Connection, customer_id: int) -> dict[str, Any] | None:
    """One customer's profile: tier, customer since, lifetime orders and spend."""
    row = conn.execute(
        "SELECT c.tier, c.since, count(o.id) AS lifetime_orders,"
        " coalesce(sum(o.total_cents), 0) AS lifetime_cents"
        " FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE c.id = ?"
        " GROUP BY c.id",
        (customer_id,),
    ).fetchone()
    return dict(row) if row else None
