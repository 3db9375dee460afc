"""The one way to open a Tessera database.

Every node (hub, cash desk, counter, gate) keeps its state in one SQLite file. We open it
the same way everywhere: WAL so readers never wait for the writer, foreign keys on, a busy
timeout so two processes queue instead of failing, and `synchronous=FULL`: on edges because
a printed receipt must survive a power cut, on the hub because an acknowledged push must (an
operator may choose `normal` for the hub in hub.toml `[storage]`, see hub/settings.py).
Schema changes are numbered SQL files in `core/migrations/`, applied at open time and
tracked with `PRAGMA user_version`. After them the hub's change-feed triggers are brought in
line with `core.migrations.feed_triggers.REPLICATED` (generated, not written by hand; nothing
is written when they already match).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import ParamSpec, TypeVar

from core.migrations import feed_triggers  # imports nothing from Tessera: no cycle

log = logging.getLogger("tessera.storage")
BUSY_TIMEOUT_MS = 10_000
_savepoints = itertools.count(1)
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# PostgreSQL's "run it again": serialization failure, deadlock (core/base/pg/connection.py
# raises them as sqlite3.OperationalError with this sqlstate); `retried` re-runs the body.
RETRYABLE = frozenset({"40001", "40P01"})
RETRIES = 5
P = ParamSpec("P")
T = TypeVar("T")


class _Cursor(sqlite3.Cursor):
    """A cursor that remembers its column names per statement.

    `cursor.description` is rebuilt on every access, which made turning rows into dicts
    cost more than reading them; names are now worked out once per `execute`."""

    names: tuple[str, ...] | None = None

    def execute(self, sql: str, parameters: object = ()) -> _Cursor:  # type: ignore[override]
        self.names = None
        return super().execute(sql, parameters)

    def executemany(self, sql: str, seq: object) -> _Cursor:  # type: ignore[override]
        self.names = None
        return super().executemany(sql, seq)


class _Connection(sqlite3.Connection):
    def execute(self, sql: str, parameters: object = ()) -> _Cursor:  # type: ignore[override]
        return self.cursor(_Cursor).execute(sql, parameters)

    def executemany(self, sql: str, seq: object) -> _Cursor:  # type: ignore[override]
        return self.cursor(_Cursor).executemany(sql, seq)


def _dict_row(cursor: sqlite3.Cursor, row: tuple) -> dict:
    names = getattr(cursor, "names", None)
    if names is None:
        names = tuple(col[0] for col in cursor.description)
        if isinstance(cursor, _Cursor):
            cursor.names = names
    return dict(zip(names, row, strict=True))


SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")  # what a hub may choose; OFF is never offered


def connect(path: str | Path, *, edge: bool = False, migrate: bool = True,
            synchronous: str = "FULL") -> sqlite3.Connection:
    """Open (and create, and migrate) the database at *path*.

    The connection runs in autocommit mode; use `transaction()` for writes so that every
    state change is one explicit `BEGIN IMMEDIATE ... COMMIT`. *synchronous* is FULL unless
    the caller chooses NORMAL or EXTRA (the hub, from hub.toml): in WAL mode FULL syncs the WAL at
    every commit, so a commit that was answered survives a power cut; NORMAL may lose the last
    commits (never corrupts). An edge is always FULL.
    """
    level = "FULL" if edge else synchronous.upper()
    if level not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS)}, not {synchronous!r}")
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, factory=_Connection)
    db.row_factory = _dict_row
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute(f"PRAGMA synchronous = {level}")
    # SQLite's LIKE and lower() fold ASCII only: "ölbaum" must find "Ölbaum" at the desk
    db.create_function("casefold", 1, _casefold, deterministic=True)
    if migrate:
        apply_migrations(db)
    return db


def _casefold(text: object) -> object:
    return text.casefold() if isinstance(text, str) else text


def migrations() -> list[tuple[int, str, str]]:
    """All migrations shipped with this version: (number, file name, SQL), in order."""
    found = []
    for entry in resources.files("core.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 0001.. without gaps, found {numbers}")
    return found


def schema_version(db: sqlite3.Connection) -> int:
    if not isinstance(db, sqlite3.Connection):  # PostgreSQL: the migrations its schema was made from
        return db.execute("SELECT version FROM tessera_schema").fetchone()["version"]
    return db.execute("PRAGMA user_version").fetchone()["user_version"]


def apply_migrations(db: sqlite3.Connection) -> int:
    """Bring the schema up to date; each migration is its own transaction. Then make the
    change-feed triggers the ones generated from REPLICATED (`refresh_feed_triggers`)."""
    available = migrations()
    current = schema_version(db)
    if current > len(available):
        raise RuntimeError(
            f"database schema version {current} is newer than this Tessera "
            f"(knows {len(available)}); upgrade Tessera before opening it"
        )
    for number, name, sql in available[current:]:
        _migrate(db, number, name, sql)
    refresh_feed_triggers(db)
    return len(available)


def _migrate(db: sqlite3.Connection, number: int, name: str, sql: str) -> None:
    """One migration, one transaction, with foreign keys off so that a table can be rebuilt
    (create the new shape, copy, drop, rename: SQLite's way to change a constraint); every
    reference is checked before the commit instead, and a migration that breaks one is
    rolled back whole."""
    db.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: set before BEGIN
    try:
        db.executescript(f"BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {number};")
        broken = db.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration {name} breaks {len(broken)} references, first: {broken[0]}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.execute("PRAGMA foreign_keys = ON")


def refresh_feed_triggers(db: sqlite3.Connection) -> feed_triggers.Plan:
    """Create, replace or drop `changes_*` triggers so that they are exactly the generated
    ones (see core/migrations/feed_triggers.py). Reads only when they match already, so opening a
    database takes no write lock; otherwise one transaction, planned again under the lock."""
    if not feed_triggers.plan(db):
        return feed_triggers.Plan()
    with transaction(db):
        return feed_triggers.refresh(db)


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction; nested use becomes a savepoint.

    `BEGIN IMMEDIATE` takes the write lock up front, so two writers queue on the busy
    timeout instead of one failing half-way with SQLITE_BUSY on lock upgrade. RELEASE and
    COMMIT are inside the `try`: on PostgreSQL (core/base/pg/connection.py) writes are
    pipelined and a refused one may be reported only there, and must still be undone.
    """
    if db.in_transaction:
        name = f"sp_{next(_savepoints)}"
        db.execute(f"SAVEPOINT {name}")
        try:
            yield db
            db.execute(f"RELEASE {name}")  # on PostgreSQL a refused write may be reported only here
        except BaseException:
            db.execute(f"ROLLBACK TO {name}")
            db.execute(f"RELEASE {name}")
            raise
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")  # a COMMIT refused (a deferred foreign key) is rolled back too
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def retryable(exc: BaseException) -> bool:
    """The database gave this transaction up so that another could go on (40001, 40P01): it
    may simply be run again. SQLite never says so (its writers queue on the busy timeout)."""
    return isinstance(exc, sqlite3.OperationalError) and getattr(exc, "sqlstate", None) in RETRYABLE


def retried(body: Callable[P, T]) -> Callable[P, T]:
    """*body* (a function whose first argument is the connection, or has it as `.db`: a
    handler's Ctx, a sync push) run again, up to RETRIES times, when its transaction was
    the victim of a deadlock or serialization failure. The retry is of the whole body:
    `transaction()` cannot re-run a `with` block, and only the outermost transaction can be
    re-run (inside another one the error goes up to whoever opened that)."""

    @functools.wraps(body)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        db = getattr(args[0], "db", args[0])
        for attempt in range(RETRIES + 1):
            outermost = not db.in_transaction
            try:
                return body(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not (outermost and retryable(exc)) or attempt == RETRIES:
                    raise
                log.info("%s: transaction given up (%s), run again", body.__qualname__, exc.sqlstate)
            time.sleep(random.uniform(0, 0.005 * 2**attempt))  # apart, so that the two do not meet again
        raise AssertionError("unreachable")

    return run
