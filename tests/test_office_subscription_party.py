"""The office's phone sale of a party side by side (issue 13): "Anzahl Abos", several seats per
map (one per member), a variant step with a replacement per member lacking the seat, a tier and
pass name per member, the summary per member with the total, one order with one subscription
each; hostile and forged posts change nothing. Real HTTP on loopback against the sample hub; the
couple in Chromium (slow, screenshots subs-party-*.png)."""

from __future__ import annotations

import re

import pytest

from tests.office import SHOTS, office_in_chromium, post_form, signed_in
from tests.test_office_subscriptions import (
    PIT,
    STANDARD,
    confirm,
    counts,
    customer,
    hidden,
    house_plan,
    nonce_of,
    product_id,
    seat,
    step,
    variant,
)

NEW = "/office/subscriptions/new"


@pytest.fixture
async def office(aiohttp_client, sample_hub):
    return await signed_in(aiohttp_client, sample_hub, role="office")


def pupils(db, product: str) -> str:
    return db.execute("SELECT id FROM discount_tiers WHERE product_id = ? AND name = 'Schüler/Studierende'",
                      (product,)).fetchone()["id"]


def order_of(db, location: str) -> tuple[dict, list[dict]]:
    """The order of the subscription sold (Location of the confirmation), with all its subscriptions."""
    first = db.execute("SELECT order_id FROM subscriptions WHERE id = ?", (location.rsplit("/", 1)[1],)).fetchone()
    order = db.execute("SELECT * FROM orders WHERE id = ?", (first["order_id"],)).fetchone()
    subs = db.execute("SELECT s.*, l.position FROM subscriptions s JOIN order_lines l ON l.id = s.line_id "
                      "WHERE s.order_id = ? ORDER BY l.position", (order["id"],)).fetchall()
    return order, subs


def seats_of(db, line_id: str) -> dict[str, str]:
    return {t["performance_id"]: t["seat_id"] for t in db.execute(
        "SELECT performance_id, seat_id FROM tickets WHERE line_id = ? AND status = 'sold'", (line_id,))}


async def pit_couple(client, lang: str = "de") -> tuple[str, dict]:
    """Ring A for two: pit seats A9 and A10 clicked on the pit variant's map; the standard variant
    lacks row A, so the page steps through it with two replacements suggested."""
    db, plan = client.hub.db, house_plan(client)
    html = await step(client, {"action": "product", "product_id": product_id(client, "Abo-Ring A"), "party": "2"},
                      lang)
    pair = f'{seat(db, "A", "9", plan=plan)},{seat(db, "A", "10", plan=plan)}'
    html = await step(client, {**hidden(html), "action": "pick", f"view_{plan}": variant(db, PIT),
                               f"seat_{plan}": pair}, lang)
    return html, hidden(html)


async def test_a_couple_is_sold_side_by_side_across_both_variants_with_a_tier_each(office):
    db, plan = office.hub.db, house_plan(office)
    ring, standard = product_id(office, "Abo-Ring A"), variant(db, STANDARD)
    before = counts(db)
    html, fields = await pit_couple(office)
    assert f'id="step-{standard}"' in html and 'data-max="2"' in html
    suggested = fields[f"repl_{standard}"].split(",")
    assert len(set(suggested)) == 2  # a replacement for each of the two, suggested
    html = await step(office, {**fields, "action": "hold"})
    fields = hidden(html)
    assert fields["hold_id"] and db.execute("SELECT count(*) AS n FROM seat_holds").fetchone()["n"] == 16
    assert "Abo 2" in html and 'id="member-2"' in html  # a tier and pass name for each
    html = await step(office, {**fields, "action": "check", "customer_id": customer(db)["id"],
                               "tier_id_2": pupils(db, ring), "holder_name": "Erika Mustermann",
                               "holder_name_2": "Max Mustermann", "delivery": "mail", "payment_method": "transfer"})
    assert 'id="price">Summe: 552,00 €' in html  # 368,00 full + 184,00 for the pupil, from the catalog
    assert re.search(r'id="summary-member-2">.*Schüler/Studierende.*Max Mustermann.*184,00', html)
    response = await confirm(office, nonce_of(html))
    assert response.status == 303, await response.text()
    order, subs = order_of(db, response.headers["Location"])
    assert [s["price_cents"] for s in subs] == [36800, 18400] and order["total_cents"] == 55200
    assert [s["holder_name"] for s in subs] == ["Erika Mustermann", "Max Mustermann"]
    a9, a10 = seat(db, "A", "9", plan=plan), seat(db, "A", "10", plan=plan)
    for sub, own, spare in zip(subs, (a9, a10), suggested, strict=True):
        mine = seats_of(db, sub["line_id"])
        assert len(mine) == 8
        pit_dates = [p for p in mine if db.execute("SELECT variant_id FROM performances WHERE id = ?",
                                                   (p,)).fetchone()["variant_id"] != standard]
        assert {mine[p] for p in pit_dates} == {own} and set(mine.values()) == {own, spare}
    after = counts(db)
    assert after["orders"] == before["orders"] + 1 and after["subscriptions"] == before["subscriptions"] + 2
    assert after["seat_holds"] == 0
    page = await (await office.get(response.headers["Location"])).text()  # the first one's page names the second
    assert re.search(rf'id="party">[^<]*<a href="/office/subscriptions/{subs[1]["id"]}">{subs[1]["number"]}</a> '
                     r'\(Max Mustermann\)', page)


