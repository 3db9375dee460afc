"""The office's bank statement screen (issue 16, B6): a camt.053 file uploaded from the page is
imported by the API, the page says what it matched, the unmatched entries are cleared by hand
(a credit assigned to an order by its number, a fee dismissed with a note), and the same file
again brings nothing new.

The bad day: an upload without the form token or from another origin, a file that is no
camt.053 or not UTF-8, an order number that does not exist, a debit assigned: refused in the
page's language, nothing stored. Real SQLite copies of the sample hub, the real app on loopback,
real sessions, real multipart uploads."""

from __future__ import annotations

import re

import aiohttp

from tests.helpers import call, table_counts
from tests.office import form_token, signed_in
from tests.test_bank_statements import camt, order

PAGE = "/office/bank"
BANK = ("bank_statements", "bank_entries", "payments")


def bank_rows(db) -> dict[str, int]:
    counts = table_counts(db)
    return {t: counts.get(t, 0) for t in BANK}


async def send(clerk, raw: bytes, token: str | None = None, **headers: str):
    form = aiohttp.FormData()
    if token is not None:
        form.add_field("csrf", token)
    form.add_field("file", raw, filename="auszug.xml", content_type="application/xml")
    return await clerk.post(PAGE, data=form, allow_redirects=False, headers=headers)


def error_of(html: str) -> str:
    return re.search(r'id="error" role="alert">([^<]*)<', html).group(1)


async def test_a_statement_is_uploaded_and_its_unmatched_entries_are_cleared_by_hand(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    clerk.customer = sample_hub.db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]
    transfer = await order(clerk, "transfer", product=3)
    html = await (await clerk.get(PAGE)).text()
    assert "Keine ungeklärte Buchung." in html and 'enctype="multipart/form-data"' in html
    raw = camt("camt053_001_08.xml", kassenzeichen="NONE-1", partial="1.00", e2e="UNKNOWN", returned="5.00")
    before = bank_rows(sample_hub.db)
    foreign = await send(clerk, raw, await form_token(clerk, PAGE))  # no creditor account has this IBAN yet
    assert foreign.status == 422 and bank_rows(sample_hub.db) == before
    assert "Konto DE89370400440532013000, das keines unserer Konten ist" in error_of(await foreign.text())
    await call(clerk, "PUT", f"/organizers/{sample_hub.ids['museum_organizer']}/sepa-account",
               {"iban": "DE89370400440532013000"}, status=200)
    done = await send(clerk, raw, await form_token(clerk, PAGE))
    assert done.status == 303
    html = await (await clerk.get(done.headers["Location"])).text()
    unmatched = (await call(clerk, "GET", "/bank-entries?state=unmatched", status=200))["items"]
    assert f"{len(unmatched)} ungeklärt." in html and "Kontoauszug eingelesen" in html
    assert len(re.findall(r'data-entry="', html)) == len(unmatched)
    by_amount = {e["amount_cents"]: e for e in unmatched}

    before = bank_rows(sample_hub.db)
    donation = by_amount[1234]
    nobody = await clerk.post(f"{PAGE}/entries/{donation['id']}/assign", allow_redirects=False,
                              data={"csrf": await form_token(clerk, PAGE), "order": "NIEMAND-1"})
    assert nobody.status == 422 and "Keine Bestellung mit der Nummer NIEMAND-1." in await nobody.text()
    outgoing = await clerk.post(f"{PAGE}/entries/{by_amount[500]['id']}/assign", allow_redirects=False,
                                data={"csrf": await form_token(clerk, PAGE), "order": transfer["number"]})
    assert outgoing.status == 409 and "Nur eine Gutschrift" in error_of(await outgoing.text())
    assert bank_rows(sample_hub.db) == before

    assigned = await clerk.post(f"{PAGE}/entries/{donation['id']}/assign", allow_redirects=False,
                                data={"csrf": await form_token(clerk, PAGE), "order": transfer["number"]})
    html = await (await clerk.get(assigned.headers["Location"])).text()
    assert f"Die Buchung ist der Bestellung {transfer['number']} zugeordnet." in html
    state = await call(clerk, "GET", f"/orders/{transfer['id']}/payment-state", status=200)
    assert state["paid_cents"] == 1234
    dismissed = await clerk.post(f"{PAGE}/entries/{by_amount[990]['id']}/dismiss", allow_redirects=False,
                                 data={"csrf": await form_token(clerk, PAGE), "note": "Kontoentgelt"})
    assert dismissed.status == 303
    left = (await call(clerk, "GET", "/bank-entries?state=unmatched", status=200))["items"]
    assert {e["id"] for e in left} == {e["id"] for e in unmatched} - {donation["id"], by_amount[990]["id"]}

    again = await send(clerk, raw, await form_token(clerk, PAGE + "?lang=en"))
    assert "This statement was imported before: nothing new." in await (await clerk.get(again.headers["Location"])
                                                                        ).text()


