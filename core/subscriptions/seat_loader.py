"""Reading seat availability from SQLite, for the pure seat logic in `seats`: read only, no writes.

A plan's index is built once and kept per database file and plan, until the plan changes
(its header, a seat, a variant: see `_fingerprint`). Taken seats are the sold tickets plus
whatever *holds* returns: the seat holds of a checkout plug in there (a function from
performance ids to the held seat ids of each), so this module needs no hold table.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Sequence

from core.base.clock import iso, utcnow
from core.base.errors import NotFound
from core.base.sql import json_values
from core.sales.contingents import HUB
from core.subscriptions.seats import PerformanceSeats, Plan, Seat, availability

TakenSeats = Callable[[sqlite3.Connection, Sequence[str]], dict[str, set[str]]]
"""A source of taken seats: performance ids -> {performance id: seat ids}."""

_CACHE: dict[tuple[str, str], tuple[tuple, Plan]] = {}
_CACHE_LIMIT = 64
RECENT_S = 2  # a plan changed this recently is not served from the cache (see `_just_changed`)


def sold_seats(db: sqlite3.Connection, performance_ids: Sequence[str]) -> dict[str, set[str]]:
    """Seats with a sold ticket, per performance: one indexed read each, rows as plain tuples
    (a full house is thousands of rows, and building a dict per row would cost most of the time)."""
    cursor = db.cursor()
    cursor.row_factory = None
    return {perf: {seat for (seat,) in cursor.execute(
        "SELECT seat_id FROM tickets WHERE performance_id = ? AND status = 'sold'", (perf,))}
        for perf in performance_ids}


def pool_seats(db: sqlite3.Connection, plan: Plan, variant_id: str, performance_id: str, pool: str) -> set[str]:
    """The seats of the performance in *pool* (a seat without a `seat_pools` row is the hub's).
    Rows as plain tuples, as in `sold_seats`: a desk selling a ring reads its pool in every date."""
    cursor = db.cursor()
    cursor.row_factory = None
    if pool != HUB:
        return {seat for (seat,) in cursor.execute(
            "SELECT seat_id FROM seat_pools WHERE performance_id = ? AND pool = ?", (performance_id, pool))}
    elsewhere = {seat for (seat,) in cursor.execute(
        "SELECT seat_id FROM seat_pools WHERE performance_id = ? AND pool <> ?", (performance_id, HUB))}
    return set(plan.ids(plan.offered(variant_id) & ~plan.mask(elsewhere)))


def load_performances(db: sqlite3.Connection, performance_ids: Sequence[str], *, pool: str | None = None,
                      holds: TakenSeats | None = None) -> list[PerformanceSeats]:
    """The seats of each performance (in the order asked): taken = sold + held (if *holds*), and,
    with *pool*, only that pool's seats count as free."""
    rows = {r["id"]: r for r in db.execute(
        "SELECT p.id, p.variant_id, v.plan_id FROM performances p JOIN plan_variants v ON v.id = p.variant_id "
        f"WHERE p.id IN ({json_values()})", (json.dumps(list(performance_ids)),))}
    missing = [p for p in performance_ids if p not in rows]
    if missing:
        raise NotFound(f"performance {missing[0]} does not exist")
    taken = sold_seats(db, performance_ids)
    if holds is not None:
        for perf_id, seat_ids in holds(db, performance_ids).items():
            taken.setdefault(perf_id, set()).update(seat_ids)
    out, plans = [], {}
    for perf_id in performance_ids:
        row = rows[perf_id]
        plan = plans.get(row["plan_id"]) or plans.setdefault(row["plan_id"], load_plan(db, row["plan_id"]))
        in_pool = None if pool is None else pool_seats(db, plan, row["variant_id"], perf_id, pool)
        out.append(availability(plan, perf_id, row["variant_id"], taken.get(perf_id, ()), in_pool))
    return out


def _fingerprint(db: sqlite3.Connection, plan_id: str) -> tuple:
    """Changes whenever the plan does: its header (seat size; a seat change touches it too), its
    seats, its variants and their removed seats."""
    row = db.execute(
        "SELECT p.updated_at, p.seat_size, (SELECT count(*) FROM seats s WHERE s.plan_id = p.id) AS seats, "
        "(SELECT count(*) || '/' || coalesce(max(updated_at), '') FROM plan_variants v WHERE v.plan_id = p.id) "
        "AS variants, (SELECT count(*) FROM variant_removed_seats r JOIN plan_variants v ON v.id = r.variant_id "
        "WHERE v.plan_id = p.id) AS removed FROM seating_plans p WHERE p.id = ?", (plan_id,)).fetchone()
    if row is None:
        raise NotFound(f"no seating plan with id {plan_id}")
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def _just_changed(updated_at: str) -> bool:
    """Changed within the last seconds: `updated_at` counts whole seconds, so a second change in
    the same second would leave the fingerprint as it was; such a plan is read afresh."""
    return updated_at >= iso(utcnow() - dt.timedelta(seconds=RECENT_S))


def _database_file(db: sqlite3.Connection) -> str:
    """Which database the plan cache's entry belongs to: the file on SQLite; on PostgreSQL
    (core.base.pg, no PRAGMA) the database's name on its server."""
    if not isinstance(db, sqlite3.Connection):
        row = db.execute("SELECT current_database() AS name, inet_server_port() AS port").fetchone()
        return f"postgresql:{row['name']}:{row['port']}"
    for row in db.execute("PRAGMA database_list"):
        name = row["name"] if isinstance(row, dict) else row[1]
        if name == "main":
            return (row["file"] if isinstance(row, dict) else row[2]) or f"memory:{id(db)}"
    return f"memory:{id(db)}"


def load_plan(db: sqlite3.Connection, plan_id: str) -> Plan:
    """The plan with its stable seat index, from the cache while the plan is unchanged."""
    key = (_database_file(db), plan_id)
    stamp = _fingerprint(db, plan_id)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == stamp and not _just_changed(stamp[0]):
        return cached[1]
    plan = read_plan(db, plan_id)
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (stamp, plan)
    return plan


def read_plan(db: sqlite3.Connection, plan_id: str) -> Plan:
    header = db.execute("SELECT seat_size FROM seating_plans WHERE id = ?", (plan_id,)).fetchone()
    if header is None:
        raise NotFound(f"no seating plan with id {plan_id}")
    cursor = db.cursor()
    cursor.row_factory = None  # plain tuples: a big house has thousands of seats
    seats = [Seat(id_, section, row, label, x, y, zone, bool(wheel), bool(companion), variant, bool(active))
             for id_, section, row, label, x, y, zone, wheel, companion, variant, active in cursor.execute(
                 "SELECT s.id, c.name, s.row_label, s.label, s.x, s.y, s.zone_id, s.wheelchair, s.companion, "
                 "s.variant_id, s.active FROM seats s JOIN plan_sections c ON c.id = s.section_id "
                 "WHERE s.plan_id = ?", (plan_id,))]
    variants = [r["id"] for r in db.execute("SELECT id FROM plan_variants WHERE plan_id = ?", (plan_id,))]
    removed: dict[str, list[str]] = {v: [] for v in variants}
    for r in db.execute("SELECT r.variant_id, r.seat_id FROM variant_removed_seats r "
                        "JOIN plan_variants v ON v.id = r.variant_id WHERE v.plan_id = ?", (plan_id,)):
        removed[r["variant_id"]].append(r["seat_id"])
    return Plan(plan_id, header["seat_size"], seats, removed, variants)
