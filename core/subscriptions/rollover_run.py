"""A season rollover's run (S15): plan, hold the seats until the renewal deadline, resume after a crash.

One run per (old season, new season) (`rollover_runs`, migration 0027). `run()` plans what is not
planned yet (`rollover_plan`) and stores it in chunks: each chunk's item rows (keyed (run,
subscription)) and their seat holds in ONE transaction, so a run killed at any point (kill -9
included) and started again keeps what was stored and plans only the rest, doubling nothing
and missing nothing. The holds are `seat_holds` rows of the holder `rollover:<run id>` that
expire at the renewal deadline: until then nobody else can take those seats (the sale and the
hold triggers of migration 0018 see to that), which is the renewal presale (S3) of the rolled
subscribers before general sale. `dry_run` answers the same result and writes nothing.

Progress (`total`, `done`) is stored on the run row after every chunk, for the office screen to
poll, and reported to a *progress* callback for the CLI's bar.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Sequence

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.storage import transaction
from core.subscriptions import rollover_map, rollover_plan
from core.subscriptions.rollover_map import MappingIn, ProductMap, SeasonPair
from core.subscriptions.rollover_plan import Item

CHUNK = 500
DEFAULT_RENEWAL = dt.timedelta(days=42)
Progress = Callable[[str, int, int], None]


def _quiet(stage: str, done: int, total: int) -> None:
    return None


def holder_of(run_id: str) -> str:
    """The holder of a run's seat holds (a sale with this holder buys them)."""
    return f"rollover:{run_id}"


def find(db: sqlite3.Connection, from_season_id: str, to_season_id: str) -> dict | None:
    return db.execute("SELECT * FROM rollover_runs WHERE from_season_id = ? AND to_season_id = ?",
                      (from_season_id, to_season_id)).fetchone()


