"""What things cost. The one place that answers "what does product P cost in zone Z with
discount tier T" — the shop, the cash desk, agencies and reports all ask here.

- ring / choice: the package price of the zone;
- combi: the sum of its per-performance prices in the zone (or, sold with seats, in the zone
  of each performance's seat: `combi_seat_prices`);
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
    audience: Audience = "internal", *, product: dict | None = None,
) -> dict:
    """Price of *product_id* in *zone_id* with *tier_id*, as seen by *audience*; *product*: the
    product as *audience* sees it, if the caller read it already in this transaction."""
    product = _product(db, product_id, audience, product)
    tier = tier_of(db, product_id, tier_id, audience)
    if product["kind"] == "voucher":
        zone_id = None
    base = base_price(product, zone_id)
    return {"product_id": product_id, "zone_id": zone_id, "tier_id": tier_id,
            "base_cents": base, "price_cents": apply_tier(base, tier)}


def tier_of(db: sqlite3.Connection, product_id: str, tier_id: str | None,
            audience: Audience = "internal") -> dict | None:
    """The discount tier *tier_id* of *product_id* as *audience* sees it (an agency: only
    tiers bookable by all), active; None for the full price."""
    if tier_id is None:
        return None
    try:
        tier = resource.get(db, Tiers(), tier_id, audience)
    except NotFound:
        raise ValidationError("unknown discount tier", field="tier_id") from None
    if tier["product_id"] != product_id:
        raise ValidationError("that discount tier belongs to another product", field="tier_id")
    if not tier["active"]:
        raise ValidationError(f"discount tier {tier['name']!r} is deactivated", field="tier_id")
    return tier


def _product(db: sqlite3.Connection, product_id: str, audience: Audience, product: dict | None) -> dict:
    if product is not None and product["id"] == product_id:
        return product
    return resource.get(db, Subscriptions(), product_id, audience)


def combi_seat_prices(db: sqlite3.Connection, product_id: str, zones: dict[str, str], tier_id: str | None,
                      audience: Audience = "internal", *, product: dict | None = None) -> dict:
    """A combi ticket sold with a seat per performance (S6): each performance priced in the zone
    of its seat (*zones*: performance id -> zone id, every performance of the product), the
    tier applied to the sum once. `per_performance` spreads that price over the performances
    in proportion to their prices (remainder on the first), so revenue per performance adds up.
    *product* as in `subscription_price`."""
    product = _product(db, product_id, audience, product)
    if product["kind"] != "combi":
        raise ValidationError("only a combi ticket is priced per performance", field="product_id")
    tier = tier_of(db, product_id, tier_id, audience)
    table = {(p["performance_id"], p["zone_id"]): p["price_cents"] for p in product["combi_prices"]}
    if sorted(zones) != sorted(product["performance_ids"]):
        raise ValidationError("a combi ticket is priced with a seat in every one of its performances",
                              field="performance_ids")
    bases = {}
    for perf, zone in zones.items():
        if (perf, zone) not in table:
            raise ValidationError(f"this combi ticket has no price in that zone at performance {perf}",
                                  field="zone_id")
        bases[perf] = table[(perf, zone)]
    base = sum(bases.values())
    price = apply_tier(base, tier)
    return {"product_id": product_id, "tier_id": tier_id, "base_cents": base, "price_cents": price,
            "per_performance": spread(price, [(perf, bases[perf]) for perf in product["performance_ids"]])}


def spread(total: int, weights: list[tuple[str, int]]) -> dict[str, int]:
    """*total* cents over keys in proportion to their weights (equal shares when all weigh 0),
    rounded down, the remainder on the first key: the parts add up to *total*."""
    weight = sum(w for _, w in weights)
    parts = {k: (total * w // weight if weight else total // len(weights)) for k, w in weights}
    parts[weights[0][0]] += total - sum(parts.values())
    return parts


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
