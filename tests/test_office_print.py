"""The office app's Print batches screen and the API's PDF download: a batch made from the queued
jobs through POST /print-batches, its PDF downloaded (from the office page and from
GET /print-batches/{id}/pdf), rendered with pypdfium2 and its QR codes decoded with zxing-cpp to
the cards' codes; a printer that fails listed with its error and retried; hostile batch ids.

Real parts: the sample hub's SQLite file, the hub's app on loopback, the real renderer and the
folder printer (a regular file where its folder should be makes it fail, as in the print tests).
"""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from hub.app import make_app
from hub.web import office as office_app
from tests.helpers import call, problem
from tests.office import Clock, log_in, post_form, ready
from tests.test_print_batches import fulfilment, phone_order, qr_codes, write_settings

FOREIGN = {"Origin": "https://evil.example"}
PAGE = "/office/print"


async def client_for(aiohttp_client, hub, role: str = "office"):
    """The hub's app (made after hub.toml is written) with staff of *role* logged in."""
    app = make_app(hub.db)
    app[office_app.CLOCK] = Clock()
    client = await aiohttp_client(app)
    client.hub, client.clock = hub, app[office_app.CLOCK]
    await ready(client, role, role)
    assert (await log_in(client, role)).status == 303
    return client


@pytest.fixture
async def office(aiohttp_client, sample_hub):
    return await client_for(aiohttp_client, sample_hub)


def batches(client) -> list[dict]:
    return client.hub.db.execute("SELECT * FROM print_batches").fetchall()


async def test_a_batch_made_in_the_office_prints_the_queued_cards_and_its_pdf_downloads(office):
    hub = office.hub
    cards = await phone_order(office, ["Erika Müller", "Jürgen Weiß", "Ada <b>Lovelace</b>"], "mail")
    page = await (await office.get(PAGE, params={"lang": "en"})).text()
    assert "Print jobs waiting (6)" in page and "Ada" not in page  # 3 cards + 3 carriers; no holder names shown
    made = await post_form(office, PAGE, PAGE + "/batch", {"kind": "card"})
    assert made.status == 303, await made.text()  # then a GET: a reload prints nothing again
    text = await (await office.get(made.headers["Location"])).text()
    assert "Batch printed: 3 cards." in text  # English since ?lang=en (a cookie)
    (batch,) = batches(office)
    assert {fulfilment(hub.db, c["id"]) for c in cards} == {"printed"}
    assert f'href="/office/print/{batch["id"]}.pdf"' in text

    download = await office.get(f"{PAGE}/{batch['id']}.pdf")
    pdf = await download.read()
    assert download.status == 200 and download.headers["Content-Type"] == "application/pdf"
    assert download.headers["Content-Disposition"] == f'attachment; filename="tessera-print-{batch["id"]}.pdf"'
    assert pdf.startswith(b"%PDF")
    assert sorted(page[0] for page in qr_codes(pdf)) == sorted(c["code"] for c in cards)
    # the hub's own copy, named after the batch id, is what the office serves
    assert (hub.dir / "print-batches" / f"{batch['id']}.pdf").read_bytes() == pdf

    # the API's operation serves the same bytes
    response = await office.get(f"/api/v1/print-batches/{batch['id']}/pdf", headers=hub.headers())
    assert response.status == 200 and await response.read() == pdf
    assert response.headers["Content-Disposition"].startswith("attachment")

    carriers = await post_form(office, PAGE, PAGE + "/batch", {"kind": "carrier"})
    assert carriers.status == 303 and len(batches(office)) == 2
    listed = await (await office.get(PAGE)).text()
    assert listed.count('download id="pdf-') == 2
    nothing = await post_form(office, PAGE, PAGE + "/batch", {"kind": "card"})
    assert nothing.status == 200 and "No jobs of this kind are waiting." in await nothing.text()


