"""Copy the rows of a SQLite database into the same tables on PostgreSQL: the table work of
`tessera hub migrate-to-postgresql` (hub/services/migrate_postgresql.py), kept apart from
the hub's own rules (which folder, which file, hub.toml).

- Which tables: read from the SQLite file's `sqlite_master`, never from input, and every name
  must be a plain lower-case identifier. Left out: SQLite's own tables (`sqlite_sequence`,
  `sqlite_stat*`: SQLite's bookkeeping; `sqlite_sequence` is read for the id counters below)
  and every FTS5 index with its shadow tables (`customers_search*`): the PostgreSQL schema
  has no FTS (core/base/pg/schema.py), and an FTS index holds nothing but what its table holds.
- Each table goes with one `COPY ... FROM STDIN` (psycopg's `cursor.copy`), fed in batches
  from a SQLite cursor: memory stays flat for a hub of any size.
- Triggers: rows are copied as they are, so no trigger may act on them: the change feed's
  would add rows to `changes` (copied itself, as it is), a numbering trigger would renumber,
  a refusal trigger would refuse. Each table's own triggers are switched off with `ALTER TABLE
  ... DISABLE TRIGGER USER` while it is filled and on again before the commit. That needs only
  ownership of the table (the copy creates the tables in the same transaction), not superuser,
  as `session_replication_role = replica` would; and it leaves the foreign-key checks on, so
  the copy is checked by PostgreSQL too.
- Foreign keys: tables are filled parents first (`dependency_order`); a reference inside one
  table is checked at the end of its COPY statement, so its row order does not matter.
- Types: before a table is sent, SQLite is asked (`typeof()`, in C) whether a value has a
  storage class its PostgreSQL column cannot take losslessly (text in a bigint column, a blob in a
  text column, ...); such a value is refused by name instead of being cast or turned into text.
- Identity columns: after the rows, each identity column's sequence is set past the highest
  id copied, or past a *floor* the caller knows (an AUTOINCREMENT counter, an edge's cursor).
- Counts: each table's row count on PostgreSQL must equal SQLite's (`Counted`).

Everything runs inside the caller's transaction on the PostgreSQL side; the caller commits.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from core.migrations.feed_triggers import identifier

BATCH_ROWS = 5_000  # rows read from SQLite per fetch
PROGRESS_ROWS = 50_000  # a progress line every this many rows of one table
# the SQLite storage classes (typeof()) a value may have in a column of each PostgreSQL type
ACCEPTED = {
    "text": ("text", "null"),
    "bigint": ("integer", "null"),
    "integer": ("integer", "null"),
    "double precision": ("real", "integer", "null"),
    "bytea": ("blob", "null"),
}

Progress = Callable[[str], None]


class CopyError(RuntimeError):
    """The copy cannot go on; the message is one line naming the table (and column)."""


@dataclass(frozen=True, slots=True)
class Counted:
    """One table's rows: in SQLite, and on PostgreSQL after the copy."""

    table: str
    sqlite: int
    postgresql: int

    @property
    def equal(self) -> bool:
        return self.sqlite == self.postgresql


def source_tables(src: sqlite3.Connection) -> tuple[list[str], dict[str, str]]:
    """(tables to copy, {table left out: why}) from the SQLite file's own catalogue."""
    rows = src.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    virtual = [name for name, text in rows if (text or "").upper().startswith("CREATE VIRTUAL")]
    copied, skipped = [], {}
    for name, _ in rows:
        if name.startswith("sqlite_"):
            skipped[name] = "SQLite's own bookkeeping"
        elif any(name == v or name.startswith(v + "_") for v in virtual):
            skipped[name] = "full-text index (no FTS on PostgreSQL yet)"
        else:
            copied.append(identifier(name))
    return copied, skipped


def source_columns(src: sqlite3.Connection, table: str) -> list[str]:
    return [identifier(row[1]) for row in src.execute(f'PRAGMA table_info("{identifier(table)}")')]