async def test_best_available_for_a_family_of_three_fills_three_seats_side_by_side(office):
    db, plan = office.hub.db, house_plan(office)
    ring = product_id(office, "Abo-Ring B")
    html = await step(office, {"action": "product", "product_id": ring, "party": "3"})
    html = await step(office, {**hidden(html), "action": "best"})
    fields = hidden(html)
    three = fields[f"seat_{plan}"].split(",")
    assert len(set(three)) == 3
    rows = db.execute(f"SELECT row_label, x FROM seats WHERE id IN ({','.join('?' * 3)}) ORDER BY x",
                      three).fetchall()
    assert len({r["row_label"] for r in rows}) == 1 and [r["x"] - rows[0]["x"] for r in rows] == [0, 1, 2]
    html = await step(office, {**fields, "action": "hold"})
    held = hidden(html)
    html = await step(office, {**held, "action": "check", "customer_id": customer(db)["id"], "delivery": "pickup",
                               "payment_method": "cash"}, lang="en")
    assert "Subscription 3" in html and 'id="summary-member-3"' in html
    response = await confirm(office, nonce_of(html))
    order, subs = order_of(db, response.headers["Location"])
    assert len(subs) == 3 and order["total_cents"] == sum(s["price_cents"] for s in subs)


async def test_hostile_party_input_gets_a_clear_message_and_changes_nothing(office):
    db, plan = office.hub.db, house_plan(office)
    ring = product_id(office, "Abo-Ring A")
    before = counts(db)
    for bad in ("abc", "0", "11", "-1", "<b>2</b>"):
        html = await step(office, {"action": "best", "product_id": ring, "party": bad}, status=400)
        assert "Anzahl Abos: bitte eine Zahl von 1 bis 10." in html and "<b>2</b>" not in html
    html = await step(office, {"action": "best", "product_id": ring, "party": "99"}, lang="en", status=400)
    assert "Subscriptions: a number from 1 to 10, please." in html
    # more seats in a map's field than the party has: only the party's first ones count
    many = ",".join(seat(db, "5", str(n), plan=plan) for n in range(1, 6))
    html = await step(office, {"action": "pick", "product_id": ring, "party": "2", f"seat_{plan}": many})
    assert hidden(html)[f"seat_{plan}"] == ",".join(many.split(",")[:2])
    html, fields = await pit_couple(office)
    html = await step(office, {**fields, "action": "hold"})
    held = hidden(html)
    base = {**held, "action": "check", "customer_id": customer(db)["id"], "delivery": "mail",
            "payment_method": "transfer"}
    html = await step(office, {**base, "holder_name_2": "<script>alert(1)</script>"}, status=400)
    assert "<script>alert(1)</script>" not in html and 'role="alert"' in html
    html = await step(office, {**base, "tier_id_2": "01900000-0000-7000-8000-000000000000"}, status=400)
    assert "Diese Ermäßigung gibt es hier nicht." in html
    no_token = await office.post(NEW, data={**base, "action": "check"}, allow_redirects=False)
    assert no_token.status == 403
    elsewhere = await post_form(office, NEW, NEW, base, Origin="https://evil.example")
    assert elsewhere.status == 403
    assert counts(db) == {**before, "seat_holds": 16}  # only the clerk's own hold of the two seats


