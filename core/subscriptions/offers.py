"""What a subscription product offers a buyer right now: its dates, the seats free in all of
them (per ring group, with the variant steps) and the best available seats. Read only, apart
from deleting expired holds of the performances looked at (so an expired hold never hides
a seat). The sale (`sale.py`) and the seat change (`records.py`) check against the same data.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Collection, Sequence

from core.base.errors import NotFound, ValidationError
from core.catalog import resource
from core.catalog.resource import Audience
from core.catalog.subscriptions import Subscriptions
from core.sales.contingents import HUB
from core.subscriptions import holds
from core.subscriptions.seat_loader import load_performances
from core.subscriptions.seats import PerformanceSeats
from core.subscriptions.series import RingGroup, best_ring_seats, choice_groups, combi_best, ring_groups

SEATED = ("ring", "choice", "combi")


def product(db: sqlite3.Connection, product_id: str, audience: Audience = "internal",
            kinds: Sequence[str] = SEATED) -> dict:
    """The product as *audience* sees it (an agency: released products only), on sale and of
    *kinds* (seated, unless the caller sells vouchers too)."""
    try:
        found = resource.get(db, Subscriptions(), product_id, audience)
    except NotFound:
        raise NotFound(f"subscription product {product_id} does not exist", field="product_id") from None
    if not found["active"]:
        raise ValidationError(f"{found['name']} is deactivated and not on sale", field="product_id")
    if found["kind"] not in kinds:
        raise ValidationError(f"{found['name']} is a {found['kind']} subscription: it has no seats and is not "
                              "sold here", field="product_id")
    return found


def performances(db: sqlite3.Connection, prod: dict, *, pool: str = HUB, holder: str | None = None,
                 now: dt.datetime, performance_ids: Sequence[str] | None = None,
                 seats: Collection[str] | None = None) -> list[PerformanceSeats]:
    """The seats of the product's performances (or of *performance_ids*, which must be among
    them) in *pool*, taken = sold + held by anybody but *holder*; expired holds deleted first.
    With *seats*, only those are looked at and every other seat counts as taken (checking
    named seats: `seat_loader.load_performances`)."""
    ids = list(prod["performance_ids"])
    if performance_ids is not None:
        strangers = [p for p in performance_ids if p not in ids]
        if strangers:
            raise ValidationError(f"performance {strangers[0]} is not one of {prod['name']}'s dates",
                                  field="performance_ids")
        ids = [p for p in ids if p in set(performance_ids)]
    holds.expire(db, now, ids)
    return load_performances(db, ids, pool=pool, holds=holds.held_by_others(holder), seats=seats)


def groups(prod: dict, perfs: list[PerformanceSeats], chosen: Sequence[str] | None) -> list[RingGroup]:
    """Ring: all dates by plan. Choice: the chosen N dates (all M when none are chosen yet, to show)."""
    if prod["kind"] == "choice" and chosen:
        return choice_groups(perfs, list(chosen), prod["pick_count"])
    return ring_groups(perfs)


def availability(db: sqlite3.Connection, product_id: str, *, audience: Audience = "internal", pool: str = HUB,
                 holder: str | None = None, now: dt.datetime,
                 performance_ids: Sequence[str] | None = None) -> dict:
    """Free-in-all seats per ring group and variant (the lead first): in a variant, the seats
    that may be picked there; a variant lacking a seat picked elsewhere is a step of the sale."""
    prod = product(db, product_id, audience)
    perfs = performances(db, prod, pool=pool, holder=holder, now=now, performance_ids=performance_ids)
    out = []
    for group in ring_groups(perfs):
        variants = []
        for variant in group.variants:
            mask = group.choosable(variant) if prod["kind"] != "combi" else 0
            variants.append({"variant_id": variant, "lead": variant == group.lead,
                             "performance_ids": [p.performance_id for p in group.of_variant(variant)],
                             "free_seat_ids": group.plan.ids(mask) if prod["kind"] != "combi" else []})
        out.append({"plan_id": group.plan.id, "performance_ids": [p.performance_id for p in group.performances],
                    "variants": variants})
    per_performance = [{"performance_id": p.performance_id, "variant_id": p.variant_id,
                        "free_seat_ids": p.plan.ids(p.free)} for p in perfs] if prod["kind"] == "combi" else []
    return {"product_id": product_id, "kind": prod["kind"], "pick_count": prod.get("pick_count"),
            "groups": out, "performances": per_performance}


def best(db: sqlite3.Connection, product_id: str, *, count: int = 1, zone_id: str | None = None,
         wheelchair: int = 0, audience: Audience = "internal", pool: str = HUB, holder: str | None = None,
         now: dt.datetime, performance_ids: Sequence[str] | None = None) -> dict:
    """Best available for *count* subscribers side by side: per ring group, each subscriber's
    seat in every performance (with replacements where a variant lacks it); a combi: seats per
    performance. `found` is False when some group has no block (then nothing is proposed)."""
    prod = product(db, product_id, audience)
    perfs = performances(db, prod, pool=pool, holder=holder, now=now, performance_ids=performance_ids)
    if prod["kind"] == "combi":
        seats = combi_best(perfs, count, zone_id=zone_id, wheelchair=wheelchair)
        found = all(v is not None for v in seats.values())
        return {"product_id": product_id, "found": found, "bookings": [
            {"performance_id": perf, "seat_id": seat} for perf, ids in seats.items() if found for seat in ids]}
    bookings, found = [], True
    for group in ring_groups(perfs):
        parties = best_ring_seats(group, count, zone_id=zone_id, wheelchair=wheelchair)
        if parties is None:
            found = False
            break
        bookings += [{"performance_id": p, "seat_id": s} for party in parties for p, s in party.bookings()]
    return {"product_id": product_id, "found": found, "bookings": bookings if found else []}
