"""The hub on PostgreSQL (DESIGN §11, issue 18): `connect()`, a psycopg 3 connection that behaves like
the hub's sqlite3 connections (`connection`), the schema generated from the SQLite
migrations (`schema`, made or upgraded at every open by `install`), and the small SQL
scanner both need (`tokens`).

Edges stay on SQLite and never import this package; psycopg is the optional extra
`tessera[postgresql]`. What works and what does not yet: docs/postgresql.md.
"""

from __future__ import annotations

from pathlib import Path

from core.base.pg import connection, install


def connect(url: str, *, data_dir: Path | None = None, migrate: bool = True) -> connection.Connection:
    """Open the hub database at *url* (a `postgresql://` URL) for the hub whose folder (keys,
    hub.toml) is *data_dir* and, unless *migrate* is False, make the hub's schema in it when
    it is empty (or check that it was made from the same migrations): `core.base.storage.connect`
    for PostgreSQL."""
    db = connection.connect(url, data_dir)
    if migrate:
        try:
            install.apply(db)
        except BaseException:
            db.close()
            raise
    return db
