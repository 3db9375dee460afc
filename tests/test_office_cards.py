"""The office app's Cards screen: cards by fulfilment state, bulk moves through POST /cards/fulfilment
(all or none, the card that cannot move named), the card page with Re-issue, Replace and Revoke
(with a confirmation page), every POST behind the CSRF rule.

Real parts: the sample hub's SQLite file, the hub's app on loopback, cards sold by a phone order
over the API (signed with the hub's key), and the gate's own entry decision (`core.cards.access`)
to see a re-issued or revoked code refused.
"""

from __future__ import annotations

import html

import pytest

from core.base.clock import iso, utcnow
from core.base.ids import uuid7
from core.base.storage import transaction
from tests.helpers import call
from tests.office import form_token, post_form, signed_in
from tests.test_print_batches import fulfilment, gate, phone_order

FOREIGN = {"Origin": "https://evil.example"}
LIST = "/office/cards"


@pytest.fixture
async def office(aiohttp_client, sample_hub):
    return await signed_in(aiohttp_client, sample_hub, role="office")


async def printed_cards(client, names: list[str], delivery: str) -> list[dict]:
    """Cards of a phone order moved to `printed` through the API (as a print batch would)."""
    cards = await phone_order(client, names, delivery)
    await call(client, "POST", "/cards/fulfilment", {"card_ids": [c["id"] for c in cards], "state": "printed"},
               status=200)
    return cards


def states(client, cards: list[dict]) -> list[str]:
    return [fulfilment(client.hub.db, c["id"]) for c in cards]


def card_row(client, card_id: str) -> dict:
    return client.hub.db.execute("SELECT * FROM cards WHERE id = ?", (card_id,)).fetchone()


async def move(client, cards: list[dict], to: str, **headers: str):
    token = await form_token(client, LIST)
    data = [("csrf", token), ("to", to)] + [("card", c["id"]) for c in cards]
    return await client.post(LIST + "/move", data=data, allow_redirects=False, headers=headers)


async def test_the_list_shows_cards_by_state_with_counts_filters_and_csv(office):
    mail = await printed_cards(office, ["Erika Müller", "Jürgen Weiß"], "mail")
    pickup = await phone_order(office, ["Paul <b>Abholer</b>"], "pickup")
    page = await (await office.get(LIST, params={"lang": "en"})).text()
    assert 'id="tab-printed"' in page and "printed (2)" in page and "personalized (1)" in page
    assert "Paul &lt;b&gt;Abholer&lt;/b&gt;" in page and "<b>Abholer" not in page
    only = await (await office.get(LIST, params={"state": "printed", "lang": "en"})).text()
    assert all(c["number"] in only for c in mail) and pickup[0]["number"] not in only
    by_delivery = await (await office.get(LIST, params={"delivery": "pickup"})).text()
    assert pickup[0]["number"] in by_delivery and mail[0]["number"] not in by_delivery
    found = await (await office.get(LIST, params={"q": "weiß"})).text()
    assert mail[1]["number"] in found and mail[0]["number"] not in found
    sorted_page = await (await office.get(LIST, params={"sort": "-number", "state": "printed"})).text()
    assert sorted_page.index(mail[1]["number"]) < sorted_page.index(mail[0]["number"])
    csv = await office.get(LIST + ".csv", params={"state": "printed", "lang": "en"})
    text = (await csv.read()).decode("utf-8-sig")
    assert csv.headers["Content-Disposition"].startswith("attachment") and text.count("\r\n") == 3
    assert "Erika Müller" in text and "printed" in text


async def test_a_bulk_move_of_three_printed_cards_dispatches_them_all(office):
    cards = await printed_cards(office, ["Anna Eins", "Bert Zwei", "Cora Drei"], "mail")
    response = await move(office, cards, "dispatched")
    assert response.status == 303, await response.text()  # then a GET: a reload repeats nothing
    assert states(office, cards) == ["dispatched"] * 3
    page = await (await office.get(response.headers["Location"])).text()
    assert "3 Karte(n) jetzt versandt." in page


