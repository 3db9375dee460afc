"""The office's subscriptions (issue 13) over real HTTP on loopback against the sample hub: the
phone sale of a ring (across two plan variants), a choice (N of M) and a combi on the seat map,
staff seat holds, a seat lost meanwhile, prices from the catalog only, forged and hostile
posts; the subscriber list, a subscription's page, its changes and seat change; and the sale
in Chromium (slow)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from core.base.clock import utcnow
from core.base.node import this_node
from core.subscriptions.sale import SubscriptionSaleIn, sell_subscription
from tests.helpers import table_counts
from tests.office import SHOTS, form_token, office_in_chromium, post_form, signed_in

NEW = "/office/subscriptions/new"
LIST = "/office/subscriptions"
WATCHED = ("orders", "order_lines", "payments", "subscriptions", "tickets", "seat_holds", "cards", "customers")
PIT = "Orchestergraben überbaut"
STANDARD = "Standard (Orchestergraben offen)"


def counts(db) -> dict[str, int]:
    every = table_counts(db)
    return {t: every[t] for t in WATCHED}


@pytest.fixture
async def office(aiohttp_client, sample_hub):
    return await signed_in(aiohttp_client, sample_hub, role="office")


class _Fields(HTMLParser):
    """What a browser would post of the sale form: hidden and text inputs, checked boxes and
    radios, the selected option of each select (the first without one), no buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.inside = False
        self.select: str | None = None
        self.first: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == "subsale"
        if not self.inside or not a.get("name"):
            if tag == "option" and self.inside and self.select:
                self._option(a)
            return
        if tag == "input" and a.get("type") in ("checkbox", "radio"):
            if "checked" in a:
                self.fields[a["name"]] = a.get("value", "on")
        elif tag == "input":
            self.fields[a["name"]] = a.get("value") or ""
        elif tag == "select":
            self.select, self.first = a["name"], None

    def _option(self, a: dict) -> None:
        if self.first is None:
            self.first = a.get("value", "")
            self.fields.setdefault(self.select, self.first)
        if "selected" in a:
            self.fields[self.select] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        if tag == "select":
            self.select = None


def hidden(html: str) -> dict[str, str]:
    """The fields of the sale form as a browser posts them (what the page carries onwards)."""
    parser = _Fields()
    parser.feed(html)
    found = parser.fields
    found.pop("csrf", None)
    return {k: v for k, v in found.items() if v}


async def step(client, fields: dict[str, str], lang: str = "de", status: int = 200) -> str:
    response = await post_form(client, NEW, f"{NEW}?lang={lang}", fields)
    text = await response.text()
    assert response.status == status, re.findall(r'role="alert">(.*?)</p>', text, re.S) or text[-2000:]
    return text


def ids(client) -> dict:
    return client.hub.ids


def product_id(client, name: str) -> str:
    return ids(client)["subscriptions"][name]


def variant(db, name: str) -> str:
    return db.execute("SELECT id FROM plan_variants WHERE name = ?", (name,)).fetchone()["id"]


def house_plan(client) -> str:
    return ids(client)["plans"]["Großes Haus"]


def seat(db, row: str, label: str, section: str = "Parkett", plan: str | None = None) -> str:
    return db.execute("SELECT s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id WHERE c.name = ? "
                      "AND s.row_label = ? AND s.label = ? AND (CAST(? AS TEXT) IS NULL OR s.plan_id = ?)",
                      (section, row, label, plan, plan)).fetchone()["id"]


def customer(db) -> dict:
    return db.execute("SELECT id, number, last_name FROM customers ORDER BY number LIMIT 1").fetchone()


def nonce_of(html: str) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', html).group(1)


async def confirm(client, nonce: str, **headers: str):
    token = await form_token(client, NEW)
    return await client.post(NEW + "/confirm", data={"csrf": token, "nonce": nonce}, allow_redirects=False,
                             headers=headers)


async def ring_with_pit_seat(client, lang: str = "de") -> tuple[str, dict]:
    """Ring A up to the held seats: the pit seat A8 picked on the pit variant's map, the page
    stepping through the standard variant (which lacks it) with a suggested replacement."""
    db = client.hub.db
    ring, plan = product_id(client, "Abo-Ring A"), house_plan(client)
    html = await step(client, {"action": "product", "product_id": ring}, lang)
    assert html.count('class="seatmap"') == 1 and f"tab-{variant(db, PIT)}" in html
    pit_seat = seat(db, "A", "8", plan=plan)
    html = await step(client, {**hidden(html), "action": "pick", f"view_{plan}": variant(db, PIT),
                               f"seat_{plan}": pit_seat}, lang)
    fields = hidden(html)
    standard = variant(db, STANDARD)
    assert f'id="step-{standard}"' in html and fields[f"repl_{standard}"]  # the step, a suggestion filled in
    return html, fields


# --- the sale ---------------------------------------------------------------------------------------------


