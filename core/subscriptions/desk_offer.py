"""What a cash desk offers of subscriptions (issue 14, S17): the products on sale through the
cashdesk channel now (voucher products too, S5), the seats free in its own pool, a quote, and
the seat map of a ring group's plan variant with the states a desk's cashier must tell apart.

Read only. The rules are the sale's own (`sale.py`: phase, form, seats, price), applied to the
desk's pool; a quote runs the same checks as `sell_subscriptions` up to the point where it
would store, so a quote that passes is a sale that passes (unless a seat goes meanwhile).
The seat-map states live here, not at the office, because desk and office draw the same map
(`subscription_seat_map`; the office calls it with no pool).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Collection, Sequence

from core.base.clock import iso
from core.base.errors import NotFound, ValidationError
from core.catalog import resource
from core.catalog.resource import ListQuery
from core.catalog.subscriptions import Subscriptions, sale_phase
from core.subscriptions import offers
from core.subscriptions.sale import (
    CATALOG_CHANNEL,
    SubscriptionSaleIn,
    check_phase,
    derive_party,
    form_of,
    members_of,
)
from core.subscriptions.seat_maps import map_sets, other_pool_ids, subscription_seat_map
from core.subscriptions.seats import PerformanceSeats

CHANNEL = "cashdesk"


# --- the seat map -----------------------------------------------------------------------------------------


def desk_seat_map(db: sqlite3.Connection, product_id: str, *, pool: str, now: dt.datetime, lang: str,
                  plan_id: str | None = None, variant_id: str | None = None,
                  performance_ids: Sequence[str] | None = None, selected: Collection[str] = ()) -> str:
    """The SVG a desk shows for one plan variant of a product: ring or choice the group of
    *plan_id* (the first by default) in *variant_id* (its lead by default); a combi the one
    performance named in *performance_ids*."""
    prod = offers.product(db, product_id)
    perfs = offers.performances(db, prod, pool=pool, now=now, performance_ids=performance_ids)
    if prod["kind"] == "combi":
        if not performance_ids or len(performance_ids) != 1:
            raise ValidationError("a combi's map is one performance's: name it in performance_ids",
                                  field="performance_ids")
        (perf,) = perfs
        return subscription_seat_map(db, perf.variant_id, perf.plan.ids(perf.free), selected, lang,
                                     other_pool_ids(perf.plan, [perf], perf.free))
    groups = offers.groups(prod, perfs, performance_ids)
    group = next((g for g in groups if plan_id in (None, g.plan.id)), None)
    if group is None:
        raise ValidationError(f"plan {plan_id} is not a seating plan of these dates", field="plan_id")
    variant = variant_id or group.lead
    if variant not in group.variants:
        raise ValidationError(f"variant {variant} is not used by these dates on this plan", field="variant_id")
    free, other = map_sets(group, variant)
    return subscription_seat_map(db, variant, free, selected, lang, other)


# --- what is on sale --------------------------------------------------------------------------------------


def on_sale_at_desk(db: sqlite3.Connection, *, pool: str, now: dt.datetime) -> list[dict]:
    """The products on sale through the cash desk now (no sale window: always), each with its
    dates, tiers, package prices per zone and the seats free in all its dates in *pool*; a
    voucher product (S5) with its vouchers' count and value, its package price and the offer."""
    found = resource.list_(db, Subscriptions(), ListQuery(limit=500, active=True, sort="name"), "internal")
    out = []
    for prod in found["items"]:
        if prod["kind"] not in (*offers.SEATED, "voucher"):
            continue
        if prod["sale_windows"] and sale_phase(prod["sale_windows"], CATALOG_CHANNEL[CHANNEL], iso(now)) is None:
            continue
        out.append(_vouchers_offered(db, prod) if prod["kind"] == "voucher" else _offered(db, prod, pool, now))
    return out


