"""Setting up a catalog from nothing through /api/v1: organizer, venues, zones, a seating
plan, a season, performances, annual tickets and every subscription type."""

import datetime as dt

import pytest

from tests.helpers import ADDRESS, call, problem


async def theatre(client) -> dict:
    """An organizer with a two-zone, 2x3-seat stage, a season and three performances."""
    org = await call(client, "POST", "/organizers", {"name": "Theater Test", "address": ADDRESS,
                                                     "sepa_creditor_id": "DE98ZZZ09999999999"}, status=201)
    stage = await call(client, "POST", "/venues", {"organizer_id": org["id"], "name": "Bühne", "kind": "stage",
                                                   "address": ADDRESS}, status=201)
    zones = {}
    for code in ("A", "B"):
        zones[code] = (await call(client, "POST", "/price-zones", {"organizer_id": org["id"], "code": code,
                                                                   "name": f"Zone {code}"}, status=201))["id"]
    plan = await call(client, "POST", "/seating-plans", {
        "venue_id": stage["id"], "name": "Saal",
        "sections": [{"name": "Parkett", "rows": [
            {"label": "1", "seats": [{"label": str(s), "x": s, "y": 1, "zone": "A"} for s in (1, 2, 3)]},
            {"label": "2", "seats": [{"label": str(s), "x": s, "y": 2, "zone": "B"} for s in (1, 2, 3)]}]}]},
        status=201)
    season = await call(client, "POST", "/seasons", {"organizer_id": org["id"], "name": "2026/27",
                                                     "starts_on": "2026-09-01", "ends_on": "2027-07-15"}, status=201)
    prices = [{"zone_id": zones["A"], "price_cents": 3000}, {"zone_id": zones["B"], "price_cents": 2000}]
    perfs = []
    for day in ("2026-10-01", "2026-11-01", "2026-12-01"):
        perfs.append((await call(client, "POST", "/performances", {
            "venue_id": stage["id"], "variant_id": plan["variants"][0]["id"], "season_id": season["id"],
            "title": "Faust", "starts_at": f"{day}T19:30:00+02:00", "prices": prices}, status=201))["id"])
    return {"org": org["id"], "stage": stage["id"], "zones": zones, "plan": plan, "season": season["id"],
            "perfs": perfs}


async def test_the_office_sets_up_a_theatre_and_reads_it_back(empty_api):
    t = await theatre(empty_api)
    perf = await call(empty_api, "GET", f"/performances/{t['perfs'][0]}", status=200)
    assert perf["starts_at"] == "2026-10-01T17:30:00Z"  # stored in UTC
    assert {p["price_cents"] for p in perf["prices"]} == {3000, 2000}
    assert t["plan"]["variants"][0]["seat_count"] == 6


async def test_every_subscription_type_can_be_set_up(empty_api):
    t = await theatre(empty_api)
    zp = [{"zone_id": t["zones"]["A"], "price_cents": 8000}, {"zone_id": t["zones"]["B"], "price_cents": 5000}]
    base = {"organizer_id": t["org"], "season_id": t["season"], "title": "Abo"}
    ring = await call(empty_api, "POST", "/subscription-products", {
        **base, "name": "Ring", "kind": "ring", "performance_ids": t["perfs"], "zone_prices": zp}, status=201)
    assert ring["performance_ids"] == t["perfs"]  # order kept
    choice = await call(empty_api, "POST", "/subscription-products", {
        **base, "name": "Wahl", "kind": "choice", "pick_count": 2, "performance_ids": t["perfs"],
        "zone_prices": zp}, status=201)
    assert choice["pick_count"] == 2
    voucher = await call(empty_api, "POST", "/subscription-products", {
        **base, "name": "Gutschein", "kind": "voucher", "voucher_count": 6, "voucher_value_cents": 2500,
        "price_cents": 12000, "performance_ids": t["perfs"]}, status=201)
    assert voucher["voucher_count"] == 6
    combi = await call(empty_api, "POST", "/subscription-products", {
        **base, "name": "Kombi", "kind": "combi", "performance_ids": t["perfs"][:2],
        "combi_prices": [{"performance_id": p, "zone_id": z, "price_cents": 1000 + i}
                         for p in t["perfs"][:2] for i, z in enumerate(t["zones"].values())]}, status=201)
    quote = await call(empty_api, "GET", f"/subscription-products/{combi['id']}/price?zone_id={t['zones']['B']}",
                       status=200)
    assert quote["price_cents"] == 2 * 1001


