"""SEPA direct-debit mandates (S12, B4): a customer's signed permission for one organizer (the
creditor) to debit one account, and the sequence type its next debit goes with.

The life of a mandate:
- created `active` with its reference (unique per creditor, the SEPA character set, at most 35
  characters), signature date, IBAN (schwifty: check digits, national BBAN check, SEPA country,
  known bank where the registry has the country's full list), optional BIC;
- `recurring`: its first debit goes FRST, every later one RCUR (a subscription's renewals);
  `oneoff`: its one debit goes OOFF, then the mandate is `used`;
- amended when the IBAN changes: the reference stays. The next debit carries the amendment:
  a new account at the same bank names the old IBAN (OrgnlDbtrAcct); an account at another bank
  says SMNDA (same mandate, new debtor agent) and goes FRST again, which every bank accepts (the
  rulebook has allowed RCUR there since 2016, but FRST is never wrong). An amendment before the
  mandate's first debit changes nothing the bank knows, so nothing is carried;
- cancelled: no further debits; debits not yet submitted are refused at export;
- expired: a mandate no debit was presented on for 36 months lapses (SEPA Core rulebook). Not
  stored: computed from the collection date of its newest debit the bank was given (submitted,
  collected or returned: a returned debit was presented too), else its signature date, so no
  job has to run at midnight. The export holds back a debit that would collect after that.

Hub-only: mandates never travel to desks.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Annotated, Literal

from msgspec import Meta

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.storage import transaction
from core.catalog.common import Address, Body, Id, Name, check_address, check_when
from core.payments import sepa_rules

Kind = Literal["recurring", "oneoff"]
Reference = Annotated[str, Meta(min_length=1, max_length=35)]
IbanText = Annotated[str, Meta(min_length=5, max_length=42)]
BicText = Annotated[str, Meta(max_length=11)]


class MandateIn(Body, kw_only=True):
    organizer_id: Id
    customer_id: Id
    reference: Reference
    iban: IbanText
    bic: BicText | None = None
    signed_on: dt.date
    kind: Kind = "recurring"
    debtor_name: Name | None = None  # the account holder, if not the customer
    address: Address | None = None  # the account holder's address, if not the customer's


class AmendIn(Body, kw_only=True):
    iban: IbanText
    bic: BicText | None = None


class CancelIn(Body, kw_only=True):
    reason: Annotated[str, Meta(max_length=200)] | None = None


PRENOTIFICATION_DAYS = 14  # the rulebook's default lead time, unless the creditor agreed another


class CreditorAccountIn(Body, kw_only=True):
    iban: IbanText
    bic: BicText | None = None
    # days from the pre-notification (invoice or letter) to the collection: what the creditor's
    # mandates agree (1 to 30; the rulebook's default is 14)
    prenotification_days: Annotated[int, Meta(ge=1, le=30)] = PRENOTIFICATION_DAYS


def create(db: sqlite3.Connection, data: MandateIn, now: dt.datetime) -> dict:
    customer = db.execute("SELECT * FROM customers WHERE id = ?", (data.customer_id,)).fetchone()
    if customer is None:
        raise ValidationError(f"no customer {data.customer_id}", field="customer_id",
                              detail_de=f"Kein Kunde {data.customer_id}")
    organizer = db.execute("SELECT * FROM organizers WHERE id = ?", (data.organizer_id,)).fetchone()
    if organizer is None:
        raise ValidationError(f"no organizer {data.organizer_id}", field="organizer_id",
                              detail_de=f"Kein Veranstalter {data.organizer_id}")
    if not organizer["sepa_creditor_id"]:
        raise ValidationError("the organizer has no SEPA creditor identifier: set it first", field="organizer_id",
                              detail_de="Der Veranstalter hat keine Gläubiger-ID: bitte zuerst eintragen")
    reference = sepa_rules.check_reference(data.reference, "reference")
    iban = sepa_rules.check_iban(data.iban, "iban")
    bic = sepa_rules.check_bic(data.bic, "bic")
    check_when(data.signed_on, "signed_on")
    if data.signed_on > now.date():
        raise ValidationError("a mandate cannot be signed in the future", field="signed_on",
                              detail_de="Ein Mandat kann nicht in der Zukunft unterschrieben sein")
    if data.address is not None:
        check_address(data.address)
    name = data.debtor_name or " ".join(p for p in (customer["first_name"], customer["last_name"]) if p)
    if not sepa_text_ok(name):
        raise ValidationError(f"the account holder's name {name!r} has no letters a bank can read",
                              field="debtor_name", detail_de=f"Der Name des Kontoinhabers {name!r} hat keine "
                                                             "Buchstaben, die eine Bank lesen kann")
    address = data.address
    row = {"id": uuid7(), "organizer_id": organizer["id"], "customer_id": customer["id"], "reference": reference,
           "kind": data.kind, "sequence": "FRST" if data.kind == "recurring" else "OOFF", "debtor_name": name,
           "iban": iban, "bic": bic, "signed_on": data.signed_on.isoformat(),
           "street": address.street if address else None, "postcode": address.postcode if address else None,
           "town": address.town if address else None, "country": address.country if address else None,
           "amendment": None, "amended_from_iban": None, "state": "active", "cancelled_at": None,
           "cancel_reason": None, "created_at": iso(now), "updated_at": iso(now)}
    with transaction(db):
        taken = db.execute("SELECT id FROM sepa_mandates WHERE organizer_id = ? AND upper(reference) = upper(?)",
                           (organizer["id"], reference)).fetchone()
        if taken:
            raise Conflict(f"the mandate reference {reference!r} is taken for this creditor", field="reference",
                           detail_de=f"Die Mandatsreferenz {reference!r} ist bei diesem Gläubiger schon vergeben")
        db.execute(f"INSERT INTO sepa_mandates ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                   tuple(row.values()))
    return row


EXPIRY_MONTHS = 36
_PRESENTED = "('submitted', 'collected', 'returned')"  # states of a debit the bank was given


def add_months(day: dt.date, months: int) -> dt.date:
    """*day* plus *months* calendar months (29 February + 12 months: 28 February)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last))


