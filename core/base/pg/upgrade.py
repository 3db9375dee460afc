"""Upgrading a PostgreSQL hub made from older migrations to the ones this Tessera ships.

A SQLite hub runs each new migration when it is opened (`core.base.storage.apply_migrations`).
A PostgreSQL hub does the same in `core.base.pg.install.apply`, without a PostgreSQL twin of
any migration: the database records the SQLite schema it stands for (`tessera_schema`: its
objects, their digest and the migration level), and `run` replays each pending migration
statement by statement on two databases at once:

- a *mirror*: an in-memory SQLite database with exactly that schema (the migrations up to
  the level, and the change-feed triggers the database has), no rows. SQLite runs the
  statement as it would on a SQLite hub, and `sqlite_master` before and after says what it
  did to the schema: objects created, dropped, or whose CREATE text changed;
- the PostgreSQL database, which gets the same change, translated with the constructs of
  `core.base.pg.schema` (and the rows it holds):
  - `CREATE TABLE/INDEX/TRIGGER`: the new object, translated from its text in `sqlite_master`;
  - `DROP TABLE/INDEX/TRIGGER`: dropped (a trigger with its function);
  - `ALTER TABLE ... ADD COLUMN` (existing rows get the default, as on SQLite), `DROP COLUMN`,
    `RENAME COLUMN`, `RENAME TO`: the same ALTER on PostgreSQL;
  - `INSERT`, `UPDATE`, `DELETE` (a rebuild's copy, a backfill): run on PostgreSQL as written
    (`json_array`, `INSERT OR IGNORE` translated), so their effect on the rows is the
    migration's own; the triggers they fire are the ones SQLite fires at that point;
  - a trigger or index whose text changed (SQLite rewrites them when a table or column is
    renamed): made again from its new text; a table whose only change is a `REFERENCES` that
    SQLite rewrote keeps its rows (its foreign keys are added again).
  Anything else (a `PRAGMA`, a view, `INSERT OR REPLACE`, a new FTS index, a statement
  PostgreSQL cannot parse or whose function it lacks) raises `Untranslatable` naming the
  migration; since everything runs in one transaction, nothing has changed.

SQLite's table rebuild (create `x_new`, copy, drop `x`, rename `x_new` to `x`) thus runs as
it is; afterwards each renamed table is made once more from its final text (moved aside into
a scratch schema, created, rows copied, indexes and triggers made): PostgreSQL named its
constraints and identity sequence after `x_new`, a new hub has them named after `x`.

Foreign keys: SQLite runs migrations with them off and checks every reference at the end.
Here a table's foreign keys, and those pointing at it, are dropped before it is dropped or
moved; at the end every table that lost or gained any gets all of its foreign keys again from
its final text, in the order a new hub adds them (so also the same names), and PostgreSQL
checks every row while adding them: a broken reference fails the upgrade.

After the migrations the change-feed triggers are made what `core.migrations.feed_triggers`
generates (`feed_triggers.refresh` on the mirror: created, replaced, dropped, and a table new
to the feed has each row recorded once, as on SQLite), identity sequences continue after the
highest id (and after the counter of a table dropped in a rebuild), and the mirror's schema
must now equal that of a new SQLite hub, object for object, or the upgrade fails. Then
`tessera_schema` records the new level.

Concurrency: `apply` holds `tessera_schema` locked for the whole transaction, and `run`
takes the hub's write lock first: of several processes opening the database at once one
upgrades, the others wait and then find the new digest; hub processes already running finish
their writes before the upgrade starts and wait for it to commit.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from core.base import storage
from core.base.pg import schema
from core.base.pg.connection import WRITER_LOCK
from core.base.pg.tokens import Token, significant, tokens, unquoted
from core.migrations import feed_triggers

log = logging.getLogger("tessera.pg.upgrade")
SCRATCH = "tessera_upgrade"  # the schema a table is moved into while it is made again

Untranslatable = schema.Untranslatable


@dataclass(frozen=True)
class Obj:
    type: str
    table: str
    sql: str


@dataclass
class _State:
    references: set[str] = field(default_factory=set)  # tables whose foreign keys are added again
    renamed: set[str] = field(default_factory=set)  # tables to make again under their own name
    floors: dict[str, int] = field(default_factory=dict)  # identity counters of dropped tables


def statements(text: str) -> list[str]:
    """The statements of a migration, each as written (a trigger's body kept whole)."""
    found, current = [], ""
    for token in tokens(text):
        current += token.text
        if token.text == ";" and sqlite3.complete_statement(current):
            if [t for t in significant(current) if t.text != ";"]:
                found.append(current)
            current = ""
    if [t for t in significant(current) if t.text != ";"]:
        found.append(current + ";")
    return found


def snapshot(db: sqlite3.Connection) -> dict[str, Obj]:
    """The mirror's objects by name: SQLite's own and the FTS5 index's (PostgreSQL has none) left out."""
    rows = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    virtual = [r["name"] for r in rows if r["type"] == "table" and r["sql"].upper().startswith("CREATE VIRTUAL")]
    return {r["name"]: Obj(r["type"], r["tbl_name"], r["sql"]) for r in rows
            if not r["name"].startswith("sqlite_") and not any(r["name"] == v or r["name"].startswith(v + "_")
                                                                for v in virtual)}


def stored_objects(row: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The SQLite objects the database was made from: as recorded, or (a database made before
    they were recorded) those of its level, if they give its digest."""
    objects = ([tuple(o) for o in json.loads(row["sqlite_schema"])] if row["sqlite_schema"]
               else schema.sqlite_schema(row["version"]))
    if schema.digest_of(objects) != row["digest"]:  # type: ignore[arg-type]
        raise RuntimeError(f"this PostgreSQL database was made from other migrations than 1 to {row['version']} of "
                           "this Tessera (its schema digest differs); it cannot be upgraded (docs/postgresql.md)")
    return objects  # type: ignore[return-value]


def mirror_of(objects: list[tuple[str, str, str]], level: int) -> sqlite3.Connection:
    """An in-memory SQLite database with exactly *objects*: the migrations up to *level*, then
    the change-feed triggers as recorded."""
    db = schema.sqlite_at(level)
    wanted = {name: sql for kind, name, sql in objects if kind == "trigger" and name.startswith(feed_triggers.PREFIX)}
    with storage.transaction(db):
        for name, text in list(snapshot(db).items()):
            if text.type == "trigger" and name.startswith(feed_triggers.PREFIX) and wanted.get(name) != text.sql:
                db.execute(f'DROP TRIGGER "{name}"')
        have = snapshot(db)
        for name, text in wanted.items():
            if name not in have:
                db.execute(text)
    if _by_name(schema.objects_of(db)) != _by_name(objects):
        db.close()
        raise RuntimeError(f"the schema recorded in this PostgreSQL database is not what migrations 1 to {level} "
                           "make; it cannot be upgraded (docs/postgresql.md)")
    return db


def _by_name(objects: list[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    return {name: (kind, text) for kind, name, text in objects}


def run(db: psycopg.Connection, row: dict[str, Any], level: int) -> None:
    """Upgrade the database (inside the caller's transaction, `tessera_schema` locked) from the
    level *row* records to *level*; the caller commits."""
    available = storage.migrations()
    version = row["version"]
    if version > level:
        raise RuntimeError(f"this PostgreSQL database was made from migrations up to {version}, newer than this "
                           f"Tessera (knows {level}); upgrade Tessera before opening it")
    target = schema.at_level(level)
    mirror = mirror_of(stored_objects(row), version)
    try:
        db.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
        _functions(db)
        state = _State()
        for _number, name, text in available[version:level]:
            _migration(db, mirror, state, name, text)
        _remake_renamed(db, mirror, state)
        _feed(db, mirror)
        _foreign_keys(db, mirror, state)
        _trigram_indexes(db, target)
        _sequences(db, state)
        db.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE")
        if _by_name(schema.objects_of(mirror)) != _by_name(target.objects):
            raise RuntimeError(f"upgrading from migration {version} to {level} did not give the schema of a new hub; "
                               "nothing was changed (a bug: report it)")
    finally:
        mirror.close()
    db.execute("UPDATE tessera_schema SET digest = %s, version = %s, sqlite_schema = %s",
               (target.digest, level, json.dumps(target.objects)))
    log.info("PostgreSQL hub schema upgraded from migration %s to %s", version, level)


def _functions(db: psycopg.Connection) -> None:
    """The schema's SQL functions as this Tessera defines them (`schema.FUNCTIONS`): a database
    made by an older one keeps its definitions otherwise (json_each was STRICT until
    3 December, which kept PostgreSQL from inlining it). Operators, the aggregate and the
    collation are made once and never changed."""
    for statement in schema.FUNCTIONS:
        if statement.startswith("CREATE OR REPLACE FUNCTION"):
            db.execute(statement)


def _migration(db: psycopg.Connection, mirror: sqlite3.Connection, state: _State, name: str, text: str) -> None:
    mirror.execute("PRAGMA foreign_keys = OFF")  # as storage._migrate: a table may be rebuilt
    mirror.execute("BEGIN")
    try:
        for statement in statements(text):
            shown = " ".join(t.text for t in significant(statement))[:120]
            try:
                _statement(db, mirror, state, statement)
            except Untranslatable as exc:
                raise Untranslatable(f"migration {name}: {exc}") from None
            except psycopg.Error as exc:
                untranslatable = (exc.sqlstate or "")[:2] in ("42", "0A")  # syntax, unknown name, unsupported
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                verb = "cannot run" if untranslatable else "refused"
                message = f"migration {name}: PostgreSQL {verb} `{shown}`: {first}"
                raise (Untranslatable(message) if untranslatable else RuntimeError(message)) from exc
        mirror.execute("COMMIT")
    finally:
        if mirror.in_transaction:
            mirror.execute("ROLLBACK")
        mirror.execute("PRAGMA foreign_keys = ON")


def _kind(words: list[Token]) -> str:
    u = [t.upper for t in words[:6]] + [""] * 6
    if u[0] == "CREATE" and (u[1] in ("TABLE", "INDEX", "TRIGGER") or u[1:3] == ["UNIQUE", "INDEX"]):
        return "create"
    if u[0] == "DROP" and u[1] in ("TABLE", "INDEX", "TRIGGER"):
        return "drop"
    if u[0] == "ALTER" and u[1] == "TABLE":
        if u[3] == "RENAME":
            return "rename_table" if u[4] == "TO" else "rename_column"
        if u[3] in ("ADD", "DROP"):
            return f"{u[3].lower()}_column"
    if u[0] in ("UPDATE", "DELETE") or (u[0] == "INSERT" and u[1:3] != ["OR", "REPLACE"]):
        return "data"
    raise Untranslatable(f"no PostgreSQL translation of `{' '.join(t.text for t in words)[:80]}`")


def _statement(db: psycopg.Connection, mirror: sqlite3.Connection, state: _State, statement: str) -> None:
    words = significant(statement)
    while words and words[-1].text == ";":
        words.pop()
    kind = _kind(words)
    before = snapshot(mirror)
    mirror.execute(statement)
    after = snapshot(mirror)
    if kind == "data":
        if before != after:
            raise Untranslatable(f"`{' '.join(t.text for t in words)[:80]}` changes the schema")
        db.execute(schema._statement(words))
        return
    added = [n for n in after if n not in before]
    removed = [n for n in before if n not in after]
    changed = [n for n in after if n in before and after[n] != before[n]]
    for name in added + removed + changed:
        if (after.get(name) or before[name]).type not in ("table", "index", "trigger"):
            raise Untranslatable(f"{(after.get(name) or before[name]).type} {name}")
    tables_added = [n for n in added if after[n].type == "table"]
    tables_removed = [n for n in removed if before[n].type == "table"]
    if kind == "rename_table":
        if len(tables_added) != 1 or len(tables_removed) != 1:
            raise Untranslatable("a rename that does not rename one table")
        old, new = tables_removed[0], tables_added[0]
        db.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new)))
        state.renamed.discard(old)
        state.renamed.add(new)
        state.references.add(new)
        tables_added, tables_removed = [], []
    for table in tables_removed:
        _drop_foreign_keys(db, state, table)
        state.floors.update(_counters(db, table))
        db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))
    for table in tables_added:
        db.execute(schema._table(after[table].sql)[0])
        state.references.add(table)
    for table in (n for n in changed if after[n].type == "table"):
        _changed_table(db, state, kind, words, table, before[table].sql, after[table].sql)
    _indexes_and_triggers(db, before, after, added, removed, changed)


def _changed_table(db: psycopg.Connection, state: _State, kind: str, words: list[Token], table: str,
                   before: str, after: str) -> None:
    target = unquoted(words[2]) if kind.endswith("_column") else None
    if table == target and kind == "add_column":
        at = 5 if words[4].upper == "COLUMN" else 4
        column, reference = schema._column(table, words[at:])
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        if reference:
            state.references.add(table)
    elif table == target and kind == "drop_column":
        at = 5 if words[4].upper == "COLUMN" else 4
        db.execute(sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(sql.Identifier(table),
                                                                   sql.Identifier(unquoted(words[at]))))
    elif table == target and kind == "rename_column":
        at = 5 if words[4].upper == "COLUMN" else 4
        db.execute(sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
            sql.Identifier(table), sql.Identifier(unquoted(words[at])), sql.Identifier(unquoted(words[at + 2]))))
        state.renamed.add(table)  # constraints named after the old column: made again
    elif schema._table(before)[0] == schema._table(after)[0]:
        state.references.add(table)  # SQLite rewrote a REFERENCES (a renamed table): same columns
    else:
        raise Untranslatable(f"table {table} changed by `{' '.join(t.text for t in words)[:80]}`")


def _indexes_and_triggers(db: psycopg.Connection, before: dict[str, Obj], after: dict[str, Obj],
                          added: list[str], removed: list[str], changed: list[str]) -> None:
    for name in removed + changed:
        if before[name].type == "index":
            db.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
        elif before[name].type == "trigger":  # the function, and with it the trigger (if its table is there)
            db.execute(sql.SQL("DROP FUNCTION IF EXISTS {}() CASCADE").format(sql.Identifier(f"trigger_{name}")))
    for name in added + changed:
        _create(db, after[name])


def _create(db: psycopg.Connection, obj: Obj) -> None:
    if obj.type == "index":
        db.execute(schema._index(obj.sql))
    elif obj.type == "trigger":
        for statement in schema._trigger(obj.sql):
            db.execute(statement)


def _drop_foreign_keys(db: psycopg.Connection, state: _State, table: str) -> None:
    """Drop the foreign keys of *table* and those that point at it (added again at the end)."""
    rows = db.execute("SELECT conrelid::regclass::text AS owner, conname FROM pg_constraint WHERE contype = 'f' "
                      "AND (conrelid = %s::regclass OR confrelid = %s::regclass)", (table, table)).fetchall()
    for row in rows:
        owner = row["owner"].split(".")[-1].strip('"')
        db.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(owner),
                                                                      sql.Identifier(row["conname"])))
        state.references.add(owner)


def _counters(db: psycopg.Connection, table: str) -> dict[str, int]:
    """The last id handed out by *table*'s identity column (none: {})."""
    rows = db.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attidentity IN ('a', 'd')",
                      (table,)).fetchall()
    found = {}
    for row in rows:
        seq = db.execute("SELECT pg_get_serial_sequence(%s, %s) AS s", (table, row["attname"])).fetchone()["s"]
        value = db.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(seq))).fetchone()
        if value["is_called"]:
            found[table] = max(found.get(table, 0), value["last_value"])
    return found


