"""The office's choice-voucher screens (issue 15, S10): vouchers scanned or typed into a list and
read (value, tier, state, offer), a performance of their common offer, a free seat of the hub's
pool on the map, the rule, the split shown before booking (`POST /voucher-redemptions/quote`,
nothing stored), the rest paid, and the redemption booked exactly once; the lookup of a voucher
and, once redeemed, its order and ticket. The bad day: used, forged, unknown and doubled
vouchers, a seat sold between the check and the booking, a rest without a payment method, a
forged or foreign POST, a stale or someone else's confirmation: refused in the page's language,
nothing stored. Real SQLite copies of the sample hub, the real app on loopback, real sessions;
the walk in Chromium against `tessera hub serve` with screenshots in test-output/office/."""

from __future__ import annotations

import re

import pytest

from core.base.clock import utcnow
from core.sales.tickets import SaleIn, sell
from hub.app import DB_NAME
from tests.helpers import table_counts
from tests.office import SHOTS, form_token, office_in_chromium, post_form, signed_in
from tests.test_subscription_sale import product, tier

PAGE = "/office/voucher-redemptions"
VOUCHER = "Wahlgutschein 6er"
DISABLED = "Schwerbehinderte (GdB ab 50)"
LEDGER = ("orders", "order_lines", "tickets", "payments", "choice_voucher_redemptions")


def ledger(db) -> dict[str, int]:
    counts = table_counts(db)
    return {t: counts[t] for t in LEDGER}


def customer(db) -> str:
    return db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]


async def sell_vouchers(clerk) -> list[dict]:
    """The same sale over the API (as the office's phone sale makes it)."""
    hub = clerk.hub
    body = {"product_id": product(hub, VOUCHER), "customer_id": customer(hub.db), "payment_method": "transfer",
            "tier_id": tier(hub.db, product(hub, VOUCHER), DISABLED)}
    sold = await clerk.post("/api/v1/subscriptions", json=body, headers={**hub.headers(), "Idempotency-Key": "v"})
    assert sold.status == 201, await sold.text()
    listed = await clerk.get(f"/api/v1/subscriptions/{(await sold.json())['id']}/choice-vouchers",
                             headers=hub.headers())
    return (await listed.json())["items"]


def house_dates(db, ids: dict) -> list[str]:
    """The voucher offer's performances in the Großes Haus that lie ahead, by date."""
    rows = db.execute("SELECT p.id FROM subscription_performances sp JOIN performances p ON p.id = sp.performance_id "
                      "JOIN plan_variants v ON v.id = p.variant_id WHERE sp.product_id = ? AND p.starts_at > ? "
                      "AND v.plan_id = ? ORDER BY p.starts_at",
                      (ids["subscriptions"][VOUCHER], utcnow().isoformat(), ids["plans"]["Großes Haus"]))
    return [r["id"] for r in rows]


def free_seat(db, ids: dict, performance_id: str, zone_code: str, skip: int = 0) -> str:
    """A free seat of the hub's pool in the zone, offered by the performance's variant."""
    row = db.execute(
        "SELECT s.id FROM seats s JOIN performances p ON p.id = ? JOIN plan_variants v ON v.id = p.variant_id "
        "WHERE s.plan_id = v.plan_id AND s.zone_id = ? AND s.active = 1 AND (s.variant_id IS NULL OR "
        "s.variant_id = v.id) AND s.id NOT IN (SELECT seat_id FROM variant_removed_seats WHERE variant_id = v.id) "
        "AND s.id NOT IN (SELECT seat_id FROM tickets WHERE performance_id = p.id AND status = 'sold') "
        "AND s.id NOT IN (SELECT seat_id FROM seat_pools WHERE performance_id = p.id AND pool <> 'hub') "
        "AND s.wheelchair = 0 AND s.companion = 0 ORDER BY s.id LIMIT 1 OFFSET ?",
        (performance_id, ids["zones"][zone_code], skip)).fetchone()
    return row["id"]


def nonce_of(html: str) -> str:
    return re.search(r'name="nonce" value="([^"]+)"', html).group(1)


def cell(html: str, id_: str) -> str:
    return re.search(rf'id="{id_}"[^>]*>([^<]*)<', html).group(1)


async def checked(clerk, fields: dict) -> tuple[int, str]:
    response = await post_form(clerk, PAGE, PAGE, {**fields, "action": "check"})
    return response.status, await response.text()


# --- the redemption ---------------------------------------------------------------------------------------


