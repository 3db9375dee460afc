"""A party buys side by side (issue 13): several subscriptions in one order, all or none.

A couple buys Ring A across both plan variants of the Großes Haus (pit covered: row A; the
standard plan lacks it: a replacement block in row 3), each with its own tier and pass name; a
wheelchair place and its companion seat as a party (the companion alone is refused); a member's
seat taken meanwhile, or a seat named for two members, sells nothing of the party; the shop holds
a party's seats with `count` and orders them with a tier per member under an Idempotency-Key.
Real SQLite copies of the sample hub; the staff and shop APIs over HTTP on loopback."""

from __future__ import annotations

from core.base.clock import utcnow
from core.catalog import pricing
from core.subscriptions import holds
from tests.helpers import call, problem, table_counts
from tests.test_shop_subscriptions import order_body, ring, shop, zone  # noqa: F401 (the shop fixture)
from tests.test_subscription_sale import house, pit_and_parkett, product, seat, tier, variant_of

WATCHED = ("orders", "order_lines", "tickets", "subscriptions", "payments", "seat_holds", "cards", "customers",
           "idempotency_keys")
PUPILS = "Schüler/Studierende"


def ledger(db) -> dict[str, int]:
    counts = table_counts(db)
    return {t: counts[t] for t in WATCHED}


def couple(hub) -> dict:
    """Ring A for two: pit row A seats 9 and 10 (only in 'Orchestergraben überbaut'); in the standard
    variant, which lacks row A, the block Parkett row 3 seats 9 and 10."""
    db, plan = hub.db, house(hub)
    pit, _ = pit_and_parkett(hub)
    standard = next(v for v in {variant_of(db, p) for p in hub.ids["rings"]["A"]} if v != pit["variant_id"])
    return {"pit": pit["variant_id"], "standard": standard,
            "a": [seat(db, plan, "Parkett", "A", n)["id"] for n in ("9", "10")],
            "r3": [seat(db, plan, "Parkett", "3", n)["id"] for n in ("9", "10")]}


def members(hub, c: dict, *, pupil_second: bool = True) -> list[dict]:
    prod = product(hub, "Abo-Ring A")
    return [{"seat_ids": [c["a"][0]], "replacements": [{"variant_id": c["standard"], "seat_id": c["r3"][0]}],
             "holder_name": "Erika Mustermann"},
            {"seat_ids": [c["a"][1]], "replacements": [{"variant_id": c["standard"], "seat_id": c["r3"][1]}],
             "tier_id": tier(hub.db, prod, PUPILS) if pupil_second else None, "holder_name": "Max Mustermann"}]


def party_body(hub, party: list[dict], product_name: str = "Abo-Ring A") -> dict:
    return {"product_id": product(hub, product_name), "customer_id": hub.ids["first_customer"],
            "payment_method": "transfer", "delivery": "mail", "members": party}


def sold_seats(db, line_id: str) -> dict[str, str]:
    return {t["performance_id"]: t["seat_id"] for t in db.execute(
        "SELECT performance_id, seat_id FROM tickets WHERE line_id = ? AND status = 'sold'", (line_id,))}


def xy(db, seat_id: str) -> tuple[str, float]:
    row = db.execute("SELECT row_label, x FROM seats WHERE id = ?", (seat_id,)).fetchone()
    return row["row_label"], row["x"]


# --- the staff API: a couple in one order ----------------------------------------------------------------