def get(db: sqlite3.Connection, run_id: str) -> dict:
    row = db.execute("SELECT * FROM rollover_runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFound(f"no rollover run {run_id}", detail_de=f"Keine Saisonübernahme {run_id}")
    return row


def runs(db: sqlite3.Connection, limit: int = 100) -> list[dict]:
    """The latest rollovers, newest first."""
    return db.execute("SELECT * FROM rollover_runs ORDER BY created_at DESC, id DESC LIMIT ?", (limit,)).fetchall()


def _stored_map(db: sqlite3.Connection, run: dict, pair: SeasonPair) -> ProductMap:
    """The product map the run was started with (kept, so a resumed run maps the same way)."""
    given = json.loads(run["mapping"])
    pairs = MappingIn(products=[rollover_map.ProductPairIn(from_product_id=k, to_product_id=v)
                                for k, v in given.items()])
    return rollover_map.product_map(db, pair, pairs)


def _start(db: sqlite3.Connection, pair: SeasonPair, pmap: ProductMap, renewal_until: str,
           cancel_deadline: str | None, now: dt.datetime) -> dict:
    run = {"id": uuid7(), "from_season_id": pair.from_season["id"], "to_season_id": pair.to_season["id"],
           "mapping": json.dumps(pmap.as_json()), "renewal_until": renewal_until,
           "cancel_deadline": cancel_deadline, "state": "planning", "total": 0, "done": 0,
           "created_at": iso(now), "updated_at": iso(now)}
    with transaction(db):
        if find(db, run["from_season_id"], run["to_season_id"]) is None:
            db.execute(f"INSERT INTO rollover_runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})",
                       tuple(run.values()))
    return find(db, run["from_season_id"], run["to_season_id"])


def _deadline(renewal_until: dt.datetime | None, now: dt.datetime) -> str:
    until = renewal_until or now + DEFAULT_RENEWAL
    if until <= now:
        raise ValidationError("the renewal deadline must lie in the future", field="renewal_until",
                              detail_de="Die Verlängerungsfrist muss in der Zukunft liegen")
    return iso(until)


def prepare(db: sqlite3.Connection, from_season_id: str, to_season_id: str, now: dt.datetime, *,
            mapping: MappingIn | None = None, renewal_until: dt.datetime | None = None,
            cancel_deadline: dt.datetime | None = None, create: bool = True) -> tuple[SeasonPair, ProductMap, dict]:
    """The seasons, the product map and the run row (created unless there is one, or *create* is
    False: then a dict with the settings a new run would get). A run keeps its first mapping."""
    pair = rollover_map.seasons(db, from_season_id, to_season_id)
    existing = find(db, from_season_id, to_season_id)
    if existing is not None:
        if mapping is not None and mapping.products:
            fresh = rollover_map.product_map(db, pair, mapping).as_json()
            if fresh != json.loads(existing["mapping"]):
                raise Conflict("this rollover was started with another product mapping; it continues with that one",
                               field="products", detail_de="Diese Übernahme läuft bereits mit einer anderen "
                                                           "Produktzuordnung")
        return pair, _stored_map(db, existing, pair), existing
    pmap = rollover_map.product_map(db, pair, mapping)
    deadline, cancel = _deadline(renewal_until, now), iso(cancel_deadline) if cancel_deadline else None
    if not create:
        return pair, pmap, {"id": None, "renewal_until": deadline, "cancel_deadline": cancel}
    return pair, pmap, _start(db, pair, pmap, deadline, cancel, now)


def run(db: sqlite3.Connection, from_season_id: str, to_season_id: str, now: dt.datetime, *,
        mapping: MappingIn | None = None, renewal_until: dt.datetime | None = None,
        cancel_deadline: dt.datetime | None = None, dry_run: bool = False,
        progress: Progress = _quiet, chunk: int = CHUNK) -> dict:
    """Plan and hold (or with *dry_run* only plan) the rollover; returns the run and its `summary`.
    A second call continues (or, when complete, answers) the same run; its mapping stays."""
    pair, pmap, current = prepare(db, from_season_id, to_season_id, now, mapping=mapping,
                                  renewal_until=renewal_until, cancel_deadline=cancel_deadline, create=not dry_run)
    done = items_of(db, current["id"]) if current["id"] else []
    progress("plan", 0, 1)
    todo = rollover_plan.plan(db, pair, pmap, now, cancel_deadline=current["cancel_deadline"],
                              skip={i["subscription_id"] for i in done})
    progress("plan", 1, 1)
    if dry_run:
        rows = done + [i.as_row() for i in todo]
        return {"run": current if current["id"] else None, "dry_run": True, **rollover_plan.summary(rows),
                "items": rows}
    _store(db, current, todo, len(done), now, progress, chunk)
    return result(db, current["id"])


def _store(db: sqlite3.Connection, run_row: dict, todo: list[Item], already: int, now: dt.datetime,
           progress: Progress, size: int) -> None:
    """The planned items and their holds, a chunk per transaction, progress on the run row. A run
    already planned to its end with nothing new to plan keeps its state (held, confirming, done)."""
    total = already + len(todo)
    if not todo and run_row["state"] != "planning":
        return
    _progress(db, run_row["id"], "planning", total, already, now)
    progress("hold", already, total)
    for start in range(0, len(todo), size):
        chunk = todo[start:start + size]
        with transaction(db):
            _store_items(db, run_row, chunk, now)
            _progress(db, run_row["id"], "planning", total, already + start + len(chunk), now)
        progress("hold", already + start + len(chunk), total)
    _progress(db, run_row["id"], "held", total, total, now)


def _progress(db: sqlite3.Connection, run_id: str, state: str, total: int, done: int, now: dt.datetime) -> None:
    set_progress(db, run_id, state, total, done, now)


def set_progress(db: sqlite3.Connection, run_id: str, state: str, total: int, done: int, now: dt.datetime) -> None:
    """The run's state and progress (what the office polls); clears an earlier error."""
    with transaction(db):
        db.execute("UPDATE rollover_runs SET state = ?, total = ?, done = ?, error = NULL, updated_at = ? "
                   "WHERE id = ?", (state, total, done, iso(now), run_id))


def set_error(db: sqlite3.Connection, run_id: str, error: str, now: dt.datetime) -> None:
    """A background step that stopped: why (the state stays, so running it again continues)."""
    with transaction(db):
        db.execute("UPDATE rollover_runs SET error = ?, updated_at = ? WHERE id = ?", (error[:500], iso(now), run_id))


def _store_items(db: sqlite3.Connection, run_row: dict, items: list[Item], now: dt.datetime) -> None:
    """The items' rows and their seats' holds (one hold per item), in the caller's transaction."""
    stamp, holder = iso(now), holder_of(run_row["id"])
    rows, held = [], []
    for item in items:
        hold_id = uuid7() if item.seats else None
        state = "held" if item.outcome in ("kept", "moved", "paused") else "open"
        rows.append((run_row["id"], item.subscription_id, item.outcome, item.reason, item.detail, item.to_product_id,
                     item.tier_id, item.zone_id, json.dumps(item.seats), hold_id, state, stamp, stamp))
        held += [(perf, seat, hold_id, holder, run_row["renewal_until"], stamp) for perf, seat in item.seats]
    db.executemany("INSERT INTO rollover_items (run_id, subscription_id, outcome, reason, detail, to_product_id, "
                   "tier_id, zone_id, seats, hold_id, state, created_at, updated_at) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO seat_holds (performance_id, seat_id, hold_id, holder, expires_at, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", held)


def items_of(db: sqlite3.Connection, run_id: str, *, outcome: str | None = None,
             subscription_ids: Sequence[str] | None = None) -> list[dict]:
    """The run's items with the old subscription's number and customer, in order of sale."""
    rows = db.execute(
        "SELECT i.*, s.number, s.customer_id, c.number AS customer_number, "
        "c.last_name || ', ' || c.first_name AS customer FROM rollover_items i "
        "JOIN subscriptions s ON s.id = i.subscription_id JOIN customers c ON c.id = s.customer_id "
        "WHERE i.run_id = ? AND (CAST(? AS TEXT) IS NULL OR i.outcome = ?) ORDER BY s.created_at, s.id",
        (run_id, outcome, outcome)).fetchall()
    wanted = set(subscription_ids) if subscription_ids is not None else None
    out = []
    for row in rows:
        if wanted is None or row["subscription_id"] in wanted:
            row["seats"] = json.loads(row["seats"])
            out.append(row)
    return out


def result(db: sqlite3.Connection, run_id: str) -> dict:
    """The run with its counts and the listed subscriptions grouped by reason."""
    current = get(db, run_id)
    items = items_of(db, run_id)
    states = {k: 0 for k in ("held", "confirmed", "open", "failed")}
    for item in items:
        states[item["state"]] += 1
    return {"run": current, "dry_run": False, **rollover_plan.summary(items), "states": states}