def _columns(db: psycopg.Connection, table: str) -> list[str]:
    return [r["attname"] for r in db.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum", (table,))]


def _remake_renamed(db: psycopg.Connection, mirror: sqlite3.Connection, state: _State) -> None:
    """Each renamed table made again from its final text, rows kept (module docstring)."""
    final = snapshot(mirror)
    for table in sorted(t for t in state.renamed if t in final):
        _drop_foreign_keys(db, state, table)
        floor = _counters(db, table).get(table, 0)
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {SCRATCH}")
        db.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(sql.Identifier(table), sql.Identifier(SCRATCH)))
        db.execute(schema._table(final[table].sql)[0])
        columns = sql.SQL(", ").join(map(sql.Identifier, _columns(db, table)))
        db.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
            sql.Identifier(table), columns, columns, sql.Identifier(SCRATCH, table)))
        db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(SCRATCH, table)))  # its indexes and triggers
        state.floors[table] = max(state.floors.get(table, 0), floor)
        state.references.add(table)
        for name, obj in final.items():
            if obj.table == table and obj.type in ("index", "trigger"):
                if obj.type == "trigger":
                    db.execute(sql.SQL("DROP FUNCTION IF EXISTS {}() CASCADE").format(
                        sql.Identifier(f"trigger_{name}")))
                _create(db, obj)