async def test_a_ring_is_sold_across_two_plan_variants_with_a_replacement_at_the_catalog_price(office):
    db = office.hub.db
    before = counts(db)
    html, fields = await ring_with_pit_seat(office)
    plan, standard = house_plan(office), variant(db, STANDARD)
    assert counts(db) == before  # looking and picking store nothing
    replacement = seat(db, "1", "10", plan=plan)  # the clerk picks another replacement than the suggestion
    html = await step(office, {**fields, "action": "pick", f"repl_{standard}": replacement})
    fields = hidden(html)
    assert fields[f"repl_{standard}"] == replacement
    html = await step(office, {**fields, "action": "hold"})
    fields = hidden(html)
    assert fields["hold_id"] and 'id="held"' in html and "data-input=" not in html  # held: no more clicks
    held = db.execute("SELECT performance_id, seat_id FROM seat_holds").fetchall()
    assert len(held) == 8
    assert html.count("<tr><td class=\"nowrap\">") >= 8  # the seat per date, read back
    assert "Parkett · Reihe A · Platz 8" in html and "Parkett · Reihe 1 · Platz 10" in html
    tier = db.execute("SELECT id FROM discount_tiers WHERE product_id = ? AND name = 'Schüler/Studierende'",
                      (product_id(office, "Abo-Ring A"),)).fetchone()["id"]
    # the tier list shows the catalog's prices for zone I: 368,00 full, 184,00 for students
    assert "Vollpreis · 368,00 €" in html and "Schüler/Studierende · 184,00 €" in html
    html = await step(office, {**fields, "action": "check", "customer_id": customer(db)["id"], "tier_id": tier,
                               "form": "both", "delivery": "mail", "payment_method": "transfer",
                               "holder_name": "Erika Musterfrau",
                               "price_cents": "1", "total_cents": "1", "price": "0,01"})
    assert 'id="price">Summe: 184,00 €' in html
    response = await confirm(office, nonce_of(html))
    assert response.status == 303, await response.text()
    sub_id = response.headers["Location"].rsplit("/", 1)[1]
    sub = db.execute("SELECT * FROM subscriptions WHERE id = ?", (sub_id,)).fetchone()
    assert sub["price_cents"] == 18400 and sub["tier_id"] == tier and sub["form"] == "both"
    assert sub["holder_name"] == "Erika Musterfrau"
    seats = db.execute("SELECT t.seat_id, f.variant_id FROM tickets t JOIN performances f ON f.id = t.performance_id "
                       "WHERE t.line_id = ? AND t.status = 'sold'", (sub["line_id"],)).fetchall()
    assert len(seats) == 8
    assert {s["seat_id"] for s in seats if s["variant_id"] == standard} == {replacement}
    assert {s["seat_id"] for s in seats if s["variant_id"] != standard} == {seat(db, "A", "8", plan=plan)}
    assert db.execute("SELECT count(*) AS n FROM seat_holds").fetchone()["n"] == 0  # the hold became the sale
    again = await confirm(office, nonce_of(html))  # a double click: the same subscription, nothing more
    assert again.status == 303 and again.headers["Location"] == response.headers["Location"]
    assert db.execute("SELECT count(*) AS n FROM subscriptions").fetchone()["n"] == 1
    page = await office.get(response.headers["Location"])
    text = await page.text()
    assert page.status == 200 and sub["number"] in text and text.count('data-performance="') == 8


async def sell_through_the_office(client, product: str, fields: dict[str, str], *, tier: str = "",
                                  lang: str = "de") -> tuple[str, str]:
    """From the seats in *fields* on: hold, customer and terms, summary, confirm; (summary, Location)."""
    html = await step(client, {**fields, "action": "hold"}, lang)
    held = hidden(html)
    assert held.get("hold_id"), re.findall(r'role="alert">(.*?)</p>', html)
    summary = await step(client, {**held, "action": "check", "customer_id": customer(client.hub.db)["id"],
                                  "tier_id": tier, "delivery": "pickup", "payment_method": "transfer"}, lang)
    response = await confirm(client, nonce_of(summary))
    assert response.status == 303, await response.text()
    return summary, response.headers["Location"]


def sold(db, location: str) -> tuple[dict, list[dict]]:
    sub = db.execute("SELECT * FROM subscriptions WHERE id = ?", (location.rsplit("/", 1)[1],)).fetchone()
    tickets = db.execute("SELECT performance_id, seat_id, zone_id, price_cents FROM tickets WHERE line_id = ? "
                         "AND status = 'sold'", (sub["line_id"],)).fetchall()
    return sub, tickets


