"""The office's SEPA direct-debit screens (issue 16 "Everywhere", S12, B4): a customer's
mandates are recorded, changed and cancelled, the IBAN check's refusal shown in the page's
language with the form as typed; the order page turns an order's open SEPA payment into a
debit; "Lastschriften" sets the creditor's account, previews the next run, exports it (the
pain.008.001.08 file downloaded and valid against the XSD), and marks a submitted debit returned
with its reason code and fee (the item is open again, the fee an open row of its own).

The bad day: IBANs with wrong check digits or from outside SEPA, a signature in the future, a
forged POST, a fee that is no amount, an unknown return code, another customer's mandate, a
second export with nothing due: refused, nothing stored. Real SQLite copies of the sample hub,
the real app on loopback, real sessions."""

from __future__ import annotations

import os
import re
from html import unescape

import sepaxml
import xmlschema

from tests.helpers import call, table_counts
from tests.office import post_form, signed_in
from tests.test_invoice_api import customer

XSD = xmlschema.XMLSchema(os.path.join(os.path.dirname(sepaxml.__file__), "schemas", "pain.008.001.08.xsd"))
CREDITOR_IBAN = "DE89370400440532013000"
DEBTOR_IBAN = "DE02120300000000202051"
OTHER_BANK_IBAN = "DE89370400440532013000"
SEPA = ("sepa_mandates", "sepa_debits", "sepa_runs", "sepa_creditor_accounts", "payments")


def sepa_rows(db) -> dict[str, int]:
    counts = table_counts(db)
    return {t: counts.get(t, 0) for t in SEPA}


def mandates_of(cid: str) -> str:
    return f"/office/customers/{cid}/mandates"


def mandate_form(hub, **change) -> dict:
    return {"organizer_id": hub.ids["museum_organizer"], "reference": "ABO-2026-0001", "iban": DEBTOR_IBAN,
            "signed_on": "2026-01-15", "kind": "recurring", **change}


async def sepa_order(clerk, cid: str) -> dict:
    return await call(clerk, "POST", "/orders", {
        "lines": [{"product_id": clerk.hub.ids["annual_products"][0], "holders": [{"name": "Erika Mustermann"}]}],
        "payment_method": "sepa", "delivery": "pickup", "customer_id": cid}, status=201)


def error_of(html: str) -> str:
    return unescape(re.search(r'id="error" role="alert">([^<]*)<', html).group(1))


# --- mandates -------------------------------------------------------------------------------------------