async def test_two_vouchers_pay_a_dearer_seat_the_rest_by_card_booked_once(hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, hub, role="office")
    vouchers = await sell_vouchers(clerk)
    perf = house_dates(hub.db, hub.ids)[0]
    seat = free_seat(hub.db, hub.ids, perf, "1")  # 58,00 €
    numbers = "\n".join(v["number"] for v in vouchers[:2])
    read = await post_form(clerk, PAGE, PAGE, {"vouchers": numbers, "action": "read"})
    html = await read.text()
    assert read.status == 200 and html.count('data-state="open"') == 2 and "25,00 €" in html and DISABLED in html
    assert f'<option value="{perf}"' in html  # a performance of the common offer ahead
    shown = await post_form(clerk, PAGE, PAGE, {"vouchers": numbers, "performance_id": perf, "action": "perf"})
    html = await shown.text()
    assert f'data-seat-id="{seat}" data-state="free"' in html and "58,00 €" in html and 'id="check" disabled' in html
    picked = await post_form(clerk, PAGE, PAGE, {"vouchers": numbers, "performance_id": perf, "seat_id": seat,
                                                 "rule": "value", "action": "pick"})
    html = await picked.text()
    assert f'data-seat-id="{seat}" data-state="selected"' in html and "58,00 €" in cell(html, "chosen")
    before = ledger(hub.db)
    status, html = await checked(clerk, {"vouchers": numbers, "performance_id": perf, "seat_id": seat,
                                         "rule": "value"})
    assert status == 200 and ledger(hub.db) == before  # the split is shown, nothing booked
    assert (cell(html, "price"), cell(html, "used"), cell(html, "lapsed"), cell(html, "rest")) == \
        ("58,00 €", "50,00 €", "0,00 €", "8,00 €")
    assert cell(html, "discount") == f"{DISABLED} – {VOUCHER}"
    nonce = nonce_of(html)
    booked = await post_form(clerk, PAGE, PAGE + "/confirm", {"nonce": nonce, "payment_method": "card",
                                                              "payment_reference": "Beleg 4711"})
    assert booked.status == 303
    done = booked.headers["Location"]
    order_id = done.rsplit("/", 1)[1]
    payments = [(r["method"], r["amount_cents"], r["reference"]) for r in hub.db.execute(
        "SELECT method, amount_cents, reference FROM payments WHERE order_id = ? ORDER BY method DESC, reference",
        (order_id,))]
    assert payments == [("voucher", 2500, vouchers[0]["number"]), ("voucher", 2500, vouchers[1]["number"]),
                        ("card", 800, "Beleg 4711")]
    again = await post_form(clerk, PAGE, PAGE + "/confirm", {"nonce": nonce, "payment_method": "card"})
    assert again.status == 303 and again.headers["Location"] == done  # a double click: the same redemption
    assert ledger(hub.db) == {**before, "orders": before["orders"] + 1, "order_lines": before["order_lines"] + 1,
                              "tickets": before["tickets"] + 1, "payments": before["payments"] + 3,
                              "choice_voucher_redemptions": before["choice_voucher_redemptions"] + 2}
    html = await (await clerk.get(done)).text()
    assert "Eingelöst" in html and cell(html, "ticket-price") == "58,00 €" and "Wahlgutschein" in html
    assert html.count("data-method=") == 3 and "Beleg 4711" in html
    order_page = await (await clerk.get(f"/office/orders/{order_id}")).text()
    assert "Wahlgutschein" in order_page  # the order's voucher payments are named


async def test_one_voucher_as_payment_for_a_cheaper_seat_lapses_the_rest_and_needs_no_payment(hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, hub, role="admin")
    vouchers = await sell_vouchers(clerk)
    perf = house_dates(hub.db, hub.ids)[1]
    seat = free_seat(hub.db, hub.ids, perf, "4")  # 22,00 €
    status, html = await checked(clerk, {"vouchers": vouchers[0]["code"], "performance_id": perf, "seat_id": seat,
                                         "rule": "payment"})  # scanned: the signed code
    assert status == 200 and (cell(html, "used"), cell(html, "lapsed"), cell(html, "rest")) == \
        ("22,00 €", "3,00 €", "0,00 €")
    assert cell(html, "discount") == "–" and 'id="payment_method"' not in html
    booked = await post_form(clerk, PAGE, PAGE + "/confirm", {"nonce": nonce_of(html)})
    assert booked.status == 303
    row = hub.db.execute("SELECT * FROM choice_voucher_redemptions WHERE voucher_id = ?",
                         (vouchers[0]["id"],)).fetchone()
    assert (row["rule"], row["used_cents"], row["lapsed_cents"], row["discount_label"]) == ("payment", 2200, 300, None)


