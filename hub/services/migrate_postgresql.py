"""`tessera hub migrate-to-postgresql --from DIR --to URL`: move a SQLite hub's data into an
empty PostgreSQL database (issue 18; docs/migrate-to-postgresql.md).

Edges notice nothing but the hub's address: every table is copied as it is (node id, keys'
certificates, the op log `sync_ops`, the change feed `changes`, the nodes' cursors in
`node_scopes`), the key files stay in the folder, and the feed continues above the highest
position any edge has seen, so an edge's cursor stays valid.

The order of things, and why:
1. Refusals before anything is written: a `postgresql://` URL; DIR holds a SQLite hub
   (`hub.sqlite`, node role `hub`) at this Tessera's migration level (the PostgreSQL schema
   is generated from the current migrations; an older hub is first opened once by this
   version, which migrates it); hub.toml does not name a database yet and can take one; the
   target database holds no table at all.
2. The hub must not be running. `hub serve` keeps no pid file, so the SQLite file itself
   says: it is opened in SQLite's EXCLUSIVE locking mode and `BEGIN EXCLUSIVE` taken for the
   whole copy. That is refused while any other connection has the file open (a running hub,
   a `tessera hub token`), and while the copy runs nobody else can open it: a hub started
   meanwhile fails with "database is locked" instead of writing rows the copy misses.
3. One PostgreSQL transaction makes the schema (`core.base.pg.install.apply`) and copies
   every table (`core.base.pg.copy.copy_all`: triggers off per table, counts compared,
   identity sequences set). Any failure, a kill -9 included, leaves the target empty. After
   its commit, ANALYZE gives the planner its statistics (`analyze`).
4. After the commit: the SQLite file is moved aside (`hub.sqlite.migrated-<UTC time>`, with a
   `-wal`/`-shm` if any) because `open_hub` prefers the file when present; then hub.toml
   gets `[storage] database = URL`, its other sections kept. If the process dies between
   the commit and these two steps, the hub does not start on stale data: either the old file
   is still in place (and the target, no longer empty, refuses a second run: the guide says
   how to finish by hand) or it is moved aside and hub.toml still lacks the URL (the hub
   refuses to start: "holds no hub").
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tomllib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.base import storage
from core.base.clock import utcnow
from hub import settings
from hub.app import DB_NAME, db_path

if TYPE_CHECKING:  # psycopg is imported only when a migration runs (the extra tessera[postgresql])
    from core.base.pg.connection import Connection
    from core.base.pg.copy import Counted

SIDE_FILES = ("-wal", "-shm", "-journal")
LOCK_WAIT_S = 1.0  # how long to wait for another connection to let go of hub.sqlite
_STORAGE_HEADER = re.compile(r"^[ \t]*\[[ \t]*storage[ \t]*\][ \t]*(#.*)?$", re.MULTILINE)


class MigrationError(RuntimeError):
    """Why the migration did not happen (or did not finish); one line for the operator."""


@dataclass(frozen=True, slots=True)
class Migrated:
    """What was done: per table the counts compared, the tables left out, where the SQLite
    file went, and the change feed's last position (the next change gets a higher one)."""

    counts: list[Counted]
    skipped: dict[str, str]
    moved_to: Path
    feed_position: int


