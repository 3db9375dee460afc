"""Invoices (S13): a §14 UStG invoice for an order's open lines, its duplicate, its cancellation.

What an invoice says is decided once, when it is issued, from the hub's own rows (never from the
request): the issuer is the organizer of the order's lines (name, address, tax number and/or VAT
id as they are that day), the recipient the order's customer (structured address), the lines the
order's lines not yet on a live invoice (or the ones named), each with its VAT code (the line's;
a seat ticket has none in the ledger, so the organizer's `ticket_vat_code`), net and VAT per rate
(`core.payments.vat`: once per rate, §14-safe), the payment terms (due date) and a Kassenzeichen
(`core.payments.kassenzeichen`), and the SEPA pre-notification where the order is debited.
Everything is stored with the invoice, so a duplicate years later prints the same invoice.

Numbers come from the issuing node's gapless series (`RE-2026-000001` at the hub,
`core.base.numbering`), taken in the invoice's transaction. Invoices are never edited or deleted
(triggers in migration 0024): a mistake is cancelled by a cancellation invoice (Stornorechnung)
with its own number from the same series, naming the original and negating every figure.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import Annotated, Literal

from msgspec import Meta

from core.base.clock import LOCAL_TZ, iso, parse_iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.numbering import next_number
from core.base.storage import transaction
from core.catalog.common import Body, Id
from core.payments import kassenzeichen, mandates, vat
from core.sales import lines as order_lines

Language = Literal["de", "en"]
ISSUER_FIELDS = ("name", "street", "postcode", "town", "country", "tax_number", "vat_id", "sepa_creditor_id")
RECIPIENT_FIELDS = ("number", "salutation", "first_name", "last_name", "company", "street", "postcode", "town",
                    "country", "email")
# The organizer of an order line, by line kind: fixed SQL, the kind picks one (never input in SQL).
ORGANIZER_OF = {
    "annual": "SELECT organizer_id FROM annual_products WHERE id = ?",
    "voucher": "SELECT organizer_id FROM annual_products WHERE id = ?",
    "subscription": "SELECT organizer_id FROM subscription_products WHERE id = ?",
    "ticket": "SELECT v.organizer_id FROM performances p JOIN venues v ON v.id = p.venue_id WHERE p.id = ?",
}


class InvoiceIn(Body, kw_only=True):
    """Issue an invoice for an order: its open lines, or the ones named."""

    language: Language = "de"
    line_ids: Annotated[list[Id], Meta(min_length=1, max_length=200)] | None = None
    payment_days: Annotated[int, Meta(ge=0, le=365)] | None = None  # default: the organizer's


class InvoiceCancelIn(Body, kw_only=True):
    reason: Annotated[str, Meta(min_length=1, max_length=200, pattern=r"\S")]


class InvoicingIn(Body, kw_only=True):
    """An organizer's invoicing settings."""

    kassenzeichen_pattern: Annotated[str, Meta(min_length=1, max_length=60)] = kassenzeichen.DEFAULT_PATTERN
    payment_days: Annotated[int, Meta(ge=0, le=365)] = 14
    ticket_vat_code: vat.VatCode = "exempt"


def invoice_series(node: dict) -> str:
    """The hub's series is `RE`; any other node's `R` + its id's last 6 hex digits (each owns its own)."""
    return "RE" if node["role"] == "hub" else "R" + node["id"].replace("-", "")[-6:].upper()


# --- organizer settings ---------------------------------------------------------------------------------


def settings_of(db: sqlite3.Connection, organizer_id: str) -> dict:
    """The organizer's invoicing settings (the defaults until they are set)."""
    if db.execute("SELECT 1 FROM organizers WHERE id = ?", (organizer_id,)).fetchone() is None:
        raise NotFound(f"no organizer {organizer_id}", detail_de=f"Kein Veranstalter {organizer_id}")
    row = db.execute("SELECT * FROM organizer_invoicing WHERE organizer_id = ?", (organizer_id,)).fetchone()
    if row is None:
        defaults = InvoicingIn()
        return {"organizer_id": organizer_id, "kassenzeichen_pattern": defaults.kassenzeichen_pattern,
                "payment_days": defaults.payment_days, "ticket_vat_code": defaults.ticket_vat_code, "updated_at": None}
    return row