async def test_an_annual_ticket_product_with_each_validity_mode(empty_api):
    org = await call(empty_api, "POST", "/organizers", {"name": "Museen", "address": ADDRESS}, status=201)
    museum = await call(empty_api, "POST", "/venues", {"organizer_id": org["id"], "name": "Kunsthalle",
                                                       "kind": "museum", "address": ADDRESS}, status=201)
    common = {"organizer_id": org["id"], "price_cents": 6500, "channels": ["online", "cashdesk"],
              "venue_ids": [museum["id"]]}
    fixed = await call(empty_api, "POST", "/annual-ticket-products", {
        **common, "name": "2027", "validity_mode": "fixed", "valid_from": "2027-01-01",
        "valid_until": "2027-12-31", "vat_code": "7"}, status=201)
    assert fixed["vat_code"] == "7" and fixed["venue_ids"] == [museum["id"]]
    for mode in ("from_purchase", "from_first_entry"):
        made = await call(empty_api, "POST", "/annual-ticket-products",
                          {**common, "name": mode, "validity_mode": mode, "months": 12}, status=201)
        assert made["months"] == 12 and made["vat_code"] == "exempt"
    await problem(empty_api, "POST", "/annual-ticket-products",
                  {**common, "name": "x", "validity_mode": "fixed", "valid_from": "2027-12-31",
                   "valid_until": "2027-01-01"}, status=422, slug="validation-failed")
    await problem(empty_api, "POST", "/annual-ticket-products",
                  {**common, "name": "x", "validity_mode": "from_purchase"}, status=422, slug="validation-failed")


async def test_change_and_deactivate_keep_the_record(empty_api):
    org = await call(empty_api, "POST", "/organizers", {"name": "Alt", "address": ADDRESS}, status=201)
    changed = await call(empty_api, "PATCH", f"/organizers/{org['id']}", {"name": "Neu"}, status=200)
    assert changed["name"] == "Neu" and changed["address"] == ADDRESS
    gone = await call(empty_api, "PATCH", f"/organizers/{org['id']}", {"active": False}, status=200)
    assert gone["active"] is False
    listed = await call(empty_api, "GET", "/organizers?active=false", status=200)
    assert [o["id"] for o in listed["items"]] == [org["id"]]
    assert (await call(empty_api, "GET", "/organizers?active=true", status=200))["total"] == 0


async def test_lists_are_paginated_and_sortable(api):
    first = await call(api, "GET", "/performances?limit=5&sort=starts_at", status=200)
    second = await call(api, "GET", "/performances?limit=5&offset=5&sort=starts_at", status=200)
    assert first["total"] == 32 and len(first["items"]) == 5
    starts = [p["starts_at"] for p in first["items"] + second["items"]]
    assert starts == sorted(starts)
    newest = await call(api, "GET", "/performances?limit=1&sort=-starts_at", status=200)
    assert newest["items"][0]["starts_at"] >= starts[-1]
    await problem(api, "GET", "/performances?sort=price", status=422, slug="validation-failed")
    await problem(api, "GET", "/performances?limit=0", status=400, slug="invalid-parameter")
    await problem(api, "GET", "/performances?colour=red", status=400, slug="unknown-parameter")


async def test_lists_filter_by_parent(api):
    venue = api.hub.ids["museum_venues"]["Stadtmuseum"]
    products = await call(api, "GET", "/annual-ticket-products?limit=100", status=200)
    assert products["total"] == 4
    venues = await call(api, "GET", f"/venues?organizer_id={api.hub.ids['museum_organizer']}", status=200)
    assert venue in {v["id"] for v in venues["items"]} and venues["total"] == 4


@pytest.mark.parametrize("query,expect", [
    ("Müller", "Müller"), (f"KD-{dt.date.today().year}-000001", None), ("example.org", None)])
async def test_customers_are_found_by_name_number_or_email(api, query, expect):
    found = await call(api, "GET", f"/customers?q={query}&limit=500", status=200)
    assert found["total"] >= 1
    if expect:
        assert all(expect in c["last_name"] or expect in c["first_name"] for c in found["items"])