async def test_a_couple_buys_ring_a_side_by_side_across_both_plan_variants_in_one_order(api):
    hub, db = api.hub, api.hub.db
    c, prod = couple(hub), product(hub, "Abo-Ring A")
    zone_id = db.execute("SELECT zone_id FROM seats WHERE id = ?", (c["a"][0],)).fetchone()["zone_id"]
    full = pricing.subscription_price(db, prod, zone_id, None)["price_cents"]
    pupil = pricing.subscription_price(db, prod, zone_id, tier(db, prod, PUPILS))["price_cents"]
    assert pupil < full
    before = ledger(db)
    headers = {**hub.headers(), "Idempotency-Key": "couple-1"}
    sold = await call(api, "POST", "/subscriptions", party_body(hub, members(hub, c)), status=201, headers=headers)
    again = await call(api, "POST", "/subscriptions", party_body(hub, members(hub, c)), status=201, headers=headers)
    assert again == sold  # a retry answers the first sale
    subs = sold["subscriptions"]
    assert len(subs) == 2 and sold["id"] == subs[0]["id"] and len({s["order_id"] for s in subs}) == 1
    assert [s["price_cents"] for s in subs] == [full, pupil] and sold["order_total_cents"] == full + pupil
    assert [s["holder_name"] for s in subs] == ["Erika Mustermann", "Max Mustermann"]
    assert [s["tier_id"] for s in subs] == [None, tier(db, prod, PUPILS)]
    assert len({s["number"] for s in subs}) == 2 and {s["customer_id"] for s in subs} == {hub.ids["first_customer"]}
    order = db.execute("SELECT * FROM orders WHERE id = ?", (subs[0]["order_id"],)).fetchone()
    assert order["total_cents"] == full + pupil and order["number"] == sold["order_number"]
    lines = db.execute("SELECT kind, price_cents FROM order_lines WHERE order_id = ? ORDER BY position",
                       (order["id"],)).fetchall()
    assert [(r["kind"], r["price_cents"]) for r in lines] == [("subscription", full), ("subscription", pupil)]
    first, second = (sold_seats(db, s["line_id"]) for s in subs)
    assert len(first) == len(second) == 8
    for perf in hub.ids["rings"]["A"]:  # side by side in every date: same row, neighbours
        expected = c["a"] if variant_of(db, perf) == c["pit"] else c["r3"]
        assert [first[perf], second[perf]] == expected
        (row1, x1), (row2, x2) = xy(db, first[perf]), xy(db, second[perf])
        assert row1 == row2 and abs(x1 - x2) == 1
    for s in subs:  # each subscription's tickets add up to its price, each has its own cards
        assert sum(t["price_cents"] for t in s["seats"]) == s["price_cents"]
        assert db.execute("SELECT count(*) AS n FROM cards WHERE order_item_id = ? AND revoked_at IS NULL",
                          (s["line_id"],)).fetchone()["n"] >= 1
    after = ledger(db)
    delta = {k: after[k] - before[k] for k in after}
    assert {k: delta[k] for k in ("orders", "order_lines", "subscriptions", "tickets", "payments")} == {
        "orders": 1, "order_lines": 2, "subscriptions": 2, "tickets": 16, "payments": 1}


async def test_best_available_for_two_gives_a_block_side_by_side_and_a_replacement_block(api):
    hub, db = api.hub, api.hub.db
    c, dates = couple(hub), hub.ids["rings"]["A"][1:]  # from a date with the pit covered: its map leads
    assert variant_of(db, dates[0]) == c["pit"]
    best = await call(api, "GET", f"/subscription-products/{product(hub, 'Abo-Ring A')}/best-available?count=2"
                      f"&performance_ids={','.join(dates)}", status=200)
    assert best["found"] and len(best["bookings"]) == 2 * len(dates)
    for variant in (c["pit"], c["standard"]):
        for perf in [p for p in dates if variant_of(db, p) == variant]:
            pair = sorted((xy(db, b["seat_id"]) for b in best["bookings"] if b["performance_id"] == perf),
                          key=lambda r: r[1])
            assert len(pair) == 2 and pair[0][0] == pair[1][0] and pair[1][1] - pair[0][1] == 1
            assert (pair[0][0] == "A") == (variant == c["pit"])  # row A only where it exists


async def test_a_wheelchair_place_and_its_companion_sell_as_a_party_and_the_companion_alone_never(api):
    hub, db = api.hub, api.hub.db
    plan, prod = house(hub), product(hub, "Abo-Ring B")
    place, companion = (seat(db, plan, "Parkett", "20", n) for n in ("2", "3"))
    assert place["wheelchair"] and companion["companion"]
    before = ledger(db)
    only = party_body(hub, [{"seat_ids": [companion["id"]]}], "Abo-Ring B")
    alone = await problem(api, "POST", "/subscriptions", only, status=422, slug="validation-failed",
                          headers={**hub.headers(), "Idempotency-Key": "c-1"})
    assert "companion" in alone["detail"]
    far = seat(db, plan, "Parkett", "20", "1")  # a wheelchair place, but not beside this companion seat
    wrong = party_body(hub, [{"seat_ids": [far["id"]]}, {"seat_ids": [seat(db, plan, "Parkett", "20", "4")["id"]]}],
                       "Abo-Ring B")
    await problem(api, "POST", "/subscriptions", wrong, status=422, slug="validation-failed",
                  headers={**hub.headers(), "Idempotency-Key": "c-2"})
    assert ledger(db) == before
    sold = await call(api, "POST", "/subscriptions",
                      party_body(hub, [{"seat_ids": [place["id"]], "holder_name": "Ada Rad"},
                                       {"seat_ids": [companion["id"]], "holder_name": "Bert Begleiter"}],
                                 "Abo-Ring B"),
                      status=201, headers={**hub.headers(), "Idempotency-Key": "c-3"})
    assert [set(sold_seats(db, s["line_id"]).values()) for s in sold["subscriptions"]] == [
        {place["id"]}, {companion["id"]}]
    assert pricing.subscription_price(db, prod, place["zone_id"], None)["price_cents"] * 2 == \
        sold["order_total_cents"]