def expires_on(signed_on: str, last_presented_on: str | None) -> dt.date:
    """The last day a debit of the mandate may collect: 36 months after its last use."""
    return add_months(dt.date.fromisoformat(last_presented_on or signed_on), EXPIRY_MONTHS)


def last_presented_sql(mandate_column: str) -> str:
    """SQL for the newest collection date of a debit presented on the mandate *mandate_column*
    (a fixed column name of ours, never input)."""
    return (f"(SELECT max(x.collection_date) FROM sepa_debits x WHERE x.mandate_id = {mandate_column} "
            f"AND x.state IN {_PRESENTED})")


def with_expiry(db: sqlite3.Connection, mandate: dict, today: dt.date) -> dict:
    """*mandate* with `last_presented_on`, `expires_on` and `expired` (on *today*)."""
    last = db.execute(f"SELECT {last_presented_sql('?')} AS d", (mandate["id"],)).fetchone()["d"]
    until = expires_on(mandate["signed_on"], last)
    return {**mandate, "last_presented_on": last, "expires_on": until.isoformat(), "expired": today > until}


def sepa_text_ok(name: str) -> bool:
    return any(ch.isalnum() for ch in sepa_rules.sepa_text(name, 70))


def get(db: sqlite3.Connection, mandate_id: str) -> dict:
    row = db.execute("SELECT * FROM sepa_mandates WHERE id = ?", (mandate_id,)).fetchone()
    if row is None:
        raise NotFound(f"no SEPA mandate {mandate_id}", detail_de=f"Kein SEPA-Mandat {mandate_id}")
    return row


def of_customer(db: sqlite3.Connection, customer_id: str) -> list[dict]:
    return db.execute("SELECT * FROM sepa_mandates WHERE customer_id = ? ORDER BY created_at, id",
                      (customer_id,)).fetchall()


def _used(db: sqlite3.Connection, mandate_id: str) -> bool:
    """Has the bank seen this mandate (a debit of it submitted)?"""
    return db.execute(f"SELECT 1 FROM sepa_debits WHERE mandate_id = ? AND state IN {_PRESENTED} LIMIT 1",
                      (mandate_id,)).fetchone() is not None


