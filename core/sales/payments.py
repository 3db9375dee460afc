"""Payments as rows of the order ledger (S11 groundwork): what was paid or is owed for an
order, how, by whom, with which reference, when.

Until now an order carried its payment as three columns, so it could only ever be paid
once, in full, one way. A row per payment lets a later issue add invoices (a transfer
owed), part payments, SEPA debits and refunds without touching the orders; today every
order gets exactly one row when it is placed, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Literal

from core.base.clock import iso
from core.base.errors import Conflict, ValidationError
from core.base.ids import uuid7

Method = Literal["cash", "card", "online", "transfer", "sepa", "none"]
Payment = Method
DESK_CHANNELS = ("cashdesk", "counter")
DESK_PAYMENTS = ("cash", "card")


def desk_channel(role: str) -> str:
    """The sales channel of a desk node: what it sells through is its role, never its word."""
    if role not in DESK_CHANNELS:
        raise Conflict(f"a {role} node does not sell")
    return role


def check_payment(channel: str, method: str, reference: str | None) -> None:
    """A desk takes cash or card; a card payment is made on the external terminal, whose
    receipt number is recorded so the day's card takings can be matched to it. The same
    rule for a sale made at the desk and for its operation arriving at the hub."""
    if channel not in DESK_CHANNELS:
        return
    if method not in DESK_PAYMENTS:
        raise ValidationError("the desk takes cash or card", field="payment_method",
                              detail_de="Die Kasse nimmt Bargeld oder Karte")
    if method == "card" and not (reference or "").strip():
        raise ValidationError("enter the card terminal's reference", field="payment_reference",
                              detail_de="Bitte die Belegnummer des Kartenterminals eingeben")


State = Literal["pending", "paid", "failed", "refunded"]
COLUMNS = ("id", "order_id", "method", "amount_cents", "state", "reference", "given_cents", "operator", "node_id",
           "created_at", "cancellation_id")


def state_at_order(method: str) -> State:
    """A transfer or a direct debit is owed when the order is placed; the rest is paid."""
    return "pending" if method in ("transfer", "sepa") else "paid"


def record(db: sqlite3.Connection, order_id: str, *, method: str, amount_cents: int, node_id: str,
           now: dt.datetime | str, reference: str | None = None, given_cents: int | None = None,
           operator: str | None = None, state: State | None = None, cancellation_id: str | None = None) -> dict:
    """One payment row, inside the caller's transaction (the order's; a refund's: its cancellation's,
    core/payments/refunds.py)."""
    if not db.in_transaction:
        raise RuntimeError("payments.record() must run inside the transaction of its order")
    row = {"id": uuid7(), "order_id": order_id, "method": method, "amount_cents": amount_cents,
           "state": state or state_at_order(method), "reference": reference, "given_cents": given_cents,
           "operator": operator, "node_id": node_id, "created_at": now if isinstance(now, str) else iso(now),
           "cancellation_id": cancellation_id}
    db.execute(f"INSERT INTO payments ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
               tuple(row[c] for c in COLUMNS))
    return row


def of_order(db: sqlite3.Connection, order_id: str) -> list[dict]:
    return of_order_sent(db, order_id).fetchall()


def of_order_sent(db: sqlite3.Connection, order_id: str) -> sqlite3.Cursor:
    """`of_order`'s question, sent and not read yet (to go with others: `orders.order_view`)."""
    return db.execute("SELECT * FROM payments WHERE order_id = ? ORDER BY created_at, id", (order_id,))