def shown_url(url: str) -> str:
    """*url* without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def with_database(text: str | None, url: str, where: str) -> str:
    """hub.toml's text with `[storage] database = URL` added and everything else kept; refused
    (before anything is copied) when it names a database already or cannot take the key."""
    text = text or ""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MigrationError(f"{where}: invalid TOML ({exc}); correct it first") from None
    storage_table = document.get("storage", {})
    if isinstance(storage_table, dict) and storage_table.get("database"):
        raise MigrationError(f"{where} already names a database ([storage] database): this hub is on PostgreSQL")
    line = f"database = {json.dumps(url)}"
    if "storage" not in document:
        changed = (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"[storage]\n{line}\n"
    else:
        header = _STORAGE_HEADER.search(text)
        if header is None:
            raise MigrationError(f"{where}: write [storage] as a table of its own ([storage] on its own line) first")
        changed = text[:header.end()] + "\n" + line + text[header.end():]
    expected = {**document, "storage": {**storage_table, "database": url}}
    try:
        same = tomllib.loads(changed) == expected
    except tomllib.TOMLDecodeError:
        same = False
    if not same:
        raise MigrationError(f"{where}: could not add [storage] database without changing other keys; add it by hand")
    return changed


def _write_atomically(path: Path, text: str) -> None:
    """*text* as *path*, whole or not at all (a temporary file renamed over it)."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    temporary = path.with_name(path.name + ".tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def open_source(data_dir: Path) -> sqlite3.Connection:
    """hub.sqlite opened for this process alone, with `BEGIN EXCLUSIVE` held (module docstring, 2):
    refused while anyone else has it open. Checked: a hub, at this Tessera's migration level."""
    path = db_path(data_dir)
    if not path.is_file():
        raise MigrationError(f"{data_dir} holds no SQLite hub (no {DB_NAME}); give the hub's data folder")
    db = sqlite3.connect(str(path), isolation_level=None, timeout=LOCK_WAIT_S, check_same_thread=False)
    try:
        db.execute("PRAGMA locking_mode = EXCLUSIVE")  # before the first read: no shared memory, no sharing
        try:
            db.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise MigrationError(f"the hub in {data_dir} is in use ({DB_NAME} is open elsewhere: a running "
                                     "`tessera hub serve` or another command); stop it first") from None
            raise MigrationError(f"{path}: {exc}") from None
        _check_source(db, data_dir)
    except BaseException:
        db.close()
        raise
    return db


def _check_source(db: sqlite3.Connection, data_dir: Path) -> None:
    try:
        node = db.execute("SELECT role FROM node").fetchone()
    except sqlite3.DatabaseError as exc:
        raise MigrationError(f"{db_path(data_dir)} is not a Tessera hub database ({exc})") from None
    if node is None or node[0] != "hub":
        raise MigrationError(f"{db_path(data_dir)} is not a hub's database (node role {node and node[0]!r})")
    level, current = db.execute("PRAGMA user_version").fetchone()[0], len(storage.migrations())
    if level < current:
        raise MigrationError(f"the hub in {data_dir} is at migration {level}, this Tessera at {current}: open it "
                             "once with this version first (e.g. `tessera hub operator list --data DIR`, which "
                             "migrates it), then migrate again")
    if level > current:
        raise MigrationError(f"the hub in {data_dir} is at migration {level}, newer than this Tessera "
                             f"({current}): use the Tessera version that made it")


def feed_floor(src: sqlite3.Connection) -> int:
    """The highest change-feed position any edge has pulled (`node_scopes.pulled_seq`): the
    feed must continue above it even if rows of `changes` were lost (a restored backup)."""
    return src.execute("SELECT coalesce(max(pulled_seq), 0) FROM node_scopes").fetchone()[0]


