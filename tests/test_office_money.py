"""The office's money screens (issue 16 "Everywhere"): the order page shows the order's payment
state and invoices and issues one ("Rechnung erstellen"), downloads its PDF and a duplicate,
cancels it behind a confirmation page; the open items (Offene Posten) list every order not
fully paid, oldest due date first, with days overdue and sums, filtered by a customer's number;
the DATEV export downloads the Buchungsstapel of a from/to range.

The bad day: a forged POST (no form token, another origin), an order without customer, an
order invoiced twice, a cancellation twice, an unknown customer number or invoice, a DATEV
range backwards or a hub without [datev] numbers: refused in the page's language, nothing
stored. Real SQLite copies of the sample hub, the real app on loopback, real sessions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import money_orders
from tests.helpers import call, table_counts
from tests.office import SHOTS, post_form, signed_in
from tests.test_invoice_api import customer, phone_order, text_of

MONEY = ("invoices", "invoice_lines", "invoice_vat", "payments", "sepa_mandates", "sepa_debits", "sepa_runs")
HUB_TOML = '[datev]\nconsultant_number = 29098\nclient_number = 55003\n'


def money(db) -> dict[str, int]:
    counts = table_counts(db)
    return {t: counts.get(t, 0) for t in MONEY}


def order_page(order_id: str) -> str:
    return f"/office/orders/{order_id}"


def invoice_ids(html: str) -> list[str]:
    return re.findall(r'href="/office/invoices/([\w-]+)/pdf"', html)


async def issue(clerk, order_id: str, language: str = "de"):
    return await post_form(clerk, order_page(order_id), f"/office/orders/{order_id}/invoices",
                           {"language": language})


# --- the order page: payment state and invoices ---------------------------------------------------------


async def test_the_order_page_issues_an_invoice_and_downloads_its_pdf_and_a_duplicate(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    order = await phone_order(clerk)
    html = await (await clerk.get(order_page(order["id"]))).text()
    assert 'id="pay-state">offen<' in html and "Noch keine Rechnung." in html and 'id="issue-invoice"' in html

    done = await issue(clerk, order["id"])
    assert done.status == 303 and done.headers["Location"].startswith(order_page(order["id"]) + "?done=")
    html = await (await clerk.get(done.headers["Location"])).text()
    invoice = (await call(clerk, "GET", f"/invoices?order_id={order['id']}", status=200))["items"][0]
    assert f"Rechnung {invoice['number']} ist erstellt." in html and f'data-invoice="{invoice["number"]}"' in html
    assert invoice["kassenzeichen"] in html and invoice_ids(html) == [invoice["id"]]
    assert 'id="issue-invoice"' not in html  # every line is on the invoice: nothing left to invoice
    english = await (await clerk.get(done.headers["Location"] + "&lang=en")).text()
    assert f"Invoice {invoice['number']} is issued." in english  # the note in the page's language
    await clerk.get("/office/?lang=de")

    pdf = await clerk.get(f"/office/invoices/{invoice['id']}/pdf")
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    assert pdf.headers["Content-Disposition"] == f'attachment; filename="rechnung-{invoice["number"]}.pdf"'
    assert f"Rechnung {invoice['number']}" in text_of(await pdf.read())
    duplicate = await clerk.get(f"/office/invoices/{invoice['id']}/pdf?duplicate=1")
    assert "duplikat-" in duplicate.headers["Content-Disposition"] and "DUPLIKAT" in text_of(await duplicate.read())


async def test_an_english_page_issues_an_english_invoice_and_names_the_refusal_of_a_second(sample_hub,
                                                                                          aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    order = await phone_order(clerk, products=(0,))
    await clerk.get("/office/?lang=en")
    assert (await issue(clerk, order["id"], "en")).status == 303
    invoice = (await call(clerk, "GET", f"/invoices?order_id={order['id']}", status=200))["items"][0]
    assert invoice["language"] == "en"
    before = money(sample_hub.db)
    again = await issue(clerk, order["id"])
    html = await again.text()
    assert again.status == 409 and "already invoiced" in html and 'id="money-error"' in html
    assert money(sample_hub.db) == before
    await clerk.get("/office/?lang=de")
    html = await (await issue(clerk, order["id"])).text()
    assert "bereits berechnet" in html  # the rule's German detail on a German page


async def test_cancelling_is_behind_a_confirmation_page_and_happens_once(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    order = await phone_order(clerk, products=(0,))
    await issue(clerk, order["id"])
    invoice = (await call(clerk, "GET", f"/invoices?order_id={order['id']}", status=200))["items"][0]
    before = money(sample_hub.db)
    page = f"/office/invoices/{invoice['id']}/cancel"
    confirm = await (await clerk.get(page)).text()
    assert f"Rechnung {invoice['number']} stornieren" in confirm and "Stornorechnung erstellen" in confirm
    assert money(sample_hub.db) == before  # looking at the confirmation changes nothing
    done = await post_form(clerk, page, page, {"reason": "Kunde hat zurückgegeben"})
    assert done.status == 303 and done.headers["Location"].startswith(order_page(order["id"]))
    html = await (await clerk.get(done.headers["Location"])).text()
    storno = [i for i in (await call(clerk, "GET", f"/invoices?order_id={order['id']}", status=200))["items"]
              if i["kind"] == "cancellation"][0]
    assert f"Stornorechnung {storno['number']} ist erstellt." in html
    assert f"storniert durch {storno['number']}" in html and storno["total_cents"] == -invoice["total_cents"]
    assert 'id="issue-invoice"' in html  # the lines are open again and can be invoiced anew
    after = money(sample_hub.db)
    twice = await post_form(clerk, page, page, {"reason": "nochmal"})
    assert twice.status == 409 and "bereits durch" in await twice.text() and money(sample_hub.db) == after


async def test_forged_posts_and_unknown_invoices_change_nothing(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    order = await phone_order(clerk, products=(0,))
    before = money(sample_hub.db)
    action = f"/office/orders/{order['id']}/invoices"
    assert (await clerk.post(action, data={"language": "de"})).status == 403  # no form token
    foreign = await post_form(clerk, order_page(order["id"]), action, {"language": "de"},
                              Origin="https://evil.example")
    assert foreign.status == 403 and money(sample_hub.db) == before
    missing = "0190b0a0-0000-7000-8000-000000000000"
    assert (await clerk.get(f"/office/invoices/{missing}/pdf")).status == 404
    assert (await clerk.get(f"/office/invoices/{missing}/cancel")).status == 404
    assert (await clerk.get("/office/invoices/x%27;--/pdf")).status in (400, 404)
    hostile = await post_form(clerk, order_page(order["id"]), f"/office/orders/{missing}/invoices")
    assert hostile.status == 404 and money(sample_hub.db) == before
    unknown = await clerk.get("/office/open-items", allow_redirects=False)
    assert unknown.status == 200
    await clerk.post("/office/logout", data={"csrf": re.search(r'name="csrf" value="([^"]+)"',
                                                                  await unknown.text()).group(1)})
    gone = await clerk.get(f"/office/invoices/{missing}/pdf", allow_redirects=False)
    assert gone.status == 303 and gone.headers["Location"].startswith("/office/login")


async def test_a_cash_desk_order_without_customer_offers_no_invoice(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    order_id = money_orders.order(sample_hub.db, "K-0001", [(1500, None)], [("cash", 1500, "paid", money_orders.NOW)])
    html = await (await clerk.get(order_page(order_id))).text()
    assert 'id="pay-state">bezahlt<' in html and 'id="issue-invoice"' not in html


# --- open items -----------------------------------------------------------------------------------------


async def test_open_items_are_listed_by_due_date_with_sums_and_filtered_by_customer(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    first = await phone_order(clerk, products=(0,))
    second = await phone_order(clerk, products=(0, 3))
    await issue(clerk, second["id"])
    html = await (await clerk.get("/office/open-items")).text()
    listed = await call(clerk, "GET", "/open-items", status=200)
    assert f"{listed['total']} offene Posten" in html and listed["total"] >= 2
    rows = re.findall(r'data-order="([^"]+)"', html)
    assert rows == [i["order_number"] for i in listed["items"]] and {first["number"], second["number"]} <= set(rows)
    assert f'href="/office/orders/{first["id"]}"' in html
    invoice = (await call(clerk, "GET", f"/invoices?order_id={second['id']}", status=200))["items"][0]
    assert invoice["kassenzeichen"] in html and invoice["number"] in html
    euros = f"{listed['open_cents'] / 100:,.2f}".translate(str.maketrans(",.", ".,")) + " €"
    assert re.search(r'id="sum-open">([^<]*)<', html).group(1) == euros

    number = sample_hub.db.execute("SELECT number FROM customers WHERE id = ?",
                                   (customer(sample_hub.db),)).fetchone()["number"]
    mine = await (await clerk.get(f"/office/open-items?customer={number}")).text()
    theirs = await call(clerk, "GET", f"/open-items?customer_id={customer(sample_hub.db)}", status=200)
    assert re.findall(r'data-order="([^"]+)"', mine) == [i["order_number"] for i in theirs["items"]]
    nobody = await clerk.get("/office/open-items?customer=K-NIEMAND&lang=en")
    assert nobody.status == 404 and "No customer with the number K-NIEMAND." in await nobody.text()


# --- DATEV ----------------------------------------------------------------------------------------------


async def test_the_datev_form_downloads_the_batch_and_says_what_is_wrong(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    unset = await clerk.get("/office/datev/file?from=2026-01-01&to=2026-01-31")
    assert unset.status == 409 and "Berater- und Mandantennummer" in await unset.text()
    (sample_hub.dir / "hub.toml").write_text(HUB_TOML, encoding="utf-8")
    clerk = await signed_in(aiohttp_client, sample_hub, role="office", user="buchhaltung")
    form = await (await clerk.get("/office/datev")).text()
    assert 'name="from" type="date"' in form and 'action="/office/datev/file"' in form
    got = await clerk.get("/office/datev/file?from=2026-01-01&to=2026-12-31")
    assert got.status == 200 and got.headers["Content-Type"].startswith("text/csv")
    assert got.headers["Content-Disposition"] == 'attachment; filename="EXTF_Buchungsstapel_20260101_20261231.csv"'
    body = await got.read()
    assert body.startswith(b'"EXTF";700;21;"Buchungsstapel"') and b"\r\n" in body
    backwards = await clerk.get("/office/datev/file?from=2026-03-01&to=2026-02-01")
    assert backwards.status == 422 and "endet vor seinem Beginn" in await backwards.text()
    for bad in ("from=&to=", "from=2026-13-01&to=2026-12-31", "from=%3Cscript%3E&to=x"):
        page = await clerk.get(f"/office/datev/file?{bad}")
        assert 400 <= page.status < 500 and "<script>" not in await page.text()


# --- in Chromium ----------------------------------------------------------------------------------------


def _api(served, method: str, path: str, body: dict | None = None) -> dict:
    """One call to the served hub's API with the admin token `hub init` printed."""
    import json
    import urllib.request

    request = urllib.request.Request(served.hub.url + "/api/v1" + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {served.token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def _shot(page, name: str) -> None:
    """The page as it is (German) and the same address in English: test-output/office/money-NAME-de|en.png."""
    from tests.office import SHOTS

    page.screenshot(path=SHOTS / f"money-{name}-de.png", full_page=True)
    url = page.url.split("#")[0]
    page.goto(url + ("&" if "?" in url else "?") + "lang=en")
    page.screenshot(path=SHOTS / f"money-{name}-en.png", full_page=True)
    page.goto(url + ("&" if "?" in url else "?") + "lang=de")


@pytest.mark.slow
def test_the_office_invoices_collects_and_books_an_order_in_chromium(tmp_path):
    """One walk: an invoice for a SEPA order and its PDF, the order among the open items, a
    mandate (a wrong IBAN first), the debit, the creditor account, the run previewed and exported
    with its pain.008 file, and the DATEV batch downloaded; screenshots in German and English."""
    import os

    import sepaxml
    import xmlschema

    from core.base.storage import connect
    from hub.app import DB_NAME
    from tests.office import office_in_chromium

    (tmp_path / "hub").mkdir()
    prepare = lambda db: (tmp_path / "hub" / "hub.toml").write_text(HUB_TOML, encoding="utf-8")  # noqa: E731
    with office_in_chromium(tmp_path, prepare=prepare) as served:
        page, db = served.page, connect(served.hub_dir / DB_NAME)
        cid = customer(db)
        order = _api(served, "POST", "/orders", {
            "lines": [{"product_id": served.ids["annual_products"][0], "holders": [{"name": "Erika Mustermann"}]}],
            "payment_method": "sepa", "delivery": "pickup", "customer_id": cid})
        base = served.hub.url

        page.goto(f"{base}/office/orders/{order['id']}")
        page.click("#issue-invoice")
        page.wait_for_selector("#money-note")
        number = page.locator("#invoices tr[data-invoice]").first.get_attribute("data-invoice")
        with page.expect_download() as got:
            page.click("#invoices a.pdf")
        assert got.value.suggested_filename == f"rechnung-{number}.pdf"
        assert Path(got.value.path()).read_bytes()[:5] == b"%PDF-"
        _shot(page, "1-order")

        page.click('#nav a[href="/office/open-items"]')
        page.wait_for_selector(f'#open-items tr[data-order="{order["number"]}"]')
        assert number in page.inner_text(f'#open-items tr[data-order="{order["number"]}"]')
        _shot(page, "2-open-items")

        page.goto(f"{base}/office/customers/{cid}/mandates")
        page.fill("#reference", "ABO-2026-0042")
        page.fill("#iban", "DE45 1203 0000 1234 5678 90")
        page.click("#create-mandate")
        page.wait_for_selector("#error")
        assert "Prüfziffern" in page.inner_text("#error")
        page.screenshot(path=SHOTS / "money-3-mandate-refused-de.png", full_page=True)
        page.fill("#iban", "DE02 1203 0000 0000 2020 51")
        page.click("#create-mandate")
        page.wait_for_selector('#mandates tr[data-mandate="ABO-2026-0042"]')
        _shot(page, "4-mandates")

        page.goto(f"{base}/office/orders/{order['id']}")
        page.click("#make-debit")
        page.wait_for_selector("#debits")

        page.click('#nav a[href="/office/sepa"]')
        page.fill("#account-form input[name=iban]", "DE89370400440532013000")
        page.click("#save-account")
        page.wait_for_selector("#export")
        assert page.inner_text("#preview-count") == "1"
        _shot(page, "5-sepa-preview")
        page.click("#export")
        page.wait_for_selector("#runs a.run-file")
        with page.expect_download() as got:
            page.click("#runs a.run-file")
        schema = os.path.join(os.path.dirname(sepaxml.__file__), "schemas", "pain.008.001.08.xsd")
        xmlschema.XMLSchema(schema).validate(Path(got.value.path()).read_text(encoding="utf-8"))
        _shot(page, "6-sepa-exported")

        page.click('#nav a[href="/office/datev"]')
        page.fill("#from", "2026-01-01")
        page.fill("#to", "2026-12-31")
        _shot(page, "7-datev")
        with page.expect_download() as got:
            page.click("#download")
        assert Path(got.value.path()).read_bytes()[:6] == b'"EXTF"'

        from tests.test_bank_statements import camt

        statement = tmp_path / "auszug.xml"
        statement.write_bytes(camt("camt053_001_08.xml", kassenzeichen=_api(served, "GET", f"/invoices?order_id="
                                                                          f"{order['id']}")["items"][0]["kassenzeichen"],
                                   partial="10.00", e2e="UNKNOWN", returned="5.00"))
        page.click('#nav a[href="/office/bank"]')
        page.set_input_files("#file", str(statement))
        page.click("#import")
        page.wait_for_selector("#note")
        assert page.locator("#unmatched tr[data-entry]").count() >= 1
        assert page.locator("#matched tr[data-matched]").count() == 1  # paid by its Kassenzeichen
        _shot(page, "8-bank")
        page.fill("#matched form.take-back input[name=note]", "falsche Bestellung")
        page.click("#matched form.take-back button")
        page.wait_for_selector("#none-matched")
        assert "zurückgenommen" in page.inner_text("#note")
        _shot(page, "9-bank-taken-back")
