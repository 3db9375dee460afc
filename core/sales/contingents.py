"""Contingents (E3, S17): which pool may sell each seat of each performance.

A seat of a performance is in exactly one pool: `hub` (online and office sales),
`node:<id>` (a cash desk, which sells it offline), `agency:<id>` or `blocked`. A seat
without a row in `seat_pools` is in the hub's pool. Two offline desks can never sell the
same seat because they never hold the same seat.

Moving seats is a hub operation. Seats in a node's pool cannot simply be taken away, since
the desk may be offline and selling: the hub *recalls* them. The recall travels to the desk
with the next pull; the desk answers in its own op stream (`pool.released`: these seats
given back, those already sold), and only when that answer is applied at the hub do the
released seats move. Between the request and the answer the seats stay in the desk's pool,
so there is no moment in which two pools may sell one seat.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Annotated

import msgspec
from msgspec import Meta

from core.base import outbox
from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.sql import json_field, json_values, keyed_rows
from core.base.storage import transaction
from core.catalog.common import Id
from core.catalog.seating.variants import variant_seats
from core.sales import ring_recalls
from core.sync.ops import CASHDESK, OpKind, register

HUB, BLOCKED = "hub", "blocked"


def node_pool(node_id: str) -> str:
    return f"node:{node_id}"


def check_pool_name(db: sqlite3.Connection, pool: str) -> None:
    if pool in (HUB, BLOCKED):
        return
    kind, _, ident = pool.partition(":")
    if kind == "node":
        row = db.execute("SELECT role FROM node_scopes WHERE node_id = ?", (ident,)).fetchone()
        if row is None or row["role"] != "cashdesk":
            raise ValidationError(f"pool {pool!r}: no enrolled cash desk with that id", field="to")
        return
    if kind == "agency" and ident:
        return
    raise ValidationError(f"pool {pool!r} must be hub, blocked, node:<id> or agency:<id>", field="to")


def performance(db: sqlite3.Connection, performance_id: str) -> dict:
    row = db.execute("SELECT * FROM performances WHERE id = ?", (performance_id,)).fetchone()
    if row is None:
        raise NotFound(f"performance {performance_id} does not exist")
    return row


def seats_of(db: sqlite3.Connection, performance_id: str) -> dict[str, dict]:
    """The seats a performance offers, by id."""
    return {s["id"]: s for s in variant_seats(db, performance(db, performance_id)["variant_id"])}


def some_seats(db: sqlite3.Connection, performance_id: str, seat_ids: list[str]) -> dict[str, dict]:
    """Those of *seat_ids* that the performance offers, by id: the same rule as
    `variant_seats`, asked for a few seats instead of the whole house (a sale at the desk)."""
    variant = db.execute("SELECT v.id, v.plan_id FROM performances p JOIN plan_variants v ON v.id = p.variant_id "
                         "WHERE p.id = ?", (performance_id,)).fetchone()
    if variant is None:
        raise NotFound(f"performance {performance_id} does not exist")
    rows = db.execute(
        "SELECT s.id, c.name AS section, s.row_label, s.label, s.zone_id FROM seats s "
        "JOIN plan_sections c ON c.id = s.section_id WHERE s.id IN (" + json_values() + ") "
        "AND s.plan_id = ? AND (s.variant_id IS NULL OR s.variant_id = ?) AND s.active = 1 "
        "AND s.id NOT IN (SELECT seat_id FROM variant_removed_seats WHERE variant_id = ?)",
        (json.dumps(seat_ids), variant["plan_id"], variant["id"], variant["id"])).fetchall()
    return {r["id"]: r for r in rows}


def booked_seats(db: sqlite3.Connection, bookings: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Those (performance, seat) pairs whose performance offers the seat (the rule of
    `some_seats`), each with its section, row, label, zone and `pool` (a seat without a
    `seat_pools` row is the hub's): one statement for a ring's dates, not one per date and seat.

    Every table is reached from the pairs through its key, and which seats the performance
    offers (active, of its plan, in its variant) is checked here rather than in SQL: so the
    only plan PostgreSQL has is a lookup per pair (or, for many pairs, one pass over the
    tables), whatever its statistics. A join on `seats.plan_id` (index seats_plan) or
    `active = 1` (0.5% of the rows to a planner without statistics) let a generic plan made on
    a new hub read every seat of the plan, or of all plans, for each checkout."""
    pairs = list(dict.fromkeys(bookings))
    if not pairs:
        return {}
    keys, args = keyed_rows(pairs, "performance_id", "seat_id")
    rows = db.execute(
        "SELECT k.performance_id, s.id, c.name AS section, s.row_label, s.label, s.zone_id, "
        "coalesce(sp.pool, ?) AS pool, s.active, s.plan_id, s.variant_id, v.plan_id AS offered_plan, "
        "v.id AS offered_variant FROM " + keys + " k JOIN seats s ON s.id = k.seat_id "
        "JOIN performances p ON p.id = k.performance_id JOIN plan_variants v ON v.id = p.variant_id "
        "JOIN plan_sections c ON c.id = s.section_id "
        "LEFT JOIN seat_pools sp ON sp.performance_id = k.performance_id AND sp.seat_id = k.seat_id "
        "WHERE NOT EXISTS (SELECT 1 FROM variant_removed_seats r WHERE r.variant_id = p.variant_id "
        "AND r.seat_id = k.seat_id)", (HUB, *args)).fetchall()
    return {(r["performance_id"], r["id"]): {name: r[name] for name in BOOKED}
            for r in rows if r["active"] == 1 and r["plan_id"] == r["offered_plan"]
            and r["variant_id"] in (None, r["offered_variant"])}


