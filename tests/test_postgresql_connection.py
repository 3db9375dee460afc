"""The PostgreSQL connection adapter: sqlite3's interface on psycopg, `transaction()` with
savepoints and the hub's one write lock, the change feed's order under racing writers, and
real core services running unchanged on PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from bench.postgresql import annual_desk_sale
from core.base import sql, storage
from core.base.clock import utcnow
from core.base.errors import Conflict
from core.base.node import this_node
from core.base.numbering import next_number
from core.base.pg import connection
from core.base.pg.placeholders import numbered
from core.cards import cardcode
from core.catalog import resource
from core.catalog.annual import AnnualProducts
from core.catalog.common import Address
from core.catalog.customers import CustomerIn, Customers
from core.sales import orders
from core.subscriptions import holds
from hub.services import tokens
from tests.test_postgresql_schema import seed_sale

pytest_plugins = ("tests.pg",)  # the PostgreSQL fixtures: pg_cluster, pg_url, pg_empty_url, pg
NOW = "2026-12-02T20:00:00.000Z"
DEADLINE_S = 20


def add_operator(db, id_: str, name: str | None = None) -> None:
    db.execute("INSERT INTO operators (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
               (id_, name or id_, NOW, NOW))


def test_placeholders_are_numbered_outside_literals_only():
    assert numbered("SELECT '?', \"a?\", ? -- ?\n") == (b"SELECT '?', \"a?\", $1 -- ?\n", None)
    assert numbered("WHERE pool LIKE 'node:%' AND x = :state") == (b"WHERE pool ILIKE 'node:%' AND x = $1", ("state",))
    assert numbered("SELECT 'it''s ?' || ? || ?") == (b"SELECT 'it''s ?' || $1 || $2", None)
    assert numbered("WHERE a LIKE ? AND b NOT like 'LIKE'") == (b"WHERE a ILIKE $1 AND b NOT ILIKE 'LIKE'", None)
    assert numbered("WHERE a = :x AND b = :y OR c = :x AND d IS :y") == (
        b"WHERE a = $1 AND b = $2 OR c = $1 AND d IS NOT DISTINCT FROM $2", ("x", "y"))
    assert numbered("SELECT a::text, b -> 'k' FROM t WHERE c = ?") == (
        b"SELECT a::text, b -> 'k' FROM t WHERE c = $1", None)
    with pytest.raises(ValueError, match="unterminated"):
        numbered("SELECT 'open")
    with pytest.raises(ValueError, match="both"):
        numbered("SELECT ? WHERE a = :x")


def test_literals_reach_postgresql_unchanged(pg):
    row = pg.execute("SELECT 'a?b' AS q, 'node:%' AS pct, ? AS p, 'it''s' AS s", ("x",)).fetchone()
    assert row == {"q": "a?b", "pct": "node:%", "p": "x", "s": "it's"}
    row = pg.execute("SELECT :a AS a, :b AS b", {"a": "1", "b": "two"}).fetchone()
    assert row == {"a": "1", "b": "two"}
    assert pg.execute("UPDATE node SET name = name WHERE 1 = 0").fetchone() is None  # no result: None, as sqlite3


def test_transaction_nests_with_savepoints_and_rolls_back(pg):
    with storage.transaction(pg):
        add_operator(pg, "outer")
        with pytest.raises(RuntimeError), storage.transaction(pg):
            add_operator(pg, "inner")
            raise RuntimeError("undo the inner part only")
        assert pg.in_transaction
    names = [r["id"] for r in pg.execute("SELECT id FROM operators ORDER BY id")]
    assert names == ["outer"]
    with pytest.raises(RuntimeError), storage.transaction(pg):
        add_operator(pg, "gone")
        raise RuntimeError("undo all")
    assert not pg.in_transaction
    assert [r["id"] for r in pg.execute("SELECT id FROM operators")] == ["outer"]


def test_a_refused_statement_in_its_own_savepoint_undoes_only_itself(pg):
    """What the rules that catch an IntegrityError and go on do (holds, tickets): the one
    statement in `with transaction(db):`, a savepoint on both backends."""
    with storage.transaction(pg):
        add_operator(pg, "a", "Anna")
        with pytest.raises(sqlite3.IntegrityError) as caught, storage.transaction(pg):
            add_operator(pg, "b", "Anna")  # name is UNIQUE
        assert sql.integrity_problem(caught.value).kind == "unique"
        assert sql.integrity_problem(caught.value).detail == "operators.name"
        add_operator(pg, "c", "Carl")  # the transaction goes on
    assert [r["id"] for r in pg.execute("SELECT id FROM operators ORDER BY id")] == ["a", "c"]


def test_a_refused_statement_without_a_savepoint_ends_the_transaction(pg):
    """No statement savepoints (they cost two statements per write): an error the rule does
    not catch rolls the whole transaction back, as the rules expect; nothing half-done stays."""
    with pytest.raises(sqlite3.IntegrityError), storage.transaction(pg):
        add_operator(pg, "a", "Anna")
        add_operator(pg, "b", "Anna")
    assert not pg.in_transaction
    assert pg.execute("SELECT count(*) AS n FROM operators").fetchone()["n"] == 0


def test_pipelined_writes_answer_rowcount_returning_and_reads_in_order(pg):
    """Writes inside a transaction are sent without waiting (pipeline mode); whatever reads
    an answer (rowcount, RETURNING, a later read) sees every write before it."""
    with storage.transaction(pg):
        add_operator(pg, "a", "Anna")
        add_operator(pg, "b", "Bert")
        assert pg.execute("UPDATE operators SET active = 0 WHERE id IN ('a', 'b')").rowcount == 2
        renamed = pg.execute("UPDATE operators SET name = 'Berta' WHERE id = 'b' RETURNING name").fetchone()
        assert renamed == {"name": "Berta"}
        add_operator(pg, "c", "Carl")
        assert [r["id"] for r in pg.execute("SELECT id FROM operators WHERE active = 0 ORDER BY id")] == ["a", "b"]
    assert pg.execute("SELECT count(*) AS n FROM operators").fetchone()["n"] == 3


def test_a_refused_pipelined_write_is_reported_by_commit_and_undone(pg):
    """A refused write whose answer nobody waited for fails the COMMIT (never a silent loss),
    and the whole transaction is rolled back; the session goes on."""
    with pytest.raises(sqlite3.IntegrityError, match="operators.name"), storage.transaction(pg):
        add_operator(pg, "a", "Anna")
        add_operator(pg, "b", "Anna")  # refused, reported only at COMMIT (or the next read)
    assert not pg.in_transaction
    add_operator(pg, "c", "Carl")
    assert [r["id"] for r in pg.execute("SELECT id FROM operators")] == ["c"]


def test_a_refused_pipelined_write_leaves_no_statement_wrongly_taken_for_prepared(pg):
    """The pipeline hazard of prepared statements: a statement is prepared (Parse) in the same
    pipeline as its first use, and an earlier write refused in that pipeline makes the server
    skip the Parse. The wire counts a statement as prepared only when its Parse came back OK,
    so the same statement, used again after the refusal, is prepared again and works."""
    update = "UPDATE operators SET active = 1 WHERE id = ?"
    add_operator(pg, "c", "Carl")
    for _ in range(2):
        with pytest.raises(sqlite3.IntegrityError, match="operators.name"), storage.transaction(pg):
            add_operator(pg, "a", "Carl")  # refused, its answer not waited for
            pg.execute(update, ("a",))  # its Parse in the same pipeline: skipped by the server
            add_operator(pg, "b", "Bert")
        assert not pg.in_transaction
    with storage.transaction(pg):
        add_operator(pg, "a", "Anna")
        pg.execute(update, ("a",))
        add_operator(pg, "b", "Bert")
        assert pg.execute("SELECT count(*) AS n FROM operators WHERE id = ?", ("b",)).fetchone()["n"] == 1
    pg.execute(update, ("b",))
    assert [r["id"] for r in pg.execute("SELECT id FROM operators ORDER BY id")] == ["a", "b", "c"]
    prepared = [r["statement"] for r in pg.execute("SELECT statement FROM pg_prepared_statements")]
    assert prepared.count("UPDATE operators SET active = 1 WHERE id = $1") == 1


def test_statements_prepared_after_a_rollback_in_the_pipeline_stay_prepared(pg):
    """Prepared statements are not transactional: those prepared before a ROLLBACK (of a
    savepoint or of the transaction) stay, and go on being used. (psycopg forgot its own after
    a ROLLBACK and deallocated them late, behind the pipeline: 'prepared statement "_pg3_N"
    does not exist' at the next use; the wire has no such step.)"""
    add_operator(pg, "c", "Carl")
    count = "SELECT count(*) AS n FROM operators WHERE name = ?"
    with storage.transaction(pg):
        with pytest.raises(sqlite3.IntegrityError), storage.transaction(pg):
            add_operator(pg, "a", "Carl")  # refused in its savepoint: ROLLBACK TO
        for _ in range(3):
            assert pg.execute(count, ("Carl",)).fetchone()["n"] == 1
            add_operator(pg, f"x{_}")
    with pytest.raises(sqlite3.IntegrityError), storage.transaction(pg):
        add_operator(pg, "b", "Carl")  # refused at COMMIT: the transaction rolled back
    for _ in range(3):
        assert pg.execute(count, ("Anna",)).fetchone()["n"] == 0
        with storage.transaction(pg):
            assert pg.execute(count, ("Carl",)).fetchone()["n"] == 1


def test_a_refused_write_inside_a_savepoint_is_raised_before_the_savepoint_ends(pg):
    """Inside a savepoint writes are pipelined too (a round trip per write cost most of a
    checkout's round trips); the RELEASE that ends it is answered, so the refusal is raised
    inside the `with` block, the savepoint undone alone (the writes after the refused one
    too), and the transaction goes on: what every rule that catches a refusal relies on."""
    add_operator(pg, "c", "Carl")
    tried = []
    with storage.transaction(pg):
        with pytest.raises(sqlite3.IntegrityError, match="operators.name"), storage.transaction(pg):
            for id_, name in (("a", "Anna"), ("b", "Carl"), ("d", "Dora")):
                tried.append(id_)
                add_operator(pg, id_, name)
        assert tried == ["a", "b", "d"]  # reported by the RELEASE, not by the second insert
        assert pg.execute("SELECT count(*) AS n FROM operators WHERE id IN ('a', 'd')").fetchone()["n"] == 0
        add_operator(pg, "e", "Emil")
    assert [r["id"] for r in pg.execute("SELECT id FROM operators ORDER BY id")] == ["c", "e"]


@pytest.mark.parametrize("rows", [2, 13, 300])
def test_executemany_inserts_rows_in_multi_row_batches_in_order(pg, rows):
    """A plain INSERT of many rows goes as multi-row INSERTs (batches of 256, 128, ..., 1): every
    row stored, in order for the change feed's triggers; a refused row refuses the batch and,
    as any refusal, the transaction (its savepoint)."""
    names = [(f"o{i:03}", f"Name {i}") for i in range(rows)]
    with storage.transaction(pg):
        pg.executemany("INSERT INTO operators (id, name, active, created_at, updated_at) "
                       "VALUES (?, ?, 1, '2026-01-01', '2026-01-01')", names)
    stored = pg.execute("SELECT id, name FROM operators ORDER BY id").fetchall()
    assert [(r["id"], r["name"]) for r in stored] == names
    fed = [r["key"] for r in pg.execute("SELECT key FROM changes WHERE tbl = 'operators' ORDER BY seq")]
    assert fed == [f'["{i}"]' for i, _ in names]
    with storage.transaction(pg):
        with pytest.raises(sqlite3.IntegrityError, match="operators"), storage.transaction(pg):
            pg.executemany("INSERT INTO operators (id, name, active, created_at, updated_at) "
                           "VALUES (?, ?, 1, '2026-01-01', '2026-01-01')", [("new1", "New"), names[-1]])
        add_operator(pg, "x", "Xaver")
    assert pg.execute("SELECT count(*) AS n FROM operators").fetchone()["n"] == rows + 1


def test_refusals_repeated_in_one_transaction_leave_it_usable(pg):
    """Many refused writes in a row (as a busy seat map sees), in and out of a transaction:
    each is undone alone and the session goes on (no half-prepared statement left behind)."""
    add_operator(pg, "a", "Anna")
    for _ in range(8):
        with pytest.raises(sqlite3.IntegrityError):
            add_operator(pg, "a", "Anna")  # autocommit: its own transaction
    with storage.transaction(pg):
        for _ in range(8):
            with pytest.raises(sqlite3.IntegrityError), storage.transaction(pg):
                add_operator(pg, "a", "Anna")
        add_operator(pg, "b", "Bert")
    assert [r["id"] for r in pg.execute("SELECT id FROM operators ORDER BY id")] == ["a", "b"]


def test_writers_queue_on_the_write_lock_and_readers_do_not(pg, pg_url):
    """Two writers never overlap (as SQLite's BEGIN IMMEDIATE): the second waits until the
    first commits, then sees its row; a reader meanwhile is not blocked."""
    other = connection.connect(pg_url)
    reader = connection.connect(pg_url)
    inside, release, second_done = threading.Event(), threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with storage.transaction(pg):
            add_operator(pg, "first")
            pg.execute("SELECT 1").fetchone()  # the pipelined write (and the lock before it) answered
            inside.set()
            assert release.wait(DEADLINE_S)

    def second() -> None:
        with storage.transaction(other):
            seen.append(other.execute("SELECT count(*) AS n FROM operators").fetchone()["n"])
            add_operator(other, "second")
        second_done.set()

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert inside.wait(DEADLINE_S)
    threads.append(threading.Thread(target=second))
    threads[1].start()
    assert not second_done.wait(0.5)  # still queued behind the first writer
    assert reader.execute("SELECT count(*) AS n FROM operators").fetchone()["n"] == 0  # readers never wait
    release.set()
    assert second_done.wait(DEADLINE_S)
    for thread in threads:
        thread.join(DEADLINE_S)
    assert seen == [1]  # the second writer saw the first one's commit
    other.close()
    reader.close()


def test_generation_changes_when_another_connection_commits(pg, pg_url):
    before = sql.generation(pg)
    pg.execute("SELECT count(*) FROM operators").fetchall()
    assert sql.generation(pg) == before
    other = connection.connect(pg_url)
    add_operator(other, "x")
    other.close()
    assert sql.generation(pg) != before


def test_executemany_writes_all_rows_or_none(pg):
    sql_ = "INSERT INTO operators (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)"
    pg.executemany(sql_, [(f"m{i}", f"M{i}", NOW, NOW) for i in range(3)])  # autocommit: one transaction
    with pytest.raises(sqlite3.IntegrityError), storage.transaction(pg):
        pg.executemany(sql_, [("n1", "N1", NOW, NOW), ("n2", "M0", NOW, NOW)])  # the second name is taken
    assert [r["id"] for r in pg.execute("SELECT id FROM operators ORDER BY id")] == ["m0", "m1", "m2"]


def test_like_ignores_the_case_of_ascii_letters_as_on_sqlite(pg, tmp_path):
    """A LIKE search (the lists' search for short words) ignores the case of ASCII letters on
    both backends, and neither folds Ü (SQLite folds ASCII only; so does ILIKE in the hub's
    C-ctype database)."""
    lite = storage.connect(tmp_path / "hub.db")
    for db in (lite, pg):
        add_operator(db, "m", "MÜLLER")
        query = "SELECT count(*) AS n FROM operators WHERE name LIKE ?"
        assert [db.execute(query, (p,)).fetchone()["n"] for p in ("m%", "%LLER", "mü%", "%ÜL%")] == [1, 1, 0, 1]
    lite.close()


def test_bools_are_stored_as_integers_like_sqlite(pg):
    pg.execute("INSERT INTO operators (id, name, active, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
               ("o", "O", False, NOW, NOW))
    assert pg.execute("SELECT active FROM operators").fetchone() == {"active": 0}


def test_change_feed_never_lets_a_pull_skip_a_row(pg, pg_url):
    """Writers race (each commit is slowed after its change row is written, and some write
    outside `transaction()`); a puller reads `seq > cursor` in a loop and advances its cursor
    as an edge does. Every committed change must reach it: none skipped, none twice."""
    writers, rows_each = 6, 15
    stop = threading.Event()
    pulled: list[int] = []
    errors: list[BaseException] = []

    def write(n: int) -> None:
        db = connection.connect(pg_url)
        try:
            for i in range(rows_each):
                if i % 3 == 0:
                    add_operator(db, f"w{n}-{i}")  # autocommit: a write of its own
                    continue
                with storage.transaction(db):
                    add_operator(db, f"w{n}-{i}")
                    db.execute("SELECT pg_sleep(0.002)")  # hold the commit back: the window a skip needs
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
        finally:
            db.close()

    def pull() -> None:
        db = connection.connect(pg_url)
        cursor = 0
        while True:
            last_round = stop.is_set()
            for row in db.execute("SELECT seq FROM changes WHERE seq > ? ORDER BY seq", (cursor,)):
                pulled.append(row["seq"])
                cursor = row["seq"]
            if last_round:
                break
        db.close()

    puller = threading.Thread(target=pull)
    puller.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stop.set()
    puller.join(DEADLINE_S)
    assert not errors
    check = connection.connect(pg_url)
    committed = [r["seq"] for r in check.execute("SELECT seq FROM changes WHERE tbl = 'operators' ORDER BY seq")]
    check.close()
    assert len(committed) == writers * rows_each
    assert pulled == committed


def test_core_services_run_unchanged_on_postgresql(pg):
    """A customer created, read and changed through the catalog's one resource service (its
    number from a gapless series), and an API token, on PostgreSQL as on SQLite."""
    address = Address(street="Weg 1", postcode="10115", town="Berlin", country="DE")
    created = resource.create(pg, Customers(), CustomerIn(first_name="Eva", last_name="Ölbaum", address=address,
                                                          email="eva@example.org"))
    assert created["number"].startswith("KD-") and created["number"].endswith("-000001")
    again = resource.create(pg, Customers(), CustomerIn(first_name="Jo", last_name="Ng", address=address))
    assert again["number"].endswith("-000002")
    assert resource.get(pg, Customers(), created["id"])["last_name"] == "Ölbaum"
    changed = resource.update(pg, Customers(), created["id"], resource.patch_of(CustomerIn)(last_name="Apfel"))
    assert changed["last_name"] == "Apfel"
    page = resource.list_(pg, Customers(), resource.ListQuery(limit=10))
    assert [c["last_name"] for c in page["items"]] == ["Apfel", "Ng"]
    feed = [r["key"] for r in pg.execute("SELECT key FROM changes WHERE tbl = 'customers' ORDER BY seq")]
    assert feed == [f'["{created["id"]}"]', f'["{again["id"]}"]', f'["{created["id"]}"]']
    secret, token = tokens.create_token(pg, "shop", "shop")
    assert tokens.lookup(pg, secret)["id"] == token["id"]
    with storage.transaction(pg):
        assert next_number(pg, "RE", 2026, "hub-id-elsewhere") is not None


def test_the_seams_json_and_null_safe_comparisons_work_as_written_for_sqlite(pg):
    """`core.base.sql` writes SQLite's JSON; the schema's functions answer it the same way."""
    values = pg.execute(f"SELECT value FROM ({sql.json_values()}) AS j", ('["a", 2, null, [1]]',)).fetchall()
    assert [v["value"] for v in values] == ["a", "2", None, "[1]"]
    row = pg.execute(f"SELECT {sql.json_field('body', 'card_id')} AS card, body ->> 1 AS second "
                     "FROM (SELECT ? AS body) AS b", ('{"card_id": "c-1"}',)).fetchone()
    assert row == {"card": "c-1", "second": None}
    assert pg.execute("SELECT ? ->> 1 AS x", ('["k", "v"]',)).fetchone() == {"x": "v"}
    add_operator(pg, "a", "Anna")
    add_operator(pg, "b", "Bert")
    joined = pg.execute(f"SELECT {sql.joined('name')} AS names FROM (SELECT name FROM operators ORDER BY name) AS o")
    assert joined.fetchone() == {"names": "Anna, Bert"}
    assert pg.execute("SELECT count(*) AS n FROM operators WHERE name IS NOT ?", ("Anna",)).fetchone() == {"n": 1}
    assert pg.execute("SELECT count(*) AS n FROM operators WHERE name IS ?", (None,)).fetchone() == {"n": 0}
    assert pg.execute("SELECT instr(?, 'KD') AS at, instr('x', 'y') AS nowhere", ("Ref KD-1",)).fetchone() == {
        "at": 5, "nowhere": 0}


def test_an_annual_ticket_order_is_placed_unchanged_on_postgresql(pg, tmp_path):
    """The hub's trust (root and node key: files in the data folder, rows in PostgreSQL), a
    catalog made through the resource service, and `place_order` selling a personalized annual
    ticket and a voucher with signed cards: the sale path as on SQLite."""
    signer, order = annual_desk_sale(pg, tmp_path)
    product = {"id": order.lines[0].product_id}
    placed = orders.place_order(pg, this_node(pg), signer, order, channel="cashdesk", now=utcnow())
    annual, voucher = (item["card"] for item in placed["items"])
    assert placed["total_cents"] == 12_000
    assert (annual["kind"], annual["holder_name"], voucher["kind"]) == ("annual", "Erika Mustermann", "voucher")
    assert cardcode.decode(annual["code"]).payload.kind == "annual"
    shop = resource.list_(pg, AnnualProducts(), resource.ListQuery(), audience="shop")  # json_each(channels)
    assert [p["id"] for p in shop["items"]] == [product["id"]]
    fed = {r["tbl"] for r in pg.execute("SELECT DISTINCT tbl FROM changes")}
    assert {"organizers", "venues", "annual_products", "card_products", "cards"} <= fed


def test_a_taken_seat_is_a_conflict_naming_it_not_an_error(pg):
    """Seat holds on PostgreSQL: a seat held or sold by someone else is refused by the
    database (primary key, trigger) and reaches the buyer as the same Conflict as on SQLite."""
    with storage.transaction(pg):
        seed_sale(pg)  # seat 'seat' of performance 'perf' is sold (ticket t1)
        pg.execute("INSERT INTO seats (id, plan_id, section_id, row_label, label, x, y, zone_id) "
                   "VALUES ('seat2', 'plan', 'sec', '1', '2', 1, 0, 'zone')")
    now = utcnow()
    first = holds.hold(pg, "token:a", [("perf", "seat2")], now=now)
    assert first["seats"] == [{"performance_id": "perf", "seat_id": "seat2"}]
    with pytest.raises(Conflict, match="Parkett row 1 seat 2 is held by another buyer"):
        holds.hold(pg, "token:b", [("perf", "seat2")], now=now)
    with pytest.raises(Conflict, match="Parkett row 1 seat 1 is already sold"):
        holds.hold(pg, "token:b", [("perf", "seat")], now=now)
    taken = holds.held_by_others("token:b")(pg, ["perf"])  # json_each and `holder IS NOT ?`
    assert taken == {"perf": {"seat2"}}
    assert holds.held_by_others("token:a")(pg, ["perf"]) == {}


def test_values_go_in_and_come_out_as_through_a_psycopg_cursor(pg):
    """The wire dumps and loads with psycopg's adapters: None, bools as 0/1, big integers,
    floats, text with any character, bytes, and numeric sums as int or float."""
    row = pg.execute("SELECT ? AS none, ? AS yes, ? AS big, ? AS f, ? AS t, ? AS b, "
                     "(SELECT sum(x) FROM (VALUES (2::bigint), (3)) v(x)) AS total, 1.5::numeric AS half",
                     (None, True, 2**62, 0.25, "Grüße ✓ '?'", b"\x00\xff")).fetchone()
    assert row == {"none": None, "yes": 1, "big": 2**62, "f": 0.25, "t": "Grüße ✓ '?'", "b": b"\x00\xff",
                   "total": 5, "half": 1.5}
    assert type(row["total"]) is int


def test_a_cursor_reads_rows_one_by_one_in_chunks_and_all_at_once(pg):
    """fetchone, fetchmany, fetchall and iteration read the same result from where the last read
    stopped; iteration loads a chunk at a time (a long result is not turned into Python at once)."""
    query = "SELECT g AS n FROM generate_series(1, ?) g ORDER BY g"
    cursor = pg.execute(query, (1200,))
    assert cursor.fetchone() == {"n": 1}
    assert [r["n"] for r in cursor.fetchmany(3)] == [2, 3, 4]
    assert [r["n"] for r in cursor][:2] == [5, 6]
    assert cursor.fetchall() == [] and cursor.fetchone() is None
    cursor = pg.cursor()
    cursor.row_factory = None
    assert cursor.execute(query, (3,)).fetchall() == [(1,), (2,), (3,)]
    assert [column[0] for column in cursor.description] == ["n"]
    assert sum(1 for _ in pg.execute(query, (1200,))) == 1200


def test_a_ddl_command_makes_the_session_forget_its_prepared_statements(pg):
    """A table that changes changes what `SELECT *` returns: after an ALTER the wire ran, the
    statements are prepared anew (no 'cached plan must not change result type')."""
    add_operator(pg, "a", "Anna")
    read = "SELECT * FROM operators WHERE id = ?"
    assert "nickname" not in pg.execute(read, ("a",)).fetchone()
    pg.execute("ALTER TABLE operators ADD COLUMN nickname text DEFAULT 'Annie'")
    assert pg.execute(read, ("a",)).fetchone()["nickname"] == "Annie"
    with storage.transaction(pg):
        assert pg.execute(read, ("a",)).fetchone()["nickname"] == "Annie"


def test_the_sessions_prepared_statements_are_kept_within_their_capacity(pg):
    """Past its capacity the wire closes the statement used longest ago: the server never holds
    more, and a closed statement used again is simply prepared again."""
    wire = connection._wire_of(pg.raw)
    wire.capacity, wire.prepared = 5, type(wire.prepared)()
    pg.raw.execute("DEALLOCATE ALL")
    for round_ in range(2):
        for k in range(12):
            assert pg.execute(f"SELECT {k} + ? AS n", (round_,)).fetchone() == {"n": k + round_}
    held = pg.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()["n"]
    assert held <= 5 + 1  # the count's own statement may be the sixth before it closes another


def test_a_long_pipeline_of_unanswered_writes_is_sent_and_answered(pg):
    """Thousands of writes without an answer, a few MB in all: the wire sends while it reads,
    so neither side waits on a full buffer."""
    wide = "x" * 2000
    with storage.transaction(pg):
        for k in range(3000):
            pg.execute("INSERT INTO operators (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                       (f"o{k:04}", f"{wide}{k}", NOW, NOW))
    assert pg.execute("SELECT count(*) AS n FROM operators").fetchone()["n"] == 3000


def test_a_session_lost_mid_transaction_raises_and_is_not_reused(pg, pg_url):
    """The server ends the session (a restart, an administrator) while a transaction waits: the
    statement raises at once (no hang), and the session says it is broken, so a pool drops it."""
    import psycopg

    add_operator(pg, "a")
    with pytest.raises(psycopg.OperationalError), storage.transaction(pg):
        add_operator(pg, "b")
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pg.raw.info.backend_pid,))
        pg.execute("SELECT count(*) AS n FROM operators").fetchone()
    assert pg.raw.broken or pg.raw.closed