def target_columns(dst: psycopg.Connection, table: str) -> dict[str, str]:
    """Column name -> PostgreSQL type of *table* in the current schema."""
    return dict(_rows(dst, "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                           "current_schema() AND table_name = %s ORDER BY ordinal_position", (table,)))


def _rows(dst: psycopg.Connection, query: str | sql.Composable, params: tuple = ()) -> list[tuple]:
    """The rows of *query* as tuples, whatever row factory the connection has."""
    return dst.cursor(row_factory=tuple_row).execute(query, params).fetchall()


def dependency_order(src: sqlite3.Connection, tables: list[str]) -> list[str]:
    """*tables* with every table after the tables it refers to (by SQLite's foreign keys); a
    cycle, which our schema does not have, keeps the rest in name order (deferrable keys are
    checked at the commit, others would fail loudly and roll the copy back)."""
    parents = {t: {row[2] for row in src.execute(f'PRAGMA foreign_key_list("{t}")')} & set(tables) - {t}
               for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = sorted(t for t in tables if t not in ordered and parents[t] <= set(ordered))
        if not ready:
            ordered.extend(sorted(t for t in tables if t not in ordered))
            break
        ordered.extend(ready)
    return ordered


def check_columns(src: sqlite3.Connection, dst: psycopg.Connection, tables: list[str]) -> dict[str, dict[str, str]]:
    """Each table's columns on both sides, which must be the same names (else the two schemas
    come from different migrations): column -> PostgreSQL type, per table."""
    found = {}
    for table in tables:
        mine, theirs = source_columns(src, table), target_columns(dst, table)
        if not theirs:
            raise CopyError(f"table {table} of the SQLite database does not exist on PostgreSQL")
        if set(mine) != set(theirs):
            differ = sorted(set(mine) ^ set(theirs))
            raise CopyError(f"table {table} has other columns on PostgreSQL ({', '.join(differ)} differ)")
        found[table] = {c: theirs[c] for c in mine}
    return found


def check_types(src: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """Refuse a value whose SQLite storage class its PostgreSQL column cannot take as it is."""
    for column, kind in columns.items():
        accepted = ACCEPTED.get(kind)
        if accepted is None:
            raise CopyError(f"{table}.{column}: no copy rule for the PostgreSQL type {kind}")
        classes = ", ".join(f"'{c}'" for c in accepted)
        bad = src.execute(f'SELECT typeof("{column}"), count(*) FROM "{table}" WHERE typeof("{column}") '
                          f"NOT IN ({classes}) GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
        if bad:
            raise CopyError(f"{table}.{column}: {bad[1]} row(s) hold a {bad[0]} value, which a {kind} column "
                            "cannot take; correct them in the SQLite hub first")


def copy_table(src: sqlite3.Connection, dst: psycopg.Connection, table: str, columns: list[str],
               total: int, progress: Progress) -> int:
    """All rows of *table* into PostgreSQL (its triggers off: `triggers_off`); the rows sent."""
    name = sql.Identifier(table)
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    listed = ", ".join(f'"{c}"' for c in columns)
    sent, started = 0, time.monotonic()
    reader = src.execute(f'SELECT {listed} FROM "{table}"')
    with dst.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(name, names)) as copy:
        while batch := reader.fetchmany(BATCH_ROWS):
            for row in batch:
                copy.write_row(row)
            before, sent = sent, sent + len(batch)
            if sent < total and sent // PROGRESS_ROWS > before // PROGRESS_ROWS:
                progress(f"{table}: {sent} of {total} rows")
    progress(f"{table}: {sent} rows copied ({time.monotonic() - started:.1f} s)")
    return sent


@contextlib.contextmanager
def triggers_off(dst: psycopg.Connection, tables: list[str]) -> Iterator[None]:
    """The tables' own triggers off for the block, and deferrable foreign keys checked at its
    end. All are switched off first and on again last: PostgreSQL refuses `ALTER TABLE` on a
    table with pending trigger events (a deferred key check of a row copied before)."""
    for table in tables:
        dst.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(sql.Identifier(table)))
    dst.execute("SET CONSTRAINTS ALL DEFERRED")
    yield
    try:
        dst.execute("SET CONSTRAINTS ALL IMMEDIATE")  # every deferred check runs now
    except psycopg.Error as exc:
        raise CopyError(f"PostgreSQL refused a reference between the copied rows: {one_line(exc)}") from exc
    for table in tables:
        dst.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(sql.Identifier(table)))


def sqlite_counters(src: sqlite3.Connection) -> dict[str, int]:
    """AUTOINCREMENT tables' counters (`sqlite_sequence`): ids never to be handed out again,
    even if their rows were deleted."""
    if not src.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        return {}
    return {name: seq for name, seq in src.execute("SELECT name, seq FROM sqlite_sequence")}


def set_sequences(dst: psycopg.Connection, tables: Iterable[str], floors: dict[str, int]) -> dict[str, int]:
    """Every identity (or serial) column of *tables* continues after its highest id and after
    the table's *floor*; returns table.column -> the last id given out (the next is one more)."""
    wanted = set(tables)
    rows = _rows(dst, "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
                      "current_schema() AND (is_identity = 'YES' OR column_default LIKE 'nextval(%%')")
    last = {}
    for table, column in rows:
        if table not in wanted:
            continue
        table, column = identifier(table), identifier(column)
        highest = _rows(dst, sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(column), sql.Identifier(table)))
        top = max(highest[0][0] or 0, floors.get(table, 0))
        # setval(.., n, true): the next id is n + 1; (.., 1, false): the next id is 1
        called = sql.SQL("true" if top > 0 else "false")  # a literal: the hub's connection sends bools as 0/1
        dst.execute(sql.SQL("SELECT setval(pg_get_serial_sequence(%s, %s)::regclass, %s, {})").format(called),
                    (table, column, max(top, 1)))
        last[f"{table}.{column}"] = top
    return last


def one_line(exc: BaseException) -> str:
    """A driver error as one line: its first line, and where it happened (e.g. `COPY x, line 3`)."""
    text = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
    context = getattr(getattr(exc, "diag", None), "context", None)
    return f"{text} ({context.strip().splitlines()[0]})" if context else text


def count_rows(dst: psycopg.Connection, table: str) -> int:
    return _rows(dst, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))[0][0]


