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
(their holds and pools by index lookups, their sold state from the kept sold seats below):
every other seat counts as taken, so a check of the named seats answers exactly as with the
whole house, and nothing else is free.

The sold seats of each date are kept per process and database (`_SOLD`), as of a position in
the seats' sale log (`seat_sales`, migration 0032: a row each time a seat becomes sold or
stops being sold, numbered in commit order, written by triggers on tickets). Each read asks,
in the same one statement, only for the log rows from that position on: in a presale rush a
seat choice reads the few seats sold since the last one instead of the whole house's sold
tickets (thousands of rows; on PostgreSQL the largest cost of a checkout). The first row
returned must be the row the cache last saw (same position, same ticket): a sale the cache saw
inside a transaction that then rolled back, or a database that is not the one it saw, fails
that check and the dates are read afresh, as they are when more than `DELTA_LIMIT` rows came
since. A date read for the first time is read whole, with the log's last row, in the same
statement (one snapshot).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from core.base.clock import iso, utcnow
from core.base.errors import NotFound
from core.base.sql import is_postgresql, joined, json_values, listed
from core.sales.contingents import HUB
from core.subscriptions.seats import PerformanceSeats, Plan, Seat

TakenSeats = Callable[[sqlite3.Connection, Sequence[str]], dict[str, set[str]]]
"""A source of taken seats: performance ids -> {performance id: seat ids}."""

_CACHE: dict[tuple[str, str], tuple[tuple, Plan]] = {}
_CACHE_LIMIT = 64
RECENT_S = 2  # a plan changed this recently is not served from the cache (see `_just_changed`)
SOLD, HELD, ELSEWHERE, IN_POOL = "sold", "held", "elsewhere", "in_pool"
_LOG, _TAIL = "log", "tail"
_LOG0, _LOG1 = _LOG + "0", _LOG + "1"  # a log row's kind: the seat stopped being sold / became sold
DELTA_LIMIT = 2048  # more sale-log rows than this since the cache's position: the dates are read afresh
_SOLD_LIMIT = 512  # dates kept per database


@dataclass(frozen=True)
class _Sold:
    """What the process knows of one date's sold seats: its sold seat ids as of sale-log row
    *pos* (0: the log was empty) of ticket *ticket*."""

    pos: int
    ticket: str | None
    seats: frozenset[str]


