"""Ring seats in a cash desk's pool (S17): one seat of a subscription product's plan group,
moved into or out of a desk's pool in every performance of the group at once.

A *ring seat* is a seat id of one of the product's seating plans: the same seat in every
performance of that plan's group whose variant has it (a variant lacking it is skipped, as
in the sale). Into a desk's pool it moves in all of them or in none: a seat sold, held for a
checkout or in another pool in one performance refuses the move, naming it. Back to the hub
it is a recall, two-step as for single seats (`contingents`), one recall per performance,
bound together by `ring_recalls` so the hub moves the ring seat only when every
performance's seat was released. Lives here, not in core/sales, because it needs the
subscription product (a higher room).
"""

from __future__ import annotations

import sqlite3
from collections import Counter

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.storage import transaction
from core.catalog import resource
from core.catalog.subscriptions import Subscriptions
from core.sales import contingents, ring_recalls
from core.sales.contingents import HUB

SEATED = ("ring", "choice", "combi")
MIXED = "mixed"


def _product(db: sqlite3.Connection, product_id: str) -> dict:
    try:
        found = resource.get(db, Subscriptions(), product_id, "internal")
    except NotFound:
        raise NotFound(f"subscription product {product_id} does not exist", field="id") from None
    if found["kind"] not in SEATED:
        raise ValidationError(f"{found['name']} is a {found['kind']} subscription: it has no seats",
                              field="id")
    return found


def _check_target(db: sqlite3.Connection, to: str) -> None:
    """A ring seat goes into a cash desk's pool or back to the hub; nowhere else."""
    if to != HUB and not to.startswith("node:"):
        raise ValidationError(f"pool {to!r}: ring seats move into a cash desk's pool (node:<id>) or back "
                              "to the hub", field="to")
    contingents.check_pool_name(db, to)


def performances_of_seat(db: sqlite3.Connection, product: dict, seat_id: str) -> list[str]:
    """The product's performances on the seat's plan whose variant offers the seat, in order.
    A seat of no plan of the product, or offered by none of its dates, is refused."""
    plan = db.execute("SELECT plan_id FROM seats WHERE id = ?", (seat_id,)).fetchone()
    ids = list(product["performance_ids"])
    on_plan = [r["id"] for r in db.execute(
        "SELECT p.id FROM performances p JOIN plan_variants v ON v.id = p.variant_id WHERE v.plan_id = ? "
        f"AND p.id IN ({','.join('?' * len(ids))})", (plan["plan_id"] if plan else "", *ids))] if ids else []
    offering = [p for p in ids if p in set(on_plan) and contingents.some_seats(db, p, [seat_id])]
    if not offering:
        raise ValidationError(f"seat {seat_id} is not a seat of {product['name']}'s seating plans",
                              field="seat_ids")
    return offering


def _label(db: sqlite3.Connection, seat_id: str, performance_id: str) -> str:
    row = db.execute("SELECT c.name AS section, s.row_label, s.label, p.starts_at FROM seats s "
                     "JOIN plan_sections c ON c.id = s.section_id, performances p WHERE s.id = ? AND p.id = ?",
                     (seat_id, performance_id)).fetchone()
    return f"{row['section']} row {row['row_label']} seat {row['label']} on {row['starts_at']}"


def _state(db: sqlite3.Connection, performance_id: str, seat_id: str, now) -> dict:
    """Pool, open recall, sold and held for one performance's seat."""
    row = db.execute("SELECT pool, recall_id FROM seat_pools WHERE performance_id = ? AND seat_id = ?",
                     (performance_id, seat_id)).fetchone()
    sold = db.execute("SELECT 1 FROM tickets WHERE performance_id = ? AND seat_id = ? AND status = 'sold'",
                      (performance_id, seat_id)).fetchone() is not None
    held = db.execute("SELECT 1 FROM seat_holds WHERE performance_id = ? AND seat_id = ? AND expires_at > ?",
                      (performance_id, seat_id, iso(now))).fetchone() is not None
    return {"performance_id": performance_id, "pool": row["pool"] if row else HUB,
            "recalling": bool(row and row["recall_id"]), "sold": sold, "held": held}


