"""What things cost. The one place that answers "what does product P cost in zone Z with
discount tier T" — the shop, the cash desk, agencies and reports all ask here.

- ring / choice: the package price of the zone;
- combi: the sum of its per-performance prices in the zone;
- voucher: the package price (no seat, so no zone);
then the tier: percent off (rounded half-up), a fixed amount off (never below 0), or
complimentary (0).
"""

from __future__ import annotations

import sqlite3

from core.base.errors import NotFound, ValidationError
from core.base.money import percent_off
from core.catalog import resource
from core.catalog.resource import Audience
from core.catalog.subscriptions import Subscriptions, Tiers


def base_price(product: dict, zone_id: str | None) -> int:
    """Undiscounted price of a subscription product (an output dict) in *zone_id*."""
    kind = product["kind"]
    if kind == "voucher":
        return product["price_cents"]
    if zone_id is None:
        raise ValidationError(f"a {kind} subscription is priced per zone: give a zone", field="zone_id")
    if kind == "combi":
        prices = [p["price_cents"] for p in product["combi_prices"] if p["zone_id"] == zone_id]
        if len(prices) != len(product["performance_ids"]):
            raise ValidationError("this combi ticket is not offered in that zone", field="zone_id")
        return sum(prices)
    for price in product["zone_prices"]:
        if price["zone_id"] == zone_id:
            return price["price_cents"]
    raise ValidationError("this subscription has no price in that zone", field="zone_id")


def apply_tier(cents: int, tier: dict | None) -> int:
    if tier is None:
        return cents
    if tier["kind"] == "complimentary":
        return 0
    if tier["kind"] == "percent":
        return percent_off(cents, tier["value"])
    return max(0, cents - tier["value"])


def subscription_price(
    db: sqlite3.Connection, product_id: str, zone_id: str | None, tier_id: str | None,
    audience: Audience = "internal",
) -> dict:
    """Price of *product_id* in *zone_id* with *tier_id*, as seen by *audience*."""
    product = resource.get(db, Subscriptions(), product_id, audience)
    tier = None
    if tier_id is not None:
        try:
            tier = resource.get(db, Tiers(), tier_id, audience)
        except NotFound:
            raise ValidationError("unknown discount tier", field="tier_id") from None
        if tier["product_id"] != product_id:
            raise ValidationError("that discount tier belongs to another product", field="tier_id")
        if not tier["active"]:
            raise ValidationError(f"discount tier {tier['name']!r} is deactivated", field="tier_id")
    if product["kind"] == "voucher":
        zone_id = None
    base = base_price(product, zone_id)
    return {"product_id": product_id, "zone_id": zone_id, "tier_id": tier_id,
            "base_cents": base, "price_cents": apply_tier(base, tier)}


def price_table(db: sqlite3.Connection, product_id: str, audience: Audience = "internal") -> dict:
    """Every zone x every (visible, active) tier: the office's and agency's price list."""
    product = resource.get(db, Subscriptions(), product_id, audience)
    tiers = resource.list_(db, Tiers(), resource.ListQuery(limit=500, active=True,
                                                           filters={"product_id": product_id}), audience)["items"]
    if product["kind"] == "voucher":
        zone_ids: list[str | None] = [None]
    elif product["kind"] == "combi":
        zone_ids = list(dict.fromkeys(p["zone_id"] for p in product["combi_prices"]))
    else:
        zone_ids = [p["zone_id"] for p in product["zone_prices"]]
    rows = []
    for zone_id in zone_ids:
        try:
            base = base_price(product, zone_id)
        except ValidationError:
            continue  # a combi zone not offered for every performance
        rows.append({
            "zone_id": zone_id,
            "base_cents": base,
            "tiers": [{"tier_id": t["id"], "name": t["name"], "price_cents": apply_tier(base, t)} for t in tiers],
        })
    return {"product_id": product_id, "kind": product["kind"], "zones": rows}


def ticket_price(db: sqlite3.Connection, performance_id: str, zone_id: str) -> int:
    """Single-ticket price of a seat in *zone_id* at *performance_id*."""
    row = db.execute(
        "SELECT price_cents FROM performance_prices WHERE performance_id = ? AND zone_id = ?",
        (performance_id, zone_id),
    ).fetchone()
    if row is None:
        raise ValidationError("this performance has no price in that zone", field="zone_id")
    return row["price_cents"]