async def test_a_mandate_is_recorded_changed_and_cancelled_and_a_bad_iban_is_named_in_the_pages_language(
        sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    cid, page = customer(sample_hub.db), mandates_of(customer(sample_hub.db))
    html = await (await clerk.get(page)).text()
    assert "Noch kein Mandat." in html and 'id="mandate-form"' in html
    before = sepa_rows(sample_hub.db)
    for iban, says_de in (("DE45120300001234567890", "Prüfziffern ihrer Bank"),
                          ("DE02120300000000202052", "ist ungültig"),
                          ("TR330006100519786457841326", "außerhalb des SEPA-Raums")):
        refused = await post_form(clerk, page, page, mandate_form(sample_hub, iban=iban))
        html = await refused.text()
        assert refused.status == 422 and says_de in error_of(html), error_of(html)
        assert f'value="{iban}"' in html and 'value="ABO-2026-0001"' in html  # the form as typed
    english = await post_form(clerk, page + "?lang=en", page + "?lang=en",
                              mandate_form(sample_hub, iban="DE45120300001234567890"))
    assert "fails its bank's check digits" in error_of(await english.text())
    await clerk.get("/office/?lang=de")
    future = await post_form(clerk, page, page, mandate_form(sample_hub, signed_on="2199-01-01"))
    assert future.status == 422 and "Zukunft" in error_of(await future.text())
    assert sepa_rows(sample_hub.db) == before

    made = await post_form(clerk, page, page, mandate_form(sample_hub, bic="dkbadebbxxx"))
    assert made.status == 303
    html = await (await clerk.get(made.headers["Location"])).text()
    assert "Mandat ABO-2026-0001 ist angelegt." in html and DEBTOR_IBAN in html and "DKBADEBBXXX" in html
    clash = await post_form(clerk, page, page, mandate_form(sample_hub, reference="abo-2026-0001"))
    assert clash.status == 409 and "schon vergeben" in error_of(await clash.text())

    mandate = (await call(clerk, "GET", f"/sepa-mandates?customer_id={cid}", status=200))["items"][0]
    amended = await post_form(clerk, page, f"{page}/{mandate['id']}/amend", {"iban": OTHER_BANK_IBAN})
    assert amended.status == 303
    assert (await call(clerk, "GET", f"/sepa-mandates/{mandate['id']}", status=200))["iban"] == OTHER_BANK_IBAN
    cancelled = await post_form(clerk, page, f"{page}/{mandate['id']}/cancel", {"reason": "Kunde kündigt"})
    html = await (await clerk.get(cancelled.headers["Location"])).text()
    assert "ist widerrufen" in html and "Kunde kündigt" in html and 'class="inline amend"' not in html
    after = sepa_rows(sample_hub.db)
    twice = await post_form(clerk, page, f"{page}/{mandate['id']}/cancel", {"reason": "x"})
    assert twice.status == 409 and "bereits widerrufen" in await twice.text() and sepa_rows(sample_hub.db) == after


async def test_another_customers_mandate_and_forged_posts_change_nothing(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    cid = customer(sample_hub.db)
    other = sample_hub.db.execute("SELECT id FROM customers WHERE id != ? LIMIT 1", (cid,)).fetchone()["id"]
    page = mandates_of(cid)
    assert (await post_form(clerk, page, page, mandate_form(sample_hub))).status == 303
    mandate = (await call(clerk, "GET", f"/sepa-mandates?customer_id={cid}", status=200))["items"][0]
    before = sepa_rows(sample_hub.db)
    wrong = await post_form(clerk, page, f"{mandates_of(other)}/{mandate['id']}/cancel", {"reason": "x"})
    assert wrong.status == 404
    assert (await clerk.post(page, data=mandate_form(sample_hub, reference="X-2"))).status == 403  # no token
    foreign = await post_form(clerk, page, page, mandate_form(sample_hub, reference="X-3"),
                              Origin="https://evil.example")
    assert foreign.status == 403
    assert (await clerk.get(mandates_of("0190b0a0-0000-7000-8000-000000000000"))).status == 404
    assert (await post_form(clerk, page, mandates_of("nope'--"), mandate_form(sample_hub))).status == 404
    assert sepa_rows(sample_hub.db) == before


async def test_a_mandate_unused_for_36_months_shows_expired_in_both_languages(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    page = mandates_of(customer(sample_hub.db))
    assert (await post_form(clerk, page, page, mandate_form(sample_hub, signed_on="2020-03-01"))).status == 303
    assert (await post_form(clerk, page, page, mandate_form(sample_hub, reference="ABO-NEU",
                                                            signed_on="2026-01-15"))).status == 303
    html = await (await clerk.get(page)).text()
    assert html.count('class="expired"') == 1 and "verfallen seit 01.03.2023 (36 Monate ungenutzt)" in html
    assert "gültig bis 15.01.2029, wenn ungenutzt" in html
    english = await (await clerk.get(page + "?lang=en")).text()
    assert "expired since 01.03.2023 (36 months unused)" in english


# --- debits and runs ------------------------------------------------------------------------------------


async def test_a_debit_is_previewed_exported_downloaded_and_returned_with_its_fee(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    cid, org = customer(sample_hub.db), sample_hub.ids["museum_organizer"]
    order = await sepa_order(clerk, cid)
    html = await (await clerk.get(f"/office/orders/{order['id']}")).text()
    assert 'id="to-mandates"' in html and 'id="make-debit"' not in html  # no mandate yet
    await post_form(clerk, mandates_of(cid), mandates_of(cid), mandate_form(sample_hub))
    html = await (await clerk.get(f"/office/orders/{order['id']}")).text()
    assert 'id="make-debit"' in html
    made = await post_form(clerk, f"/office/orders/{order['id']}", f"/office/orders/{order['id']}/sepa-debit")
    assert made.status == 303
    html = await (await clerk.get(made.headers["Location"])).text()
    assert "Die Lastschrift ist angelegt" in html and 'id="make-debit"' not in html and ">fällig<" in html

    sepa = f"/office/sepa?organizer={org}"
    html = await (await clerk.get(sepa)).text()
    assert "Noch kein Einzugskonto" in html and 'id="export"' not in html  # no account: no export yet
    bad = await post_form(clerk, sepa, "/office/sepa/account", {"organizer_id": org, "iban": "DE00123"})
    assert bad.status == 422 and "IBAN" in error_of(await bad.text())
    saved = await post_form(clerk, sepa, "/office/sepa/account", {"organizer_id": org, "iban": CREDITOR_IBAN})
    html = await (await clerk.get(saved.headers["Location"])).text()
    assert CREDITOR_IBAN in html and re.search(r'id="preview-count">1<', html) and 'id="export"' in html
    assert 'id="lead-days">14<' in html and "Vorlauf der Vorabankündigung (Tage)" in html
    before = sepa_rows(sample_hub.db)
    for days, status in (("31", 422), ("0", 422), ("vierzehn", 400)):
        wrong = await post_form(clerk, sepa, "/office/sepa/account",
                                {"organizer_id": org, "iban": CREDITOR_IBAN, "prenotification_days": days})
        assert wrong.status == status and "prenotification_days" in error_of(await wrong.text())
        assert f'value="{days}"' in await wrong.text()  # the form as typed
    assert sepa_rows(sample_hub.db) == before
    seven = await post_form(clerk, sepa, "/office/sepa/account",
                            {"organizer_id": org, "iban": CREDITOR_IBAN, "prenotification_days": "7"})
    html = await (await clerk.get(seven.headers["Location"])).text()
    assert 'id="lead-days">7<' in html and 'name="prenotification_days" type="number" min="1" max="30"' in html

    before = sepa_rows(sample_hub.db)
    exported = await post_form(clerk, sepa, "/office/sepa/runs", {"organizer_id": org})
    assert exported.status == 303
    run = (await call(clerk, "GET", f"/sepa-runs?organizer_id={org}", status=200))["items"][0]
    html = await (await clerk.get(exported.headers["Location"])).text()
    assert f"Der Lauf {run['message_id']} ist erstellt: 1 Lastschrift(en), 65,00 €." in html
    assert f'data-run="{run["id"]}"' in html
    assert "Nichts fällig." in html
    got = await clerk.get(f"/office/sepa/runs/{run['id']}/file")
    assert got.status == 200 and got.content_type == "application/xml"
    assert got.headers["Content-Disposition"] == f'attachment; filename="{run["message_id"]}.xml"'
    XSD.validate((await got.read()).decode())
    nothing = await post_form(clerk, sepa, "/office/sepa/runs", {"organizer_id": org})
    assert nothing.status == 409 and sepa_rows(sample_hub.db)["sepa_runs"] == before["sepa_runs"] + 1
    assert "Keine Lastschrift ist zum Einzug fällig" in error_of(await nothing.text())

    debit = (await call(clerk, "GET", f"/sepa-debits?order_id={order['id']}", status=200))["items"][0]
    assert f'data-debit="{debit["id"]}"' in html
    after = sepa_rows(sample_hub.db)
    for fields, status in (({"reason": "AM04", "fee": "drei"}, 422), ({"reason": "XX99"}, 422),
                           ({"reason": "AM04", "fee": "-1"}, 422)):
        refused = await post_form(clerk, sepa, f"/office/sepa/debits/{debit['id']}/return",
                                  {"organizer_id": org, **fields})
        assert refused.status == status and sepa_rows(sample_hub.db) == after, fields
        if fields["reason"] == "XX99":
            assert "XX99 ist kein Rückgabegrund für SEPA-Lastschriften" in error_of(await refused.text())
    returned = await post_form(clerk, sepa, f"/office/sepa/debits/{debit['id']}/return",
                               {"organizer_id": org, "reason": "AM04", "fee": "3,50"})
    assert returned.status == 303
    assert "Posten ist wieder offen" in await (await clerk.get(returned.headers["Location"])).text()
    state = await call(clerk, "GET", f"/orders/{order['id']}/payment-state", status=200)
    assert state["state"] == "open" and state["open_cents"] == order["total_cents"] + 350  # with the bank's fee
    fee = sample_hub.db.execute("SELECT amount_cents, state FROM payments WHERE order_id = ? AND reference LIKE "
                                "'Ruecklastschrift%'", (order["id"],)).fetchone()
    assert (fee["amount_cents"], fee["state"]) == (350, "pending")
    html = await (await clerk.get(f"/office/orders/{order['id']}")).text()
    assert "zurückgegeben (AM04)" in html
    late = await post_form(clerk, sepa, f"/office/sepa/debits/{debit['id']}/collected", {"organizer_id": org})
    assert late.status == 409 and "Die Lastschrift ist zurückgegeben: nur eine eingereichte Lastschrift" in error_of(
        await late.text())
    english = await post_form(clerk, sepa + "&lang=en", f"/office/sepa/debits/{debit['id']}/collected",
                              {"organizer_id": org})
    assert "the debit is returned: only a submitted debit is collected" in error_of(await english.text())


async def test_the_english_sepa_page_names_what_it_shows(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    html = await (await clerk.get("/office/sepa?lang=en")).text()
    assert "Direct debits (SEPA)" in html and "Nothing due." in html and 'aria-current="page">Direct debits' in html
