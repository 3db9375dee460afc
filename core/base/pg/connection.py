"""A psycopg 3 connection that the hub's code can use like its sqlite3 connections.

The hub's rules are written against sqlite3 (`db.execute(sql, params)` with `?`, rows as
dicts, `db.in_transaction`, `core.base.storage.transaction()`), and they stay so: this
adapter gives the same interface on PostgreSQL instead of a second copy of every rule.

- Statements go through `core.base.pg.wire`: libpq's pipeline and psycopg's C adapters,
  not psycopg's cursors (their Python was half of the hub's CPU per order in a rush). `?` and
  `:name` become `$1`, `$2`, ... (`core.base.pg.placeholders`), never inside a literal.
  Sessions are still opened and pooled by psycopg (`SESSION`), and the few paths that speak
  psycopg directly (`db.raw`: the schema install and upgrade, the migration's COPY) do so
  outside the wire's transactions.
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
  Statements are prepared on the server at their first use (up to `PREPARED_MAX` per
  session, kept by the wire for the session's life): parse and plan once per session instead
  of per statement, measured ~40% less server CPU per shop checkout (docs/rush.md). A Parse
  skipped because an earlier write of the same pipeline was refused is never taken for done
  (the wire reads every Parse's answer). Transaction control (BEGIN, SAVEPOINT, RELEASE,
  COMMIT, ROLLBACK) is never prepared: savepoint names are unique, and a cache of them would
  push out the statements worth keeping. psycopg itself prepares nothing here
  (`prepare_threshold=None`): a psycopg that prepared would send DEALLOCATE ALL after a DDL
  command on `db.raw` (the schema upgrade), under the wire's feet. Schema changes: the hub
  upgrades its schema when it opens, before it serves; the wire forgets its statements after
  a CREATE, ALTER or DROP it ran itself (tests/test_postgresql_connection.py).
- Errors: a constraint violation is raised as `IntegrityError`, a subclass of
  `sqlite3.IntegrityError` (which is what the rules catch) whose text is shaped like SQLite's
  (`UNIQUE constraint failed: tickets.performance_id, tickets.seat_id`), so
  `core.base.sql.integrity_problem` gives the same kinds; a trigger's refusal (`seat is
  held`) keeps its text. Serialization failures and deadlocks (40001, 40P01) are
  `OperationalError`, a `sqlite3.OperationalError`.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper, Loader
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from core.base.pg.wire import Answer, Wire

# The key of the hub's one write lock (pg_advisory_xact_lock); also taken by the change-feed
# triggers (core.base.pg.schema), so no row reaches `changes` outside it.
WRITER_LOCK = 0x7E55E8A
# SQL functions the SQLite connection gets from Python (`create_function`); on PostgreSQL the
# schema defines them (core.base.pg.schema.FUNCTIONS).
PROVIDED_FUNCTIONS = frozenset({"casefold", "tessera_local_day"})

_BEGIN = re.compile(r"^\s*BEGIN(\s+(IMMEDIATE|DEFERRED|EXCLUSIVE))?(\s+TRANSACTION)?\s*;?\s*$", re.IGNORECASE)
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_RELEASE = re.compile(r"^\s*RELEASE\b", re.IGNORECASE)
_ENDS = re.compile(r"^\s*(ROLLBACK|COMMIT|END)\b", re.IGNORECASE)  # a transaction, or (ROLLBACK TO) a savepoint
_COMMIT = re.compile(r"^\s*(COMMIT|END)\b", re.IGNORECASE)
_ROLLBACK_TO = re.compile(r"^\s*ROLLBACK\s+(TRANSACTION\s+)?TO\b", re.IGNORECASE)
_SAVEPOINT = re.compile(r"^\s*SAVEPOINT\b", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_KEY_COLUMNS = re.compile(r"^Key \((?P<columns>.*?)\)=\(", re.DOTALL)
_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")
# `INSERT INTO t (a, b) VALUES (?, ?)` and nothing after it (no ON CONFLICT, no RETURNING): what
# executemany may send as one multi-row INSERT per batch
_VALUES_INSERT = re.compile(r"^\s*(?P<head>INSERT\s+INTO\s+\w+\s*\([\w\s,]+\)\s*VALUES)\s*"
                            r"(?P<row>\(\s*\?(?:\s*,\s*\?)*\s*\))\s*;?\s*$", re.IGNORECASE)
BATCH_ROWS = 256  # rows per multi-row INSERT at most; batches are powers of two (few distinct statements)


# How every session is opened (here and by core.base.pg.pool): autocommit like our sqlite3
# connections, dict rows for psycopg's own use of it (`db.raw`), and nothing prepared by psycopg
# (the wire prepares: module docstring); the wire keeps up to PREPARED_MAX statements per
# session (the hub sends a few hundred distinct statements, one per count of placeholders in
# an IN list).
SESSION: dict[str, Any] = {"autocommit": True, "row_factory": dict_row, "prepare_threshold": None}
PREPARED_MAX = 500


@functools.lru_cache(maxsize=2048)
def _kind(sql: str) -> str:
    """What a statement is to the adapter, worked out once per text (every statement is
    classified; the hub sends a few hundred distinct texts): begin, end (COMMIT, ROLLBACK, also
    ROLLBACK TO), savepoint, release, write (INSERT/UPDATE/DELETE without RETURNING: pipelined),
    or read (anything answered)."""
    if _BEGIN.match(sql):
        return "begin"
    if _ENDS.match(sql):
        return "end"
    if _SAVEPOINT.match(sql):
        return "savepoint"
    if _RELEASE.match(sql):
        return "release"
    if _WRITE.match(sql) and not _RETURNING.search(sql):
        return "write"
    return "read"


def _savepoint_name(sql: str) -> str:
    """The savepoint's name in SAVEPOINT x, RELEASE [SAVEPOINT] x, ROLLBACK TO [SAVEPOINT] x."""
    return sql.split()[-1].rstrip(";").casefold()


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
    plain tuples, as our hot paths ask of sqlite3). Reading it first collects the answers of
    everything still on its way (the transaction's pipeline). Rows are loaded as they are
    read, a chunk at a time when iterated."""

    _CHUNK = 512

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._answer: Answer | None = None
        self._dicts = True
        self._taken = 0

    @property
    def row_factory(self) -> Any:
        return dict_row if self._dicts else None

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        self._dicts = factory is not None

    def execute(self, sql: str, parameters: Sequence | Mapping = ()) -> Cursor:
        self._answer, self._taken = self._connection._execute(sql, parameters), 0
        return self

    def _result(self) -> Any:
        if self._answer is None:
            return None
        if self._answer.result is None:  # not collected yet (a read sent in the transaction's pipeline)
            self._connection.settle()
        return self._answer.result

    @property
    def rowcount(self) -> int:
        result = self._result()
        count = None if result is None else result.command_tuples
        return -1 if count is None else count

    @property
    def description(self) -> list[tuple] | None:
        result = self._result()
        if result is None or not result.nfields:
            return None
        encoding = self._connection._wire.encoding
        return [(result.fname(i).decode(encoding), result.ftype(i), None, None, None, None, None)
                for i in range(result.nfields)]

    def _take(self, count: int | None) -> list:
        if self._result() is None:
            return []
        last = None if count is None else self._taken + count
        rows = self._connection._wire.rows(self._answer, self._dicts, self._taken, last)  # type: ignore[arg-type]
        self._taken += len(rows)
        return rows

    def fetchone(self) -> Any:
        rows = self._take(1)
        return rows[0] if rows else None

    def fetchall(self) -> list:
        return self._take(None)

    def fetchmany(self, size: int = 1) -> list:
        return self._take(size)

    def __iter__(self) -> Iterator:
        while rows := self._take(self._CHUNK):
            yield from rows

    def close(self) -> None:
        self._answer = None


_EMPTY = Answer()  # what a transaction-control statement answers to its cursor


class Connection:
    """One PostgreSQL session with the sqlite3 connection interface the hub uses.

    Statements go through `core.base.pg.wire` (libpq's pipeline, prepared at first use).
    Inside a transaction nothing waits for its answer until someone needs it: a write whose
    answer nobody reads (no RETURNING) is sent, a read is sent and collected when its cursor
    is first read (rows, rowcount, description), and that collects everything sent before it in
    the same round trip. A shop checkout (hold and order) costs 28 round trips (57 when every
    read and every RELEASE waited: docs/rush.md). A refused write is reported there, after the
    rule has gone on a few statements: harmless, since an error ends the transaction anyway. A
    rule that catches a refusal wraps the statements in `with transaction(db):` (a savepoint)
    and catches around that block: the RELEASE that ends the block is answered whenever a
    statement of the block is still unanswered (`_release`), so the refusal is raised before
    the block ends and the savepoint is undone alone, as on SQLite. Inside the block
    statements are pipelined too: no rule catches a single statement inside a savepoint, and
    none may rely on it (the refusal can surface at a later statement of the same block)."""

    dialect = "postgresql"
    url: str | None = None  # where it was opened (a pool of the same hub opens more there)

    def __init__(self, raw: psycopg.Connection, data_dir: Path | None = None) -> None:
        self.raw = raw
        self.data_dir = data_dir  # the hub's folder (keys, hub.toml): a SQLite hub finds it from its file
        self._wire = _wire_of(raw)
        self._open = False  # inside a transaction begun here (pipeline mode until its end)
        self._owner: int | None = None  # the thread that began it
        self._marks: dict[str, int] = {}  # open savepoints: the wire's `sent` after their SAVEPOINT

    @property
    def in_transaction(self) -> bool:
        if self._open:  # begun here: in it for the thread that began it (another one waits for it)
            return self._mine()
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def cursor(self) -> Cursor:
        return Cursor(self)

    def execute(self, sql: str, parameters: Sequence | Mapping = ()) -> Cursor:
        return Cursor(self).execute(sql, parameters)

    def executemany(self, sql: str, seq: Iterable[Sequence | Mapping]) -> Cursor:
        """As sqlite3's. A plain `INSERT ... VALUES (?, ...)` of several rows is sent as
        multi-row INSERTs (`_batches`): per row, a statement costs the hub its Python and
        the server a Bind/Execute round; a checkout inserts ~30 rows this way."""
        rows = list(seq)
        values = _VALUES_INSERT.match(sql)
        if values and len(rows) > 1 and all(isinstance(row, Sequence) for row in rows):
            statements = list(_batches(values, rows))
        else:
            statements = [(sql, row) for row in rows]
        answer = _kind(sql) != "write"  # as execute(): a write without RETURNING is pipelined
        cursor = Cursor(self)
        if statements:
            self._write(lambda: [self._send(statement, params) for statement, params in statements], answer)
            cursor._answer = _EMPTY
        return cursor

    def _execute(self, sql: str, parameters: Sequence | Mapping) -> Answer:
        kind = _kind(sql)
        if kind == "begin":
            self._begin()
        elif kind == "end":
            self._end(sql)
        elif kind in ("savepoint", "release") and not self._mine():  # outside a transaction: as any statement
            return self._read(sql, parameters)
        elif kind == "savepoint":  # sent with what follows
            self._control(sql)
            self._marks[_savepoint_name(sql)] = self._wire.sent
        elif kind == "release":
            self._release(sql)
        elif kind == "write":
            return self._write(lambda: self._send(sql, parameters), answer=False)
        else:
            return self._read(sql, parameters)
        return _EMPTY

    def _release(self, sql: str) -> None:
        """The end of a savepoint's block: answered when a statement sent inside the block is
        still unanswered (a refusal inside the block must be raised before it ends, so that the
        rule catching around it undoes the block alone); else it can no longer fail on account
        of the block and goes with the next round trip, like a write (a block whose last
        statement was a read, or an empty one: 4 round trips of a shop checkout)."""
        mark = self._marks.pop(_savepoint_name(sql), None)
        self._control(sql)
        if mark is None or self._wire.sent - 1 > max(mark, self._wire.synced):
            self.settle()

    def _send(self, sql: str, parameters: Sequence | Mapping, *, prepare: bool = True) -> Answer:
        try:
            return self._wire.send(sql, parameters, prepare=prepare)
        except psycopg.Error as exc:
            raise _mapped(exc) from exc

    def _read(self, sql: str, parameters: Sequence | Mapping) -> Answer:
        """A statement whose answer is read: in the transaction's pipeline, sent now and
        collected (with everything before it) when its cursor is first read, so a rule that
        sends several reads before reading any costs one round trip; outside a transaction, a
        pipeline of its own (an implicit transaction), answered at once."""
        if self._mine():
            return self._send(sql, parameters)
        with self._wire.lock:
            self._wire.enter()
            try:
                answer = self._send(sql, parameters)
                self.settle()
            finally:
                self._leave()
        return answer

    def _write(self, run: Callable[[], Any], answer: bool = False) -> Any:
        """A write: sent in the transaction's pipeline (the transaction holds the write lock),
        else in a transaction of its own that holds the write lock (one round trip)."""
        if self._mine():
            sent = run()
            if answer:
                self.settle()
            return sent
        with self._wire.lock:
            if self.in_transaction:  # a transaction begun on `raw` (psycopg's own), not here
                raise psycopg.ProgrammingError("a write inside a psycopg transaction: use raw directly")
            self._wire.enter()
            try:
                self._control("BEGIN")
                self._lock()
                sent = run()
                self._control("COMMIT")
                self.settle()
            except BaseException:
                self._abandon()
                raise
            finally:
                self._leave()
        return sent

    def _abandon(self) -> None:
        """After a failure in a pipeline: collect what was sent and roll back the server's
        transaction if one is open (nothing to do on a lost session: the pool drops it)."""
        if self.raw.broken or self.raw.closed:
            self._wire.expected.clear()
            return
        self._sync_quietly()
        if self.raw.info.transaction_status != TransactionStatus.IDLE:
            self._control("ROLLBACK")
            self._sync_quietly()

    def settle(self) -> None:
        """Collect the answers of everything sent; a refused write raises here."""
        try:
            self._wire.sync()
        except psycopg.Error as exc:
            raise _mapped(exc) from exc

    def _sync_quietly(self) -> None:
        """Collect what was sent, ignoring a refusal (one already reported, or one whose
        transaction is being rolled back anyway)."""
        try:
            self._wire.sync()
        except psycopg.DatabaseError:
            pass

    def _leave(self) -> None:
        if self._wire.piped and not self._wire.expected:
            self._wire.leave()

    def _begin(self) -> None:
        """`BEGIN IMMEDIATE`: a transaction that holds the write lock (module docstring), in
        pipeline mode; BEGIN and the lock go with the first statement that needs an answer."""
        if self._mine():
            raise sqlite3.OperationalError("cannot start a transaction within a transaction")
        self._wire.lock.acquire()  # held until the transaction ends (`_close`); another thread's first
        self._owner = threading.get_ident()
        try:
            self._wire.enter()
            self._control("BEGIN")
            self._lock()
        except BaseException:
            self._abandon()
            self._leave()
            self._wire.lock.release()
            raise
        self._open = True

    def _lock(self) -> None:
        self._send("SELECT pg_advisory_xact_lock(?)", (WRITER_LOCK,))

    def _end(self, sql: str) -> None:
        """COMMIT (with whatever is unanswered, one round trip: a refused write raises, the
        COMMIT is skipped, and the caller rolls back), ROLLBACK, or the ROLLBACK TO of a
        savepoint (after the pipeline's unanswered statements are collected, an error among
        them ignored: it was raised before, or its block is being undone)."""
        if not self._mine():
            self._read(sql, ())  # as sqlite3: COMMIT / ROLLBACK outside a transaction fails
            return
        if (self.raw.broken or self.raw.closed) and not _COMMIT.match(sql):
            self._wire.piped = False  # nothing left to undo: the server ended it
            self._wire.expected.clear()
            self._close()
            return
        if _COMMIT.match(sql):
            self._control(sql)
            self.settle()
        else:
            self._sync_quietly()
            self._control(sql)
            self.settle()
            if _ROLLBACK_TO.match(sql):
                return
        self._leave()
        self._close()

    def _close(self) -> None:
        """The transaction begun here has ended: the session is free for another thread."""
        self._open, self._owner = False, None
        self._marks.clear()
        self._wire.lock.release()

    def _mine(self) -> bool:
        """Inside the transaction begun here, by this thread (another thread using the same
        connection object waits for the lock instead)."""
        return self._open and self._owner == threading.get_ident()

    def _control(self, sql: str) -> None:
        """A transaction-control statement, never prepared (savepoint names are unique)."""
        self._send(sql, (), prepare=False)

    def commit(self) -> None:
        if self._mine():
            self._end("COMMIT")

    def rollback(self) -> None:
        if self._mine():
            self._end("ROLLBACK")
        elif not self._open and self.in_transaction:
            self.raw.rollback()

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
        return self.execute("SELECT pg_current_snapshot()::text AS s").fetchone()["s"]

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


_wires: weakref.WeakKeyDictionary[psycopg.Connection, Wire] = weakref.WeakKeyDictionary()


def _wire_of(raw: psycopg.Connection) -> Wire:
    """The session's wire, made at its first use: its prepared statements live as long as the
    session (a pool hands the same session out again and again)."""
    wire = _wires.get(raw)
    if wire is None:
        raw.adapters.register_dumper(bool, _BoolAsInteger)
        raw.adapters.register_loader("numeric", _NumericAsNumber)
        wire = _wires[raw] = Wire(raw, PREPARED_MAX)
    return wire


def connect(url: str, data_dir: Path | None = None) -> Connection:
    """Open a session on the PostgreSQL database at *url* (a `postgresql://` URL), as it is
    (`core.base.pg.connect` also makes the hub's schema), for the hub whose folder is *data_dir*."""
    raw = psycopg.connect(url, **SESSION)
    db = Connection(raw, data_dir)
    db.url = url
    return db
