"""What money in from the bank does to an order's payment rows, and how the office takes a wrong
match back.

A credit (core/payments/bank.py: matched by a rule, or assigned by hand) settles what the order
still expects, oldest first: its pending transfer rows, then its pending SEPA rows that no live
debit collects (a returned debit), then pending SEPA rows whose debit is still `due` (not in a
file yet): such a debit must not collect what the transfer paid, so it is cancelled when its row
is paid in full, or lowered to what stays open, in the same transaction. A row covered in full
becomes `paid` by transfer with the bank's reference, dated the booking day; a row covered in
part keeps the rest pending and the part is a new paid row; money left over is a paid row of
its own.

A debit already `submitted` cannot be stopped here (the file is at the bank). When the order's
rest is owed by such a debit and the transfer pays it as well, its row counts as paid (the bank
collects it on its collection date), so the order shows `overpaid`: a refund is due. Should the
debit come back after all, `debits.mark_returned` leaves the row failed, since the transfer paid it.

Every change is written to `bank_entry_payments` with what the row (and the debit) was before,
so `undo` restores exactly that; it refuses when the rows were changed since (a refund, another
debit), which the office then sorts out by hand.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, field

from core.base.clock import day_start, iso
from core.base.errors import Conflict
from core.sales import payments

# The order's pending rows a credit may settle, with the live debit of each (none for transfers).
_PENDING = """
SELECT p.id, p.method, p.amount_cents, p.reference, p.created_at,
       d.id AS debit_id, d.state AS debit_state, d.amount_cents AS debit_amount, d.end_to_end_id
FROM payments p LEFT JOIN sepa_debits d ON d.payment_id = p.id AND d.state NOT IN ('returned', 'cancelled')
WHERE p.order_id = ? AND p.state = 'pending' AND p.amount_cents > 0
  AND (p.method = 'transfer' OR (p.method = 'sepa' AND (d.id IS NULL OR d.state IN ('due', 'submitted'))))
ORDER BY p.method = 'sepa', d.id IS NOT NULL, p.created_at, p.id
"""


@dataclass
class Credited:
    """What one credit did: the first payment row it wrote, and what the office should know."""

    payment_id: str | None = None
    cancelled: list[str] = field(default_factory=list)  # end-to-end ids of due debits cancelled
    lowered: list[str] = field(default_factory=list)  # end-to-end ids of due debits lowered
    in_collection: list[str] = field(default_factory=list)  # submitted debits the transfer paid as well

    def note(self) -> str | None:
        """The entry's note (English; the office shows the state and the order)."""
        parts = [f"SEPA debit {e} cancelled: this transfer paid it" for e in self.cancelled]
        parts += [f"SEPA debit {e} lowered to what stays open" for e in self.lowered]
        parts += [f"overpaid: SEPA debit {e} was already submitted and collects as well; a refund is due"
                  for e in self.in_collection]
        return "; ".join(parts) or None


def record_credit(db: sqlite3.Connection, order_id: str, entry: dict, node_id: str, now: dt.datetime) -> Credited:
    """Record the credit *entry* as money received for the order, inside the caller's transaction
    (see the module text); every change is written down for `undo`."""
    paid_at = iso(min(now, day_start(dt.date.fromisoformat(entry["booked_on"])) + dt.timedelta(hours=12)))
    reference = f"Bank {entry['reference']}"[:200]
    rest, done = entry["amount_cents"], Credited()
    submitted = []
    for row in db.execute(_PENDING, (order_id,)).fetchall():
        if row["debit_state"] == "submitted":
            submitted.append(row)
        elif rest > 0:
            rest = _settle(db, entry, row, rest, (reference, paid_at, node_id, now), done)
    if rest > 0:
        extra = payments.record(db, order_id, method="transfer", amount_cents=rest, node_id=node_id, now=paid_at,
                                reference=reference, state="paid")
        _effect(db, entry, extra["id"], "extra", rest)
        done.payment_id = done.payment_id or extra["id"]
        for row in submitted:  # the order's rest was owed by a debit already at the bank
            db.execute("UPDATE payments SET state = 'paid' WHERE id = ?", (row["id"],))
            _effect(db, entry, row["id"], "in_collection", row["amount_cents"])
            done.in_collection.append(row["end_to_end_id"])
    return done


def _settle(db: sqlite3.Connection, entry: dict, row: dict, rest: int, how: tuple[str, str, str, dt.datetime],
            done: Credited) -> int:
    """Pay *row* from *rest* (in full or in part); a due debit of it is cancelled or lowered.
    *how*: the payment's reference, its time, the node, now. Returns what is left of the credit."""
    reference, paid_at, node_id, now = how
    debit = row["debit_id"]
    if rest >= row["amount_cents"]:
        db.execute("UPDATE payments SET state = 'paid', method = 'transfer', reference = ?, created_at = ? "
                   "WHERE id = ?", (reference, paid_at, row["id"]))
        _effect(db, entry, row["id"], "settled", row["amount_cents"], row, debit and "due")
        if debit:
            db.execute("UPDATE sepa_debits SET state = 'cancelled', cancelled_at = ?, cancel_reason = ? WHERE id = ?",
                       (iso(now), f"paid by transfer ({reference})", debit))
            done.cancelled.append(row["end_to_end_id"])
        done.payment_id = done.payment_id or row["id"]
        return rest - row["amount_cents"]
    db.execute("UPDATE payments SET amount_cents = amount_cents - ? WHERE id = ?", (rest, row["id"]))
    _effect(db, entry, row["id"], "split", rest, row, None)
    if debit:
        db.execute("UPDATE sepa_debits SET amount_cents = amount_cents - ? WHERE id = ?", (rest, debit))
        done.lowered.append(row["end_to_end_id"])
    part = payments.record(db, row_order(db, row["id"]), method="transfer", amount_cents=rest, node_id=node_id,
                           now=paid_at, reference=reference, state="paid")
    _effect(db, entry, part["id"], "extra", rest)
    done.payment_id = done.payment_id or part["id"]
    return 0


