"""The SEPA direct-debit file (S12): pain.008.001.08 for an organizer's due debits, written with
sepaxml (schema passed explicitly: its default is the retired .02), validated against the XSD
sepaxml ships, after our own stricter checks.

`plan()` decides, reading only, which due debits go into a file and on which collection date,
and which are held back and why (the preview). `export()` writes the file and marks its debits
submitted in one transaction with the file's record (`sepa_runs`), so a debit is never in two
files and never submitted without its file. `render()` is the pure writer.

Rules beyond the XSD:
- one payment-information block (batch) per sequence type and collection date;
- a collection date is a TARGET day, at least one TARGET day after the file is handed over
  (CORE, D-1);
- the pre-notification reached the customer at least the creditor account's
  `prenotification_days` (1 to 30, default 14) before the collection date;
- a mandate no debit was presented on for 36 months has expired (`mandates.expires_on`): a
  debit that would collect after that is held back;
- the creditor identifier passes its ISO 7064 mod 97 check; the creditor account is a SEPA IBAN;
- a debtor account outside the EEA carries the debtor's structured postal address (town and
  country at least) and its bank's BIC; inside the EEA no address is sent; unstructured
  address lines never are;
- names and remittance in the SEPA character set (German umlauts spelt out).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from dataclasses import dataclass, field

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.storage import transaction
from core.payments import mandates, sepa_rules

SCHEMA = "pain.008.001.08"


@dataclass
class Creditor:
    organizer_id: str
    name: str
    creditor_id: str
    iban: str
    bic: str | None
    street: str
    postcode: str
    town: str
    country: str
    lead_days: int = mandates.PRENOTIFICATION_DAYS  # the creditor account's pre-notification lead time


@dataclass
class Item:
    """One debit as it goes into the file."""

    debit_id: str
    end_to_end_id: str
    amount_cents: int
    sequence: str
    collection_date: dt.date
    mandate_id: str
    mandate_reference: str
    signed_on: dt.date
    debtor_name: str
    iban: str
    bic: str | None
    remittance: str
    address: dict | None = None
    amendment: str | None = None
    amended_from_iban: str | None = None


@dataclass
class Plan:
    creditor: Creditor
    items: list[Item] = field(default_factory=list)
    held: list[dict] = field(default_factory=list)  # {debit_id, end_to_end_id, reason}

    def batches(self) -> dict[tuple[str, dt.date], list[Item]]:
        out: dict[tuple[str, dt.date], list[Item]] = {}
        for item in sorted(self.items, key=lambda i: (i.collection_date, i.sequence, i.end_to_end_id)):
            out.setdefault((item.sequence, item.collection_date), []).append(item)
        return out

    def as_dict(self) -> dict:
        return {"organizer_id": self.creditor.organizer_id, "debits": len(self.items),
                "total_cents": sum(i.amount_cents for i in self.items),
                "batches": [{"sequence": seq, "collection_date": day.isoformat(), "debits": len(items),
                             "total_cents": sum(i.amount_cents for i in items),
                             "debit_ids": [i.debit_id for i in items]}
                            for (seq, day), items in self.batches().items()],
                "held": self.held}


def creditor_of(db: sqlite3.Connection, organizer_id: str) -> Creditor:
    organizer = db.execute("SELECT * FROM organizers WHERE id = ?", (organizer_id,)).fetchone()
    if organizer is None:
        raise NotFound(f"no organizer {organizer_id}", detail_de=f"Kein Veranstalter {organizer_id}")
    creditor_id = sepa_rules.check_creditor(organizer["sepa_creditor_id"])
    account = mandates.creditor_account(db, organizer_id)
    return Creditor(organizer_id, sepa_rules.sepa_text(organizer["name"], 70), creditor_id,
                    sepa_rules.check_iban(account["iban"], "creditor iban"), account["bic"],
                    sepa_rules.sepa_text(organizer["street"], 70), organizer["postcode"],
                    sepa_rules.sepa_text(organizer["town"], 35), organizer["country"], account["prenotification_days"])


def plan(db: sqlite3.Connection, organizer_id: str, today: dt.date, *, collection_date: dt.date | None = None,
         lead_days: int | None = None) -> Plan:
    """The due debits of *organizer_id* a file handed to the bank *today* would hold.

    Without *collection_date*: every debit due by the earliest possible collection date, each
    collected then, or later where its pre-notification needs the time. With one: every debit due
    by that date, all collected on it; a debit whose lead time that date breaks is held back.
    The lead time is the creditor account's `prenotification_days` (*lead_days* overrides it)."""
    creditor = creditor_of(db, organizer_id)
    lead_days = lead_days or creditor.lead_days
    earliest = sepa_rules.earliest_collection(today)
    if collection_date is not None:
        if not sepa_rules.is_target_day(collection_date):
            raise ValidationError(f"{collection_date} is no TARGET business day (weekend or TARGET holiday); "
                                  f"the next is {sepa_rules.next_target_day(collection_date)}",
                                  field="collection_date",
                                  detail_de=f"Der {collection_date:%d.%m.%Y} ist kein TARGET-Geschäftstag "
                                            "(Wochenende oder TARGET-Feiertag); der nächste ist der "
                                            f"{sepa_rules.next_target_day(collection_date):%d.%m.%Y}")
        if collection_date < earliest:
            raise ValidationError(f"a CORE debit handed over on {today} collects on {earliest} at the earliest "
                                  "(one TARGET day before, D-1)", field="collection_date",
                                  detail_de=f"Eine CORE-Lastschrift, die am {today:%d.%m.%Y} eingereicht wird, wird "
                                            f"frühestens am {earliest:%d.%m.%Y} eingezogen (einen TARGET-Tag "
                                            "vorher, D-1)")
    horizon = collection_date or earliest
    rows = db.execute(
        "SELECT d.*, m.reference, m.signed_on, m.debtor_name, m.iban AS mandate_iban, m.bic AS mandate_bic, "
        "m.sequence AS mandate_sequence, m.state AS mandate_state, m.amendment AS mandate_amendment, "
        "m.amended_from_iban AS mandate_amended_from, m.street, m.postcode, m.town, m.country, "
        f"{mandates.last_presented_sql('m.id')} AS mandate_last_presented, "
        "c.street AS c_street, c.postcode AS c_postcode, c.town AS c_town, c.country AS c_country "
        "FROM sepa_debits d JOIN sepa_mandates m ON m.id = d.mandate_id JOIN customers c ON c.id = m.customer_id "
        "WHERE d.state = 'due' AND m.organizer_id = ? AND d.due_on <= ? ORDER BY d.due_on, d.id",
        (organizer_id, horizon.isoformat())).fetchall()
    out = Plan(creditor)
    used_oneoff: set[str] = set()
    first_seen: set[str] = set()
    for row in rows:
        day = collection_date
        ready = dt.date.fromisoformat(row["prenotified_on"]) + dt.timedelta(days=lead_days)
        if day is None:
            day = sepa_rules.next_target_day(max(earliest, ready))
        reason = _held_reason(row, day, ready, used_oneoff, first_seen)
        if reason:
            out.held.append({"debit_id": row["id"], "end_to_end_id": row["end_to_end_id"], "reason": reason[0],
                             "reason_de": reason[1]})
            continue
        out.items.append(_item(row, day))
    return out


