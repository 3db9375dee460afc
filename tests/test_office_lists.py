"""The office app's list screens: customers and orders, sorted, paged, filtered, as CSV, and
their detail pages; only for logged-in staff.

Real sample hub database, real HTTP on loopback (aiohttp test server), orders placed through
the API. The Playwright test at the end serves the hub as a process and uses Chromium.
"""

from __future__ import annotations

import csv
import html
import io
import re
import time
import unicodedata

import pytest

from core.base import sql
from hub.app import make_app
from hub.web import office
from tests.helpers import call, table_counts
from tests.office import SHOTS, Clock, log_in, ready

UNKNOWN = "01900000-0000-7000-8000-000000000000"
HOSTILE = ("name; DROP TABLE customers", "-x'--", "number COLLATE NOCASE", "1", "--number", "")
CUSTOMER_KEYS = ("number", "name", "town", "email")
ORDER_KEYS = ("number", "date", "channel", "customer", "total", "state")
ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def nocase(db, text: str) -> str:
    """A sort key for `COLLATE NOCASE` as each backend orders it: SQLite folds ASCII letters only
    (Özdemir after the z's); PostgreSQL's ICU `nocase` ignores case and, at the first level,
    accents (Özdemir among the O's), the order people expect (docs/postgresql.md)."""
    if not sql.is_postgresql(db):
        return text.translate(ASCII_FOLD)
    letters = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)).casefold()
    return "".join(chr(1 + ICU_PUNCTUATION.index(c)) if c in ICU_PUNCTUATION else c for c in letters)


# ICU's root order of the spaces, punctuation and symbols our sample data holds: all before the
# digits and letters (an e-mail's '@' before '6'), in this order, unlike their code points
ICU_PUNCTUATION = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$"


@pytest.fixture
async def office_client(aiohttp_client, sample_hub):
    """The sample hub's app, staff `admin` logged in."""
    app = make_app(sample_hub.db)
    app[office.CLOCK] = Clock()
    client = await aiohttp_client(app)
    client.hub, client.clock = sample_hub, app[office.CLOCK]
    await ready(client)
    assert (await log_in(client)).status == 303
    return client


