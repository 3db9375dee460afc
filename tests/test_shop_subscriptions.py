"""Subscriptions in the shop API (issue 13): what is on sale by channel and phase, a checkout's hold of a
ring in every date, the order with Idempotency-Key, holds expiring on a moved clock, someone else's hold
refused, a lost race answered 409 with alternatives, the renewal presale for subscribers named by
customer number and postcode, hostile input refused with nothing stored, and 50 concurrent shop
clients racing for the same ring seats. The real hub app on a copy of the sample hub, over HTTP on
loopback; the hub's clock (`hub.web.clock.CLOCK`) is moved instead of sleeping."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import aiohttp
import pytest

from hub.app import make_app
from hub.services import tokens
from hub.web.clock import CLOCK
from tests.helpers import table_counts
from tests.test_subscription_sale import (
    CLOSED,
    GENERAL,
    RENEWAL,
    _make_last_season_subscriber,
    house,
    product,
    seat,
    tier,
)

PREFIX = "/api/v1"
CUSTOMER = {"first_name": "Greta", "last_name": "Sommer", "email": "greta@example.org",
            "street": "Am Wall 12", "postcode": "28195", "town": "Bremen"}


class Clock:
    """The hub's "now", moved by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def move(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class Shop:
    client: object
    hub: object
    clock: Clock
    token: str

    def headers(self, key: str | None = None, token: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    async def req(self, method: str, path: str, body=None, *, key: str | None = None,
                  token: str | None = None) -> tuple[int, dict]:
        resp = await self.client.request(method, PREFIX + path, json=body, headers=self.headers(key, token))
        return resp.status, await resp.json(content_type=None)

    async def hold(self, body: dict, token: str | None = None) -> tuple[int, dict]:
        return await self.req("POST", "/shop/seat-holds", body, token=token)

    async def order(self, body: dict, key: str, token: str | None = None) -> tuple[int, dict]:
        return await self.req("POST", "/shop/subscription-orders", body, key=key, token=token)

    async def seat_state(self, performance_id: str, seat_id: str) -> str:
        status, plan = await self.req("GET", f"/performances/{performance_id}/seat-map")
        assert status == 200, plan
        return next(s["state"] for s in plan["seats"] if s["id"] == seat_id)


@pytest.fixture
async def shop(aiohttp_client, sample_hub) -> Shop:
    secret, _ = tokens.create_token(sample_hub.db, "Webshop", "shop")
    app = make_app(sample_hub.db)
    app[CLOCK] = Clock(GENERAL)
    return Shop(await aiohttp_client(app), sample_hub, app[CLOCK], secret)


def ledger(db) -> dict[str, int]:
    counts = table_counts(db)
    return {t: counts[t] for t in ("orders", "order_lines", "tickets", "subscriptions", "payments", "seat_holds",
                                   "customers", "cards", "idempotency_keys")}


def order_body(shop: Shop, hold: dict, **changes) -> dict:
    return {"product_id": hold["product_id"], "hold_id": hold["id"], "customer": CUSTOMER, "delivery": "mail",
            "payment_reference": "psp-4711", **changes}


def zone(shop: Shop, code: str = "1") -> str:
    return shop.hub.ids["zones"][code]


def ring(shop: Shop, name: str = "B") -> list[str]:
    return shop.hub.ids["rings"][name]


def sold(db, performance_id: str, seat_id: str) -> int:
    return db.execute("SELECT count(*) AS n FROM tickets WHERE performance_id = ? AND seat_id = ? AND status = 'sold'",
                      (performance_id, seat_id)).fetchone()["n"]


# --- what is on sale -----------------------------------------------------------------------------------


async def test_products_on_sale_follow_the_online_windows_and_name_the_phase(shop):
    names = {}
    for at in (GENERAL, RENEWAL, CLOSED):
        shop.clock.now = at
        status, found = await shop.req("GET", "/shop/subscription-products")
        assert status == 200
        names[at] = {p["name"]: p["phase"] for p in found["items"]}
    seated = {"Abo-Ring A", "Abo-Ring B", "Abo-Ring C", "Wahl-Abo Studio 5 aus 8", "Wahlgutschein 6er"}
    assert names[GENERAL] == {**dict.fromkeys(seated, "general"), "Kombi-Ticket Klassiker": "general"}
    assert names[RENEWAL] == {**dict.fromkeys(seated, "renewal"), "Kombi-Ticket Klassiker": "general"}
    assert names[CLOSED] == {"Kombi-Ticket Klassiker": "general"}  # no windows: always on sale
    shop.clock.now = GENERAL
    status, ring_a = await shop.req("GET", f"/shop/subscription-products/{product(shop.hub, 'Abo-Ring A')}")
    assert status == 200 and len(ring_a["dates"]) == 8 and ring_a["performances"] == 8
    assert {w["channel"] for w in ring_a["sale_windows"]} == {"online"}
    top = next(z for z in ring_a["zones"] if z["code"] == "1")
    assert top["base_cents"] == 36800 and top["name"] == "Preiskategorie I"
    assert {t["name"]: t["price_cents"] for t in top["tiers"]} == {
        "Schüler/Studierende": 18400, "Schwerbehinderte (GdB ab 50)": 25760, "Frühbucher": 34800}  # no Ehrenkarte


# --- a checkout --------------------------------------------------------------------------------------


async def test_a_voucher_subscription_is_listed_with_its_vouchers_offer_and_price_per_tier(shop):
    status, found = await shop.req("GET", "/shop/subscription-products")
    listed = {p["name"]: p for p in found["items"]}
    voucher, ring_a = listed["Wahlgutschein 6er"], listed["Abo-Ring A"]
    assert status == 200 and voucher["kind"] == "voucher"
    assert (voucher["voucher_count"], voucher["voucher_value_cents"], voucher["from_cents"]) == (6, 2500, 12000)
    assert len(voucher["offer"]) == voucher["performances"] == 11
    assert [d["id"] for d in voucher["offer"]] == [r["performance_id"] for r in shop.hub.db.execute(
        "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position",
        (voucher["id"],))]
    studio = {d["venue"] for d in voucher["offer"]}
    assert len(studio) == 2 and all(d["title"] and d["starts_at"] for d in voucher["offer"])
    tiers = {t["name"]: t["price_cents"] for t in voucher["tiers"]}
    assert tiers["Schwerbehinderte (GdB ab 50)"] == 8400  # 120 EUR less 30 %, as the sale prices it
    kinds = {r["name"]: r["kind"] for r in shop.hub.db.execute("SELECT name, kind FROM discount_tiers "
                                                                "WHERE product_id = ?", (voucher["id"],))}
    assert "complimentary" in kinds.values()
    assert all(kinds[name] != "complimentary" for name in tiers)  # the shop never offers a free tier
    assert (ring_a["voucher_count"], ring_a["offer"], ring_a["tiers"]) == (None, [], [])  # seated: per zone
    status, detail = await shop.req("GET", f"/shop/subscription-products/{voucher['id']}")
    assert status == 200 and detail["zones"] == [] and detail["tiers"] == voucher["tiers"]
    assert len(detail["dates"]) == 11


async def test_hold_then_order_makes_a_subscription_with_a_ticket_in_every_date(shop):
    db, prod = shop.hub.db, product(shop.hub, "Abo-Ring B")
    status, hold = await shop.hold({"product_id": prod, "zone_id": zone(shop)})
    assert status == 201, hold
    assert [s["performance_id"] for s in hold["seats"]] == ring(shop)
    chair = hold["seats"][0]["seat_id"]
    assert {s["seat_id"] for s in hold["seats"]} == {chair} and hold["zone_id"] == zone(shop)
    assert hold["seats"][0]["text"].startswith("Parkett row ")
    for perf in ring(shop):  # held in every date, for everybody to see
        assert await shop.seat_state(perf, chair) == "held"
    pupils = tier(db, prod, "Schüler/Studierende")
    status, sub = await shop.order(order_body(shop, hold, tier_id=pupils, form="single_tickets"), key="basket-1")
    assert status == 201, sub
    assert sub["channel"] == "shop" and sub["price_cents"] == 36800 // 2 and sub["form"] == "single_tickets"
    assert [s["seat_id"] for s in sub["seats"]] == [chair] * 8
    assert sum(s["price_cents"] for s in sub["seats"]) == sub["price_cents"]
    order = db.execute("SELECT * FROM orders WHERE id = ?", (sub["order_id"],)).fetchone()
    assert (order["channel"], order["total_cents"]) == ("shop", 18400)
    assert db.execute("SELECT method, reference FROM payments WHERE order_id = ?",
                      (order["id"],)).fetchone() == {"method": "online", "reference": "psp-4711"}
    assert db.execute("SELECT count(*) AS n FROM seat_holds").fetchone()["n"] == 0  # the hold became tickets
    assert db.execute("SELECT count(*) AS n FROM cards WHERE order_item_id = ?",
                      (sub["line_id"],)).fetchone()["n"] == 8  # a single ticket per date
    for perf in ring(shop):
        assert sold(db, perf, chair) == 1 and await shop.seat_state(perf, chair) == "taken"


async def test_a_retried_order_returns_the_first_answer_and_a_changed_body_is_refused(shop):
    db = shop.hub.db
    _, hold = await shop.hold({"product_id": product(shop.hub, "Abo-Ring C"), "zone_id": zone(shop, "2")})
    body = order_body(shop, hold)
    status, first = await shop.order(body, key="k-1")
    assert status == 201
    resp = await shop.client.post(PREFIX + "/shop/subscription-orders", json=body, headers=shop.headers("k-1"))
    assert resp.status == 201 and resp.headers["Idempotent-Replayed"] == "true"
    assert await resp.json() == first
    before = ledger(db)
    status, refused = await shop.order({**body, "delivery": "pickup"}, key="k-1")
    assert (status, refused["type"]) == (422, "urn:tessera:problem:idempotency-key-reused")
    status, refused = await shop.req("POST", "/shop/subscription-orders", body)  # no key at all
    assert (status, refused["type"]) == (400, "urn:tessera:problem:idempotency-key-missing")
    assert ledger(db) == before and before["subscriptions"] == 1


async def test_a_hold_expires_on_the_clock_frees_its_seats_and_its_order_gets_alternatives(shop):
    db, prod = shop.hub.db, product(shop.hub, "Abo-Ring B")
    _, hold = await shop.hold({"product_id": prod, "zone_id": zone(shop), "ttl_seconds": 60})
    chair, first = hold["seats"][0]["seat_id"], ring(shop)[0]
    shop.clock.move(seconds=59)
    assert await shop.seat_state(first, chair) == "held"
    shop.clock.move(seconds=1)
    assert await shop.seat_state(first, chair) == "free"  # expired: free on the map at once
    before = ledger(db)
    status, lost = await shop.order(order_body(shop, hold), key="late")
    assert status == 409 and "expired" in lost["detail"], lost
    assert [a["performance_id"] for a in lost["alternatives"]] == ring(shop)
    assert all(a["text"] and a["seat_id"] for a in lost["alternatives"])
    assert ledger(db) == before
    status, again = await shop.hold({"product_id": prod, "seat_ids": [chair]})  # someone else may take it now
    assert status == 201 and {s["seat_id"] for s in again["seats"]} == {chair}


async def test_someone_elses_hold_is_neither_released_nor_bought(shop):
    db, prod = shop.hub.db, product(shop.hub, "Abo-Ring B")
    other, _ = tokens.create_token(db, "Zweiter Shop", "shop")
    _, hold = await shop.hold({"product_id": prod, "zone_id": zone(shop)})
    before = ledger(db)
    status, _ = await shop.req("DELETE", f"/shop/seat-holds/{hold['id']}", token=other)
    assert status == 404
    status, refused = await shop.order(order_body(shop, hold), key="steal", token=other)
    assert status == 409 and refused["field"] == "hold_id"
    # a second checkout of the same shop does not take over the first one's seats either
    status, lost = await shop.hold({"product_id": prod, "seat_ids": [hold["seats"][0]["seat_id"]]})
    assert status == 409 and "is not free in every performance" in lost["detail"]
    assert ledger(db) == before
    status, released = await shop.req("DELETE", f"/shop/seat-holds/{hold['id']}")
    assert (status, released) == (200, {"released": 8})


async def test_a_lost_race_answers_409_with_alternatives_that_can_be_held(shop):
    prod = product(shop.hub, "Abo-Ring A")
    chair = seat(shop.hub.db, house(shop.hub), "Parkett", "4", "12")["id"]
    status, mine = await shop.hold({"product_id": prod, "seat_ids": [chair]})
    assert status == 201, mine
    status, lost = await shop.hold({"product_id": prod, "seat_ids": [chair], "zone_id": mine["zone_id"]})
    assert status == 409 and "Parkett row 4 seat 12 is not free" in lost["detail"], lost
    alternatives = lost["alternatives"]
    assert [a["performance_id"] for a in alternatives] == ring(shop, "A")
    assert chair not in {a["seat_id"] for a in alternatives}
    assert {a["zone_id"] for a in alternatives} == {mine["zone_id"]}  # the same zone as asked
    status, second = await shop.hold({"product_id": prod, "zone_id": mine["zone_id"],
                                      "seat_ids": [alternatives[0]["seat_id"]]})
    assert status == 201, second


async def test_the_renewal_presale_sells_only_to_a_subscriber_named_by_number_and_postcode(shop):
    db, prod = shop.hub.db, product(shop.hub, "Abo-Ring A")
    customer = db.execute("SELECT * FROM customers WHERE id = ?", (shop.hub.ids["first_customer"],)).fetchone()
    shop.clock.now = RENEWAL
    _, hold = await shop.hold({"product_id": prod, "zone_id": zone(shop, "2")})
    before = ledger(db)
    status, refused = await shop.order(order_body(shop, hold), key="r-1")  # a new customer
    assert status == 409 and "renewal presale" in refused["detail"]
    status, refused = await shop.order(order_body(shop, hold, customer=None, customer_id=customer["id"]), key="r-2")
    assert status == 409 and refused["field"] == "subscriber"  # an id proves nothing
    named = {"customer_number": customer["number"], "postcode": customer["postcode"]}
    status, refused = await shop.order(order_body(shop, hold, customer=None, subscriber={**named, "postcode": "99999"}),
                                       key="r-3")
    assert status == 404
    status, refused = await shop.order(order_body(shop, hold, customer=None, subscriber=named), key="r-4")
    assert status == 409 and "only subscribers of an earlier season" in refused["detail"]  # not one yet
    assert ledger(db) == before
    _make_last_season_subscriber(shop.hub, customer["id"])
    status, sub = await shop.order(order_body(shop, hold, customer=None, subscriber=named), key="r-5")
    assert status == 201 and sub["customer_id"] == customer["id"]
    shop.clock.now = CLOSED
    status, closed = await shop.hold({"product_id": prod, "zone_id": zone(shop, "2")})
    assert status == 409 and "not on sale through the shop channel" in closed["detail"]


# --- hostile input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, status, slug", [
    ({"price_cents": 1}, 400, "unknown-field"),
    ({"total_cents": 0}, 400, "unknown-field"),
    ({"seats": [{"performance_id": "00000000-0000-7000-8000-000000000000", "seat_id": "x"}]}, 400, "unknown-field"),
    ({"hold_id": "00000000-0000-7000-8000-000000000000"}, 409, "conflict"),
    ({"hold_id": "not-an-id"}, 422, "validation-failed"),
    ({"product_id": "00000000-0000-7000-8000-000000000000"}, 404, "not-found"),
    ({"customer_id": "00000000-0000-7000-8000-000000000000", "customer": None}, 422, "validation-failed"),
    ({"tier_id": "00000000-0000-7000-8000-000000000000"}, 422, "validation-failed"),
    ({"delivery": "drone"}, 422, "validation-failed"),
    ({"payment_reference": " "}, 422, "validation-failed"),
    ({"customer": {**CUSTOMER, "email": "not-an-address"}}, 422, "validation-failed"),
])
async def test_hostile_orders_are_refused_and_store_nothing(shop, change, status, slug):
    _, hold = await shop.hold({"product_id": product(shop.hub, "Abo-Ring B"), "zone_id": zone(shop)})
    before = ledger(shop.hub.db)
    code, refused = await shop.order(order_body(shop, hold, **change), key="hostile")
    assert (code, refused["type"]) == (status, f"urn:tessera:problem:{slug}"), refused
    assert ledger(shop.hub.db) == before


