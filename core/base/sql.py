"""The SQLite dialect in one place (DESIGN §11, the storage seam).

Rules are written in standard SQL (`INSERT ... ON CONFLICT ... DO UPDATE/NOTHING`, no rowid
tricks). What only SQLite has sits here, behind small functions, so that a PostgreSQL
adapter for the hub can give its own answer without touching a rule:

- `generation` / `others_version`: has anyone written since I last looked? (`PRAGMA
  data_version`, plus this connection's own `total_changes`; on PostgreSQL the connection's
  `generation()`, see core/base/pg/connection.py)
- `integrity_problem`: what a constraint violation was about, from SQLite's message text
- `replace_rows`: the edge replica's delete-and-insert of a pulled row (edges stay on SQLite)
- `word_search`: one word of a substring search, through the FTS5 trigram index (on
  PostgreSQL: pg_trgm indexes on the same columns, made by core/base/pg/schema.py)
- `json_values`, `json_field`, `rows_by_json_keys`: JSON in SQL (`json_each`, `->>`); `listed`
  and `keyed_rows`: many values or keys as placeholders instead (PostgreSQL's planner counts them)
- `overwriting_deleted`, `drop_old_page_copies`: rewritten text leaves no copy behind (in a
  page's free space, in the write-ahead log), for secrets a row must stop holding
- `database_file`: the file behind a connection (`PRAGMA database_list`); `table_names`,
  `column_names`
- `joined`, `local_day` (+ `with_local_day`): a group's values as one text (`group_concat`;
  on PostgreSQL `string_agg` when the connection is given),
  and the box office's calendar day of a UTC timestamp (a Python function on the connection;
  PostgreSQL would say `AT TIME ZONE`), for the reports (`core/reports/`)
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from core.base.clock import LOCAL_TZ, parse_iso

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def others_version(db: sqlite3.Connection) -> int | str:
    """Changes whenever *another* connection commits (a second process, the sync loop)."""
    if not isinstance(db, sqlite3.Connection):  # PostgreSQL (core.base.pg): its own answer
        return db.generation()
    row = db.execute("PRAGMA data_version").fetchone()
    return row["data_version"] if isinstance(row, dict) else row[0]


def generation(db: sqlite3.Connection) -> tuple[int | str, int]:
    """Changes whenever anyone commits, this connection included."""
    if not isinstance(db, sqlite3.Connection):  # one snapshot answers for every connection
        return db.generation(), 0
    return others_version(db), db.total_changes


@dataclass(frozen=True)
class IntegrityProblem:
    kind: str  # "unique", "foreign_key", "not_null", "check" or "other"
    detail: str  # e.g. the columns of a unique constraint: "cards.number"


def integrity_problem(exc: sqlite3.IntegrityError) -> IntegrityProblem:
    text = str(exc)
    for marker, kind in (("UNIQUE constraint failed", "unique"), ("FOREIGN KEY constraint failed", "foreign_key"),
                         ("NOT NULL constraint failed", "not_null"), ("CHECK constraint failed", "check")):
        if text.startswith(marker):
            return IntegrityProblem(kind, text.removeprefix(marker).lstrip(": ").strip())
    return IntegrityProblem("other", text)


def _name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a plain SQL name: {name!r}")
    return name


def replace_rows(table: str, columns: list[str] | tuple[str, ...]) -> str:
    """Insert, or replace the row with the same key (a pulled row on an edge replica)."""
    names = [_name(c) for c in columns]
    return f"INSERT OR REPLACE INTO {_name(table)} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def is_postgresql(db: sqlite3.Connection) -> bool:
    """Whether *db* is the hub's PostgreSQL connection (core.base.pg) rather than sqlite3."""
    return not isinstance(db, sqlite3.Connection)