def rows_of(page: str) -> list[list[str]]:
    """The cells of the list table's body rows, as text."""
    body = re.search(r'<table id="rows">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row,
                                                                                       re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


async def listed(client, path: str, **query: str | int) -> list[list[str]]:
    response = await client.get(path, params={"lang": "de", **query})
    assert response.status == 200, await response.text()
    return rows_of(await response.text())


async def phone_orders(client) -> list[dict]:
    """Three phone orders through the API: two for a Müller, one for someone else."""
    customers = (await call(client, "GET", "/customers?q=Müller&limit=2", status=200))["items"]
    other = (await call(client, "GET", "/customers?q=Bauer&limit=1", status=200))["items"][0]
    product = client.hub.ids["annual_products"][0]
    placed = []
    for customer, holders in ((customers[0], ["Greta Müller"]), (customers[1], ["Jörg Müller", "Ute Müller"]),
                              (other, ["Clara Bauer"])):
        body = {"lines": [{"product_id": product, "quantity": len(holders), "holders": [{"name": n} for n in holders]}],
                "customer_id": customer["id"], "delivery": "mail", "payment_method": "transfer"}
        placed.append(await call(client, "POST", "/orders", body, status=201))
    return placed


# --- only for staff -------------------------------------------------------------------------------------------


async def test_every_list_detail_and_csv_needs_a_login(aiohttp_client, sample_hub):
    client = await aiohttp_client(make_app(sample_hub.db))
    customer = sample_hub.ids["first_customer"]
    for path in ("/office/customers", "/office/customers.csv", f"/office/customers/{customer}",
                 "/office/orders", "/office/orders.csv?channel=phone", f"/office/orders/{UNKNOWN}"):
        response = await client.get(path, allow_redirects=False)
        assert (response.status, response.headers.get("Location")) == (303, "/office/login"), path
        client.session.cookie_jar.update_cookies({"tessera_office": "not-a-session"})
        expired = await client.get(path, allow_redirects=False)
        assert (expired.status, expired.headers["Location"]) == (303, "/office/login?expired=1"), path
        client.session.cookie_jar.clear()


async def test_the_navigation_bar_leads_to_the_lists(office_client):
    page = await (await office_client.get("/office/?lang=en")).text()
    nav = re.search(r'<nav class="main" id="nav">(.*?)</nav>', page, re.S).group(1)
    # the first three entries; later screens add more
    assert re.findall(r'href="([^"]+)"', nav)[:3] == ["/office/", "/office/customers", "/office/orders"]
    assert 'aria-current="page">Overview' in nav
    listing = await (await office_client.get("/office/customers")).text()
    assert 'href="/office/customers" aria-current="page">Customers' in listing


# --- customers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", CUSTOMER_KEYS)
async def test_customers_sort_by_each_allowed_column_both_ways(office_client, key):
    column = CUSTOMER_KEYS.index(key)

    def value(row: list[str]) -> str:  # SQLite NOCASE folds ASCII only; `town` compares as is
        text = row[column].split(",")[0] if key == "name" else row[column]
        return text if key == "town" else nocase(office_client.hub.db, text)

    for sort, reverse in ((key, False), ("-" + key, True)):
        rows = await listed(office_client, "/office/customers", sort=sort, size=200)
        assert len(rows) == 200
        assert [value(r) for r in rows] == sorted((value(r) for r in rows), reverse=reverse), sort


async def test_a_hostile_or_unknown_sort_gives_the_default_order_not_an_error(office_client):
    before = table_counts(office_client.hub.db)
    default = await listed(office_client, "/office/customers", size=50)
    assert [r[1] for r in default] == sorted((r[1] for r in default),
                                             key=lambda n: nocase(office_client.hub.db, n.split(",")[0]))
    for sort in HOSTILE:
        assert await listed(office_client, "/office/customers", sort=sort, size=50) == default, sort
        response = await office_client.get("/office/orders", params={"sort": sort})
        assert response.status == 200, sort
        assert (await office_client.get("/office/customers.csv", params={"sort": sort})).status == 200
    assert table_counts(office_client.hub.db) == before


async def test_pages_split_the_list_without_gaps_or_overlaps(office_client):
    whole = await listed(office_client, "/office/customers", sort="number", size=30)
    first = await listed(office_client, "/office/customers", sort="number", size=12, page=1)
    second = await listed(office_client, "/office/customers", sort="number", size=12, page=2)
    third = await listed(office_client, "/office/customers", sort="number", size=12, page=3)
    assert first + second + third[:6] == whole
    page = await (await office_client.get("/office/customers?sort=number&size=12&page=2&lang=en")).text()
    assert "Page 2 of 21 (250 entries)" in page
    assert 'id="prev" href="?sort=number&amp;size=12&amp;page=1"' in page
    assert 'id="next" href="?sort=number&amp;size=12&amp;page=3"' in page
    for nonsense in ("0", "-3", "x", "99999999999999999999"):
        assert (await office_client.get("/office/customers", params={"page": nonsense, "size": nonsense})).status \
            == 200


async def test_the_customer_filter_is_the_api_search_with_umlauts(office_client):
    api_found = await call(office_client, "GET", "/customers?q=Müller&limit=200", status=200)
    rows = await listed(office_client, "/office/customers", q="Müller", size=200)
    assert api_found["total"] >= 2 and len(rows) == api_found["total"]
    assert sorted(r[0] for r in rows) == sorted(c["number"] for c in api_found["items"])
    assert all("Müller" in r[1] for r in rows)
    assert await listed(office_client, "/office/customers", q="müller", size=200) == rows
    assert await listed(office_client, "/office/customers", q="Müller KD-2026", size=200) == rows
    assert await listed(office_client, "/office/customers", q="%", size=5) == []  # no wildcard
    page = await (await office_client.get("/office/customers", params={"q": "Müller", "sort": "-town"})).text()
    assert 'value="Müller"' in page and 'href="?q=M%C3%BCller&amp;sort=town"' in page


async def test_the_csv_holds_the_filtered_sorted_rows_of_all_pages_as_utf8_with_bom(office_client):
    query = {"q": "Müller", "sort": "-town", "lang": "de"}
    rows = await listed(office_client, "/office/customers", **query, size=200)
    response = await office_client.get("/office/customers.csv", params={**query, "size": 3, "page": 2})
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="tessera-customers.csv"'
    raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert table[0] == ["Nummer", "Name", "Ort", "E-Mail"]
    assert table[1:] == rows and len(rows) > 3
    english = await office_client.get("/office/customers.csv", params={**query, "lang": "en"})
    table = list(csv.reader(io.StringIO((await english.read()).decode("utf-8-sig"))))
    assert table[0] == ["Number", "Name", "Town", "E-mail"] and table[1:] == rows
    everyone = (await (await office_client.get("/office/customers.csv?sort=number&size=5")).read()).decode("utf-8-sig")
    assert len(everyone.splitlines()) == 1 + 250  # all pages, more than a screen's 200
    assert len(await listed(office_client, "/office/customers", size=10_000)) == 200


async def test_a_csv_cell_never_becomes_a_spreadsheet_formula(office_client):
    body = {"first_name": "@SUM(A1)", "last_name": '=HYPERLINK("http://evil.example","Müller")',
            "address": {"street": "Weg 1", "postcode": "28195", "town": "-2+3", "country": "DE"}}
    await call(office_client, "POST", "/customers", body, status=201)
    raw = await (await office_client.get("/office/customers.csv", params={"q": "HYPERLINK", "lang": "en"})).read()
    (row,) = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))[1:]
    assert row[1:3] == ['\'=HYPERLINK("http://evil.example","Müller"), @SUM(A1)', "'-2+3"]