async def test_a_bulk_move_where_one_card_cannot_move_moves_none_and_names_it(office):
    mail = await printed_cards(office, ["Dora Post", "Emil Post"], "mail")
    pickup = await printed_cards(office, ["Fritz Abholer"], "pickup")
    response = await move(office, [*mail, *pickup], "dispatched")
    page = html.unescape(await response.text())
    assert response.status == 409
    assert f"card {pickup[0]['number']}: goes by pickup, not mail" in page
    assert states(office, [*mail, *pickup]) == ["printed"] * 3  # none moved


async def test_bad_moves_change_nothing(office):
    cards = await printed_cards(office, ["Gina Gut"], "mail")
    before = card_row(office, cards[0]["id"])
    # nothing ticked, an unknown state, an unknown card, an SQL-ish id
    assert (await move(office, [], "dispatched")).status == 400
    assert (await move(office, cards, "lost'; DROP TABLE cards; --")).status == 422
    unknown = await move(office, [*cards, {"id": "0190b1f2-0000-7000-8000-000000000000"}], "dispatched")
    assert unknown.status == 404
    sqlish = await move(office, [{"id": "1' OR '1'='1"}], "dispatched")
    assert sqlish.status == 422
    assert card_row(office, cards[0]["id"]) == before


async def test_moves_are_refused_without_token_from_another_origin_and_without_login(office, aiohttp_client,
                                                                                    sample_hub):
    cards = await printed_cards(office, ["Hans Hacker"], "mail")
    data = [("to", "dispatched"), ("card", cards[0]["id"])]
    no_token = await office.post(LIST + "/move", data=data, allow_redirects=False)
    assert no_token.status == 403
    foreign = await move(office, cards, "dispatched", **FOREIGN)
    assert foreign.status == 403
    assert states(office, cards) == ["printed"]
    from hub.app import make_app
    anonymous = await aiohttp_client(make_app(sample_hub.db))
    assert (await anonymous.get(LIST, allow_redirects=False)).status == 303
    assert (await anonymous.post(LIST + "/move", data=data, allow_redirects=False)).status == 303
    assert states(office, cards) == ["printed"]


async def test_the_card_page_shows_state_validity_customer_order_and_history(office):
    card = (await phone_order(office, ["Ida <script>Ida</script>"], "mail"))[0]
    page = await (await office.get(f"{LIST}/{card['id']}", params={"lang": "en"})).text()
    assert card["number"] in page and "personalized" in page and "&lt;script&gt;" in page
    assert f'href="/office/customers/{card["customer_id"]}"' in page
    assert 'id="order" ' in page or 'id="order">' in page
    assert 'id="prints"' in page  # the queued print job is its history so far


async def test_reissue_gives_a_new_code_and_the_old_one_is_superseded(office):
    hub = office.hub
    card = (await phone_order(office, ["Jana Neu"], "pickup"))[0]
    museum = gate(hub.db, hub.ids["museum_venues"]["Stadtmuseum"])
    assert museum.decide(card["code"]).admitted
    response = await post_form(office, f"{LIST}/{card['id']}", f"{LIST}/{card['id']}/reissue")
    assert response.status == 303 and response.headers["Location"] == f"{LIST}/{card['id']}?done=reissue"
    assert "neu ausgestellt (Ausgabe 2)" in await (await office.get(response.headers["Location"])).text()
    now = card_row(office, card["id"])
    assert now["issue"] == 2 and now["code"] != card["code"]
    assert museum.decide(card["code"]).reason == "SUPERSEDED"
    assert museum.decide(now["code"]).admitted


async def test_replace_lost_card_queues_it_for_printing_again(office):
    card = (await printed_cards(office, ["Karl Verloren"], "pickup"))[0]
    response = await post_form(office, f"{LIST}/{card['id']}", f"{LIST}/{card['id']}/replace")
    assert response.status == 303, await response.text()
    now = card_row(office, card["id"])
    assert (now["issue"], now["fulfilment"]) == (2, "personalized")
    queued = office.hub.db.execute("SELECT count(*) AS n FROM print_jobs WHERE ref_id = ? AND state = 'queued' "
                                   "AND card_issue = 2", (card["id"],)).fetchone()["n"]
    assert queued == 1


