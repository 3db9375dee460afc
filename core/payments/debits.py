"""SEPA debits: one amount to collect for one open SEPA payment row of an order (S12).

An order placed with payment method `sepa` gets a `pending` payment row (core/sales/payments.py).
The office turns that row into a debit against a mandate of the order's customer: the amount is
the row's (never a number from the request), the due date and the day the customer was told of
the debit (pre-notification) are the office's. A debit is `due` until an export puts it into a
pain.008 file (`submitted`), then `collected` (the payment row is `paid`) or `returned`
(Rücklastschrift: the payment row is open again, `pending`, and a bank fee passed on to the
customer becomes an open payment row of its own).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Annotated, Literal

from msgspec import Meta

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.money import MAX_CENTS
from core.base.storage import retried, transaction
from core.catalog.common import Body, Id, check_when
from core.payments import mandates, sepa_rules, states
from core.sales import payments

State = Literal["due", "submitted", "collected", "returned", "cancelled"]
ReturnCode = Annotated[str, Meta(min_length=4, max_length=4, pattern=r"^[A-Z0-9]{4}$")]

# ISO 20022 return and reject reasons of SEPA direct debits (EPC guidance on R-transactions).
RETURN_REASONS = {
    "AC01": "account identifier incorrect", "AC04": "account closed", "AC06": "account blocked for direct debit",
    "AC13": "debtor account is a consumer account", "AG01": "transaction forbidden on this account",
    "AG02": "invalid bank operation code", "AM04": "insufficient funds", "AM05": "duplicate collection",
    "BE05": "creditor identifier incorrect", "CNOR": "creditor bank not registered", "DNOR": "debtor bank not "
    "registered", "FF01": "invalid file format", "MD01": "no valid mandate", "MD02": "mandate data missing or "
    "incorrect", "MD06": "refund requested by the debtor (authorised debit)", "MD07": "debtor deceased",
    "MS02": "refused by the debtor", "MS03": "reason not specified", "RC01": "bank identifier incorrect",
    "RR01": "regulatory reason: debtor account or identification missing", "RR02": "regulatory reason: debtor "
    "name or address missing", "RR03": "regulatory reason: creditor name or address missing",
    "RR04": "regulatory reason", "SL01": "specific service of the debtor bank", "FOCR": "cancellation request",
    "DUPL": "duplicate payment", "TECH": "technical problem", "FRAD": "fraudulent origin",
}


DEBIT_STATES_DE = {"due": "fällig", "submitted": "eingereicht", "collected": "eingezogen",
                   "returned": "zurückgegeben", "cancelled": "storniert"}
MANDATE_STATES_DE = {"active": "aktiv", "used": "verbraucht", "cancelled": "widerrufen"}


class DebitIn(Body, kw_only=True):
    order_id: Id
    mandate_id: Id | None = None  # default: the customer's one active mandate
    due_on: dt.date | None = None  # default: today
    prenotified_on: dt.date | None = None  # the day the customer was told (default: today)


class ReturnIn(Body, kw_only=True):
    reason: ReturnCode
    fee_cents: Annotated[int, Meta(ge=0, le=10_000)] = 0


def create_from_order(db: sqlite3.Connection, data: DebitIn, now: dt.datetime) -> dict:
    today = now.date()
    for field, day in (("due_on", data.due_on), ("prenotified_on", data.prenotified_on)):
        if day is not None:
            check_when(day, field)
    if data.prenotified_on and data.prenotified_on > today:
        raise ValidationError("the pre-notification cannot be dated in the future", field="prenotified_on",
                              detail_de="Die Vorabankündigung kann nicht in der Zukunft liegen")
    with transaction(db):
        order = db.execute("SELECT * FROM orders WHERE id = ?", (data.order_id,)).fetchone()
        if order is None:
            raise NotFound(f"no order {data.order_id}", detail_de=f"Keine Bestellung {data.order_id}")
        if not order["customer_id"]:
            raise Conflict("the order has no customer: there is no one to debit", field="order_id",
                           detail_de="Die Bestellung hat keinen Kunden: niemand kann belastet werden")
        payment = _open_sepa_payment(db, order["id"])
        mandate = _mandate_for(db, order["customer_id"], data.mandate_id)
        if not 0 < payment["amount_cents"] <= MAX_CENTS:
            raise Conflict("the order's SEPA payment has nothing to collect", field="order_id",
                           detail_de="Die SEPA-Zahlung der Bestellung hat keinen Betrag zum Einzug")
        debit_id = uuid7()
        row = {"id": debit_id, "payment_id": payment["id"], "order_id": order["id"], "mandate_id": mandate["id"],
               "amount_cents": payment["amount_cents"], "due_on": (data.due_on or today).isoformat(),
               "prenotified_on": (data.prenotified_on or today).isoformat(),
               "end_to_end_id": debit_id.replace("-", "").upper(),
               "remittance": sepa_rules.sepa_text(f"Bestellung {order['number']}", 140),
               "state": "due", "created_at": iso(now)}
        db.execute(f"INSERT INTO sepa_debits ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                   tuple(row.values()))
    return get(db, debit_id)


def _open_sepa_payment(db: sqlite3.Connection, order_id: str) -> dict:
    """The order's pending SEPA payment row that no live debit collects yet."""
    rows = db.execute(
        "SELECT * FROM payments p WHERE order_id = ? AND method = 'sepa' AND state = 'pending' AND NOT EXISTS "
        "(SELECT 1 FROM sepa_debits d WHERE d.payment_id = p.id AND d.state NOT IN ('returned', 'cancelled')) "
        "ORDER BY created_at, id", (order_id,)).fetchall()
    if not rows:
        raise Conflict("the order has no open SEPA payment (paid another way, or a debit collects it already)",
                       field="order_id", detail_de="Die Bestellung hat keine offene SEPA-Zahlung (anders bezahlt, "
                                                   "oder eine Lastschrift zieht sie schon ein)")
    return rows[0]