async def test_a_choice_takes_exactly_n_of_its_m_dates_then_seats_free_in_all_of_them(office):
    db = office.hub.db
    choice = product_id(office, "Wahl-Abo Studio 5 aus 8")
    dates = db.execute("SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position",
                       (choice,)).fetchall()
    four = {f"date_{d['performance_id']}": "1" for d in dates[:4]}
    html = await step(office, {"action": "product", "product_id": choice, **four})
    assert 'class="seatmap"' not in html and "genau 5 der 8 Termine" in html  # 4 of 8: no map yet
    five = {f"date_{d['performance_id']}": "1" for d in dates[1:6]}
    html = await step(office, {"action": "product", "product_id": choice, **five})
    assert html.count('class="seatmap"') == 1
    # another buyer's choice (dates 1, 3-6) holds a seat at four of these five dates: not free in all
    studio = ids(office)["plans"]["Studio"]
    taken = db.execute("SELECT id FROM seats WHERE plan_id = ? ORDER BY y, x LIMIT 1", (studio,)).fetchone()["id"]
    others = [dates[0]["performance_id"], *(d["performance_id"] for d in dates[2:6])]
    sell_subscription(db, this_node(db), SubscriptionSaleIn(
        product_id=choice, customer_id=customer(db)["id"], performance_ids=others, seat_ids=[taken],
        payment_method="transfer"), channel="phone", now=utcnow())
    html = await step(office, {"action": "product", "product_id": choice, **five})
    assert re.search(rf'data-seat-id="{taken}"[^>]*data-state="taken"', html)
    html = await step(office, {**hidden(html), "action": "best", "best_zone": ids(office)["zones"]["2"]})
    fields = hidden(html)
    summary, location = await sell_through_the_office(office, choice, fields)
    sub, tickets = sold(db, location)
    assert sorted(t["performance_id"] for t in tickets) == sorted(d["performance_id"] for d in dates[1:6])
    assert len({t["seat_id"] for t in tickets}) == 1 and sub["price_cents"] == 8000  # zone II package price
    assert 'id="price">Summe: 80,00 €' in summary


async def test_a_combi_gets_a_seat_per_date_priced_per_performance_and_zone(office):
    db = office.hub.db
    combi = product_id(office, "Kombi-Ticket Klassiker")
    html = await step(office, {"action": "product", "product_id": combi})
    assert html.count('class="seatmap"') == 3
    html = await step(office, {**hidden(html), "action": "best", "best_zone": ids(office)["zones"]["1"]})
    fields = hidden(html)
    assert len([k for k in fields if k.startswith("seat_")]) == 3
    summary, location = await sell_through_the_office(office, combi, fields)
    assert 'id="price">Summe: 125,00 €' in summary  # 52 + 52 + 21 in zone I
    sub, tickets = sold(db, location)
    assert len(tickets) == 3 and sub["price_cents"] == 12500 and sum(t["price_cents"] for t in tickets) == 12500


# --- holds, races, refusals -------------------------------------------------------------------------------


async def test_staff_hold_keeps_the_seats_from_a_shop_buyer_and_cancel_releases_them(office, sample_hub):
    db = office.hub.db
    html, fields = await ring_with_pit_seat(office)
    html = await step(office, {**fields, "action": "hold"})
    fields = hidden(html)
    held = db.execute("SELECT performance_id, seat_id, holder FROM seat_holds").fetchall()
    assert len(held) == 8 and {h["holder"] for h in held} == {"staff:" + office_staff_id(db)}
    # meanwhile a shop buyer (another holder) cannot buy the held pit seat: the hold is taken for them
    pit_seat = seat(db, "A", "8", plan=house_plan(office))
    pit_dates = [h["performance_id"] for h in held if h["seat_id"] == pit_seat]
    with pytest.raises(Exception, match="held|taken"):
        from core.subscriptions import holds
        holds.hold(db, "token:shop-buyer", [(pit_dates[0], pit_seat)], now=utcnow())
    before = counts(db)
    html = await step(office, {**fields, "action": "cancel"})
    assert "Die reservierten Plätze sind wieder frei." in html and 'name="hold_id" value=""' in html
    assert db.execute("SELECT count(*) AS n FROM seat_holds").fetchone()["n"] == 0
    assert counts(db) == {**before, "seat_holds": 0}  # nothing sold, nothing else changed


def office_staff_id(db) -> str:
    return db.execute("SELECT id FROM staff WHERE user_name = 'office'").fetchone()["id"]


async def test_a_seat_sold_meanwhile_is_a_clear_message_with_alternatives_and_nothing_sold(office):
    db = office.hub.db
    ring = product_id(office, "Abo-Ring A")
    html = await step(office, {"action": "product", "product_id": ring})
    html = await step(office, {**hidden(html), "action": "best", "best_zone": ids(office)["zones"]["2"]})
    html = await step(office, {**hidden(html), "action": "hold"})
    summary = await step(office, {**hidden(html), "action": "check", "customer_id": customer(db)["id"],
                                  "delivery": "pickup", "payment_method": "transfer"})
    # the hold runs out (a long call) and a shop buyer takes one of the seats
    db.execute("UPDATE seat_holds SET expires_at = '2000-01-01T00:00:00Z'")
    db.commit()
    mine = hidden(html)[f"seat_{house_plan(office)}"]
    shop_buyer = db.execute("SELECT id FROM customers ORDER BY number DESC LIMIT 1").fetchone()["id"]
    sell_subscription(db, this_node(db), SubscriptionSaleIn(product_id=ring, customer_id=shop_buyer,
                                                            seat_ids=[mine], payment_method="card"),
                      channel="shop", holder="token:shop", now=utcnow())
    before = counts(db)
    response = await confirm(office, nonce_of(summary))
    text = await response.text()
    assert response.status == 409, re.findall(r'role="alert">(.*?)</p>', text)
    assert "Nicht verkauft:" in text and "Es wurde nichts gebucht." in text and "Parkett row" in text, \
        re.findall(r'role="alert">(.*?)</p>', text)
    assert 'id="alternatives"' in text and text.count("<tr><td") == 8  # a free seat in every date, now
    assert counts(db) == before  # nothing of it stored, in no date