def _held_reason(row: dict, day: dt.date, ready: dt.date, used_oneoff: set[str],
                 first_seen: set[str]) -> tuple[str, str] | None:
    """Why this debit cannot go into the file, in English and German (None: it can). A mandate's
    FRST or OOFF debit is the only one of that mandate in a file; the next one waits for the next file."""
    if row["mandate_state"] != "active":
        state_de = {"used": "verbraucht", "cancelled": "widerrufen"}.get(row["mandate_state"], row["mandate_state"])
        return f"the mandate is {row['mandate_state']}", f"Das Mandat ist {state_de}"
    until = mandates.expires_on(row["signed_on"], row["mandate_last_presented"])
    if day > until:
        return (f"the mandate expired on {until}: no debit was presented on it for 36 months (a new mandate "
                "is needed)", f"Das Mandat ist am {until:%d.%m.%Y} verfallen: 36 Monate wurde keine Lastschrift "
                "darauf eingereicht (ein neues Mandat ist nötig)")
    if day < ready:
        return (f"pre-notification of {row['prenotified_on']} is less than the lead time before {day} "
                f"(collect on {ready} or later)",
                f"Die Vorabankündigung vom {_de(row['prenotified_on'])} liegt weniger als die Vorlaufzeit vor dem "
                f"{day:%d.%m.%Y} (Einzug frühestens am {ready:%d.%m.%Y})")
    sequence = row["mandate_sequence"]
    if sequence in ("FRST", "OOFF"):
        seen = used_oneoff if sequence == "OOFF" else first_seen
        if row["mandate_id"] in seen:
            return (f"the mandate's {sequence} debit is in this file; this one follows in a later file",
                    f"Die {sequence}-Lastschrift des Mandats ist in dieser Datei; diese folgt in einer späteren")
        seen.add(row["mandate_id"])
    if sepa_rules.needs_address(row["mandate_iban"]):
        if not row["mandate_bic"]:
            return ("the debtor's account is outside the EEA: the mandate needs the bank's BIC",
                    "Das Konto des Zahlers liegt außerhalb des EWR: das Mandat braucht die BIC der Bank")
        town, country = (row["town"], row["country"]) if row["town"] else (row["c_town"], row["c_country"])
        if not (town or "").strip() or not (country or "").strip():
            return ("the debtor's account is outside the EEA: a structured address (town and country) is needed",
                    "Das Konto des Zahlers liegt außerhalb des EWR: eine Anschrift mit Ort und Land ist nötig")
    return None