def set_settings(db: sqlite3.Connection, organizer_id: str, data: InvoicingIn, now: dt.datetime) -> dict:
    kassenzeichen.check_pattern(data.kassenzeichen_pattern)
    with transaction(db):
        settings_of(db, organizer_id)
        db.execute("INSERT INTO organizer_invoicing (organizer_id, kassenzeichen_pattern, payment_days, "
                   "ticket_vat_code, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (organizer_id) DO UPDATE SET "
                   "kassenzeichen_pattern = excluded.kassenzeichen_pattern, payment_days = excluded.payment_days, "
                   "ticket_vat_code = excluded.ticket_vat_code, updated_at = excluded.updated_at",
                   (organizer_id, data.kassenzeichen_pattern, data.payment_days, data.ticket_vat_code, iso(now)))
    return settings_of(db, organizer_id)


# --- issuing ----------------------------------------------------------------------------------------------


def issue(db: sqlite3.Connection, node: dict, order_id: str, data: InvoiceIn, *, now: dt.datetime,
          operator: str | None = None) -> dict:
    """Issue the invoice for *order_id*'s open lines (or *data.line_ids*), all in one transaction."""
    with transaction(db):
        order = _order(db, order_id)
        lines = _open_lines(db, order, data.line_ids)
        organizer_id = _organizer(db, lines)
        settings = settings_of(db, organizer_id)
        issuer = _issuer(db, organizer_id)
        recipient = _recipient(db, order["customer_id"])
        rows = [_invoice_line(db, k + 1, line, settings["ticket_vat_code"], data.language)
                for k, line in enumerate(lines)]
        total = sum(r["gross_cents"] for r in rows)
        paid = min(max(_unbilled_payments(db, order_id), 0), max(total, 0))
        today = now.astimezone(LOCAL_TZ).date()
        days = settings["payment_days"] if data.payment_days is None else data.payment_days
        sepa = _sepa(db, order, organizer_id, issuer) if total > paid else None
        if sepa:  # the collection is announced at least the creditor's lead time ahead
            days = max(days, mandates.prenotification_days(db, organizer_id))
        due_on = (today + dt.timedelta(days=days)).isoformat() if total > paid else None
        if sepa:
            sepa["collection_on"] = due_on
            sepa["amount_cents"] = total - paid
        invoice = {
            "id": uuid7(), "number": next_number(db, invoice_series(node), today.year, node["id"]), "kind": "invoice",
            "cancels_id": None, "order_id": order_id, "organizer_id": organizer_id,
            "customer_id": order["customer_id"], "node_id": node["id"], "language": data.language,
            "issued_on": today.isoformat(), "due_on": due_on, "issuer": issuer, "recipient": recipient,
            "total_cents": total, "paid_cents": paid,
            "kassenzeichen": kassenzeichen.next_kassenzeichen(db, settings["kassenzeichen_pattern"], today.year),
            "sepa": sepa, "reason": None, "operator": operator, "created_at": iso(now)}
        _store(db, invoice, rows)
    return get(db, invoice["id"])


def cancel(db: sqlite3.Connection, node: dict, invoice_id: str, data: InvoiceCancelIn, *, now: dt.datetime,
           operator: str | None = None) -> dict:
    """The cancellation invoice (Stornorechnung) of *invoice_id*: own number, every figure negated."""
    with transaction(db):
        original = get(db, invoice_id)
        if original["kind"] != "invoice":
            raise Conflict(f"{original['number']} is a cancellation invoice; it cannot be cancelled",
                           detail_de=f"{original['number']} ist eine Stornorechnung und kann nicht storniert werden")
        if original["cancelled_by"]:
            done = original["cancelled_by"]["number"]
            raise Conflict(f"invoice {original['number']} is already cancelled by {done}",
                           detail_de=f"Rechnung {original['number']} ist bereits durch {done} storniert")
        today = now.astimezone(LOCAL_TZ).date()
        rows = [{**line, "gross_cents": -line["gross_cents"]} for line in original["lines"]]
        storno = {
            "id": uuid7(), "number": next_number(db, invoice_series(node), today.year, node["id"]),
            "kind": "cancellation", "cancels_id": original["id"], "order_id": original["order_id"],
            "organizer_id": original["organizer_id"], "customer_id": original["customer_id"], "node_id": node["id"],
            "language": original["language"], "issued_on": today.isoformat(), "due_on": None,
            "issuer": original["issuer"], "recipient": original["recipient"], "total_cents": -original["total_cents"],
            "paid_cents": 0, "kassenzeichen": None, "sepa": None, "reason": data.reason, "operator": operator,
            "created_at": iso(now)}
        _store(db, storno, rows, vat_rows=[{**v, **{k: -v[k] for k in ("gross_cents", "net_cents", "vat_cents")}}
                                           for v in original["vat"]])
    return get(db, storno["id"])


