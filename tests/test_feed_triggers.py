"""Change-feed triggers generated from REPLICATED (core/migrations/feed_triggers.py), installed and
refreshed by `core.base.storage.apply_migrations`; databases made before them upgrade cleanly."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.base.storage import apply_migrations, connect, migrations, refresh_feed_triggers, schema_version
from core.migrations import feed_triggers
from core.migrations.feed_triggers import REPLICATED, table_triggers, triggers

HAND_WRITTEN = 6  # the last migration of the main branch whose feed triggers were hand-written


def plain(path: Path) -> sqlite3.Connection:
    """A bare connection: no migrations, no trigger refresh (how today's main leaves a file)."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def old_main_db(path: Path, *, hub: bool = True) -> Path:
    """A database as today's main makes it: migrations 1..6 with their hand-written triggers,
    a hub node and a little data with its change rows."""
    db = plain(path)
    for number, _name, sql in migrations()[:HAND_WRITTEN]:
        db.executescript(f"BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {number};\nCOMMIT;")
    if hub:
        db.execute("INSERT INTO node (id, role, name, created_at) VALUES ('hub-1', 'hub', 'hub', 'now')")
    db.execute("INSERT INTO organizers (id, name, street, postcode, town, country, created_at, updated_at) "
               "VALUES ('org-1', 'Museum', 'Am Markt 3', '28195', 'Bremen', 'DE', 'now', 'now')")
    db.execute("UPDATE organizers SET name = 'Museumsverbund' WHERE id = 'org-1'")
    db.execute("INSERT INTO operators (id, name, pin_hash, created_at, updated_at) "
               "VALUES ('op-1', 'Anna', 'scrypt$x', 'now', 'now')")
    db.close()
    return path


def feed_trigger_sql(db: sqlite3.Connection) -> dict[str, str]:
    return {r["name"]: r["sql"] for r in db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name GLOB 'changes_*'")}


def change_rows(db: sqlite3.Connection, after: int = 0) -> list[tuple[str, str]]:
    return [(r["tbl"], r["key"]) for r in db.execute("SELECT tbl, key FROM changes WHERE seq > ? ORDER BY seq",
                                                      (after,))]


def head(db: sqlite3.Connection) -> int:
    return db.execute("SELECT coalesce(max(seq), 0) AS seq FROM changes").fetchone()["seq"]


def contents(db: sqlite3.Connection) -> dict[str, list[tuple]]:
    tables = [r["name"] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'customers_search%' ORDER BY name")]
    return {t: sorted(tuple(r) if not isinstance(r, dict) else tuple(r.values())
                      for r in db.execute(f"SELECT * FROM {t}")) for t in tables}


# -- generation ----------------------------------------------------------------------------------

def test_a_new_database_has_exactly_the_generated_triggers(tmp_path):
    db = connect(tmp_path / "x.sqlite")
    assert feed_trigger_sql(db) == {name: sql for name, (_, sql) in triggers().items()}
    assert len(feed_trigger_sql(db)) == 3 * len(REPLICATED)
    assert not feed_triggers.plan(db)


def test_generated_sql_uses_no_identifier_but_those_of_replicated():
    fixed = {"create", "trigger", "after", "insert", "update", "delete", "on", "when", "select", "from", "begin",
             "into", "values", "where", "end", "order", "by",  # SQL
             "changes", "tbl", "key", "node", "role", "hub", "json_array", "new", "old"}  # the feed's own
    for table, key in REPLICATED.items():
        generated = table_triggers(table, key)
        assert set(generated) == {f"changes_{table}_ins", f"changes_{table}_upd", f"changes_{table}_del"}
        allowed = fixed | {table, *key} | set(generated)
        for sql in [*generated.values(), feed_triggers.backfill_sql(table, key)]:
            words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))
            assert {w for w in words if w.lower() not in allowed and w not in allowed} == set(), (table, sql)
            # the only literals are the table's own name and 'hub'
            assert set(re.findall(r"'([^']*)'", sql)) <= {table, "hub"}, sql
            assert ";" not in sql.split("BEGIN", 1)[0] and "--" not in sql and "/*" not in sql


@pytest.mark.parametrize(("table", "key"), [
    ("Cards", ("id",)), ("cards; DROP TABLE node", ("id",)), ("ca'rds", ("id",)), ('"cards"', ("id",)),
    ("1cards", ("id",)), ("", ("id",)), ("x" * 64, ("id",)), ("sqlite_master", ("name",)), ("cards ", ("id",)),
    ("cärds", ("id",)), ("cards", ()), ("cards", ("id", "id")), ("cards", ["id"]), ("cards", "id"),
    ("cards", ("id)--",)), ("cards", ("new.id",)), ("cards", (None,)), (None, ("id",)),
])
def test_names_outside_the_strict_pattern_are_refused(table, key):
    with pytest.raises(ValueError):
        table_triggers(table, key)
    with pytest.raises(ValueError):
        feed_triggers.backfill_sql(table, key)


def test_a_bad_replicated_entry_stops_opening_and_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "x.sqlite"
    connect(path).close()
    before = plain(path).execute("PRAGMA schema_version").fetchone()[0]
    monkeypatch.setitem(REPLICATED, "cards'); DELETE FROM node; --", ("id",))
    with pytest.raises(ValueError, match="identifier"):
        connect(path)
    monkeypatch.delitem(REPLICATED, "cards'); DELETE FROM node; --")
    monkeypatch.setitem(REPLICATED, "no_such_table", ("id",))
    with pytest.raises(RuntimeError, match="no_such_table"):
        connect(path)
    monkeypatch.delitem(REPLICATED, "no_such_table")
    monkeypatch.setitem(REPLICATED, "entries", ("id",))  # not its primary key
    with pytest.raises(RuntimeError, match="primary key"):
        connect(path)
    monkeypatch.undo()
    assert plain(path).execute("PRAGMA schema_version").fetchone()[0] == before


# -- adding a table is all it takes ------------------------------------------------------------

def test_a_table_added_to_replicated_gets_triggers_and_its_rows_become_changes(tmp_path, monkeypatch):
    path = tmp_path / "hub.sqlite"
    db = connect(path)
    db.execute("INSERT INTO node (id, role, name, created_at) VALUES ('hub-1', 'hub', 'hub', 'now')")
    db.execute("CREATE TABLE scratch_items (shelf TEXT NOT NULL, id TEXT NOT NULL, label TEXT, "
               "PRIMARY KEY (shelf, id))")
    db.executemany("INSERT INTO scratch_items VALUES (?, ?, ?)", [("a", "1", "x"), ("a", "2", "y")])
    assert not any(name.startswith("changes_scratch_items") for name in feed_trigger_sql(db))
    mark = head(db)
    db.close()

    monkeypatch.setitem(REPLICATED, "scratch_items", ("shelf", "id"))
    db = connect(path)  # nothing else: no migration, no SQL written by hand
    assert {f"changes_scratch_items_{e}" for e in ("ins", "upd", "del")} <= set(feed_trigger_sql(db))
    # what the table held already is one change per row (a hub's nodes receive it too)
    assert change_rows(db, mark) == [("scratch_items", '["a","1"]'), ("scratch_items", '["a","2"]')]
    mark = head(db)
    db.execute("INSERT INTO scratch_items VALUES ('b', '3', 'z')")
    db.execute("UPDATE scratch_items SET label = 'zz' WHERE id = '3'")
    db.execute("UPDATE scratch_items SET shelf = 'c' WHERE id = '3'")
    db.execute("DELETE FROM scratch_items WHERE id = '1'")
    assert change_rows(db, mark) == [("scratch_items", '["b","3"]'), ("scratch_items", '["b","3"]'),
                                     ("scratch_items", '["b","3"]'), ("scratch_items", '["c","3"]'),
                                     ("scratch_items", '["a","1"]')]
    # opening again finds nothing to do and records nothing twice
    mark = head(db)
    db.close()
    db = connect(path)
    assert not refresh_feed_triggers(db) and head(db) == mark
    db.close()

    monkeypatch.delitem(REPLICATED, "scratch_items")
    db = connect(path)  # no longer replicated: its triggers go, its change rows stay
    assert not any(name.startswith("changes_scratch_items") for name in feed_trigger_sql(db))
    assert head(db) == mark
    db.execute("INSERT INTO scratch_items VALUES ('d', '4', 'w')")
    assert head(db) == mark


def test_a_table_added_on_an_edge_gets_triggers_but_records_nothing(tmp_path, monkeypatch):
    db = connect(tmp_path / "edge.sqlite", edge=True)
    db.execute("INSERT INTO node (id, role, name, created_at) VALUES ('g-1', 'gate', 'gate', 'now')")
    db.execute("CREATE TABLE scratch_items (id TEXT PRIMARY KEY)")
    db.execute("INSERT INTO scratch_items VALUES ('1')")
    monkeypatch.setitem(REPLICATED, "scratch_items", ("id",))
    apply_migrations(db)
    assert "changes_scratch_items_ins" in feed_trigger_sql(db)
    db.execute("INSERT INTO scratch_items VALUES ('2')")
    assert head(db) == 0


# -- upgrading a database from today's main ----------------------------------------------------

def test_a_database_from_before_upgrades_keeping_its_data_and_change_rows(tmp_path):
    path = old_main_db(tmp_path / "hub.sqlite")
    old = plain(path)
    before_data, before_triggers = contents(old), feed_trigger_sql(old)
    assert change_rows(old) == [("organizers", '["org-1"]'), ("organizers", '["org-1"]'),
                                ("operators", '["op-1"]')]
    old.close()

    db = connect(path)
    assert schema_version(db) == len(migrations())
    # the replicated tables and the feed keep every row (later migrations may reshape others)
    after_data = contents(db)
    kept = [t for t in (*REPLICATED, "changes") if t in before_data]
    older = {t: before_data[t] for t in kept}
    # the PIN hash moved off operators into the hub-only operator_pins (core/catalog/pins.py)
    older["operators"] = [(id_, name, active, created, updated)
                          for id_, name, _hash, active, created, updated in older["operators"]]
    assert {t: after_data[t] for t in kept} == older
    assert after_data["operator_pins"] == [("op-1", "scrypt$x", "now")]
    assert change_rows(db)[:3] == [("organizers", '["org-1"]'), ("organizers", '["org-1"]'),
                                   ("operators", '["op-1"]')]
    assert feed_trigger_sql(db) == {name: sql for name, (_, sql) in triggers().items()}
    # the hand-written triggers were already what the generator writes: nothing was replaced; only
    # the pinned root's are gone (trust_roots is never replicated)
    assert {n: sql for n, sql in before_triggers.items() if not n.startswith("changes_trust_roots_")}.items() \
        <= feed_trigger_sql(db).items()  # (and tables of later migrations have theirs)
    mark = head(db)
    db.execute("UPDATE operators SET name = 'Anne' WHERE id = 'op-1'")
    assert change_rows(db, mark) == [("operators", '["op-1"]')]  # one row per write, no duplicates


def test_stale_missing_and_altered_triggers_are_put_right(tmp_path):
    path = old_main_db(tmp_path / "hub.sqlite")
    old = plain(path)
    # a feed trigger for a table that is no longer replicated, one that was lost, one that was edited
    old.executescript("""
        CREATE TRIGGER changes_retired_ins AFTER INSERT ON organizers BEGIN
            INSERT INTO changes (tbl, key) VALUES ('retired', json_array(new.id)); END;
        DROP TRIGGER changes_entries_del;
        DROP TRIGGER changes_operators_upd;
        CREATE TRIGGER changes_operators_upd AFTER UPDATE ON operators BEGIN
            INSERT INTO changes (tbl, key) VALUES ('operators', json_array(new.id));
            INSERT INTO changes (tbl, key) VALUES ('operators', json_array(new.id)); END;
    """)
    rows_before = change_rows(old)
    old.close()

    db = connect(path)
    assert feed_trigger_sql(db) == {name: sql for name, (_, sql) in triggers().items()}
    assert change_rows(db) == rows_before  # entries and operators kept triggers: nothing backfilled
    mark = head(db)
    db.execute("INSERT INTO organizers (id, name, street, postcode, town, country, created_at, updated_at) "
               "VALUES ('org-2', 'Kunsthalle', 'Am Wall 207', '28195', 'Bremen', 'DE', 'now', 'now')")
    db.execute("UPDATE operators SET active = 0 WHERE id = 'op-1'")
    assert change_rows(db, mark) == [("organizers", '["org-2"]'), ("operators", '["op-1"]')]


# -- behaviour, table by table -----------------------------------------------------------------

def _dummy_row(db: sqlite3.Connection, table: str, n: int) -> dict:
    row = {}
    for i, col in enumerate(db.execute(f"SELECT name, type FROM pragma_table_info('{table}') ORDER BY cid")):
        kind = (col["type"] or "").upper()
        if "INT" in kind:
            row[col["name"]] = 1000 * n + i
        elif "REAL" in kind:
            row[col["name"]] = float(n)
        elif "BLOB" in kind:
            row[col["name"]] = f"{table}.{col['name']}.{n}".encode()
        else:
            row[col["name"]] = f"{table}.{col['name']}.{n}"
    return row


def _workload(db: sqlite3.Connection) -> dict[str, list[str]]:
    """Insert, touch, re-key and delete one row of every replicated table; returns the keys
    each table recorded, in order."""
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("PRAGMA ignore_check_constraints = ON")  # dummy values, real triggers
    recorded: dict[str, list[str]] = {}
    present = {tuple(r.values())[0] if isinstance(r, dict) else r[0]
               for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table, key in REPLICATED.items():
        if table not in present:  # made by a later migration than the database has
            continue
        mark = head(db)
        row, moved = _dummy_row(db, table, 1), _dummy_row(db, table, 2)
        where = " AND ".join(f"{c} = ?" for c in key)
        db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                   tuple(row.values()))
        db.execute(f"UPDATE {table} SET {key[0]} = {key[0]} WHERE {where}", tuple(row[c] for c in key))
        db.execute(f"UPDATE {table} SET {key[-1]} = ? WHERE {where}",
                   (moved[key[-1]], *(row[c] for c in key)))
        db.execute(f"DELETE FROM {table} WHERE {where}", tuple({**row, key[-1]: moved[key[-1]]}[c] for c in key))
        recorded[table] = [k for t, k in change_rows(db, mark) if t == table]
    return recorded


def _key(row: dict, key: tuple[str, ...]) -> str:
    return json.dumps([row[c] for c in key], separators=(",", ":"))


def test_generated_triggers_record_what_the_hand_written_ones_did_on_every_table(tmp_path):
    hand = old_main_db(tmp_path / "hand.sqlite")
    upgraded = tmp_path / "upgraded.sqlite"
    regenerated = tmp_path / "regenerated.sqlite"
    shutil.copy(hand, upgraded)
    shutil.copy(hand, regenerated)
    connect(upgraded).close()
    # every feed trigger dropped: the refresh creates all of them from REPLICATED (and, as
    # each table is new to the feed, records the rows it holds)
    bare = plain(regenerated)
    for name in list(feed_trigger_sql(bare)):
        bare.execute(f"DROP TRIGGER {name}")
    bare.close()
    db = connect(regenerated)
    assert change_rows(db)[-2:] == [("organizers", '["org-1"]'), ("operators", '["op-1"]')]  # the backfill
    db.close()

    results = {}
    for path in (hand, upgraded, regenerated):
        db = plain(path) if path == hand else connect(path)
        if path != hand:
            assert not feed_triggers.plan(db)
        results[path.name] = _workload(db)
        db.close()
    assert results["upgraded.sqlite"] == results["regenerated.sqlite"]
    assert results["hand.sqlite"] == {t: results["upgraded.sqlite"][t] for t in results["hand.sqlite"]}
    probe = plain(regenerated)
    for table, key in REPLICATED.items():
        first, second = _dummy_row(probe, table, 1), _dummy_row(probe, table, 2)
        moved = {**first, key[-1]: second[key[-1]]}
        # exactly: insert, touch, re-key (old key and new key), delete: one row per key per write
        assert results["regenerated.sqlite"][table] == [_key(first, key), _key(first, key), _key(first, key),
                                                        _key(moved, key), _key(moved, key)], table


def test_no_change_rows_on_a_node_that_is_not_the_hub(tmp_path):
    db = connect(tmp_path / "desk.sqlite", edge=True)
    db.execute("INSERT INTO node (id, role, name, created_at) VALUES ('d-1', 'cashdesk', 'Kasse', 'now')")
    assert all(not keys for keys in _workload(db).values())


def test_storage_can_use_the_generator_without_an_import_cycle():
    """storage imports feed_triggers, so feed_triggers (and the package) import nothing of Tessera."""
    code = ("import sys, core.migrations.feed_triggers; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('core', 'hub', 'edge', 'devices', 'cli')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent).stdout
    assert loaded.strip() == "['core', 'core.migrations', 'core.migrations.feed_triggers']"