_SOLD: dict[str, dict[str, _Sold]] = {}  # database -> performance -> sold seats
_SOLD_LOCK = threading.Lock()  # the hub's executor threads share the cache


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
    seats of *pool* (another pool)}; with *seats*, only those seats. The sold seats come from the
    process's cache and the sale log's rows since (module docstring)."""
    perfs = list(dict.fromkeys(performance_ids))
    out: dict[str, dict[str, set[str]]] = {SOLD: {}, HELD: {}, ELSEWHERE: {}, IN_POOL: {}}
    if not perfs or (seats is not None and not seats):
        return out  # nothing to look at
    named = None if seats is None else sorted(set(seats))
    key = _database_file(db)
    known = {p: sold for p in perfs if (sold := _SOLD.get(key, {}).get(p)) is not None}
    rows = _read(db, perfs, pool, holds, named, known)
    sold = _caught_up(known, perfs, rows)
    if sold is None:  # a row the cache saw is gone, or too much came since: read the dates afresh
        rows = _read(db, perfs, pool, holds, named, {})
        sold = _caught_up({}, perfs, rows)
        assert sold is not None  # a fresh read never needs the cache
    _remember(key, sold)
    for perf in perfs:
        taken = sold[perf].seats if named is None else sold[perf].seats.intersection(named)
        if taken:
            out[SOLD][perf] = taken  # type: ignore[assignment]  # frozen: shared, never changed
    for perf, kind, text, _, _ in rows:
        if kind not in (SOLD, _LOG0, _LOG1, _TAIL):
            out[kind][perf] = set(text.split(",")) if text else set()
    return out


def _read(db: sqlite3.Connection, perfs: list[str], pool: str | None, holds: Holds | None,
          seats: list[str] | None, known: dict[str, _Sold]) -> list[tuple]:
    """The one statement: rows (performance, kind, seat ids as text, log position, ticket). The
    dates in *known* come from the sale log from their positions on, the others whole, with the
    log's last row; the holds and pools of only *seats* when given."""
    # the ids as placeholders (`listed`), not a JSON array: the planner then knows them and
    # answers from the (performance, seat) indexes (json_each's rows are a guess to PostgreSQL's)
    def within(ids: list) -> tuple[str, list]:
        marks, values = listed(ids)
        return f"performance_id IN ({marks})", values

    only, only_args = "", []
    if seats is not None:
        marks, only_args = listed(seats)
        only = f" AND seat_id IN ({marks})"
    agg = joined("seat_id", ",", db)
    cached = [p for p in perfs if p in known]
    whole = [p for p in perfs if p not in cached]
    parts, args = [], []
    if cached:
        seen_marks, seen = listed(sorted({known[p].pos for p in cached}))
        dates, date_args = within(cached)
        parts.append(f"SELECT * FROM (SELECT performance_id, '{_LOG}' || sold, seat_id, pos, ticket_id FROM seat_sales "
                     f"WHERE pos >= ? AND (pos IN ({seen_marks}) OR {dates}) ORDER BY pos LIMIT ?) AS delta")
        args += [seen[0], *seen, *date_args, DELTA_LIMIT]
    if whole:
        dates, date_args = within(whole)
        parts.append(f"SELECT performance_id, '{SOLD}', {agg}, NULL, NULL FROM tickets WHERE {dates} "
                     "AND status = 'sold' GROUP BY performance_id")  # the whole date: it is kept
        args += date_args
    # the log's last row: where the dates read now stand
    parts.append(f"SELECT NULL, '{_TAIL}', NULL, pos, ticket_id FROM "
                 "(SELECT pos, ticket_id FROM seat_sales ORDER BY pos DESC LIMIT 1) AS tail")
    dates, date_args = within(perfs)
    if holds is not None:
        live = "" if holds.live_at is None else " AND expires_at > ?"
        parts.append(f"SELECT performance_id, '{HELD}', {agg}, NULL, NULL FROM seat_holds WHERE {dates} "
                     f"AND holder IS NOT ?{live}{only} GROUP BY performance_id")
        args += [*date_args, holds.holder, *(() if holds.live_at is None else (holds.live_at,)), *only_args]
    if pool is not None:
        kind, test = (ELSEWHERE, "<>") if pool == HUB else (IN_POOL, "=")
        parts.append(f"SELECT performance_id, '{kind}', {agg}, NULL, NULL FROM seat_pools WHERE {dates} "
                     f"AND pool {test} ?{only} GROUP BY performance_id")
        args += [*date_args, pool, *only_args]
    cursor = db.cursor()
    cursor.row_factory = None  # plain tuples
    return list(cursor.execute(" UNION ALL ".join(parts), args))


def _caught_up(known: dict[str, _Sold], perfs: list[str], rows: list[tuple]) -> dict[str, _Sold] | None:
    """The sold seats of *perfs* as of the log's last row, from *known* and *rows* (what `_read`
    gave for *known*); None when they cannot be trusted: a row the cache saw is not there (rolled
    back, another database), or DELTA_LIMIT rows or more came (the rest were cut off)."""
    log = sorted((r for r in rows if r[1] in (_LOG0, _LOG1)), key=lambda r: r[3])
    if known and len(log) >= DELTA_LIMIT:
        return None
    there = {(pos, ticket) for _, _, _, pos, ticket in log}
    if any(k.pos and (k.pos, k.ticket) not in there for k in known.values()):
        return None
    tail = next((r for r in rows if r[1] == _TAIL), None)
    pos, ticket = (int(tail[3]), tail[4]) if tail is not None else (0, None)
    out = {}
    for perf in perfs:
        if perf in known:
            now = set(known[perf].seats)
            for row_perf, kind, seat, row_pos, _ in log:
                if row_perf == perf and row_pos > known[perf].pos:
                    (now.add if kind == _LOG1 else now.discard)(seat)
            out[perf] = _Sold(pos, ticket, known[perf].seats if now == known[perf].seats else frozenset(now))
        else:
            text = next((r[2] for r in rows if r[0] == perf and r[1] == SOLD), None)
            out[perf] = _Sold(pos, ticket, frozenset(text.split(",")) if text else frozenset())
    return out


