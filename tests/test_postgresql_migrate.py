"""`tessera hub migrate-to-postgresql` (issue 18): the sample hub, after a desk enrolled,
synced and sold offline and the office sold and invoiced through the API, moved into an empty
PostgreSQL database by the real CLI; every table's rows compared (counts and content); the
migrated hub answers the API as the SQLite one did, keeps numbering and the change feed
above the old values, and the same desk syncs on with only the hub's address changed.

The refusals (a target that is not empty, a folder without a hub, a bad URL, a running hub,
an older hub) each one line, changing nothing; a bad row mid-copy and a kill -9 of the CLI
mid-copy on a bigger hub leave the target empty and the source as it was. Real SQLite files,
a real PostgreSQL cluster (tests/pg.py), real HTTP on loopback, real subprocesses."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import tuple_row

from cli.main import main as cli_main
from core.base import storage
from core.base.clock import utcnow
from core.base.pg.copy import source_columns, source_tables
from core.sales import contingents
from core.sales.tickets import SaleIn, sell
from edge.sync.client import SyncClient
from hub.app import make_app, open_hub
from hub.services import migrate_postgresql
from tests.helpers import call, wait_until
from tests.test_cli import ROOT, TESSERA, Server, run
from tests.test_postgresql_hub import LISTS, counted
from tests.test_sync import enrolled, first_performance_seats

pytest_plugins = ("tests.pg",)  # the PostgreSQL fixtures: pg_cluster, pg_url, pg_empty_url, pg
# the source hub (sample_hub, empty_hub) is SQLite: --backend=postgresql skips the module
pytestmark = pytest.mark.sqlite_only("the migration's source is a SQLite hub")


def sqlite_rows(path: Path, text_factory: type = str) -> dict[str, list[str]]:
    """Every copied table of the SQLite hub database at *path*: its rows, as sorted reprs
    (texts as bytes with *text_factory* bytes: a text that is not UTF-8 is read too)."""
    db = sqlite3.connect(path)
    try:
        columns = {t: source_columns(db, t) for t in source_tables(db)[0]}
        db.text_factory = text_factory
        return {t: sorted(repr(r) for r in db.execute(f'SELECT {", ".join(names)} FROM "{t}"'))
                for t, names in columns.items()}
    finally:
        db.close()


def pg_rows(url: str, columns_from: Path, tables: list[str]) -> dict[str, list[str]]:
    """The same tables on PostgreSQL, columns in SQLite's order (read from *columns_from*)."""
    source = sqlite3.connect(columns_from)
    try:
        columns = {t: source_columns(source, t) for t in tables}
    finally:
        source.close()
    with psycopg.connect(url, row_factory=tuple_row) as db:
        return {t: sorted(repr(r) for r in db.execute(f'SELECT {", ".join(columns[t])} FROM "{t}"'))
                for t in tables}


def pg_tables(url: str) -> list[str]:
    with psycopg.connect(url) as db:
        return [r[0] for r in db.execute("SELECT table_name FROM information_schema.tables "
                                         "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")]


def migrate(folder: Path, url: str) -> subprocess.CompletedProcess:
    return run("hub", "migrate-to-postgresql", "--from", str(folder), "--to", url, check=False)


def migrate_here(folder: Path, url: str, capsys: pytest.CaptureFixture) -> subprocess.CompletedProcess:
    """The same command run by `cli.main.main` in this process: its exit code, stdout and stderr,
    without a Python start-up and the hub's imports per call (~1.5 s each, more under load). A real
    process runs it in each test below too."""
    capsys.readouterr()
    code = cli_main(["hub", "migrate-to-postgresql", "--from", str(folder), "--to", url])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["tessera", "hub", "migrate-to-postgresql"], code, out.out, out.err)


