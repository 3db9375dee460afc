"""The office cancels order lines and pays refunds out (issue 16): the order page marks lines, the
cancel page previews what the API will do (credit, claims dropped, refunds by method, the
invoice's Stornorechnung), the confirmation cancels once, the refunds list records a refund paid
out with the card terminal's reference.

The bad day: a forged POST (no form token, another origin), no line marked, no reason, a fee
that is no amount, a second confirmation, a card refund without its reference: refused in the
page's language, nothing stored. Real SQLite copies of the sample hub, the real app on loopback,
real sessions; one walk in Chromium with screenshots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import call, table_counts
from tests.office import SHOTS, form_token, post_form, signed_in
from tests.test_invoice_api import phone_order

LEDGER = ("cancellations", "cancelled_lines", "payments", "invoices", "tickets")


def ledger(db) -> dict:
    counts = table_counts(db)
    return {**{t: counts.get(t, 0) for t in LEDGER},
            "rows": db.execute("SELECT id, state, amount_cents FROM payments ORDER BY id").fetchall()}


async def card_order(clerk) -> dict:
    return await call(clerk, "POST", "/orders", {
        "lines": [{"product_id": clerk.hub.ids["annual_products"][p], "holders": [{"name": "Erika Mustermann"}]}
                  for p in (0, 3)],
        "customer_id": clerk.hub.db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"],
        "delivery": "pickup", "payment_method": "card", "payment_reference": "TERM-1"}, status=201)


async def test_the_office_previews_and_cancels_a_line_and_pays_the_refund_out(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    db = sample_hub.db
    order = await card_order(clerk)
    page = f"/office/orders/{order['id']}"
    html = await (await clerk.get(page)).text()
    assert html.count('form="cancel-form"') == 2 and 'id="cancel-lines"' in html
    line = order["items"][1]["id"]

    before = ledger(db)
    preview = await clerk.get(f"{page}/cancel?line={line}&reason=Umzug&fee=5,50")
    html = await preview.text()
    assert preview.status == 200 and 'id="confirm"' in html
    assert "Gutschrift 49,50 €" in html and "Erstattung 49,50 € (Karte) · TERM-1" in html and "5,50 € Gebühr" in html
    assert ledger(db) == before  # the preview writes nothing

    fields = {"lines": line, "reason": "Umzug", "fee": "5,50", "refund": "original"}
    forged = await clerk.post(f"{page}/cancel", data=fields, allow_redirects=False)
    assert forged.status == 403
    elsewhere = await post_form(clerk, f"{page}/cancel?line={line}", f"{page}/cancel", fields,
                                Origin="https://evil.example")
    assert elsewhere.status == 403
    for bad, says in (({"lines": ""}, "mindestens eine Position"), ({"reason": " "}, "einen Grund"),
                      ({"fee": "5 Euro"}, "kein Euro-Betrag")):
        refused = await post_form(clerk, f"{page}/cancel?line={line}", f"{page}/cancel", {**fields, **bad})
        assert refused.status == 422 and says in await refused.text()
    assert ledger(db) == before

    done = await post_form(clerk, f"{page}/cancel?line={line}", f"{page}/cancel", fields)
    assert done.status == 303 and done.headers["Location"].startswith(page + "?done=cn_done")
    html = await (await clerk.get(done.headers["Location"])).text()
    assert "1 Position(en) storniert; zu erstatten: 49,50 €." in html
    assert "storniert, Gutschrift 49,50 €" in html and html.count('form="cancel-form"') == 1
    assert 'id="pay-refund-due"' in html and "zu erstatten: 49,50 €" in html
    before = ledger(db)
    again = await post_form(clerk, f"{page}/cancel?line={line}", f"{page}/cancel", fields)
    assert again.status == 409 and "bereits storniert" in await again.text()
    assert ledger(db) == before

    english = await (await clerk.get(f"{page}/cancel?line={order['items'][0]['id']}&reason=x&lang=en")).text()
    assert "Refund €65.00 (card) · TERM-1" in english and "Cancel now" in english
    await clerk.get("/office/?lang=de")

    refunds = await (await clerk.get("/office/refunds")).text()
    assert f'data-order="{order["number"]}"' in refunds and "Umzug" in refunds
    refund_id = re.search(r'action="/office/refunds/([\w-]+)/paid-out"', refunds).group(1)
    missing = await post_form(clerk, "/office/refunds", f"/office/refunds/{refund_id}/paid-out", {"reference": ""})
    assert missing.status == 422 and "Belegnummer des Kartenterminals" in await missing.text()
    paid = await post_form(clerk, "/office/refunds", f"/office/refunds/{refund_id}/paid-out",
                           {"reference": "TERM-2"})
    assert paid.status == 303
    html = await (await clerk.get(paid.headers["Location"])).text()
    assert f"Erstattung von 49,50 € zu Auftrag {order['number']} ist als ausgezahlt gebucht." in html
    assert 'id="none"' in html and "TERM-2" in html
    state = await call(clerk, "GET", f"/orders/{order['id']}/payment-state", status=200)
    assert (state["state"], state["paid_cents"], state["refund_due_cents"]) == ("paid", 7050, 0)


async def test_a_counter_or_stranger_reaches_no_cancellation_screen(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    order = await phone_order(clerk, products=(0,))
    anonymous = await aiohttp_client(clerk.server.app)
    for path in (f"/office/orders/{order['id']}/cancel?line={order['items'][0]['id']}", "/office/refunds"):
        resp = await anonymous.get(path, allow_redirects=False)
        assert resp.status in (302, 303) and "/office/login" in resp.headers["Location"]
    token = await form_token(clerk, "/office/refunds")
    resp = await anonymous.post(f"/office/orders/{order['id']}/cancel", data={"csrf": token, "lines": "x"},
                                allow_redirects=False)
    assert resp.status in (302, 303, 403)


@pytest.mark.slow
def test_the_office_cancels_a_line_and_pays_out_the_refund_in_chromium(tmp_path):
    from core.base.storage import connect
    from hub.app import DB_NAME
    from tests.office import office_in_chromium
    from tests.test_office_money import _api

    with office_in_chromium(tmp_path) as served:
        page = served.page
        db = connect(served.hub_dir / DB_NAME)
        cid = db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]
        order = _api(served, "POST", "/orders", {
            "lines": [{"product_id": served.ids["annual_products"][p], "holders": [{"name": "Erika Mustermann"}]}
                      for p in (0, 3)],
            "payment_method": "card", "payment_reference": "TERM-7", "delivery": "pickup", "customer_id": cid})
        _api(served, "POST", f"/orders/{order['id']}/invoices", {})
        page.goto(f"{served.hub.url}/office/orders/{order['id']}")
        page.check(f'input[value="{order["items"][1]["id"]}"]')
        page.click("#cancel-lines")
        page.fill("#reason", "Doppelt gekauft")
        page.click("#preview")
        page.wait_for_selector("#quote")
        assert "Stornorechnung" in page.inner_text("#q-invoice")
        page.screenshot(path=SHOTS / "cancel-1-preview-de.png", full_page=True)
        page.click("#confirm")
        page.wait_for_selector("#money-note")
        assert "storniert" in page.inner_text("#lines")
        assert page.locator("#invoices tr[data-invoice]").count() == 3  # original, Stornorechnung, new one
        assert page.locator("#issue-invoice").count() == 0  # nothing left to invoice: the cancelled line is credited
        page.screenshot(path=SHOTS / "cancel-2-order-de.png", full_page=True)
        page.click('#nav a[href="/office/refunds"]')
        page.fill("#refunds input[name=reference]", "TERM-8")
        page.screenshot(path=SHOTS / "cancel-3-refunds-de.png", full_page=True)
        page.click("#refunds button")
        page.wait_for_selector("#note")
        assert page.locator("#none").count() == 1
        page.goto(page.url.split("?")[0] + "?lang=en")
        page.screenshot(path=SHOTS / "cancel-4-refunds-en.png", full_page=True)
        assert Path(SHOTS / "cancel-4-refunds-en.png").stat().st_size > 10_000