def _mandate_for(db: sqlite3.Connection, customer_id: str, mandate_id: str | None) -> dict:
    if mandate_id is not None:
        mandate = db.execute("SELECT * FROM sepa_mandates WHERE id = ?", (mandate_id,)).fetchone()
        if mandate is None or mandate["customer_id"] != customer_id:
            raise ValidationError("no mandate of the order's customer has this id", field="mandate_id",
                                  detail_de="Der Kunde der Bestellung hat kein Mandat mit dieser ID")
        if mandate["state"] != "active":
            raise Conflict(f"the mandate is {mandate['state']}", field="mandate_id",
                           detail_de=f"Das Mandat ist {MANDATE_STATES_DE.get(mandate['state'], mandate['state'])}")
        return mandate
    active = [m for m in mandates.of_customer(db, customer_id) if m["state"] == "active"]
    if len(active) != 1:
        raise Conflict("the customer has no active SEPA mandate" if not active else
                       "the customer has several active mandates: name one (mandate_id)", field="mandate_id",
                       detail_de="Der Kunde hat kein aktives SEPA-Mandat" if not active else
                       "Der Kunde hat mehrere aktive Mandate: bitte eines wählen")
    return active[0]


def get(db: sqlite3.Connection, debit_id: str) -> dict:
    row = db.execute("SELECT * FROM sepa_debits WHERE id = ?", (debit_id,)).fetchone()
    if row is None:
        raise NotFound(f"no SEPA debit {debit_id}", detail_de=f"Keine SEPA-Lastschrift {debit_id}")
    return row