BOOKED = ("performance_id", "id", "section", "row_label", "label", "zone_id", "pool")


def pools(db: sqlite3.Connection, performance_id: str) -> dict[str, str]:
    """Pool of every seat of the performance (explicit rows; the rest are the hub's)."""
    explicit = {r["seat_id"]: r["pool"] for r in db.execute(
        "SELECT seat_id, pool FROM seat_pools WHERE performance_id = ?", (performance_id,))}
    return {seat_id: explicit.get(seat_id, HUB) for seat_id in seats_of(db, performance_id)}


def summary(db: sqlite3.Connection, performance_id: str) -> dict:
    """Seats per pool, sold seats per pool, and open recalls: every count adds up to the house."""
    by_seat = pools(db, performance_id)
    sold = {r["seat_id"] for r in db.execute(
        "SELECT seat_id FROM tickets WHERE performance_id = ? AND status = 'sold'", (performance_id,))}
    counts = Counter(by_seat.values())
    sold_counts = Counter(pool for seat, pool in by_seat.items() if seat in sold)
    recalls = db.execute("SELECT id, node_id, seat_ids, to_pool, created_at FROM recalls "
                         "WHERE performance_id = ? AND state = 'requested'", (performance_id,)).fetchall()
    return {"performance_id": performance_id, "seats": len(by_seat),
            "pools": [{"pool": p, "seats": n, "sold": sold_counts.get(p, 0)} for p, n in sorted(counts.items())],
            "open_recalls": [{**r, "seat_ids": json.loads(r["seat_ids"])} for r in recalls]}


def pool_of(db: sqlite3.Connection, performance_id: str, seat_id: str) -> str:
    row = db.execute("SELECT pool FROM seat_pools WHERE performance_id = ? AND seat_id = ?",
                     (performance_id, seat_id)).fetchone()
    return row["pool"] if row else HUB


def _set_pool(db: sqlite3.Connection, performance_id: str, seat_id: str, pool: str) -> None:
    if pool == HUB:
        db.execute("DELETE FROM seat_pools WHERE performance_id = ? AND seat_id = ?", (performance_id, seat_id))
    else:
        db.execute("INSERT INTO seat_pools (performance_id, seat_id, pool) VALUES (?, ?, ?) "
                   "ON CONFLICT (performance_id, seat_id) DO UPDATE SET pool = excluded.pool, recall_id = NULL",
                   (performance_id, seat_id, pool))


def set_pool(db: sqlite3.Connection, performance_id: str, seat_id: str, pool: str) -> None:
    """Put one seat of a performance in *pool* at once: for callers that checked it may move
    (a ring seat, `core.subscriptions.ring_pools`); a desk's seat goes back by recall only."""
    _set_pool(db, performance_id, seat_id, pool)


