"""The money side of a cancellation: claims dropped, refunds owed by the original method, paid out.

When lines of an order are cancelled (core/payments/cancellations.py) the order owes less by
their credit. What follows is decided from the order's payment rows alone (core/payments/states.py):

1. Claims not yet paid are dropped first, newest first: a pending transfer or SEPA row is lowered
   (a SEPA debit not yet exported is lowered with it, or cancelled when nothing is left). A debit
   already submitted to the bank cannot be called back; what it will collect beyond what is owed
   is reported (`at_bank_cents`) and shows as `overpaid` once it is collected.
   A returned debit's bank fee stays claimed: the customer caused it, not the cancellation.
2. What the order then holds beyond what it owes is refunded by the method it came in, newest
   payment first: cash as cash, card to the card (the terminal's refund), online through the
   payment service (its transaction id is the reference), a transfer or a collected SEPA debit
   by transfer to the customer's account (the IBAN it came from, where the bank statement or the
   mandate tells). The office may choose cash or transfer instead. What a choice voucher paid is
   not paid out in money (`kept_cents`): the voucher was used.
3. A refund is a `pending` row with a negative amount until the office has paid it out
   (`pay_out`: the card terminal's or payment service's refund reference where the method has
   one), then `paid` on that day, so the accounting export books it then.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, field
from typing import Annotated, Literal

from msgspec import Meta

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.storage import transaction
from core.catalog.common import Body
from core.payments import providers, states
from core.sales import payments

RefundMethod = Literal["original", "cash", "transfer"]
# the method a refund of money that came in by a method goes back by (absent: not paid out in money)
BACK_BY = {"cash": "cash", "card": "card", "online": "online", "transfer": "transfer", "sepa": "transfer"}


class PayOutIn(Body, kw_only=True):
    reference: Annotated[str, Meta(max_length=200)] | None = None


@dataclass(slots=True)
class Release:
    payment_id: str
    method: str
    cut_cents: int
    debit_id: str | None  # a due debit lowered with it (withdrawn when the row reaches 0)


@dataclass(slots=True)
class Refund:
    method: str
    amount_cents: int
    reference: str | None


@dataclass(slots=True)
class Plan:
    """What a credit of *credit_cents* does to an order's money (nothing written yet)."""

    credit_cents: int
    releases: list[Release] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    kept_cents: int = 0
    at_bank_cents: int = 0

    @property
    def released_cents(self) -> int:
        return sum(r.cut_cents for r in self.releases)

    @property
    def refund_cents(self) -> int:
        return sum(r.amount_cents for r in self.refunds)

    def as_dict(self) -> dict:
        return {"credit_cents": self.credit_cents, "released_cents": self.released_cents,
                "refund_cents": self.refund_cents, "kept_cents": self.kept_cents,
                "at_bank_cents": self.at_bank_cents,
                "refunds": [{"method": r.method, "amount_cents": r.amount_cents, "reference": r.reference}
                            for r in self.refunds]}


def plan(db: sqlite3.Connection, order: dict, credit_cents: int, method: RefundMethod = "original") -> Plan:
    """What cancelling lines worth *credit_cents* of *order* does to its money."""
    rows = db.execute("SELECT p.*, d.id AS debit_id, d.state AS debit_state FROM payments p LEFT JOIN sepa_debits d "
                      "ON d.payment_id = p.id AND d.state NOT IN ('returned', 'cancelled') WHERE p.order_id = ? "
                      "ORDER BY p.created_at, p.id", (order["id"],)).fetchall()
    totals = states.sums(rows)
    before = order["total_cents"] - states.credited(db, order["id"])
    after = before - credit_cents
    held = totals["paid_cents"] - totals["refund_due_cents"]
    fee = max(totals["pending_cents"] - max(before - held, 0), 0)  # a returned debit's fee stays claimed
    result = Plan(credit_cents)
    to_release = max(totals["pending_cents"] - (max(after - held, 0) + fee), 0)
    for row in reversed([r for r in rows if r["state"] == "pending" and r["amount_cents"] > 0]):
        if to_release <= 0:
            break
        cut = min(to_release, row["amount_cents"])
        if row["debit_state"] in ("submitted", "collected"):
            result.at_bank_cents += cut
        else:
            result.releases.append(Release(row["id"], row["method"], cut, row["debit_id"]))
        to_release -= cut
    owed_after = after + fee
    _allocate(db, result, rows, max(held - owed_after, 0), method)
    return result


def _allocate(db: sqlite3.Connection, result: Plan, rows: list[dict], refund: int, method: RefundMethod) -> None:
    """Spread *refund* over the methods the money came in by, newest payment first."""
    held: dict[str, int] = {}
    latest: dict[str, dict] = {}
    for row in rows:
        if row["state"] == "paid" or (row["state"] == "pending" and row["amount_cents"] < 0):
            held[row["method"]] = held.get(row["method"], 0) + row["amount_cents"]
            if row["state"] == "paid" and row["amount_cents"] > 0:
                latest[row["method"]] = row
    by: dict[tuple[str, str | None], int] = {}
    for m in sorted(latest, key=lambda m: (latest[m]["created_at"], latest[m]["id"]), reverse=True):
        if refund <= 0:
            break
        take = min(refund, max(held.get(m, 0), 0))
        if take <= 0 or m not in BACK_BY:
            continue
        back = BACK_BY[m] if method == "original" else method
        key = (back, _reference(db, latest[m], back) if method == "original" else None)
        by[key] = by.get(key, 0) + take
        refund -= take
    result.refunds = [Refund(m, amount, ref) for (m, ref), amount in by.items()]
    result.kept_cents = refund