def test_a_second_thread_on_the_same_session_waits_for_the_transaction_to_end(pg):
    """Two threads on one session (a test beside a served hub): the second one's read waits
    until the first one's transaction has ended, instead of landing in its pipeline, and then
    sees the commit."""
    import threading

    began, read = threading.Event(), []
    reader = threading.Thread(target=lambda: (began.wait(DEADLINE_S), read.append(
        pg.execute("SELECT count(*) AS n FROM operators").fetchone()["n"])))
    reader.start()
    with storage.transaction(pg):
        add_operator(pg, "a")
        began.set()
        reader.join(0.3)  # the reader is blocked meanwhile (a real wait: the session is ours)
        assert reader.is_alive() and read == []
        add_operator(pg, "b")
    reader.join(DEADLINE_S)
    assert read == [2]


class RoundTrips:
    """Counts the session's round trips (syncs that had something to collect)."""

    def __init__(self, db, monkeypatch) -> None:
        self.count = 0
        wire, sync = db._wire, db._wire.sync

        def counting() -> None:
            self.count += bool(wire.expected)
            sync()

        monkeypatch.setattr(wire, "sync", counting)


def test_reads_in_a_transaction_are_answered_together_when_the_first_is_read(pg, monkeypatch):
    """Inside a transaction a read is sent and collected when its cursor is first read, with
    everything sent before it: a rule that asks three questions before reading any answer costs
    one round trip (order_view, a pass's dates), and each cursor gets its own answer."""
    add_operator(pg, "a", "Anna")
    add_operator(pg, "b", "Bert")
    trips = RoundTrips(pg, monkeypatch)
    with storage.transaction(pg):
        anna = pg.execute("SELECT name FROM operators WHERE id = ?", ("a",))
        add_operator(pg, "c", "Carl")  # a write between the questions: seen by the later ones only
        both = pg.execute("SELECT count(*) AS n FROM operators")
        bert = pg.execute("SELECT name FROM operators WHERE id = ?", ("b",))
        assert trips.count == 0  # BEGIN, the lock, three reads and a write: all still on their way
        assert anna.fetchone() == {"name": "Anna"}
        assert trips.count == 1
        assert bert.fetchone() == {"name": "Bert"} and both.fetchone() == {"n": 3}
        assert trips.count == 1
    assert trips.count == 2  # the COMMIT