async def test_a_seat_held_by_someone_else_cannot_be_held_and_nothing_is_held(office):
    from core.subscriptions import holds
    db = office.hub.db
    ring = product_id(office, "Abo-Ring A")
    html = await step(office, {"action": "product", "product_id": ring})
    html = await step(office, {**hidden(html), "action": "best"})
    fields = hidden(html)
    perf = ids(office)["rings"]["A"][-1]
    holds.hold(db, "token:shop-buyer", [(perf, fields[f"seat_{house_plan(office)}"])], now=utcnow())
    before = counts(db)
    html = await step(office, {**fields, "action": "hold"}, status=409)
    assert "Abgelehnt: Parkett row" in html, re.findall(r'role="alert">(.*?)</p>', html)
    assert counts(db) == before


async def test_forged_posts_are_refused_and_change_nothing(office, aiohttp_client, sample_hub):
    db = office.hub.db
    html, fields = await ring_with_pit_seat(office)
    before = counts(db)
    no_token = await office.post(NEW, data={**fields, "action": "hold"}, allow_redirects=False)
    assert no_token.status == 403
    elsewhere = await post_form(office, NEW, NEW, {**fields, "action": "hold"}, Origin="https://evil.example")
    assert elsewhere.status == 403
    assert counts(db) == before
    # a confirmation with a forged or foreign one-time number sells nothing
    assert (await confirm(office, "forged-number")).status == 409
    assert counts(db) == before
    # without a login: the login page, for the pages and the posts
    anonymous = await aiohttp_client(office.server.app)
    for path in (NEW, LIST):
        response = await anonymous.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/office/login")
    response = await anonymous.post(NEW, data={**fields, "action": "hold"}, allow_redirects=False)
    assert response.status == 303 and counts(db) == before


async def test_hostile_input_gets_a_clear_message_escaped_and_changes_nothing(office):
    db = office.hub.db
    before = counts(db)
    ring = product_id(office, "Abo-Ring A")
    html = await step(office, {"action": "product", "product_id": "<b>x</b>"}, status=400)
    assert "Dieses Abo-Produkt gibt es nicht" in html and "<b>x</b>" not in html
    html = await step(office, {"action": "pick", "product_id": ring, f"seat_{house_plan(office)}": "<script>x"},
                      status=400)
    assert "Abgelehnt:" in html and "<script>x" not in html and html.count('class="seatmap"') == 1
    unknown = "01900000-0000-7000-8000-000000000000"
    html = await step(office, {"action": "hold", "product_id": ring, f"seat_{house_plan(office)}": unknown},
                      status=422)
    assert "Abgelehnt:" in html
    html, fields = await ring_with_pit_seat(office)
    html = await step(office, {**fields, "action": "hold"})
    fields = hidden(html)
    before = counts(db)
    for name in ("<img src=x onerror=alert(1)>", "x" * 300):
        html = await step(office, {**fields, "action": "check", "customer_id": "new", "c_first_name": name,
                                   "c_last_name": name, "c_street": "Weg 1", "c_postcode": "28195",
                                   "c_town": "Bremen", "delivery": "mail", "payment_method": "transfer"},
                          status=400)
        assert "Die Kundendaten sind unvollständig oder ungültig." in html and "<img src=x" not in html
    html = await step(office, {**fields, "action": "check", "customer_id": customer(db)["id"],
                               "holder_name": "<b>Eve</b>", "delivery": "mail", "payment_method": "transfer"},
                      status=400)
    assert "keine Zeichen wie &lt; oder &gt;" in html and "<b>Eve</b>" not in html
    html = await step(office, {**fields, "action": "check", "customer_id": customer(db)["id"],
                               "tier_id": unknown, "delivery": "mail", "payment_method": "transfer"}, status=400)
    assert "Diese Ermäßigung gibt es hier nicht." in html
    html = await step(office, {**fields, "action": "check", "customer_id": customer(db)["id"],
                               "delivery": "drone", "payment_method": "transfer"}, status=400)
    assert 'name="nonce"' not in html
    assert counts(db) == before


