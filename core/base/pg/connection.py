"""A psycopg 3 connection that the hub's code can use like its sqlite3 connections.

The hub's rules are written against sqlite3 (`db.execute(sql, params)` with `?`, rows as
dicts, `db.in_transaction`, `core.base.storage.transaction()`), and they stay so: this
adapter gives the same interface on PostgreSQL instead of a second copy of every rule.

- Placeholders: `?` and `:name` become psycopg's (`core.base.pg.placeholders`), never inside
  a literal.
- Rows are dicts; a statement without a result fetches None / [] as on sqlite3.
- Transactions: the connection runs in autocommit mode like ours on SQLite. SQLite has one
  writer at a time (`BEGIN IMMEDIATE` takes the write lock), and rules rely on it: a number
  series reads and bumps its counter, a seat sale checks then inserts. PostgreSQL has no
  BEGIN IMMEDIATE; plain `BEGIN` (READ COMMITTED) followed by one transaction-level advisory
  lock (`WRITER_LOCK`) gives exactly that: writers queue on the lock, readers never wait
  (MVCC), and since the lock is released only after the commit is visible, every statement
  the next writer runs sees all earlier commits (READ COMMITTED takes a snapshot per
  statement, after the lock was granted; REPEATABLE READ would not, which is why it is not
  used). A write outside `transaction()` takes the same lock, as an autocommit write does
  on SQLite. Scaling writers past one lock is a later step of issue 18 (docs/postgresql.md).
- A failed statement inside a transaction aborts it, as PostgreSQL does: the rule's error
  ends the transaction (`core.base.storage.transaction()` rolls it back). The few rules that
  catch an IntegrityError and go on in the same transaction (a seat hold or a ticket reads
  the seat to say why it was refused) wrap that statement in `with transaction(db):`, a
  savepoint on both backends. (Until issue 18's rush step every write ran under its own
  savepoint here: two more statements per write, the biggest part of the gap to SQLite.)
  Statements are prepared on the server at their first use (`prepare_threshold=0`, up to
  `PREPARED_MAX` per session): parse and plan once per session instead of per statement,
  measured ~40% less server CPU per shop checkout (docs/rush.md). The pipeline hazard: psycopg
  takes a statement as prepared when it sends the PREPARE, and an earlier write refused in
  the same pipeline makes the server skip it. At threshold 0 psycopg checks every new
  statement's answer and forgets a skipped one; at any threshold the ROLLBACK that follows a
  refusal clears its cache and the server's (DEALLOCATE ALL). Transaction control (BEGIN,
  the lock, SAVEPOINT, RELEASE, COMMIT, ROLLBACK) is never prepared: savepoint names are
  unique, and a cache of them would push out the statements worth keeping. Schema changes:
  the hub upgrades its schema when it opens, before it serves; psycopg clears its cache
  after an ALTER or DROP on the session that ran it (tests/test_postgresql_connection.py).
- Errors: a constraint violation is raised as `IntegrityError`, a subclass of
  `sqlite3.IntegrityError` (which is what the rules catch) whose text is shaped like SQLite's
  (`UNIQUE constraint failed: tickets.performance_id, tickets.seat_id`), so
  `core.base.sql.integrity_problem` gives the same kinds; a trigger's refusal (`seat is
  held`) keeps its text. Serialization failures and deadlocks (40001, 40P01) are
  `OperationalError`, a `sqlite3.OperationalError`.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper, Loader
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.rows import dict_row, tuple_row

from core.base.pg.placeholders import translate

# The key of the hub's one write lock (pg_advisory_xact_lock); also taken by the change-feed
# triggers (core.base.pg.schema), so no row reaches `changes` outside it.
WRITER_LOCK = 0x7E55E8A
# SQL functions the SQLite connection gets from Python (`create_function`); on PostgreSQL the
# schema defines them (core.base.pg.schema.FUNCTIONS).
PROVIDED_FUNCTIONS = frozenset({"casefold", "tessera_local_day"})

_BEGIN = re.compile(r"^\s*BEGIN(\s+(IMMEDIATE|DEFERRED|EXCLUSIVE))?(\s+TRANSACTION)?\s*;?\s*$", re.IGNORECASE)
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_CONTROL = re.compile(r"^\s*(SAVEPOINT|RELEASE|ROLLBACK|COMMIT|END)\b", re.IGNORECASE)
_ENDS = re.compile(r"^\s*(ROLLBACK|COMMIT|END)\b", re.IGNORECASE)  # a transaction, or (ROLLBACK TO) a savepoint
_COMMIT = re.compile(r"^\s*(COMMIT|END)\b", re.IGNORECASE)
_ROLLBACK_TO = re.compile(r"^\s*ROLLBACK\s+(TRANSACTION\s+)?TO\b", re.IGNORECASE)
_SAVEPOINT = re.compile(r"^\s*SAVEPOINT\b", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_KEY_COLUMNS = re.compile(r"^Key \((?P<columns>.*?)\)=\(", re.DOTALL)
_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")
_TUPLES_OK = ExecStatus.TUPLES_OK
# `INSERT INTO t (a, b) VALUES (?, ?)` and nothing after it (no ON CONFLICT, no RETURNING): what
# executemany may send as one multi-row INSERT per batch
_VALUES_INSERT = re.compile(r"^\s*(?P<head>INSERT\s+INTO\s+\w+\s*\([\w\s,]+\)\s*VALUES)\s*"
                            r"(?P<row>\(\s*\?(?:\s*,\s*\?)*\s*\))\s*;?\s*$", re.IGNORECASE)
BATCH_ROWS = 256  # rows per multi-row INSERT at most; batches are powers of two (few distinct statements)


# How every session is opened (here and by core.base.pg.pool): autocommit like our sqlite3
# connections, dict rows, statements prepared on the server at their first use (module
# docstring); a session keeps up to PREPARED_MAX of them (psycopg's default is 100: the hub
# sends a few hundred distinct statements, with one per count of placeholders in an IN list).
SESSION: dict[str, Any] = {"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0}
PREPARED_MAX = 500
_translate = functools.lru_cache(maxsize=4096)(translate)  # the hub sends a few hundred distinct statements


class IntegrityError(sqlite3.IntegrityError):
    """A constraint violation on PostgreSQL, worded like SQLite's (see the module docstring)."""

    sqlstate: str | None = None