async def test_a_customer_detail_shows_address_orders_and_cards(office_client):
    placed = await phone_orders(office_client)
    customer = placed[1]["customer_id"]
    page = await (await office_client.get(f"/office/customers/{customer}?lang=de")).text()
    assert placed[1]["number"] in page and f'href="/office/orders/{placed[1]["id"]}"' in page
    assert placed[0]["number"] not in page
    cards = re.search(r'<table id="cards">(.*?)</table>', page, re.S).group(1)
    assert "Jörg Müller" in cards and "Ute Müller" in cards and "Jahreskarte" in cards
    assert re.search(r"\d\d\.\d\d\.\d{4} – \d\d\.\d\d\.\d{4}", cards)


# --- orders ---------------------------------------------------------------------------------------------------


async def test_orders_list_filters_by_text_and_channel_and_sorts(office_client):
    placed = await phone_orders(office_client)
    before = table_counts(office_client.hub.db)
    rows = await listed(office_client, "/office/orders")
    assert [r[0] for r in rows[:3]] == [p["number"] for p in reversed(placed)]  # newest first
    assert {r[2] for r in rows[:3]} == {"Telefon / Büro"} and {r[5] for r in rows[:3]} == {"Zahlung läuft"}
    muellers = await listed(office_client, "/office/orders", q="Müller")
    assert sorted(r[0] for r in muellers) == sorted(p["number"] for p in placed[:2])
    assert await listed(office_client, "/office/orders", q="Müller", channel="phone") == muellers
    assert await listed(office_client, "/office/orders", q="Müller", channel="shop") == []
    assert await listed(office_client, "/office/orders", q="Müller", channel="'; DROP TABLE orders") == muellers
    assert await listed(office_client, "/office/orders", q=placed[2]["number"]) == [rows[0]]
    for key in ORDER_KEYS:
        for sort in (key, "-" + key):
            assert len(await listed(office_client, "/office/orders", sort=sort)) == len(rows), sort
    by_total = await listed(office_client, "/office/orders", sort="-total")
    assert by_total[0][0] == placed[1]["number"]  # two cards
    assert table_counts(office_client.hub.db) == before
    csv_text = (await (await office_client.get("/office/orders.csv?q=Müller&lang=en")).read()).decode("utf-8-sig")
    assert [r[0] for r in list(csv.reader(io.StringIO(csv_text)))[1:]] == [r[0] for r in muellers]