def _remember(key: str, sold: dict[str, _Sold]) -> None:
    with _SOLD_LOCK:
        dates = _SOLD.setdefault(key, {})
        dates.update(sold)
        while len(dates) > _SOLD_LIMIT:
            dates.pop(next(iter(dates)))
        while len(_SOLD) > _CACHE_LIMIT:
            _SOLD.pop(next(iter(_SOLD)))


def sold_seats(db: sqlite3.Connection, performance_ids: Sequence[str]) -> dict[str, set[str]]:
    """Seats with a sold ticket, per performance (only those with one)."""
    return seat_state(db, performance_ids)[SOLD]


def load_performances(db: sqlite3.Connection, performance_ids: Sequence[str], *, pool: str | None = None,
                      holds: TakenSeats | None = None, seats: Collection[str] | None = None) -> list[PerformanceSeats]:
    """The seats of each performance (in the order asked): taken = sold + held (if *holds*), and,
    with *pool*, only that pool's seats count as free. With *seats* only those seats are looked
    at and every other seat counts as taken (module docstring): for checking named seats."""
    # three questions sent before any answer is read: on PostgreSQL, inside a transaction, one
    # round trip for all (core.base.pg.connection), seat_state's statement being the last
    ids = json.dumps(list(performance_ids))
    found = db.execute(
        "SELECT p.id, p.variant_id, v.plan_id FROM performances p JOIN plan_variants v ON v.id = p.variant_id "
        f"WHERE p.id IN ({json_values()})", (ids,))
    stamps = _fingerprints(db, ids)
    state = seat_state(db, performance_ids, pool=pool, holds=holds if isinstance(holds, Holds) else None,
                       seats=None if seats is None else set(seats))
    rows = {r["id"]: r for r in found}
    missing = [p for p in performance_ids if p not in rows]
    if missing:
        raise NotFound(f"performance {missing[0]} does not exist")
    stamp_of = {row[0]: tuple(row[1:]) for row in stamps}
    taken = state[SOLD]
    held = state[HELD] if holds is None or isinstance(holds, Holds) else holds(db, performance_ids)
    for perf_id, seat_ids in held.items():
        taken[perf_id] = taken.get(perf_id, set()) | seat_ids
    out, plans = [], {}
    for perf_id in performance_ids:
        row = rows[perf_id]
        plan_id = row["plan_id"]
        plan = plans.get(plan_id) or plans.setdefault(plan_id, load_plan(db, plan_id, stamp_of.get(plan_id)))
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


# what changes whenever a plan does: its header (seat size; a seat change touches it too), its
# seats, its variants and their removed seats
_STAMP = ("p.updated_at, p.seat_size, (SELECT count(*) FROM seats s WHERE s.plan_id = p.id) AS seats, "
          "(SELECT count(*) || '/' || coalesce(max(updated_at), '') FROM plan_variants v WHERE v.plan_id = p.id) "
          "AS variants, (SELECT count(*) FROM variant_removed_seats r JOIN plan_variants v ON v.id = r.variant_id "
          "WHERE v.plan_id = p.id) AS removed")


def _fingerprint(db: sqlite3.Connection, plan_id: str) -> tuple:
    """The plan's stamp (`_STAMP`)."""
    cursor = db.cursor()
    cursor.row_factory = None
    row = cursor.execute(f"SELECT {_STAMP} FROM seating_plans p WHERE p.id = ?", (plan_id,)).fetchone()
    if row is None:
        raise NotFound(f"no seating plan with id {plan_id}")
    return tuple(row)


def _fingerprints(db: sqlite3.Connection, performance_ids: str) -> sqlite3.Cursor:
    """The stamps of the plans of *performance_ids* (a JSON array), as rows (plan id, *stamp):
    sent, not read, so that it goes with the loader's other questions."""
    cursor = db.cursor()
    cursor.row_factory = None
    return cursor.execute(
        f"SELECT p.id, {_STAMP} FROM seating_plans p WHERE p.id IN (SELECT v.plan_id FROM performances pf "
        f"JOIN plan_variants v ON v.id = pf.variant_id WHERE pf.id IN ({json_values()}))", (performance_ids,))


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


def load_plan(db: sqlite3.Connection, plan_id: str, stamp: tuple | None = None) -> Plan:
    """The plan with its stable seat index, from the cache while the plan is unchanged (its
    *stamp*, read now unless the caller read it in the same snapshot)."""
    key = (_database_file(db), plan_id)
    stamp = stamp or _fingerprint(db, plan_id)
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