def _order(db: sqlite3.Connection, order_id: str) -> dict:
    order = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    if order is None:
        raise NotFound(f"no order {order_id}", detail_de=f"Kein Auftrag {order_id}")
    if order["customer_id"] is None:
        raise ValidationError(f"order {order['number']} has no customer: an invoice needs a recipient's name and "
                              "address", field="order_id",
                              detail_de=f"Auftrag {order['number']} hat keinen Kunden: eine Rechnung braucht Name "
                                        "und Anschrift des Empfängers")
    return order


def _open_lines(db: sqlite3.Connection, order: dict, wanted: list[str] | None) -> list[dict]:
    """The order's lines not on a live invoice (an invoice not cancelled); *wanted* must be among them."""
    billed = {r["order_line_id"]: r["number"] for r in db.execute(
        "SELECT l.order_line_id, i.number FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id "
        "WHERE i.order_id = ? AND i.kind = 'invoice' "
        "AND NOT EXISTS (SELECT 1 FROM invoices c WHERE c.cancels_id = i.id)", (order["id"],))}
    lines = order_lines.of_order(db, order["id"])
    credits = {r["line_id"]: r["credit_cents"] for r in db.execute(
        "SELECT line_id, credit_cents FROM cancelled_lines WHERE order_id = ?", (order["id"],))}
    for line in lines:
        line["credit_cents"] = credits.get(line["id"])
    if wanted is not None:
        if len(set(wanted)) != len(wanted):
            raise ValidationError("a line is named twice", field="line_ids",
                                  detail_de="Eine Position ist doppelt genannt")
        known = {line["id"] for line in lines}
        stray = [w for w in wanted if w not in known]
        if stray:
            raise ValidationError(f"line {stray[0]} is not a line of order {order['number']}", field="line_ids",
                                  detail_de=f"Position {stray[0]} gehört nicht zu Auftrag {order['number']}")
        gone = [line["position"] for line in lines if line["id"] in set(wanted) and not billable(line)]
        if gone:
            raise Conflict(f"line {gone[0]} is cancelled", field="line_ids",
                           detail_de=f"Position {gone[0]} ist storniert")
        done = [w for w in wanted if w in billed]
        if done:
            raise Conflict(f"line {done[0]} is already on invoice {billed[done[0]]}", field="line_ids",
                           detail_de=f"Position {done[0]} steht schon auf Rechnung {billed[done[0]]}")
        lines = [line for line in lines if line["id"] in set(wanted)]
    lines = [line for line in lines if line["id"] not in billed and billable(line)]
    if not lines:
        raise Conflict(f"every line of order {order['number']} is already invoiced",
                       detail_de=f"Alle Positionen von Auftrag {order['number']} sind bereits berechnet")
    return lines


def billable(line: dict) -> bool:
    """Whether an order line (with `price_cents` and `credit_cents`, None when it is not cancelled)
    still has something to bill: a cancelled line only with what its cancellation kept (a fee,
    the part played). The office's order page and the re-issued invoice ask the same question."""
    return line["price_cents"] - (line.get("credit_cents") or 0) > 0


def _organizer(db: sqlite3.Connection, lines: list[dict]) -> str:
    """The one organizer of the lines (an invoice has one issuer)."""
    found = set()
    for line in lines:
        sql = ORGANIZER_OF.get(line["kind"])
        row = db.execute(sql, (line["product_id"],)).fetchone() if sql else None
        if row is None:
            raise ValidationError(f"line {line['position']} ({line['kind']}) has no organizer to invoice it",
                                  field="line_ids",
                                  detail_de=f"Position {line['position']} ({line['kind']}) hat keinen Veranstalter")
        found.add(row["organizer_id"])
    if len(found) > 1:
        raise ValidationError("the lines belong to several organizers; invoice each organizer's lines separately "
                              "(line_ids)", field="line_ids",
                              detail_de="Die Positionen gehören zu mehreren Veranstaltern; bitte je Veranstalter "
                                        "eine Rechnung (line_ids)")
    return found.pop()