async def test_hostile_holds_and_tiers_are_refused_and_store_nothing(shop):
    db, hub = shop.hub.db, shop.hub
    prod = product(hub, "Abo-Ring B")
    studio = db.execute("SELECT id FROM seats WHERE plan_id = ? LIMIT 1", (hub.ids["plans"]["Studio"],)).fetchone()
    before = ledger(db)
    bad = [({"product_id": prod, "seat_ids": [studio["id"]]}, 422),  # a seat of another plan
           ({"product_id": prod, "seat_ids": ["00000000-0000-7000-8000-000000000000"]}, 422),
           ({"product_id": "00000000-0000-7000-8000-000000000000", "zone_id": zone(shop)}, 404),
           ({"product_id": product(hub, "Wahlgutschein 6er"), "zone_id": zone(shop)}, 422),  # no seats
           ({"product_id": prod, "zone_id": zone(shop), "ttl_seconds": 86_400}, 422),
           ({"product_id": prod, "seat_ids": [studio["id"]] * 21}, 422),
           ({"product_id": prod, "zone_id": zone(shop), "price_cents": 0}, 400)]
    for body, status in bad:
        code, refused = await shop.hold(body)
        assert code == status, (body, refused)
    resp = await shop.client.post(PREFIX + "/shop/seat-holds", data=b"{" + b" " * (2 << 20) + b"}",
                                  headers={**shop.headers(), "Content-Type": "application/json"})
    assert resp.status == 413
    assert ledger(db) == before
    # tiers: Ehrenkarte (complimentary) is not sold online; a tier of another product is not this one's
    _, hold = await shop.hold({"product_id": prod, "zone_id": zone(shop)})
    before = ledger(db)
    for tier_id in (tier(db, prod, "Ehrenkarte"), tier(db, product(hub, "Abo-Ring C"), "Schüler/Studierende")):
        code, refused = await shop.order(order_body(shop, hold, tier_id=tier_id), key=f"t-{tier_id}")
        assert (code, refused["field"]) == (422, "tier_id"), refused
    assert ledger(db) == before