async def test_the_sale_speaks_english(office):
    html = await step(office, {"action": "product", "product_id": product_id(office, "Abo-Ring A")}, "en")
    assert "Sell a subscription" in html and "Best available" in html and "Seating plan 1: 8 dates" in html
    html, fields = await ring_with_pit_seat(office, "en")
    assert "lacks the seat: choose a replacement" in html
    html = await step(office, {**fields, "action": "hold"}, "en")
    assert "Booked across all dates" in html and "Full price · €368.00" in html


# --- the subscriber list and a subscription's page ----------------------------------------------------------


async def api_sale(client, product: str, customer_id: str, key: str, **seats) -> dict:
    """A phone sale through the API (bearer token), so the cards are issued as after an office sale."""
    body = {"product_id": product, "customer_id": customer_id, "payment_method": "transfer", **seats}
    response = await client.post("/api/v1/subscriptions", json=body,
                                 headers={**client.hub.headers(), "Idempotency-Key": key})
    assert response.status == 201, await response.text()
    return await response.json()


@pytest.fixture
async def subscribers(office) -> dict:
    """Two ring A subscriptions (zone II, zone III) and a combi, for two customers."""
    db = office.hub.db
    first, second = db.execute("SELECT id FROM customers ORDER BY number LIMIT 2").fetchall()
    ring, plan = product_id(office, "Abo-Ring A"), house_plan(office)
    a = await api_sale(office, ring, first["id"], "a", seat_ids=[seat(db, "9", "10", plan=plan)], form="both")
    b = await api_sale(office, ring, second["id"], "b", seat_ids=[seat(db, "15", "3", plan=plan)])
    combi = product_id(office, "Kombi-Ticket Klassiker")
    best = await office.get(f"/api/v1/subscription-products/{combi}/best-available", headers=office.hub.headers())
    c = await api_sale(office, combi, second["id"], "c", seats=(await best.json())["bookings"])
    return {"a": a, "b": b, "c": c, "first": first["id"], "second": second["id"]}


async def test_the_list_filters_sorts_pages_and_downloads_csv(office, subscribers):
    html = await (await office.get(LIST)).text()
    assert html.count('href="/office/subscriptions/01') == 3 and 'id="new-link"' in html
    assert "Parkett 9/10" in html and "Abo-Ring A" in html and "aktiv" in html
    ring = product_id(office, "Abo-Ring A")
    only_ring = await (await office.get(LIST, params={"product": ring})).text()
    assert only_ring.count('href="/office/subscriptions/01') == 2 and "Kombi-Ticket" not in only_ring.split(
        'id="rows"')[1]
    combi_date = subscribers["c"]["seats"][-1]["performance_id"]  # the Studio date: the combi only
    at_date = await (await office.get(LIST, params={"performance": combi_date})).text()
    assert at_date.count('href="/office/subscriptions/01') == 1 and subscribers["c"]["number"] in at_date
    by_text = await (await office.get(LIST, params={"q": subscribers["a"]["number"]})).text()
    assert by_text.count('href="/office/subscriptions/01') == 1
    of_customer = await (await office.get(LIST, params={"customer": subscribers["second"]})).text()
    assert of_customer.count('href="/office/subscriptions/01') == 2
    paused = await (await office.get(LIST, params={"state": "paused"})).text()
    assert 'id="no-rows"' in paused
    by_number = await (await office.get(LIST, params={"sort": "-number"})).text()
    numbers = re.findall(r'>(ABO-\d{4}-\d+)</a>', by_number)
    assert numbers == sorted(numbers, reverse=True) and len(numbers) == 3
    page = await (await office.get(LIST, params={"size": "2", "page": "2"})).text()
    assert page.count('href="/office/subscriptions/01') == 1
    csv = await office.get(LIST + ".csv", params={"product": ring})
    text = (await csv.read()).decode("utf-8-sig")
    assert csv.status == 200 and text.startswith("Nummer;Kunde;Produkt;Ermäßigung;Plätze;Zustand;Preis;Datum")
    assert len(text.strip().splitlines()) == 3 and "Parkett 9/10" in text
    english = await (await office.get(LIST + ".csv", params={"lang": "en"})).read()
    assert english.decode("utf-8-sig").startswith("Number,Customer,Product,Discount,Seats,State,Price,Date")


async def test_the_customer_page_links_the_subscriptions(office, subscribers):
    html = await (await office.get(f"/office/customers/{subscribers['second']}")).text()
    assert f'href="/office/subscriptions?customer={subscribers["second"]}&amp;state=all"' in html
    assert f'href="/office/subscriptions/new?customer={subscribers["second"]}"' in html


