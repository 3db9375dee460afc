"""Subscription rules (S1-S7, S16) and the one price function."""

import pytest

from core.catalog.pricing import apply_tier
from tests.helpers import call, problem, table_counts


async def product(api, name):
    return await call(api, "GET", f"/subscription-products/{api.hub.ids['subscriptions'][name]}", status=200)


def editable(p):
    """A product as a create body (what the office would send to copy it)."""
    drop = {"id", "created_at", "updated_at"}
    return {k: v for k, v in p.items() if k not in drop} | {"name": p["name"] + " (Kopie)", "agency_release": False}


async def test_choice_pick_count_cannot_exceed_the_pool(api):
    body = editable(await product(api, "Wahl-Abo Studio 5 aus 8"))
    before = table_counts(api.hub.db)
    err = await problem(api, "POST", "/subscription-products", {**body, "pick_count": 9},
                        status=422, slug="validation-failed")
    assert "N=9 is larger than the pool of M=8" in err["detail"] and err["field"] == "pick_count"
    await problem(api, "POST", "/subscription-products", {**body, "pick_count": 0},
                  status=422, slug="validation-failed")
    await problem(api, "POST", "/subscription-products", {**body, "pick_count": None},
                  status=422, slug="validation-failed")
    assert table_counts(api.hub.db) == before


async def test_a_ring_needs_a_price_for_every_zone_its_seats_use(api):
    body = editable(await product(api, "Abo-Ring A"))
    body["zone_prices"] = body["zone_prices"][:2]
    err = await problem(api, "POST", "/subscription-products", body, status=422, slug="validation-failed")
    assert "no price for them" in err["detail"]


async def test_type_specific_fields_are_refused_on_other_types(api):
    body = editable(await product(api, "Abo-Ring A"))
    err = await problem(api, "POST", "/subscription-products", {**body, "voucher_count": 3},
                        status=422, slug="validation-failed")
    assert err["detail"] == "a ring subscription has no voucher_count"
    voucher = editable(await product(api, "Wahlgutschein 6er"))
    await problem(api, "POST", "/subscription-products", {**voucher, "price_cents": None},
                  status=422, slug="validation-failed")


async def test_a_performance_appears_once_per_product(api):
    body = editable(await product(api, "Abo-Ring B"))
    body["performance_ids"] = body["performance_ids"] + body["performance_ids"][:1]
    err = await problem(api, "POST", "/subscription-products", body, status=422, slug="validation-failed")
    assert "listed twice" in err["detail"]


async def test_renewal_presale_must_open_before_general_sale(api):
    body = editable(await product(api, "Abo-Ring C"))
    windows = [{"channel": "online", "phase": "renewal", "starts_at": "2026-06-01T09:00:00+02:00",
                "ends_at": "2026-07-01T09:00:00+02:00"},
               {"channel": "online", "phase": "general", "starts_at": "2026-05-01T09:00:00+02:00",
                "ends_at": "2027-06-01T09:00:00+02:00"}]
    err = await problem(api, "POST", "/subscription-products", {**body, "sale_windows": windows},
                        status=422, slug="validation-failed")
    assert "must start before general sale" in err["detail"]
    windows[1]["starts_at"], windows[1]["ends_at"] = "2026-07-01T09:00:00+02:00", "2026-06-30T09:00:00+02:00"
    await problem(api, "POST", "/subscription-products", {**body, "sale_windows": windows},
                  status=422, slug="validation-failed")


async def test_agency_release_needs_a_tier_bookable_by_all(api):
    body = editable(await product(api, "Abo-Ring C"))
    made = await call(api, "POST", "/subscription-products", body, status=201)
    await problem(api, "POST", "/subscription-products", {**body, "name": "X", "agency_release": True},
                  status=422, slug="validation-failed")
    err = await problem(api, "PATCH", f"/subscription-products/{made['id']}", {"agency_release": True},
                        status=422, slug="validation-failed")
    assert "bookable by all" in err["detail"]
    tier = await call(api, "POST", "/discount-tiers", {"product_id": made["id"], "name": "Alle", "kind": "percent",
                                                       "value": 10, "bookable_by_all": True}, status=201)
    released = await call(api, "PATCH", f"/subscription-products/{made['id']}", {"agency_release": True},
                          status=200)
    assert released["agency_release"] is True
    # the last tier bookable by all cannot go while the product is released
    await problem(api, "PATCH", f"/discount-tiers/{tier['id']}", {"bookable_by_all": False},
                  status=409, slug="conflict")
    await problem(api, "PATCH", f"/discount-tiers/{tier['id']}", {"active": False}, status=409, slug="conflict")


@pytest.mark.parametrize("kind,value,ok", [("percent", 0, False), ("percent", 101, False), ("percent", 50, True),
                                           ("fixed", 0, False), ("fixed", 500, True),
                                           ("complimentary", 5, False), ("complimentary", 0, True)])
async def test_tier_values_fit_their_kind(api, kind, value, ok):
    pid = api.hub.ids["subscriptions"]["Abo-Ring B"]
    body = {"product_id": pid, "name": f"T {kind} {value}", "kind": kind, "value": value}
    if ok:
        await call(api, "POST", "/discount-tiers", body, status=201)
    else:
        await problem(api, "POST", "/discount-tiers", body, status=422, slug="validation-failed")