async def test_hostile_batch_ids_are_404_and_read_no_file(office):
    hub = office.hub
    secret = hub.dir / "secret.pdf"
    secret.write_bytes(b"%PDF-secret")
    for odd in ("../secret", "..%2Fsecret", "%2e%2e%2fsecret", "1' OR '1'='1", "0190b1f2-0000-7000-8000-000000000000",
                "..%5C..%5Csecret"):
        response = await office.get(f"{PAGE}/{odd}.pdf")
        assert response.status in (400, 404), odd
        assert b"%PDF" not in await response.read()
        api = await office.get(f"/api/v1/print-batches/{odd}/pdf", headers=hub.headers())
        assert api.status in (400, 404), odd
        assert b"%PDF" not in await api.read()
    await problem(office, "GET", "/print-batches/0190b1f2-0000-7000-8000-000000000000/pdf", status=404,
                  slug="not-found")
    # without a token, the API refuses before it looks
    assert (await office.get("/api/v1/print-batches/0190b1f2-0000-7000-8000-000000000000/pdf")).status == 401


async def test_a_failing_printer_is_listed_with_its_error_and_retried(aiohttp_client, sample_hub, tmp_path):
    blocker = tmp_path / "share"
    blocker.write_text("not a folder")  # nobody can create share/out below a regular file
    out = blocker / "out"
    profile = tmp_path / "hotfolder.toml"
    profile.write_text(f'kind = "card_printer"\nmodel = "Test hot folder"\ndriver = "folder"\n\n'
                       f'[folder]\npath = "{out}"\nprefix = "test-"\n', encoding="utf-8")
    write_settings(sample_hub.dir, f'card_printer = "{profile}"\n')
    office = await client_for(aiohttp_client, sample_hub)
    cards = await phone_order(office, ["Eins <i>X</i>", "Zwei"], "pickup")

    failed = await post_form(office, PAGE, PAGE + "/batch", {"kind": "card"})
    page = html.unescape(await failed.text())
    assert failed.status == 200 and "Der Drucker hat 2 Auftrag/Aufträge abgelehnt" in page
    assert str(out) in page and "does not exist" in page  # the printer's own words
    assert all(c["number"] in page for c in cards)
    assert not batches(office) and {fulfilment(sample_hub.db, c["id"]) for c in cards} == {"personalized"}

    blocker.unlink()
    out.mkdir(parents=True)
    retried = await post_form(office, PAGE, PAGE + "/retry")
    assert retried.status == 200 and "2 Auftrag/Aufträge wieder in der Warteschlange." in await retried.text()
    printed = await post_form(office, PAGE, PAGE + "/batch", {"kind": "card"})
    assert printed.status == 303
    (batch,) = batches(office)
    assert Path(batch["target"]).parent == out
    assert {fulfilment(sample_hub.db, c["id"]) for c in cards} == {"printed"}


async def test_print_posts_need_the_form_token_the_origin_and_a_login(office, aiohttp_client, sample_hub):
    await phone_order(office, ["Ohne Token"], "pickup")
    assert (await office.post(PAGE + "/batch", data={"kind": "card"}, allow_redirects=False)).status == 403
    foreign = await post_form(office, PAGE, PAGE + "/batch", {"kind": "card"}, **FOREIGN)
    assert foreign.status == 403
    assert (await post_form(office, PAGE, PAGE + "/retry", **FOREIGN)).status == 403
    bad_kind = await post_form(office, PAGE, PAGE + "/batch", {"kind": "receipt<script>"})
    assert bad_kind.status == 422 and "<script>" not in await bad_kind.text()
    assert not batches(office)
    assert (await call(office, "GET", "/print-jobs?state=queued", status=200))["total"] == 1
    anonymous = await aiohttp_client(make_app(sample_hub.db))
    assert (await anonymous.get(PAGE, allow_redirects=False)).status == 303
    assert (await anonymous.post(PAGE + "/batch", data={"kind": "card"}, allow_redirects=False)).status == 303
    assert (await anonymous.get(PAGE + "/0190b1f2-0000-7000-8000-000000000000.pdf",
                                allow_redirects=False)).status == 303
    assert not batches(office)
