"""An invoice as an A4 PDF (reportlab), German or English, from a layout file.

Everything printed comes from the stored invoice (`core.payments.invoices.get`), never from
today's catalog, so a duplicate printed years later says what the original said, plus the mark
"Duplikat". Money: German `1.234,56 €`, English `EUR 1,234.56`; dates `31.12.2026` / `31 Dec 2026`.

What §14 Abs. 4 UStG asks for and where it is printed: issuer's name and address (issuer block,
sender line), tax number or VAT id (issuer block, footer), recipient's name and address (window),
invoice date and delivery date (meta), the invoice number (meta), quantity and kind of each
supply (table), net amount and tax per rate or the exemption and its ground (sums), the total.
"""

from __future__ import annotations

import datetime as dt
import io

from reportlab.lib.colors import HexColor
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from core.payments import invoice_layout
from core.payments.invoice_layout import Block, InvoiceLayout

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "invoice": "Rechnung", "cancellation": "Stornorechnung", "number": "Rechnungsnummer",
        "date": "Rechnungsdatum", "delivery": "Leistungsdatum", "customer": "Kundennummer", "order": "Auftrag",
        "kassenzeichen": "Kassenzeichen", "due": "Fällig am", "page": "Seite {n} von {total}",
        "pos": "Pos.", "description": "Bezeichnung", "vat": "USt.", "amount": "Betrag",
        "net": "Nettobetrag {rate} %", "tax": "Umsatzsteuer {rate} %", "exempt_sum": "Steuerfrei (§ 4 Nr. 20a UStG)",
        "total": "Gesamtbetrag", "paid": "Bereits bezahlt", "open": "Zu zahlen", "exempt_code": "frei",
        "exempt": "Steuerfreie Leistung nach § 4 Nr. 20a UStG.",
        "cancels": "Storno der Rechnung {number} vom {date}, Kassenzeichen {kz}. Grund: {reason}",
        "refund": "Bereits gezahlte Beträge erstatten wir Ihnen auf dem ursprünglichen Zahlungsweg.",
        "transfer": "Bitte überweisen Sie {amount} bis zum {due} unter Angabe des Kassenzeichens {kz}.",
        "settled": "Der Rechnungsbetrag ist bezahlt. Vielen Dank.",
        "sepa": "Wir ziehen {amount} am {date} per SEPA-Lastschrift von Ihrem Konto ein. "
                "Gläubiger-ID {creditor}{mandate}. Bitte sorgen Sie für ausreichende Deckung.",
        "mandate": ", Mandatsreferenz {ref}",
        "tax_number": "Steuernummer", "vat_id": "USt-IdNr.", "creditor": "Gläubiger-ID",
        "duplicate": "DUPLIKAT", "duplicate_note": "Duplikat der Rechnung vom {date}",
    },
    "en": {
        "invoice": "Invoice", "cancellation": "Cancellation invoice", "number": "Invoice number",
        "date": "Invoice date", "delivery": "Date of supply", "customer": "Customer number", "order": "Order",
        "kassenzeichen": "Payment reference", "due": "Due on", "page": "Page {n} of {total}",
        "pos": "No.", "description": "Description", "vat": "VAT", "amount": "Amount",
        "net": "Net amount {rate} %", "tax": "VAT {rate} %", "exempt_sum": "VAT-exempt (§ 4 No. 20a UStG)",
        "total": "Total", "paid": "Already paid", "open": "Amount due", "exempt_code": "exempt",
        "exempt": "VAT-exempt supply under § 4 No. 20a of the German VAT Act (UStG).",
        "cancels": "Cancels invoice {number} of {date}, payment reference {kz}. Reason: {reason}",
        "refund": "Amounts already paid are refunded by the original means of payment.",
        "transfer": "Please transfer {amount} by {due}, quoting the payment reference {kz}.",
        "settled": "This invoice has been paid. Thank you.",
        "sepa": "We will collect {amount} by SEPA direct debit from your account on {date}. "
                "Creditor ID {creditor}{mandate}. Please make sure the account is covered.",
        "mandate": ", mandate reference {ref}",
        "tax_number": "Tax number", "vat_id": "VAT ID", "creditor": "Creditor ID",
        "duplicate": "DUPLIKAT", "duplicate_note": "Duplicate (Duplikat) of the invoice of {date}",
    },
}