async def test_a_new_customer_gets_the_next_number(api):
    body = {"first_name": "Erika", "last_name": "Mustermann", "address": ADDRESS, "email": "erika@example.org"}
    made = await call(api, "POST", "/customers", body, status=201)
    assert made["number"] == f"KD-{dt.datetime.now(dt.UTC).year}-000251"
    found = await call(api, "GET", "/customers?q=Mustermann", status=200)
    assert [c["id"] for c in found["items"]] == [made["id"]]
    await problem(api, "POST", "/customers", {**body, "address": {**ADDRESS, "postcode": "2819"}},
                  status=422, slug="validation-failed")


async def test_new_references_to_deactivated_records_are_refused_old_ones_kept(api):
    ids = api.hub.ids
    perf = await call(api, "GET", f"/performances/{ids['rings']['A'][0]}", status=200)
    await call(api, "PATCH", f"/venues/{perf['venue_id']}", {"active": False}, status=200)
    # the existing performance can still be changed ...
    await call(api, "PATCH", f"/performances/{perf['id']}", {"title": "Die Zauberflöte (Wiederaufnahme)"},
               status=200)
    # ... but no new performance is planned at the closed venue
    body = {k: perf[k] for k in ("venue_id", "variant_id", "season_id", "title", "starts_at", "prices")}
    err = await problem(api, "POST", "/performances", body, status=422, slug="validation-failed")
    assert "is deactivated" in err["detail"] and err["field"] == "venue_id"
    # a cancelled performance cannot join a new ring, but the rings that hold it stay editable
    await call(api, "PATCH", f"/venues/{perf['venue_id']}", {"active": True}, status=200)
    await call(api, "PATCH", f"/performances/{perf['id']}", {"active": False}, status=200)
    ring_a = await call(api, "GET", f"/subscription-products/{ids['subscriptions']['Abo-Ring A']}", status=200)
    await call(api, "PATCH", f"/subscription-products/{ring_a['id']}", {"subtitle": "Neu"}, status=200)
    copy = {k: v for k, v in ring_a.items() if k not in ("id", "created_at", "updated_at")}
    err = await problem(api, "POST", "/subscription-products", {**copy, "name": "Kopie", "agency_release": False},
                        status=422, slug="validation-failed")
    assert "performance" in err["detail"] and "is deactivated" in err["detail"]


@pytest.mark.parametrize("path,key", [("venues", "museum_venues"), ("annual-ticket-products", "annual_products")])
async def test_a_record_cannot_move_to_another_organizer(api, path, key):
    ids = api.hub.ids[key]
    record_id = next(iter(ids.values())) if isinstance(ids, dict) else ids[0]
    err = await problem(api, "PATCH", f"/{path}/{record_id}", {"organizer_id": api.hub.ids["theatre_organizer"]},
                        status=422, slug="validation-failed")
    assert "cannot move to another organizer" in err["detail"] and err["field"] == "organizer_id"


async def test_customer_search_follows_changes_and_matches_every_word(api):
    body = {"first_name": "Zoë", "last_name": "Þórsdóttir", "address": ADDRESS, "email": "zoe@example.is"}
    made = await call(api, "POST", "/customers", body, status=201)
    assert [c["id"] for c in (await call(api, "GET", "/customers?q=ÞÓRS", status=200))["items"]] == [made["id"]]
    assert (await call(api, "GET", "/customers?q=Zoë Þórs", status=200))["total"] == 1
    assert (await call(api, "GET", "/customers?q=Zoë Müller", status=200))["total"] == 0
    await call(api, "PATCH", f"/customers/{made['id']}", {"last_name": "Jónsdóttir"}, status=200)
    assert (await call(api, "GET", "/customers?q=Þórsdóttir", status=200))["total"] == 0
    assert (await call(api, "GET", "/customers?q=jónsdó", status=200))["total"] == 1
    assert (await call(api, "GET", f"/customers?q={made['number']}", status=200))["total"] == 1
    # a search term with FTS syntax is just text
    assert (await call(api, "GET", '/customers?q="AND" OR NEAR(', status=200))["total"] == 0