def move_seats(db: sqlite3.Connection, performance_id: str, seat_ids: list[str], to: str, now) -> dict:
    """Hub: move seats to pool *to*. Seats held by a cash desk are recalled instead (one recall
    per desk); sold seats and seats already being recalled are refused, naming them."""
    check_pool_name(db, to)
    with transaction(db):
        offered = seats_of(db, performance_id)
        unknown = [s for s in seat_ids if s not in offered]
        if unknown:
            raise ValidationError(f"{len(unknown)} seat(s) are not part of this performance, e.g. {unknown[0]}",
                                  field="seat_ids")
        sold = {r["seat_id"] for r in db.execute(
            "SELECT seat_id FROM tickets WHERE performance_id = ? AND status = 'sold' AND seat_id IN "
            f"({','.join('?' * len(seat_ids))})", (performance_id, *seat_ids))}
        if sold:
            raise Conflict(f"{len(sold)} seat(s) are sold and stay where they are, e.g. {_label(offered, sold)}")
        explicit = {r["seat_id"]: r for r in db.execute(  # one read, not one per seat (a block of a house)
            "SELECT seat_id, pool, recall_id FROM seat_pools WHERE performance_id = ?", (performance_id,))}
        moved, recall_seats = [], {}
        for seat_id in seat_ids:
            row = explicit.get(seat_id)
            current = row["pool"] if row else HUB
            if row and row["recall_id"]:
                raise Conflict(f"seat {_label(offered, [seat_id])} is already being recalled")
            if current == to:
                continue
            if current.startswith("node:"):
                recall_seats.setdefault(current.removeprefix("node:"), []).append(seat_id)
            else:
                _set_pool(db, performance_id, seat_id, to)
                moved.append(seat_id)
        recalls = [request_recall(db, node_id, performance_id, seats, to, now)
                   for node_id, seats in recall_seats.items()]
    return {"moved": moved, "recalls": recalls}


def _label(offered: dict[str, dict], seat_ids) -> str:
    seat = offered[next(iter(seat_ids))]
    return f"{seat['section']} row {seat['row_label']} seat {seat['label']}"


def request_recall(db: sqlite3.Connection, node_id: str, performance_id: str, seat_ids: list[str], to: str,
                   now) -> dict:
    recall_id = uuid7()
    row = db.execute("INSERT INTO recalls (id, node_id, performance_id, seat_ids, to_pool, state, created_at) "
                     "VALUES (?, ?, ?, ?, ?, 'requested', ?) RETURNING *",
                     (recall_id, node_id, performance_id, json.dumps(seat_ids), to, iso(now))).fetchone()
    db.executemany("UPDATE seat_pools SET recall_id = ? WHERE performance_id = ? AND seat_id = ?",
                   [(recall_id, performance_id, s) for s in seat_ids])
    return {**row, "seat_ids": seat_ids}


# -- on the cash desk ---------------------------------------------------------------------------

def answer_recalls(db: sqlite3.Connection, node_id: str, now) -> list[dict]:
    """Edge: give back every recalled seat not yet sold here, in the same transaction as the
    `pool.released` op that tells the hub. Runs after each pull."""
    answered = []
    mine = node_pool(node_id)
    with transaction(db):
        recalls = db.execute("SELECT * FROM recalls WHERE node_id = ? AND state = 'requested' AND id NOT IN "
                             f"(SELECT {json_field('body', 'recall_id')} FROM outbox WHERE kind = 'pool.released')",
                             (node_id,)).fetchall()
        for recall in recalls:
            seat_ids = json.loads(recall["seat_ids"])
            sold = {r["seat_id"] for r in db.execute("SELECT seat_id FROM tickets WHERE performance_id = ? "
                                                     "AND status = 'sold'", (recall["performance_id"],))}
            released = [s for s in seat_ids if s not in sold]
            kept = [s for s in seat_ids if s in sold]
            for seat_id in released:
                db.execute("UPDATE seat_pools SET pool = ?, recall_id = NULL WHERE performance_id = ? AND seat_id = ? "
                           "AND pool = ?", (recall["to_pool"], recall["performance_id"], seat_id, mine))
            body = ReleaseOp(recall_id=recall["id"], released=released, kept_sold=kept)
            outbox.record(db, "pool.released", body, wall_time=iso(now))
            answered.append(msgspec.structs.asdict(body))
    return answered