def listed(db: sqlite3.Connection, *, state: str | None = None, order_id: str | None = None,
           run_id: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
    where, args = [], []
    for column, value in (("state", state), ("order_id", order_id), ("run_id", run_id)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    sql = "SELECT * FROM sepa_debits" + (" WHERE " + " AND ".join(where) if where else "")
    return db.execute(sql + " ORDER BY due_on, created_at, id LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()


@retried  # a deadlock or serialization failure on PostgreSQL: run again
def mark_collected(db: sqlite3.Connection, debit_id: str, now: dt.datetime) -> dict:
    """The bank credited the debit: it is collected and its payment row paid."""
    with transaction(db):
        debit = get(db, debit_id)
        if debit["state"] != "submitted":
            raise Conflict(f"the debit is {debit['state']}: only a submitted debit is collected",
                           detail_de=f"Die Lastschrift ist {DEBIT_STATES_DE[debit['state']]}: nur eine "
                                     "eingereichte Lastschrift wird eingezogen")
        db.execute("UPDATE sepa_debits SET state = 'collected', collected_at = ? WHERE id = ?", (iso(now), debit_id))
        db.execute("UPDATE payments SET state = 'paid' WHERE id = ?", (debit["payment_id"],))
    return get(db, debit_id)


def uncollect(db: sqlite3.Connection, debit_id: str) -> None:
    """Take back a collection recorded by mistake (a bank entry matched to the wrong debit), inside
    the caller's transaction: the debit is submitted again and its payment row pending."""
    debit = get(db, debit_id)
    if debit["state"] != "collected":
        raise Conflict(f"the debit is {debit['state']}: only a collected debit is taken back to submitted",
                       detail_de=f"Die Lastschrift ist {DEBIT_STATES_DE[debit['state']]}: nur eine eingezogene "
                                 "Lastschrift wird zurückgenommen")
    db.execute("UPDATE sepa_debits SET state = 'submitted', collected_at = NULL WHERE id = ?", (debit_id,))
    db.execute("UPDATE payments SET state = 'pending' WHERE id = ?", (debit["payment_id"],))


def _reopened(db: sqlite3.Connection, debit: dict) -> str:
    """The state of a returned debit's payment row: `pending` (owed again), unless the order is
    paid without it (a transfer paid it as well, core/payments/bank_credits.py): then `failed`,
    nothing came and nothing is owed for it."""
    order = db.execute("SELECT total_cents FROM orders WHERE id = ?", (debit["order_id"],)).fetchone()
    others = db.execute("SELECT coalesce(sum(amount_cents), 0) AS c FROM payments WHERE order_id = ? "
                        "AND state = 'paid' AND id != ?", (debit["order_id"], debit["payment_id"])).fetchone()["c"]
    return "failed" if others >= order["total_cents"] - states.credited(db, debit["order_id"]) else "pending"


@retried
def mark_returned(db: sqlite3.Connection, debit_id: str, data: ReturnIn, node_id: str, now: dt.datetime) -> dict:
    """A Rücklastschrift: the debit is returned with its reason; its payment row is open again
    (`pending`), and a return fee passed on to the customer is an open payment row of its own
    (method `transfer`: the customer pays it, the hub does not debit it again on its own)."""
    if data.reason not in RETURN_REASONS:
        raise ValidationError(f"{data.reason} is not a SEPA return reason; known: {', '.join(RETURN_REASONS)}",
                              field="reason", detail_de=f"{data.reason} ist kein Rückgabegrund für "
                                                        f"SEPA-Lastschriften; bekannt: {', '.join(RETURN_REASONS)}")
    with transaction(db):
        debit = get(db, debit_id)
        if debit["state"] not in ("submitted", "collected"):
            raise Conflict(f"the debit is {debit['state']}: only a submitted or collected debit comes back",
                           detail_de=f"Die Lastschrift ist {DEBIT_STATES_DE[debit['state']]}: nur eine eingereichte "
                                     "oder eingezogene Lastschrift kommt zurück")
        db.execute("UPDATE sepa_debits SET state = 'returned', return_reason = ?, return_fee_cents = ?, "
                   "returned_at = ? WHERE id = ?", (data.reason, data.fee_cents, iso(now), debit_id))
        db.execute("UPDATE payments SET state = ? WHERE id = ?", (_reopened(db, debit), debit["payment_id"]))
        if data.fee_cents:
            payments.record(db, debit["order_id"], method="transfer", amount_cents=data.fee_cents, node_id=node_id,
                            now=now, reference=f"Ruecklastschrift {debit['end_to_end_id']} {data.reason}",
                            state="pending")
        mandates.after_return(db, debit["mandate_id"], data.reason, now)
    return get(db, debit_id)
