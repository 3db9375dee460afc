"""Connections of one hub process for work off its event loop (issue 18).

The hub's handlers run on one asyncio loop. On SQLite a write waits for the local file
(microseconds to a disk sync); on PostgreSQL every statement is a network round trip and a
writer may wait for the hub's write lock (core/base/pg/connection.py) while another process
holds it: done inline, that wait would stop every other request of the process. So the requests'
database work (API operations, sync push and pull, the other write paths) runs in a thread of the
hub's executor (`hub/web/offload.py`) on a connection from this pool: one per thread, each its own
session, so one waiting for the lock blocks only its thread. Size: hub.toml `[storage] connections`.

psycopg 3's sync API and `psycopg_pool.ConnectionPool`: the rules stay the synchronous,
sqlite3-style code they are (an async driver would need every rule to become `async`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from psycopg_pool import ConnectionPool

from core.base.pg.connection import SESSION, Connection


class Pool:
    """Up to *size* sessions on the database at *url*, each handed out as the hub's connection
    (the adapter), for the hub whose folder is *data_dir*."""

    def __init__(self, url: str, data_dir: Path | None, size: int) -> None:
        self.url, self.data_dir, self.size = url, data_dir, size
        self._pool = ConnectionPool(url, min_size=1, max_size=size, kwargs=dict(SESSION), open=True,
                                    name="tessera-hub")

    @contextlib.contextmanager
    def connection(self, timeout: float = 30.0) -> Iterator[Connection]:
        """A session of the pool for one piece of work; back into the pool afterwards (a
        transaction left open by a failure is rolled back by the pool)."""
        with self._pool.connection(timeout=timeout) as raw:
            db = Connection(raw, self.data_dir)
            db.url = self.url
            try:
                yield db
            finally:
                if db.in_transaction:  # never hand on a session inside a transaction or pipeline
                    db.rollback()

    def close(self) -> None:
        self._pool.close()