async def test_the_page_shows_seats_cards_and_order_and_changes_tier_form_state(office, subscribers):
    db = office.hub.db
    sub = subscribers["a"]
    path = f"{LIST}/{sub['id']}"
    html = await (await office.get(path)).text()
    assert html.count('data-performance="') == 8 and "Parkett · Reihe 9 · Platz 10" in html
    assert 'id="cards"' in html and "Abo-Ausweis" in html and "Einzelticket" in html  # form both: pass + 8
    assert f'href="/office/orders/{sub["order_id"]}"' in html
    tier = db.execute("SELECT id FROM discount_tiers WHERE product_id = ? AND name = 'Frühbucher'",
                      (sub["product_id"],)).fetchone()["id"]
    response = await post_form(office, path, path + "/change", {"action": "tier", "tier_id": tier})
    assert response.status == 303
    row = db.execute("SELECT tier_id, price_cents, form, state FROM subscriptions WHERE id = ?",
                     (sub["id"],)).fetchone()
    assert row["tier_id"] == tier and row["price_cents"] == sub["price_cents"]  # for the next season only
    response = await post_form(office, path, path + "/change", {"action": "form", "form": "single_tickets"})
    assert response.status == 303
    assert db.execute("SELECT form FROM subscriptions WHERE id = ?", (sub["id"],)).fetchone()["form"] == \
        "single_tickets"
    assert db.execute("SELECT revoked_at FROM cards WHERE order_item_id = ? AND kind = 'subscription'",
                      (sub["line_id"],)).fetchone()["revoked_at"]
    for action, state in (("pause", "paused"), ("resume", "active")):
        response = await post_form(office, path, path + "/change", {"action": action})
        assert response.status == 303
        assert db.execute("SELECT state FROM subscriptions WHERE id = ?", (sub["id"],)).fetchone()["state"] == state
    season = ids(office)["season"]
    response = await post_form(office, path, path + "/change", {"action": "cancel", "ends_season_id": season})
    assert response.status == 303
    row = db.execute("SELECT state, ends_season_id FROM subscriptions WHERE id = ?", (sub["id"],)).fetchone()
    assert row["state"] == "cancelled" and row["ends_season_id"] == season
    html = await (await office.get(path + "?lang=en")).text()
    assert "A cancelled subscription is not changed any more." in html and 'id="ends">2026/27' in html
    before = counts(db)
    refused = await post_form(office, path, path + "/change", {"action": "resume"})
    assert refused.status == 409 and "is cancelled" in await refused.text()
    assert counts(db) == before


async def test_changes_refuse_forged_and_hostile_posts_and_change_nothing(office, subscribers):
    db = office.hub.db
    sub = subscribers["b"]
    path = f"{LIST}/{sub['id']}"
    state = dict(db.execute("SELECT * FROM subscriptions WHERE id = ?", (sub["id"],)).fetchone())
    before = counts(db)
    assert (await office.post(path + "/change", data={"action": "pause"}, allow_redirects=False)).status == 403
    assert (await post_form(office, path, path + "/change", {"action": "pause"},
                            Origin="https://evil.example")).status == 403
    bad = await post_form(office, path, path + "/change", {"action": "<b>drop</b>"})
    assert bad.status == 400 and "Unbekannte Änderung." in await bad.text()
    bad = await post_form(office, path, path + "/change", {"action": "tier", "tier_id": "<b>x</b>" * 50})
    text = await bad.text()
    assert bad.status == 422 and "Abgelehnt:" in text and "<b>x</b>" not in text
    bad = await post_form(office, path, path + "/change", {"action": "form", "form": "hologram"})
    assert bad.status == 422
    unknown = await post_form(office, path, f"{LIST}/01900000-0000-7000-8000-000000000000/change",
                              {"action": "pause"})
    assert unknown.status == 404
    assert counts(db) == before
    assert dict(db.execute("SELECT * FROM subscriptions WHERE id = ?", (sub["id"],)).fetchone()) == state


async def test_a_seat_change_on_the_map_for_one_date_and_for_the_whole_ring(office, subscribers):
    db = office.hub.db
    sub, plan = subscribers["a"], house_plan(office)
    path = f"{LIST}/{sub['id']}"
    perf = sub["seats"][2]["performance_id"]
    page = f"{path}/seats?performance={perf}"
    html = await (await office.get(page)).text()
    assert html.count('class="seatmap"') == 1 and 'script-src' not in html
    new_one = seat(db, "9", "11", plan=plan)
    html = await (await post_form(office, page, path + "/seats", {"performance": perf, "action": "pick",
                                                                    "seat_id": new_one})).text()
    assert 'id="chosen">Parkett · Reihe 9 · Platz 11' in html
    # another zone is refused: the price paid stays, so does the zone
    other_zone = seat(db, "2", "10", plan=plan)
    before = counts(db)
    refused = await post_form(office, page, path + "/seats", {"performance": perf, "action": "move",
                                                               "seat_id": other_zone})
    assert refused.status == 422 and "another price zone" in await refused.text()
    assert counts(db) == before
    moved = await post_form(office, page, path + "/seats", {"performance": perf, "action": "move",
                                                             "seat_id": new_one})
    assert moved.status == 303
    now = {t["performance_id"]: t["seat_id"] for t in db.execute(
        "SELECT performance_id, seat_id FROM tickets WHERE line_id = ? AND status = 'sold'", (sub["line_id"],))}
    assert now[perf] == new_one and sum(s == new_one for s in now.values()) == 1
    # the whole ring group on the house's plan: one new seat in all 8 dates
    group = f"{path}/seats?plan={plan}"
    target = seat(db, "10", "10", plan=plan)
    moved = await post_form(office, group, path + "/seats", {"plan": plan, "action": "move", "seat_id": target})
    assert moved.status == 303, re.findall(r'role="alert">(.*?)</p>', await moved.text())
    now = [t["seat_id"] for t in db.execute(
        "SELECT seat_id FROM tickets WHERE line_id = ? AND status = 'sold'", (sub["line_id"],))]
    assert now == [target] * 8


