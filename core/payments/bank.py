"""Bank statements (B6): a camt.053 file imported, each booking matched to what the hub expects.

The file is read by `core.payments.camt` (hostile input: no DTD, no entities, no network). Each
booked transaction becomes a bank entry, unique by the account and the bank's reference: a file
imported twice, or a later file that repeats a booking, adds nothing. The whole import is one
transaction: a file that cannot be read stores nothing.

**Credits** (money in) are matched by the first rule that finds exactly one candidate:

1. **Kassenzeichen** of a live invoice (not cancelled) in the remittance text;
2. **invoice number** of a live invoice in the remittance text;
3. **end-to-end id** of one of our submitted SEPA debits, with the debit's amount: the debit
   is collected (`core.payments.debits.mark_collected`);
4. **amount**: exactly one open item paid by transfer has exactly this open amount.

A reference counts only as a whole word (the characters around it are not letters, digits,
`.`, `-` or `/`): Kassenzeichen `2026-000001` is not found inside `RE-2026-000001`. Rules 1, 2
and 4 need the order to be an open item (open or partly paid); the credit is recorded on it as a
payment (method `transfer`, state `paid`, reference = the bank's reference, dated the booking
day): it settles the order's pending transfer rows (and SEPA rows no debit collects any more)
oldest first, splitting the last one it covers only in part, so a partial payment leaves the
order partly paid with the rest still pending. Two candidates under one rule, a paid order, a
reversal or a foreign currency: the entry is unmatched, with a note saying why.

**Debits** (money out) that carry the end-to-end id of one of our SEPA debits are returns
(Rücklastschriften): `core.payments.debits.mark_returned` with the reason code of the file
(`RtrInf/Rsn/Cd`) and the charges as the fee passed on. Every other debit is unmatched.

What a credit does to the order's rows (and to a SEPA debit that was to collect the same money:
cancelled while still due, the order overpaid when it was submitted already) is
`core.payments.bank_credits`, which also takes a wrong match back (`take_back`).

The office clears the unmatched list by hand: assign a credit to an order (recorded as above),
or dismiss an entry with a note.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import sqlite3
from collections.abc import Callable
from typing import Annotated, Literal

from msgspec import Meta

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, TesseraError, ValidationError
from core.base.ids import uuid7
from core.base.storage import retried, transaction
from core.catalog.common import Body, Id
from core.payments import bank_credits, camt, debits, mandates, states

EntryState = Literal["matched", "returned", "unmatched", "assigned", "dismissed"]
_WORD = "A-Za-z0-9./\\-"
MIN_REFERENCE = 4  # a shorter Kassenzeichen or number is too easily found by chance
# {col} is one of two column names of ours (kassenzeichen, number), never input
_LIVE_INVOICE = ("kind = 'invoice' AND NOT EXISTS (SELECT 1 FROM invoices x WHERE x.cancels_id = invoices.id) "
                 f"AND length({{col}}) >= {MIN_REFERENCE} AND instr(:text, upper({{col}})) > 0")


class AssignIn(Body, kw_only=True):
    order_id: Id
    note: Annotated[str, Meta(max_length=500)] | None = None


class DismissIn(Body, kw_only=True):
    note: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"\S")]


class TakeBackIn(Body, kw_only=True):
    note: Annotated[str, Meta(max_length=500)] | None = None  # why (a wrong order, a wrong amount match)


# --- import ---------------------------------------------------------------------------------------------


def import_statement(db: sqlite3.Connection, raw: bytes, node_id: str, now: dt.datetime,
                     operator: str | None = None) -> dict:
    """Import a camt.053 file: store its new bookings and match them. Returns what happened."""
    statement = camt.parse(raw)
    check_account(db, statement.account_iban)
    digest = hashlib.sha256(raw).hexdigest()
    counts = {"matched": 0, "returned": 0, "unmatched": 0}
    with transaction(db):
        same = db.execute("SELECT id FROM bank_statements WHERE sha256 = ?", (digest,)).fetchone()
        new = [t for t in statement.transactions if not _known(db, statement.account_iban, t.reference)]
        result = {"account_iban": statement.account_iban, "version": f"camt.053.001.{statement.version}",
                  "transactions": len(statement.transactions), "new": len(new),
                  "known": len(statement.transactions) - len(new), "skipped": statement.skipped}
        if same is not None or not new:
            return {"statement_id": same["id"] if same else None, "duplicate": True, **result, **counts,
                    **_told(db, None)}
        statement_id = uuid7()
        row = {"id": statement_id, "message_id": statement.message_id, "statement_id": statement.statement_id,
               "account_iban": statement.account_iban, "version": statement.version,
               "created_at": statement.created_at, "entries": len(new), "xml": raw, "sha256": digest,
               "operator": operator, "imported_at": iso(now)}
        _insert(db, "bank_statements", row)
        for transaction_ in new:
            entry = _store(db, statement_id, statement.account_iban, transaction_, now)
            counts[_settle(db, entry, node_id, now)] += 1
    return {"statement_id": statement_id, "duplicate": False, **result, **counts, **_told(db, statement_id)}


def check_account(db: sqlite3.Connection, iban: str) -> None:
    """A statement is ours only when its account is one of our accounts (the organizers' SEPA
    creditor accounts, where transfers and collected debits arrive): another account's bookings
    would be matched against our invoices by chance. Refused before anything is stored."""
    ours = [row["iban"] for row in mandates.creditor_accounts(db)]
    if iban in ours:
        return
    known = ", ".join(ours) if ours else "none yet"
    raise ValidationError(f"the statement is for account {iban}, which is none of our accounts (the organizers' "
                          f"SEPA creditor accounts: {known}); nothing was imported", field="file",
                          detail_de=f"Der Kontoauszug gehört zum Konto {iban}, das keines unserer Konten ist "
                                    "(Gläubigerkonten der Veranstalter: "
                                    f"{', '.join(ours) if ours else 'noch keines'}); nichts wurde eingelesen")


def _told(db: sqlite3.Connection, statement_id: str | None) -> dict:
    """What the office must know of an import beyond the counts: credits that overpaid an order
    (a SEPA debit already at the bank collects as well: a refund is due), and due debits the
    transfers made unnecessary (cancelled or lowered)."""
    rows = db.execute("SELECT e.id, e.order_id, e.note, x.effect, x.debit_id FROM bank_entries e "
                      "JOIN bank_entry_payments x ON x.entry_id = e.id WHERE e.statement_id = ? "
                      "ORDER BY e.booked_on, e.id", (statement_id,)).fetchall()
    overpaid = {r["id"]: {"entry_id": r["id"], "order_id": r["order_id"], "note": r["note"]}
                for r in rows if r["effect"] == "in_collection"}
    return {"overpaid": list(overpaid.values()),
            "debits_cancelled": len({r["debit_id"] for r in rows if r["debit_id"] and r["effect"] == "settled"}),
            "debits_lowered": len({r["debit_id"] for r in rows if r["debit_id"] and r["effect"] == "split"})}


def _known(db: sqlite3.Connection, account: str, reference: str) -> bool:
    return db.execute("SELECT 1 FROM bank_entries WHERE account_iban = ? AND reference = ?",
                      (account, reference)).fetchone() is not None


def _insert(db: sqlite3.Connection, table: str, row: dict) -> None:
    # table is one of our two literals, never input
    db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


def _store(db: sqlite3.Connection, statement_id: str, account: str, t: camt.Transaction, now: dt.datetime) -> dict:
    row = {"id": uuid7(), "statement_id": statement_id, "account_iban": account, "reference": t.reference,
           "direction": t.direction, "amount_cents": t.amount_cents, "currency": t.currency,
           "booked_on": t.booked_on.isoformat(), "value_on": t.value_on.isoformat() if t.value_on else None,
           "reversal": int(t.reversal), "end_to_end_id": t.end_to_end_id, "remittance": t.remittance,
           "party_name": t.party_name, "party_iban": t.party_iban, "bank_code": t.bank_code,
           "return_reason": t.return_reason, "fee_cents": t.fee_cents, "state": "unmatched",
           "created_at": iso(now)}
    _insert(db, "bank_entries", row)
    return row


# --- matching -------------------------------------------------------------------------------------------


def _settle(db: sqlite3.Connection, entry: dict, node_id: str, now: dt.datetime) -> str:
    """Match one new entry; answers its state ('matched', 'returned' or 'unmatched')."""
    if entry["reversal"]:
        return _unmatched(db, entry, "a reversal (Storno) of the bank: check by hand")
    if entry["currency"] != "EUR":
        return _unmatched(db, entry, f"the amount is in {entry['currency']}, not EUR")
    if entry["direction"] == "debit":
        return _return(db, entry, node_id, now)
    text = " ".join(entry["remittance"].upper().split())
    for rule, find in _RULES:
        found = find(db, entry, text, now.date())
        if found is None:
            continue
        if isinstance(found, str):
            return _unmatched(db, entry, found)
        if rule == "end_to_end_id":
            return _collect(db, entry, found, now)
        return _pay(db, entry, rule, found, node_id, now)
    return _unmatched(db, entry, "no Kassenzeichen, invoice number, end-to-end id or unique open amount")


def _unmatched(db: sqlite3.Connection, entry: dict, note: str) -> str:
    db.execute("UPDATE bank_entries SET state = 'unmatched', note = ? WHERE id = ?", (note, entry["id"]))
    return "unmatched"


def _whole_word(text: str, reference: str) -> bool:
    pattern = f"(?<![{_WORD}]){re.escape(' '.join(reference.upper().split()))}(?![{_WORD}])"
    return re.search(pattern, text) is not None


def _by_invoice(column: str) -> Callable[[sqlite3.Connection, dict, str, dt.date], dict | str | None]:
    def find(db: sqlite3.Connection, entry: dict, text: str, today: dt.date) -> dict | str | None:
        sql = f"SELECT id, order_id, {column} AS ref FROM invoices WHERE " + _LIVE_INVOICE.format(col=column)
        rows = [r for r in db.execute(sql, {"text": text}).fetchall() if _whole_word(text, r["ref"])]
        orders = {r["order_id"] for r in rows}
        if not rows:
            return None
        if len(orders) > 1:
            return f"the text names invoices of {len(orders)} orders ({', '.join(sorted(r['ref'] for r in rows))})"
        return _open_order(db, rows[0]["order_id"], today, invoice_id=rows[0]["id"])
    return find


def _open_order(db: sqlite3.Connection, order_id: str, today: dt.date, invoice_id: str | None = None) -> dict | str:
    order = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    state = states.order_state(db, order, today)
    if state["state"] not in states.OPEN_STATES:
        return f"order {order['number']} is {state['state']} already (paid twice?)"
    return {"order_id": order_id, "invoice_id": invoice_id}


def _by_end_to_end(db: sqlite3.Connection, entry: dict, text: str, today: dt.date) -> dict | str | None:
    if not entry["end_to_end_id"]:
        return None
    debit = db.execute("SELECT * FROM sepa_debits WHERE end_to_end_id = ?",
                       (entry["end_to_end_id"].upper(),)).fetchone()
    if debit is None:
        return None
    if debit["state"] != "submitted":
        return f"the SEPA debit {debit['end_to_end_id']} is {debit['state']}, not submitted"
    if debit["amount_cents"] != entry["amount_cents"]:
        return f"the SEPA debit {debit['end_to_end_id']} was for {debit['amount_cents']} cents"
    return debit


def _by_amount(db: sqlite3.Connection, entry: dict, text: str, today: dt.date) -> dict | str | None:
    items = [i for i in states.open_items(db, today)
             if i["open_cents"] == entry["amount_cents"] and i["method"] == "transfer"]
    if not items:
        return None
    if len(items) > 1:
        return f"{len(items)} open items have this amount"
    return {"order_id": items[0]["order_id"], "invoice_id": None}


_RULES = (("kassenzeichen", _by_invoice("kassenzeichen")), ("invoice_number", _by_invoice("number")),
          ("end_to_end_id", _by_end_to_end), ("amount", _by_amount))


def _collect(db: sqlite3.Connection, entry: dict, debit: dict, now: dt.datetime) -> str:
    debits.mark_collected(db, debit["id"], now)
    db.execute("UPDATE bank_entries SET state = 'matched', rule = 'end_to_end_id', order_id = ?, debit_id = ?, "
               "payment_id = ?, resolved_at = ? WHERE id = ?",
               (debit["order_id"], debit["id"], debit["payment_id"], iso(now), entry["id"]))
    return "matched"


def _pay(db: sqlite3.Connection, entry: dict, rule: str, found: dict, node_id: str, now: dt.datetime,
         state: str = "matched", note: str | None = None, operator: str | None = None) -> str:
    done = bank_credits.record_credit(db, found["order_id"], entry, node_id, now)
    note = "; ".join(n for n in (note, done.note()) if n) or None
    db.execute("UPDATE bank_entries SET state = ?, rule = ?, order_id = ?, invoice_id = ?, payment_id = ?, "
               "note = ?, operator = ?, resolved_at = ? WHERE id = ?",
               (state, rule, found["order_id"], found.get("invoice_id"), done.payment_id, note, operator, iso(now),
                entry["id"]))
    return state


def _return(db: sqlite3.Connection, entry: dict, node_id: str, now: dt.datetime) -> str:
    e2e = entry["end_to_end_id"]
    debit = db.execute("SELECT * FROM sepa_debits WHERE end_to_end_id = ?", (e2e.upper(),)).fetchone() if e2e else None
    if debit is None:
        return _unmatched(db, entry, "money out that is no return of one of our SEPA debits")
    if not entry["return_reason"]:
        return _unmatched(db, entry, f"a debit of SEPA debit {debit['end_to_end_id']} without a return reason")
    try:
        body = debits.ReturnIn(reason=entry["return_reason"], fee_cents=entry["fee_cents"])
        if body.fee_cents > 10_000:
            raise ValidationError(f"a return fee of {body.fee_cents} cents is implausible", field="fee_cents",
                                      detail_de=f"Eine Rücklastschriftgebühr von {body.fee_cents} Cent ist "
                                                "unplausibel")
        debits.mark_returned(db, debit["id"], body, node_id, now)
    except TesseraError as exc:
        return _unmatched(db, entry, f"return of SEPA debit {debit['end_to_end_id']} not recorded: {exc.detail}")
    db.execute("UPDATE bank_entries SET state = 'returned', rule = 'return', order_id = ?, debit_id = ?, "
               "payment_id = ?, resolved_at = ? WHERE id = ?",
               (debit["order_id"], debit["id"], debit["payment_id"], iso(now), entry["id"]))
    return "returned"


# --- the office's hand ----------------------------------------------------------------------------------


@retried  # a deadlock or serialization failure on PostgreSQL: run again
def assign(db: sqlite3.Connection, entry_id: str, data: AssignIn, node_id: str, now: dt.datetime,
           operator: str | None = None) -> dict:
    """The office puts an unmatched credit on an order: recorded as a payment like a match."""
    with transaction(db):
        entry = _unresolved(db, entry_id)
        if entry["direction"] != "credit" or entry["reversal"] or entry["currency"] != "EUR":
            raise Conflict("only a credit in EUR can be assigned to an order; dismiss this entry with a note",
                           detail_de="Nur eine Gutschrift in EUR kann einer Bestellung zugeordnet werden; "
                                     "diesen Eintrag bitte mit Notiz erledigen")
        if db.execute("SELECT 1 FROM orders WHERE id = ?", (data.order_id,)).fetchone() is None:
            raise ValidationError(f"no order {data.order_id}", field="order_id",
                                  detail_de=f"Keine Bestellung {data.order_id}")
        _pay(db, entry, "manual", {"order_id": data.order_id}, node_id, now, state="assigned", note=data.note,
             operator=operator)
    return get(db, entry_id)


def dismiss(db: sqlite3.Connection, entry_id: str, data: DismissIn, now: dt.datetime,
            operator: str | None = None) -> dict:
    """The office sets an unmatched entry aside (a bank fee, a private transfer) with a note."""
    with transaction(db):
        _unresolved(db, entry_id)
        db.execute("UPDATE bank_entries SET state = 'dismissed', rule = 'manual', note = ?, operator = ?, "
                   "resolved_at = ? WHERE id = ?", (data.note.strip(), operator, iso(now), entry_id))
    return get(db, entry_id)


def take_back(db: sqlite3.Connection, entry_id: str, data: TakeBackIn, now: dt.datetime,
              operator: str | None = None) -> dict:
    """The office takes back a wrong match or assignment of a credit: the payment rows it wrote are
    restored as they were (`bank_credits.undo`; a collected debit is submitted again), so the
    order is open again, and the entry is back on the unmatched list. One transaction."""
    with transaction(db):
        entry = get(db, entry_id)
        if entry["state"] not in ("matched", "assigned"):
            raise Conflict(f"the entry is {entry['state']}: only a matched or assigned credit is taken back",
                           detail_de="Nur eine zugeordnete Gutschrift kann zurückgenommen werden")
        if entry["rule"] == "end_to_end_id":
            debits.uncollect(db, entry["debit_id"])
        else:
            bank_credits.undo(db, entry_id)
        order = db.execute("SELECT number FROM orders WHERE id = ?", (entry["order_id"],)).fetchone()
        note = f"match taken back ({entry['rule']}, order {order['number'] if order else '?'})"
        if data.note and data.note.strip():
            note += f": {data.note.strip()}"
        db.execute("UPDATE bank_entries SET state = 'unmatched', rule = NULL, order_id = NULL, invoice_id = NULL, "
                   "debit_id = NULL, payment_id = NULL, note = ?, operator = ?, resolved_at = NULL WHERE id = ?",
                   (note[:500], operator, entry_id))
    return get(db, entry_id)


def _unresolved(db: sqlite3.Connection, entry_id: str) -> dict:
    entry = get(db, entry_id)
    if entry["state"] != "unmatched":
        raise Conflict(f"the entry is {entry['state']} already; only an unmatched entry is cleared by hand",
                       detail_de="Der Eintrag ist schon erledigt; nur offene Einträge werden von Hand geklärt")
    return entry


# --- reading --------------------------------------------------------------------------------------------

_ENTRY_COLUMNS = ("id, statement_id, account_iban, reference, direction, amount_cents, currency, booked_on, value_on, "
                  "reversal, end_to_end_id, remittance, party_name, party_iban, bank_code, return_reason, fee_cents, "
                  "state, rule, order_id, invoice_id, debit_id, payment_id, note, operator, resolved_at, created_at")


def get(db: sqlite3.Connection, entry_id: str) -> dict:
    row = db.execute(f"SELECT {_ENTRY_COLUMNS} FROM bank_entries WHERE id = ?", (entry_id,)).fetchone()
    if row is None:
        raise NotFound(f"no bank entry {entry_id}", detail_de=f"Kein Kontoauszugseintrag {entry_id}")
    return {**row, "reversal": bool(row["reversal"])}


def entries(db: sqlite3.Connection, *, state: str | None = None, statement_id: str | None = None,
            limit: int = 100, offset: int = 0) -> list[dict]:
    rows = db.execute(f"SELECT {_ENTRY_COLUMNS} FROM bank_entries "
                      "WHERE (CAST(:state AS TEXT) IS NULL OR state = :state) "
                      "AND (CAST(:statement AS TEXT) IS NULL OR statement_id = :statement) "
                      "ORDER BY booked_on, created_at, id LIMIT :limit OFFSET :offset",
                      {"state": state, "statement": statement_id, "limit": limit, "offset": offset}).fetchall()
    return [{**row, "reversal": bool(row["reversal"])} for row in rows]


def statements(db: sqlite3.Connection, limit: int = 100, offset: int = 0) -> list[dict]:
    return db.execute(
        "SELECT s.id, s.message_id, s.statement_id, s.account_iban, s.version, s.created_at, s.entries, s.sha256, "
        "s.operator, s.imported_at, (SELECT count(*) FROM bank_entries e WHERE e.statement_id = s.id "
        "AND e.state = 'unmatched') AS unmatched FROM bank_statements s ORDER BY s.imported_at DESC, s.id DESC "
        "LIMIT ? OFFSET ?", (limit, offset)).fetchall()
