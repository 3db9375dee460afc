"""Invoices over the hub API and as PDF (issue 16, S13): the office issues an invoice for a phone
order, lists the customer's open invoices, downloads the PDF and a duplicate marked "Duplikat"
(rendered to PNG with pdfium and read back as text, German and English; the PNGs are kept in
test-output/invoices/ for people to look at), cancels it with a Stornorechnung, and an admin sets
the organizer's Kassenzeichen pattern.

The bad day: a shop token, an office token changing settings, unknown fields, malformed ids,
a line of another order, an order invoiced twice, a cancellation cancelled, hostile patterns:
a clear problem (with detail_de where the office reads it) and nothing stored. Real SQLite
copies of the sample hub, the real app on loopback."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium

from tests.helpers import call, problem, table_counts

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "invoices"
TABLES = ("invoices", "invoice_lines", "invoice_vat", "kassenzeichen_series", "organizer_invoicing")
NO_ID = "0190b0a0-0000-7000-8000-000000000000"


def customer(db) -> str:
    return db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]


async def phone_order(api, products=(0, 3), method="transfer") -> dict:
    ids = api.hub.ids["annual_products"]
    body = {"lines": [{"product_id": ids[p], "quantity": 1, "holders": [{"name": "Erika Mustermann"}]}
                      for p in products],
            "customer_id": customer(api.hub.db), "delivery": "pickup", "payment_method": method}
    return await call(api, "POST", "/orders", body, status=201)


def counts(db) -> dict:
    found = table_counts(db)
    return {t: found.get(t, 0) for t in TABLES}


async def pdf_of(api, invoice_id: str, query: str = "") -> bytes:
    resp = await api.get(f"/api/v1/invoices/{invoice_id}/pdf{query}", headers=api.hub.headers())
    assert resp.status == 200 and resp.content_type == "application/pdf", await resp.text()
    assert "attachment" in resp.headers["Content-Disposition"]
    return await resp.read()


def text_of(pdf: bytes, png: str | None = None) -> str:
    """All pages' text (pdfium); with *png*, the first page is also rendered to test-output/invoices/."""
    doc = pdfium.PdfDocument(pdf)
    if png:
        SHOTS.mkdir(parents=True, exist_ok=True)
        assert [round(side) for side in doc[0].get_size()] == [595, 842]  # A4 in points
        image = doc[0].render(scale=1.2).to_pil()
        assert image.getextrema() != ((255, 255), (255, 255), (255, 255))  # not blank
        image.save(SHOTS / png)
    return "\n".join(page.get_textpage().get_text_range() for page in doc)


async def test_the_office_invoices_an_order_and_downloads_it_and_a_duplicate(api):
    order = await phone_order(api)
    invoice = await call(api, "POST", f"/orders/{order['id']}/invoices", {}, status=201)
    assert invoice["order_number"] == order["number"] and invoice["total_cents"] == order["total_cents"]
    assert await call(api, "GET", f"/invoices/{invoice['id']}", status=200) == invoice
    listed = await call(api, "GET", f"/invoices?customer_id={customer(api.hub.db)}&open=true", status=200)
    assert [i["number"] for i in listed["items"]] == [invoice["number"]]

    original = text_of(await pdf_of(api, invoice["id"]), png="invoice-de.png")
    for expected in (f"Rechnung {invoice['number']}", "Museumsverbund Nordstadt e.V.", "Steuernummer 60/145/12345",
                     "USt-IdNr. DE123456789", invoice["kassenzeichen"], "Nettobetrag 7 %", "Umsatzsteuer 7 %",
                     "Steuerfreie Leistung nach § 4 Nr. 20a UStG", "120,00 €", "Bitte überweisen Sie"):
        assert expected in original, expected
    assert "DUPLIKAT" not in original and "Duplikat" not in original
    duplicate = text_of(await pdf_of(api, invoice["id"], "?duplicate=1"), png="invoice-de-duplicate.png")
    assert "DUPLIKAT" in duplicate and "Duplikat der Rechnung vom" in duplicate
    assert invoice["number"] in duplicate and invoice["kassenzeichen"] in duplicate


async def test_an_english_invoice_and_its_cancellation(api):
    order = await phone_order(api, products=(0,))
    invoice = await call(api, "POST", f"/orders/{order['id']}/invoices", {"language": "en"}, status=201)
    english = text_of(await pdf_of(api, invoice["id"]), png="invoice-en.png")
    assert f"Invoice {invoice['number']}" in english and "Payment reference" in english and "EUR 65.00" in english
    assert "VAT-exempt supply under § 4 No. 20a" in english

    storno = await call(api, "POST", f"/invoices/{invoice['id']}/cancel", {"reason": "returned"}, status=201)
    assert storno["kind"] == "cancellation" and storno["cancels_id"] == invoice["id"]
    assert storno["total_cents"] == -6500 and storno["number"] != invoice["number"]
    cancelled = text_of(await pdf_of(api, storno["id"]), png="cancellation-en.png")
    assert f"Cancellation invoice {storno['number']}" in cancelled
    assert f"Cancels invoice {invoice['number']}" in cancelled
    assert "EUR -65.00" in cancelled
    assert (await call(api, "GET", f"/invoices/{invoice['id']}", status=200))["cancelled_by"]["id"] == storno["id"]
    assert (await call(api, "GET", f"/invoices?order_id={order['id']}&open=true", status=200))["items"] == []

    before = counts(api.hub.db)
    again = await problem(api, "POST", f"/invoices/{invoice['id']}/cancel", {"reason": "x"}, status=409,
                          slug="conflict")
    assert "already cancelled" in again["detail"] and again["detail_de"]
    await problem(api, "POST", f"/invoices/{storno['id']}/cancel", {"reason": "x"}, status=409, slug="conflict")
    assert counts(api.hub.db) == before