def _vouchers_offered(db: sqlite3.Connection, prod: dict) -> dict:
    """A voucher product: no seats, dates to pick or zones; N vouchers of a value for a package price."""
    return {"id": prod["id"], "name": prod["name"], "title": prod["title"], "kind": "voucher", "pick_count": None,
            "forms": [form_of(prod, None)], "default_form": form_of(prod, None),
            "performances": _dates(db, prod["performance_ids"]), "tiers": _tiers(db, prod["id"]), "zones": None,
            "free_in_pool": None, "voucher_count": prod["voucher_count"],
            "voucher_value_cents": prod["voucher_value_cents"], "price_cents": prod["price_cents"]}


def _offered(db: sqlite3.Connection, prod: dict, pool: str, now: dt.datetime) -> dict:
    allowed = ["pass", "single_tickets", "both"] if prod["print_options"] == "both" else [prod["print_options"]]
    return {"id": prod["id"], "name": prod["name"], "title": prod["title"], "kind": prod["kind"],
            "pick_count": prod["pick_count"], "forms": allowed, "default_form": form_of(prod, None),
            "performances": _dates(db, prod["performance_ids"]), "tiers": _tiers(db, prod["id"]),
            "zones": _zones(db, prod) if prod["kind"] != "combi" else None,
            "free_in_pool": free_in_pool(offers.performances(db, prod, pool=pool, now=now), prod["kind"])}


def free_in_pool(perfs: list[PerformanceSeats], kind: str) -> int:
    """Seats one more subscriber could get: per ring group the seats free in all its dates (the
    fewest of any group); a combi the fewest free seats of any of its performances."""
    if not perfs:
        return 0
    if kind == "combi":
        return min(p.free.bit_count() for p in perfs)
    return min(g.choosable().bit_count() for g in offers.groups({"kind": kind}, perfs, None))


def _dates(db: sqlite3.Connection, performance_ids: Sequence[str]) -> list[dict]:
    rows = [db.execute("SELECT p.id, p.title, p.starts_at, ve.name AS venue_name, p.variant_id, v.plan_id "
                       "FROM performances p JOIN plan_variants v ON v.id = p.variant_id "
                       "JOIN venues ve ON ve.id = p.venue_id WHERE p.id = ?", (perf,)).fetchone()
            for perf in performance_ids]
    return sorted((r for r in rows if r is not None), key=lambda r: (r["starts_at"], r["id"]))


def _tiers(db: sqlite3.Connection, product_id: str) -> list[dict]:
    return db.execute("SELECT id, name FROM discount_tiers WHERE product_id = ? AND active = 1 ORDER BY sort, name",
                      (product_id,)).fetchall()


def _zones(db: sqlite3.Connection, prod: dict) -> list[dict]:
    out = []
    for zp in prod["zone_prices"]:
        zone = db.execute("SELECT name FROM price_zones WHERE id = ?", (zp["zone_id"],)).fetchone()
        out.append({"id": zp["zone_id"], "name": zone["name"] if zone else "", "price_cents": zp["price_cents"]})
    return out


# --- a quote ----------------------------------------------------------------------------------------------


def quote(db: sqlite3.Connection, body: SubscriptionSaleIn, *, pool: str, now: dt.datetime) -> dict:
    """The price of the sale *body* describes, checked as `sell_subscriptions` checks it (seats in
    *pool*, tier, form, phase), nothing stored: the total and each member's price and zone."""
    members = members_of(body)
    prod = offers.product(db, body.product_id, kinds=(*offers.SEATED, "voucher"))
    if not db.execute("SELECT 1 FROM customers WHERE id = ?", (body.customer_id,)).fetchone():
        raise NotFound(f"customer {body.customer_id} does not exist", field="customer_id")
    check_phase(db, prod, CHANNEL, body.customer_id, now)
    form_of(prod, body.form)
    _, priced = derive_party(db, prod, members, body, pool=pool, now=now)
    return {"total_cents": sum(p[0] for p in priced),
            "members": [{"price_cents": p[0], "zone_id": p[2]} for p in priced]}