async def test_one_members_seat_taken_meanwhile_sells_nothing_of_the_party(api):
    hub, db = api.hub, api.hub.db
    c = couple(hub)
    standard_date = next(p for p in hub.ids["rings"]["A"] if variant_of(db, p) == c["standard"])
    holds.hold(db, "token:another-buyer", [(standard_date, c["r3"][1])], now=utcnow())  # a shop buyer meanwhile
    before = ledger(db)
    lost = await problem(api, "POST", "/subscriptions", party_body(hub, members(hub, c)), status=409, slug="conflict",
                         headers={**hub.headers(), "Idempotency-Key": "couple-lost"})
    assert "Parkett row 3 seat 10" in lost["detail"]
    assert ledger(db) == before  # nothing of the party: not the first member either, in no date


async def test_a_seat_named_for_two_members_is_refused_and_nothing_is_sold(api):
    hub, db = api.hub, api.hub.db
    c = couple(hub)
    before = ledger(db)
    same = [{"seat_ids": [c["r3"][0]]}, {"seat_ids": [c["r3"][0]]}]
    twice = await problem(api, "POST", "/subscriptions", party_body(hub, same), status=422,
                          slug="validation-failed", headers={**hub.headers(), "Idempotency-Key": "two-1"})
    assert "two subscriptions" in twice["detail"]
    # the second member's replacement is the first member's own seat in the standard dates
    clash = [{"seat_ids": [c["r3"][0]]},
             {"seat_ids": [c["a"][1]], "replacements": [{"variant_id": c["standard"], "seat_id": c["r3"][0]}]}]
    await problem(api, "POST", "/subscriptions", party_body(hub, clash), status=409, slug="conflict",
                  headers={**hub.headers(), "Idempotency-Key": "two-2"})
    mixed = {**party_body(hub, members(hub, c)), "seat_ids": [c["r3"][0]]}  # whose would it be?
    await problem(api, "POST", "/subscriptions", mixed, status=422, slug="validation-failed",
                  headers={**hub.headers(), "Idempotency-Key": "two-3"})
    assert ledger(db) == before


# --- the shop: a party's checkout ------------------------------------------------------------------------


async def test_the_shop_holds_a_couples_seats_with_count_and_orders_them_with_a_tier_each(shop):  # noqa: F811
    db, prod = shop.hub.db, product(shop.hub, "Abo-Ring A")
    status, hold = await shop.hold({"product_id": prod, "zone_id": zone(shop), "count": 2})
    assert status == 201, hold
    dates = ring(shop, "A")
    assert len(hold["seats"]) == 16 and {s["performance_id"] for s in hold["seats"]} == set(dates)
    for perf in dates:
        pair = sorted((xy(db, s["seat_id"]) for s in hold["seats"] if s["performance_id"] == perf),
                      key=lambda r: r[1])
        assert pair[0][0] == pair[1][0] and pair[1][1] - pair[0][1] == 1  # side by side
    before = ledger(db)
    one = await shop.order(order_body(shop, hold), key="party-0")  # two seats per date, one member named
    assert one[0] == 422 and "2 member" in one[1]["detail"] and ledger(db) == before
    pupils = tier(db, prod, PUPILS)
    party = [{"holder_name": "Erika Sommer"}, {"tier_id": pupils, "holder_name": "Paul Sommer"}]
    status, sold = await shop.order(order_body(shop, hold, members=party), key="party-1")
    assert status == 201, sold
    resp = await shop.client.post("/api/v1/shop/subscription-orders", json=order_body(shop, hold, members=party),
                                  headers=shop.headers("party-1"))
    assert resp.status == 201 and resp.headers["Idempotent-Replayed"] == "true" and await resp.json() == sold
    subs = sold["subscriptions"]
    full = pricing.subscription_price(db, prod, zone(shop), None, "shop")["price_cents"]
    pupil = pricing.subscription_price(db, prod, zone(shop), pupils, "shop")["price_cents"]
    assert [s["price_cents"] for s in subs] == [full, pupil] and sold["order_total_cents"] == full + pupil
    assert [s["holder_name"] for s in subs] == ["Erika Sommer", "Paul Sommer"]
    held = {(s["performance_id"], s["seat_id"]) for s in hold["seats"]}
    bought = [(p, s) for sub in subs for p, s in sold_seats(db, sub["line_id"]).items()]
    assert set(bought) == held and len(bought) == 16
    assert all(len(set(sold_seats(db, sub["line_id"]).values())) == 1 for sub in subs)  # each one seat all ring
    after = ledger(db)
    assert after["orders"] == before["orders"] + 1 and after["subscriptions"] == before["subscriptions"] + 2
    assert after["seat_holds"] == 0