async def test_a_forged_or_broken_upload_stores_nothing(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    raw = camt("camt053_001_08.xml", kassenzeichen="X-1", partial="1.00", e2e="E", returned="2.00")
    before = bank_rows(sample_hub.db)
    assert (await send(clerk, raw)).status == 403  # no form token
    assert (await send(clerk, raw, "wrong-token")).status == 403
    assert (await send(clerk, raw, await form_token(clerk, PAGE), Origin="https://evil.example")).status == 403
    latin1 = await send(clerk, "Überweisung".encode("latin-1"), await form_token(clerk, PAGE))
    assert latin1.status == 422 and "camt.053-Datei" in error_of(await latin1.text())
    hostile = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    refused = await send(clerk, hostile, await form_token(clerk, PAGE))
    assert refused.status == 422 and "root:" not in await refused.text()
    big = await send(clerk, b"<x>" + b" " * (1024 * 1024 + 20_000) + b"</x>", await form_token(clerk, PAGE))
    assert big.status in (403, 413)
    assert bank_rows(sample_hub.db) == before


async def test_a_wrong_match_is_taken_back_from_the_page_and_forged_posts_change_nothing(sample_hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    clerk.customer = sample_hub.db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]
    await call(clerk, "PUT", f"/organizers/{sample_hub.ids['museum_organizer']}/sepa-account",
               {"iban": "DE89370400440532013000"}, status=200)
    transfer = await order(clerk, "transfer", product=3)
    invoice = await call(clerk, "POST", f"/orders/{transfer['id']}/invoices", {}, status=201)
    raw = camt("camt053_001_08.xml", kassenzeichen=invoice["kassenzeichen"], partial="10.00", e2e="UNKNOWN",
               returned="5.00")
    assert (await send(clerk, raw, await form_token(clerk, PAGE))).status == 303
    [entry] = (await call(clerk, "GET", "/bank-entries?state=matched", status=200))["items"]
    html = await (await clerk.get(PAGE)).text()
    assert f'data-matched="{entry["reference"]}"' in html and transfer["number"] in html
    assert "Zurücknehmen" in html and "per Kassenzeichen" in html
    action = f"{PAGE}/entries/{entry['id']}/take-back"

    before = bank_rows(sample_hub.db)
    assert (await clerk.post(action, data={"note": "x"}, allow_redirects=False)).status == 403  # no form token
    assert (await clerk.post(action, data={"csrf": "wrong", "note": "x"}, allow_redirects=False)).status == 403
    foreign = await clerk.post(action, data={"csrf": await form_token(clerk, PAGE)}, allow_redirects=False,
                               headers={"Origin": "https://evil.example"})
    assert foreign.status == 403
    stranger = await aiohttp_client(clerk.server.app)  # not logged in: to the login page
    assert (await stranger.post(action, data={"csrf": "x"}, allow_redirects=False)).status in (302, 303, 403)
    assert bank_rows(sample_hub.db) == before
    assert (await call(clerk, "GET", f"/bank-entries/{entry['id']}", status=200))["state"] == "matched"

    done = await clerk.post(action, data={"csrf": await form_token(clerk, PAGE), "note": "falsche Bestellung"},
                            allow_redirects=False)
    assert done.status == 303
    html = await (await clerk.get(done.headers["Location"])).text()
    assert "Die Zuordnung ist zurückgenommen" in html and f'data-entry="{entry["reference"]}"' in html
    state = await call(clerk, "GET", f"/orders/{transfer['id']}/payment-state", status=200)
    assert (state["state"], state["paid_cents"]) == ("open", 0)
    again = await clerk.post(action, data={"csrf": await form_token(clerk, PAGE)}, allow_redirects=False)
    assert again.status == 409
    assert "Nur eine zugeordnete Gutschrift kann zurückgenommen werden" in error_of(await again.text())
    english = await clerk.post(action, data={"csrf": await form_token(clerk, PAGE + "?lang=en")},
                               allow_redirects=False)
    assert "only a matched or assigned credit is taken back" in error_of(await english.text())