async def test_an_office_or_anonymous_caller_cannot_use_the_shop_checkout(shop):
    office, _ = tokens.create_token(shop.hub.db, "Büro", "office")
    status, _ = await shop.hold({"product_id": product(shop.hub, "Abo-Ring B")}, token=office)
    assert status == 403
    resp = await shop.client.get(PREFIX + "/shop/subscription-products")
    assert resp.status == 401


# --- 50 concurrent shop clients ------------------------------------------------------------------------


async def _buyer(shop: Shop, n: int, prod: str, chair: str, outcome: dict) -> None:
    """One shop client on its own connection: hold the contested seat, on a loss its alternative, then
    (if that was lost as well) the best available in the zone; abandon every fifth checkout."""
    base = str(shop.client.make_url(PREFIX))
    async with aiohttp.ClientSession(headers=shop.headers()) as session:
        async def post(path: str, body: dict, **headers) -> tuple[int, dict]:
            async with session.post(base + path, json=body, headers=headers) as resp:
                return resp.status, await resp.json(content_type=None)

        status, held = await post("/shop/seat-holds", {"product_id": prod, "seat_ids": [chair]})
        for fallback in ("alternative", "zone"):
            if status != 409:
                break
            outcome["losses"].append(held)
            retry = {"product_id": prod, "zone_id": held["alternatives"][0]["zone_id"]}
            if fallback == "alternative":
                retry["seat_ids"] = [held["alternatives"][0]["seat_id"]]
            status, held = await post("/shop/seat-holds", retry)
        assert status == 201, held
        if n % 5 == 4:
            outcome["abandoned"].append(held)
            return
        status, sub = await post("/shop/subscription-orders", order_body(shop, held, customer={
            **CUSTOMER, "email": f"buyer{n}@example.org"}), **{"Idempotency-Key": f"buyer-{n}"})
        assert status == 201, sub
        outcome["orders"].append(sub)