def printed_counts(stdout: str) -> dict[str, tuple[int, int]]:
    return {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^([a-z_0-9]+) +(\d+) +(\d+)$", stdout, re.M)}


def refused(proc: subprocess.CompletedProcess, words: str) -> None:
    """One line on stderr, naming the reason, and exit 1."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("tessera: error: ")]
    assert errors == proc.stderr.splitlines()[-1:], proc.stderr  # after any progress lines, one error line
    assert words in errors[0], proc.stderr


async def phone_order_with_invoice(api, db) -> tuple[dict, dict]:
    ids = api.hub.ids["annual_products"]
    customer = db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]
    body = {"lines": [{"product_id": ids[0], "quantity": 1, "holders": [{"name": "Erika Mustermann"}]}],
            "customer_id": customer, "delivery": "pickup", "payment_method": "transfer"}
    order = await call(api, "POST", "/orders", body, status=201)
    return order, await call(api, "POST", f"/orders/{order['id']}/invoices", {}, status=201)


async def list_counts(api) -> dict[str, tuple[int, int | None]]:
    return {path: counted(await call(api, "GET", path, status=200)) for path in LISTS}


@pytest.mark.slow
async def test_a_used_sqlite_hub_moves_to_postgresql_and_serves_on(hub, tmp_path, aiohttp_client, aiohttp_server,
                                                                    pg_empty_url):
    # the hub in use: a desk enrolled, pulled, sold offline and pushed; the office sold and invoiced
    api = await aiohttp_client(make_app(hub.db))
    api.hub = hub
    desk_folder, desk, client = await enrolled(hub, tmp_path)
    node = desk.execute("SELECT * FROM node").fetchone()
    performance, seats = first_performance_seats(hub, 6)
    contingents.move_seats(hub.db, performance, seats, contingents.node_pool(node["id"]), utcnow())
    await client.round()
    sell(desk, node, SaleIn(performance_id=performance, seat_ids=seats[:2], payment_method="cash"),
         pool=contingents.node_pool(node["id"]), channel="cashdesk", now=utcnow())
    assert (await client.round()).pushed == 1
    old_order, old_invoice = await phone_order_with_invoice(api, hub.db)
    before_lists = await list_counts(api)
    old_feed = hub.db.execute("SELECT max(seq) AS n FROM changes").fetchone()["n"]
    for table in ("sync_ops", "node_scopes", "tickets", "invoices", "cards", "orders"):
        assert hub.db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] > 0, table
    await client.close()
    await api.close()
    await hub.server.close()
    hub.db.close()  # the hub is stopped
    before = sqlite_rows(hub.dir / "hub.sqlite")
    keys = {p.name: p.read_bytes() for p in hub.dir.glob("*.key")}

    done = migrate(hub.dir, pg_empty_url)
    assert done.returncode == 0, done.stderr
    assert printed_counts(done.stdout) == {t: (len(rows), len(rows)) for t, rows in before.items()}
    assert "customers_search" in done.stdout and "full-text index" in done.stdout
    assert re.search(r"^sync_ops: 1 rows copied", done.stderr, re.M)
    moved = list(hub.dir.glob("hub.sqlite.migrated-*"))
    assert not (hub.dir / "hub.sqlite").exists() and len(moved) == 1
    assert f'database = "{pg_empty_url}"' in (hub.dir / "hub.toml").read_text()
    assert {p.name: p.read_bytes() for p in hub.dir.glob("*.key")} == keys
    # every row of every table, equal (the moved SQLite file is the one that was copied)
    assert pg_rows(pg_empty_url, moved[0], list(before)) == before

    db = open_hub(hub.dir)  # the folder now opens on PostgreSQL
    try:
        assert db.dialect == "postgresql"
        server = await aiohttp_server(make_app(db))
        api = await aiohttp_client(server)
        api.hub = hub
        assert await list_counts(api) == before_lists
        # numbering and identity columns go on above the copied values: no unique violation
        new_order, new_invoice = await phone_order_with_invoice(api, db)
        assert new_order["number"] > old_order["number"] and new_invoice["number"] > old_invoice["number"]
        assert db.execute("SELECT min(seq) AS n FROM changes WHERE seq > ?", (old_feed,)).fetchone()["n"] \
            == old_feed + 1  # the feed continues right after the highest position an edge may have seen
        # the desk's cursor stays valid: the hub knows where it stands, and everything after it is new
        cursor = desk.execute("SELECT cursor FROM sync_state").fetchone()["cursor"]
        scope = db.execute("SELECT pulled_seq FROM node_scopes WHERE node_id = ?", (node["id"],)).fetchone()
        assert 0 < scope["pulled_seq"] <= cursor <= old_feed
        assert db.execute("SELECT min(seq) AS n FROM changes WHERE seq > ?", (cursor,)).fetchone()["n"] == cursor + 1

        # the desk syncs on with the migrated hub, its cursor kept; only the hub's address changed
        # (as `tessera edge serve --hub URL` gives it)
        client = SyncClient(desk, desk_folder, hub_url=str(server.make_url("")))
        try:
            sell(desk, node, SaleIn(performance_id=performance, seat_ids=seats[2:4], payment_method="cash"),
                 pool=contingents.node_pool(node["id"]), channel="cashdesk", now=utcnow())
            with storage.transaction(db):  # a change made on the migrated hub, in the desk's scope
                db.execute("UPDATE performances SET title = title || ' (neu)' WHERE id = ?", (performance,))
            pending = db.execute("SELECT count(*) AS n FROM changes WHERE seq > ?", (cursor,)).fetchone()["n"]
            done = await client.round()
            assert done.pushed == 1 and 0 < done.pulled <= pending  # nothing skipped (below), nothing twice
            assert desk.execute("SELECT title FROM performances WHERE id = ?", (performance,)).fetchone()["title"] \
                == db.execute("SELECT title FROM performances WHERE id = ?", (performance,)).fetchone()["title"]
            sold = db.execute("SELECT seat_id FROM tickets WHERE performance_id = ? AND status = 'sold' ORDER BY "
                              "seat_id", (performance,)).fetchall()
            assert sorted(r["seat_id"] for r in sold if r["seat_id"] in seats) == sorted(seats[:4])
            ops = db.execute("SELECT count(*) AS n FROM sync_ops WHERE node_id = ?", (node["id"],)).fetchone()["n"]
            assert ops == 2  # the op pushed before the move and the new one, each once
            top = db.execute("SELECT max(seq) AS n FROM changes").fetchone()["n"]
            assert desk.execute("SELECT cursor FROM sync_state").fetchone()["cursor"] == top
            assert db.execute("SELECT pulled_seq FROM node_scopes WHERE node_id = ?",
                              (node["id"],)).fetchone()["pulled_seq"] == top
            again = await client.round()
            assert (again.pushed, again.pulled) == (0, 0)
        finally:
            await client.close()
    finally:
        db.close()


@pytest.mark.slow
def test_the_feed_continues_above_the_highest_cursor_an_edge_reported(sample_hub, pg_empty_url):
    """A hub restored from a backup may hold fewer feed rows than an edge has pulled: the
    feed goes on above that edge's cursor, not just above the rows copied (in-process)."""
    db = sample_hub.db
    top = db.execute("SELECT max(seq) AS n FROM changes").fetchone()["n"]
    db.execute("INSERT INTO node_scopes (node_id, name, role, enrolled_at, pulled_seq) "
               "VALUES ('n1', 'Kasse 1', 'cashdesk', '2026-01-01T00:00:00Z', ?)", (top + 500,))
    db.close()
    lines: list[str] = []
    done = migrate_postgresql.migrate(sample_hub.dir, pg_empty_url, lines.append)
    assert done.feed_position == top + 500 and any(line.startswith("changes: ") for line in lines)
    assert {c.table: c.sqlite for c in done.counts}["node_scopes"] == 1 and all(c.equal for c in done.counts)
    migrated = open_hub(sample_hub.dir)
    try:
        migrated.execute("UPDATE organizers SET name = name || '!' WHERE id = (SELECT min(id) FROM organizers)")
        assert migrated.execute("SELECT max(seq) AS n FROM changes").fetchone()["n"] == top + 501
    finally:
        migrated.close()


@pytest.mark.slow
def test_a_database_owner_without_superuser_can_migrate(sample_hub, pg_cluster):
    """Triggers are switched off per table as their owner (ALTER TABLE ... DISABLE TRIGGER
    USER), not with session_replication_role, which needs superuser. The migrated tables have
    planner statistics (ANALYZE after the copy, as their owner): without them the statements
    the hub prepares keep plans made for empty tables."""
    role, name = f"boxoffice_{os.getpid()}", f"owned_{os.getpid()}"
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        admin.execute(f"CREATE DATABASE {name} OWNER {role} TEMPLATE template0 ENCODING 'UTF8' "
                      "LC_COLLATE 'C' LC_CTYPE 'C'")
    url = pg_cluster.url(name).replace("postgres@", f"{role}@")
    try:
        sample_hub.db.close()
        lines: list[str] = []
        done = migrate_postgresql.migrate(sample_hub.dir, url, lines.append)
        assert all(c.equal for c in done.counts) and sum(c.postgresql for c in done.counts) > 3000
        assert not [line for line in lines if "ANALYZE failed" in line], lines
        seats = {c.table: c.postgresql for c in done.counts}["seats"]
        with psycopg.connect(url) as db:
            assert seats > 500 and db.execute(  # the sample's seats: 1031
                "SELECT reltuples FROM pg_class WHERE relname = 'seats'").fetchone()[0] == seats
            assert db.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'seats'").fetchone()[0] >= 5
            assert db.execute("SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NULL AND "
                              "n_live_tup > 0").fetchone()[0] == 0  # every table with rows analyzed
            assert db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is False
            assert db.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'D'"
                              ).fetchone()[0] == 0  # every trigger on again
    finally:
        pg_cluster.drop_database(url)
        with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


