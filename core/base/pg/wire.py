"""The hub's statements on one PostgreSQL session, sent through libpq's pipeline directly.

Why not psycopg's cursors: in a presale rush, the hub spent about half of its CPU per order in
psycopg's Python layer (a cursor per statement, the query converter, the prepared-statement
bookkeeping, the pipeline's generators and a row maker per result), 45-50 us per statement
against 9 us for libpq's own call (docs/rush.md). This module keeps what the hub needs and no
more, on psycopg's C parts: `pq.PGconn` (libpq) and the `Transformer` (the same dumpers and
loaders psycopg uses, with the connection's own adapters), so values go in and come out exactly
as through a psycopg cursor.

- Every statement is sent in pipeline mode: a transaction's writes go without waiting, and
  `sync()` collects the answers of everything sent in one round trip. A statement outside a
  transaction is its own pipeline of one (Parse if new, Bind/Execute, Sync: an implicit
  transaction, as psycopg sends it).
- Statements are prepared on the server at their first use, keyed by text and parameter types
  (as psycopg's cache is), at most `capacity` per session (the oldest is closed). A Parse
  counts as done only when its answer came back OK: one skipped because an earlier statement
  of the same pipeline failed is forgotten, so no name is ever used that the server lacks.
  Prepared statements outlive a ROLLBACK (they are not transactional); a DDL command clears
  them all (`DEALLOCATE ALL` before the next statement), since a changed table may change
  a statement's result type.
- The first error of a sync is raised (a psycopg error, which the caller maps); statements
  after it were skipped by the server and their cursors read as empty.
"""

from __future__ import annotations

import collections
import itertools
import select
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import PyFormat, Transformer
from psycopg.pq import ExecStatus

from core.base.pg.placeholders import numbered

_OK = (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK, ExecStatus.EMPTY_QUERY)
_DDL = (b"CREATE", b"ALTER", b"DROP")
_names = itertools.count(1)  # names of prepared statements: unique in the process, so never reused in a session


class Answer:
    """What the server answered to one statement (None until its sync, and when skipped)."""

    __slots__ = ("result",)

    def __init__(self) -> None:
        self.result: Any = None


class _Prepare:
    """A Parse in flight: its name counts as prepared once this comes back OK."""

    __slots__ = ("key", "name")

    def __init__(self, key: tuple, name: bytes) -> None:
        self.key, self.name = key, name


_IGNORED = object()  # a statement whose answer nobody reads (DEALLOCATE, Close)
_SYNC = object()


