"""An order's payment state from its payment rows, due dates, and the open items (Offene Posten).

The rows of `payments` (core/sales/payments.py) are the only truth; nothing here is stored.
What a row counts for:

- `paid` with a positive amount: money received; with a negative amount: a refund paid out;
- `pending`: owed and expected (a transfer against an invoice, a SEPA debit not collected yet);
- `failed`: nothing came (e.g. a returned direct debit), so the amount is open again;
- `refunded`: the row's money was received and given back in full.

A `pending` row with a negative amount is a refund the office still has to pay out (a
cancellation, core/payments/refunds.py): it is `refund_due`, never a claim.

From these: paid = sum of `paid` rows (refunds subtract), refunded = refunds paid out plus
`refunded` rows, owed = the order's total less what its cancelled lines credit
(core/payments/cancellations.py) plus what pending rows claim beyond what is open of it (a
returned debit's fee), open = owed - paid. While a refund is due the order holds more than it
is owed, so it is `overpaid` until the refund is paid out. A part payment lowers the pending row it pays
(core/payments/bank.py does), so pending rows are what is still expected. The state is `refunded` when money went back
and nothing is kept, `paid` when paid equals what is owed (an order of 0 is paid), `overpaid` above it,
`partly_paid` between, else `open`. An order is an open item while it is `open` or
`partly_paid`; it is due when its live invoice says (core/payments/invoices.py: the newest one not
cancelled), else `term_days` of its method (core/payments/providers.py) after the order day (the
method of its first pending row, else of its first row), in the venues' time zone.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Literal

from core.base.clock import LOCAL_TZ, parse_iso
from core.base.errors import NotFound
from core.payments import providers

State = Literal["open", "partly_paid", "paid", "overpaid", "refunded"]
OPEN_STATES = ("open", "partly_paid")


def local_day(timestamp: str) -> dt.date:
    """The calendar day of a stored UTC timestamp, at the venues."""
    return parse_iso(timestamp).astimezone(LOCAL_TZ).date()


def owed(total_cents: int, paid_cents: int, pending_cents: int) -> int:
    """What the customer owes in all: the order's total, plus what pending rows claim beyond
    what is still open of it (a returned debit's bank fee is a pending row beyond the total)."""
    return total_cents + max(pending_cents - max(total_cents - paid_cents, 0), 0)


def state_of(total_cents: int, paid_cents: int, refunded_cents: int) -> State:
    """The payment state from the sums (see the module docstring); *total_cents* is what is owed."""
    if refunded_cents > 0 and paid_cents <= 0:
        return "refunded"
    if paid_cents == total_cents:
        return "paid"
    if paid_cents > total_cents:
        return "overpaid"
    return "partly_paid" if paid_cents > 0 else "open"


def sums(rows: Iterable[Mapping]) -> dict[str, int]:
    """paid, refunded, pending (claimed) and refund-due cents of an order's payment rows."""
    paid = refunded = pending = due = 0
    for row in rows:
        amount, state = row["amount_cents"], row["state"]
        if state == "paid":
            paid += amount
            refunded += -amount if amount < 0 else 0
        elif state == "refunded":
            refunded += amount
        elif state == "pending" and amount < 0:
            due -= amount
        elif state == "pending":
            pending += amount
    return {"paid_cents": paid, "refunded_cents": refunded, "pending_cents": pending, "refund_due_cents": due}


def due_date(created_at: str, method: str | None) -> dt.date:
    """When what stays open of an order placed at *created_at* and paid by *method* is due."""
    return local_day(created_at) + dt.timedelta(days=providers.term_days(method))


def _method(rows: list[Mapping]) -> str | None:
    pending = [r for r in rows if r["state"] == "pending"]
    first = pending[0] if pending else (rows[0] if rows else None)
    return first["method"] if first else None


def summary(order: Mapping, rows: list[Mapping], today: dt.date) -> dict:
    """The payment state of *order* (a row of `orders`, with `credited_cents` where lines of it are
    cancelled) with its payment *rows* on *today*."""
    totals = sums(rows)
    net = order["total_cents"] - (order.get("credited_cents") or 0)
    owed_cents = owed(net, totals["paid_cents"], totals["pending_cents"])
    state = state_of(owed_cents, totals["paid_cents"], totals["refunded_cents"])
    method = _method(rows)
    due = due_date(order["created_at"], method)
    is_open = state in OPEN_STATES
    return {"state": state, "total_cents": order["total_cents"], "credited_cents": order["total_cents"] - net,
            **totals,
            "open_cents": owed_cents - totals["paid_cents"] if is_open else 0,
            "method": method, "due_date": due.isoformat() if is_open else None,
            "days_overdue": max((today - due).days, 0) if is_open else 0}


def live_invoice(db: sqlite3.Connection, order_id: str) -> dict | None:
    """The order's newest invoice that asks for payment and is not cancelled (core/payments/invoices.py):
    its due date is the order's, its number and Kassenzeichen are what the customer pays against."""
    return db.execute("SELECT id, number, kassenzeichen, due_on FROM invoices i WHERE order_id = ? "
                      "AND kind = 'invoice' AND due_on IS NOT NULL "
                      "AND NOT EXISTS (SELECT 1 FROM invoices x WHERE x.cancels_id = i.id) "
                      "ORDER BY created_at DESC, id DESC LIMIT 1", (order_id,)).fetchone()


def order_state(db: sqlite3.Connection, order: Mapping, today: dt.date) -> dict:
    """The payment state of an order as the order view shows it (due as its live invoice says, if any)."""
    rows = db.execute("SELECT method, amount_cents, state FROM payments WHERE order_id = ? ORDER BY created_at, id",
                      (order["id"],)).fetchall()
    state = summary({**order, "credited_cents": credited(db, order["id"])}, rows, today)
    invoice = live_invoice(db, order["id"])
    if invoice and state["due_date"]:
        due = dt.date.fromisoformat(invoice["due_on"])
        state |= {"due_date": due.isoformat(), "days_overdue": max((today - due).days, 0)}
    return state


def credited(db: sqlite3.Connection, order_id: str) -> int:
    """What the order's cancelled lines credit (core/payments/cancellations.py)."""
    return db.execute("SELECT coalesce(sum(credit_cents), 0) AS c FROM cancelled_lines WHERE order_id = ?",
                      (order_id,)).fetchone()["c"]


def state_of_order(db: sqlite3.Connection, order_id: str, today: dt.date) -> dict:
    """The payment state of the order *order_id* (NotFound for an unknown order)."""
    order = db.execute("SELECT id, total_cents, created_at FROM orders WHERE id = ?", (order_id,)).fetchone()
    if order is None:
        raise NotFound(f"order {order_id} does not exist", detail_de=f"Auftrag {order_id} gibt es nicht")
    return order_state(db, order, today)


def open_items_of_customer(db: sqlite3.Connection, customer_id: str, today: dt.date) -> list[dict]:
    """One customer's open items (NotFound for an unknown customer)."""
    if db.execute("SELECT 1 FROM customers WHERE id = ?", (customer_id,)).fetchone() is None:
        raise NotFound(f"customer {customer_id} does not exist", detail_de=f"Kunde {customer_id} existiert nicht")
    return open_items(db, today, customer_id=customer_id)


_OPEN = """
SELECT * FROM (
SELECT o.id, o.number, o.channel, o.customer_id, o.total_cents, o.created_at,
       c.number AS customer_number, c.first_name, c.last_name, c.company,
       COALESCE(SUM(CASE WHEN p.state = 'paid' THEN p.amount_cents END), 0) AS paid_cents,
       COALESCE(SUM(CASE WHEN p.state = 'paid' AND p.amount_cents < 0 THEN -p.amount_cents
                         WHEN p.state = 'refunded' THEN p.amount_cents END), 0) AS refunded_cents,
       COALESCE(SUM(CASE WHEN p.state = 'pending' AND p.amount_cents > 0 THEN p.amount_cents END), 0) AS pending_cents,
       (SELECT coalesce(sum(x.credit_cents), 0) FROM cancelled_lines x WHERE x.order_id = o.id) AS credited_cents,
       (SELECT q.method FROM payments q WHERE q.order_id = o.id
        ORDER BY q.state = 'pending' DESC, q.created_at, q.id LIMIT 1) AS method,
       (SELECT i.id FROM invoices i WHERE i.order_id = o.id AND i.kind = 'invoice' AND i.due_on IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM invoices x WHERE x.cancels_id = i.id)
        ORDER BY i.created_at DESC, i.id DESC LIMIT 1) AS invoice_id
FROM orders o
LEFT JOIN payments p ON p.order_id = o.id
LEFT JOIN customers c ON c.id = o.customer_id
WHERE (CAST(:customer AS TEXT) IS NULL OR o.customer_id = :customer)
GROUP BY o.id, c.id
) AS totals
WHERE paid_cents < total_cents - credited_cents OR pending_cents > 0
"""


def open_items(db: sqlite3.Connection, today: dt.date, *, customer_id: str | None = None) -> list[dict]:
    """The open items (Offene Posten), overall or of one customer: every order not fully paid
    (and not refunded), oldest due date first, with what is open and the days overdue."""
    items = []
    for row in db.execute(_OPEN, {"customer": customer_id}).fetchall():
        owed_cents = owed(row["total_cents"] - row["credited_cents"], row["paid_cents"], row["pending_cents"])
        state = state_of(owed_cents, row["paid_cents"], row["refunded_cents"])
        if state not in OPEN_STATES:
            continue
        invoice = live_invoice(db, row["id"]) if row["invoice_id"] else None
        due = dt.date.fromisoformat(invoice["due_on"]) if invoice else due_date(row["created_at"], row["method"])
        name = " ".join(part for part in (row["first_name"], row["last_name"]) if part) or None
        items.append({"order_id": row["id"], "order_number": row["number"], "channel": row["channel"],
                      "customer_id": row["customer_id"], "customer_number": row["customer_number"],
                      "customer_name": name, "company": row["company"] or None,
                      "created_at": row["created_at"], "method": row["method"], "state": state,
                      "total_cents": row["total_cents"], "paid_cents": row["paid_cents"],
                      "pending_cents": row["pending_cents"], "open_cents": owed_cents - row["paid_cents"],
                      "due_date": due.isoformat(), "days_overdue": max((today - due).days, 0),
                      "invoice_number": invoice["number"] if invoice else None,
                      "kassenzeichen": invoice["kassenzeichen"] if invoice else None})
    items.sort(key=lambda item: (item["due_date"], item["created_at"], item["order_number"]))
    return items