# --- the bad day ------------------------------------------------------------------------------------------


async def test_used_forged_unknown_and_doubled_vouchers_are_named_and_stop_the_redemption(hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, hub, role="office")
    vouchers = await sell_vouchers(clerk)
    perf = house_dates(hub.db, hub.ids)[0]
    seat = free_seat(hub.db, hub.ids, perf, "3")
    status, html = await checked(clerk, {"vouchers": vouchers[5]["number"], "performance_id": perf,
                                         "seat_id": seat, "rule": "value"})
    await post_form(clerk, PAGE, PAGE + "/confirm", {"nonce": nonce_of(html), "payment_method": "cash"})
    code = vouchers[0]["code"]
    forged = code[:-6] + ("AAAAAA" if not code.endswith("AAAAAA") else "BBBBBB")
    before = ledger(hub.db)
    cases = [(vouchers[5]["number"], "ist nicht einlösbar: eingelöst"),
             (forged, "Gefälschter oder fremder Gutschein"),
             ("WG-2026-999999", "Kein Gutschein mit der Nummer WG-2026-999999"),
             (f"{vouchers[1]['number']}\n{vouchers[1]['code']}", f"Gutschein {vouchers[1]['number']} ist doppelt"),
             ("\n".join(v["number"] for v in vouchers) + "\n" + "\n".join(f"WG-2026-00{k}" for k in range(5)),
              "Höchstens 10 Gutscheine")]
    for text, words in cases:
        read = await post_form(clerk, PAGE, PAGE, {"vouchers": text, "action": "read"})
        html = await read.text()
        assert words in html and 'id="performance"' not in html, text
        status, html = await checked(clerk, {"vouchers": text, "performance_id": perf, "seat_id": seat,
                                             "rule": "value"})
        assert status == 400 and words in html and 'name="nonce"' not in html, text
    english = await post_form(clerk, PAGE, PAGE + "?lang=en", {"vouchers": forged, "action": "read"})
    assert "forged or foreign voucher" in await english.text()
    assert ledger(hub.db) == before


async def test_a_seat_sold_between_check_and_booking_and_a_rest_without_method_book_nothing(hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, hub, role="office")
    vouchers = await sell_vouchers(clerk)
    perf = house_dates(hub.db, hub.ids)[0]
    seat = free_seat(hub.db, hub.ids, perf, "1")
    fields = {"vouchers": vouchers[0]["number"], "performance_id": perf, "seat_id": seat, "rule": "value"}
    status, html = await checked(clerk, fields)
    assert status == 200 and cell(html, "rest") == "33,00 €"
    before = ledger(hub.db)
    no_method = await post_form(clerk, PAGE, PAGE + "/confirm", {"nonce": nonce_of(html)})
    text = await no_method.text()
    assert no_method.status == 422 and "Bitte die Zahlungsart für den Rest wählen" in text
    assert ledger(hub.db) == before
    sell(hub.db, hub.db.execute("SELECT * FROM node").fetchone(),
         SaleIn(performance_id=perf, seat_ids=[seat], payment_method="cash"), pool="hub", channel="phone",
         now=utcnow())
    before = ledger(hub.db)
    lost = await post_form(clerk, PAGE, PAGE + "/confirm", {"nonce": nonce_of(html), "payment_method": "cash"})
    text = await lost.text()
    assert lost.status == 409 and "Nicht eingelöst" in text and "ist schon verkauft" in text
    assert vouchers[0]["number"] in text  # the form comes back with the vouchers to choose another seat
    assert ledger(hub.db) == before
    state = hub.db.execute("SELECT state FROM choice_vouchers WHERE id = ?", (vouchers[0]["id"],)).fetchone()["state"]
    assert state == "open"