async def test_revoke_asks_first_then_revokes_and_the_gate_refuses(office):
    hub = office.hub
    card = (await phone_order(office, ["Lena Weg"], "pickup"))[0]
    path = f"{LIST}/{card['id']}"
    confirm = await post_form(office, path, path + "/revoke", {"reason": "lost <i>on</i> the tram"})
    page = await confirm.text()
    assert confirm.status == 200 and 'id="confirm-revoke"' in page and "&lt;i&gt;on&lt;/i&gt;" in page
    assert card_row(office, card["id"])["revoked_at"] is None  # asked, not done
    done = await post_form(office, path, path + "/revoke", {"reason": "lost on the tram", "confirm": "yes"})
    assert done.status == 303, await done.text()
    assert card_row(office, card["id"])["revoke_reason"] == "lost on the tram"
    museum = gate(hub.db, hub.ids["museum_venues"]["Stadtmuseum"])
    assert museum.decide(card["code"]).reason == "REVOKED"


async def test_bad_revocations_and_card_actions_change_nothing(office, aiohttp_client, sample_hub):
    card = (await phone_order(office, ["Mia Bleibt"], "pickup"))[0]
    path = f"{LIST}/{card['id']}"
    before = card_row(office, card["id"])
    assert (await post_form(office, path, path + "/revoke", {"reason": " ", "confirm": "yes"})).status == 400
    assert (await post_form(office, path, path + "/revoke", {"reason": "x" * 201, "confirm": "yes"})).status == 400
    foreign = await post_form(office, path, path + "/revoke", {"reason": "evil", "confirm": "yes"}, **FOREIGN)
    assert foreign.status == 403
    assert (await office.post(path + "/reissue", data={}, allow_redirects=False)).status == 403
    assert (await post_form(office, path, path + "/reissue", **FOREIGN)).status == 403
    for odd in ("0190b1f2-0000-7000-8000-000000000000", "1' OR '1'='1", "..%2F..%2Fetc%2Fpasswd"):
        assert (await office.get(f"{LIST}/{odd}")).status == 404
        assert (await post_form(office, path, f"{LIST}/{odd}/reissue")).status == 404
        assert (await post_form(office, path, f"{LIST}/{odd}/revoke",
                                {"reason": "x", "confirm": "yes"})).status == 404
    from hub.app import make_app
    anonymous = await aiohttp_client(make_app(sample_hub.db))
    assert (await anonymous.post(path + "/reissue", allow_redirects=False)).status == 303
    assert card_row(office, card["id"]) == before


async def test_links_from_the_customer_and_order_pages(office):
    card = (await phone_order(office, ["Nora Link"], "mail"))[0]
    customer = await (await office.get(f"/office/customers/{card['customer_id']}")).text()
    assert f'href="/office/cards/{card["id"]}"' in customer
    order_id = office.hub.db.execute("SELECT order_id FROM order_lines WHERE card_id = ?",
                                     (card["id"],)).fetchone()["order_id"]
    order = await (await office.get(f"/office/orders/{order_id}")).text()
    assert f'href="/office/cards/{card["id"]}"' in order


# --- in Chromium ---------------------------------------------------------------------------------------------


def _phone_orders(db) -> None:
    """Before the hub starts: three cards by mail and one for pickup, sold by phone through the API."""
    from hub.app import make_app
    from hub.client import LocalClient

    client = LocalClient(make_app(db))
    customer = db.execute("SELECT id FROM customers ORDER BY rowid LIMIT 1").fetchone()["id"]
    product_id = db.execute("SELECT id FROM annual_products ORDER BY rowid LIMIT 1").fetchone()["id"]
    for names, delivery in ((["Erika Müller", "Jürgen Weiß", "Ada Lovelace"], "mail"), (["Paul Abholer"], "pickup")):
        client.call("POST", "/orders", {"lines": [{"product_id": product_id, "quantity": len(names),
                                                   "holders": [{"name": n} for n in names]}],
                                        "customer_id": customer, "delivery": delivery,
                                        "payment_method": "transfer"})