async def test_an_admin_sets_the_kassenzeichen_pattern_of_a_municipal_treasury(api):
    org = api.hub.ids["museum_organizer"]
    settings = {"kassenzeichen_pattern": "5.1100.{seq:07d}", "payment_days": 30, "ticket_vat_code": "7"}
    changed = await call(api, "PUT", f"/organizers/{org}/invoicing", settings, status=200)
    assert {k: changed[k] for k in settings} == settings
    order = await phone_order(api, products=(0,))
    invoice = await call(api, "POST", f"/orders/{order['id']}/invoices", {}, status=201)
    assert invoice["kassenzeichen"] == "5.1100.0000001"
    assert "Kassenzeichen 5.1100.0000001" in text_of(await pdf_of(api, invoice["id"]))


async def test_only_staff_invoice_and_only_admins_change_the_settings(api):
    order = await phone_order(api)
    shop = (await call(api, "POST", "/tokens", {"name": "shop", "role": "shop"}, status=201))["token"]
    office = (await call(api, "POST", "/tokens", {"name": "office", "role": "office"}, status=201))["token"]
    before = counts(api.hub.db)
    await problem(api, "POST", f"/orders/{order['id']}/invoices", {}, status=403, slug="forbidden", token=shop)
    await problem(api, "GET", "/invoices", status=403, slug="forbidden", token=shop)
    await problem(api, "PUT", f"/organizers/{api.hub.ids['museum_organizer']}/invoicing",
                  {"kassenzeichen_pattern": "{seq}"}, status=403, slug="forbidden", token=office)
    assert counts(api.hub.db) == before
    invoice = await call(api, "POST", f"/orders/{order['id']}/invoices", {}, status=201, token=office)
    assert invoice["operator"] == "office"


async def test_hostile_requests_are_refused_and_store_nothing(api):
    order = await phone_order(api, products=(0,))
    other = await phone_order(api, products=(3,))
    org = api.hub.ids["museum_organizer"]
    before = counts(api.hub.db)
    path = f"/orders/{order['id']}/invoices"
    await problem(api, "POST", path, {"language": "fr"}, status=422, slug="validation-failed")
    await problem(api, "POST", path, {"total_cents": 1}, status=400, slug="unknown-field")
    await problem(api, "POST", path, {"line_ids": ["'; DROP TABLE invoices; --"]}, status=422,
                  slug="validation-failed")
    await problem(api, "POST", path, {"line_ids": []}, status=422, slug="validation-failed")
    await problem(api, "POST", path, {"payment_days": -1}, status=422, slug="validation-failed")
    stray = await problem(api, "POST", path, {"line_ids": [other["items"][0]["id"]]}, status=422,
                          slug="validation-failed")
    assert stray["detail_de"]
    await problem(api, "POST", f"/orders/{NO_ID}/invoices", {}, status=404, slug="not-found")
    await problem(api, "POST", "/orders/not-an-id/invoices", {}, status=404, slug="not-found")
    await problem(api, "GET", f"/invoices/{NO_ID}", status=404, slug="not-found")
    await problem(api, "GET", f"/invoices/{NO_ID}/pdf?duplicate=1", status=404, slug="not-found")
    await problem(api, "GET", "/invoices?open=maybe", status=400, slug="invalid-parameter")
    await problem(api, "GET", "/invoices?customer_id=x", status=400, slug="invalid-parameter")
    await problem(api, "POST", f"/invoices/{NO_ID}/cancel", {"reason": "x"}, status=404, slug="not-found")
    await problem(api, "POST", f"/invoices/{NO_ID}/cancel", {"reason": " "}, status=422, slug="validation-failed")
    for pattern in ("{0.__class__.__mro__}", "{seq}{seq}", "<script>{seq}", "{year}"):
        refused = await problem(api, "PUT", f"/organizers/{org}/invoicing", {"kassenzeichen_pattern": pattern},
                                status=422, slug="validation-failed")
        assert refused["field"] == "kassenzeichen_pattern" and refused["detail_de"]
    await problem(api, "PUT", f"/organizers/{NO_ID}/invoicing", {}, status=404, slug="not-found")
    await problem(api, "GET", f"/organizers/{NO_ID}/invoicing", status=404, slug="not-found")
    assert counts(api.hub.db) == before

    await call(api, "POST", path, {}, status=201)
    twice = await problem(api, "POST", path, {}, status=409, slug="conflict")
    assert "already invoiced" in twice["detail"]
