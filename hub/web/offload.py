"""Database work off the event loop, on a pooled connection (issue 18), for a hub on PostgreSQL.

On PostgreSQL every statement is a round trip, and a write (it takes the hub's write lock) may
wait for another process's writer or a row lock: on the event loop, that wait would stop every
other request of the process. So the database work runs in a thread of this process's
executor, each thread on a session of `core.base.pg.pool.Pool`: waiting then stops that
thread only. That is every API operation whose handler is not `async` (`Operation.offload`:
token, read cache and handler, hub/web/api.py; also when the office calls one), the sync push
and pull, and, through `off_loop`, the other write paths: the hold sweeper, the mail worker,
the print desk, the office's session check and login, the personalization pages' rate limit
and card, enrollment. What
still runs on the loop, and why: docs/rush.md ("Still on the loop"). Threads and sessions per
process: hub.toml `[storage] connections`.

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


class Offload:
    """The executor and the pool of one hub process, opened when the app starts serving (an
    app called in-process, hub.client.LocalClient, never starts: its handlers run inline and
    it opens no connections)."""

    def __init__(self, url: str, data_dir: Path | None, workers: int) -> None:
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


async def off_loop(app: web.Application, db: Any, work: Callable[[Any], T]) -> T:
    """*work*(db) in a thread on a pooled session when *app* has an open Offload (PostgreSQL,
    served), else inline on *db* (SQLite; an app called in-process)."""
    offload = app.get(OFFLOAD)
    return work(db) if offload is None else await offload.call(work, db)


def install(app: web.Application, db: Any, workers: int) -> Offload | None:
    """An Offload for *app* when *db* is a PostgreSQL connection, with *workers* threads and
    pooled sessions (hub.toml `[storage] connections`), opened when the app starts and closed
    with it; on SQLite None, and handlers run inline."""
    if getattr(db, "dialect", None) != "postgresql" or not db.url:
        return None
    offload = Offload(db.url, db.data_dir, workers)
    app[OFFLOAD] = offload

    async def start(_app: web.Application) -> None:
        offload.open()

    async def close(_app: web.Application) -> None:
        await offload.close()

    app.on_startup.insert(0, start)  # open before the workers start (the hold sweeper uses it)
    app.on_cleanup.append(close)  # installed last (make_app): closed after the workers stopped
    return offload