def _issuer(db: sqlite3.Connection, organizer_id: str) -> dict:
    row = db.execute("SELECT * FROM organizers WHERE id = ?", (organizer_id,)).fetchone()
    if not (row["tax_number"] or row["vat_id"]):
        raise ValidationError(f"organizer {row['name']} has neither a tax number nor a VAT id (§14 UStG needs one)",
                              field="organizer_id",
                              detail_de=f"Veranstalter {row['name']} hat weder Steuernummer noch USt-IdNr. "
                                        "(§14 UStG verlangt eine davon)")
    return {k: row[k] for k in ISSUER_FIELDS}


def _recipient(db: sqlite3.Connection, customer_id: str) -> dict:
    row = db.execute("SELECT * FROM customers WHERE id = ?", (customer_id,)).fetchone()
    return {k: row[k] for k in RECIPIENT_FIELDS}


KEPT = {"de": " (storniert; verbleibender Betrag)", "en": " (cancelled; amount kept)"}


def _invoice_line(db: sqlite3.Connection, position: int, line: dict, ticket_vat_code: str,
                  language: Language) -> dict:
    description = line["product"] or line["kind"]
    if line["kind"] == "ticket":
        row = db.execute("SELECT starts_at FROM performances WHERE id = ?", (line["product_id"],)).fetchone()
        if row:
            description += f", {parse_iso(row['starts_at']).astimezone(LOCAL_TZ):%d.%m.%Y %H:%M}"
    credit = line.get("credit_cents") or 0
    if line.get("credit_cents") is not None:
        description = description[:200 - len(KEPT[language])] + KEPT[language]
    return {"position": position, "order_line_id": line["id"], "description": description[:200],
            "gross_cents": line["price_cents"] - credit, "vat_code": line["vat_code"] or ticket_vat_code}


def _unbilled_payments(db: sqlite3.Connection, order_id: str) -> int:
    """What was paid on the order and is not yet counted as paid on one of its live invoices."""
    paid = db.execute("SELECT coalesce(sum(amount_cents), 0) AS c FROM payments WHERE order_id = ? AND state = 'paid' "
                      "AND method <> 'none'", (order_id,)).fetchone()["c"]
    counted = db.execute("SELECT coalesce(sum(paid_cents), 0) AS c FROM invoices i WHERE order_id = ? AND kind = "
                         "'invoice' AND NOT EXISTS (SELECT 1 FROM invoices c WHERE c.cancels_id = i.id)",
                         (order_id,)).fetchone()["c"]
    return paid - counted


def _sepa(db: sqlite3.Connection, order: dict, organizer_id: str, issuer: dict) -> dict | None:
    """The pre-notification's facts where the order is owed by SEPA direct debit (a pending `sepa` row):
    the creditor id, and the mandate reference of the customer's active mandate with the organizer
    (`core.payments` mandates), else the payment row's reference."""
    row = db.execute("SELECT reference FROM payments WHERE order_id = ? AND method = 'sepa' AND state = 'pending' "
                     "ORDER BY created_at LIMIT 1", (order["id"],)).fetchone()
    if row is None:
        return None
    if not issuer["sepa_creditor_id"]:
        raise ValidationError(f"the order is paid by SEPA direct debit but organizer {issuer['name']} has no "
                              "SEPA creditor id for the pre-notification", field="order_id",
                              detail_de=f"Der Auftrag wird per SEPA-Lastschrift bezahlt, aber Veranstalter "
                                        f"{issuer['name']} hat keine Gläubiger-ID für die Vorabankündigung")
    mandate = db.execute("SELECT reference FROM sepa_mandates WHERE organizer_id = ? AND customer_id = ? "
                         "AND state = 'active' ORDER BY signed_on DESC, id DESC LIMIT 1",
                         (organizer_id, order["customer_id"])).fetchone()
    return {"creditor_id": issuer["sepa_creditor_id"],
            "mandate_reference": mandate["reference"] if mandate else row["reference"]}


