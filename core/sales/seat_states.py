"""The state of every seat of a performance as one pool sees it, for the seat map (B8).

A sold ticket makes a seat `taken`; a seat another pool holds (a cash desk's contingent, an
agency's, or `blocked`) is `other_pool`, since this pool cannot sell it. Everything else is
free. A seat held for a checkout (`seat_holds`, not expired at *now*) is `held`, for everybody
(its holder too: the map shows the house, the checkout knows its own seats).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable

from core.base.clock import iso, utcnow
from core.base.errors import NotFound
from core.catalog.seating.seatmap import HELD, OTHER_POOL, TAKEN, MapPlan, MapSeat
from core.catalog.seating.seatmap_data import variant_map
from core.sales.contingents import HUB


def seat_states(db: sqlite3.Connection, performance_id: str, pool: str = HUB,
                now: dt.datetime | None = None, seat_ids: Iterable[str] = ()) -> dict[str, str]:
    """seat id -> state for the seats that are not free (taken wins over held, held over other pool).
    *seat_ids*: the performance's seats, needed for a pool other than the hub's, since a seat
    without a `seat_pools` row is the hub's. Read only: an expired hold is simply not counted."""
    states = {r["seat_id"]: OTHER_POOL for r in db.execute(
        "SELECT seat_id FROM seat_pools WHERE performance_id = ? AND pool <> ?", (performance_id, pool))}
    if pool != HUB:
        mine = {r["seat_id"] for r in db.execute(
            "SELECT seat_id FROM seat_pools WHERE performance_id = ? AND pool = ?", (performance_id, pool))}
        states |= dict.fromkeys((s for s in seat_ids if s not in mine), OTHER_POOL)
    states.update({r["seat_id"]: HELD for r in db.execute(
        "SELECT seat_id FROM seat_holds WHERE performance_id = ? AND expires_at > ?",
        (performance_id, iso(now or utcnow())))})
    states.update({r["seat_id"]: TAKEN for r in db.execute(
        "SELECT seat_id FROM tickets WHERE performance_id = ? AND status = 'sold'", (performance_id,))})
    return states


def performance_map(db: sqlite3.Connection, performance_id: str, pool: str = HUB,
                    now: dt.datetime | None = None) -> tuple[MapPlan, list[MapSeat], dict[str, str]]:
    """Plan, the seats of the performance's variant, and their states: the renderer's input."""
    row = db.execute("SELECT variant_id FROM performances WHERE id = ?", (performance_id,)).fetchone()
    if row is None:
        raise NotFound(f"performance {performance_id} does not exist")
    plan, seats = variant_map(db, row["variant_id"])
    offered = {s.id for s in seats}
    states = {seat: state for seat, state in seat_states(db, performance_id, pool, now, offered).items()
              if seat in offered}
    return plan, seats, states
