"""The office app's Catalog screen: the sample's venues, products with prices as the catalog's price
functions give them, seating plans and upcoming performances, read only, paged, with API links.

Real sample hub database, the office app over loopback HTTP; the expected prices come from
`core.catalog.pricing.price_table` and the products' own `price_cents`, the expected
performances straight from the database.
"""

from __future__ import annotations

import html

import pytest

from core.base.clock import LOCAL_TZ, iso, parse_iso
from core.catalog import pricing
from hub.app import make_app
from hub.web.office import catalog
from hub.web.office.views import _euros
from tests.helpers import call
from tests.office import Clock, signed_in

PAGE = "/office/catalog"


async def page_of(client, lang: str = "en", **query: str) -> str:
    response = await client.get(PAGE, params={"lang": lang, **query})
    assert response.status == 200, await response.text()
    return html.unescape(await response.text())


def names(db, table: str, limit: int = catalog.SIZE) -> list[str]:
    return [r["name"] for r in db.execute(f"SELECT name FROM {table} ORDER BY name LIMIT ?", (limit,))]


async def test_the_catalog_shows_the_samples_venues_and_products_with_their_prices(aiohttp_client, sample_hub):
    client = await signed_in(aiohttp_client, sample_hub, role="office")
    db = sample_hub.db
    for lang, euros in (("en", _euros("en")), ("de", _euros("de"))):
        page = await page_of(client, lang)
        for name in names(db, "venues") + names(db, "seating_plans"):
            assert name in page
        for product in db.execute("SELECT name, price_cents FROM annual_products ORDER BY name LIMIT 10"):
            assert product["name"] in page and euros(product["price_cents"]) in page
        for product in db.execute("SELECT id, name FROM subscription_products ORDER BY name LIMIT 10"):
            assert product["name"] in page
            for zone in pricing.price_table(db, product["id"])["zones"]:
                assert euros(zone["base_cents"]) in page
                for tier in zone["tiers"]:
                    assert f"{tier['name']} {euros(tier['price_cents'])}" in page
    assert "12 months from first use" in await page_of(client, "en")
    assert "12 Monate ab erster Nutzung" in await page_of(client, "de")


async def test_only_upcoming_performances_in_local_time_paged(aiohttp_client, sample_hub):
    """On a fixed day inside the sample's season 2026/27 (the office clock), so that both past and
    upcoming performances exist whatever the real date."""
    client = await signed_in(aiohttp_client, sample_hub, role="office", clock=Clock())
    now = iso(client.clock())
    upcoming = sample_hub.db.execute("SELECT title, starts_at FROM performances WHERE active = 1 AND starts_at >= ? "
                                     "ORDER BY starts_at, id", (now,)).fetchall()
    past = sample_hub.db.execute("SELECT starts_at FROM performances WHERE starts_at < ?", (now,)).fetchall()
    assert len(upcoming) > catalog.SIZE and past  # the sample spans the season: both kinds exist

    def local(row) -> str:
        return parse_iso(row["starts_at"]).astimezone(LOCAL_TZ).strftime("%d.%m.%Y %H:%M")

    first = await page_of(client)
    assert local(upcoming[0]) in first and local(upcoming[catalog.SIZE]) not in first
    assert not any(local(p) in first for p in past)
    second = await page_of(client, performances="2")
    assert local(upcoming[catalog.SIZE]) in second and local(upcoming[0]) not in second
    assert "/api/v1/openapi.json#/paths/~1api~1v1~1performances~1{id}" in second
    assert "editing is done through the API for now" in second
    assert "Ändern geht vorerst über die API" in await page_of(client, "de")
    # a page number that is no number is the first page, not an error
    assert local(upcoming[0]) in await page_of(client, performances="-1); DROP TABLE x")
    assert local(upcoming[0]) in await page_of(client, performances="99999999999999999999")


async def test_names_are_escaped_and_the_page_needs_a_login(aiohttp_client, sample_hub):
    api = await aiohttp_client(make_app(sample_hub.db))
    api.hub = sample_hub
    organizer = sample_hub.db.execute("SELECT id FROM organizers LIMIT 1").fetchone()["id"]
    await call(api, "POST", "/venues", {"organizer_id": organizer, "name": "<b>Aula</b>", "kind": "museum",
                                          "address": {"street": "Am Markt 1", "postcode": "28195", "town": "Bremen",
                                                      "country": "DE"}}, status=201)
    client = await signed_in(aiohttp_client, sample_hub, role="office")
    raw = await (await client.get(PAGE)).text()
    assert "<b>Aula</b>" not in raw and "&lt;b&gt;Aula&lt;/b&gt;" in raw
    anonymous = await aiohttp_client(make_app(sample_hub.db))
    response = await anonymous.get(PAGE, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/office/login")


@pytest.mark.slow
def test_catalog_in_chromium_de_and_en(tmp_path):
    """The sample's catalog, read only, German then English; the next page of performances."""
    from playwright.sync_api import expect

    from tests.office import SHOTS, office_in_chromium

    for old in SHOTS.glob("catalog-*.png"):
        old.unlink(missing_ok=True)
    with office_in_chromium(tmp_path, sample=True) as served:
        page = served.page
        page.click("#nav >> text=Katalog")
        expect(page.locator("#read-only")).to_contain_text("Ändern geht vorerst über die API")
        expect(page.locator("#annual")).to_contain_text("Jahreskarte Stadtmuseum")
        page.screenshot(path=SHOTS / "catalog-1-de.png")
        page.locator("#subscriptions").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "catalog-2-subscriptions-de.png")
        page.goto(served.hub.url + "/office/catalog?lang=en")
        if page.locator("#next-performances").count():  # while the sample's season has 11+ to come
            page.click("#next-performances")
            expect(page.locator("#performances")).to_contain_text("Page 2")
        page.locator("#performances").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "catalog-3-performances-en.png")
        page.screenshot(path=SHOTS / "catalog-4-full-en.png", full_page=True)


async def test_every_edit_link_names_an_operation_of_the_api_document(aiohttp_client, sample_hub):
    client = await aiohttp_client(make_app(sample_hub.db))
    document = await (await client.get("/api/v1/openapi.json")).json()
    for section in catalog.SECTIONS:
        method, path = section.edit.split(" ")
        assert method.lower() in document["paths"]["/api/v1" + path], section.edit
        pointer = catalog.api_link(section.edit).split("#/paths/")[1].replace("~1", "/").replace("~0", "~")
        assert pointer in document["paths"]
