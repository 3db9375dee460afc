"""Deleting expired seat holds now and then (issue 13), so the hold table stays small.

Expired holds never block a seat anyway: every look at or claim of a performance's seats
deletes that performance's expired holds first (`core.subscriptions.holds.expire`). This
worker sweeps the rest, once a minute; on PostgreSQL every VACUUM_EVERY_S, each time followed
by a VACUUM of the holds and an ANALYZE of the tables that grew (core/base/pg/maintenance.py:
a rush leaves thousands of dead hold rows that every look at the seats walks, its sessions
keep plans made while `tickets` or `orders` were empty, and autovacuum naps a minute). The delete is a
write: on PostgreSQL it may wait for the hub's write lock (another process writing), so it
runs in the hub's executor on a pooled session (`hub.web.offload.off_loop`), not on the event loop; on SQLite inline.
"""

from __future__ import annotations

import sqlite3

from aiohttp import web

from core.base.sql import is_postgresql
from core.subscriptions import holds
from hub.services.worker import Worker
from hub.web.clock import app_now
from hub.web.offload import off_loop

SWEEP_EVERY_S = 60.0
VACUUM_EVERY_S = 2.0  # PostgreSQL: a rush of ~30 checkouts/s leaves ~500 dead hold rows in this time


class HoldSweeper(Worker):
    name = "tessera-hold-sweeper"

    def __init__(self, app: web.Application, db: sqlite3.Connection) -> None:
        super().__init__()
        self.app, self.db = app, db
        self.vacuums = is_postgresql(db)

    async def round(self) -> float:
        now = app_now(self.app)  # the clock the holds were made by (a test moves it)
        await off_loop(self.app, self.db, lambda db: holds.expire_all(db, now))
        if not self.vacuums:
            return SWEEP_EVERY_S
        from core.base.pg import maintenance  # psycopg: a PostgreSQL hub only

        await off_loop(self.app, self.db, lambda db: maintenance.vacuum(db, "seat_holds"))
        await off_loop(self.app, self.db, maintenance.analyze_grown)
        return VACUUM_EVERY_S


SWEEPER = web.AppKey("hold_sweeper", HoldSweeper)


def install(app: web.Application, db: sqlite3.Connection) -> None:
    """Run a HoldSweeper while *app* runs."""
    sweeper = HoldSweeper(app, db)
    app[SWEEPER] = sweeper

    async def start(app: web.Application) -> None:
        sweeper.start()

    async def stop(app: web.Application) -> None:
        await sweeper.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