def open_target(url: str, data_dir: Path) -> Connection:
    """A session on the target database, which must hold no table at all."""
    import psycopg

    from core.base.pg import connection, copy

    try:
        db = connection.connect(url, data_dir)
    except psycopg.Error as exc:
        raise MigrationError(f"cannot connect to {shown_url(url)}: {copy.one_line(exc)}") from None
    tables = db.raw.execute("SELECT table_schema || '.' || table_name AS name FROM information_schema.tables "
                            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1").fetchall()
    if tables:
        db.close()
        raise MigrationError(f"the database {shown_url(url)} is not empty ({len(tables)} tables, e.g. "
                             f"{tables[0]['name']}); migrate into a new, empty database")
    return db


def migrate(data_dir: Path, url: str, progress: Callable[[str], None], now: datetime | None = None) -> Migrated:
    """Move the SQLite hub in *data_dir* into the empty PostgreSQL database at *url* (module docstring)."""
    import psycopg

    from core.base.pg import copy, install

    data_dir = Path(data_dir)
    if not settings.is_postgresql_url(url):
        raise MigrationError("--to must be a postgresql:// URL, e.g. postgresql://tessera@/tessera")
    toml_path = data_dir / settings.SETTINGS_FILE
    toml_text = with_database(toml_path.read_text(encoding="utf-8") if toml_path.exists() else None, url,
                              str(toml_path))
    src = open_source(data_dir)
    try:
        floor = feed_floor(src)
        target = open_target(url, data_dir)
        try:
            progress(f"copying {data_dir / DB_NAME} into {shown_url(url)}")
            try:
                with target.raw.transaction():
                    install.apply(target)
                    counts, skipped = copy.copy_all(src, target.raw, progress, floors={"changes": floor})
                    position = target.raw.execute("SELECT coalesce(max(seq), 0) AS n FROM changes").fetchone()["n"]
            except copy.CopyError as exc:
                raise MigrationError(f"{exc}; nothing was written to PostgreSQL") from None
            except psycopg.Error as exc:
                raise MigrationError(f"PostgreSQL refused the copy: {copy.one_line(exc)}; nothing was written to "
                                     "it") from None
            except sqlite3.Error as exc:  # e.g. text that is not UTF-8
                raise MigrationError(f"reading {DB_NAME} failed: {exc}; nothing was written to PostgreSQL") from None
            analyze(target, progress)
        finally:
            target.close()
        src.execute("ROLLBACK")  # nothing was written
        src.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the whole hub in the one file that is moved
    finally:
        src.close()
    try:
        moved = move_aside(data_dir, now or utcnow())
    except OSError as exc:
        raise MigrationError(f"the hub is on PostgreSQL now, but {db_path(data_dir)} could not be moved aside "
                             f"({exc.strerror or exc}): move it, then add [storage] database to hub.toml") from None
    try:
        _write_atomically(toml_path, toml_text)
    except OSError as exc:
        raise MigrationError(f"the hub is on PostgreSQL now and {DB_NAME} was moved to {moved.name}, but "
                             f"{toml_path} could not be written ({exc.strerror or exc}): add [storage] database "
                             "by hand") from None
    return Migrated(counts, skipped, moved, max(position, floor))


def analyze(target: Connection, progress: Callable[[str], None]) -> None:
    """Planner statistics for every table (ANALYZE), after the copy's commit: a new database has
    none until autovacuum's first round, and the statements the hub prepares keep the plans
    made without them (core/base/pg/connection.py). Not fatal: the data is in already, and
    autovacuum gathers them later."""
    import psycopg
    from psycopg import sql

    from core.base.pg import copy
    from core.base.sql import table_names

    progress("gathering the planner's statistics (ANALYZE)")
    try:
        target.raw.execute(sql.SQL("ANALYZE {}").format(
            sql.SQL(", ").join(sql.Identifier(name) for name in table_names(target))), prepare=False)
    except psycopg.Error as exc:
        progress(f"ANALYZE failed ({copy.one_line(exc)}); autovacuum gathers the statistics later")


def move_aside(data_dir: Path, now: datetime) -> Path:
    """hub.sqlite (and any -wal/-shm) renamed to hub.sqlite.migrated-<UTC time>: kept, never opened."""
    path = db_path(data_dir)
    aside = path.with_name(f"{path.name}.migrated-{now.strftime('%Y%m%dT%H%M%SZ')}")
    if aside.exists():
        raise MigrationError(f"{aside} exists already; the data is on PostgreSQL now, but move {path} aside "
                             "and add [storage] database to hub.toml by hand")
    path.rename(aside)
    for suffix in SIDE_FILES:  # normally gone: the last connection to close removes them
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    return aside