class OperationalError(sqlite3.OperationalError):
    """A serialization failure or deadlock: the transaction may simply be run again."""

    sqlstate: str | None = None


class _BoolAsInteger(Dumper):
    """Python bools as 0/1, as sqlite3 stores them (our flag columns are integers)."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _NumericAsNumber(Loader):
    """numeric as int (integral) or float: PostgreSQL's sum() of bigint is numeric, which psycopg
    gives as Decimal (not JSON, and '55200' in the API); sqlite3 gives int or float."""

    def load(self, data: bytes | bytearray | memoryview) -> int | float:
        text = bytes(data).decode()
        return int(text) if text.lstrip("-").isdigit() else float(text)


def _batches(values: re.Match, rows: list[Sequence]) -> Iterator[tuple[str, list]]:
    """*rows* as multi-row INSERTs of the matched statement, in order: batches of a power of two
    rows (256, 128, ..., 1), so that a table sees a handful of distinct statements, each
    prepared once per session, whatever the row counts. The rows go in the order given, and
    each row's triggers and constraints fire as they would for one INSERT per row."""
    head, row = values.group("head"), values.group("row")
    start = 0
    while start < len(rows):
        size = min(BATCH_ROWS, 1 << ((len(rows) - start).bit_length() - 1))
        batch = rows[start:start + size]
        yield f"{head} {', '.join([row] * size)}", [value for one in batch for value in one]
        start += size