def money(cents: int, language: str) -> str:
    sign = "-" if cents < 0 else ""
    euros, rest = divmod(abs(cents), 100)
    if language == "de":
        return f"{sign}{euros:,}".replace(",", ".") + f",{rest:02d} €"
    return f"EUR {sign}{euros:,}.{rest:02d}"


def day(iso_date: str | None, language: str) -> str:
    if not iso_date:
        return ""
    d = dt.date.fromisoformat(iso_date[:10])
    return f"{d:%d.%m.%Y}" if language == "de" else f"{d.day:02d} {d:%b %Y}"


def render(invoice: dict, *, duplicate: bool = False, layout: InvoiceLayout | None = None) -> bytes:
    """The invoice's PDF; *duplicate* marks every page "Duplikat"."""
    layout = layout or invoice_layout.cached()
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=(invoice_layout.A4_W * mm, invoice_layout.A4_H * mm), pageCompression=0)
    canvas.setTitle(f"{_t(invoice, invoice['kind'])} {invoice['number']}")
    canvas.setAuthor(invoice["issuer"]["name"])
    _Pages(canvas, layout, invoice, duplicate).draw()
    canvas.save()
    return out.getvalue()


def _t(invoice: dict, key: str, **kw: object) -> str:
    text = TEXTS[invoice["language"]][key]
    return text.format(**kw) if kw else text


