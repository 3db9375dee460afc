"""What the office's money screens read beside the API (issue 16): the organizers to choose a
creditor from, a customer found by number or id, and a customer's name for a page title.

Reads only: every change (an invoice issued or cancelled, a mandate, a SEPA run, a return) goes
through the API's operations (`hub/web/office/api_call.py`), so the rules in core/payments hold
for the office exactly as for a token.
"""

from __future__ import annotations

import sqlite3


def organizers(db: sqlite3.Connection) -> list[dict]:
    """Every organizer by name, with its creditor id (None: it cannot debit)."""
    return db.execute("SELECT id, name, sepa_creditor_id FROM organizers ORDER BY name, id").fetchall()


def customer(db: sqlite3.Connection, text: str) -> dict | None:
    """The customer whose number or id is *text* (None: no such customer)."""
    text = text.strip()
    if not text:
        return None
    return db.execute("SELECT id, number, first_name, last_name, company FROM customers WHERE number = ? OR id = ? "
                      "LIMIT 1", (text, text)).fetchone()


def order_numbers(db: sqlite3.Connection, order_ids: list[str]) -> dict[str, str]:
    """Order id -> order number, for naming debits in a list."""
    if not order_ids:
        return {}
    marks = ", ".join("?" * len(order_ids))
    return {r["id"]: r["number"] for r in db.execute(f"SELECT id, number FROM orders WHERE id IN ({marks})",
                                                     order_ids)}


def order_id(db: sqlite3.Connection, text: str) -> str | None:
    """The id of the order whose number or id is *text* (None: no such order)."""
    text = text.strip()
    if not text:
        return None
    row = db.execute("SELECT id FROM orders WHERE number = ? OR id = ? LIMIT 1", (text, text)).fetchone()
    return row["id"] if row else None
