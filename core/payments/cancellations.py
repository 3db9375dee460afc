"""Cancel order lines (Storno): take back what they delivered, settle the money, correct the invoice.

One rule for every line of every channel (a card, an annual voucher, a seat ticket, a
subscription for the rest of its season), in one transaction, decided from the hub's rows only:

- each line's credit and what it takes back come from its kind (core/payments/take_back.py);
  a fee the office keeps (`fee_cents`, at most the credit) is taken from the lines in order;
- the money (core/payments/refunds.py): claims not yet paid are dropped first, then what the
  order holds beyond what it owes is refunded by the method it came in (or cash/transfer as the
  office chooses), as refund rows to pay out;
- the invoice: a line on a live invoice cannot simply vanish from it, and an invoice is never
  edited (core/payments/invoices.py), so the invoice is cancelled by a cancellation invoice
  (Stornorechnung, naming the original) and the lines that stay billed (the others, and a
  cancelled line with what the cancellation kept: a fee, the performances already played) are
  invoiced again on a new invoice. Lines of one cancellation are on at most one live invoice.

`quote` answers the same without writing (the office's preview); `cancel` does it. A line is
cancelled once: a second request for it is a Conflict naming the first, and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import Annotated

from msgspec import Meta

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.money import MAX_CENTS
from core.base.storage import retried, transaction
from core.cards import cards
from core.catalog.common import Body, Id
from core.payments import invoices, refunds, take_back
from core.sales import lines as order_lines


class LinesCancelIn(Body, kw_only=True):
    """Cancel lines of an order."""

    line_ids: Annotated[list[Id], Meta(min_length=1, max_length=200)]
    reason: Annotated[str, Meta(min_length=1, max_length=180, pattern=r"\S")]
    fee_cents: Annotated[int, Meta(ge=0, le=MAX_CENTS)] = 0
    refund_method: refunds.RefundMethod = "original"


def _order(db: sqlite3.Connection, order_id: str) -> dict:
    order = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    if order is None:
        raise NotFound(f"no order {order_id}", detail_de=f"Kein Auftrag {order_id}")
    return order


def _lines(db: sqlite3.Connection, order: dict, wanted: list[str]) -> list[dict]:
    if len(set(wanted)) != len(wanted):
        raise ValidationError("a line is named twice", field="line_ids", detail_de="Eine Position ist doppelt genannt")
    lines = {line["id"]: line for line in order_lines.of_order(db, order["id"])}
    stray = [w for w in wanted if w not in lines]
    if stray:
        raise ValidationError(f"line {stray[0]} is not a line of order {order['number']}", field="line_ids",
                              detail_de=f"Position {stray[0]} gehört nicht zu Auftrag {order['number']}")
    done = db.execute(f"SELECT l.line_id, k.created_at, k.reason FROM cancelled_lines l JOIN cancellations k ON "
                      f"k.id = l.cancellation_id WHERE l.line_id IN ({', '.join('?' * len(wanted))})",
                      wanted).fetchone()
    if done is not None:
        line = lines[done["line_id"]]
        raise Conflict(f"line {line['position']} is already cancelled ({done['created_at'][:10]}: {done['reason']})",
                       field="line_ids", detail_de=f"Position {line['position']} ist bereits storniert "
                                                   f"({done['created_at'][:10]}: {done['reason']})")
    return sorted((lines[w] for w in wanted), key=lambda line: line["position"])


def _credits(db: sqlite3.Connection, lines: list[dict], fee: int, now: dt.datetime) -> list[int]:
    """Each line's credit, the fee taken from the lines in order (refusals raised here, before any write)."""
    credits = [take_back.kind_of(line).credit(db, line, now) for line in lines]
    if fee > sum(credits):
        raise ValidationError(f"the fee is more than the lines are worth back ({sum(credits)} cents)",
                              field="fee_cents",
                              detail_de=f"Die Gebühr ist höher als der Wert der Positionen ({sum(credits)} Cent)")
    out = []
    for credit in credits:
        kept = min(fee, credit)
        fee -= kept
        out.append(credit - kept)
    return out


def _invoice(db: sqlite3.Connection, order: dict, line_ids: list[str]) -> dict | None:
    """The one live invoice the lines are on (None: on none)."""
    found = db.execute(f"SELECT DISTINCT i.id FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id "
                       f"WHERE i.order_id = ? AND i.kind = 'invoice' AND NOT EXISTS (SELECT 1 FROM invoices c WHERE "
                       f"c.cancels_id = i.id) AND l.order_line_id IN ({', '.join('?' * len(line_ids))})",
                       (order["id"], *line_ids)).fetchall()
    if len(found) > 1:
        raise ValidationError("the lines are on several invoices: cancel each invoice's lines on their own",
                              field="line_ids",
                              detail_de="Die Positionen stehen auf mehreren Rechnungen: bitte je Rechnung stornieren")
    return invoices.get(db, found[0]["id"]) if found else None


def _prepare(db: sqlite3.Connection, order_id: str, data: LinesCancelIn, now: dt.datetime) -> tuple:
    """(order, lines, credits, invoice, money plan): everything decided before anything is written,
    so a refusal leaves the database as it was (the preview and the cancellation alike)."""
    order = _order(db, order_id)
    lines = _lines(db, order, data.line_ids)
    credits = _credits(db, lines, data.fee_cents, now)
    invoice = _invoice(db, order, data.line_ids)
    return order, lines, credits, invoice, refunds.plan(db, order, sum(credits), data.refund_method)