# -- at the hub -----------------------------------------------------------------------------------

class ReleaseOp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`pool.released`: a desk's answer to a recall: these seats given back, those sold here."""

    recall_id: Id
    released: Annotated[list[Id], Meta(max_length=5000)]
    kept_sold: Annotated[list[Id], Meta(max_length=5000)]


def apply_release(db: sqlite3.Connection, node_id: str, op: ReleaseOp, now) -> None:
    """Hub: a desk answered a recall. Released seats move; a seat it keeps must be one the
    hub knows this desk sold (its sale arrived before the answer, in the desk's op order)."""
    recall = _open_recall(db, node_id, op.recall_id)
    asked = json.loads(recall["seat_ids"])
    released, kept = list(op.released), list(op.kept_sold)
    if sorted(released + kept) != sorted(asked):
        raise Conflict("the answer must name each recalled seat once, released or kept sold")
    unsold = [s for s in kept if not sold_by(db, node_id, recall["performance_id"], s)]
    if unsold:
        raise Conflict(f"{len(unsold)} seat(s) kept as sold were not sold by this desk, e.g. {unsold[0]}; "
                       "they are taken back")
    _finish_recall(db, recall, released, kept, now)


def _open_recall(db: sqlite3.Connection, node_id: str, recall_id: str) -> dict:
    recall = db.execute("SELECT * FROM recalls WHERE id = ?", (recall_id,)).fetchone()
    if recall is None or recall["node_id"] != node_id:
        raise Conflict("no such recall for this node")
    if recall["state"] == "done":
        raise Conflict("recall already answered")
    return recall


def sold_by(db: sqlite3.Connection, node_id: str, performance_id: str, seat_id: str) -> bool:
    return db.execute("SELECT 1 FROM tickets t JOIN orders o ON o.id = t.order_id WHERE t.performance_id = ? "
                      "AND t.seat_id = ? AND t.status = 'sold' AND o.node_id = ?",
                      (performance_id, seat_id, node_id)).fetchone() is not None


def _finish_recall(db: sqlite3.Connection, recall: dict, released: list[str], kept: list[str], now) -> None:
    """Released seats move, kept ones stay with the desk; a part of a ring recall waits for the
    ring's other performances and then moves or stays as one (`ring_recalls`)."""
    db.execute("UPDATE recalls SET state = 'done', released = ?, kept_sold = ?, done_at = ? WHERE id = ?",
               (json.dumps(released), json.dumps(kept), iso(now), recall["id"]))
    ring = ring_recalls.answered(db, recall["id"], now)
    if ring is not None:
        for performance_id, seat_id, pool in ring.moves:
            _set_pool(db, performance_id, seat_id, pool)
        db.executemany("UPDATE seat_pools SET recall_id = NULL WHERE performance_id = ? AND seat_id = ?",
                       ring.stays)
        return
    for seat_id in released:
        _set_pool(db, recall["performance_id"], seat_id, recall["to_pool"])
    db.executemany("UPDATE seat_pools SET recall_id = NULL WHERE performance_id = ? AND seat_id = ?",
                   [(recall["performance_id"], s) for s in kept])


def settle_refused_release(db: sqlite3.Connection, node_id: str, op: ReleaseOp, now) -> None:
    """A refused answer must not leave the recall open for ever (the desk has released its
    seats and will not answer again): the hub finishes it its own way. Seats the hub knows
    this desk sold stay with it; every other recalled seat goes where the recall sends it."""
    try:
        recall = _open_recall(db, node_id, op.recall_id)
    except Conflict:
        return
    asked = json.loads(recall["seat_ids"])
    kept = [s for s in asked if sold_by(db, node_id, recall["performance_id"], s)]
    _finish_recall(db, recall, [s for s in asked if s not in kept], kept, now)


register(OpKind(
    "pool.released", ReleaseOp, CASHDESK, lambda p, b: apply_release(p.db, p.node_id, b, p.now),
    "the recall must be this desk's and open; every recalled seat named once; a seat kept as sold must "
    "be sold by this desk at the hub",
    on_reject=lambda p, b, reason: settle_refused_release(p.db, p.node_id, b, p.now)))

