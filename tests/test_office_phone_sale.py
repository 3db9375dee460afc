"""The office phone sale of annual tickets (A6, issue 12) and staff personalization, over real
HTTP on loopback against the sample hub: the form, its summary with the catalog's prices, the
one-time confirmation, hostile input, forged posts; and a run in Chromium."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from core.base.clock import utcnow
from core.base.node import this_node
from core.cards import cards
from core.sales import orders
from core.sales.orders import LineIn, OrderIn
from tests.conftest import prepared_sample_hub
from tests.helpers import call, table_counts
from tests.office import SHOTS, form_token, office_in_chromium, post_form, signed_in, staff_session

VERBUND, STADTMUSEUM_ONLY, ERMAESSIGT = 0, 1, 2  # sample products: 0 and 2 sold by phone, 1 not
NEW = "/office/orders/new"
WATCHED = ("orders", "order_lines", "payments", "cards", "customers", "print_jobs")


def counts(db) -> dict[str, int]:
    every = table_counts(db)
    return {t: every[t] for t in WATCHED}


@pytest.fixture
def sample_hub(request, tmp_path, backend):
    """A private copy of the sample hub with staff `office` logged in (made once per test process)."""
    hub, session = prepared_sample_hub(request, tmp_path, backend, "phone-sale", staff_session("office", "office"))
    hub.office_session = session
    return hub


@pytest.fixture
async def office(aiohttp_client, sample_hub):
    return await signed_in(aiohttp_client, sample_hub, role="office", session=sample_hub.office_session)


def customer_of(db) -> dict:
    return db.execute("SELECT id, number, last_name FROM customers ORDER BY number LIMIT 1").fetchone()


def product(client, which: int = VERBUND) -> str:
    return client.hub.ids["annual_products"][which]


def sale_fields(client, holders: list[str], delivery: str = "mail", **extra: str) -> dict[str, str]:
    fields = {"customer_id": customer_of(client.hub.db)["id"], "product_0": product(client),
              "qty_0": str(len(holders)), "holders_shown": "1", "delivery": delivery,
              "payment_method": "transfer"}
    fields.update({f"holder_0_{k}": name for k, name in enumerate(holders)})
    fields.update(extra)
    return fields


async def summary(client, fields: dict[str, str], lang: str = "de") -> str:
    response = await post_form(client, NEW, f"{NEW}?lang={lang}", fields)
    assert response.status == 200, await response.text()
    return await response.text()


def nonce_of(html: str) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', html).group(1)


async def confirm(client, nonce: str, **headers: str):
    token = await form_token(client, NEW)
    return await client.post(NEW + "/confirm", data={"csrf": token, "nonce": nonce}, allow_redirects=False,
                             headers=headers)


async def test_a_phone_sale_with_two_holders_by_mail_makes_one_order_at_the_catalog_price(office):
    db = office.hub.db
    before = counts(db)
    first = await summary(office, sale_fields(office, ["Erika Mustermann", "Max Mustermann"])
                          | {"holders_shown": "", "holder_0_0": "", "holder_0_1": ""})
    assert "Karteninhaber/in 1" in first and "Karteninhaber/in 2" in first and 'name="nonce"' not in first
    # a forged price and total in the form are not read: the summary and the order use the catalog
    html = await summary(office, sale_fields(office, ["Erika Mustermann", "Max Mustermann"],
                                             price_0="1", total="1", total_cents="100", price_cents="1"))
    assert "65,00 €" in html and 'id="total">130,00 €' in html and "Erika Mustermann, Max Mustermann" in html
    assert counts(db) == before  # the summary stores nothing
    response = await confirm(office, nonce_of(html))
    assert response.status == 303
    order_id = response.headers["Location"].rsplit("/", 1)[1]
    order = orders.order_view(db, order_id)
    assert order["channel"] == "phone" and order["delivery"] == "mail" and order["total_cents"] == 2 * 6500
    assert order["customer_id"] == customer_of(db)["id"] and order["operator"] == "office"
    assert [i["card"]["holder_name"] for i in order["items"]] == ["Erika Mustermann", "Max Mustermann"]
    after = counts(db)
    assert (after["orders"] - before["orders"], after["cards"] - before["cards"]) == (1, 2)
    assert after["print_jobs"] - before["print_jobs"] == 4  # two cards and two carrier sheets (mail)
    page = await (await office.get(f"/office/orders/{order_id}")).text()
    for item in order["items"]:
        assert item["card"]["number"] in page
    assert "Erika Mustermann" in page and "personalisiert" in page


async def test_pickup_for_a_new_customer_in_english(office):
    db = office.hub.db
    before = counts(db)
    fields = sale_fields(office, ["Jane Doe"], delivery="pickup", customer_id="new", c_first_name="Jane",
                         c_last_name="Doe-Müller", c_street="Am Wall 1", c_postcode="28195", c_town="Bremen",
                         c_email="jane@example.org", c_phone="+49 421 1234", payment_method="card")
    html = await summary(office, fields, lang="en")
    assert "Summary" in html and "€65.00" in html and "pickup" in html and "is created when" in html
    assert counts(db) == before
    response = await confirm(office, nonce_of(html))
    assert response.status == 303
    order = orders.order_view(db, response.headers["Location"].rsplit("/", 1)[1])
    customer = db.execute("SELECT * FROM customers WHERE id = ?", (order["customer_id"],)).fetchone()
    assert customer["last_name"] == "Doe-Müller" and customer["email"] == "jane@example.org"
    assert order["delivery"] == "pickup" and order["payments"][0]["method"] == "card"
    after = counts(db)
    assert (after["customers"] - before["customers"], after["orders"] - before["orders"]) == (1, 1)
    assert after["print_jobs"] - before["print_jobs"] == 1  # the card, no carrier for pickup


async def test_two_products_number_the_holders_across_the_order(office):
    fields = sale_fields(office, ["A Eins", "B Zwei"], product_1=product(office, ERMAESSIGT), qty_1="1",
                         holder_1_0="C Drei")
    html = await summary(office, fields | {"holders_shown": ""})
    assert all(f"Karteninhaber/in {n}" in html for n in (1, 2, 3)) and "Karteninhaber/in 4" not in html
    html = await summary(office, fields)
    assert 'id="total">170,00 €' in html  # 2 x 65 + 40, from the catalog


async def test_the_same_confirmation_twice_or_at_once_makes_one_order(office):
    db = office.hub.db
    html = await summary(office, sale_fields(office, ["Erika Mustermann"]))
    before = counts(db)
    first = await confirm(office, nonce_of(html))
    again = await confirm(office, nonce_of(html))  # a reload of the POST
    assert first.status == again.status == 303 and first.headers["Location"] == again.headers["Location"]
    assert counts(db)["orders"] == before["orders"] + 1
    html = await summary(office, sale_fields(office, ["Max Mustermann"]))
    both = await asyncio.gather(confirm(office, nonce_of(html)), confirm(office, nonce_of(html)))  # double click
    assert {r.headers.get("Location") for r in both if r.status == 303} and counts(db)["orders"] == before[
        "orders"] + 2


async def test_an_unknown_confirmation_number_orders_nothing(office):
    before = counts(office.hub.db)
    response = await confirm(office, "forged-nonce")
    assert response.status == 409 and "nichts bestellt" in await response.text()
    assert counts(office.hub.db) == before


def _inactive_product(db) -> str:
    """A copy of the Verbund card, switched off (as an admin would through the API)."""
    row = db.execute("SELECT id FROM annual_products WHERE active = 1 LIMIT 1").fetchone()
    db.execute("UPDATE annual_products SET active = 0 WHERE id = ?", (row["id"],))
    return row["id"]


@pytest.mark.parametrize(("change", "message"), [
    ({"holder_0_0": "<script>alert(1)</script>"}, "keine Zeichen wie &lt; oder &gt;"),
    ({"holder_0_0": "x" * 1000}, "höchstens 200 Zeichen"),
    ({"holder_0_0": ""}, "für jede Karte den Namen"),
    ({"qty_0": "0"}, "zwischen 1 und 20"),
    ({"qty_0": "-1"}, "zwischen 1 und 20"),
    ({"qty_0": "999"}, "zwischen 1 und 20"),
    ({"qty_0": "zwei"}, "zwischen 1 und 20"),
    ({"product_0": "0190a6f8-0000-7000-8000-000000000000"}, "nicht im Telefonverkauf"),
    ({"product_0": "../../customers"}, "nicht im Telefonverkauf"),
    ({"product_0": "STADTMUSEUM_ONLY"}, "nicht im Telefonverkauf"),
    ({"product_0": "SUBSCRIPTION"}, "nicht im Telefonverkauf"),
    ({"customer_id": "0190a6f8-0000-7000-8000-000000000000"}, "Bitte einen Kunden wählen"),
    ({"customer_id": "new", "c_first_name": "A", "c_last_name": "y" * 1000, "c_street": "S 1",
      "c_postcode": "28195", "c_town": "Bremen"}, "Kundendaten sind unvollständig"),
    ({"customer_id": "new", "c_first_name": "<b>A</b>", "c_last_name": "B", "c_street": "S 1",
      "c_postcode": "28195", "c_town": "Bremen"}, "Kundendaten sind unvollständig"),
    ({"customer_id": "new", "c_first_name": "A", "c_last_name": "B", "c_street": "S 1",
      "c_postcode": "123", "c_town": "Bremen"}, "Kundendaten sind unvollständig"),
    ({"delivery": "counter"}, "per Post oder Abholung"),
    ({"payment_method": "online"}, "Zahlungsart"),
])
async def test_hostile_input_is_refused_with_a_message_and_nothing_stored(office, change, message):
    db = office.hub.db
    if change.get("product_0") == "STADTMUSEUM_ONLY":
        change = {"product_0": product(office, STADTMUSEUM_ONLY)}
    if change.get("product_0") == "SUBSCRIPTION":
        change = {"product_0": next(iter(office.hub.ids["subscriptions"].values()))}
    before = counts(db)
    response = await post_form(office, NEW, NEW, sale_fields(office, ["Erika Mustermann"]) | change)
    html = await response.text()
    assert response.status == 400 and message in html and 'name="nonce"' not in html
    assert "<script>alert" not in html and "<b>A</b>" not in html  # echoed values are escaped
    assert counts(db) == before


async def test_an_inactive_product_is_refused(office):
    before = counts(office.hub.db)
    fields = sale_fields(office, ["Erika Mustermann"], product_0=_inactive_product(office.hub.db))
    response = await post_form(office, NEW, f"{NEW}?lang=en", fields)
    assert response.status == 400 and "not sold by phone" in await response.text()
    assert counts(office.hub.db) == before


@pytest.mark.parametrize("attack", ["no-token", "wrong-token", "other-origin"])
async def test_a_forged_confirmation_changes_nothing(office, attack):
    db = office.hub.db
    html = await summary(office, sale_fields(office, ["Erika Mustermann"]))
    before = counts(db)
    token = "" if attack == "no-token" else "x" * 43 if attack == "wrong-token" else await form_token(office, NEW)
    headers = {"Origin": "https://evil.example"} if attack == "other-origin" else {}
    for action, data in ((NEW + "/confirm", {"nonce": nonce_of(html)}), (NEW, sale_fields(office, ["E M"]))):
        response = await office.post(action, data={"csrf": token, **data}, allow_redirects=False, headers=headers)
        assert response.status == 403
    assert counts(db) == before
    assert (await confirm(office, nonce_of(html))).status == 303  # the real one still works, once


async def test_without_login_the_sale_pages_lead_to_the_login(aiohttp_client, sample_hub):
    client = await signed_in(aiohttp_client, sample_hub)
    await client.post("/office/logout", data={"csrf": await form_token(client, NEW)})
    before = counts(sample_hub.db)
    for method, path in (("GET", NEW), ("POST", NEW), ("POST", NEW + "/confirm")):
        response = await client.request(method, path, allow_redirects=False, data={"nonce": "x"})
        assert response.status == 303 and response.headers["Location"].startswith("/office/login")
    assert counts(sample_hub.db) == before


async def test_the_orders_list_and_a_customer_lead_to_the_sale_with_the_customer_chosen(office):
    listing = await (await office.get("/office/orders")).text()
    assert 'id="phone-sale" href="/office/orders/new"' in listing
    customer = customer_of(office.hub.db)
    page = await (await office.get(f"/office/customers/{customer['id']}?lang=en")).text()
    assert f'href="/office/orders/new?customer={customer["id"]}"' in page and "Phone sale to this customer" in page
    form = await (await office.get(f"{NEW}?customer={customer['id']}")).text()
    assert re.search(rf'value="{customer["id"]}"[^>]*checked', form)
    found = await (await office.get(f"{NEW}?q={customer['last_name']}")).text()
    assert customer["number"] in found


def _shop_order(db, data_dir) -> dict:
    """A shop order as the shop places it: the card waits for its holder."""
    customer = customer_of(db)["id"]
    product_id = db.execute("SELECT id FROM annual_products WHERE name = 'Jahreskarte Verbund'").fetchone()["id"]
    body = OrderIn(lines=[LineIn(product_id=product_id)], customer_id=customer, delivery="mail",
                   payment_method="online")
    return orders.place_order(db, this_node(db), cards.load_signer(db, data_dir), body, channel="shop",
                              now=utcnow())


async def test_staff_personalize_a_shop_item_on_the_order_page(office):
    db = office.hub.db
    placed = _shop_order(db, office.hub.dir)
    item = placed["items"][0]["id"]
    page = f"/office/orders/{placed['id']}"
    assert "noch nicht personalisiert" in await (await office.get(page)).text()
    before = counts(db)
    action = f"{page}/items/{item}/personalize"
    bad = await post_form(office, page, action, {"name": "<script>x</script>"})
    assert bad.status == 400 and "&lt; oder &gt;" in await bad.text() and counts(db) == before
    forged = await office.post(action, data={"csrf": "", "name": "Erika"}, allow_redirects=False)
    assert forged.status == 403 and counts(db) == before
    other = await post_form(office, page, f"/office/orders/{placed['id']}/items/{placed['id']}/personalize",
                            {"name": "Erika"})
    assert other.status == 404 and counts(db) == before
    done = await post_form(office, page, action, {"name": "Erika Mustermann"})
    assert done.status == 303 and done.headers["Location"] == page
    shown = await (await office.get(page)).text()
    assert "Erika Mustermann" in shown and "personalisiert" in shown and "noch nicht" not in shown
    assert counts(db)["cards"] == before["cards"] + 1
    again = await post_form(office, page, action, {"name": "Max"})
    assert again.status == 409 and counts(db)["cards"] == before["cards"] + 1


async def test_the_api_still_takes_the_same_order(api):
    """The screen adds no rule of its own to POST /orders: the API answers as before."""
    customer = customer_of(api.hub.db)["id"]
    body = {"lines": [{"product_id": api.hub.ids["annual_products"][VERBUND], "quantity": 1,
                       "holders": [{"name": "Erika"}]}], "customer_id": customer, "delivery": "pickup",
            "payment_method": "transfer"}
    assert (await call(api, "POST", "/orders", body, status=201))["total_cents"] == 6500


@pytest.mark.slow
def test_a_phone_sale_in_chromium(tmp_path):
    started = time.monotonic()
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("sale-*.png"):
        old.unlink(missing_ok=True)
    shop: dict = {}
    with office_in_chromium(tmp_path, prepare=lambda db: shop.update(_shop_order(db, tmp_path / "hub"))) as served:
        page = served.page
        page.goto(served.hub.url + "/office/orders")
        page.screenshot(path=SHOTS / "sale-0-orders-de.png")
        page.click("#phone-sale")
        page.wait_for_selector("#sale")
        page.check("#new-customer")
        for field, value in (("c_first_name", "Erika"), ("c_last_name", "Mustermann"), ("c_street", "Am Wall 5"),
                             ("c_postcode", "28195"), ("c_town", "Bremen"), ("c_email", "erika@example.org"),
                             ("c_phone", "0421 555")):
            page.fill(f"#{field}", value)
        page.select_option("#product_0", served.ids["annual_products"][VERBUND])
        page.fill("#qty_0", "2")
        page.check("#delivery-mail")
        page.screenshot(path=SHOTS / "sale-1-form-de.png", full_page=True)
        page.click("#next")
        page.wait_for_selector("#holders")
        assert page.inner_text("label[for=holder_0_1]").startswith("Karteninhaber/in 2")
        page.fill("#holder_0_0", "Erika Mustermann")
        page.fill("#holder_0_1", "Max Mustermann")
        page.screenshot(path=SHOTS / "sale-2-holders-de.png", full_page=True)
        page.click("#next")
        page.wait_for_selector("#confirm")
        assert page.inner_text("#total") == "130,00 €"
        page.screenshot(path=SHOTS / "sale-3-summary-de.png", full_page=True)
        page.click("#confirm")
        page.wait_for_selector("#lines")
        rows = page.inner_text("#lines")
        assert "Erika Mustermann" in rows and "Max Mustermann" in rows and "personalisiert" in rows
        assert page.inner_text("#total") == "130,00 €"
        page.screenshot(path=SHOTS / "sale-4-order-de.png", full_page=True)
        page.goto(page.url + "?lang=en")
        page.screenshot(path=SHOTS / "sale-5-order-en.png", full_page=True)
        page.goto(f"{served.hub.url}/office/orders/{shop['id']}?lang=de")  # a shop order: the customer calls
        page.fill("form.personalize input[name=name]", "Erika Musterfrau")
        page.screenshot(path=SHOTS / "sale-6-personalize-de.png", full_page=True)
        page.click("form.personalize button")
        page.wait_for_selector("#lines >> text=Erika Musterfrau")
        assert "personalisiert" in page.inner_text("#lines")
        page.screenshot(path=SHOTS / "sale-7-personalized-de.png", full_page=True)
    print(f"office phone sale in Chromium: {time.monotonic() - started:.1f} s; screenshots in {SHOTS}")
