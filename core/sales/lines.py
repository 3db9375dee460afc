"""The line-kind registry of the order ledger: what an order line can be and what it delivers.

One `orders` table and one `order_lines` table serve every channel and product: an annual
card (delivers a signed card), an annual-ticket voucher (a signed voucher card), a seat
ticket (a row in `tickets`: one seat of one performance), a subscription (a `subscriptions`
row and a seat ticket per performance). Further kinds (choice vouchers) are added here by
later issues, not as tables beside the ledger; so the
database does not constrain `order_lines.kind`, this registry does.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from core.base.errors import ValidationError


@dataclass(frozen=True)
class LineKind:
    name: str
    delivers: str  # "card", "voucher", "seat" or "seats" (a subscription: a seat per performance)
    product_name_sql: str  # `product_id` -> the product's name, for receipts and lists


LINE_KINDS: dict[str, LineKind] = {k.name: k for k in (
    LineKind("annual", "card", "SELECT name FROM annual_products WHERE id = ?"),
    LineKind("voucher", "voucher", "SELECT name FROM annual_products WHERE id = ?"),
    LineKind("ticket", "seat", "SELECT title AS name FROM performances WHERE id = ?"),
    # a subscription (core/subscriptions/sale.py): its seat tickets (one per performance) carry the line's id
    LineKind("subscription", "seats", "SELECT name FROM subscription_products WHERE id = ?"),
)}
COLUMNS = ("id", "order_id", "position", "kind", "product_id", "price_cents", "vat_code", "card_id")


def store(db: sqlite3.Connection, order_id: str, lines: list[dict]) -> None:
    """Insert an order's lines (dicts with COLUMNS but order_id), in the order's transaction."""
    for line in lines:
        if line["kind"] not in LINE_KINDS:
            raise ValidationError(f"no order line kind {line['kind']!r}")
    db.executemany(f"INSERT INTO order_lines ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                   [tuple(order_id if c == "order_id" else line.get(c) for c in COLUMNS) for line in lines])


def of_order(db: sqlite3.Connection, order_id: str) -> list[dict]:
    """An order's lines in position order, each with its product's name (`product`)."""
    lines = db.execute("SELECT * FROM order_lines WHERE order_id = ? ORDER BY position", (order_id,)).fetchall()
    for line in lines:
        kind = LINE_KINDS.get(line["kind"])
        row = db.execute(kind.product_name_sql, (line["product_id"],)).fetchone() if kind else None
        line["product"] = row["name"] if row else None
    return lines
