"""A subscription's seat map states (issue 13/14): which seats of a plan variant are free in all
the dates concerned, another pool's, picked, or taken. Desk and office draw the same map with
the one renderer (`core.catalog.seating.seatmap`); the office passes no other pool (it sells
from the hub's pool and sees a desk's seats as not free), a desk passes the seats that lie in
another pool so its cashier can tell "sold" from "not ours to sell".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence

from core.catalog.seating.seatmap import FREE, OTHER_POOL, SELECTED, TAKEN, seat_map_svg
from core.catalog.seating.seatmap_data import variant_map
from core.subscriptions.seats import PerformanceSeats, Plan
from core.subscriptions.series import RingGroup


def subscription_seat_map(db: sqlite3.Connection, variant_id: str, free: Collection[str], selected: Collection[str],
                          lang: str, other_pool: Collection[str] = ()) -> str:
    """The variant's map: *free* seats free (free in all the dates concerned), *selected* as
    picked, *other_pool* as another pool's (a desk cannot sell them, but nobody bought them),
    every other seat taken. The office passes no *other_pool* (all pools are its concern)."""
    plan, seats = variant_map(db, variant_id)
    free, selected, other = set(free), set(selected), set(other_pool)
    states = {s.id: SELECTED if s.id in selected else FREE if s.id in free else OTHER_POOL if s.id in other
              else TAKEN for s in seats}
    return seat_map_svg(plan, seats, states, lang)


def map_sets(group: RingGroup, variant_id: str) -> tuple[list[str], list[str]]:
    """(free, other pool) seat ids of *variant_id*'s map in a ring group: the lead variant shows the
    seats that may be picked (free in every date whose variant has them), another variant the
    seats free in all its own dates (a replacement's rule). Other pool: not free, in another pool
    in one of the dates and sold or held in none."""
    free = group.choosable(variant_id) if variant_id == group.lead else group.free_in_variant(variant_id)
    return group.plan.ids(free), other_pool_ids(group.plan, group.of_variant(variant_id), free)


def other_pool_ids(plan: Plan, perfs: Sequence[PerformanceSeats], free: int) -> list[str]:
    other, taken = 0, 0
    for perf in perfs:
        other |= perf.other_pool
        taken |= perf.taken
    return plan.ids(other & ~taken & ~free)