def _feed(db: psycopg.Connection, mirror: sqlite3.Connection) -> None:
    """The change-feed triggers made what feed_triggers generates, as on SQLite after migrating."""
    replicated = schema.replicated_in(mirror)
    todo = feed_triggers.plan(mirror, replicated)
    if not todo:
        return
    before = snapshot(mirror)
    with storage.transaction(mirror):
        feed_triggers.refresh(mirror, replicated)
    after = snapshot(mirror)
    _indexes_and_triggers(db, before, after, [n for n in after if n not in before],
                          [n for n in before if n not in after],
                          [n for n in after if n in before and after[n] != before[n]])
    for table in todo.backfill:  # a table new to the feed: each row it holds is one change
        db.execute(schema._statement(significant(feed_triggers.backfill_sql(table, replicated[table]))))


def _foreign_keys(db: psycopg.Connection, mirror: sqlite3.Connection, state: _State) -> None:
    """Every table that lost or gained a foreign key gets all of its own again, from its final
    text, in a new hub's order; PostgreSQL checks every row as each is added."""
    for name, obj in snapshot(mirror).items():
        if obj.type != "table" or name not in state.references:
            continue
        _drop_own_foreign_keys(db, name)
        for statement in schema._table(obj.sql)[1]:
            try:
                db.execute(statement)
            except psycopg.errors.ForeignKeyViolation as exc:
                raise RuntimeError(f"the upgrade breaks a reference of table {name}: "
                                   f"{str(exc).strip().splitlines()[0]}") from exc


