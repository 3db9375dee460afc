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


def invoice(db: sqlite3.Connection, order_id: str, number: str, *, due_on: str | None, kassenzeichen: str,
            vat_codes: dict[int, str], cancels: str | None = None) -> str:
    """A stored invoice of the order's lines at *vat_codes* (position -> code), as
    core/payments/invoices.py writes one (the fields the payment state and DATEV read)."""
    iid = uuid7()
    with transaction(db):
        organizer = db.execute("SELECT id FROM organizers LIMIT 1").fetchone()
        if organizer is None:
            organizer = {"id": uuid7()}
            db.execute("INSERT INTO organizers (id, name, street, postcode, town, country, tax_number, created_at, "
                       "updated_at) VALUES (?, 'Stadttheater', 'Markt 1', '10115', 'Berlin', 'DE', '12/345/67890', "
                       "?, ?)", (organizer["id"], NOW, NOW))
        order_row = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        db.execute("INSERT INTO invoices (id, number, kind, cancels_id, order_id, organizer_id, customer_id, node_id, "
                   "language, issued_on, due_on, issuer, recipient, total_cents, paid_cents, kassenzeichen, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'de', '2026-03-01', ?, '{}', '{}', ?, 0, ?, ?)",
                   (iid, number, "cancellation" if cancels else "invoice", cancels, order_id, organizer["id"],
                    order_row["customer_id"], order_row["node_id"], due_on, order_row["total_cents"],
                    kassenzeichen, NOW))
        for position, code in vat_codes.items():
            line = db.execute("SELECT * FROM order_lines WHERE order_id = ? AND position = ?",
                              (order_id, position)).fetchone()
            db.execute("INSERT INTO invoice_lines (invoice_id, position, order_line_id, description, gross_cents, "
                       "vat_code) VALUES (?, ?, ?, 'Karte', ?, ?)", (iid, position, line["id"], line["price_cents"],
                                                                      code))
    return iid