def copy_all(src: sqlite3.Connection, dst: psycopg.Connection, progress: Progress,
             floors: dict[str, int] | None = None) -> tuple[list[Counted], dict[str, str]]:
    """Copy every table of *src* into *dst* (inside the caller's transaction; the caller
    commits): (each table's counts, compared; the tables left out and why). Raises CopyError
    when a count differs, so the caller rolls back."""
    tables, skipped = source_tables(src)
    columns = check_columns(src, dst, tables)
    totals = {t: src.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    with triggers_off(dst, tables):
        for table in dependency_order(src, tables):
            check_types(src, table, columns[table])
            try:
                copy_table(src, dst, table, list(columns[table]), totals[table], progress)
            except psycopg.Error as exc:
                raise CopyError(f"PostgreSQL refused table {table}: {one_line(exc)}") from exc
    counted = [Counted(t, totals[t], count_rows(dst, t)) for t in tables]
    wrong = [c for c in counted if not c.equal]
    if wrong:
        raise CopyError("row counts differ: " + ", ".join(f"{c.table} {c.sqlite} in SQLite, {c.postgresql} on "
                                                          "PostgreSQL" for c in wrong))
    merged = dict(sqlite_counters(src))
    for table, floor in (floors or {}).items():
        merged[table] = max(merged.get(table, 0), floor)
    set_sequences(dst, tables, merged)
    return counted, skipped
