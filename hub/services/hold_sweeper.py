"""Deleting expired seat holds now and then (issue 13), so the hold table stays small.

Expired holds never block a seat anyway: every look at or claim of a performance's seats
deletes that performance's expired holds first (`core.subscriptions.holds.expire`). This
worker sweeps the rest, once a minute, on the hub's event loop.
"""

from __future__ import annotations

import sqlite3

from aiohttp import web

from core.base.clock import utcnow
from core.subscriptions import holds
from hub.services.worker import Worker

SWEEP_EVERY_S = 60.0


class HoldSweeper(Worker):
    name = "tessera-hold-sweeper"

    def __init__(self, db: sqlite3.Connection) -> None:
        super().__init__()
        self.db = db

    async def round(self) -> float:
        holds.expire_all(self.db, utcnow())
        return SWEEP_EVERY_S


SWEEPER = web.AppKey("hold_sweeper", HoldSweeper)


def install(app: web.Application, db: sqlite3.Connection) -> None:
    """Run a HoldSweeper while *app* runs."""
    sweeper = HoldSweeper(db)
    app[SWEEPER] = sweeper

    async def start(app: web.Application) -> None:
        sweeper.start()

    async def stop(app: web.Application) -> None:
        await sweeper.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
