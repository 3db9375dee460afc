"""Agencies selling subscriptions (issue 13, S16): an agency token sees only products released to
agencies in an open agency window and only tiers bookable by all; it books only seats of its own
contingent (`agency:<token id>`, moved there by the office with the pools API); another agency and
the hub's shop cannot take them; the organizer sees the agencies' sales per agency. The real hub app
on a copy of the sample hub, over HTTP on loopback, on a clock the test sets."""

from __future__ import annotations

import pytest

from hub.app import make_app
from hub.services import tokens
from hub.web.clock import CLOCK
from tests.test_shop_subscriptions import CUSTOMER, Clock, Shop, ledger, order_body
from tests.test_subscription_sale import GENERAL, RENEWAL, house, product, seat, tier

ROWS = ("2", "3")  # the agency's contingent: 1. Rang rows 2 and 3, seats 8-12, in every date of Ring A


@pytest.fixture
async def agency(aiohttp_client, sample_hub) -> Shop:
    """An agency (its token) with its own contingent in Ring A, and the app on a set clock."""
    secret, row = tokens.create_token(sample_hub.db, "Reisebüro Weser", "agency")
    app = make_app(sample_hub.db)
    app[CLOCK] = Clock(GENERAL)
    client = await aiohttp_client(app)
    shop = Shop(client, sample_hub, app[CLOCK], secret)
    shop.token_id = row["id"]
    seats = [seat(sample_hub.db, house(sample_hub), "1. Rang", r, str(n))["id"] for r in ROWS for n in range(8, 13)]
    for perf in sample_hub.ids["rings"]["A"]:
        status, moved = await shop.req("POST", f"/performances/{perf}/pools",
                                       {"seat_ids": seats, "to": f"agency:{row['id']}"}, token=sample_hub.token)
        assert status == 200, moved
    shop.pool_seats = seats
    return shop


async def test_an_agency_sees_released_products_and_tiers_bookable_by_all_only(agency):
    hub = agency.hub
    status, found = await agency.req("GET", "/shop/subscription-products")
    assert status == 200 and [p["name"] for p in found["items"]] == ["Abo-Ring A", "Wahlgutschein 6er"]
    by_all = {r["name"] for r in hub.db.execute("SELECT name FROM discount_tiers WHERE product_id = ? AND "
                                                "bookable_by_all = 1", (product(hub, "Wahlgutschein 6er"),))}
    assert {t["name"] for t in found["items"][1]["tiers"]} == by_all  # a voucher's tiers: bookable by all only
    assert found["items"][0]["sale_windows"] == [w for w in found["items"][0]["sale_windows"]
                                                 if w["channel"] == "agency"]
    status, ring_a = await agency.req("GET", f"/shop/subscription-products/{product(hub, 'Abo-Ring A')}")
    assert status == 200
    assert {t["name"] for z in ring_a["zones"] for t in z["tiers"]} == {"Schüler/Studierende",
                                                                       "Schwerbehinderte (GdB ab 50)"}
    for hidden in ("Abo-Ring B", "Kombi-Ticket Klassiker", "Wahl-Abo Studio 5 aus 8"):  # not released
        status, _ = await agency.req("GET", f"/shop/subscription-products/{product(hub, hidden)}")
        assert status == 404, hidden
        status, _ = await agency.hold({"product_id": product(hub, hidden)})
        assert status == 404, hidden
    # windows by channel: in the online renewal presale the agency window is not open yet
    agency.clock.now = RENEWAL
    status, found = await agency.req("GET", "/shop/subscription-products")
    assert status == 200 and found["items"] == []
    status, refused = await agency.hold({"product_id": product(hub, "Abo-Ring A"), "seat_ids": agency.pool_seats[:1]})
    assert status == 409 and "not on sale through the agency channel" in refused["detail"]


