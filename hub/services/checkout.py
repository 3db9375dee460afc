"""The shop's side of an order (A2): whose order it is, and the customer it is for.

A shop order remembers the API token that placed it; a shop token sees only its own
orders, staff see every shop order. The order itself is `core.sales.orders`; the views
are hub/web/areas/shop.py.
"""

from __future__ import annotations

import sqlite3

from core.base.errors import NotFound


def customer(db: sqlite3.Connection, customer_id: str) -> dict:
    """The stored customer row (names, e-mail address, structured address)."""
    return customer_of(customer_sent(db, customer_id), customer_id)


def customer_sent(db: sqlite3.Connection, customer_id: str) -> sqlite3.Cursor:
    """`customer`'s question, sent and not read yet (so that it goes with the caller's next one)."""
    return db.execute("SELECT * FROM customers WHERE id = ?", (customer_id,))


def customer_of(sent: sqlite3.Cursor, customer_id: str) -> dict:
    row = sent.fetchone()
    if row is None:
        raise NotFound(f"customer {customer_id} does not exist")
    return row


def mark_placed_by(db: sqlite3.Connection, order_id: str, token_id: str) -> None:
    """Record which API token placed the order (in the caller's transaction)."""
    db.execute("UPDATE orders SET created_by_token = ? WHERE id = ?", (token_id, order_id))


def require_shop_order(db: sqlite3.Connection, order_id: str, token: dict) -> None:
    """NotFound unless *order_id* is a shop order that *token* may read: a shop token only
    the orders it placed itself (another shop's order does not exist for it)."""
    row = db.execute("SELECT channel, created_by_token FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None or row["channel"] != "shop" or (token["role"] == "shop" and row["created_by_token"] != token["id"]):
        raise NotFound(f"there is no shop order {order_id}")