async def test_forged_posts_and_stale_or_foreign_confirmations_change_nothing(hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, hub, role="office")
    other = await signed_in(aiohttp_client, hub, role="office", user="zweite")
    vouchers = await sell_vouchers(clerk)
    perf = house_dates(hub.db, hub.ids)[0]
    fields = {"vouchers": vouchers[0]["number"], "performance_id": perf,
              "seat_id": free_seat(hub.db, hub.ids, perf, "4"), "rule": "value"}
    status, html = await checked(clerk, fields)
    nonce = nonce_of(html)
    before = ledger(hub.db)
    for data in ({"nonce": nonce}, {"nonce": nonce, "csrf": "x" * 43}):
        assert (await clerk.post(PAGE + "/confirm", data=data, allow_redirects=False)).status == 403
    token = await form_token(clerk, PAGE)
    foreign = await clerk.post(PAGE + "/confirm", data={"csrf": token, "nonce": nonce},
                               headers={"Origin": "https://evil.example"}, allow_redirects=False)
    assert foreign.status == 403
    stolen = await post_form(other, PAGE, PAGE + "/confirm", {"nonce": nonce})
    unknown = await post_form(clerk, PAGE, PAGE + "/confirm", {"nonce": "nope"})
    assert stolen.status == unknown.status == 409 and "nicht (mehr) bekannt" in await unknown.text()
    assert ledger(hub.db) == before
    long_field = await post_form(clerk, PAGE, PAGE, {"vouchers": "W" * 2001, "action": "read"})
    assert long_field.status == 403 and ledger(hub.db) == before


async def test_the_lookup_shows_an_open_voucher_and_a_redeemed_ones_order_and_ticket(hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, hub, role="office")
    vouchers = await sell_vouchers(clerk)
    start = await (await clerk.get("/office/")).text()
    assert f'href="{PAGE}"' in start and "Wahlgutscheine" in start  # in the office navigation
    html = await (await clerk.get("/office/choice-vouchers", params={"q": vouchers[0]["number"]})).text()
    assert 'data-state="open"' in html and 'id="redeem-this"' in html and DISABLED in html
    perf = house_dates(hub.db, hub.ids)[0]
    seat = free_seat(hub.db, hub.ids, perf, "2")
    status, checked_html = await checked(clerk, {"vouchers": vouchers[0]["number"], "performance_id": perf,
                                                 "seat_id": seat, "rule": "value"})
    booked = await post_form(clerk, PAGE, PAGE + "/confirm", {"nonce": nonce_of(checked_html),
                                                              "payment_method": "transfer"})
    order = hub.db.execute("SELECT number FROM orders WHERE id = ?",
                           (booked.headers["Location"].rsplit("/", 1)[1],)).fetchone()["number"]
    html = await (await clerk.get("/office/choice-vouchers", params={"q": vouchers[0]["code"]})).text()
    assert 'data-state="redeemed"' in html and order in html and 'id="ticket"' in html
    assert "46,00 €" in html and 'id="redeem-this"' not in html
    english = await (await clerk.get("/office/choice-vouchers", params={"q": "WG-2026-999999", "lang": "en"})).text()
    assert "No voucher found" in english and "no voucher number WG-2026-999999" in english
    redeem_link = await (await clerk.get(PAGE, params={"v": vouchers[1]["number"]})).text()
    assert 'data-state="open"' in redeem_link


async def test_the_navigation_marks_choice_vouchers_on_the_redemption_and_on_the_lookup(hub, aiohttp_client):
    """The lookup lives at its own address; the "Wahlgutscheine" entry stays marked there, and only it."""
    clerk = await signed_in(aiohttp_client, hub, role="office")
    for path in (PAGE, "/office/choice-vouchers", "/office/choice-vouchers?q=WG-2026-999999"):
        html = await (await clerk.get(path)).text()
        marked = re.findall(r'<a href="([^"]+)" aria-current="page">([^<]*)</a>', html.split('id="nav"')[1])
        assert marked == [(PAGE, "Wahlgutscheine")], (path, marked)
    subscriptions = await (await clerk.get("/office/subscriptions")).text()
    assert f'<a href="{PAGE}" aria-current' not in subscriptions


async def test_the_api_quote_is_the_redemptions_split_and_stores_nothing(hub, aiohttp_client):
    clerk = await signed_in(aiohttp_client, hub, role="admin")
    vouchers = await sell_vouchers(clerk)
    perf = house_dates(hub.db, hub.ids)[0]
    body = {"vouchers": [{"number": v["number"]} for v in vouchers[:2]], "performance_id": perf,
            "seat_id": free_seat(hub.db, hub.ids, perf, "1"), "rule": "value"}
    before = ledger(hub.db)
    quoted = await clerk.post("/api/v1/voucher-redemptions/quote", json=body, headers=hub.headers())
    quote = await quoted.json()
    assert quoted.status == 200 and ledger(hub.db) == before
    done = await clerk.post("/api/v1/voucher-redemptions", json={**body, "payment_method": "cash"},
                            headers=hub.headers())
    redeemed = await done.json()
    assert done.status == 201, redeemed
    for key in ("total_cents", "used_cents", "lapsed_cents", "paid_cents"):
        assert quote[key] == redeemed[key]
    assert quote["vouchers"] == redeemed["vouchers"] and quote["discount_label"] == redeemed["ticket"]["discount_label"]
    again = await clerk.post("/api/v1/voucher-redemptions/quote", json=body, headers=hub.headers())
    problem = await again.json()
    assert again.status == 409 and "bereits am" in problem["detail_de"]