@pytest.mark.slow
def test_refusals_are_one_line_and_change_nothing(sample_hub, tmp_path, pg_url, pg_empty_url, capsys):
    sample_hub.db.close()
    folder = sample_hub.dir
    before = sqlite_rows(folder / "hub.sqlite")
    manual = run("hub", "migrate-to-postgresql", "--help").stdout
    assert "--from DIR" in manual and "--to URL" in manual and "empty" in manual
    refused(migrate(folder, pg_url), "is not empty")  # holds the hub schema already (a real process)
    refused(migrate_here(tmp_path / "nowhere", pg_empty_url, capsys), "holds no SQLite hub")
    refused(migrate_here(folder, "mysql://hub@localhost/hub", capsys), "must be a postgresql:// URL")
    no_server = migrate_here(folder, "postgresql://hub:secret@/nodb?host=/nonexistent&port=1", capsys)
    refused(no_server, "cannot connect")
    assert "secret" not in no_server.stderr
    server = Server("hub", "serve", "--data", str(folder), "--no-advertise")  # a running hub
    try:
        refused(migrate_here(folder, pg_empty_url, capsys), "is in use")
    finally:
        assert server.stop() == 0
    (folder / "hub.toml").write_text('[storage]\ndatabase = "postgresql://x@/y"\n')
    refused(migrate_here(folder, pg_empty_url, capsys), "already names a database")
    (folder / "hub.toml").unlink()
    old = sqlite3.connect(folder / "hub.sqlite")
    old.execute(f"PRAGMA user_version = {len(storage.migrations()) - 1}")
    old.close()
    refused(migrate_here(folder, pg_empty_url, capsys), "open it once with this version")
    old = sqlite3.connect(folder / "hub.sqlite")
    old.execute(f"PRAGMA user_version = {len(storage.migrations())}")
    old.close()
    assert pg_tables(pg_empty_url) == []
    assert (folder / "hub.sqlite").exists() and not list(folder.glob("hub.sqlite.migrated-*"))
    assert not (folder / "hub.toml").exists()
    assert sqlite_rows(folder / "hub.sqlite") == before