def quote(db: sqlite3.Connection, order_id: str, data: LinesCancelIn, now: dt.datetime) -> dict:
    """What cancelling *data.line_ids* would do (nothing is written)."""
    order, lines, credits, invoice, money = _prepare(db, order_id, data, now)
    return {"order_id": order["id"], "order_number": order["number"], "fee_cents": data.fee_cents,
            "lines": [{"line_id": line["id"], "position": line["position"], "kind": line["kind"],
                       "product": line["product"], "price_cents": line["price_cents"], "credit_cents": credit}
                      for line, credit in zip(lines, credits, strict=True)],
            **money.as_dict(), "invoice_number": invoice["number"] if invoice else None}


@retried  # a deadlock or serialization failure on PostgreSQL: run again
def cancel(db: sqlite3.Connection, signer: cards.NodeSigner, node: dict, order_id: str, data: LinesCancelIn, *,
           now: dt.datetime, operator: str | None = None) -> dict:
    """Cancel *data.line_ids* of the order, all or nothing (see the module docstring)."""
    with transaction(db):
        order, lines, credits, invoice, money = _prepare(db, order_id, data, now)
        cancellation_id = uuid7()
        reason = data.reason.strip()
        for line, credit in zip(lines, credits, strict=True):
            what = take_back.kind_of(line).take_back(db, signer, line, reason, now)
            db.execute("INSERT INTO cancelled_lines (line_id, cancellation_id, order_id, credit_cents, what) "
                       "VALUES (?, ?, ?, ?, ?)", (line["id"], cancellation_id, order["id"], credit, json.dumps(what)))
        refunds.apply(db, order, money, cancellation_id=cancellation_id, node_id=node["id"], operator=operator,
                      now=now)
        storno = reissued = None
        if invoice is not None:
            storno = invoices.cancel(db, node, invoice["id"], invoices.InvoiceCancelIn(reason=f"Storno: {reason}"),
                                     now=now, operator=operator)
            reissued = _reissue(db, node, order, invoice, now, operator)
        db.execute("INSERT INTO cancellations (id, order_id, reason, fee_cents, credit_cents, refund_cents, "
                   "released_cents, kept_cents, cancellation_invoice_id, reissued_invoice_id, operator, node_id, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (cancellation_id, order["id"], reason, data.fee_cents, sum(credits), money.refund_cents,
                    money.released_cents, money.kept_cents, storno["id"] if storno else None,
                    reissued["id"] if reissued else None, operator, node["id"], iso(now)))
    result = get(db, cancellation_id)
    result["at_bank_cents"] = money.at_bank_cents
    return result


def _reissue(db: sqlite3.Connection, node: dict, order: dict, invoice: dict, now: dt.datetime,
             operator: str | None) -> dict | None:
    """The new invoice for what stays billed of the cancelled *invoice* (None: nothing stays)."""
    credits = {r["line_id"]: r["credit_cents"] for r in db.execute(
        "SELECT line_id, credit_cents FROM cancelled_lines WHERE order_id = ?", (order["id"],))}
    lines = {line["id"]: {**line, "credit_cents": credits.get(line["id"])}
             for line in order_lines.of_order(db, order["id"])}
    stay = [line["order_line_id"] for line in invoice["lines"] if invoices.billable(lines[line["order_line_id"]])]
    if not stay:
        return None
    return invoices.issue(db, node, order["id"], invoices.InvoiceIn(language=invoice["language"], line_ids=stay),
                          now=now, operator=operator)


# --- reading ----------------------------------------------------------------------------------------------


def get(db: sqlite3.Connection, cancellation_id: str) -> dict:
    row = db.execute("SELECT k.*, o.number AS order_number, s.number AS cancellation_invoice_number, "
                     "r.number AS reissued_invoice_number FROM cancellations k JOIN orders o ON o.id = k.order_id "
                     "LEFT JOIN invoices s ON s.id = k.cancellation_invoice_id "
                     "LEFT JOIN invoices r ON r.id = k.reissued_invoice_id WHERE k.id = ?",
                     (cancellation_id,)).fetchone()
    if row is None:
        raise NotFound(f"no cancellation {cancellation_id}", detail_de=f"Keine Stornierung {cancellation_id}")
    row["lines"] = [{**line, "what": json.loads(line["what"])} for line in db.execute(
        "SELECT c.line_id, l.position, l.kind, c.credit_cents, c.what FROM cancelled_lines c "
        "JOIN order_lines l ON l.id = c.line_id WHERE c.cancellation_id = ? ORDER BY l.position",
        (cancellation_id,)).fetchall()]
    row["refunds"] = db.execute("SELECT id, method, -amount_cents AS amount_cents, state, reference FROM payments "
                                "WHERE cancellation_id = ? ORDER BY created_at, id", (cancellation_id,)).fetchall()
    return row


def of_order(db: sqlite3.Connection, order_id: str) -> list[dict]:
    _order(db, order_id)
    ids = db.execute("SELECT id FROM cancellations WHERE order_id = ? ORDER BY created_at, id", (order_id,)).fetchall()
    return [get(db, r["id"]) for r in ids]