def amend(db: sqlite3.Connection, mandate_id: str, data: AmendIn, now: dt.datetime) -> dict:
    """A new account for the same mandate (same reference); see the module text for what the next
    debit carries."""
    iban = sepa_rules.check_iban(data.iban, "iban")
    bic = sepa_rules.check_bic(data.bic, "bic")
    with transaction(db):
        mandate = get(db, mandate_id)
        if mandate["state"] != "active":
            raise Conflict(f"the mandate is {mandate['state']}: it cannot be amended",
                           detail_de="Das Mandat ist nicht mehr aktiv und kann nicht geändert werden")
        if iban == mandate["iban"]:
            raise ValidationError("the mandate already debits this IBAN", field="iban",
                                  detail_de="Das Mandat bucht schon von dieser IBAN ab")
        changes: dict = {"iban": iban, "bic": bic, "updated_at": iso(now)}
        if _used(db, mandate_id):
            # the account the bank knows: the one before the first amendment not yet carried
            known = mandate["amended_from_iban"] or mandate["iban"]
            if known == iban:
                changes |= {"amendment": None, "amended_from_iban": None}
            elif sepa_rules.bank_of(known) == sepa_rules.bank_of(iban):
                changes |= {"amendment": "account", "amended_from_iban": known}
            else:
                changes |= {"amendment": "agent", "amended_from_iban": known}
            if mandate["kind"] == "recurring":
                changes["sequence"] = "FRST" if changes["amendment"] == "agent" else _sequence_after_use(db, mandate)
        db.execute(f"UPDATE sepa_mandates SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                   (*changes.values(), mandate_id))
        return get(db, mandate_id)


def _sequence_after_use(db: sqlite3.Connection, mandate: dict) -> str:
    """RCUR once a debit of the mandate was submitted and not returned, else FRST."""
    live = db.execute("SELECT 1 FROM sepa_debits WHERE mandate_id = ? AND state IN ('submitted', 'collected') "
                      "LIMIT 1", (mandate["id"],)).fetchone()
    return "RCUR" if live else "FRST"


def cancel(db: sqlite3.Connection, mandate_id: str, reason: str | None, now: dt.datetime) -> dict:
    with transaction(db):
        mandate = get(db, mandate_id)
        if mandate["state"] == "cancelled":
            raise Conflict("the mandate is already cancelled", detail_de="Das Mandat ist bereits widerrufen")
        db.execute("UPDATE sepa_mandates SET state = 'cancelled', cancelled_at = ?, cancel_reason = ?, "
                   "updated_at = ? WHERE id = ?", (iso(now), reason, iso(now), mandate_id))
        return get(db, mandate_id)


def submitted(db: sqlite3.Connection, mandate: dict) -> None:
    """After the export submitted a debit of *mandate* (inside the export's transaction): the
    amendment was carried, a recurring mandate goes RCUR, a one-off mandate is used."""
    state = "used" if mandate["kind"] == "oneoff" else mandate["state"]
    sequence = "OOFF" if mandate["kind"] == "oneoff" else "RCUR"
    db.execute("UPDATE sepa_mandates SET sequence = ?, state = ?, amendment = NULL, amended_from_iban = NULL "
               "WHERE id = ?", (sequence, state, mandate["id"]))


def after_return(db: sqlite3.Connection, mandate_id: str, reason: str, now: dt.datetime) -> None:
    """A returned debit: a recurring mandate whose debits were all returned goes FRST again (the
    debtor's bank may never have registered it); a return that says the mandate or account is
    gone (see `DEAD`) cancels the mandate."""
    mandate = get(db, mandate_id)
    if mandate["kind"] == "recurring" and mandate["amendment"] != "agent":
        db.execute("UPDATE sepa_mandates SET sequence = ? WHERE id = ?",
                   (_sequence_after_use(db, mandate), mandate_id))
    if reason in DEAD and mandate["state"] != "cancelled":
        db.execute("UPDATE sepa_mandates SET state = 'cancelled', cancelled_at = ?, cancel_reason = ?, "
                   "updated_at = ? WHERE id = ?", (iso(now), f"return {reason}", iso(now), mandate_id))


# Return reasons after which the mandate cannot be debited again: account closed, blocked for
# debits, no valid mandate, debtor deceased.
DEAD = frozenset({"AC04", "AC06", "MD01", "MD07"})


def set_creditor_account(db: sqlite3.Connection, organizer_id: str, data: CreditorAccountIn,
                         now: dt.datetime) -> dict:
    if db.execute("SELECT 1 FROM organizers WHERE id = ?", (organizer_id,)).fetchone() is None:
        raise NotFound(f"no organizer {organizer_id}", detail_de=f"Kein Veranstalter {organizer_id}")
    iban = sepa_rules.check_iban(data.iban, "iban")
    bic = sepa_rules.check_bic(data.bic, "bic")
    with transaction(db):
        db.execute("INSERT INTO sepa_creditor_accounts (organizer_id, iban, bic, prenotification_days, updated_at) "
                   "VALUES (?, ?, ?, ?, ?) ON CONFLICT (organizer_id) DO UPDATE SET iban = excluded.iban, "
                   "bic = excluded.bic, prenotification_days = excluded.prenotification_days, "
                   "updated_at = excluded.updated_at", (organizer_id, iban, bic, data.prenotification_days, iso(now)))
    return creditor_account(db, organizer_id)


def creditor_account(db: sqlite3.Connection, organizer_id: str) -> dict:
    row = db.execute("SELECT * FROM sepa_creditor_accounts WHERE organizer_id = ?", (organizer_id,)).fetchone()
    if row is None:
        raise NotFound(f"organizer {organizer_id} has no SEPA creditor account yet",
                       detail_de=f"Veranstalter {organizer_id} hat noch kein Gläubigerkonto")
    return row


def prenotification_days(db: sqlite3.Connection, organizer_id: str) -> int:
    """The organizer's pre-notification lead time: its creditor account's, else the default.
    Invoices announce the collection this many days ahead; the export keeps it."""
    row = db.execute("SELECT prenotification_days FROM sepa_creditor_accounts WHERE organizer_id = ?",
                     (organizer_id,)).fetchone()
    return row["prenotification_days"] if row else PRENOTIFICATION_DAYS


def creditor_accounts(db: sqlite3.Connection) -> list[dict]:
    return db.execute("SELECT * FROM sepa_creditor_accounts ORDER BY organizer_id").fetchall()