async def test_a_group_seat_change_to_a_pit_seat_steps_through_the_variant_lacking_it(office, subscribers):
    db = office.hub.db
    plan = house_plan(office)  # a zone I subscription: the pit rows are zone I
    sub = await api_sale(office, product_id(office, "Abo-Ring A"), subscribers["first"], "zone-1",
                         seat_ids=[seat(db, "4", "12", plan=plan)])
    path = f"{LIST}/{sub['id']}"
    group = f"{path}/seats?plan={plan}"
    pit_seat, standard = seat(db, "A", "5", plan=plan), variant(db, STANDARD)
    html = await (await office.get(group)).text()
    assert f'data-seat-id="{pit_seat}"' not in html  # the lead (pit open) map has no row A
    html = await (await post_form(office, group, path + "/seats", {"plan": plan,
                                                                     "action": f"view:{variant(db, PIT)}"})).text()
    assert re.search(rf'data-seat-id="{pit_seat}"[^>]*data-state="free"', html)  # the pit variant's tab
    html = await (await post_form(office, group, path + "/seats", {"plan": plan, "action": "pick",
                                                                     "view": variant(db, PIT),
                                                                     "seat_id": pit_seat})).text()
    assert re.search(rf'data-seat-id="{pit_seat}"[^>]*data-state="selected"', html)
    assert f'id="step-{standard}"' in html  # the standard variant (pit open) lacks row A
    suggestion = re.search(rf'name="repl_{standard}" value="([^"]+)"', html).group(1)
    moved = await post_form(office, group, path + "/seats", {"plan": plan, "action": "move", "seat_id": pit_seat,
                                                              f"repl_{standard}": suggestion})
    assert moved.status == 303, re.findall(r'role="alert">(.*?)</p>', await moved.text())
    seats = {t["seat_id"] for t in db.execute(
        "SELECT seat_id FROM tickets WHERE line_id = ? AND status = 'sold'", (sub["line_id"],))}
    assert seats == {pit_seat, suggestion}


