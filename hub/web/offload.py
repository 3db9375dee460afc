"""Handlers run off the event loop, on a pooled connection (issue 18), for a hub on PostgreSQL.

Operations declared with `offload=True` (the write paths of a presale rush: the shop's seat
holds and orders; the sync push has its own call) run in a thread of this process's
executor, each on a session of `core.base.pg.pool.Pool` instead of the process's one
connection: waiting for the database's write lock, or for the network, then stops that
thread, not the loop and every other request. Everything else still runs inline on the
process's one connection: reads (MVCC: a read never waits for a writer or the write lock,
so it costs one round trip of CPU-light waiting) and the office's writes, which are rare.

On SQLite nothing changes: no pool, no executor, every handler inline as before (the
database is a local file, its writers queue on the file lock within microseconds to a sync).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

if TYPE_CHECKING:  # psycopg is the extra tessera[postgresql]: imported only for a hub on PostgreSQL
    from core.base.pg.pool import Pool

T = TypeVar("T")
# Threads (and pooled sessions) per hub process: writers queue on one write lock anyway, so
# more would only wait; a few let reads and the next writer's network time overlap.
WORKERS = 4


class Offload:
    """The executor and the pool of one hub process, opened when the app starts serving (an
    app called in-process, hub.client.LocalClient, never starts: its handlers run inline and
    it opens no connections)."""

    def __init__(self, url: str, data_dir: Path | None, workers: int = WORKERS) -> None:
        self.url, self.data_dir, self.workers = url, data_dir, workers
        self.pool: Pool | None = None
        self.executor: ThreadPoolExecutor | None = None

    def open(self) -> None:
        from core.base.pg.pool import Pool

        self.pool = Pool(self.url, self.data_dir, self.workers)
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="tessera-db")

    async def run(self, handler: Callable[[Any], T], ctx: Any) -> T:
        """*handler*(ctx) in a thread, with `ctx.db` a pooled session (inline when not open)."""
        if self.executor is None:
            return handler(ctx)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._pooled, handler, ctx)

    async def call(self, work: Callable[[Any], T], db: Any) -> T:
        """*work*(db) in a thread on a pooled session (inline on *db* when not open)."""
        if self.executor is None:
            return work(db)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._with_db, work)

    def _pooled(self, handler: Callable[[Any], T], ctx: Any) -> T:
        assert self.pool is not None
        with self.pool.connection() as db:
            ctx.db = db
            return handler(ctx)

    def _with_db(self, work: Callable[[Any], T]) -> T:
        assert self.pool is not None
        with self.pool.connection() as db:
            return work(db)

    async def close(self) -> None:
        executor, pool, self.executor, self.pool = self.executor, self.pool, None, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)
        if pool is not None:
            pool.close()


OFFLOAD = web.AppKey("offload", Offload)


def install(app: web.Application, db: Any, workers: int = WORKERS) -> Offload | None:
    """An Offload for *app* when *db* is a PostgreSQL connection, opened when the app starts
    and closed with it; on SQLite None, and handlers run inline."""
    if getattr(db, "dialect", None) != "postgresql" or not db.url:
        return None
    offload = Offload(db.url, db.data_dir, workers)
    app[OFFLOAD] = offload

    async def start(_app: web.Application) -> None:
        offload.open()

    async def close(_app: web.Application) -> None:
        await offload.close()

    app.on_startup.append(start)
    app.on_cleanup.append(close)
    return offload
