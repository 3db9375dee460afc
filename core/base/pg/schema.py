"""The hub's PostgreSQL schema, generated from the SQLite migrations.

One source for both schemas: the numbered migrations in `core/migrations/` (and the
change-feed triggers of `feed_triggers.py`). A new PostgreSQL hub does not replay them one
by one (SQLite's table rebuilds — create `x_new`, copy, drop, rename — and `ALTER TABLE ADD
COLUMN` history would all need a PostgreSQL twin); instead the migrations are applied to a
fresh in-memory SQLite database, and its final schema (`sqlite_master`, which holds each
object's CREATE statement as it stands after every rebuild) is translated. That is equally
correct for a new database, and it covers a new migration without any change here, as
long as it uses only the constructs below; anything else fails loudly (`Untranslatable`).
A database made from older migrations is upgraded when it is opened (`core.base.pg.install.apply`, then
`core.base.pg.upgrade`): each pending migration runs statement by statement on an in-memory
SQLite copy of the database's schema and on PostgreSQL, translated as below; the database
records the SQLite schema it stands for (`tessera_schema`).

What is translated, exactly the constructs our migrations use:
- types TEXT, INTEGER, REAL, BLOB -> text, bigint, double precision, bytea; an `INTEGER
  PRIMARY KEY` (SQLite's rowid alias, numbered when inserted without a value) becomes an
  identity column; `WITHOUT ROWID` is dropped (every PostgreSQL table is organised so).
- DEFAULTs, CHECKs, UNIQUE/PRIMARY KEY and partial or expression indexes as written (the
  same syntax); `COLLATE NOCASE` keeps its name: `nocase` is made as an ICU collation that
  ignores case (for all letters; SQLite's NOCASE folds ASCII only).
- foreign keys (with ON DELETE and DEFERRABLE) are added after all tables, so a table may
  name one created after it.
- triggers become one plpgsql function each: the WHEN condition (PostgreSQL forbids
  sub-selects there) becomes an IF, `SELECT RAISE(ABORT, 'text')` raises SQLSTATE 23000
  with that text (an IntegrityError, as on SQLite), `INSERT OR IGNORE` becomes `ON
  CONFLICT DO NOTHING`, `json_array(a, b)` builds the same text SQLite does (`["a",1]`, no
  spaces: nodes compare keys as text).
- the change feed: every trigger that writes to `changes` first takes the hub's write lock
  (`connection.WRITER_LOCK`, held to the commit). `changes.seq` comes from a sequence, and
  sequences hand out numbers in call order but commit in any order; under the lock, the
  transaction that takes a number commits before the next one can take one, so a pull that
  has seen `seq = n` committed has seen every smaller number that will ever commit, and
  never skips a row (gaps are rolled-back numbers and stay empty). The seats' sale log
  (`seat_sales.pos`, read by `core.subscriptions.seat_loader` as "every row after n") is
  numbered the same way, and its triggers take the lock too.
- an FTS5 trigram index (`customers_search`, its shadow tables and triggers) becomes one
  pg_trgm GIN index per column on its content table, over `casefold(column)`: the search
  (`core.base.sql.word_search`) asks `casefold(column) LIKE casefold('%word%')` there, a
  case-insensitive substring test as FTS5's `tokenize='trigram'` makes it. pg_trgm ships in
  Debian's postgresql package and is a trusted extension (the database owner may create it).
- `casefold(x)` and `tessera_local_day(ts)`, Python functions on a SQLite connection, are
  SQL functions here, and so are `strftime` for the codes %Y %m %d %H %M %S %f (UTC) and
  `instr`.
- the JSON the seam (`core.base.sql`) writes for SQLite works here as it stands:
  `json_each(x)` (its `value` column, scalars as text), `x ->> '$.field'` and `x ->> n` on
  JSON in a text column (operators on text; PostgreSQL's own `->>` is for json/jsonb), and
  `group_concat(x, separator)`. A value from them is text: comparing it with an integer
  column needs a cast on PostgreSQL (`rows_by_json_keys` on integer keys does not work yet).
"""

from __future__ import annotations

import functools
import hashlib
import re
import sqlite3
from dataclasses import dataclass, field

from core.base import storage
from core.base.clock import LOCAL_TZ
from core.base.pg.connection import WRITER_LOCK
from core.base.pg.tokens import Token, significant, unquoted
from core.migrations import feed_triggers