def word_search(db: sqlite3.Connection, index: str | None, columns: Sequence[str], word: str) -> tuple[str, list]:
    """A condition (and its parameters): *word* occurs in one of *columns*, ignoring case.

    SQLite: a word of three or more characters goes through the FTS5 trigram index *index*
    (which folds case for all letters); shorter words, and tables without an index, use LIKE
    (ASCII case only). PostgreSQL: `casefold(column) LIKE casefold(word)` over the same
    columns, which the pg_trgm GIN indexes on `casefold(column)` answer (core/base/pg/schema.py
    makes them for every FTS5 index), for words of any length."""
    if index and len(word) >= 3 and not is_postgresql(db):
        _name(index)
        return f"rowid IN (SELECT rowid FROM {index} WHERE {index} MATCH ?)", ['"' + word.replace('"', '""') + '"']
    like = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if index and is_postgresql(db):
        terms = [f"casefold({_name(c)}) LIKE casefold(?) ESCAPE '\\'" for c in columns]
    else:
        terms = [f"{_name(c)} LIKE ? ESCAPE '\\'" for c in columns]
    return "(" + " OR ".join(terms) + ")", [like] * len(columns)


def json_values(expression: str = "?") -> str:
    """A sub-select of the elements of a JSON array (a parameter or a column) as `value`."""
    if expression != "?":
        _name(expression)
    return f"SELECT value FROM json_each({expression})"


def listed(values: Sequence) -> tuple[str, list]:
    """An IN list of *values* as placeholders (`?, ?, ?`) and its parameters, e.g.
    `f"performance_id IN ({marks})"`. PostgreSQL's planner then knows how many values there are
    (`json_each`'s rows are a guess to it: 100), also in a generic plan, which a prepared
    statement keeps until an ANALYZE of its tables (core/base/pg/connection.py). The list is
    padded to a power of two by repeating the last value (no difference to IN), so a
    connection prepares few distinct statements. At least one value."""
    params = _padded(list(values))
    return ", ".join("?" * len(params)), params


def keyed_rows(rows: Sequence[Sequence], *columns: str) -> tuple[str, list]:
    """A derived table of *rows* (tuples of the values of *columns*) as placeholders, and its
    parameters: `(SELECT column1 AS a, column2 AS b FROM (VALUES (?, ?), ...) AS key_rows)`, to look
    up many keys in one statement (`FROM {table} k JOIN seats s ON s.id = k.seat_id ...`).
    Unlike a JSON array through `json_each`, PostgreSQL's planner knows the row count and joins
    each row through the tables' keys. Padded to a power of two rows like `listed`, by repeating
    the last row: the caller's answer must not mind a row twice (a dict by key, DISTINCT)."""
    names = [_name(c) for c in columns]
    padded = _padded([tuple(row) for row in rows])
    if any(len(row) != len(names) for row in padded):
        raise ValueError(f"every row has {len(names)} values")
    picked = ", ".join(f"column{i + 1} AS {name}" for i, name in enumerate(names))
    row = "(" + ", ".join("?" * len(names)) + ")"
    return (f"(SELECT {picked} FROM (VALUES {', '.join([row] * len(padded))}) AS key_rows)",
            [value for row_values in padded for value in row_values])


def _padded(values: list) -> list:
    if not values:
        raise ValueError("at least one value")
    return values + [values[-1]] * ((1 << (len(values) - 1).bit_length()) - len(values))


def json_field(column: str, field: str) -> str:
    """The text of one field of a JSON object stored in *column*."""
    return f"{_name(column)} ->> '$.{_name(field)}'"


def rows_by_json_keys(table: str, key_columns: tuple[str, ...], db: sqlite3.Connection | None = None) -> str:
    """The rows of *table* whose key is one of the JSON arrays in the next parameter (a JSON
    array of keys, each a JSON array of the key's columns), with the key as `_key`: one
    lookup by primary key per row, in one statement.

    On PostgreSQL (*db* says which) a key part taken from the JSON is text and `bigint = text`
    is no operator (node_certs.key_id: every feed pull failed), so the key columns are compared
    as text: on a text key the cast changes nothing and the primary key index still answers; an
    integer key is read by scanning (node_certs: one row per device)."""
    column = "CAST(t.{} AS TEXT)" if db is not None and is_postgresql(db) else "t.{}"
    on = " AND ".join(f"{column.format(_name(c))} = j.value ->> {i}" for i, c in enumerate(key_columns))
    return f"SELECT j.value AS _key, t.* FROM json_each(?) j JOIN {_name(table)} t ON {on}"