def sqlite_message(exc: psycopg.IntegrityError) -> str:
    """The text SQLite would give for this violation (what `integrity_problem` reads)."""
    diag = exc.diag
    table = diag.table_name or ""
    if exc.sqlstate == "23505":
        match = _KEY_COLUMNS.match(diag.message_detail or "")
        columns = [c.strip() for c in match.group("columns").split(",")] if match else []
        if columns and all(_PLAIN.match(c) for c in columns):
            return "UNIQUE constraint failed: " + ", ".join(f"{table}.{c}" for c in columns)
        return f"UNIQUE constraint failed: index '{diag.constraint_name}'"
    if exc.sqlstate == "23503":
        return "FOREIGN KEY constraint failed"
    if exc.sqlstate == "23502":
        return f"NOT NULL constraint failed: {table}.{diag.column_name}"
    if exc.sqlstate == "23514":
        return f"CHECK constraint failed: {diag.constraint_name}"
    return diag.message_primary or str(exc)


def _mapped(exc: psycopg.Error) -> Exception:
    if isinstance(exc, psycopg.IntegrityError):
        mapped: Exception = IntegrityError(sqlite_message(exc))
    elif isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        mapped = OperationalError(str(exc))
    else:
        return exc
    mapped.sqlstate = exc.sqlstate  # type: ignore[attr-defined]
    return mapped


class Cursor:
    """The result of one statement, read like a sqlite3 cursor (`row_factory = None` gives
    plain tuples, as our hot paths ask of sqlite3). Reading it first collects the results
    of the writes still on their way (the transaction's pipeline)."""

    def __init__(self, connection: Connection, cursor: psycopg.Cursor) -> None:
        self._connection, self._cursor = connection, cursor

    @property
    def row_factory(self) -> Any:
        return self._cursor.row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        self._cursor.row_factory = tuple_row if factory is None else dict_row

    def execute(self, sql: str, parameters: Sequence | Mapping = ()) -> Cursor:
        self._connection._execute(self._cursor, sql, parameters)
        return self

    @property
    def rowcount(self) -> int:
        self._connection.settle()
        return self._cursor.rowcount

    @property
    def description(self) -> Any:
        self._connection.settle()
        return self._cursor.description

    def _has_rows(self) -> bool:
        """Whether the statement gave a result set (sqlite3 fetches None / [] otherwise):
        `description` would build a Column per field on every fetch, a measurable part of
        the client's CPU per checkout."""
        self._connection.settle()
        result = self._cursor.pgresult
        return result is not None and (result.nfields > 0 or result.status == _TUPLES_OK)

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._has_rows() else None

    def fetchall(self) -> list:
        return self._cursor.fetchall() if self._has_rows() else []

    def fetchmany(self, size: int = 1) -> list:
        return self._cursor.fetchmany(size) if self._has_rows() else []

    def __iter__(self) -> Iterator:
        return iter(self._cursor) if self._has_rows() else iter(())

    def close(self) -> None:
        self._cursor.close()