class _Pages:
    """Draws one invoice page after page; the table continues on a new page when it is full."""

    def __init__(self, canvas: Canvas, layout: InvoiceLayout, invoice: dict, duplicate: bool) -> None:
        self.c, self.l, self.inv, self.duplicate = canvas, layout, invoice, duplicate
        self.lang = invoice["language"]
        self.page = 1
        self.measuring = False
        self.total_pages = 0
        self.total_pages = self._count_pages()

    # -- primitives --
    def _y(self, y_mm: float) -> float:
        return (invoice_layout.A4_H - y_mm) * mm

    def _text(self, x_mm: float, y_mm: float, text: str, *, size: float | None = None, bold: bool = False,
              right: bool = False, width_mm: float | None = None, colour: str | None = None) -> None:
        if self.measuring:
            return
        font = self.l.text.bold_font if bold else self.l.text.font
        size = size or self.l.text.size_pt
        text = _fit(text, font, size, width_mm * mm) if width_mm else text
        self.c.setFont(font, size)
        self.c.setFillColor(HexColor(colour or self.l.text.colour))
        draw = self.c.drawRightString if right else self.c.drawString
        draw(x_mm * mm, self._y(y_mm), text)

    def _lines(self, block: Block, lines: list[str], *, bold_first: bool = False) -> None:
        for k, text in enumerate(lines):
            self._text(block.x_mm, block.y_mm + k * block.line_mm, text, size=block.size_pt,
                       bold=bold_first and k == 0, width_mm=block.width_mm)

    def _rule(self, y_mm: float) -> None:
        if self.measuring:
            return
        t = self.l.table
        self.c.setStrokeColor(HexColor(self.l.text.accent))
        self.c.setLineWidth(0.6)
        self.c.line(t.position_x_mm * mm, self._y(y_mm), t.amount_right_mm * mm, self._y(y_mm))

    # -- the page --
    def draw(self) -> None:
        self._stamp()
        self._head()
        y = self._table_head(self.l.table.y_mm)
        for line in self.inv["lines"]:
            if y > self.l.table.bottom_mm:
                y = self._next_page()
            y = self._row(y, line)
        for label, amount, bold in self._sums():
            if y > self.l.table.bottom_mm:
                y = self._next_page()
            y = self._sum_row(y, label, amount, bold)
        y += 3
        for paragraph in self._notes():
            for text in _wrap(paragraph, self.l.text.font, self.l.text.size_pt,
                              (self.l.table.amount_right_mm - self.l.table.position_x_mm) * mm):
                if y > self.l.table.bottom_mm + 8:
                    y = self._next_page()
                self._text(self.l.table.position_x_mm, y, text)
                y += self.l.table.line_mm - 0.8
            y += 1.5
        self._foot()
        self._show_page()

    def _show_page(self) -> None:
        if not self.measuring:
            self.c.showPage()

    def _head(self) -> None:
        inv, lang = self.inv, self.lang
        issuer, recipient = inv["issuer"], inv["recipient"]
        lines = [issuer["name"], issuer["street"], f"{issuer['postcode']} {issuer['town']}"]
        if issuer["country"] != "DE":
            lines.append(issuer["country"])
        lines += self._tax_ids(issuer)
        self._lines(self.l.issuer, lines, bold_first=True)
        self._lines(self.l.sender_line, [f"{issuer['name']} · {issuer['street']} · {issuer['postcode']} "
                                         f"{issuer['town']}"])
        self._lines(self.l.address, _address(recipient))
        meta = [(_t(inv, "number"), inv["number"]), (_t(inv, "date"), day(inv["issued_on"], lang)),
                (_t(inv, "delivery"), day(inv["issued_on"], lang)),
                (_t(inv, "customer"), recipient["number"]), (_t(inv, "order"), inv["order_number"])]
        if inv["kassenzeichen"]:
            meta.append((_t(inv, "kassenzeichen"), inv["kassenzeichen"]))
        if inv["due_on"]:
            meta.append((_t(inv, "due"), day(inv["due_on"], lang)))
        m = self.l.meta
        for k, (label, value) in enumerate(meta):
            self._text(m.x_mm, m.y_mm + k * m.line_mm, label, size=m.size_pt, width_mm=m.width_mm * 0.42)
            self._text(m.x_mm + m.width_mm, m.y_mm + k * m.line_mm, value, size=m.size_pt, bold=k == 0, right=True,
                       width_mm=m.width_mm * 0.58)
        title = f"{_t(inv, inv['kind'])} {inv['number']}"
        self._text(self.l.title.x_mm, self.l.title.y_mm, title, size=self.l.title.size_pt, bold=True,
                   colour=self.l.text.accent)
        if self.duplicate:
            self._text(self.l.title.x_mm, self.l.title.y_mm + 5.5, _t(inv, "duplicate_note",
                                                                      date=day(inv["issued_on"], lang)), bold=True)

    def _tax_ids(self, issuer: dict) -> list[str]:
        out = []
        if issuer["tax_number"]:
            out.append(f"{_t(self.inv, 'tax_number')} {issuer['tax_number']}")
        if issuer["vat_id"]:
            out.append(f"{_t(self.inv, 'vat_id')} {issuer['vat_id']}")
        return out

    def _table_head(self, y: float) -> float:
        t, inv = self.l.table, self.inv
        self._text(t.position_x_mm, y, _t(inv, "pos"), bold=True)
        self._text(t.description_x_mm, y, _t(inv, "description"), bold=True)
        self._text(t.vat_right_mm, y, _t(inv, "vat"), bold=True, right=True)
        self._text(t.amount_right_mm, y, _t(inv, "amount"), bold=True, right=True)
        self._rule(y + 1.6)
        return y + t.line_mm + 1

    def _row(self, y: float, line: dict) -> float:
        t = self.l.table
        code = line["vat_code"]
        self._text(t.position_x_mm, y, str(line["position"]))
        self._text(t.description_x_mm, y, line["description"], width_mm=t.vat_right_mm - t.description_x_mm - 14)
        self._text(t.vat_right_mm, y, _t(self.inv, "exempt_code") if code == "exempt" else f"{code} %", right=True)
        self._text(t.amount_right_mm, y, money(line["gross_cents"], self.lang), right=True)
        return y + t.line_mm

    def _sums(self) -> list[tuple[str, int, bool]]:
        inv = self.inv
        rows: list[tuple[str, int, bool]] = []
        for v in inv["vat"]:
            if v["vat_code"] == "exempt":
                rows.append((_t(inv, "exempt_sum"), v["gross_cents"], False))
            else:
                rows.append((_t(inv, "net", rate=v["rate"]), v["net_cents"], False))
                rows.append((_t(inv, "tax", rate=v["rate"]), v["vat_cents"], False))
        rows.append((_t(inv, "total"), inv["total_cents"], True))
        if inv["kind"] == "invoice" and inv["paid_cents"]:
            rows.append((_t(inv, "paid"), -inv["paid_cents"], False))
            rows.append((_t(inv, "open"), inv["due_cents"], True))
        return rows

    def _sum_row(self, y: float, label: str, cents: int, bold: bool) -> float:
        t = self.l.table
        if bold:
            self._rule(y - t.line_mm + 1.6)
        self._text(t.vat_right_mm, y, label, right=True, bold=bold)
        self._text(t.amount_right_mm, y, money(cents, self.lang), right=True, bold=bold)
        return y + t.line_mm

    def _notes(self) -> list[str]:
        inv, lang = self.inv, self.lang
        notes = []
        if inv["kind"] == "cancellation":
            notes.append(_t(inv, "cancels", number=inv["cancels_number"], date=day(inv["cancels_issued_on"], lang),
                            kz=inv["cancels_kassenzeichen"] or "-", reason=inv["reason"] or "-"))
            notes.append(_t(inv, "refund"))
        elif inv["sepa"]:
            s = inv["sepa"]
            mandate = _t(inv, "mandate", ref=s["mandate_reference"]) if s.get("mandate_reference") else ""
            notes.append(_t(inv, "sepa", amount=money(s["amount_cents"], lang), date=day(s["collection_on"], lang),
                            creditor=s["creditor_id"], mandate=mandate))
        elif inv["due_cents"] > 0:
            notes.append(_t(inv, "transfer", amount=money(inv["due_cents"], lang), due=day(inv["due_on"], lang),
                            kz=inv["kassenzeichen"]))
        else:
            notes.append(_t(inv, "settled"))
        if any(v["vat_code"] == "exempt" for v in inv["vat"]):
            notes.append(_t(inv, "exempt"))
        return notes

    def _foot(self) -> None:
        issuer, f = self.inv["issuer"], self.l.footer
        parts = [issuer["name"], *self._tax_ids(issuer)]
        if issuer["sepa_creditor_id"]:
            parts.append(f"{_t(self.inv, 'creditor')} {issuer['sepa_creditor_id']}")
        self._text(f.x_mm, f.y_mm, " · ".join(parts), size=f.size_pt, width_mm=f.width_mm - 20)
        self._text(f.x_mm + f.width_mm, f.y_mm, _t(self.inv, "page", n=self.page, total=self.total_pages),
                   size=f.size_pt, right=True)

    def _stamp(self) -> None:
        """The "Duplikat" mark, drawn first so that the text stays readable over it."""
        if not self.duplicate or self.measuring:
            return
        s = self.l.stamp
        self.c.saveState()
        self.c.translate(s.x_mm * mm, self._y(s.y_mm))
        self.c.rotate(s.angle)
        self.c.setFont(self.l.text.bold_font, s.size_pt)
        self.c.setFillColor(HexColor(s.colour))
        self.c.drawCentredString(0, 0, _t(self.inv, "duplicate"))
        self.c.restoreState()

    def _next_page(self) -> float:
        self._foot()
        self._show_page()
        self.page += 1
        self._stamp()
        t = self.l.table
        self._text(t.position_x_mm, t.next_page_y_mm - 8, f"{_t(self.inv, self.inv['kind'])} {self.inv['number']}",
                   bold=True)
        return self._table_head(t.next_page_y_mm)

    def _count_pages(self) -> int:
        """Pages the invoice needs, for "page n of m": the same walk with nothing drawn."""
        self.measuring = True
        try:
            self.draw()
        finally:
            self.measuring = False
        pages, self.page = self.page, 1
        return pages


def _address(recipient: dict) -> list[str]:
    name = " ".join(p for p in (recipient["salutation"], recipient["first_name"], recipient["last_name"]) if p)
    lines = [recipient["company"]] if recipient["company"] else []
    lines += [name, recipient["street"], f"{recipient['postcode']} {recipient['town']}"]
    if recipient["country"] != "DE":
        lines.append(recipient["country"])
    return lines


def _fit(text: str, font: str, size: float, width: float) -> str:
    """*text*, cut with "…" to *width* points."""
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and stringWidth(candidate, font, size) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    return [*lines, current] if current else lines
