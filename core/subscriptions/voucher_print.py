"""A choice voucher as a PDF page (A6 portrait): title, product, value, discount type, validity,
number, the QR code of its signed code, and the note that it is redeemed at the box office.

The QR is drawn by the card layouts' own routine (`core.printing.card_layout._draw_qr`:
alphanumeric mode, quiet zone), so a voucher scans like every card; the receipt printer's slip
of an annual voucher (`core.printing.receipts._voucher_slip`) is the pattern for the text.
"""

from __future__ import annotations

import io
import sqlite3

from reportlab.lib.colors import black
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from core.base.clock import LOCAL_TZ, parse_iso
from core.base.money import format_eur
from core.printing.card_layout import Qr, _draw_qr
from core.printing.receipts import Voucher

WIDTH_MM, HEIGHT_MM = 105.0, 148.0
QR = Qr(x_mm=22.5, y_mm=52.0, size_mm=60.0, error="M")
NOTE = ("Einlösbar je Ticket an der Theaterkasse,", "nach Verfügbarkeit; keine Barauszahlung.")


def voucher_lines(db: sqlite3.Connection, voucher: dict) -> tuple[list[str], list[str]]:
    """(lines above the QR, lines below it)."""
    row = db.execute("SELECT p.name, p.title, o.name AS organizer FROM subscription_products p "
                     "JOIN organizers o ON o.id = p.organizer_id WHERE p.id = ?", (voucher["product_id"],)).fetchone()
    until = parse_iso(voucher["valid_until"]).astimezone(LOCAL_TZ)
    above = [row["organizer"], row["title"], f"Wert {format_eur(voucher['value_cents'])}"]
    if voucher["tier_name"]:
        above.append(f"Ermäßigung: {voucher['tier_name']}")
    below = [f"Gutschein-Nr. {voucher['number']}", f"gültig bis {until:%d.%m.%Y}", *NOTE]
    return above, below


def voucher_pdf(db: sqlite3.Connection, voucher: dict) -> bytes:
    """One page per voucher; *voucher* is a `choice_vouchers` row (with its code)."""
    above, below = voucher_lines(db, voucher)
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=(WIDTH_MM * mm, HEIGHT_MM * mm))
    canvas.setTitle(f"Wahlgutschein {voucher['number']}")
    page_h, mid = HEIGHT_MM * mm, WIDTH_MM * mm / 2
    canvas.setFont("Helvetica-Bold", 16)
    canvas.drawCentredString(mid, page_h - 16 * mm, "WAHLGUTSCHEIN")
    canvas.setFont("Helvetica", 10)
    for k, text in enumerate(above):
        canvas.drawCentredString(mid, page_h - (24 + 6 * k) * mm, text[:60])
    _draw_qr(canvas, QR, voucher["code"], page_h)
    canvas.setFillColor(black)  # the QR routine leaves its background colour set
    canvas.setFont("Helvetica", 8)
    for k, text in enumerate(below):
        canvas.drawCentredString(mid, page_h - (118 + 5 * k) * mm, text[:80])
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def receipt_vouchers(db: sqlite3.Connection, order_id: str) -> list[Voucher | None]:
    """The choice vouchers of an order's voucher subscriptions as slips below its receipt (a desk
    prints them with the sale, `core.printing.receipts._voucher_slip`), the same words as the
    PDF; None for a voucher whose code this node does not hold (nothing printable)."""
    rows = db.execute("SELECT v.*, p.voucher_count FROM choice_vouchers v JOIN subscriptions s "
                      "ON s.id = v.subscription_id JOIN subscription_products p ON p.id = v.product_id "
                      "WHERE s.order_id = ? ORDER BY s.number, v.position", (order_id,)).fetchall()
    out: list[Voucher | None] = []
    for row in rows:
        above, below = voucher_lines(db, row)
        out.append(None if row["code"] is None else Voucher(
            product=", ".join(above[1:]), number=row["number"], code=row["code"],
            note=f"Wahlgutschein {row['position']} von {row['voucher_count']}, {below[1]}. {' '.join(NOTE)}"))
    return out
