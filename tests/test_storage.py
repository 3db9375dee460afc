"""The one way to open a database, migrations, and UUIDv7 ids."""

import sqlite3
import uuid

import pytest

from core.base.ids import is_uuid, uuid7
from core.base.storage import apply_migrations, connect, migrations, schema_version, transaction


def test_a_new_database_is_migrated_to_the_latest_schema(tmp_path):
    db = connect(tmp_path / "x.sqlite")
    assert schema_version(db) == len(migrations())
    assert db.execute("PRAGMA journal_mode").fetchone()["journal_mode"] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()["foreign_keys"] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()["timeout"] >= 5000


def test_edges_write_through_to_disk(tmp_path):
    """synchronous=FULL (2) on edges: a printed receipt must survive a power cut; on the hub too
    (an answered push must), unless the hub chooses NORMAL (1; hub.toml [storage])."""
    edge = connect(tmp_path / "edge.sqlite", edge=True)
    hub = connect(tmp_path / "hub.sqlite")
    assert edge.execute("PRAGMA synchronous").fetchone()["synchronous"] == 2
    assert hub.execute("PRAGMA synchronous").fetchone()["synchronous"] == 2
    normal = connect(tmp_path / "hub.sqlite", synchronous="normal")
    assert normal.execute("PRAGMA synchronous").fetchone()["synchronous"] == 1
    with pytest.raises(ValueError, match="synchronous"):
        connect(tmp_path / "hub.sqlite", synchronous="off")


def test_migrating_twice_changes_nothing(tmp_path):
    db = connect(tmp_path / "x.sqlite")
    version = schema_version(db)
    assert apply_migrations(db) == version
    db.close()
    assert schema_version(connect(tmp_path / "x.sqlite")) == version


def test_a_database_from_a_newer_tessera_is_refused(tmp_path):
    db = connect(tmp_path / "x.sqlite")
    db.execute(f"PRAGMA user_version = {schema_version(db) + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer than this Tessera"):
        connect(tmp_path / "x.sqlite")


def test_foreign_keys_are_enforced(tmp_path):
    db = connect(tmp_path / "x.sqlite")
    with pytest.raises(sqlite3.IntegrityError), transaction(db):
        db.execute("INSERT INTO venues (id, organizer_id, name, kind, street, postcode, town, country, "
                   "created_at, updated_at) VALUES ('v', 'missing', 'n', 'museum', 's', '1', 't', 'DE', '', '')")


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    db = connect(tmp_path / "x.sqlite")
    with pytest.raises(ZeroDivisionError), transaction(db):
        db.execute("INSERT INTO node (id, role, name, created_at) VALUES ('n', 'hub', 'h', 'now')")
        1 / 0  # noqa: B018
    assert db.execute("SELECT count(*) AS n FROM node").fetchone()["n"] == 0
    assert not db.in_transaction


def test_nested_transactions_roll_back_only_the_inner_part(tmp_path):
    db = connect(tmp_path / "x.sqlite")
    with transaction(db):
        db.execute("INSERT INTO node (id, role, name, created_at) VALUES ('a', 'hub', 'h', 'now')")
        with pytest.raises(ValueError), transaction(db):
            db.execute("INSERT INTO number_series (prefix, year, owner_node) VALUES ('X', 2026, 'a')")
            raise ValueError
    assert db.execute("SELECT count(*) AS n FROM node").fetchone()["n"] == 1
    assert db.execute("SELECT count(*) AS n FROM number_series").fetchone()["n"] == 0


def test_uuid7_ids_are_version_7_and_sort_by_creation_time():
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert all(is_uuid(i) for i in ids[:10])
    assert not is_uuid("not-a-uuid") and not is_uuid("") and not is_uuid(ids[0].upper() + "x")