def test_a_refused_read_is_raised_when_it_is_read_or_by_the_end_of_its_savepoint(pg):
    """A read sent and not read yet that the server refuses (an INSERT ... RETURNING of a taken
    name) raises when its cursor is read; never read, it is raised by the RELEASE of its
    savepoint (inside the `with` block, so the savepoint is undone alone) or by the COMMIT."""
    add_operator(pg, "c", "Carl")
    insert = "INSERT INTO operators (id, name, created_at, updated_at) VALUES (?, ?, ?, ?) RETURNING id"
    with storage.transaction(pg):
        with pytest.raises(sqlite3.IntegrityError, match="operators.name"), storage.transaction(pg):
            refused = pg.execute(insert, ("a", "Carl", NOW, NOW))
            refused.fetchone()
        with pytest.raises(sqlite3.IntegrityError, match="operators.name"), storage.transaction(pg):
            pg.execute(insert, ("b", "Carl", NOW, NOW))  # never read
        add_operator(pg, "d", "Dora")
    with pytest.raises(sqlite3.IntegrityError, match="operators.name"), storage.transaction(pg):
        pg.execute(insert, ("e", "Carl", NOW, NOW))  # never read: the COMMIT fails
    assert [r["id"] for r in pg.execute("SELECT id FROM operators ORDER BY id")] == ["c", "d"]