# --- in Chromium --------------------------------------------------------------------------------------------


def _sell_over_http(served, db) -> list[dict]:
    """Six vouchers sold by phone over the served hub's API (admin token), by position."""
    import json
    import urllib.request

    prod = served.ids["subscriptions"][VOUCHER]
    body = {"product_id": prod, "customer_id": customer(db), "payment_method": "transfer",
            "tier_id": tier(db, prod, DISABLED)}
    request = urllib.request.Request(served.hub.url + "/api/v1/subscriptions", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {served.token}", "Idempotency-Key": "v",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        sub = json.loads(answer.read())
    return db.execute("SELECT number, code FROM choice_vouchers WHERE subscription_id = ? ORDER BY position",
                      (sub["id"],)).fetchall()


@pytest.mark.slow
def test_the_office_redeems_two_vouchers_for_a_dearer_ticket_in_chromium(tmp_path):
    """German, then English on the same hub (one hub and browser instead of one per language):
    the first two of the six vouchers for a seat in German, the next two for another in English."""
    from core.base.storage import connect

    with office_in_chromium(tmp_path, lang="de") as served:
        page, db = served.page, connect(served.hub_dir / DB_NAME)
        sold = _sell_over_http(served, db)
        perf = house_dates(db, served.ids)[0]
        for lang, vouchers in (("de", sold[:2]), ("en", sold[2:4])):
            _redeem_two(page, served, db, perf, vouchers, lang)
        db.close()


def _redeem_two(page, served, db, perf: str, vouchers: list, lang: str) -> None:
    words = {"de": ("Eingelöst", "Rest zu zahlen"), "en": ("Redeemed", "Rest to pay")}[lang]
    seat = free_seat(db, served.ids, perf, "1")
    page.goto(f"{served.hub.url}/office/?lang={lang}")
    page.click(f'#nav a[href="{PAGE}"]')
    page.wait_for_selector("#scan")
    page.fill("#scan", vouchers[0]["code"])  # a scanner types the code and Enter
    page.press("#scan", "Enter")
    page.wait_for_selector(f'tr[data-number="{vouchers[0]["number"]}"]')
    page.fill("#scan", vouchers[1]["number"])  # a typed number
    page.press("#scan", "Enter")
    page.wait_for_selector(f'tr[data-number="{vouchers[1]["number"]}"]')
    assert page.locator('#voucher-rows tr[data-state="open"]').count() == 2
    page.screenshot(path=SHOTS / f"vouchers-1-read-{lang}.png")
    page.select_option("#performance", perf)
    page.click("#perf-pick")
    page.wait_for_selector(f'g[data-seat-id="{seat}"]')
    page.click(f'g[data-seat-id="{seat}"]')
    page.wait_for_selector(f'g[data-seat-id="{seat}"][data-state="selected"]')
    page.check("#rule-value")
    page.screenshot(path=SHOTS / f"vouchers-2-seat-{lang}.png", full_page=True)
    page.click("#check")
    page.wait_for_selector("#split")
    assert words[1] in page.inner_text("#split") and "8" in page.inner_text("#rest")
    page.select_option("#payment_method", "cash")
    page.screenshot(path=SHOTS / f"vouchers-3-split-{lang}.png")
    page.click("#confirm")
    page.wait_for_selector("#redeemed-vouchers")
    assert words[0] in page.inner_text("#title")
    assert page.locator("#payments tr[data-method]").count() == 3
    page.screenshot(path=SHOTS / f"vouchers-4-done-{lang}.png", full_page=True)
    page.click(f'#redeemed-vouchers a:has-text("{vouchers[0]["number"]}")')
    page.wait_for_selector("#voucher")
    assert page.get_attribute("#voucher", "data-state") == "redeemed"
    page.screenshot(path=SHOTS / f"vouchers-5-lookup-{lang}.png", full_page=True)