def _reference(db: sqlite3.Connection, row: dict, back: str) -> str | None:
    """What the office needs to pay the refund: the card or online transaction it reverses, or the
    account a transfer goes to (the IBAN the money came from, else the mandate's)."""
    if back in ("card", "online"):
        return row["reference"]
    if back != "transfer":
        return None
    found = db.execute("SELECT party_iban AS iban FROM bank_entries WHERE payment_id = ? AND party_iban IS NOT NULL "
                       "UNION ALL SELECT d.iban FROM sepa_debits d WHERE d.payment_id = ? AND d.iban IS NOT NULL "
                       "LIMIT 1", (row["id"], row["id"])).fetchone()
    return f"IBAN {found['iban']}" if found else None


def apply(db: sqlite3.Connection, order: dict, result: Plan, *, cancellation_id: str, node_id: str,
          operator: str | None, now: dt.datetime) -> None:
    """Write *result* in the caller's transaction (the cancellation's)."""
    for r in result.releases:
        left = db.execute("UPDATE payments SET amount_cents = amount_cents - ? WHERE id = ? RETURNING amount_cents",
                          (r.cut_cents, r.payment_id)).fetchone()["amount_cents"]
        if r.debit_id and left > 0:
            db.execute("UPDATE sepa_debits SET amount_cents = ? WHERE id = ? AND state = 'due'", (left, r.debit_id))
        elif r.debit_id:  # nothing left to collect: the debit is withdrawn, kept as cancelled
            db.execute("UPDATE sepa_debits SET state = 'cancelled', cancelled_at = ?, cancel_reason = ? "
                       "WHERE id = ? AND state = 'due'", (iso(now), "order lines cancelled", r.debit_id))
    for r in result.refunds:
        payments.record(db, order["id"], method=r.method, amount_cents=-r.amount_cents, node_id=node_id, now=now,
                        reference=r.reference, operator=operator, state="pending", cancellation_id=cancellation_id)


# --- paying refunds out ------------------------------------------------------------------------------------


def pay_out(db: sqlite3.Connection, payment_id: str, data: PayOutIn, *, node_id: str, operator: str | None,
            now: dt.datetime) -> dict:
    """The office paid the refund *payment_id* out: it becomes `paid` today (with the card terminal's or
    payment service's refund reference, which those methods need)."""
    with transaction(db):
        row = db.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
        if row is None or row["cancellation_id"] is None or row["amount_cents"] >= 0:
            raise NotFound(f"no refund {payment_id}", detail_de=f"Keine Erstattung {payment_id}")
        if row["state"] != "pending":
            raise Conflict("this refund is already paid out", detail_de="Diese Erstattung ist bereits ausgezahlt")
        provider = providers.get(row["method"])
        reference = (data.reference or "").strip() or row["reference"]
        if provider.reference_required and not (data.reference or "").strip():
            raise ValidationError(f"enter the {provider.reference} of the refund", field="reference",
                                  detail_de=f"Bitte {provider.reference_de} der Erstattung eingeben")
        db.execute("UPDATE payments SET state = 'paid', reference = ?, operator = ?, node_id = ?, created_at = ? "
                   "WHERE id = ?", (reference, operator, node_id, iso(now), payment_id))
    return refund(db, payment_id)


_REFUNDS = """
SELECT p.id, p.order_id, o.number AS order_number, p.method, -p.amount_cents AS amount_cents, p.state, p.reference,
       p.cancellation_id, k.reason, p.created_at, p.operator, o.customer_id, c.number AS customer_number,
       trim(coalesce(c.first_name, '') || ' ' || coalesce(c.last_name, '')) AS customer_name
FROM payments p JOIN orders o ON o.id = p.order_id JOIN cancellations k ON k.id = p.cancellation_id
LEFT JOIN customers c ON c.id = o.customer_id
WHERE p.cancellation_id IS NOT NULL AND p.amount_cents < 0
"""


def refund(db: sqlite3.Connection, payment_id: str) -> dict:
    row = db.execute(_REFUNDS + " AND p.id = ?", (payment_id,)).fetchone()
    if row is None:
        raise NotFound(f"no refund {payment_id}", detail_de=f"Keine Erstattung {payment_id}")
    return row


def refunds(db: sqlite3.Connection, *, state: Literal["pending", "paid"] | None = None, limit: int = 100,
            offset: int = 0) -> dict:
    """Refunds, the ones still to pay out first, oldest first."""
    where = " AND p.state = ?" if state else ""
    args = (state,) if state else ()
    total = db.execute(f"SELECT count(*) AS n FROM ({_REFUNDS}{where}) AS r", args).fetchone()["n"]
    items = db.execute(f"{_REFUNDS}{where} ORDER BY p.state = 'paid', p.created_at, p.id LIMIT ? OFFSET ?",
                       (*args, limit, offset)).fetchall()
    return {"items": items, "total": total, "limit": limit, "offset": offset}
