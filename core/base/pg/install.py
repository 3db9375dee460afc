"""The hub's schema at every open of a PostgreSQL database (`core.base.pg.connect`): made in
an empty database, brought up to date in one made from older migrations, or checked.

Its own module because it uses both `schema` (what the schema is) and `upgrade` (how an
older one changes), and `upgrade` builds on `schema`.
"""

from __future__ import annotations

import json

from core.base import storage
from core.base.pg import schema as schemas
from core.base.pg import upgrade
from core.base.pg.connection import Connection


def apply(db: Connection, level: int | None = None) -> str:
    """Create the hub's schema in an empty database, or bring one made from older migrations
    up to date (`core.base.pg.upgrade`), or check that it was made from the same migrations;
    returns the schema digest. One transaction, which holds `tessera_schema` locked: of several
    processes opening the database at once, one upgrades and the others wait, then find it
    done. *level* (tests): the schema of the migrations up to that one instead of all."""
    level = len(storage.migrations()) if level is None else level
    schema = schemas.at_level(level)
    with db.raw.transaction():
        db.raw.execute("CREATE TABLE IF NOT EXISTS tessera_schema (digest text NOT NULL, version integer NOT NULL, "
                       "created_at timestamptz NOT NULL DEFAULT now(), sqlite_schema text)")
        db.raw.execute("LOCK TABLE tessera_schema")
        found = db.raw.execute("SELECT * FROM tessera_schema LIMIT 0")
        if "sqlite_schema" not in [column.name for column in found.description or ()]:
            # made before upgrades existed: `upgrade` rebuilds its SQLite schema from its level
            db.raw.execute("ALTER TABLE tessera_schema ADD COLUMN sqlite_schema text")
        row = db.raw.execute("SELECT digest, version FROM tessera_schema").fetchone()
        if row is not None:
            if row["digest"] != schema.digest or row["version"] != level:  # a migration may change rows only
                upgrade.run(db.raw, db.raw.execute("SELECT digest, version, sqlite_schema FROM tessera_schema")
                            .fetchone(), level)
            return schema.digest
        for statement in schema.all():
            db.raw.execute(statement)
        db.raw.execute("INSERT INTO tessera_schema (digest, version, sqlite_schema) VALUES (%s, %s, %s)",
                       (schema.digest, level, json.dumps(schema.objects)))
    return schema.digest