def _de(day: str) -> str:
    return f"{dt.date.fromisoformat(day):%d.%m.%Y}"


def _item(row: dict, day: dt.date) -> Item:
    address = None
    if sepa_rules.needs_address(row["mandate_iban"]):
        own = row["town"] is not None
        pick = (lambda k: row[k]) if own else (lambda k: row["c_" + k])
        address = {"street_name": sepa_rules.sepa_text(pick("street") or "", 70) or None,
                   "postcode": sepa_rules.sepa_text(pick("postcode") or "", 16) or None,
                   "town": sepa_rules.sepa_text(pick("town"), 35), "country": pick("country")}
    return Item(debit_id=row["id"], end_to_end_id=row["end_to_end_id"], amount_cents=row["amount_cents"],
                sequence=row["mandate_sequence"], collection_date=day, mandate_id=row["mandate_id"],
                mandate_reference=row["reference"], signed_on=dt.date.fromisoformat(row["signed_on"]),
                debtor_name=sepa_rules.sepa_text(row["debtor_name"], 70), iban=row["mandate_iban"],
                bic=row["mandate_bic"], remittance=row["remittance"], address=address,
                amendment=row["mandate_amendment"], amended_from_iban=row["mandate_amended_from"])


# --- writing -----------------------------------------------------------------------------------------


def render(items: list[Item], creditor: Creditor, message_id: str, created_at: dt.datetime) -> bytes:
    """The pain.008.001.08 document for *items*, validated against the XSD. Deterministic for given
    arguments (the golden file test relies on it): the message id, the creation time and the
    batch ids (`<message id>-<n>`) are ours, not sepaxml's random ones."""
    from sepaxml import SepaDD
    from sepaxml.validation import ValidationError as XsdError

    class _File(SepaDD):
        """sepaxml's writer plus the mandate amendment details it does not write."""

        amendments: dict[str, Item] = {}

        def _add_batch(self, nodes, payment):  # noqa: ANN001 - sepaxml's signature
            super()._add_batch(nodes, payment)  # MndtId and DtOfSgntr first: the amendment follows them
            item = self.amendments.get(payment["endtoend_id"])
            if item is not None:
                _amend(nodes["MndtRltdInfNode"], item)

    config = {"name": creditor.name, "IBAN": creditor.iban, "batch": True, "creditor_id": creditor.creditor_id,
              "currency": "EUR", "instrument": "CORE",
              "address": {"street_name": creditor.street, "postcode": creditor.postcode, "town": creditor.town,
                          "country": creditor.country}}
    if creditor.bic:
        config["BIC"] = creditor.bic
    doc = _File(config, schema=SCHEMA, clean=True)
    doc.amendments = {i.end_to_end_id: i for i in items if i.amendment}
    doc.msg_id = message_id
    header = doc._xml.find("CstmrDrctDbtInitn/GrpHdr")
    header.find("MsgId").text = message_id
    header.find("CreDtTm").text = created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    for item in sorted(items, key=lambda i: (i.collection_date, i.sequence, i.end_to_end_id)):
        payment = {"name": item.debtor_name, "IBAN": item.iban, "amount": item.amount_cents, "type": item.sequence,
                   "collection_date": item.collection_date, "mandate_id": item.mandate_reference,
                   "mandate_date": item.signed_on, "description": item.remittance, "endtoend_id": item.end_to_end_id}
        if item.bic:
            payment["BIC"] = item.bic
        if item.address:
            payment["address"] = {k: v for k, v in item.address.items() if v}
        doc.add_payment(payment)
    doc._finalize_batch()
    doc._finalize_batch = lambda: None  # export() finalizes again otherwise
    for n, block in enumerate(doc._xml.iter("PmtInf"), start=1):
        block.find("PmtInfId").text = f"{message_id}-{n}"
    try:
        return doc.export(validate=True)
    except XsdError as exc:
        raise ValidationError(f"the pain.008 file fails its XSD: {exc.__cause__ or exc}",
                              detail_de=f"Die pain.008-Datei verletzt ihr XSD: {exc.__cause__ or exc}") from None


