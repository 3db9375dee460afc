"""A second connection to the hub's database, for work in a thread of its own (a report file, a
rollover's dry run or background run) while the hub's connection goes on serving.

On SQLite: a new connection to the same file. On PostgreSQL (core.base.pg): a new session on
the URL the hub's connection was opened with. The opener is made on the loop (it reads the
hub's connection) and called in the thread (the new connection belongs to that thread).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from core.base import sql, storage

Opener = Callable[[], sqlite3.Connection]


def opener(db: sqlite3.Connection, *, migrate: bool = True) -> Opener:
    """How a thread opens its own connection to *db*'s database (*migrate*: SQLite's
    migrations checked on open; a PostgreSQL schema is checked once, by the hub)."""
    if sql.is_postgresql(db):
        url, data_dir = db.url, db.data_dir
        if not url:
            raise RuntimeError("this PostgreSQL connection does not say where it was opened")

        def open_postgresql() -> sqlite3.Connection:
            from core.base import pg  # psycopg: only for a hub on PostgreSQL (the extra tessera[postgresql])

            return pg.connect(url, data_dir=data_dir, migrate=False)

        return open_postgresql
    path = sql.database_file(db)
    return lambda: storage.connect(path, migrate=migrate)