def row_order(db: sqlite3.Connection, payment_id: str) -> str:
    return db.execute("SELECT order_id FROM payments WHERE id = ?", (payment_id,)).fetchone()["order_id"]


def _effect(db: sqlite3.Connection, entry: dict, payment_id: str, effect: str, amount: int, row: dict | None = None,
            debit_state: str | None = None) -> None:
    db.execute("INSERT INTO bank_entry_payments (entry_id, payment_id, effect, amount_cents, prior_method, "
               "prior_reference, prior_created_at, debit_id, prior_debit_state, prior_debit_amount) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (entry["id"], payment_id, effect, amount, row and row["method"], row and row["reference"],
                row and row["created_at"], row and row["debit_id"], debit_state, row and row["debit_amount"]))


# --- taking a match back ------------------------------------------------------------------------------


def undo(db: sqlite3.Connection, entry_id: str) -> None:
    """Restore the payment rows (and debits) a credit changed, inside the caller's transaction;
    Conflict when they changed since (nothing is restored then)."""
    effects = db.execute("SELECT * FROM bank_entry_payments WHERE entry_id = ?", (entry_id,)).fetchall()
    if not effects:
        raise Conflict("this match left no record of what it changed; correct the order by hand",
                       detail_de="Zu dieser Zuordnung ist nicht festgehalten, was sie geändert hat; bitte den "
                                 "Auftrag von Hand berichtigen")
    for effect in effects:
        _check(db, effect)
    for effect in effects:
        _restore(db, effect)
    db.execute("DELETE FROM bank_entry_payments WHERE entry_id = ?", (entry_id,))


def _now_of(db: sqlite3.Connection, effect: dict) -> tuple[dict, dict | None]:
    row = db.execute("SELECT state, amount_cents FROM payments WHERE id = ?", (effect["payment_id"],)).fetchone()
    debit = db.execute("SELECT state, amount_cents FROM sepa_debits WHERE id = ?",
                       (effect["debit_id"],)).fetchone() if effect["debit_id"] else None
    return row, debit


def _check(db: sqlite3.Connection, effect: dict) -> None:
    """Is the row still as the match left it? (A debit in collection may have been collected or
    returned since: the bank decided that, and it stays.)"""
    row, debit = _now_of(db, effect)
    kind = effect["effect"]
    fine = {"settled": row["state"] == "paid" and row["amount_cents"] == effect["amount_cents"]
            and (debit is None or debit["state"] == "cancelled"),
            "split": row["state"] == "pending" and (debit is None or debit["state"] == "due"),
            "extra": row["state"] == "paid" and row["amount_cents"] == effect["amount_cents"],
            "in_collection": True}[kind]
    if not fine:
        raise Conflict(f"a payment row of the order changed since the match (now {row['state']}"
                       + (f", its debit {debit['state']}" if debit else "") + "); correct it by hand",
                       detail_de="Eine Zahlung des Auftrags hat sich seit der Zuordnung geändert; bitte von Hand "
                                 "berichtigen")


def _restore(db: sqlite3.Connection, effect: dict) -> None:
    kind, payment_id, amount = effect["effect"], effect["payment_id"], effect["amount_cents"]
    if kind == "settled":
        db.execute("UPDATE payments SET state = 'pending', method = ?, reference = ?, created_at = ? WHERE id = ?",
                   (effect["prior_method"], effect["prior_reference"], effect["prior_created_at"], payment_id))
    elif kind == "split":
        db.execute("UPDATE payments SET amount_cents = amount_cents + ? WHERE id = ?", (amount, payment_id))
    elif kind == "extra":  # money that was never the order's: the row stays, as failed (nothing came for it)
        db.execute("UPDATE payments SET state = 'failed', reference = substr(coalesce(reference, '') || "
                   "' (Zuordnung zurueckgenommen)', 1, 200) WHERE id = ?", (payment_id,))
    else:  # in collection: pending again unless the bank collected or returned the debit since
        db.execute("UPDATE payments SET state = 'pending' WHERE id = ? AND EXISTS (SELECT 1 FROM sepa_debits d "
                   "WHERE d.payment_id = payments.id AND d.state = 'submitted')", (payment_id,))
    if effect["debit_id"]:
        db.execute("UPDATE sepa_debits SET state = ?, amount_cents = ?, cancelled_at = NULL, cancel_reason = NULL "
                   "WHERE id = ?", (effect["prior_debit_state"] or "due", effect["prior_debit_amount"],
                                    effect["debit_id"]))
