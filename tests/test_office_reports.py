"""The office's report screens (S14): the list of reports, one report sorted by a heading and filtered
by the form's rows, the refusal of a wrong filter in the page's language, the files as downloads,
and no page without a session. Real sessions over HTTP; one walk in Chromium, German and English,
with screenshots."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.office import SHOTS, signed_in
from tests.test_reports import RING_B, build


async def test_a_report_sorts_filters_and_downloads_in_the_office(sample_hub, aiohttp_client):
    data = build(sample_hub)
    clerk = await signed_in(aiohttp_client, sample_hub, role="office")
    index = await (await clerk.get("/office/reports")).text()
    assert 'href="/office/reports/revenue"' in index and "Umsätze pro Abo" in index
    resp = await clerk.get("/office/reports/revenue", params={"sort": "-revenue_cents", "c1": "sold", "o1": ">=",
                                                             "v1": "1"})
    page = await resp.text()
    assert resp.status == 200
    # ring B (552,00 €) before the vouchers (120,00 €) before ring A (0,00 €: voided); the rest sold nothing
    assert page.index(RING_B) < page.index("Wahlgutschein 6er") < page.index("Abo-Ring A")
    assert "552,00 €" in page and "Abo-Ring C" not in page and 'aria-sort="descending"' in page
    wrong = await clerk.get("/office/reports/revenue", params={"c1": "sold", "o1": "=", "v1": "viele"})
    assert wrong.status == 422 and "keine ganze Zahl" in await wrong.text()
    customer = await clerk.get("/office/reports/customer")
    assert customer.status == 422 and "braucht einen Filter customer_number" in await customer.text()
    one = await (await clerk.get("/office/reports/customer", params={"c1": "customer_number", "v1": data["b"]})).text()
    assert "Schüler/Studierende" in one and "184,00 €" in one
    got = await clerk.get("/office/reports/revenue/file", params={"format": "xlsx", "sort": "-revenue_cents"})
    assert got.status == 200 and "tessera-revenue.xlsx" in got.headers["Content-Disposition"]
    assert "xl/worksheets/sheet1.xml" in zipfile.ZipFile(io.BytesIO(await got.read())).namelist()
    csv_de = await clerk.get("/office/reports/revenue/file", params={"format": "csv-de", "c1": "product",
                                                                     "v1": RING_B})
    assert (await csv_de.read()).decode("utf-8-sig").split("\r\n")[1] == "2026/27;Abo-Ring B;ring;2;1;0;1;0;0;552,00"
    bad = await clerk.get("/office/reports/revenue/file", params={"format": "docx"}, allow_redirects=False)
    assert bad.status == 400
    refused = await clerk.get("/office/reports/revenue/file", params={"format": "csv", "sort": "nope"},
                              allow_redirects=False)
    assert refused.status == 303 and refused.headers["Location"].startswith("/office/reports/revenue?")


async def test_no_report_screen_without_a_session(sample_hub, aiohttp_client):
    from hub.app import make_app
    client = await aiohttp_client(make_app(sample_hub.db))
    for path in ("/office/reports", "/office/reports/revenue", "/office/reports/revenue/file?format=csv"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status in (302, 303) and "/office/login" in resp.headers["Location"], path


def _prepare(hub_dir: Path):
    """The test dataset of test_reports, made in the served hub's database before it starts."""
    def prepare(db) -> None:
        ids = {"plans": {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM seating_plans")},
               "subscriptions": {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM subscription_products")},
               "rings": {"B": [r["performance_id"] for r in db.execute(
                   "SELECT sp.performance_id FROM subscription_performances sp JOIN subscription_products p "
                   "ON p.id = sp.product_id WHERE p.name = ? ORDER BY sp.position", (RING_B,))]}}
        build(SimpleNamespace(db=db, dir=hub_dir, ids=ids))
    return prepare


@pytest.mark.slow
def test_the_reports_in_chromium_german_and_english(tmp_path):
    from tests.office import office_in_chromium

    with office_in_chromium(tmp_path, prepare=_prepare(tmp_path / "hub")) as served:
        page, url = served.page, served.hub.url
        page.click("nav >> text=Berichte")
        page.wait_for_selector("#report-bookings")
        page.screenshot(path=SHOTS / "reports-1-list-de.png", full_page=True)
        page.click("#report-bookings")
        page.select_option("#c1", "venue")
        page.fill("#v1", "Großes Haus")
        page.select_option("#c2", "starts_at")
        page.select_option("#o2", ">=")
        page.fill("#v2", "01.11.2026")
        page.click("#apply")
        page.click("th >> [data-sort=customer]")
        page.wait_for_selector("th[aria-sort=ascending] >> [data-sort=customer]")
        cells = page.locator("#rows tbody tr td:nth-child(14)").all_inner_texts()
        # ring B from 01.11.2026: 7 dates x 2 subscribers, Schäfer before Zimmermann
        assert len(cells) == 14 and cells == sorted(cells, key=str.casefold)
        page.screenshot(path=SHOTS / "reports-2-bookings-de.png", full_page=True)
        with page.expect_download() as download:
            page.click("#file-xlsx")
        assert download.value.suggested_filename == "tessera-bookings.xlsx"
        page.goto(url + "/office/reports/revenue?lang=en&sort=-revenue_cents")
        page.wait_for_selector("text=Revenue per subscription product")
        assert page.locator("#rows tbody tr").count() == 6
        page.screenshot(path=SHOTS / "reports-3-revenue-en.png", full_page=True)
        page.goto(url + "/office/reports/stock?c1=free&o1=%3E%3D&v1=lots")
        page.wait_for_selector("#error")
        page.screenshot(path=SHOTS / "reports-4-refused-en.png", full_page=True)
        assert Path(SHOTS / "reports-2-bookings-de.png").stat().st_size > 10_000