def table_names(db: sqlite3.Connection) -> list[str]:
    """The names of the database's tables (its own bookkeeping tables included), sorted."""
    if is_postgresql(db):
        rows = db.execute("SELECT table_name AS name FROM information_schema.tables "
                          "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1")
    else:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    return [row["name"] if isinstance(row, dict) else row[0] for row in rows]


def column_names(db: sqlite3.Connection, table: str) -> list[str]:
    """The names of *table*'s columns, in their order ([] for no such table)."""
    if is_postgresql(db):
        rows = db.execute("SELECT column_name AS name FROM information_schema.columns WHERE table_schema = "
                          "current_schema() AND table_name = ? ORDER BY ordinal_position", (table,))
    else:
        rows = db.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))
    return [row["name"] if isinstance(row, dict) else row[0] for row in rows]


def database_file(db: sqlite3.Connection) -> str:
    """The file of *db*'s main database, for a second connection to the same data (a worker
    thread reading a long report while the hub goes on)."""
    for row in db.execute("PRAGMA database_list").fetchall():
        name = row["name"] if isinstance(row, dict) else row[1]
        if name == "main":
            return row["file"] if isinstance(row, dict) else row[2]
    raise LookupError("the connection has no main database")


def joined(expression: str, separator: str = ", ", db: sqlite3.Connection | None = None) -> str:
    """The values of *expression* (text) in a group as one text, *separator* between them (a
    literal the calling code writes, never input). Given the connection *db*, PostgreSQL's own
    `string_agg` there: the schema's `group_concat` is a SQL-function aggregate that copies the
    text at every row, fine for a few values, slow for a house's seats."""
    quoted = separator.replace("'", "''")
    if db is not None and is_postgresql(db):
        return f"string_agg({expression}, '{quoted}')"
    return f"group_concat({expression}, '{quoted}')"


def local_day(column: str) -> str:
    """The local calendar day (`YYYY-MM-DD`) of the UTC timestamp in *column*; the connection
    needs `with_local_day` first."""
    return f"tessera_local_day({column})"


def _local_day(text: object) -> str | None:
    return parse_iso(text).astimezone(LOCAL_TZ).date().isoformat() if isinstance(text, str) and text else None


def with_local_day(db: sqlite3.Connection) -> None:
    """Teach *db* `local_day` (idempotent; a per-connection SQL function in SQLite)."""
    db.create_function("tessera_local_day", 1, _local_day, deterministic=True)


@contextlib.contextmanager
def overwriting_deleted(db: sqlite3.Connection) -> Iterator[None]:
    """Writes inside overwrite the old content of a rewritten or deleted row with zeros
    (`secure_delete`) instead of leaving it in the page's free space. PostgreSQL has no such
    switch: an old row version stays until VACUUM removes it; nothing is done there (the
    PRAGMA failed after the mail worker had delivered, so every mail went out again)."""
    if is_postgresql(db):
        yield
        return
    row = db.execute("PRAGMA secure_delete").fetchone()
    before = row["secure_delete"] if isinstance(row, dict) else row[0]
    db.execute("PRAGMA secure_delete = 1")
    try:
        yield
    finally:
        db.execute(f"PRAGMA secure_delete = {int(before)}")


def drop_old_page_copies(db: sqlite3.Connection) -> bool:
    """Copy the write-ahead log into the database file and empty it (it still holds pages as
    they were before a rewrite). Never waits: False when another connection was reading, and
    the log stays until a later call or SQLite's own checkpoint. On PostgreSQL: False, nothing
    to do here (its write-ahead log and old row versions are the server's to recycle)."""
    if is_postgresql(db):
        return False
    row = db.execute("PRAGMA busy_timeout").fetchone()
    timeout = row["timeout"] if isinstance(row, dict) else row[0]
    db.execute("PRAGMA busy_timeout = 0")
    try:
        done = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return not (done["busy"] if isinstance(done, dict) else done[0])
    except sqlite3.OperationalError:  # busy or locked
        return False
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(timeout)}")
