"""Orders with lines and payment rows written straight into a hub database, for the tests of
payment states, open items and the DATEV export (the sale paths have their own tests)."""

from __future__ import annotations

import sqlite3

from core.base.ids import uuid7
from core.base.node import this_node
from core.base.storage import transaction
from core.sales import payments

NOW = "2026-03-01T10:00:00Z"


def customer(db: sqlite3.Connection, first: str, last: str, number: str) -> str:
    cid = uuid7()
    with transaction(db):
        db.execute("INSERT INTO customers (id, number, first_name, last_name, street, postcode, town, country, "
                   "created_at, updated_at) VALUES (?, ?, ?, ?, 'Hauptstraße 1', '10115', 'Berlin', 'DE', ?, ?)",
                   (cid, number, first, last, NOW, NOW))
    return cid


def order(db: sqlite3.Connection, number: str, lines: list[tuple[int, str | None]],
          rows: list[tuple[str, int, str, str]], *, created_at: str = NOW, customer_id: str | None = None) -> str:
    """An order of *lines* (price_cents, vat_code) paid by *rows* (method, amount_cents, state, created_at)."""
    oid, node = uuid7(), this_node(db)["id"]
    with transaction(db):
        db.execute("INSERT INTO orders (id, number, node_id, channel, customer_id, total_cents, created_at) "
                   "VALUES (?, ?, ?, 'phone', ?, ?, ?)", (oid, number, node, customer_id,
                                                          sum(p for p, _ in lines), created_at))
        for position, (price, vat) in enumerate(lines, start=1):
            db.execute("INSERT INTO order_lines (id, order_id, position, kind, product_id, price_cents, vat_code) "
                       "VALUES (?, ?, ?, 'ticket', ?, ?, ?)", (uuid7(), oid, position, uuid7(), price, vat))
        for method, amount, state, at in rows:
            payments.record(db, oid, method=method, amount_cents=amount, node_id=node, now=at, state=state,
                            reference="T-1" if method == "card" else None)
    return oid