@pytest.mark.slow
def test_cards_in_chromium_print_a_batch_download_it_and_move_the_cards(tmp_path):
    import time

    from playwright.sync_api import expect

    from tests.office import SHOTS, office_in_chromium
    from tests.test_print_batches import qr_codes

    started = time.monotonic()
    for old in [*SHOTS.glob("cards-*.png"), *SHOTS.glob("print-*.png")]:
        old.unlink(missing_ok=True)
    with office_in_chromium(tmp_path, prepare=_phone_orders) as served:
        page, url = served.page, served.hub.url
        page.click("#nav >> text=Druck")
        expect(page.locator("#h-waiting")).to_contain_text("(7)")  # 4 cards, 3 carriers
        page.screenshot(path=SHOTS / "print-1-waiting-de.png")
        page.select_option("#kind", "card")
        page.click("#make")
        expect(page.locator("#notice")).to_contain_text("Stapel gedruckt: 4 Karten.")
        page.screenshot(path=SHOTS / "print-2-made-de.png")
        with page.expect_download() as download:
            page.click("#made-pdf")
        pdf = download.value.path().read_bytes()
        assert pdf.startswith(b"%PDF") and len(qr_codes(pdf)) == 4

        page.goto(url + "/office/cards?state=printed&lang=en")
        expect(page.locator("#tab-printed")).to_contain_text("printed (4)")
        for name in ("Erika Müller", "Jürgen Weiß", "Ada Lovelace"):
            page.locator("tr", has_text=name).locator("input[type=checkbox]").check()
        page.select_option("#to", "dispatched")
        page.screenshot(path=SHOTS / "cards-1-selected-en.png")
        page.click("#move")
        expect(page.locator("#notice")).to_contain_text("3 card(s) now dispatched.")
        expect(page.locator("#tab-dispatched")).to_contain_text("dispatched (3)")
        page.screenshot(path=SHOTS / "cards-2-moved-en.png")
        # the pickup card cannot be dispatched: refused, named, nothing moved
        page.locator("tr", has_text="Paul Abholer").locator("input[type=checkbox]").check()
        page.click("#move")
        expect(page.locator("#error")).to_contain_text("goes by pickup, not mail")
        page.screenshot(path=SHOTS / "cards-3-refused-en.png")

        page.locator("tr", has_text="Paul Abholer").locator("a").first.click()
        expect(page.locator("#title")).to_contain_text("Paul Abholer")
        page.fill("#reason", "Karte verloren")
        page.click("#revoke")
        expect(page.locator("#confirm")).to_contain_text("Karte verloren")
        page.screenshot(path=SHOTS / "cards-4-confirm-en.png")
        page.click("#confirm-revoke")
        expect(page.locator("#state")).to_contain_text("revoked")
        page.goto(page.url.split("?")[0] + "?lang=de")
        page.screenshot(path=SHOTS / "cards-5-card-de.png")
        page.goto(url + "/office/print?lang=de")
        page.screenshot(path=SHOTS / "print-3-batches-de.png")
    print(f"office cards and print in Chromium: {time.monotonic() - started:.1f} s; screenshots in {SHOTS}")


async def test_a_card_valid_months_from_first_use_shows_the_months_then_the_window_its_first_entry_started(office):
    """Before: the page showed the signed outer bound (two years) as if the card ran until then."""
    hub = office.hub
    museum_only = hub.ids["annual_products"][1]  # Jahreskarte Stadtmuseum: 12 months from the first entry
    card = await call(office, "POST", "/cards", {"product_id": museum_only, "kind": "annual",
                                                  "holder_name": "Erst Nutzer"}, status=201)
    page = await (await office.get(f"{LIST}/{card['id']}", params={"lang": "de"})).text()
    assert 'id="validity" class="nowrap">12 Monate ab erster Nutzung (noch nicht genutzt)<' in page
    with transaction(hub.db):  # the gate's entry, as it arrives by sync: 15 March 2027, local time
        hub.db.execute("INSERT INTO entries (card_id, at, id, card_issue, venue_id, node_id, direction, record, "
                       "received_at) VALUES (?, '2027-03-15T09:30:00.000Z', ?, 1, ?, 'gate', 'in', '', ?)",
                       (card["id"], str(uuid7()), hub.ids["museum_venues"]["Stadtmuseum"], iso(utcnow())))
    page = await (await office.get(f"{LIST}/{card['id']}", params={"lang": "en"})).text()
    assert 'id="validity" class="nowrap">15.03.2027 – 14.03.2028<' in page