BAD_ROWS = {
    "nul": ("UPDATE customers SET town = 'Bre' || char(0) || 'men' WHERE id = (SELECT max(id) FROM customers)",
            "table customers: PostgreSQL text fields cannot contain NUL"),
    "type": ("UPDATE seats SET x = 'left' WHERE id = (SELECT max(id) FROM seats)",
             "seats.x: 1 row(s) hold a text value"),
    "utf8": ("UPDATE customers SET town = CAST(x'42ff' AS TEXT) WHERE id = (SELECT max(id) FROM customers)",
             "reading hub.sqlite failed: Could not decode to UTF-8"),
}


@pytest.mark.slow
@pytest.mark.parametrize("bad", list(BAD_ROWS))
def test_a_bad_row_mid_copy_leaves_the_target_empty(sample_hub, pg_empty_url, bad, capsys):
    """A NUL character (which PostgreSQL text cannot hold) or bytes that are not UTF-8 in the
    last customer: the copy fails after many tables were sent; text in a number column:
    refused before its table is sent."""
    change, words = BAD_ROWS[bad]
    sample_hub.db.execute(change)
    sample_hub.db.close()
    (sample_hub.dir / "hub.toml").write_text('[mail]\n# kept\n')
    before = sqlite_rows(sample_hub.dir / "hub.sqlite", bytes)
    failed = migrate_here(sample_hub.dir, pg_empty_url, capsys)
    refused(failed, "nothing was written")
    assert words in failed.stderr
    assert pg_tables(pg_empty_url) == []
    assert sqlite_rows(sample_hub.dir / "hub.sqlite", bytes) == before
    assert (sample_hub.dir / "hub.toml").read_text() == '[mail]\n# kept\n'