TYPES = {"TEXT": "text", "INTEGER": "bigint", "REAL": "double precision", "BLOB": "bytea"}
_COLUMN_KEYWORDS = {"CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT", "COLLATE", "REFERENCES",
                    "GENERATED", "AS"}
_TABLE_CONSTRAINTS = {"PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "CONSTRAINT"}
_RAISE = re.compile(r"^SELECT\s+RAISE\s*\(\s*ABORT\s*,\s*('(?:[^']|'')*')\s*\)$", re.IGNORECASE | re.DOTALL)
_INSERT_OR_IGNORE = re.compile(r"^INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_FTS5 = re.compile(r"^CREATE\s+VIRTUAL\s+TABLE\s+(?P<name>\w+)\s+USING\s+fts5\s*\((?P<args>.*)\)\s*;?\s*$",
                   re.IGNORECASE | re.DOTALL)

FUNCTIONS = (
    "CREATE COLLATION IF NOT EXISTS nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
    # Python's str.casefold (the SQLite connection's casefold): lower case for all letters, and
    # the full foldings lower() leaves out that matter here (ß -> ss, final sigma, ligatures)
    "CREATE OR REPLACE FUNCTION casefold(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT "
    "RETURN replace(replace(replace(replace(replace(replace(replace(lower($1 COLLATE \"und-x-icu\"), "
    "'ß', 'ss'), 'ς', 'σ'), 'ﬀ', 'ff'), 'ﬁ', 'fi'), 'ﬂ', 'fl'), 'ﬃ', 'ffi'), 'ﬄ', 'ffl')",
    "CREATE OR REPLACE FUNCTION tessera_local_day(text) RETURNS text LANGUAGE sql STABLE STRICT "
    f"RETURN CASE WHEN $1 = '' THEN NULL ELSE (($1::timestamptz) AT TIME ZONE '{LOCAL_TZ.key}')::date::text END",
    # SQLite's strftime for the codes triggers use, in UTC; 'now' is the statement's time
    "CREATE OR REPLACE FUNCTION strftime(format text, at text) RETURNS text LANGUAGE sql STABLE STRICT RETURN "
    "(SELECT replace(replace(replace(replace(replace(replace(replace(format, '%f', to_char(t, 'SS.MS')), "
    "'%Y', to_char(t, 'YYYY')), '%m', to_char(t, 'MM')), '%d', to_char(t, 'DD')), '%H', to_char(t, 'HH24')), "
    "'%M', to_char(t, 'MI')), '%S', to_char(t, 'SS')) "
    "FROM (SELECT CASE WHEN at = 'now' THEN statement_timestamp() ELSE at::timestamptz END "
    "AT TIME ZONE 'UTC' AS t) AS moment)",
    # SQLite's JSON as the seam (core.base.sql) writes it: `SELECT value FROM json_each(x)`
    # (scalars as text, arrays and objects as JSON text) and `x ->> '$.field'` / `x ->> 0`
    # on JSON kept in a text column
    # (json_array_elements_text gives exactly that; not STRICT, so that the planner inlines it
    # into the statement: a STRICT set-returning SQL function is run as a separate function
    # call per statement, ~0.6 ms of the database's CPU per rush order)
    "CREATE OR REPLACE FUNCTION json_each(doc text) RETURNS TABLE (value text) LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT e FROM json_array_elements_text(doc::json) AS e $$",
    "CREATE OR REPLACE FUNCTION tessera_json_field(doc text, path text) RETURNS text LANGUAGE sql IMMUTABLE STRICT "
    "RETURN doc::json ->> CASE WHEN path LIKE '$.%' THEN substr(path, 3) ELSE path END",
    "CREATE OR REPLACE FUNCTION tessera_json_item(doc text, item integer) RETURNS text LANGUAGE sql "
    "IMMUTABLE STRICT RETURN doc::json ->> item",
    "CREATE OPERATOR ->> (LEFTARG = text, RIGHTARG = text, FUNCTION = tessera_json_field)",
    "CREATE OPERATOR ->> (LEFTARG = text, RIGHTARG = integer, FUNCTION = tessera_json_item)",
    # group_concat(x, separator): `core.base.sql.joined`
    "CREATE OR REPLACE FUNCTION tessera_concat(state text, value text, separator text) RETURNS text "
    "LANGUAGE sql IMMUTABLE RETURN CASE WHEN value IS NULL THEN state WHEN state IS NULL THEN value "
    "ELSE state || separator || value END",
    "CREATE AGGREGATE group_concat(text, text) (SFUNC = tessera_concat, STYPE = text)",
    # SQLite's instr(haystack, needle): where needle starts in haystack, 0 if nowhere
    "CREATE OR REPLACE FUNCTION instr(haystack text, needle text) RETURNS integer LANGUAGE sql IMMUTABLE STRICT "
    "RETURN strpos(haystack, needle)",
)


class Untranslatable(ValueError):
    """A construct in the SQLite schema this translator does not know (add it here)."""


@dataclass
class Schema:
    """The PostgreSQL statements, in order, the SQLite objects (type, name, sql) they were
    made from and the digest of those."""

    statements: list[str] = field(default_factory=list)
    foreign_keys: list[str] = field(default_factory=list)
    digest: str = ""
    objects: list[tuple[str, str, str]] = field(default_factory=list)

    def all(self) -> list[str]:
        return [*FUNCTIONS, *self.statements, *self.foreign_keys]


def objects_of(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """(type, name, sql) of every object of the SQLite database *db*, in creation order."""
    return [(r["type"], r["name"], r["sql"]) for r in db.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")]


def digest_of(objects: list[tuple[str, str, str]]) -> str:
    return hashlib.sha256("\n".join(sql for _, _, sql in objects).encode()).hexdigest()


def replicated_in(db: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """REPLICATED, without the tables *db* does not have yet (a database at an older level)."""
    have = {r["name"] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {table: key for table, key in feed_triggers.REPLICATED.items() if table in have}


def migrate_sqlite(db: sqlite3.Connection, level: int | None = None) -> sqlite3.Connection:
    """Bring the SQLite database *db* (opened with `migrate=False`) to migration *level*
    (default: all) as `storage.apply_migrations` does, with the change-feed triggers of the
    tables it has by then."""
    level = len(storage.migrations()) if level is None else level
    for number, name, sql in storage.migrations()[storage.schema_version(db):level]:
        storage._migrate(db, number, name, sql)
    replicated = replicated_in(db)
    has_feed = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'changes'").fetchone()
    if has_feed and feed_triggers.plan(db, replicated):  # the feed exists from migration 0004 on
        with storage.transaction(db):
            feed_triggers.refresh(db, replicated)
    return db


def sqlite_at(level: int | None = None) -> sqlite3.Connection:
    """A new in-memory SQLite database after the migrations up to *level* (default: all)."""
    db = storage.connect(":memory:", migrate=False)
    db.deserialize(_image(tuple(storage.migrations()[:level])))
    return db


@functools.lru_cache(maxsize=8)
def _image(migrations: tuple[tuple[int, str, str], ...]) -> bytes:
    """The SQLite database file after *migrations* (made once per process: an upgrade and the
    tests ask for the same levels again)."""
    db = migrate_sqlite(storage.connect(":memory:", migrate=False), len(migrations))
    try:
        return db.serialize()
    finally:
        db.close()


def sqlite_schema(level: int | None = None) -> list[tuple[str, str, str]]:
    """(type, name, sql) of every object of a fresh SQLite database after the migrations up
    to *level* (default: all)."""
    db = sqlite_at(level)
    try:
        return objects_of(db)
    finally:
        db.close()


def generate(objects: list[tuple[str, str, str]] | None = None) -> Schema:
    """Translate *objects* (default: `sqlite_schema()`) into PostgreSQL statements."""
    objects = sqlite_schema() if objects is None else objects
    schema = Schema(digest=digest_of(objects), objects=list(objects))
    virtual = [name for kind, name, sql in objects if kind == "table" and sql.upper().startswith("CREATE VIRTUAL")]
    for kind, name, sql in objects:
        if name.startswith("sqlite_") or any(name == v or name.startswith(v + "_") for v in virtual):
            continue  # SQLite's own, or the FTS5 index, its shadow tables and triggers
        if kind == "table":
            statement, foreign = _table(sql)
            schema.statements.append(statement)
            schema.foreign_keys.extend(foreign)
        elif kind == "index":
            schema.statements.append(_index(sql))
        elif kind == "trigger":
            schema.statements.extend(_trigger(sql))
        else:
            raise Untranslatable(f"{kind} {name}")
    for _kind, name, sql in objects:  # after every table: the content table may be rebuilt later
        if name in virtual:
            schema.statements.extend(_trigram_indexes(sql))
    return schema


def _trigram_indexes(sql: str) -> list[str]:
    """pg_trgm GIN indexes that answer what an FTS5 trigram index (external content) answers."""
    match = _FTS5.match(sql)
    if not match:
        raise Untranslatable(sql)
    columns, options = [], {}
    for part in (p.strip() for p in match["args"].split(",")):
        key, equals, value = part.partition("=")
        if equals:
            options[key.strip().lower()] = value.strip().strip("'").lower()
        else:
            columns.append(part)
    if options.get("tokenize") != "trigram" or "content" not in options or not all(_NAME.match(c) for c in columns):
        raise Untranslatable(sql)
    index, table = match["name"], options["content"]
    return ["CREATE EXTENSION IF NOT EXISTS pg_trgm",
            *(f"CREATE INDEX {index}_{c} ON {table} USING gin (casefold({c}) gin_trgm_ops)" for c in columns)]


def _text(tokens: list[Token]) -> str:
    out = ""
    for token in tokens:
        glue = "" if not out or token.text in (")", ",", ".", ";") or out.endswith(("(", ".")) else " "
        out += glue + (unquoted(token) if token.kind == "qid" else token.text)
    return out


def _split(tokens: list[Token], separator: str) -> list[list[Token]]:
    """*tokens* cut at top-level *separator*s (not inside parentheses)."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        if depth == 0 and token.text == separator:
            parts.append([])
        else:
            parts[-1].append(token)
    return [p for p in parts if p]


def _closing(tokens: list[Token], start: int) -> int:
    """The index of the parenthesis that closes the one at *start*."""
    depth = 0
    for i in range(start, len(tokens)):
        depth += tokens[i].text == "("
        depth -= tokens[i].text == ")"
        if depth == 0:
            return i
    raise Untranslatable("unbalanced parentheses")


def _table(sql: str) -> tuple[str, list[str]]:
    tokens = significant(sql)
    if [t.upper for t in tokens[:2]] != ["CREATE", "TABLE"]:
        raise Untranslatable(sql[:60])
    name = unquoted(tokens[2])
    start = 3
    end = _closing(tokens, start)
    tail = [t.upper for t in tokens[end + 1:]]
    if tail not in ([], ["WITHOUT", "ROWID"]):
        raise Untranslatable(f"{name}: {' '.join(tail)}")
    items, foreign = [], []
    for part in _split(tokens[start + 1:end], ","):
        if part[0].upper in _TABLE_CONSTRAINTS:
            if part[0].upper == "FOREIGN":
                foreign.append(f"ALTER TABLE {name} ADD {_text(part)}")
            else:
                items.append(_text(part))
        else:
            column, reference = _column(name, part)
            items.append(column)
            if reference:
                foreign.append(f"ALTER TABLE {name} ADD FOREIGN KEY ({unquoted(part[0])}) {reference}")
    return f"CREATE TABLE {name} (\n    " + ",\n    ".join(items) + "\n)", foreign


def _column(table: str, part: list[Token]) -> tuple[str, str]:
    """A column definition in PostgreSQL, and its REFERENCES clause (added later) or ''."""
    name = unquoted(part[0])
    i = 1
    declared = []
    while i < len(part) and part[i].upper not in _COLUMN_KEYWORDS:
        declared.append(part[i].upper)
        i += 1
    kind = " ".join(declared)
    if kind not in TYPES:
        raise Untranslatable(f"{table}.{name}: type {kind or '(none)'}")
    rest = part[i:]
    uppers = [t.upper for t in rest]
    out = [name, TYPES[kind]]
    if kind == "INTEGER" and uppers[:2] == ["PRIMARY", "KEY"]:
        out.append("GENERATED BY DEFAULT AS IDENTITY")
    reference: list[Token] = []
    j = 0
    while j < len(rest):
        if rest[j].upper == "REFERENCES":
            end = _reference_end(rest, j)
            reference, j = rest[j:end], end
        elif rest[j].text == "(":
            close = _closing(rest, j)
            out.append(_text(rest[j:close + 1]))
            j = close + 1
        else:
            out.append(_text([rest[j]]))
            j += 1
    return " ".join(o for o in out if o), _text(reference)


def _reference_end(rest: list[Token], start: int) -> int:
    """Where the REFERENCES clause at *start* ends: at the next column constraint (its own
    `NOT DEFERRABLE` and `ON DELETE ...` belong to it)."""
    k = start + 1
    while k < len(rest):
        word = rest[k].upper
        if word == "NOT":
            if k + 1 < len(rest) and rest[k + 1].upper == "DEFERRABLE":
                k += 2
                continue
            break
        if word in _COLUMN_KEYWORDS:
            break
        k += 1
    return k


def _index(sql: str) -> str:
    tokens = significant(sql)
    if [t.upper for t in tokens[:2]] not in (["CREATE", "INDEX"], ["CREATE", "UNIQUE"]):
        raise Untranslatable(sql[:60])
    return _text(tokens)


@dataclass
class _Trigger:
    name: str
    timing: str
    event: list[Token]
    table: str
    when: list[Token]
    body: list[list[Token]]


def _parse_trigger(sql: str) -> _Trigger:
    tokens = significant(sql)
    uppers = [t.upper for t in tokens]
    if uppers[:2] != ["CREATE", "TRIGGER"] or uppers[-1] != "END" or "BEGIN" not in uppers:
        raise Untranslatable(sql[:60])
    name, timing = tokens[2].text, uppers[3]
    if timing not in ("BEFORE", "AFTER"):
        raise Untranslatable(f"trigger {name}: {timing}")
    on = uppers.index("ON")
    begin = uppers.index("BEGIN")
    when_at = uppers.index("WHEN") if "WHEN" in uppers[:begin] else begin
    return _Trigger(name, timing, tokens[4:on], unquoted(tokens[on + 1]), tokens[when_at + 1:begin],
                    _split(tokens[begin + 1:-1], ";"))


def _json_array(tokens: list[Token]) -> list[Token]:
    """`json_array(a, b)` -> the same text SQLite makes: `["a",1]` (no spaces)."""
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        if tokens[i].upper == "JSON_ARRAY" and i + 1 < len(tokens) and tokens[i + 1].text == "(":
            close = _closing(tokens, i + 1)
            values = [f"coalesce(to_json({_text(_json_array(a))})::text, 'null')"
                      for a in _split(tokens[i + 2:close], ",")]
            out.append(Token("word", "('[' || " + " || ',' || ".join(values) + " || ']')"))
            i = close + 1
            continue
        out.append(tokens[i])
        i += 1
    return out


def _statement(tokens: list[Token]) -> str:
    text = _text(_json_array(tokens))
    raised = _RAISE.match(text)
    if raised:
        return f"RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation', MESSAGE = {raised.group(1)};"
    if _INSERT_OR_IGNORE.match(text):
        return _INSERT_OR_IGNORE.sub("INSERT INTO", text) + " ON CONFLICT DO NOTHING;"
    return text + ";"


# Tables whose rows are numbered in commit order (an identity `seq`/`pos` read as "everything
# after n"): a trigger writing to one takes the write lock first (module docstring).
_LOGS = frozenset({"CHANGES", "SEAT_SALES"})


def _writes_a_log(statement: list[Token]) -> bool:
    uppers = [t.upper for t in statement]
    return uppers[:2] == ["INSERT", "INTO"] and len(uppers) > 2 and uppers[2] in _LOGS


def _trigger(sql: str) -> list[str]:
    trigger = _parse_trigger(sql)
    body = []
    if any(_writes_a_log(s) for s in trigger.body):
        body.append(f"PERFORM pg_advisory_xact_lock({WRITER_LOCK});")
    body.extend(_statement(s) for s in trigger.body)
    # what a row trigger returns: AFTER ignores it; BEFORE goes on with the row
    result = "NULL" if trigger.timing == "AFTER" else "OLD" if trigger.event[0].upper == "DELETE" else "NEW"
    inner = "\n        ".join(body)
    if trigger.when:
        inner = f"IF {_text(trigger.when)} THEN\n        {inner}\n    END IF;"
    function = f"trigger_{trigger.name}"
    return [
        f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $trigger$\nBEGIN\n    {inner}\n"
        f"    RETURN {result};\nEND\n$trigger$",
        f"CREATE TRIGGER {trigger.name} {trigger.timing} {_text(trigger.event)} ON {trigger.table} "
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
    ]


@functools.lru_cache(maxsize=4)
def at_level(level: int) -> Schema:
    """The schema of the migrations up to *level* (made once per process)."""
    return generate(sqlite_schema(level))


def current() -> Schema:
    """The schema of the migrations this Tessera ships."""
    return at_level(len(storage.migrations()))