async def test_the_shop_holds_a_party_named_seat_by_seat_with_its_replacements(shop):  # noqa: F811
    hub, db = shop.hub, shop.hub.db
    c = couple(hub)
    seats = [{"seat_ids": m["seat_ids"], "replacements": m["replacements"]} for m in members(hub, c)]
    status, hold = await shop.hold({"product_id": product(hub, "Abo-Ring A"), "members": seats})
    assert status == 201, hold
    status, sold = await shop.order(order_body(shop, hold, members=[{}, {}]), key="named-1")
    assert status == 201, sold
    for sub, own, spare in zip(sold["subscriptions"], c["a"], c["r3"], strict=True):
        mine = sold_seats(db, sub["line_id"])
        assert {mine[p] for p in mine if variant_of(db, p) == c["pit"]} == {own}
        assert {mine[p] for p in mine if variant_of(db, p) == c["standard"]} == {spare}
    before = ledger(db)
    status, refused = await shop.hold({"product_id": product(hub, "Abo-Ring A"), "members": seats, "count": 3})
    assert status == 422 and ledger(db) == before


async def test_a_combi_and_a_choice_party_are_held_with_count_and_sold_one_subscription_each(shop):  # noqa: F811
    db = shop.hub.db
    combi = product(shop.hub, "Kombi-Ticket Klassiker")
    status, hold = await shop.hold({"product_id": combi, "zone_id": zone(shop), "count": 2})
    assert status == 201 and len(hold["seats"]) == 6, hold  # two seats at each of the three dates
    status, sold = await shop.order(order_body(shop, hold, members=[{}, {}]), key="combi-2")
    assert status == 201, sold
    per_member = [sold_seats(db, s["line_id"]) for s in sold["subscriptions"]]
    assert all(len(m) == 3 for m in per_member) and all(per_member[0][p] != per_member[1][p] for p in per_member[0])
    assert sold["order_total_cents"] == sum(s["price_cents"] for s in sold["subscriptions"])
    choice = product(shop.hub, "Wahl-Abo Studio 5 aus 8")
    dates = [r["performance_id"] for r in db.execute(
        "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position", (choice,))][2:7]
    status, hold = await shop.hold({"product_id": choice, "performance_ids": dates, "count": 2})
    assert status == 201 and len(hold["seats"]) == 10, hold
    status, sold = await shop.order(order_body(shop, hold, members=[{}, {"holder_name": "Kind Sommer"}]),
                                    key="choice-2")
    assert status == 201, sold
    for sub in sold["subscriptions"]:
        mine = sold_seats(db, sub["line_id"])
        assert sorted(mine) == sorted(dates) and len(set(mine.values())) == 1  # one seat in all five dates


async def test_a_party_losing_one_seat_gets_alternatives_for_the_whole_party_and_holds_nothing(shop):  # noqa: F811
    hub, db = shop.hub, shop.hub.db
    c = couple(hub)
    standard_date = next(p for p in ring(shop, "A") if variant_of(db, p) == c["standard"])
    holds.hold(db, "token:another-buyer", [(standard_date, c["r3"][0])], now=utcnow())
    seats = [{"seat_ids": m["seat_ids"], "replacements": m["replacements"]} for m in members(hub, c)]
    before = ledger(db)
    status, lost = await shop.hold({"product_id": product(hub, "Abo-Ring A"), "members": seats})
    assert status == 409 and "Parkett row 3 seat 9" in lost["detail"], lost
    assert len(lost["alternatives"]) == 16  # two seats side by side in each of the eight dates
    assert ledger(db) == before