@pytest.mark.slow
def test_kill_9_mid_copy_leaves_the_target_empty_and_a_second_run_completes(sample_hub, pg_cluster, pg_empty_url):
    """A bigger hub (500,000 more feed rows): the CLI killed once it reports progress inside
    `changes`; the server rolls the copy back, the source is as it was, and the run again
    copies everything (hub.toml's other sections kept)."""
    db = sample_hub.db
    with storage.transaction(db):
        top = db.execute("SELECT max(seq) AS n FROM changes").fetchone()["n"]
        db.executemany("INSERT INTO changes (seq, tbl, key) VALUES (?, 'customers', ?)",
                       ((top + i, f'["{i:032d}"]') for i in range(1, 500_001)))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    (sample_hub.dir / "hub.toml").write_text('[storage]\nsynchronous = "normal"\n\n[mail]\n')
    before = sqlite_rows(sample_hub.dir / "hub.sqlite")
    proc = subprocess.Popen([*TESSERA, "hub", "migrate-to-postgresql", "--from", str(sample_hub.dir),
                             "--to", pg_empty_url], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    for line in proc.stderr:
        if re.match(r"changes: \d+ of \d+ rows", line):
            # meanwhile no one else gets at the file: a hub started now could not write rows the copy misses
            probe = sqlite3.connect(sample_hub.dir / "hub.sqlite", timeout=0.2)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                probe.execute("BEGIN IMMEDIATE")
            probe.close()
            proc.send_signal(signal.SIGKILL)
            break
    assert proc.wait(60) == -signal.SIGKILL
    database = pg_empty_url.split("?")[0].rsplit("/", 1)[1]
    with psycopg.connect(pg_cluster.url(), autocommit=True) as admin:
        wait_until(lambda: admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                         (database,)).fetchone()[0] == 0, 30, what="the killed copy's session ended")
    assert pg_tables(pg_empty_url) == []
    assert (sample_hub.dir / "hub.sqlite").exists() and sqlite_rows(sample_hub.dir / "hub.sqlite") == before

    again = migrate(sample_hub.dir, pg_empty_url)
    assert again.returncode == 0, again.stderr
    assert printed_counts(again.stdout)["changes"] == (len(before["changes"]),) * 2
    assert (sample_hub.dir / "hub.toml").read_text() == \
        f'[storage]\ndatabase = "{pg_empty_url}"\nsynchronous = "normal"\n\n[mail]\n'
    migrated = open_hub(sample_hub.dir)
    try:
        assert migrated.execute("SELECT count(*) AS n FROM changes").fetchone()["n"] == len(before["changes"])
    finally:
        migrated.close()


URL = "postgresql://hub:pw@db.example/tessera"


@pytest.mark.parametrize(("before", "after"), [
    (None, f'[storage]\ndatabase = "{URL}"\n'),
    ("", f'[storage]\ndatabase = "{URL}"\n'),
    ('[mail]\nfrom = "kasse@example.org"\n', f'[mail]\nfrom = "kasse@example.org"\n\n[storage]\ndatabase = "{URL}"\n'),
    ('# hub\n[storage]  # durability\nsynchronous = "normal"\n[print]\n',
     f'# hub\n[storage]  # durability\ndatabase = "{URL}"\nsynchronous = "normal"\n[print]\n'),
])
def test_hub_toml_gets_the_database_and_keeps_the_rest(before, after):
    assert migrate_postgresql.with_database(before, URL, "hub.toml") == after


@pytest.mark.parametrize(("before", "words"), [
    ('[storage]\ndatabase = "postgresql://x@/y"\n', "already names a database"),
    ('storage.synchronous = "full"\n', "as a table of its own"),
    ('[storage]\ndatabase = ""\n', "without changing other keys"),
    ("[storage\n", "invalid TOML"),
])
def test_hub_toml_that_cannot_take_the_database_is_refused_first(before, words):
    with pytest.raises(migrate_postgresql.MigrationError, match=words):
        migrate_postgresql.with_database(before, URL, "hub.toml")


def test_messages_never_show_the_password():
    assert migrate_postgresql.shown_url(URL) == "postgresql://hub:***@db.example/tessera"
    assert migrate_postgresql.shown_url("postgresql://hub@/tessera") == "postgresql://hub@/tessera"