async def test_an_agency_books_from_its_own_contingent_and_its_seat_map_shows_it(agency):
    hub, db = agency.hub, agency.hub.db
    prod, first = product(hub, "Abo-Ring A"), hub.ids["rings"]["A"][0]
    status, best = await agency.req("GET", f"/shop/subscription-products/{prod}/best-available")
    assert status == 200 and best["found"] and {s["seat_id"] for s in best["seats"]} <= set(agency.pool_seats)
    status, plan = await agency.req("GET", f"/performances/{first}/seat-map")
    states = {s["id"]: s["state"] for s in plan["seats"]}
    assert {states[s] for s in agency.pool_seats} == {"free"}
    assert states[seat(db, house(hub), "Parkett", "5", "5")["id"]] == "other_pool"  # the hub's
    status, hold = await agency.hold({"product_id": prod, "zone_id": best["seats"][0]["zone_id"]})
    assert status == 201 and {s["seat_id"] for s in hold["seats"]} <= set(agency.pool_seats)
    pupils = tier(db, prod, "Schüler/Studierende")
    status, sub = await agency.order(order_body(agency, hold, tier_id=pupils), key="agency-1")
    assert status == 201, sub
    assert (sub["channel"], sub["agency_token"], sub["price_cents"]) == ("agency", agency.token_id, 29400 // 2)
    assert len(sub["seats"]) == 8
    assert db.execute("SELECT method, state FROM payments WHERE order_id = ?",
                      (sub["order_id"],)).fetchone() == {"method": "transfer", "state": "pending"}


async def test_an_agency_cannot_book_outside_its_pool_nor_tiers_not_bookable_by_all(agency):
    hub, db = agency.hub, agency.hub.db
    prod = product(hub, "Abo-Ring A")
    hubs_seat = seat(db, house(hub), "1. Rang", "2", "14")["id"]
    before = ledger(db)
    status, refused = await agency.hold({"product_id": prod, "seat_ids": [hubs_seat]})
    assert status == 409, refused  # the hub's seat is not in the agency's pool
    other, _ = tokens.create_token(db, "Ticketkontor", "agency")
    status, refused = await agency.hold({"product_id": prod, "seat_ids": [agency.pool_seats[0]]}, token=other)
    assert status == 409, refused  # nor is another agency's
    shop, _ = tokens.create_token(db, "Webshop", "shop")
    status, refused = await agency.hold({"product_id": prod, "seat_ids": [agency.pool_seats[0]]}, token=shop)
    assert status == 409, refused  # nor may the hub's shop sell the agency's seats
    assert ledger(db) == before
    status, hold = await agency.hold({"product_id": prod, "seat_ids": [agency.pool_seats[0]]})
    assert status == 201, hold
    before = ledger(db)
    for name in ("Frühbucher", "Ehrenkarte"):  # not bookable by all: unknown to an agency
        body = order_body(agency, hold, tier_id=tier(db, prod, name))
        status, refused = await agency.order(body, key=f"tier-{len(name)}")
        assert (status, refused["field"]) == (422, "tier_id"), refused
    status, _ = await agency.req("DELETE", f"/shop/seat-holds/{hold['id']}", token=other)
    assert status == 404
    status, refused = await agency.order(order_body(agency, hold), key="other", token=other)
    assert status == 409 and refused["field"] == "hold_id"
    assert ledger(db) == before


async def test_the_organizer_sees_agency_sales_per_agency(agency):
    hub, db = agency.hub, agency.hub.db
    prod = product(hub, "Abo-Ring A")
    for n, chair in enumerate(agency.pool_seats[:2]):
        _, hold = await agency.hold({"product_id": prod, "seat_ids": [chair]})
        customer = {**CUSTOMER, "email": f"kunde{n}@example.org"}
        status, _ = await agency.order(order_body(agency, hold, customer=customer), key=f"sale-{n}")
        assert status == 201
    shop, _ = tokens.create_token(db, "Webshop", "shop")
    hub_seat = seat(db, house(hub), "Parkett", "6", "9")["id"]
    _, hold = await agency.hold({"product_id": prod, "seat_ids": [hub_seat]}, token=shop)
    status, _ = await agency.order(order_body(agency, hold), key="shop-sale", token=shop)
    assert status == 201
    status, summary = await agency.req("GET", "/agency-sales", token=hub.token)
    assert status == 200
    assert summary["items"] == [{"agency": agency.token_id, "name": "Reisebüro Weser", "subscriptions": 2,
                                 "active": 2, "revenue_cents": 2 * 29400}]
    status, listed = await agency.req("GET", f"/subscriptions?agency={agency.token_id}", token=hub.token)
    assert status == 200 and listed["total"] == 2
    assert {s["agency_token"] for s in listed["items"]} == {agency.token_id}
    status, _ = await agency.req("GET", "/agency-sales")  # an agency does not see the organizer's figures
    assert status == 403
    status, _ = await agency.req("GET", f"/subscriptions?agency={agency.token_id}")
    assert status == 403