async def test_an_order_detail_shows_lines_and_payments(office_client):
    placed = (await phone_orders(office_client))[1]
    page = await (await office_client.get(f"/office/orders/{placed['id']}?lang=en")).text()
    lines = re.search(r'<table id="lines">(.*?)</table>', page, re.S).group(1)
    assert "Jörg Müller" in lines and "Ute Müller" in lines
    payments = re.search(r'<table id="payments">(.*?)</table>', page, re.S).group(1)
    assert "transfer" in payments
    assert f'href="/office/customers/{placed["customer_id"]}"' in page
    assert re.search(r'<span id="state">payment pending</span>', page)


async def test_an_unknown_detail_is_404(office_client):
    for path in (f"/office/customers/{UNKNOWN}", f"/office/orders/{UNKNOWN}", "/office/orders/not-an-id",
                 "/office/customers/'%20OR%201=1"):
        response = await office_client.get(path)
        assert response.status == 404, path


# --- in a browser ---------------------------------------------------------------------------------------------


def api_order(url: str, token: str, ids: dict) -> dict:
    """A phone order for a Müller through the served hub's API."""
    import json
    import urllib.request

    def api(method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(url + "/api/v1" + path, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            data=json.dumps(body).encode() if body else None)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    customer = api("GET", "/customers?q=M%C3%BCller&limit=1")["items"][0]
    return api("POST", "/orders", {"lines": [{"product_id": ids["annual_products"][0], "quantity": 2,
                                              "holders": [{"name": "Jörg Müller"}, {"name": "Ute Müller"}]}],
                                   "customer_id": customer["id"], "delivery": "mail", "payment_method": "transfer"})


@pytest.mark.slow
def test_customers_in_chromium_filter_sort_and_detail(tmp_path):
    from playwright.sync_api import expect

    from tests.office import office_in_chromium

    started = time.monotonic()
    with office_in_chromium(tmp_path) as served:
        page, hub = served.page, served.hub
        order = api_order(hub.url, served.token, served.ids)
        page.click("#nav >> text=Kunden")
        expect(page.locator("#page-of")).to_contain_text("250 Einträge")
        page.screenshot(path=SHOTS / "lists-1-customers-de.png")
        page.fill("#q", "Müller")
        page.click("#apply")
        expect(page.locator("#rows tbody tr").first).to_contain_text("Müller")
        page.click("th a[data-sort=town]")
        page.click("th a[data-sort=town]")
        expect(page.locator("th[aria-sort=descending]")).to_contain_text("Ort")
        towns = page.locator("#rows tbody tr td:nth-child(3)").all_inner_texts()
        assert towns == sorted(towns, reverse=True) and len(towns) >= 2
        page.screenshot(path=SHOTS / "lists-2-mueller-by-town-de.png")
        page.locator("#rows tbody tr a").first.click()
        expect(page.locator("#title")).to_contain_text("Müller")
        page.screenshot(path=SHOTS / "lists-3-customer-de.png")
        page.click("#lang")
        expect(page.locator("#h-address")).to_have_text("Address")
        page.screenshot(path=SHOTS / "lists-4-customer-en.png")
        page.click("#nav >> text=Customers")
        page.fill("#q", "Müller")
        page.click("#apply")
        expect(page.locator("#page-of")).to_contain_text("entries")
        page.screenshot(path=SHOTS / "lists-5-customers-en.png")
        page.click("#nav >> text=Orders")
        page.select_option("#channel", "phone")
        page.click("#apply")
        expect(page.locator("#rows tbody tr")).to_have_count(1)
        page.screenshot(path=SHOTS / "lists-6-orders-en.png")
        page.click(f"text={order['number']}")
        expect(page.locator("#lines")).to_contain_text("Jörg Müller")
        page.screenshot(path=SHOTS / "lists-7-order-en.png")
    print(f"office lists in Chromium: {time.monotonic() - started:.1f} s; screenshots in {SHOTS}")