class Wire:
    """One session's statements (see the module docstring). A session is used by one thread
    at a time: `lock` (re-entrant) is held for one statement outside a transaction and from
    BEGIN to its end inside one (core.base.pg.connection), so a second thread on the same
    session (a test beside a served hub, say) waits instead of mixing its statements into
    the first one's pipeline (psycopg's cursors serialized per statement the same way)."""

    def __init__(self, raw: psycopg.Connection, capacity: int) -> None:
        self.pgconn = raw.pgconn
        self.encoding = raw.info.encoding
        self.tx = Transformer(raw)
        self.capacity = capacity
        self.prepared: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
        self.expected: collections.deque[Any] = collections.deque()
        self.piped = False  # in libpq's pipeline mode
        self._stale = False  # a DDL command ran: drop every prepared statement before the next
        self._poll = select.poll()
        self._poll.register(self.pgconn.socket, select.POLLIN)
        self._formats: dict[int, list[PyFormat]] = {}
        self.lock = threading.RLock()
        self.sent = 0  # statements sent so far (a count that only grows)
        self.synced = 0  # `sent` at the last sync: statements up to it are answered (or skipped)

    # -- sending

    def enter(self) -> None:
        """Pipeline mode (a transaction's statements, until `leave`)."""
        if not self.piped:
            self.pgconn.enter_pipeline_mode()
            self.piped = True

    def leave(self) -> None:
        """Out of pipeline mode: everything sent must have been synced."""
        if self.piped:
            self.pgconn.exit_pipeline_mode()
            self.piped = False

    def send(self, sql: str, parameters: Sequence | Mapping = (), *, prepare: bool = True) -> Answer:
        """Queue one statement (in pipeline mode; `sync` sends and answers it)."""
        if not prepare and not parameters:  # transaction control: its own text (a savepoint's is unique)
            query, names = sql.encode(), None
        else:
            query, names = numbered(sql)
        values = [parameters[name] for name in names] if names is not None else parameters  # type: ignore[call-overload,index]
        if self._stale:
            self._send_ignored(b"DEALLOCATE ALL")
            self._stale = False
        dumped: Any = None
        types: Any = None
        formats: Any = None
        if values:
            formats = self._formats.get(len(values))
            if formats is None:
                formats = self._formats[len(values)] = [PyFormat.AUTO] * len(values)
            dumped = self.tx.dump_sequence(values, formats)
            types, formats = self.tx.types, self.tx.formats
        answer = Answer()
        self.sent += 1
        if prepare:
            self.pgconn.send_query_prepared(self._name(query, types), dumped, param_formats=formats)
        else:
            self.pgconn.send_query_params(query, dumped, param_types=types, param_formats=formats)
        self.expected.append(answer)
        return answer

    def _name(self, query: bytes, types: Any) -> bytes:
        """The prepared statement for *query* with these parameter types, sending its Parse
        (and closing the oldest one past `capacity`) if it is new."""
        key = (query, types)
        name = self.prepared.get(key)
        if name is not None:
            self.prepared.move_to_end(key)
            return name
        if len(self.prepared) >= self.capacity:
            _old, old_name = self.prepared.popitem(last=False)
            self.pgconn.send_close_prepared(old_name)
            self.expected.append(_IGNORED)
        name = b"_t%d" % next(_names)
        self.pgconn.send_prepare(name, query, param_types=types)
        self.prepared[key] = name
        self.expected.append(_Prepare(key, name))
        return name

    def _send_ignored(self, command: bytes) -> None:
        self.pgconn.send_query_params(command, None)
        self.expected.append(_IGNORED)

    # -- answers

    def sync(self) -> None:
        """Send everything queued and read every answer up to the sync point; raise the first
        error (the rest of the pipeline was skipped by the server)."""
        if not self.expected:
            return
        self.synced = self.sent
        self.pgconn.pipeline_sync()
        self.expected.append(_SYNC)
        error: psycopg.Error | None = None
        try:
            self._flush()
            while self.expected:
                error = self._read(self.expected.popleft()) or error
        except BaseException:
            self.expected.clear()  # the session is broken (lost connection): the pool drops it
            raise
        if error is not None:
            raise error

    def _read(self, expected: Any) -> psycopg.Error | None:
        """Read one statement's answer (or the sync point) and file it; its error, if any."""
        result = self._result()
        if expected is _SYNC:
            return None
        self._result()  # the end of this statement's results
        status = result.status
        if status == ExecStatus.FATAL_ERROR:
            self._forget(expected)
            return pg_errors.error_from_result(result, encoding=self.encoding)
        if status == ExecStatus.PIPELINE_ABORTED:
            self._forget(expected)
            return None
        if isinstance(expected, Answer):
            expected.result = result
            if status == ExecStatus.COMMAND_OK and result.command_status.startswith(_DDL):
                self.prepared.clear()
                self._stale = True
        return None

    def _forget(self, expected: Any) -> None:
        if isinstance(expected, _Prepare) and self.prepared.get(expected.key) == expected.name:
            del self.prepared[expected.key]

    def _result(self) -> Any:
        pgconn = self.pgconn
        while pgconn.is_busy():
            self._wait(select.POLLIN)
            pgconn.consume_input()
        return pgconn.get_result()

    def _flush(self) -> None:
        """Send the queued output; read input meanwhile, so a server whose output buffer is
        full can go on reading ours."""
        pgconn = self.pgconn
        while pgconn.flush():
            if self._wait(select.POLLIN | select.POLLOUT) & select.POLLIN:
                pgconn.consume_input()

    def _wait(self, events: int) -> int:
        fd = self.pgconn.socket
        self._poll.modify(fd, events)
        ready = 0
        while not ready:
            for _fd, happened in self._poll.poll():
                ready |= happened
        if ready & (select.POLLERR | select.POLLHUP | select.POLLNVAL) and not ready & select.POLLIN:
            raise psycopg.OperationalError("the connection to the database was lost")
        return ready

    # -- rows

    def rows(self, answer: Answer, as_dicts: bool, first: int = 0, last: int | None = None) -> list:
        """The rows of an answer from *first* to *last* (dicts, or tuples), loaded as psycopg
        would (the connection's loaders)."""
        result = answer.result
        if result is None or result.status != ExecStatus.TUPLES_OK:
            return []
        count = result.ntuples
        last = count if last is None else min(last, count)
        if first >= last:
            return []
        if not as_dicts:
            make_row: Any = tuple
        else:
            names = [result.fname(i).decode(self.encoding) for i in range(result.nfields)]
            make_row = lambda values: dict(zip(names, values, strict=False))  # noqa: E731
        with self.lock:  # the transformer is the session's: another thread may be sending
            self.tx.set_pgresult(result)
            return self.tx.load_rows(first, last, make_row)
