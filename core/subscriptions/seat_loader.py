"""Reading seat availability from the database, for the pure seat logic in `seats`: read only, no writes.

A plan's index is built once and kept per database and plan, until the plan changes (its
header, a seat, a variant: see `_fingerprint`, read again at every load, so a plan changed by
another hub process on the same PostgreSQL database is read afresh). The state of the dates
(seats sold, held, in other pools) is read in ONE statement for all of them, each date's
seats as one text (`core.base.sql.joined`): a full house is thousands of seats, and a row per
seat would cost most of the time (on PostgreSQL every row crosses the socket).

Taken seats are the sold tickets plus the held ones: `Holds` (what `holds.held_by_others`
gives) is read in the same statement; any other *holds* source is a function from
performance ids to the held seat ids of each. With *seats*, only those seats are looked at
(a few index lookups per date instead of the house): every other seat counts as taken, so a
check of the named seats answers exactly as with the whole house, and nothing else is free.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from core.base.clock import iso, utcnow
from core.base.errors import NotFound
from core.base.sql import is_postgresql, joined, json_values
from core.sales.contingents import HUB
from core.subscriptions.seats import PerformanceSeats, Plan, Seat

TakenSeats = Callable[[sqlite3.Connection, Sequence[str]], dict[str, set[str]]]
"""A source of taken seats: performance ids -> {performance id: seat ids}."""

_CACHE: dict[tuple[str, str], tuple[tuple, Plan]] = {}
_CACHE_LIMIT = 64
RECENT_S = 2  # a plan changed this recently is not served from the cache (see `_just_changed`)
SOLD, HELD, ELSEWHERE, IN_POOL = "sold", "held", "elsewhere", "in_pool"


@dataclass(frozen=True)
class Holds:
    """The seat holds that take seats, as a *holds* source the loader reads with the rest: held by
    anybody but *holder* (whose own holds are free for them), and with *live_at* (ISO time) only
    the holds not expired then (a dry run that deletes nothing)."""

    holder: str | None = None
    live_at: str | None = None

    def __call__(self, db: sqlite3.Connection, performance_ids: Sequence[str]) -> dict[str, set[str]]:
        return seat_state(db, performance_ids, holds=self)[HELD]


def seat_state(db: sqlite3.Connection, performance_ids: Sequence[str], *, pool: str | None = None,
               holds: Holds | None = None, seats: Collection[str] | None = None) -> dict[str, dict[str, set[str]]]:
    """One statement for all *performance_ids*: {SOLD: {performance: seat ids}, HELD: ... (with
    *holds*), ELSEWHERE: seats in a pool other than the hub's (*pool* the hub's) or IN_POOL: the
    seats of *pool* (another pool)}; with *seats*, only those seats (indexed lookups)."""
    # the ids as placeholders, not a JSON array: the planner then knows them and answers from the
    # (performance, seat) indexes (json_each's rows are a guess to PostgreSQL's planner)
    perfs = list(dict.fromkeys(performance_ids))
    in_perfs = f"performance_id IN ({', '.join('?' * len(perfs))})" if perfs else "0 = 1"
    only, only_args = "", []
    if seats is not None:
        only_args = sorted(set(seats))
        only = f" AND seat_id IN ({', '.join('?' * len(only_args))})" if only_args else " AND 0 = 1"
    agg = joined("seat_id", ",", db)
    parts = [f"SELECT performance_id, '{SOLD}' AS kind, {agg} AS seats FROM tickets WHERE {in_perfs} "
             f"AND status = 'sold'{only} GROUP BY performance_id"]
    args: list = [*perfs, *only_args]
    if holds is not None:
        live = "" if holds.live_at is None else " AND expires_at > ?"
        parts.append(f"SELECT performance_id, '{HELD}', {agg} FROM seat_holds WHERE {in_perfs} "
                     f"AND holder IS NOT ?{live}{only} GROUP BY performance_id")
        args += [*perfs, holds.holder, *(() if holds.live_at is None else (holds.live_at,)), *only_args]
    if pool is not None:
        kind, test = (ELSEWHERE, "<>") if pool == HUB else (IN_POOL, "=")
        parts.append(f"SELECT performance_id, '{kind}', {agg} FROM seat_pools WHERE {in_perfs} "
                     f"AND pool {test} ?{only} GROUP BY performance_id")
        args += [*perfs, pool, *only_args]
    out: dict[str, dict[str, set[str]]] = {SOLD: {}, HELD: {}, ELSEWHERE: {}, IN_POOL: {}}
    if not perfs or (seats is not None and not only_args):
        return out  # nothing to look at
    cursor = db.cursor()
    cursor.row_factory = None  # plain tuples
    for perf, kind, text in cursor.execute(" UNION ALL ".join(parts), args):
        out[kind][perf] = set(text.split(",")) if text else set()
    return out


def sold_seats(db: sqlite3.Connection, performance_ids: Sequence[str]) -> dict[str, set[str]]:
    """Seats with a sold ticket, per performance (only those with one)."""
    return seat_state(db, performance_ids)[SOLD]


def load_performances(db: sqlite3.Connection, performance_ids: Sequence[str], *, pool: str | None = None,
                      holds: TakenSeats | None = None, seats: Collection[str] | None = None) -> list[PerformanceSeats]:
    """The seats of each performance (in the order asked): taken = sold + held (if *holds*), and,
    with *pool*, only that pool's seats count as free. With *seats* only those seats are looked
    at and every other seat counts as taken (module docstring): for checking named seats."""
    rows = {r["id"]: r for r in db.execute(
        "SELECT p.id, p.variant_id, v.plan_id FROM performances p JOIN plan_variants v ON v.id = p.variant_id "
        f"WHERE p.id IN ({json_values()})", (json.dumps(list(performance_ids)),))}
    missing = [p for p in performance_ids if p not in rows]
    if missing:
        raise NotFound(f"performance {missing[0]} does not exist")
    state = seat_state(db, performance_ids, pool=pool, holds=holds if isinstance(holds, Holds) else None,
                       seats=None if seats is None else set(seats))
    taken = state[SOLD]
    held = state[HELD] if holds is None or isinstance(holds, Holds) else holds(db, performance_ids)
    for perf_id, seat_ids in held.items():
        taken[perf_id] = taken.get(perf_id, set()) | seat_ids
    out, plans = [], {}
    for perf_id in performance_ids:
        row = rows[perf_id]
        plan = plans.get(row["plan_id"]) or plans.setdefault(row["plan_id"], load_plan(db, row["plan_id"]))
        offered = plan.offered(row["variant_id"])
        taken_mask = plan.mask(taken.get(perf_id, ())) & offered
        if seats is not None:  # the seats not looked at count as taken
            taken_mask |= offered & ~plan.mask(seats)
        other = 0
        if pool == HUB:  # the hub's pool: every offered seat without a row elsewhere
            other = offered & plan.mask(state[ELSEWHERE].get(perf_id, ()))
        elif pool is not None:
            other = offered & ~plan.mask(state[IN_POOL].get(perf_id, ()))
        out.append(PerformanceSeats(perf_id, plan, row["variant_id"], offered, taken_mask, other))
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
    if is_postgresql(db):
        if getattr(db, "url", None):  # opened by core.base.pg (or its pool): no round trip
            return db.url
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