def _drop_own_foreign_keys(db: psycopg.Connection, table: str) -> None:
    for row in db.execute("SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass",
                          (table,)).fetchall():
        db.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table),
                                                                      sql.Identifier(row["conname"])))


def _trigram_indexes(db: psycopg.Connection, target: schema.Schema) -> None:
    """The customer search's indexes, again if their table was made again."""
    for statement in target.statements:
        if statement.startswith("CREATE INDEX") and " USING gin (casefold(" in statement:
            db.execute(statement.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))


def _sequences(db: psycopg.Connection, state: _State) -> None:
    """Every identity column continues after its highest id, its own counter and the counter of
    a table of the same name dropped in a rebuild: never lowered, never an id twice."""
    rows = db.execute("SELECT c.relname AS t, a.attname AS c FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                      "WHERE c.relnamespace = 'public'::regnamespace AND a.attidentity IN ('a', 'd')").fetchall()
    for row in rows:
        table, column = row["t"], row["c"]
        seq = db.execute("SELECT pg_get_serial_sequence(%s, %s) AS s", (table, column)).fetchone()["s"]
        now = db.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(seq))).fetchone()
        highest = db.execute(sql.SQL("SELECT max({}) AS m FROM {}").format(
            sql.Identifier(column), sql.Identifier(table))).fetchone()["m"] or 0
        top = max(highest, state.floors.get(table, 0))
        if top > (now["last_value"] if now["is_called"] else 0):
            db.execute("SELECT setval(%s::regclass, %s, true)", (seq, top))
