"""The sample theatre's next season (2027/28), created through the hub API: what a rollover goes into.

The same products under the same names (three rings, the 5-of-8 choice, the vouchers, the combi)
with the same discount tiers, each date a year (52 weeks) after its counterpart in the same
variant, the sale windows a year later (renewal before general sale). The Studio plays on a
new seating plan (`Studio 2027`, the same rows and numbers, new seat ids), so the rollover
finds its seats by section, row and number there. What a test changes on top (a renamed tier,
a new plan variant, a removed seat) it changes itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hub.sample import Client, studio_plan_csv

YEAR = dt.timedelta(weeks=52)
SEASON = {"name": "2027/28", "starts_on": "2027-09-01", "ends_on": "2028-07-15"}


def _later(moment: str) -> str:
    return (dt.datetime.fromisoformat(moment) + YEAR).isoformat()


def _window_later(w: dict) -> dict:
    return {**w, "starts_at": _later(w["starts_at"]), "ends_at": _later(w["ends_at"])}


def build(client: Client, ids: dict) -> dict:
    """Season 2027/28 of the sample theatre; returns its ids (season, products, performances by old id)."""
    org = ids["theatre_organizer"]
    season = client.call("POST", "/seasons", {"organizer_id": org, **SEASON})["id"]
    studio_venue = client.call("GET", f"/seating-plans/{ids['plans']['Studio']}")["venue_id"]
    studio = client.post_csv("/seating-plans/import-csv", {"venue_id": studio_venue, "name": "Studio 2027"},
                             studio_plan_csv())
    studio_variant = studio["variants"][0]["id"]
    perf_map: dict[str, str] = {}
    for old_id in ids["performances"]:
        old = client.call("GET", f"/performances/{old_id}")
        in_studio = old["venue_id"] == studio_venue
        perf_map[old_id] = client.call("POST", "/performances", {
            "venue_id": old["venue_id"], "variant_id": studio_variant if in_studio else old["variant_id"],
            "season_id": season, "title": old["title"], "starts_at": _later(old["starts_at"]),
            "prices": [{"zone_id": p["zone_id"], "price_cents": p["price_cents"]} for p in old["prices"]]})["id"]
    tiers = client.call("GET", "/discount-tiers")["items"]  # the old season's (the sample has two dozen)
    products = {name: _product(client, old_id, season, perf_map, [t for t in tiers if t["product_id"] == old_id])
                for name, old_id in ids["subscriptions"].items()}
    return {"season": season, "products": products, "performances": perf_map, "studio_plan": studio["id"]}


def _product(client: Client, old_id: str, season: str, perf_map: dict[str, str], tiers: list[dict]) -> str:
    """The product's copy in the new season with its tiers (same names); agency release as before."""
    old = client.call("GET", f"/subscription-products/{old_id}")
    spec: dict[str, Any] = {k: old[k] for k in ("organizer_id", "name", "title", "subtitle", "description", "kind",
                                                "print_options", "transferable", "vat_code")}
    spec.update(season_id=season, performance_ids=[perf_map[p] for p in old["performance_ids"]],
                sale_windows=[_window_later(w) for w in old["sale_windows"]])
    for key in ("pick_count", "voucher_count", "voucher_value_cents", "price_cents"):
        if old.get(key) is not None:
            spec[key] = old[key]
    if old["zone_prices"]:
        spec["zone_prices"] = [{"zone_id": z["zone_id"], "price_cents": z["price_cents"]} for z in old["zone_prices"]]
    if old["combi_prices"]:
        spec["combi_prices"] = [{**c, "performance_id": perf_map[c["performance_id"]]} for c in old["combi_prices"]]
    new = client.call("POST", "/subscription-products", spec)
    for t in tiers:
        client.call("POST", "/discount-tiers", {"product_id": new["id"], **{k: t[k] for k in (
            "name", "kind", "value", "bookable_by_all", "sort", "active")}})
    if old["agency_release"]:
        client.call("PATCH", f"/subscription-products/{new['id']}", {"agency_release": True})
    return new["id"]