def test_a_release_waits_for_an_answer_only_when_its_block_has_one_outstanding(pg, monkeypatch):
    """A savepoint's RELEASE is answered only while a statement of its block is unanswered
    (the refusal must come out inside the block); a block whose last statement was read, or an
    empty one, is released with the next round trip. Savepoints still nest and undo as on SQLite."""
    trips = RoundTrips(pg, monkeypatch)
    with storage.transaction(pg):
        with storage.transaction(pg):
            assert pg.execute("SELECT count(*) AS n FROM operators").fetchone() == {"n": 0}
        with storage.transaction(pg):
            pass
        assert trips.count == 1  # the read; both RELEASEs go with what follows
        with storage.transaction(pg):
            add_operator(pg, "a", "Anna")
            with storage.transaction(pg):
                pass  # empty, inside a block with an unanswered write: goes on
        assert trips.count == 2  # the outer block's RELEASE waits for its write
        with pytest.raises(Conflict), storage.transaction(pg):
            add_operator(pg, "b", "Bert")
            with storage.transaction(pg):
                assert pg.execute("SELECT count(*) AS n FROM operators").fetchone() == {"n": 2}
            raise Conflict("undo Bert")  # a rule refusing after an inner block was released unanswered
    assert [r["id"] for r in pg.execute("SELECT id FROM operators ORDER BY id")] == ["a"]
