"""The invoice PDF and its layout file (core/payments/invoice_pdf.py, invoice_layout.py): a long
invoice continues on further pages with "Seite n von m" and every line, a description too long
for its column is cut with "…", a SEPA invoice prints the pre-notification, and a layout file
with a typo, an unknown font or columns out of order is one error naming the file and the field.
Rendered from stored-invoice dicts (no database needed) and read back with pdfium."""

from __future__ import annotations

import pypdfium2 as pdfium
import pytest

from core.payments import invoice_layout, invoice_pdf, vat
from core.printing.card_layout import LayoutError

ISSUER = {"name": "Theater Nordstadt gGmbH", "street": "Theaterstraße 1", "postcode": "28195", "town": "Bremen",
          "country": "DE", "tax_number": "60/145/54321", "vat_id": None, "sepa_creditor_id": "DE98ZZZ09999999999"}
RECIPIENT = {"number": "KD-2026-000007", "salutation": "Frau", "first_name": "Jördis", "last_name": "Weiß",
             "company": "", "street": "Am Wall 1", "postcode": "1010", "town": "Wien", "country": "AT", "email": None}


def stored(lines: list[tuple[str, int, str]], **kw) -> dict:
    """An invoice as `core.payments.invoices.get` returns it."""
    rows = [{"position": k + 1, "order_line_id": f"l{k}", "description": d, "gross_cents": c, "vat_code": v}
            for k, (d, c, v) in enumerate(lines)]
    total = sum(c for _, c, _ in lines)
    return {"id": "i1", "number": "RE-2026-000042", "kind": "invoice", "cancels_id": None, "cancels_number": None,
            "cancels_issued_on": None, "cancels_kassenzeichen": None, "cancelled_by": None, "order_id": "o1",
            "order_number": "A1B2C3-2026-000001", "organizer_id": "g1", "customer_id": "c1", "language": "de",
            "issued_on": "2026-12-02", "due_on": "2026-12-16", "issuer": ISSUER, "recipient": RECIPIENT,
            "lines": rows, "vat": vat.breakdown((c, v) for _, c, v in lines), "total_cents": total, "paid_cents": 0,
            "due_cents": total, "kassenzeichen": "2026-000042", "sepa": None, "reason": None, "operator": None,
            "created_at": "2026-12-02T10:00:00Z", **kw}


def pages_text(pdf: bytes) -> list[str]:
    return [page.get_textpage().get_text_range() for page in pdfium.PdfDocument(pdf)]


def test_a_long_invoice_continues_on_numbered_pages_with_every_line():
    lines = [(f"Sinfoniekonzert {k}, 12.03.2027 19:30", 3400 + k, ("19", "7", "exempt")[k % 3]) for k in range(70)]
    pages = pages_text(invoice_pdf.render(stored(lines)))
    assert len(pages) >= 2
    assert all(f"Seite {n} von {len(pages)}" in text for n, text in enumerate(pages, 1))
    everything = "\n".join(pages)
    assert all(f"Sinfoniekonzert {k}," in everything for k in range(70))
    assert "Gesamtbetrag" in pages[-1] and "Steuerfreie Leistung nach § 4 Nr. 20a UStG" in pages[-1]
    assert "AT" in pages[0] and "Frau Jördis Weiß" in pages[0]  # a recipient abroad: the country is printed


def test_a_description_too_long_for_its_column_is_cut():
    text = pages_text(invoice_pdf.render(stored([("Abonnement " + "Sehr langer Titel " * 12, 12000, "7")])))[0]
    assert "Abonnement Sehr langer Titel" in text and "…" in text


def test_a_debited_invoice_prints_the_pre_notification():
    sepa = {"creditor_id": "DE98ZZZ09999999999", "mandate_reference": "M-0001", "collection_on": "2026-12-16",
            "amount_cents": 12000}
    text = pages_text(invoice_pdf.render(stored([("Abo", 12000, "7")], sepa=sepa)))[0]
    assert "per SEPA-Lastschrift" in text and "Gläubiger-ID DE98ZZZ09999999999" in text
    assert "Mandatsreferenz M-0001" in text and "16.12.2026" in text and "Bitte überweisen" not in text


@pytest.mark.parametrize(("toml", "message"), [
    ('name = "x"\n[table]\ny_mm = 120\ncolour = "#000000"\n', "table.colour: unknown field"),
    ('name = "x"\n[text]\nfont = "Arial"\n', "text.font: unknown font 'Arial'"),
    ('name = "x"\n[table]\ny_mm = 120\nvat_right_mm = 20\n', "table: columns must go left to right"),
    ('name = "x"\n[table]\ny_mm = 260\n', "table.bottom_mm: must lie below"),
    ('name = "x"\n[meta]\nx_mm = 150\ny_mm = 50\nwidth_mm = 90\n', "meta.width_mm: the block runs off"),
    ('name = "x"\npath = "/etc/passwd"\n', "path: unknown field"),
    ("name = \n", "invalid TOML"),
])
def test_a_broken_layout_file_is_one_error_naming_the_field(tmp_path, toml, message):
    path = tmp_path / "broken.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(LayoutError, match="broken.toml") as refused:
        invoice_layout.load(path)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_shipped_layout_loads_and_a_custom_one_moves_the_blocks(tmp_path):
    assert invoice_layout.load().name == "Rechnung A4"
    path = tmp_path / "letterhead.toml"
    path.write_text('name = "Briefbogen"\n[title]\nx_mm = 25\ny_mm = 120\nsize_pt = 20\n', encoding="utf-8")
    pdf = invoice_pdf.render(stored([("Jahreskarte", 6500, "exempt")]), layout=invoice_layout.load(path))
    assert "Rechnung RE-2026-000042" in pages_text(pdf)[0]
