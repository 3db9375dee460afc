"""The storage seam (DESIGN §11): SQLite-only SQL lives in core/base/sql.py (and the migration
machinery in core/base/storage.py, the generated feed triggers in core/migrations/feed_triggers.py,
and the PostgreSQL adapter in core/base/pg/, which translates SQLite's SQL and words its errors);
rules in core and hub are standard SQL, so a PostgreSQL adapter for the hub can be added
without touching a rule. Edge-only code in edge/ is not held to this (edges stay on SQLite)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from core.base import sql

ROOT = Path(__file__).resolve().parents[1]
DIALECT_HOMES = {"core/base/sql.py", "core/base/storage.py", "core/migrations/feed_triggers.py"}
SQLITE_ONLY = {
    "INSERT OR …": re.compile(r"INSERT\s+OR\s+(IGNORE|REPLACE|ABORT|FAIL|ROLLBACK)", re.I),
    "PRAGMA data_version": re.compile(r"PRAGMA\s+data_version", re.I),
    "FTS MATCH": re.compile(r"\bMATCH\s+\?"),
    "json_each/json_extract/->>": re.compile(r"json_each\(|json_extract\(|->>"),
    "message-text classification": re.compile(r"""["'](UNIQUE|FOREIGN KEY|NOT NULL|CHECK) constraint"""),
}


def rule_files():
    for folder in ("core", "hub"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in DIALECT_HOMES and not rel.startswith("core/base/pg/"):
                yield rel, path.read_text(encoding="utf-8")


@pytest.mark.parametrize("construct", sorted(SQLITE_ONLY))
def test_sqlite_only_sql_stays_behind_core_sql(construct):
    pattern = SQLITE_ONLY[construct]
    found = [f"{rel}:{text[:m.start()].count(chr(10)) + 1}" for rel, text in rule_files()
             for m in pattern.finditer(text)]
    assert found == [], f"{construct} outside core/base/sql.py: {found}"


def test_integrity_problems_are_classified_by_kind():
    db = sqlite3.connect(":memory:")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("CREATE TABLE p (id TEXT PRIMARY KEY, n TEXT UNIQUE NOT NULL CHECK (n <> 'x'))")
    db.execute("CREATE TABLE c (id TEXT PRIMARY KEY, p_id TEXT REFERENCES p(id))")
    db.execute("INSERT INTO p VALUES ('1', 'a')")
    cases = {"unique": "INSERT INTO p VALUES ('2', 'a')", "not_null": "INSERT INTO p VALUES ('3', NULL)",
             "check": "INSERT INTO p VALUES ('4', 'x')", "foreign_key": "INSERT INTO c VALUES ('1', 'nope')"}
    for kind, statement in cases.items():
        with pytest.raises(sqlite3.IntegrityError) as caught:
            db.execute(statement)
        assert sql.integrity_problem(caught.value).kind == kind
    with pytest.raises(sqlite3.IntegrityError) as caught:
        db.execute("INSERT INTO p VALUES ('5', 'a')")
    assert sql.integrity_problem(caught.value).detail == "p.n"


def test_names_in_generated_sql_are_plain():
    for bad in ("cards; DROP TABLE x", "a b", "Cards", "x'--"):
        with pytest.raises(ValueError):
            sql.replace_rows(bad, ["id"])
        with pytest.raises(ValueError):
            sql.replace_rows("cards", ["id", bad])