# --- in Chromium ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_ring_sold_on_the_seat_map_across_two_plan_variants_in_chromium(tmp_path):
    from core.base.storage import connect
    from hub.app import DB_NAME

    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("subs-[0-9]*.png"):  # its own, not subs-party-*
        old.unlink(missing_ok=True)
    with office_in_chromium(tmp_path) as served:
        page, url = served.page, served.hub.url
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        db = connect(served.hub_dir / DB_NAME)
        try:
            plan = served.ids["plans"]["Großes Haus"]
            pit, standard = variant(db, PIT), variant(db, STANDARD)
            pit_seat, other = seat(db, "A", "8", plan=plan), seat(db, "2", "9", plan=plan)
            neighbour = seat(db, "2", "10", plan=plan)
            buyer = db.execute("SELECT id, last_name FROM customers ORDER BY number LIMIT 1").fetchone()
            tier = db.execute("SELECT id FROM discount_tiers WHERE product_id = ? AND name = 'Schüler/Studierende'",
                              (served.ids["subscriptions"]["Abo-Ring A"],)).fetchone()["id"]
        finally:
            db.close()
        page.goto(url + "/office/subscriptions")
        page.screenshot(path=SHOTS / "subs-0-list-de.png")
        page.click("#new-link")
        page.select_option("#product_id", served.ids["subscriptions"]["Abo-Ring A"])
        page.click("#choose-product")
        page.wait_for_selector(".seatmap svg")
        page.screenshot(path=SHOTS / "subs-1-map-de.png")
        page.click(f"#tab-{pit}")  # the pit-covered variant's map: its rows A and B
        page.wait_for_selector(f'#tab-{pit}[aria-pressed="true"]')
        page.click(f'[data-seat-id="{pit_seat}"]')  # a click on the map picks the seat (seatpick.js)
        page.wait_for_selector(f"#step-{standard}")  # the standard variant lacks row A: a step
        assert page.get_attribute(f'[data-seat-id="{pit_seat}"]', "data-state") == "selected"
        page.locator(f"#step-{standard}").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "subs-2-variant-step-de.png")
        page.focus(f'[data-input="repl_{standard}"] [data-seat-id="{other}"]')  # keyboard: focus and Enter
        page.keyboard.press("Enter")
        page.wait_for_selector(f'[data-input="repl_{standard}"] [data-seat-id="{other}"][data-state="selected"]')
        assert page.input_value(f'input[name="repl_{standard}"]') == other
        page.click("#hold")
        page.wait_for_selector("#held")
        booked = page.inner_text("#booked")
        assert booked.count("Reihe A · Platz 8") == 4 and booked.count("Reihe 2 · Platz 9") == 4
        page.locator("#booked").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "subs-3-booked-de.png")
        page.fill("#q", buyer["last_name"])
        page.click("#find")
        page.check(f'input[name=customer_id][value="{buyer["id"]}"]')
        page.select_option("#tier_id", tier)
        page.check("#form-pass")
        page.click("#check")
        page.wait_for_selector("#summary")
        assert page.inner_text("#price") == "Summe: 184,00 €"
        page.locator("#summary").scroll_into_view_if_needed()
        page.screenshot(path=SHOTS / "subs-4-summary-de.png")
        page.click("#confirm")
        page.wait_for_selector("#seats")
        assert page.locator("#seats tbody tr").count() == 8 and "Abo-Ausweis" in page.inner_text("#cards")
        page.screenshot(path=SHOTS / "subs-5-detail-de.png", full_page=True)
        detail = page.url
        page.click("#seats tbody tr:nth-child(1) a")  # change the first date's seat on its map
        page.wait_for_selector("#move .seatmap svg")
        page.click(f'[data-seat-id="{neighbour}"]')
        page.wait_for_selector("#chosen")
        assert page.inner_text("#chosen") == "Parkett · Reihe 2 · Platz 10"
        page.screenshot(path=SHOTS / "subs-8-seat-change-de.png")
        page.click("#do-move")
        page.wait_for_selector("#seats")
        assert "Parkett · Reihe 2 · Platz 10" in page.inner_text("#seats tbody tr:nth-child(1)")
        page.goto(detail + "?lang=en")
        page.screenshot(path=SHOTS / "subs-6-detail-en.png")
        page.goto(url + "/office/subscriptions?lang=de")
        assert page.locator("#rows tbody tr").count() == 1
        page.screenshot(path=SHOTS / "subs-7-list-de.png")
        assert refused == []  # the page's script is its own file: no inline script refused by the CSP


async def test_only_the_map_pages_run_a_script_and_only_the_hubs_own(office):
    script = await office.get("/office/static/seatpick.js")
    assert script.status == 200 and script.content_type == "text/javascript"
    assert "requestSubmit" in await script.text()
    sale = await office.get(NEW)
    assert "script-src 'self'" in sale.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in sale.headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]
    assert re.findall(r"<script[^>]*>", await sale.text()) == ['<script src="/office/static/seatpick.js">']
    listing = await office.get(LIST)
    assert "script-src" not in listing.headers["Content-Security-Policy"]


# --- the API's variant steps (what the map steps through) ---------------------------------------------------


async def test_variant_steps_over_http_name_the_variant_its_free_seats_and_a_suggestion(office):
    from hub.services import tokens
    db, plan = office.hub.db, house_plan(office)
    ring = product_id(office, "Abo-Ring A")
    path = f"/api/v1/subscription-products/{ring}/variant-steps"
    auth = office.hub.headers()
    pit_seat = seat(db, "A", "8", plan=plan)
    response = await office.get(path, params={"seat_ids": pit_seat}, headers=auth)
    found = await response.json()
    assert response.status == 200, found
    (only,) = found["steps"]
    assert only["variant_id"] == variant(db, STANDARD) and only["missing_seat_id"] == pit_seat
    assert len(only["performance_ids"]) == 4 and only["suggestion"] in only["free_seat_ids"]
    assert pit_seat not in only["free_seat_ids"]
    none = await (await office.get(path, params={"seat_ids": seat(db, "9", "10", plan=plan)}, headers=auth)).json()
    assert none["steps"] == []  # a seat every variant has: nothing to step through
    before = counts(db)
    for params, status in (({}, 400), ({"seat_ids": "<script>"}, 400), ({"seat_ids": ",".join([pit_seat] * 201)}, 400),
                           ({"seat_ids": "01900000-0000-7000-8000-000000000000"}, 422)):
        response = await office.get(path, params=params, headers=auth)
        assert response.status == status, (params, await response.text())
    combi = product_id(office, "Kombi-Ticket Klassiker")
    response = await office.get(f"/api/v1/subscription-products/{combi}/variant-steps",
                                params={"seat_ids": pit_seat}, headers=auth)
    assert response.status == 422 and "no variant steps" in (await response.json())["detail"]
    shop, _ = tokens.create_token(db, "Webshop", "shop")
    response = await office.get(path, params={"seat_ids": pit_seat}, headers=office.hub.headers(shop))
    assert response.status == 403
    assert counts(db) == before
