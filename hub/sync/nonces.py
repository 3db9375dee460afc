"""Nonces of accepted sync requests (table `sync_nonces`, migration 0010): a replay is refused.

A request is accepted only within `auth.WINDOW` of its signed time, so a nonce needs to be
remembered only while its signed time is inside the window; after that the window itself
refuses the request. The table lives in the hub's database, not in a process's memory, so
several hub processes on one database refuse the same replays (the primary key decides
which of two racing copies wins).
"""

from __future__ import annotations

import datetime as dt
import sqlite3

from core.base.clock import iso_ms
from core.sync import auth

PRUNE_EVERY = dt.timedelta(seconds=30)


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def remember(db: sqlite3.Connection, node_id: str, nonce: str, sent: dt.datetime, now: dt.datetime) -> bool:
    """Note *nonce* of *node_id* as used: True the first time, False for a replay."""
    cursor = db.execute("INSERT INTO sync_nonces (node_id, nonce, sent_ms, seen_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT DO NOTHING", (node_id, nonce, _ms(sent), iso_ms(now)))
    return cursor.rowcount == 1


def seen(db: sqlite3.Connection, node_id: str, nonce: str) -> bool:
    """Was *nonce* of *node_id* accepted before? A read only: a held pull (hub/sync/live.py)
    refuses a replayed copy before it waits; `remember` still decides, in the answer's transaction."""
    return db.execute("SELECT 1 FROM sync_nonces WHERE node_id = ? AND nonce = ?",
                      (node_id, nonce)).fetchone() is not None


def prune(db: sqlite3.Connection, now: dt.datetime) -> int:
    """Forget nonces whose signed time has left the window (nothing can replay them now)."""
    return db.execute("DELETE FROM sync_nonces WHERE sent_ms < ?", (_ms(now - auth.WINDOW),)).rowcount


class Pruner:
    """Prunes at most every `PRUNE_EVERY` per process: a cheap DELETE, not one per request."""

    def __init__(self) -> None:
        self.last: dt.datetime | None = None

    def maybe(self, db: sqlite3.Connection, now: dt.datetime) -> None:
        if self.last is None or now - self.last >= PRUNE_EVERY or now < self.last:
            prune(db, now)
            self.last = now
