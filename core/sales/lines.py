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
    product_name: str  # the product's name (for receipts and lists), of the line `l`: a scalar subquery


LINE_KINDS: dict[str, LineKind] = {k.name: k for k in (
    LineKind("annual", "card", "(SELECT name FROM annual_products WHERE id = l.product_id)"),
    LineKind("voucher", "voucher", "(SELECT name FROM annual_products WHERE id = l.product_id)"),
    LineKind("ticket", "seat", "(SELECT title FROM performances WHERE id = l.product_id)"),
    # a subscription (core/subscriptions/sale.py): its seat tickets (one per performance) carry the line's id
    LineKind("subscription", "seats", "(SELECT name FROM subscription_products WHERE id = l.product_id)"),
)}
# each line's product name by its kind, in the lines' one statement (kinds and subqueries: the registry's)
_PRODUCT = "CASE l.kind " + " ".join(f"WHEN '{k.name}' THEN {k.product_name}" for k in LINE_KINDS.values()) + " END"
COLUMNS = ("id", "order_id", "position", "kind", "product_id", "price_cents", "vat_code", "card_id")


def store(db: sqlite3.Connection, order_id: str, lines: list[dict]) -> None:
    """Insert an order's lines (dicts with COLUMNS but order_id), in the order's transaction."""
    for line in lines:
        if line["kind"] not in LINE_KINDS:
            raise ValidationError(f"no order line kind {line['kind']!r}")
    db.executemany(f"INSERT INTO order_lines ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                   [tuple(order_id if c == "order_id" else line.get(c) for c in COLUMNS) for line in lines])


def of_order(db: sqlite3.Connection, order_id: str) -> list[dict]:
    """An order's lines in position order, each with its product's name (`product`; None for a
    kind the registry does not know)."""
    return db.execute(f"SELECT l.*, {_PRODUCT} AS product FROM order_lines l WHERE l.order_id = ? "
                      "ORDER BY l.position", (order_id,)).fetchall()