class Connection:
    """One PostgreSQL session with the sqlite3 connection interface the hub uses.

    Inside a transaction the session is in psycopg's pipeline mode: a write whose answer
    nobody reads (no RETURNING) is sent without waiting for it, and the next statement that
    needs an answer (a read, RELEASE, COMMIT, a cursor's rowcount) collects all of them in
    the same round trip. An order's ~25 statements cost ~10 round trips instead of ~25. A
    refused write is reported there, after the rule has gone on a few statements: harmless,
    since an error ends the transaction anyway. A rule that catches a refusal wraps the
    statements in `with transaction(db):` (a savepoint) and catches around that block: the
    RELEASE that ends the block is always answered, so the refusal is raised before the block
    ends and the savepoint is undone alone, as on SQLite. Inside the block writes are
    pipelined too (until issue 18's rush step each was answered at once, a round trip per
    write): no rule catches a single statement inside a savepoint, and none may rely on it
    (the refusal can surface at a later statement of the same block)."""

    dialect = "postgresql"
    url: str | None = None  # where it was opened (a pool of the same hub opens more there)

    def __init__(self, raw: psycopg.Connection, data_dir: Path | None = None) -> None:
        self.raw = raw
        self.data_dir = data_dir  # the hub's folder (keys, hub.toml): a SQLite hub finds it from its file
        raw.adapters.register_dumper(bool, _BoolAsInteger)
        raw.adapters.register_loader("numeric", _NumericAsNumber)
        raw.prepared_max = PREPARED_MAX
        self._pipeline: contextlib.AbstractContextManager[psycopg.Pipeline] | None = None
        self._unanswered = False  # writes sent in the pipeline whose results were not collected yet

    @property
    def in_transaction(self) -> bool:
        return self._pipeline is not None or self.raw.info.transaction_status != TransactionStatus.IDLE

    def cursor(self) -> Cursor:
        return Cursor(self, self.raw.cursor())

    def execute(self, sql: str, parameters: Sequence | Mapping = ()) -> Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq: Iterable[Sequence | Mapping]) -> Cursor:
        """As sqlite3's. A plain `INSERT ... VALUES (?, ...)` of several rows is sent as
        multi-row INSERTs (`_batches`): per row, psycopg's executemany costs the hub ~40 us of
        Python and the server a Bind/Execute round; a checkout inserts ~30 rows this way."""
        cursor, rows = self.cursor(), list(seq)
        values = _VALUES_INSERT.match(sql)
        if values and len(rows) > 1 and all(isinstance(row, Sequence) for row in rows):
            for statement, params in _batches(values, rows):
                self._write(lambda statement=statement, params=params: self._run(
                    cursor._cursor, statement, params, answer=False))
            return cursor
        answer = not (_WRITE.match(sql) and not _RETURNING.search(sql))  # as execute(): a write is pipelined
        self._write(lambda: self._run(cursor._cursor, sql, rows, many=True, answer=answer))
        return cursor

    def _execute(self, cursor: psycopg.Cursor, sql: str, parameters: Sequence | Mapping) -> None:
        if _BEGIN.match(sql):
            self._begin()
        elif _ENDS.match(sql):
            self._end(sql)
        elif _CONTROL.match(sql):
            self._run(cursor, sql, parameters, answer=not _SAVEPOINT.match(sql), prepare=False)
        elif _WRITE.match(sql) and not _RETURNING.search(sql):
            self._write(lambda: self._run(cursor, sql, parameters, answer=False))
        else:
            self._run(cursor, sql, parameters)

    def _write(self, run: Callable[[], None]) -> None:
        """A write: sent in the transaction's pipeline (the transaction holds the write lock),
        else in a transaction of its own that holds the write lock."""
        if self._pipeline is not None:
            run()
        elif self.in_transaction:
            run()
            self.settle()
        else:
            self._own_transaction(run)

    def _run(self, cursor: psycopg.Cursor, sql: str, parameters: Any, *, many: bool = False,
             answer: bool = True, prepare: bool | None = None) -> None:
        """Send one statement; in the pipeline, wait for its answer (and all before it) unless
        *answer* is False. *prepare* False: never prepared (transaction control)."""
        try:
            if many:
                cursor.executemany(_translate(sql), parameters)
            else:
                cursor.execute(_translate(sql), parameters, prepare=prepare)
        except psycopg.Error as exc:
            raise _mapped(exc) from exc
        if self._pipeline is not None:
            self._unanswered = True
            if answer:
                self.settle()

    def settle(self) -> None:
        """Collect the answers of everything sent in the pipeline; a refused write raises here."""
        if self._pipeline is not None and self._unanswered:
            self._unanswered = False
            try:
                self.raw._pipeline.sync()  # type: ignore[union-attr]
            except psycopg.Error as exc:
                raise _mapped(exc) from exc
            self._deallocate_now()

    def _deallocate_now(self) -> None:
        """psycopg forgets its prepared statements when it reads the answer of a ROLLBACK (also
        ROLLBACK TO), DROP or ALTER, and sends DEALLOCATE ALL after the next statement it runs.
        In the pipeline that answer is read late, so the next statement would be prepared first
        and then deallocated with the rest while psycopg still takes it for prepared ('prepared
        statement "_pg3_N" does not exist' at its next use; psycopg 3.3). Send the DEALLOCATE
        ALL now, behind a statement that is never prepared."""
        if getattr(self.raw._prepared, "_to_flush", None):
            self.raw.execute("SELECT 1", prepare=False)
            if self._pipeline is not None:
                self._unanswered = True

    def _begin(self) -> None:
        """`BEGIN IMMEDIATE`: a transaction that holds the write lock (module docstring), in
        pipeline mode; BEGIN and the lock go with the first statement that needs an answer."""
        pipeline = self.raw.pipeline()
        pipeline.__enter__()
        self._pipeline = pipeline
        self._send_begin()
        self._unanswered = True

    def _end(self, sql: str) -> None:
        """COMMIT or ROLLBACK (also the ROLLBACK TO of a savepoint after a refusal). In the
        pipeline: a COMMIT first collects what is unanswered (a refused write raises, and
        the caller rolls back); a ROLLBACK first clears an error the pipeline still holds."""
        if self._pipeline is None:
            self._run(self.raw.cursor(), sql, (), prepare=False)
            return
        if _COMMIT.match(sql):
            self.settle()
        else:
            self._clear()
        self._control(sql)
        if _ROLLBACK_TO.match(sql):
            self._unanswered = True
            self.settle()
            return
        pipeline, self._pipeline, self._unanswered = self._pipeline, None, False
        try:
            pipeline.__exit__(None, None, None)
        except psycopg.Error as exc:
            raise _mapped(exc) from exc
        self._deallocate_now()

    def _clear(self) -> None:
        """An error already reported leaves the pipeline skipping everything up to its next
        sync: sync once, ignoring what it reports (it was raised before)."""
        try:
            self.raw._pipeline.sync()  # type: ignore[union-attr]
        except psycopg.Error:
            pass
        self._unanswered = False

    def _send_begin(self) -> None:
        self._control("BEGIN")
        self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,), prepare=False)

    def _control(self, sql: str) -> None:
        """A transaction-control statement, never prepared: in a pipeline that an error cut
        short, psycopg would count a skipped PREPARE as done."""
        self.raw.execute(sql, prepare=False)

    def _own_transaction(self, run: Callable[[], None]) -> None:
        """A write outside a transaction: BEGIN, the lock, the write and COMMIT in one round trip."""
        try:
            with self.raw.pipeline():
                self._send_begin()
                run()
                self._control("COMMIT")
        except BaseException as exc:
            if self.in_transaction:
                self._control("ROLLBACK")
            raise (_mapped(exc) if isinstance(exc, psycopg.Error) else exc) from None

    def commit(self) -> None:
        if self.in_transaction:
            self._end("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self._end("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    def create_function(self, name: str, *_args: Any, **_kwargs: Any) -> None:
        """The schema defines the functions SQLite gets from Python; others do not exist here."""
        if name not in PROVIDED_FUNCTIONS:
            raise psycopg.NotSupportedError(f"no PostgreSQL version of the SQL function {name}")

    def generation(self) -> str:
        """Changes whenever any transaction that wrote has ended since the last look: the
        snapshot's upper bound and its in-progress list (conservative: any database of the
        cluster counts)."""
        return self.raw.execute("SELECT pg_current_snapshot()::text AS s").fetchone()["s"]

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> bool:
        """As sqlite3's `with db:`: commit the open transaction, or roll it back on an error; the
        session stays open (close() ends it). Nobody relied on the old closing behaviour."""
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        return False


def connect(url: str, data_dir: Path | None = None) -> Connection:
    """Open a session on the PostgreSQL database at *url* (a `postgresql://` URL), as it is
    (`core.base.pg.connect` also makes the hub's schema), for the hub whose folder is *data_dir*."""
    raw = psycopg.connect(url, **SESSION)
    db = Connection(raw, data_dir)
    db.url = url
    return db
