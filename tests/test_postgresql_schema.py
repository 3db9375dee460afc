"""The hub's PostgreSQL schema, generated from the SQLite migrations: it applies, and its
constraints and triggers refuse what SQLite refuses, with the same IntegrityError kinds.

Each refusal is checked on both backends with the same statements: the SQLite hub database
(the reference) and a fresh PostgreSQL database on the worker's throwaway cluster."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.base import pg as postgresql
from core.base import storage
from core.base.node import init_node
from core.base.pg import cluster, connection, schema
from core.base.sql import integrity_problem

pytest_plugins = ("tests.pg",)  # the PostgreSQL fixtures: pg_cluster, pg_url, pg_empty_url, pg
NOW = "2026-12-02T20:00:00.000Z"
ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 30


@pytest.fixture
def lite(tmp_path) -> Iterator[sqlite3.Connection]:
    db = storage.connect(tmp_path / "hub.db")
    init_node(db, "hub", "hub")
    yield db
    db.close()


def both(pg: connection.Connection, lite: sqlite3.Connection) -> list:
    return [lite, pg]


def seed_sale(db) -> None:
    """The least a sold ticket and an invoice need: organizer, venue, plan, seat, performance,
    customer, order, line, ticket, invoice with a line."""
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
    run("INSERT INTO seats (id, plan_id, section_id, row_label, label, x, y, zone_id) "
        "VALUES ('seat', 'plan', 'sec', '1', '1', 0, 0, 'zone')")
    run("INSERT INTO performances (id, venue_id, variant_id, title, starts_at, created_at, updated_at) "
        "VALUES ('perf', 'ven', 'var', 'Faust', ?, ?, ?)", (NOW, NOW, NOW))
    run("INSERT INTO customers (id, number, first_name, last_name, street, postcode, town, country, created_at, "
        "updated_at) VALUES ('cust', 'KD-1', 'Eva', 'Ölbaum', 'Weg 2', '10115', 'Berlin', 'DE', ?, ?)", (NOW, NOW))
    run("INSERT INTO orders (id, number, node_id, channel, total_cents, created_at) "
        "VALUES ('ord', 'B-1', 'hub', 'shop', 3000, ?)", (NOW,))
    run("INSERT INTO order_lines (id, order_id, position, kind, product_id, price_cents) "
        "VALUES ('line', 'ord', 1, 'ticket', 'perf', 3000)")
    run("INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, created_at) "
        "VALUES ('t1', 'ord', 'line', 'perf', 'seat', 'zone', 3000, ?)", (NOW,))
    run("INSERT INTO invoices (id, number, kind, order_id, organizer_id, customer_id, node_id, language, issued_on, "
        "issuer, recipient, total_cents, paid_cents, created_at) VALUES ('inv', 'RE-1', 'invoice', 'ord', 'org', "
        "'cust', 'hub', 'de', '2026-12-02', '{}', '{}', 3000, 3000, ?)", (NOW,))
    run("INSERT INTO invoice_lines (invoice_id, position, order_line_id, description, gross_cents, vat_code) "
        "VALUES ('inv', 1, 'line', 'Faust', 3000, 'exempt')")


def refusal(db, sql: str, params: tuple = ()) -> tuple[str, str]:
    with pytest.raises(sqlite3.IntegrityError) as caught, storage.transaction(db):
        db.execute(sql, params)
    problem = integrity_problem(caught.value)
    return problem.kind, problem.detail


def test_every_sqlite_table_and_column_exists_on_postgresql(pg, lite):
    tables = {r["name"] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE "
                                              "'CREATE VIRTUAL%' AND name NOT LIKE 'customers_search%' "
                                              "AND name NOT LIKE 'sqlite_%'")}
    assert {"changes", "invoices", "tickets", "seat_holds", "customers"} <= tables
    for table in tables:
        want = [r["name"] for r in lite.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))]
        have = [r["column_name"] for r in pg.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            (table,))]
        assert have == want, table
    triggers = {r["name"] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                                "AND name NOT LIKE 'customers_search%'")}
    have = {r["tgname"] for r in pg.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
    assert have == triggers


def test_invoices_are_never_edited_nor_deleted(pg, lite):
    for db in both(pg, lite):
        with storage.transaction(db):
            seed_sale(db)
        assert refusal(db, "UPDATE invoices SET total_cents = 1") == (
            "other", "invoices are never edited: issue a cancellation invoice")
        assert refusal(db, "DELETE FROM invoice_lines") == (
            "other", "invoices are never deleted: issue a cancellation invoice")
        assert db.execute("SELECT total_cents FROM invoices").fetchone()["total_cents"] == 3000


def test_two_sold_tickets_on_one_seat_are_a_unique_violation(pg, lite):
    second = ("INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, created_at) "
              "VALUES ('t2', 'ord', 'line', 'perf', 'seat', 'zone', 3000, ?)")
    for db in both(pg, lite):
        with storage.transaction(db):
            seed_sale(db)
        assert refusal(db, second, (NOW,)) == ("unique", "tickets.performance_id, tickets.seat_id")
        db.execute("UPDATE tickets SET status = 'cancelled'")  # the partial index: a cancelled seat sells again
        db.execute(second, (NOW,))
        assert db.execute("SELECT count(*) AS n FROM tickets WHERE status = 'sold'").fetchone()["n"] == 1


def test_a_held_seat_is_not_sold_and_other_constraints_keep_their_kinds(pg, lite):
    results = []
    for db in both(pg, lite):
        with storage.transaction(db):
            seed_sale(db)
        db.execute("UPDATE tickets SET status = 'cancelled'")
        db.execute("INSERT INTO seat_holds (performance_id, seat_id, hold_id, holder, expires_at, created_at) "
                   "VALUES ('perf', 'seat', 'h', 'token:x', ?, ?)", (NOW, NOW))
        results.append([
            refusal(db, "INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, "
                        "created_at) VALUES ('t3', 'ord', 'line', 'perf', 'seat', 'zone', 3000, ?)", (NOW,)),
            refusal(db, "INSERT INTO venues (id, organizer_id, name, kind, street, postcode, town, country, "
                        "created_at, updated_at) VALUES ('v2', 'nobody', 'X', 'stage', 'a', 'b', 'c', 'DE', ?, ?)",
                    (NOW, NOW))[0],
            refusal(db, "UPDATE orders SET total_cents = -1")[0],
            refusal(db, "UPDATE orders SET number = NULL"),
        ])
    sqlite_kinds, pg_kinds = results
    assert sqlite_kinds[0] == pg_kinds[0] == ("other", "seat is held")
    assert sqlite_kinds[1:3] == pg_kinds[1:3] == ["foreign_key", "check"]
    assert sqlite_kinds[3] == pg_kinds[3] == ("not_null", "orders.number")


def test_change_feed_records_the_same_keys_as_on_sqlite(pg, lite):
    feeds = []
    for db in both(pg, lite):
        with storage.transaction(db):
            seed_sale(db)
        db.execute("INSERT INTO customers (id, number, first_name, last_name, street, postcode, town, country, "
                   "created_at, updated_at) VALUES ('lone', 'KD-2', 'Jo', 'Ng', 'a', 'b', 'c', 'DE', ?, ?)", (NOW, NOW))
        db.execute("UPDATE customers SET id = 'cust2' WHERE id = 'lone'")  # a moved key: old and new
        db.execute("INSERT INTO seat_pools (performance_id, seat_id, pool) VALUES ('perf', 'seat', 'node:desk-1')")
        feeds.append([(r["tbl"], r["key"]) for r in db.execute("SELECT tbl, key FROM changes ORDER BY seq")])
    assert feeds[0] == feeds[1]
    assert ("seat_pools", '["perf","seat"]') in feeds[1]
    moved = feeds[1].index(("customers", '["cust2"]'))
    assert feeds[1][moved - 1] == ("customers", '["lone"]')


def test_card_codes_are_numbered_by_the_trigger(pg):
    with storage.transaction(pg):
        seed_sale(pg)
    rows = pg.execute("SELECT code, product_id, kind FROM card_products ORDER BY code").fetchall()
    assert rows == [{"code": 1, "product_id": "perf", "kind": "single"}]


def test_a_construct_the_translator_does_not_know_fails_loudly():
    with pytest.raises(schema.Untranslatable, match="type NUMERIC"):
        schema.generate([("table", "t", "CREATE TABLE t (id TEXT PRIMARY KEY, amount NUMERIC)")])
    with pytest.raises(schema.Untranslatable):
        schema.generate([("trigger", "x", "CREATE TRIGGER x INSTEAD OF INSERT ON v BEGIN SELECT 1; END")])


def test_the_schema_is_made_once_and_a_database_from_other_migrations_is_refused(pg_empty_url):
    postgresql.connect(pg_empty_url).close()
    db = postgresql.connect(pg_empty_url)  # same migrations: opens, makes nothing twice
    assert db.execute("SELECT count(*) AS n FROM tessera_schema").fetchone()["n"] == 1
    assert db.execute("SELECT count(*) AS n FROM pg_tables WHERE tablename = 'invoices'").fetchone()["n"] == 1
    db.execute("UPDATE tessera_schema SET digest = 'older'")
    db.close()
    with pytest.raises(RuntimeError, match="other migrations"):
        postgresql.connect(pg_empty_url)


@pytest.mark.slow
def test_a_cluster_left_by_a_killed_run_is_stopped_by_the_next(tmp_path):
    """kill -9 of a test process leaves its postgres running; the next run stops and deletes it."""
    script = ("import sys; from core.base.pg.cluster import running_cluster\n"
              "with running_cluster() as c:\n    print(c.folder, flush=True)\n    sys.stdin.read()\n")
    owner = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=ROOT)
    folder = Path(owner.stdout.readline().strip())
    postmaster = int((folder / "data" / "postmaster.pid").read_text().split()[0])
    owner.kill()
    owner.wait(DEADLINE_S)
    assert folder.exists() and cluster._alive(postmaster)  # orphaned
    assert folder in cluster.stop_orphans()
    assert not folder.exists()
    assert not cluster._alive(postmaster)  # pg_ctl stop -w returned after the server went
