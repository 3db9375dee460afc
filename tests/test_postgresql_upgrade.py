"""Upgrading a PostgreSQL hub made from older migrations (core/base/pg/upgrade.py).

The reference is SQLite: the same hub at the same old level on both backends, the same rows
written to both, both upgraded (SQLite by its migration runner, PostgreSQL when opened), and
then every row of every table must be the same on both, and the PostgreSQL schema must be
exactly that of a new PostgreSQL hub (tables, columns, types, defaults, constraints with their
names, indexes, triggers and their functions). The real migrations 0015 to the last are replayed:
a column dropped after its values were moved to a new table (0015), two table rebuilds with
rows in them (payments in 0021, sepa_debits in 0029), added columns (with a default and a
CHECK in 0029, with a reference in 0026), new tables, triggers and a table new to the change
feed (0030), a log seeded from the tickets (0032). By hand, every level from 14 on upgrades
to exactly a new hub's schema; 0004, 0008, 0012 and 0014 use SQLite-only SQL (a sub-select
without alias, two-argument min(), randomblob()) and are refused, as no PostgreSQL hub was ever made before 0031.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import psycopg
import pytest

from core.base import pg as postgresql
from core.base import storage
from core.base.node import init_node
from core.base.pg import connection, install, schema, upgrade

pytest_plugins = ("tests.pg",)  # the PostgreSQL fixtures: pg_cluster, pg_url, pg_empty_url
NOW = "2026-12-03T07:00:00.000Z"
OLD = 14  # before 0015 drops a column and 0021 rebuilds payments
MIDDLE = 28  # before 0029 rebuilds sepa_debits and adds prenotification_days


def lite_at(path, level: int | None) -> sqlite3.Connection:
    return schema.migrate_sqlite(storage.connect(path, migrate=False), level)


def pg_at(url: str, level: int) -> connection.Connection:
    db = connection.connect(url)
    install.apply(db, level)
    return db


def seed(db) -> None:
    """A sold ticket with its catalogue, a customer and a paid order (valid from migration 14 on)."""
    run = db.execute
    run("INSERT INTO organizers (id, name, street, postcode, town, country, created_at, updated_at) "
        "VALUES ('org', 'Theater', 'Weg 1', '10115', 'Berlin', 'DE', ?, ?)", (NOW, NOW))
    run("INSERT INTO venues (id, organizer_id, name, kind, street, postcode, town, country, created_at, updated_at) "
        "VALUES ('ven', 'org', 'Haus', 'stage', 'Weg 1', '10115', 'Berlin', 'DE', ?, ?)", (NOW, NOW))
    run("INSERT INTO price_zones (id, organizer_id, code, name, color, created_at, updated_at) "
        "VALUES ('zone', 'org', 'A', 'A', '#fff', ?, ?)", (NOW, NOW))
    run("INSERT INTO seating_plans (id, venue_id, name, created_at, updated_at) VALUES ('plan', 'ven', 'P', ?, ?)",
        (NOW, NOW))
    run("INSERT INTO plan_sections (id, plan_id, name) VALUES ('sec', 'plan', 'Parkett')")
    run("INSERT INTO plan_variants (id, plan_id, name, is_base, created_at, updated_at) "
        "VALUES ('var', 'plan', 'Basis', 1, ?, ?)", (NOW, NOW))
    for n in range(1, 4):
        run("INSERT INTO seats (id, plan_id, section_id, row_label, label, x, y, zone_id) "
            "VALUES (?, 'plan', 'sec', '1', ?, ?, 0, 'zone')", (f"seat{n}", str(n), n))
    run("INSERT INTO performances (id, venue_id, variant_id, title, starts_at, created_at, updated_at) "
        "VALUES ('perf', 'ven', 'var', 'Faust', ?, ?, ?)", (NOW, NOW, NOW))
    run("INSERT INTO customers (id, number, first_name, last_name, street, postcode, town, country, created_at, "
        "updated_at) VALUES ('cust', 'KD-1', 'Eva', 'Ölbaum', 'Weg 2', '10115', 'Berlin', 'DE', ?, ?)", (NOW, NOW))
    run("INSERT INTO orders (id, number, node_id, channel, total_cents, created_at) "
        "VALUES ('ord', 'B-1', 'desk', 'cashdesk', 6000, ?)", (NOW,))
    for n in (1, 2):
        run("INSERT INTO order_lines (id, order_id, position, kind, product_id, price_cents) "
            "VALUES (?, 'ord', ?, 'ticket', 'perf', 3000)", (f"line{n}", n))
        run("INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, created_at) "
            "VALUES (?, 'ord', ?, 'perf', ?, 'zone', 3000, ?)", (f"t{n}", f"line{n}", f"seat{n}", NOW))
    for n, method in ((1, "cash"), (2, "sepa")):
        run("INSERT INTO payments (id, order_id, method, amount_cents, state, node_id, created_at) "
            "VALUES (?, 'ord', ?, 3000, ?, 'desk', ?)", (f"pay{n}", method, "paid" if n == 1 else "pending", NOW))


def seed_sepa(db) -> None:
    """A creditor account, a mandate and a due debit (valid at migration 28)."""
    run = db.execute
    run("INSERT INTO sepa_creditor_accounts (organizer_id, iban, updated_at) "
        "VALUES ('org', 'DE02120300000000202051', ?)", (NOW,))
    run("INSERT INTO sepa_mandates (id, organizer_id, customer_id, reference, kind, sequence, debtor_name, iban, "
        "signed_on, state, created_at, updated_at) VALUES ('man', 'org', 'cust', 'M-1', 'recurring', 'FRST', "
        "'Eva Ölbaum', 'DE02500105170137075030', '2026-11-01', 'active', ?, ?)", (NOW, NOW))
    run("INSERT INTO sepa_debits (id, payment_id, order_id, mandate_id, amount_cents, due_on, prenotified_on, "
        "end_to_end_id, remittance, state, sequence, created_at) VALUES ('deb', 'pay2', 'ord', 'man', 3000, "
        "'2026-12-20', '2026-12-03', 'E2E-1', 'B-1', 'due', 'FRST', ?)", (NOW,))


def rows(db) -> dict[str, list[tuple]]:
    """Every row of every table (sorted: the backends order NULLs differently), but the node's
    (its id is random) and hub_epoch's (0014 fills it on SQLite; on PostgreSQL the backup
    service writes it when first asked, hub/services/backup.py)."""
    if isinstance(db, sqlite3.Connection):
        names = [r["name"] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE 'customers_search%'").fetchall()]
        cursor = db.cursor()
        cursor.row_factory = None
    else:
        names = [r["tablename"] for r in db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'tessera_schema'")]
        cursor = db.cursor()
        cursor.row_factory = None
    found = {}
    for name in set(names) - {"node", "hub_epoch"}:
        found[name] = sorted((tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                              for row in cursor.execute(f"SELECT * FROM {name}")), key=repr)
    return found


def catalog(url: str) -> dict[str, list]:
    """The schema of the database at *url*, as PostgreSQL's catalogue describes it."""
    with psycopg.connect(url) as db:
        def q(text: str) -> list:
            return [tuple(r) for r in db.execute(text).fetchall()]
        return {
            "columns": q("SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity, "
                         "identity_generation, collation_name FROM information_schema.columns WHERE table_schema = "
                         "'public' ORDER BY table_name, ordinal_position"),
            "constraints": q("SELECT conrelid::regclass::text, conname, contype, condeferrable, condeferred, "
                             "pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
                             "ORDER BY 1, 2"),
            "indexes": q("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                         "ORDER BY 1, 2"),
            "triggers": q("SELECT tgrelid::regclass::text, tgname, tgenabled, pg_get_triggerdef(oid) FROM pg_trigger "
                          "WHERE NOT tgisinternal ORDER BY 1, 2"),
            "functions": q("SELECT proname, pg_get_functiondef(oid) FROM pg_proc WHERE pronamespace = "
                           "'public'::regnamespace AND prokind = 'f' ORDER BY 1"),
            "sequences": q("SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = 'public' "
                           "ORDER BY 1"),
            "schemas": q("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' ORDER BY 1"),
            "recorded": q("SELECT digest, version, sqlite_schema FROM tessera_schema"),
        }


def test_an_older_hub_is_upgraded_to_a_new_hubs_schema_keeping_every_row(pg_empty_url, pg_url, tmp_path):
    lite, pg = lite_at(tmp_path / "hub.sqlite", OLD), pg_at(pg_empty_url, OLD)
    assert storage.schema_version(pg) == OLD
    for db in (lite, pg):
        init_node(db, "hub", "hub")
        with storage.transaction(db):
            seed(db)
            db.execute("INSERT INTO operators (id, name, pin_hash, created_at, updated_at) "
                       "VALUES ('op', 'Anna', 'scrypt$hash', ?, ?)", (NOW, NOW))
    lite_at(tmp_path / "hub.sqlite", MIDDLE)
    install.apply(pg, MIDDLE)  # 0015 moved the PIN hash and dropped its column, 0021 rebuilt payments
    assert storage.schema_version(pg) == MIDDLE
    assert pg.execute("SELECT operator_id, pin_hash FROM operator_pins").fetchall() == [
        {"operator_id": "op", "pin_hash": "scrypt$hash"}]
    for db in (lite, pg):
        with storage.transaction(db):
            seed_sepa(db)
    assert rows(lite) == rows(pg)
    pg.close()

    started = time.perf_counter()
    pg = postgresql.connect(pg_empty_url)  # what the hub does when it starts: upgraded to the current level
    took = time.perf_counter() - started
    storage.apply_migrations(lite)
    assert storage.schema_version(pg) == len(storage.migrations())
    assert catalog(pg_empty_url) == catalog(pg_url)  # exactly the schema of a new hub
    after = rows(pg)
    assert after == rows(lite)  # every row, as SQLite's own migrations left it
    assert after["sepa_creditor_accounts"][0][-1] == 14  # the added column's default
    assert [r[0] for r in after["sepa_debits"]] == ["deb"] and [r[0] for r in after["payments"]] == ["pay1", "pay2"]
    assert took < 10

    # the change feed goes on: old tables, a table new to the feed, and the triggers of 0030
    top = pg.execute("SELECT max(seq) AS n FROM changes").fetchone()["n"]
    for db in (lite, pg):
        with storage.transaction(db):
            db.execute("UPDATE seats SET label = 'x' WHERE id = 'seat3'")
            db.execute("UPDATE tickets SET status = 'cancelled' WHERE id = 't1'")  # sold by the desk: released
    assert rows(pg)["changes"] == rows(lite)["changes"]
    assert [(r["seq"], r["tbl"], r["key"]) for r in pg.execute("SELECT * FROM changes WHERE seq > ? ORDER BY seq",
                                                               (top,))] == [
        (top + 1, "seats", '["seat3"]'), (top + 2, "seat_releases", '["t1"]')]
    with pytest.raises(sqlite3.IntegrityError), storage.transaction(pg):  # 0029's new CHECK
        pg.execute("UPDATE sepa_creditor_accounts SET prenotification_days = 31")
    pg.close()
    postgresql.connect(pg_empty_url).close()  # opened again: nothing left to do
    assert catalog(pg_empty_url) == catalog(pg_url)


# A migration of the kind the next ones will be, shipped by no Tessera: a column added with a
# default and filled by an UPDATE, and a replicated table referred to by others rebuilt
# (SQLite's create/copy/drop/rename) with a new column and a new CHECK.
FUTURE = """
ALTER TABLE organizers ADD COLUMN motto TEXT NOT NULL DEFAULT '';
UPDATE organizers SET motto = upper(name) || '!';
CREATE TABLE price_zones_v32 (
    id            TEXT PRIMARY KEY,
    organizer_id  TEXT NOT NULL REFERENCES organizers(id),
    code          TEXT NOT NULL,
    name          TEXT NOT NULL,
    color         TEXT NOT NULL CHECK (color LIKE '#%'),
    sort          INTEGER NOT NULL DEFAULT 0,
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    label         TEXT,
    UNIQUE (organizer_id, code)
);
INSERT INTO price_zones_v32 SELECT id, organizer_id, code, name, color, sort, active, created_at, updated_at,
    code || ' ' || name FROM price_zones;
DROP TABLE price_zones;
ALTER TABLE price_zones_v32 RENAME TO price_zones;
CREATE INDEX price_zones_label ON price_zones(label) WHERE label IS NOT NULL;
"""
# Each refused as a whole, after the statements before the one PostgreSQL cannot take ran.
HOSTILE = {
    "unknown_function": "CREATE TABLE hostile_log (id TEXT PRIMARY KEY, at TEXT);\n"
                        "ALTER TABLE organizers ADD COLUMN motto TEXT;\nUPDATE organizers SET motto = 'x';\n"
                        "INSERT INTO hostile_log (id, at) VALUES ('1', datetime('now'));",
    "insert_or_replace": "UPDATE organizers SET name = 'y';\n"
                         "INSERT OR REPLACE INTO price_zones SELECT * FROM price_zones;",
}


@pytest.fixture
def shipped(monkeypatch):
    """ship(name, sql): this Tessera's migrations and one more, as the next release ships it."""
    real = storage.migrations()

    def ship(name: str, text: str) -> None:
        number = len(real) + 1
        monkeypatch.setattr(storage, "migrations", lambda: [*real, (number, f"{number:04d}_{name}.sql", text)])
        schema.at_level.cache_clear()

    yield ship
    monkeypatch.undo()
    schema.at_level.cache_clear()


def test_a_new_migration_with_a_rebuild_needs_no_postgresql_twin(pg_url, pg_empty_url, tmp_path, shipped):
    lite, pg = lite_at(tmp_path / "hub.sqlite", None), connection.connect(pg_url)
    for db in (lite, pg):
        init_node(db, "hub", "hub")
        with storage.transaction(db):
            seed(db)
    top = pg.execute("SELECT max(seq) AS n FROM changes").fetchone()["n"]
    pg.close()
    shipped("future", FUTURE)
    storage.apply_migrations(lite)
    postgresql.connect(pg_empty_url).close()  # a new hub with the new migration
    pg = postgresql.connect(pg_url)  # the old one, upgraded
    assert storage.schema_version(pg) == len(storage.migrations())
    assert catalog(pg_url) == catalog(pg_empty_url)
    after = rows(pg)
    assert after == rows(lite)
    assert [r[-1] for r in after["organizers"]] == ["THEATER!"]
    assert [r[-1] for r in after["price_zones"]] == ["A A"]
    # the rebuilt table's feed triggers are made again (and its rows recorded, as on SQLite)
    assert pg.execute("SELECT tbl, key FROM changes WHERE seq > ? ORDER BY seq", (top,)).fetchall() == [
        {"tbl": "organizers", "key": '["org"]'}, {"tbl": "price_zones", "key": '["zone"]'}]
    with storage.transaction(pg):
        pg.execute("UPDATE price_zones SET label = 'Parkett' WHERE id = 'zone'")
    assert pg.execute("SELECT tbl, key FROM changes ORDER BY seq DESC LIMIT 1").fetchone() == {
        "tbl": "price_zones", "key": '["zone"]'}
    with pytest.raises(sqlite3.IntegrityError), storage.transaction(pg):  # the seats still refer to it
        pg.execute("DELETE FROM price_zones WHERE id = 'zone'")
    pg.close()


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
def test_a_migration_postgresql_cannot_take_is_refused_and_changes_nothing(pg_url, shipped, hostile):
    pg = connection.connect(pg_url)
    init_node(pg, "hub", "hub")
    with storage.transaction(pg):
        seed(pg)
    before, kept = catalog(pg_url), rows(pg)
    pg.close()
    shipped(f"hostile_{hostile}", HOSTILE[hostile])
    shipped_as = f"{len(storage.migrations()):04d}_hostile_{hostile}.sql"
    with pytest.raises(schema.Untranslatable, match=f"migration {shipped_as}: "):
        postgresql.connect(pg_url)
    assert catalog(pg_url) == before
    pg = connection.connect(pg_url)
    assert rows(pg) == kept
    pg.close()


def test_of_two_processes_starting_at_once_one_upgrades_and_the_other_waits(pg_empty_url, monkeypatch):
    pg = pg_at(pg_empty_url, MIDDLE)
    init_node(pg, "hub", "hub")
    with storage.transaction(pg):
        seed(pg)
        # made before the schema's SQLite objects were recorded: rebuilt from its level and digest
        pg.execute("ALTER TABLE tessera_schema DROP COLUMN sqlite_schema")
    pg.close()
    real, upgrades = upgrade.run, []

    def slow_run(*args):
        real(*args)
        time.sleep(0.5)  # still uncommitted: the other process must be waiting now
        upgrades.append(time.perf_counter())

    monkeypatch.setattr(upgrade, "run", slow_run)
    start, opened, failed = threading.Barrier(2), [], []

    def open_hub() -> None:
        start.wait()
        try:
            db = postgresql.connect(pg_empty_url)
            opened.append((storage.schema_version(db), time.perf_counter(), threading.get_ident()))
            db.close()
        except Exception as exc:  # noqa: BLE001 - reported below
            failed.append(exc)

    threads = [threading.Thread(target=open_hub) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failed and len(upgrades) == 1
    assert [version for version, _, _ in opened] == [len(storage.migrations())] * 2
    assert all(at > upgrades[0] for _, at, _ in opened)  # the other one waited for the upgrade's commit
    with psycopg.connect(pg_empty_url) as db:
        assert db.execute("SELECT count(*) FROM tessera_schema WHERE sqlite_schema IS NOT NULL").fetchone()[0] == 1


def test_an_upgrade_brings_the_schemas_functions_to_this_tesseras_definitions(pg_empty_url):
    """A hub made before 3 December has a STRICT json_each (run as a separate function call per
    statement, not inlined); its upgrade replaces it with today's definition: same values."""
    db = pg_at(pg_empty_url, len(storage.migrations()) - 1)
    db.execute("CREATE OR REPLACE FUNCTION json_each(doc text) RETURNS TABLE (value text) LANGUAGE sql "
               "IMMUTABLE STRICT AS $$ SELECT e FROM json_array_elements_text(doc::json) AS e $$")
    strict = "SELECT proisstrict AS strict FROM pg_proc WHERE proname = 'json_each'"
    assert db.execute(strict).fetchone()["strict"] is True
    db.close()
    db = postgresql.connect(pg_empty_url)
    try:
        assert storage.schema_version(db) == len(storage.migrations())
        assert db.execute(strict).fetchone()["strict"] is False
        assert [r["value"] for r in db.execute("SELECT value FROM json_each(?)", ('["a", 1, null, [2]]',))] == [
            "a", "1", None, "[2]"]
    finally:
        db.close()