async def test_fifty_shop_clients_racing_for_one_ring_seat_never_share_a_seat(shop):
    db, prod = shop.hub.db, product(shop.hub, "Abo-Ring B")
    chair = seat(db, house(shop.hub), "Parkett", "8", "14")["id"]
    outcome: dict[str, list] = {"orders": [], "losses": [], "abandoned": []}
    await asyncio.gather(*(_buyer(shop, n, prod, chair, outcome) for n in range(50)))
    assert len(outcome["orders"]) == 40 and len(outcome["abandoned"]) == 10
    assert len(outcome["losses"]) >= 49  # one client got the contested seat, every other lost it
    assert all(loss["alternatives"] for loss in outcome["losses"])
    twice = db.execute("SELECT performance_id, seat_id FROM tickets WHERE status = 'sold' "
                       "GROUP BY performance_id, seat_id HAVING count(*) > 1").fetchall()
    assert twice == []
    for sub in outcome["orders"]:  # every acknowledged order has its eight tickets, one seat each
        tickets = db.execute("SELECT performance_id FROM tickets WHERE line_id = ? AND status = 'sold'",
                             (sub["line_id"],)).fetchall()
        assert sorted(t["performance_id"] for t in tickets) == sorted(ring(shop))
    assert sum(sold(db, p, chair) for p in ring(shop)) in (0, 8)  # the contested seat: one buyer or none
    abandoned = [(s["performance_id"], s["seat_id"]) for h in outcome["abandoned"] for s in h["seats"]]
    assert all(await asyncio.gather(*(_is(shop, p, s, "held") for p, s in abandoned)))
    shop.clock.move(minutes=10)  # the abandoned checkouts expire: their seats are free again
    assert all(await asyncio.gather(*(_is(shop, p, s, "free") for p, s in abandoned)))
    status, again = await shop.hold({"product_id": prod, "seat_ids": [outcome["abandoned"][0]["seats"][0]["seat_id"]]})
    assert status == 201, again


async def _is(shop: Shop, performance_id: str, seat_id: str, state: str) -> bool:
    return await shop.seat_state(performance_id, seat_id) == state
