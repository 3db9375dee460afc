"""The ledger migration (0008) on a database as the previous main made it: annual-ticket
orders with their payment columns and items, a shop order with a personalization link, and
single-ticket sales in `sales`/`tickets`. After it, every order and sale is an order of the
one ledger with its lines, its payment as a row, its tickets and links; nothing is lost.

The old rows are written with the previous main's own INSERT statements, onto a schema made
by migrations 0001-0007 (the files that main shipped, plus the price history)."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from core.base.clock import iso
from core.base.storage import _migrate, apply_migrations, connect, migrations, schema_version
from core.sales import orders

NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)
HUB, DESK = "01a20000-0000-7000-8000-00000000aaaa", "01a20000-0000-7000-8000-00000000bbbb"


def old_database(path) -> sqlite3.Connection:
    db = connect(path, migrate=False)
    for number, name, sql in migrations()[:7]:
        _migrate(db, number, name, sql)
    assert schema_version(db) == 7
    ts = iso(NOW)
    db.executescript(f"""
        INSERT INTO node (id, role, name, created_at) VALUES ('{DESK}', 'cashdesk', 'Kasse', '{ts}');
        INSERT INTO organizers (id, name, street, postcode, town, country, created_at, updated_at)
            VALUES ('o1', 'Stadt', 'Weg 1', '12345', 'Ort', 'DE', '{ts}', '{ts}');
        INSERT INTO venues (id, organizer_id, name, kind, street, postcode, town, country, created_at, updated_at)
            VALUES ('v1', 'o1', 'Haus', 'stage', 'Weg 1', '12345', 'Ort', 'DE', '{ts}', '{ts}');
        INSERT INTO price_zones (id, organizer_id, code, name, color, created_at, updated_at)
            VALUES ('z1', 'o1', 'A', 'A', '#000', '{ts}', '{ts}');
        INSERT INTO seating_plans (id, venue_id, name, created_at, updated_at) VALUES ('p1', 'v1', 'P', '{ts}', '{ts}');
        INSERT INTO plan_sections (id, plan_id, name) VALUES ('sec1', 'p1', 'Parkett');
        INSERT INTO plan_variants (id, plan_id, name, is_base, created_at, updated_at)
            VALUES ('var1', 'p1', 'Standard', 1, '{ts}', '{ts}');
        INSERT INTO seats (id, plan_id, section_id, row_label, label, x, y, zone_id)
            VALUES ('s1', 'p1', 'sec1', '1', '1', 0, 0, 'z1'), ('s2', 'p1', 'sec1', '1', '2', 1, 0, 'z1'),
                   ('s3', 'p1', 'sec1', '1', '3', 2, 0, 'z1');
        INSERT INTO performances (id, venue_id, variant_id, title, starts_at, created_at, updated_at)
            VALUES ('perf1', 'v1', 'var1', 'Faust', '2026-12-24T18:00:00Z', '{ts}', '{ts}');
        INSERT INTO annual_products (id, organizer_id, name, validity_mode, months, price_cents, vat_code, channels,
                                     created_at, updated_at)
            VALUES ('a1', 'o1', 'Jahreskarte', 'from_purchase', 12, 4500, 'exempt', '["cashdesk","online"]',
                    '{ts}', '{ts}');
    """)
    # the previous main's core/sales/orders.py _store_order, verbatim in its columns
    record = {"id": "ord-cash", "number": "ABBBBBB-2026-000001", "node_id": DESK, "channel": "cashdesk",
              "customer_id": None, "delivery": "counter", "payment_method": "cash", "payment_reference": None,
              "given_cents": 5000, "operator": "Anna", "total_cents": 4500, "created_at": ts}
    shop = {**record, "id": "ord-shop", "number": "AHUB-2026-000001", "node_id": HUB, "channel": "shop",
            "delivery": "mail", "payment_method": "online", "payment_reference": "PSP-1", "given_cents": None,
            "operator": None}
    for order in (record, shop):
        columns = list(order)
        db.execute(f"INSERT INTO orders ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                   tuple(order.values()))
    db.executemany("INSERT INTO order_items (id, order_id, position, product_id, kind, price_cents, vat_code, card_id) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [("it-1", "ord-cash", 1, "a1", "annual", 4500, "exempt", None),
                    ("it-2", "ord-shop", 1, "a1", "annual", 4500, "exempt", None)])
    db.execute("INSERT INTO personalization_links (token_hash, item_id, expires_at, created_at) "
               "VALUES ('h1', 'it-2', '2027-01-30T10:00:00Z', ?)", (ts,))
    # the previous main's core/sales/tickets.py _store
    db.execute("INSERT INTO sales (id, number, node_id, channel, payment_method, payment_reference, total_cents, "
               "operator, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               ("sale-1", "TBBBBBB-2026-000001", DESK, "cashdesk", "card", "T-42", 6000, "Anna", ts))
    db.execute("INSERT INTO sales (id, number, node_id, channel, payment_method, payment_reference, total_cents, "
               "operator, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               ("sale-2", "THUB-2026-000001", HUB, "office", "transfer", None, 3000, "office", ts))
    db.executemany("INSERT INTO tickets (id, sale_id, performance_id, seat_id, zone_id, price_cents, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [("t-1", "sale-1", "perf1", "s1", "z1", 3000, ts), ("t-2", "sale-1", "perf1", "s2", "z1", 3000, ts),
                    ("t-3", "sale-2", "perf1", "s3", "z1", 3000, ts)])
    return db


def test_the_ledger_migration_moves_every_order_and_sale(tmp_path):
    db = old_database(tmp_path / "old.sqlite")
    number, name, sql = migrations()[7]
    _migrate(db, number, name, sql)
    assert schema_version(db) == 8
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    tables = {r["name"] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sales", "order_items"}.isdisjoint(tables) and {"orders", "order_lines", "payments"} <= tables
    apply_migrations(db)  # and every migration after it takes the moved data (today's code reads it below)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []

    assert [r["id"] for r in db.execute("SELECT id FROM orders ORDER BY id")] == \
        ["ord-cash", "ord-shop", "sale-1", "sale-2"]
    cash = orders.order_view(db, "ord-cash")
    assert (cash["payment_method"], cash["given_cents"], cash["operator"], cash["total_cents"]) == \
        ("cash", 5000, "Anna", 4500)
    assert [(i["kind"], i["product"], i["price_cents"]) for i in cash["items"]] == [("annual", "Jahreskarte", 4500)]
    sale = orders.order_view(db, "sale-1")
    assert (sale["channel"], sale["delivery"], sale["number"], sale["payment_method"], sale["payment_reference"]) == \
        ("cashdesk", "counter", "TBBBBBB-2026-000001", "card", "T-42")
    assert [(i["kind"], i["product"], i["ticket"]["seat_id"]) for i in sale["items"]] == \
        [("ticket", "Faust", "s1"), ("ticket", "Faust", "s2")]
    office = orders.order_view(db, "sale-2")
    assert office["channel"] == "phone" and office["payments"][0]["state"] == "pending"  # a transfer is owed
    # the shop's personalization link still finds its line
    assert db.execute("SELECT i.order_id FROM personalization_links l JOIN order_lines i ON i.id = l.item_id"
                      ).fetchone() == {"order_id": "ord-shop"}
    # payment ids keep their order's UUIDv7 time prefix; the desk's day is the same money as before
    assert all(p["id"].startswith(p["order_id"][:24]) for p in db.execute("SELECT id, order_id FROM payments"))
    assert orders.day_summary(db, DESK, NOW.date()) == [
        {"operator": "Anna", "payment_method": "card", "sales": 1, "total_cents": 6000},
        {"operator": "Anna", "payment_method": "cash", "sales": 1, "total_cents": 4500}]
    # one sold ticket per seat is still the database's rule
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, "
                   "created_at) VALUES ('t-9', 'sale-1', 't-1', 'perf1', 's1', 'z1', 0, 'x')")


def test_a_migration_that_breaks_a_reference_is_rolled_back(tmp_path):
    """Migrations run with foreign keys off (to rebuild tables) and are checked before they
    commit: one that leaves a dangling reference changes nothing."""
    db = old_database(tmp_path / "old.sqlite")
    with pytest.raises(RuntimeError, match="breaks 1 references"):
        _migrate(db, 8, "0008_bad.sql", "DELETE FROM orders WHERE id = 'ord-cash'")
    assert schema_version(db) == 7
    assert db.execute("SELECT count(*) AS n FROM orders").fetchone()["n"] == 2