def _amend(mandate_info, item: Item) -> None:
    """AmdmntInd and AmdmntInfDtls after DtOfSgntr: the old IBAN (same bank), or SMNDA (another bank)."""
    import xml.etree.ElementTree as ET

    ET.SubElement(mandate_info, "AmdmntInd").text = "true"
    details = ET.SubElement(mandate_info, "AmdmntInfDtls")
    if item.amendment == "account":
        account = ET.SubElement(ET.SubElement(details, "OrgnlDbtrAcct"), "Id")
        ET.SubElement(account, "IBAN").text = item.amended_from_iban
    else:
        agent = ET.SubElement(ET.SubElement(details, "OrgnlDbtrAgt"), "FinInstnId")
        ET.SubElement(ET.SubElement(agent, "Othr"), "Id").text = "SMNDA"


def message_id_of(run_id: str) -> str:
    """A run's MsgId: unique, 30 characters of the SEPA set, so its batch ids (`<MsgId>-<n>`) stay
    within 35."""
    return "TS" + run_id.replace("-", "")[:28].upper()


def export(db: sqlite3.Connection, organizer_id: str, now: dt.datetime, *, collection_date: dt.date | None = None,
           lead_days: int | None = None) -> dict:
    """Write the file of *organizer_id*'s due debits and mark them submitted, in one transaction
    with the file's record. Nothing exportable: Conflict, nothing written."""
    run_id = uuid7()
    with transaction(db):
        the_plan = plan(db, organizer_id, now.date(), collection_date=collection_date, lead_days=lead_days)
        if not the_plan.items:
            first, n = (the_plan.held[0], len(the_plan.held)) if the_plan.held else ({}, 0)
            held = f" ({n} held back: {first['reason']})" if n else ""
            held_de = f" ({n} zurückgehalten: {first['reason_de']})" if n else ""
            raise Conflict(f"no debit is due for collection{held}",
                           detail_de=f"Keine Lastschrift ist zum Einzug fällig{held_de}")
        message_id = message_id_of(run_id)
        xml = render(the_plan.items, the_plan.creditor, message_id, now)
        total = sum(i.amount_cents for i in the_plan.items)
        db.execute("INSERT INTO sepa_runs (id, organizer_id, message_id, debits, total_cents, xml, sha256, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (run_id, organizer_id, message_id, len(the_plan.items), total,
                                                       xml, hashlib.sha256(xml).hexdigest(), iso(now)))
        for item in the_plan.items:
            updated = db.execute(
                "UPDATE sepa_debits SET state = 'submitted', run_id = ?, sequence = ?, collection_date = ?, iban = ?, "
                "amendment = ?, amended_from_iban = ? WHERE id = ? AND state = 'due'",
                (run_id, item.sequence, item.collection_date.isoformat(), item.iban, item.amendment,
                 item.amended_from_iban, item.debit_id)).rowcount
            if updated != 1:
                raise Conflict(f"debit {item.debit_id} changed during the export; try again",
                               detail_de=f"Lastschrift {item.debit_id} hat sich während des Exports geändert; "
                                         "bitte noch einmal")
        for mandate_id in {i.mandate_id for i in the_plan.items}:
            mandates.submitted(db, mandates.get(db, mandate_id))
    return {**run(db, run_id), "held": the_plan.held}


def run(db: sqlite3.Connection, run_id: str) -> dict:
    row = db.execute("SELECT id, organizer_id, message_id, debits, total_cents, sha256, created_at FROM sepa_runs "
                     "WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFound(f"no SEPA run {run_id}", detail_de=f"Kein SEPA-Lauf {run_id}")
    return row


def run_file(db: sqlite3.Connection, run_id: str) -> bytes:
    row = db.execute("SELECT xml FROM sepa_runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFound(f"no SEPA run {run_id}", detail_de=f"Kein SEPA-Lauf {run_id}")
    return bytes(row["xml"])


def runs(db: sqlite3.Connection, organizer_id: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
    where = " WHERE organizer_id = ?" if organizer_id else ""
    args = (organizer_id,) if organizer_id else ()
    return db.execute("SELECT id, organizer_id, message_id, debits, total_cents, sha256, created_at FROM sepa_runs"
                      + where + " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", (*args, limit, offset)
                      ).fetchall()