async def test_a_companion_seat_sells_only_with_its_wheelchair_place_in_the_party(office):
    db, plan = office.hub.db, house_plan(office)
    ring = product_id(office, "Abo-Ring B")
    place, companion = seat(db, "20", "2", plan=plan), seat(db, "20", "3", plan=plan)
    html = await step(office, {"action": "product", "product_id": ring, "party": "2"})
    html = await step(office, {**hidden(html), "action": "pick", f"seat_{plan}": f"{place},{companion}"})
    html = await step(office, {**hidden(html), "action": "hold"})
    held = hidden(html)
    assert held.get("hold_id"), re.findall(r'role="alert">(.*?)</p>', html)
    html = await step(office, {**held, "action": "check", "customer_id": customer(db)["id"], "delivery": "pickup",
                               "payment_method": "transfer"})
    response = await confirm(office, nonce_of(html))
    order, subs = order_of(db, response.headers["Location"])
    assert [set(seats_of(db, s["line_id"]).values()) for s in subs] == [{place}, {companion}]
    before = counts(db)
    html = await step(office, {"action": "product", "product_id": ring})
    html = await step(office, {**hidden(html), "action": "pick", f"seat_{plan}": seat(db, "20", "4", plan=plan)},
                      status=400)  # the other companion seat, alone
    assert "Begleit" in html or "companion" in html
    assert counts(db) == before


@pytest.mark.slow
def test_a_couple_booked_side_by_side_on_the_seat_map_in_chromium(tmp_path):
    from core.base.storage import connect
    from hub.app import DB_NAME

    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("subs-party-*.png"):
        old.unlink(missing_ok=True)
    with office_in_chromium(tmp_path) as served:
        page, url = served.page, served.hub.url
        db = connect(served.hub_dir / DB_NAME)
        try:
            plan = served.ids["plans"]["Großes Haus"]
            pit, standard = variant(db, PIT), variant(db, STANDARD)
            a9, a10 = seat(db, "A", "9", plan=plan), seat(db, "A", "10", plan=plan)
            r2 = [seat(db, "2", n, plan=plan) for n in ("9", "10")]
            buyer = db.execute("SELECT id, last_name FROM customers ORDER BY number LIMIT 1").fetchone()
            tier = pupils(db, served.ids["subscriptions"]["Abo-Ring A"])
        finally:
            db.close()
        page.goto(url + NEW)
        page.select_option("#product_id", served.ids["subscriptions"]["Abo-Ring A"])
        page.click("#choose-product")
        page.wait_for_selector(".seatmap svg")
        page.fill("#party", "2")
        page.click(f"#tab-{pit}")
        page.wait_for_selector(f'#tab-{pit}[aria-pressed="true"]')
        page.click(f'[data-seat-id="{a9}"]')
        page.wait_for_selector(f'[data-seat-id="{a9}"][data-state="selected"]')
        page.click(f'[data-seat-id="{a10}"]')
        page.wait_for_selector(f"#step-{standard}")
        assert page.get_attribute(f'[data-seat-id="{a9}"]', "data-state") == "selected"
        assert page.input_value(f'input[name="seat_{plan}"]') == f"{a9},{a10}"
        page.screenshot(path=SHOTS / "subs-party-1-two-seats-de.png")
        step_map = f'[data-input="repl_{standard}"]'
        page.locator(f"#step-{standard}").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "subs-party-2-step-de.png")
        first = page.input_value(f'input[name="repl_{standard}"]').split(",")[0]
        page.click(f'{step_map} [data-seat-id="{first}"]')  # a second click gives a suggestion back
        page.wait_for_selector(f'{step_map} [data-seat-id="{first}"][data-state="free"]')
        for chosen in r2:  # row 2, seats 9 and 10, side by side (the other suggestion goes: two at most)
            page.click(f'{step_map} [data-seat-id="{chosen}"]')
            page.wait_for_selector(f'{step_map} [data-seat-id="{chosen}"][data-state="selected"]')
        assert page.input_value(f'input[name="repl_{standard}"]') == ",".join(r2)
        page.click("#hold")
        page.wait_for_selector("#held")
        booked = page.inner_text("#booked")
        assert booked.count("Reihe A · Platz 9") == 4 and booked.count("Reihe 2 · Platz 10") == 4
        page.locator("#booked").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "subs-party-3-booked-de.png")
        page.fill("#q", buyer["last_name"])
        page.click("#find")
        page.check(f'input[name=customer_id][value="{buyer["id"]}"]')
        page.fill("#holder_name", "Erika Mustermann")
        page.select_option("#tier_id_2", tier)
        page.fill("#holder_name_2", "Max Mustermann")
        page.click("#check")
        page.wait_for_selector("#summary")
        assert page.inner_text("#price") == "Summe: 552,00 €"
        assert "Max Mustermann" in page.inner_text("#summary-member-2")
        page.locator("#summary").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "subs-party-4-summary-de.png")
        page.click("#confirm")
        page.wait_for_selector("#seats")
        assert page.locator("#seats tbody tr").count() == 8
        page.screenshot(path=SHOTS / "subs-party-5-detail-de.png", full_page=True)