async def test_tier_names_are_unique_per_product(api):
    pid = api.hub.ids["subscriptions"]["Abo-Ring B"]
    await problem(api, "POST", "/discount-tiers", {"product_id": pid, "name": "Ehrenkarte", "kind": "complimentary"},
                  status=409, slug="conflict")


def test_tier_arithmetic():
    assert apply_tier(36800, None) == 36800
    assert apply_tier(36800, {"kind": "percent", "value": 50}) == 18400
    assert apply_tier(999, {"kind": "percent", "value": 50}) == 500  # 4.995 rounds half up
    assert apply_tier(2201, {"kind": "percent", "value": 30}) == 1541  # 15.407
    assert apply_tier(36800, {"kind": "fixed", "value": 2000}) == 34800
    assert apply_tier(1500, {"kind": "fixed", "value": 2000}) == 0  # never negative
    assert apply_tier(36800, {"kind": "complimentary", "value": 0}) == 0


async def tiers(api, pid):
    listed = await call(api, "GET", f"/discount-tiers?product_id={pid}", status=200)
    return {t["name"]: t["id"] for t in listed["items"]}


async def test_ring_price_in_a_zone_with_a_tier(api):
    pid, zones = api.hub.ids["subscriptions"]["Abo-Ring A"], api.hub.ids["zones"]
    t = await tiers(api, pid)
    full = await call(api, "GET", f"/subscription-products/{pid}/price?zone_id={zones['1']}", status=200)
    assert full == {"product_id": pid, "zone_id": zones["1"], "tier_id": None, "base_cents": 36800,
                    "price_cents": 36800}
    student = await call(api, "GET", f"/subscription-products/{pid}/price?zone_id={zones['3']}"
                                     f"&tier_id={t['Schüler/Studierende']}", status=200)
    assert student["price_cents"] == 10800
    honour = await call(api, "GET", f"/subscription-products/{pid}/price?zone_id={zones['2']}"
                                    f"&tier_id={t['Ehrenkarte']}", status=200)
    assert honour["price_cents"] == 0
    await problem(api, "GET", f"/subscription-products/{pid}/price", status=422, slug="validation-failed")


async def test_voucher_and_combi_prices(api):
    ids, zones = api.hub.ids["subscriptions"], api.hub.ids["zones"]
    voucher = await call(api, "GET", f"/subscription-products/{ids['Wahlgutschein 6er']}/price", status=200)
    assert voucher["price_cents"] == 12000 and voucher["zone_id"] is None
    combi = await call(api, "GET", f"/subscription-products/{ids['Kombi-Ticket Klassiker']}/price"
                                   f"?zone_id={zones['2']}", status=200)
    assert combi["price_cents"] == 4100 + 4100 + 1700
    # zone 3 exists in the two house performances but not in the studio: not offered
    await problem(api, "GET", f"/subscription-products/{ids['Kombi-Ticket Klassiker']}/price?zone_id={zones['3']}",
                  status=422, slug="validation-failed")


async def test_a_tier_of_another_product_is_refused(api):
    ids, zones = api.hub.ids["subscriptions"], api.hub.ids["zones"]
    other = await tiers(api, ids["Abo-Ring B"])
    await problem(api, "GET", f"/subscription-products/{ids['Abo-Ring A']}/price?zone_id={zones['1']}"
                              f"&tier_id={other['Ehrenkarte']}", status=422, slug="validation-failed")


async def test_the_price_table_lists_every_zone_and_tier(api):
    pid = api.hub.ids["subscriptions"]["Abo-Ring A"]
    table = await call(api, "GET", f"/subscription-products/{pid}/prices", status=200)
    assert [z["base_cents"] for z in table["zones"]] == [36800, 29400, 21600, 14000]
    student = [next(t for t in z["tiers"] if t["name"] == "Schüler/Studierende") for z in table["zones"]]
    assert [t["price_cents"] for t in student] == [18400, 14700, 10800, 7000]
    assert all(len(z["tiers"]) == 4 for z in table["zones"])


async def test_a_performance_cannot_switch_to_a_variant_its_ring_does_not_price(api):
    """Moving a ring performance to a plan variant with zones the ring has no price for
    would leave seats unsellable in the ring: refused, nothing changed."""
    ids = api.hub.ids
    plan_id = ids["plans"]["Großes Haus"]
    zone5 = await call(api, "POST", "/price-zones", {"organizer_id": ids["theatre_organizer"], "code": "5",
                                                     "name": "Stehplatz"}, status=201)
    variant = await call(api, "POST", f"/seating-plans/{plan_id}/variants", {"name": "Mit Stehplätzen", "add": [
        {"name": "Stehplätze", "rows": [{"label": "S", "seats": [{"label": "1", "x": 0, "y": 50, "zone": "5"}]}]}]},
        status=201)
    perf = await call(api, "GET", f"/performances/{ids['rings']['A'][0]}", status=200)
    prices = perf["prices"] + [{"zone_id": zone5["id"], "price_cents": 900}]
    err = await problem(api, "PATCH", f"/performances/{perf['id']}", {"variant_id": variant["id"], "prices": prices},
                        status=422, slug="validation-failed")
    assert "ring 'Abo-Ring A'" in err["detail"] and "zone(s) 5" in err["detail"]
    after = await call(api, "GET", f"/performances/{perf['id']}", status=200)
    assert after["variant_id"] == perf["variant_id"] and len(after["prices"]) == 4
