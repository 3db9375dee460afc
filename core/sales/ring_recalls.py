"""Ring recalls (S17): a ring seat taken back from a cash desk moves as one, or not at all.

A ring seat is one seat in every performance of a ring group. The desk answers recalls per
performance (`pool.released`, one recall each), possibly in different pulls, so the hub binds
those recalls (`ring_recall_parts`) and keeps each released seat frozen in the desk's pool
(its `recall_id` still set: nobody sells it) until the last performance is answered. Then:

- every seat released: the ring seat moves to the recall's pool in every performance;
- some seat kept sold at the desk: nothing moves. The whole ring seat stays with the desk
  (the released seats go back to it with its next pull), and the ring recall is `partial`,
  naming the performances sold, so a partial answer is never half-moved silently.

This module only decides; `contingents` (which imports it) sets the pools.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from core.base.clock import iso
from core.base.ids import uuid7


@dataclass(frozen=True)
class Outcome:
    """What the hub does once a ring recall's last part is answered (nothing while parts are open):
    *moves*: (performance, seat, pool) to set; *stays*: (performance, seat) kept by the desk."""

    moves: list[tuple[str, str, str]] = field(default_factory=list)
    stays: list[tuple[str, str]] = field(default_factory=list)


def create(db: sqlite3.Connection, *, product_id: str, node_id: str, seat_id: str, to: str,
           recall_ids: list[str], now) -> dict:
    """Bind the per-performance recalls of one ring seat (made in the same transaction)."""
    row = db.execute("INSERT INTO ring_recalls (id, product_id, node_id, seat_id, to_pool, state, created_at) "
                     "VALUES (?, ?, ?, ?, ?, 'requested', ?) RETURNING *",
                     (uuid7(), product_id, node_id, seat_id, to, iso(now))).fetchone()
    db.executemany("INSERT INTO ring_recall_parts (recall_id, ring_recall_id) VALUES (?, ?)",
                   [(r, row["id"]) for r in recall_ids])
    return row


def answered(db: sqlite3.Connection, recall_id: str, now) -> Outcome | None:
    """A recall was just finished (its row says done, with released and kept_sold). None if it
    is no part of a ring recall (the caller moves its seats as for any recall)."""
    part = db.execute("SELECT ring_recall_id FROM ring_recall_parts WHERE recall_id = ?", (recall_id,)).fetchone()
    if part is None:
        return None
    parts = db.execute("SELECT r.* FROM recalls r JOIN ring_recall_parts p ON p.recall_id = r.id "
                       "WHERE p.ring_recall_id = ?", (part["ring_recall_id"],)).fetchall()
    if any(r["state"] != "done" for r in parts):
        return Outcome()
    ring = db.execute("SELECT * FROM ring_recalls WHERE id = ?", (part["ring_recall_id"],)).fetchone()
    sold = sorted(r["performance_id"] for r in parts if json.loads(r["kept_sold"] or "[]"))
    seats = [(r["performance_id"], s) for r in parts for s in json.loads(r["seat_ids"])]
    db.execute("UPDATE ring_recalls SET state = ?, kept_sold = ?, done_at = ? WHERE id = ?",
               ("partial" if sold else "done", json.dumps(sold), iso(now), ring["id"]))
    if sold:
        return Outcome(stays=seats)
    return Outcome(moves=[(perf, seat, ring["to_pool"]) for perf, seat in seats])


def of_product(db: sqlite3.Connection, product_id: str) -> list[dict]:
    """The product's ring recalls, newest first, each with its performances still to answer."""
    rows = db.execute("SELECT * FROM ring_recalls WHERE product_id = ? ORDER BY created_at DESC, id DESC",
                      (product_id,)).fetchall()
    out = []
    for row in rows:
        waiting = [r["performance_id"] for r in db.execute(
            "SELECT r.performance_id FROM recalls r JOIN ring_recall_parts p ON p.recall_id = r.id "
            "WHERE p.ring_recall_id = ? AND r.state = 'requested' ORDER BY r.performance_id", (row["id"],))]
        out.append({**row, "kept_sold": json.loads(row["kept_sold"] or "[]"), "waiting_for": waiting})
    return out
