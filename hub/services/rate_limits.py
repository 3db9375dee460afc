"""Rate limits shared by every hub process: the counted requests live in the database.

Why the database and not memory: several `tessera hub serve` processes may run on one
PostgreSQL database, and a request may land on any of them. A limit kept per process would
give an attacker guessing enrollment codes or personalization links N times the guesses
with N processes. Here every hit is a row of `rate_hits` (migration 0031); counting and
recording happen in one write transaction, which takes the hub's write lock (`BEGIN
IMMEDIATE` on SQLite, the advisory lock on PostgreSQL), so two processes never both take
the last allowed hit. Rows older than the window are deleted in the same transaction:
the table holds one window of hits and no more.

The clock is wall time (seconds since the epoch): the processes share it (on other
machines too, as far as their clocks agree); a monotonic clock means nothing outside its
process. It is injectable so tests move time instead of sleeping.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.base.ids import uuid7
from core.base.storage import transaction


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to one request: allowed (with the id of its hit, to give back if the request
    turns out not to count), or the seconds to wait."""

    hit: str | None
    wait: int | None

    @property
    def allowed(self) -> bool:
        return self.wait is None


@dataclass
class RateLimit:
    """At most *limit* hits per *window_s* per client, and (with *overall*) at most *overall*
    hits from all clients together; sliding window."""

    scope: str
    limit: int
    window_s: float
    overall: int | None = None
    clock: Callable[[], float] = time.time

    def take(self, db: sqlite3.Connection, client: str) -> Verdict:
        """Count one hit for *client* if the limits allow it; else record nothing and say how
        long to wait (whole seconds, at least 1)."""
        now = self.clock()
        since = now - self.window_s
        with transaction(db):
            db.execute("DELETE FROM rate_hits WHERE scope = ? AND at <= ?", (self.scope, since))
            wait = self._wait(db, client, since, now)
            if wait is not None:
                return Verdict(None, wait)
            hit = uuid7()
            db.execute("INSERT INTO rate_hits (id, scope, client, at) VALUES (?, ?, ?, ?)",
                       (hit, self.scope, client, now))
        return Verdict(hit, None)

    def _wait(self, db: sqlite3.Connection, client: str, since: float, now: float) -> int | None:
        mine = db.execute("SELECT count(*) AS n, min(at) AS oldest FROM rate_hits WHERE scope = ? AND client = ? "
                          "AND at > ?", (self.scope, client, since)).fetchone()
        if mine["n"] >= self.limit:
            return _seconds(mine["oldest"] + self.window_s - now)
        if self.overall is not None:
            every = db.execute("SELECT count(*) AS n, min(at) AS oldest FROM rate_hits WHERE scope = ? AND at > ?",
                               (self.scope, since)).fetchone()
            if every["n"] >= self.overall:
                return _seconds(every["oldest"] + self.window_s - now)
        return None

    def give_back(self, db: sqlite3.Connection, hit: str | None) -> None:
        """Forget a hit that turned out not to count (an enrollment that succeeded)."""
        if hit is not None:
            with transaction(db):
                db.execute("DELETE FROM rate_hits WHERE id = ?", (hit,))

    def hits(self, db: sqlite3.Connection, client: str | None = None) -> int:
        """Hits in the window now, of *client* or of everyone (for tests and the office)."""
        since = self.clock() - self.window_s
        if client is None:
            sql, params = "SELECT count(*) AS n FROM rate_hits WHERE scope = ? AND at > ?", (self.scope, since)
        else:
            sql, params = ("SELECT count(*) AS n FROM rate_hits WHERE scope = ? AND client = ? AND at > ?",
                           (self.scope, client, since))
        return db.execute(sql, params).fetchone()["n"]


def _seconds(left: float) -> int:
    return max(1, math.ceil(left))