def _store(db: sqlite3.Connection, invoice: dict, rows: list[dict], vat_rows: list[dict] | None = None) -> None:
    columns = ("id", "number", "kind", "cancels_id", "order_id", "organizer_id", "customer_id", "node_id", "language",
               "issued_on", "due_on", "issuer", "recipient", "total_cents", "paid_cents", "kassenzeichen", "sepa",
               "reason", "operator", "created_at")
    values = {**invoice, "issuer": json.dumps(invoice["issuer"]), "recipient": json.dumps(invoice["recipient"]),
              "sepa": json.dumps(invoice["sepa"]) if invoice["sepa"] else None}
    db.execute(f"INSERT INTO invoices ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
               tuple(values[c] for c in columns))
    db.executemany("INSERT INTO invoice_lines (invoice_id, position, order_line_id, description, gross_cents, "
                   "vat_code) VALUES (?, ?, ?, ?, ?, ?)",
                   [(invoice["id"], r["position"], r["order_line_id"], r["description"], r["gross_cents"],
                     r["vat_code"]) for r in rows])
    per_rate = vat_rows if vat_rows is not None else vat.breakdown((r["gross_cents"], r["vat_code"]) for r in rows)
    db.executemany("INSERT INTO invoice_vat (invoice_id, vat_code, gross_cents, net_cents, vat_cents) "
                   "VALUES (?, ?, ?, ?, ?)",
                   [(invoice["id"], v["vat_code"], v["gross_cents"], v["net_cents"], v["vat_cents"]) for v in per_rate])


# --- reading ----------------------------------------------------------------------------------------------


def get(db: sqlite3.Connection, invoice_id: str) -> dict:
    """An invoice with its lines, VAT per rate, its order's number and the cancellation links."""
    row = db.execute("SELECT i.*, o.number AS order_number, c.number AS cancels_number, c.kassenzeichen AS "
                     "cancels_kassenzeichen, c.issued_on AS cancels_issued_on FROM invoices i "
                     "JOIN orders o ON o.id = i.order_id LEFT JOIN invoices c ON c.id = i.cancels_id WHERE i.id = ?",
                     (invoice_id,)).fetchone()
    if row is None:
        raise NotFound(f"no invoice {invoice_id}", detail_de=f"Keine Rechnung {invoice_id}")
    return _view(db, row)


def _view(db: sqlite3.Connection, row: dict) -> dict:
    out = {**row, "issuer": json.loads(row["issuer"]), "recipient": json.loads(row["recipient"]),
           "sepa": json.loads(row["sepa"]) if row["sepa"] else None,
           "due_cents": row["total_cents"] - row["paid_cents"] if row["kind"] == "invoice" else 0}
    out["lines"] = db.execute("SELECT position, order_line_id, description, gross_cents, vat_code FROM invoice_lines "
                              "WHERE invoice_id = ? ORDER BY position", (row["id"],)).fetchall()
    out["vat"] = sorted(db.execute("SELECT vat_code, gross_cents, net_cents, vat_cents FROM invoice_vat "
                                   "WHERE invoice_id = ?", (row["id"],)).fetchall(),
                        key=lambda v: vat.ORDER.index(v["vat_code"]))
    for v in out["vat"]:
        v["rate"] = vat.RATES[v["vat_code"]]
    by = db.execute("SELECT id, number, issued_on FROM invoices WHERE cancels_id = ?", (row["id"],)).fetchone()
    out["cancelled_by"] = by
    return out


def list_(db: sqlite3.Connection, *, customer_id: str | None = None, order_id: str | None = None,
          open_only: bool = False, limit: int = 50, offset: int = 0) -> dict:
    """Invoices, newest first. *open_only*: invoices not cancelled whose order is not fully paid
    (the order's paid payment rows sum to less than its total)."""
    where, args = ["1 = 1"], []
    if customer_id:
        where.append("i.customer_id = ?")
        args.append(customer_id)
    if order_id:
        where.append("i.order_id = ?")
        args.append(order_id)
    if open_only:
        where.append("i.kind = 'invoice' AND i.total_cents > i.paid_cents "
                     "AND NOT EXISTS (SELECT 1 FROM invoices c WHERE c.cancels_id = i.id) "
                     "AND (SELECT coalesce(sum(p.amount_cents), 0) FROM payments p WHERE p.order_id = i.order_id "
                     "AND p.state = 'paid' AND p.method <> 'none') < (SELECT total_cents FROM orders o "
                     "WHERE o.id = i.order_id)")
    sql = " AND ".join(where)
    total = db.execute(f"SELECT count(*) AS n FROM invoices i WHERE {sql}", args).fetchone()["n"]
    ids = db.execute(f"SELECT i.id FROM invoices i WHERE {sql} ORDER BY i.created_at DESC, i.number DESC "
                     "LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
    return {"items": [get(db, r["id"]) for r in ids], "total": total, "limit": limit, "offset": offset}