def move_ring_seats(db: sqlite3.Connection, product_id: str, seat_ids: list[str], to: str, now) -> dict:
    """Move ring seats of the product into desk pool *to*, or (to = hub) recall them from the
    desk holding them. All the seats in all their performances, or nothing (Conflict naming the
    seat and date that stands in the way)."""
    if len(set(seat_ids)) != len(seat_ids):
        raise ValidationError("a seat is listed twice", field="seat_ids")
    _check_target(db, to)
    with transaction(db):
        product = _product(db, product_id)
        plans = {seat: performances_of_seat(db, product, seat) for seat in seat_ids}
        moved, recalls = [], []
        for seat_id, perfs in plans.items():
            states = [_state(db, p, seat_id, now) for p in perfs]
            if to == HUB:
                recalls += _recall(db, product_id, seat_id, states, now)
            else:
                moved += _move_in(db, seat_id, states, to)
    return {"moved": moved, "recalls": recalls}


def _move_in(db: sqlite3.Connection, seat_id: str, states: list[dict], to: str) -> list[dict]:
    for s in states:
        why = ("is sold" if s["sold"] else "is held for a checkout" if s["held"]
               else "is being recalled" if s["recalling"]
               else f"is in pool {s['pool']}" if s["pool"] not in (HUB, to) else None)
        if why:
            raise Conflict(f"{_label(db, seat_id, s['performance_id'])} {why}: the ring seat moves in every "
                           "performance or in none", field="seat_ids")
    perfs = [s["performance_id"] for s in states if s["pool"] != to]
    for perf in perfs:
        contingents.set_pool(db, perf, seat_id, to)
    return [{"seat_id": seat_id, "performance_ids": perfs}] if perfs else []


def _recall(db: sqlite3.Connection, product_id: str, seat_id: str, states: list[dict], now) -> list[dict]:
    """One recall per performance from the desk holding the seat, bound as one ring recall."""
    desks = {s["pool"] for s in states if s["pool"] != HUB}
    for s in states:
        why = ("is being recalled" if s["recalling"] else "was sold at the desk" if s["sold"] and s["pool"] != HUB
               else f"is in pool {s['pool']}, not a cash desk's" if not s["pool"].startswith("node:") and
               s["pool"] != HUB else None)
        if why:
            raise Conflict(f"{_label(db, seat_id, s['performance_id'])} {why}: the ring seat comes back in "
                           "every performance or in none", field="seat_ids")
    if len(desks) > 1:
        raise Conflict(f"seat {seat_id} is in the pools of {len(desks)} desks: recall it per performance",
                       field="seat_ids")
    if not desks:
        return []
    desk = desks.pop()
    node_id = desk.removeprefix("node:")
    parts = [contingents.request_recall(db, node_id, s["performance_id"], [seat_id], HUB, now)
             for s in states if s["pool"] == desk]
    ring = ring_recalls.create(db, product_id=product_id, node_id=node_id, seat_id=seat_id, to=HUB,
                               recall_ids=[p["id"] for p in parts], now=now)
    return [{"id": ring["id"], "node_id": node_id, "seat_id": seat_id,
             "performance_ids": [p["performance_id"] for p in parts], "state": ring["state"]}]


def ring_seat_pools(db: sqlite3.Connection, product_id: str, now) -> dict:
    """Per ring seat not wholly in the hub's pool: the pool holding it where all its performances
    agree, else `mixed` with each performance's pool; and the product's ring recalls."""
    product = _product(db, product_id)
    ids = list(product["performance_ids"])
    rows = db.execute(f"SELECT seat_id FROM seat_pools WHERE performance_id IN ({','.join('?' * len(ids))}) "
                      "GROUP BY seat_id ORDER BY seat_id", ids).fetchall() if ids else []
    seats = []
    for row in rows:
        perfs = performances_of_seat(db, product, row["seat_id"])
        states = [_state(db, p, row["seat_id"], now) for p in perfs]
        pools = Counter(s["pool"] for s in states)
        seats.append({"seat_id": row["seat_id"], "pool": next(iter(pools)) if len(pools) == 1 else MIXED,
                      "performances": [{k: s[k] for k in ("performance_id", "pool", "sold", "recalling")}
                                       for s in states]})
    return {"product_id": product_id, "seats": seats, "recalls": ring_recalls.of_product(db, product_id)}
