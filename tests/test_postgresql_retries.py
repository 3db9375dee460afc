"""Transactions that guard seats and money are run again when PostgreSQL gives them up
(deadlock 40P01, serialization failure 40001): `core.base.storage.retried`, on the sale,
hold, checkout, payment and sync push functions. And, on a hub served over HTTP: a seat
taken under the buyer's feet (the unique index refusing the ticket) is a 409, and a hold
waiting for the write lock waits in the executor, not on the event loop.

The deadlock is real: a second session locks the performance row that a seat hold's
foreign key check needs, then asks for the hub's write lock, which the hold's transaction
holds. PostgreSQL breaks the cycle by failing the hold (its deadlock_timeout is the shorter);
the retried hold waits for the other session to finish and completes. Without the retry the
same scenario fails with 40P01 (so the test can fail)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from bench import presale
from core.base import storage
from core.base.clock import utcnow
from core.base.pg.connection import WRITER_LOCK
from core.subscriptions import holds
from hub.app import make_app, open_hub
from hub.services import mail, tokens
from hub.services.hold_sweeper import SWEEPER, VACUUM_EVERY_S
from hub.services.print_batches import PRINTING
from hub.web.offload import OFFLOAD
from tests.test_postgresql_schema import seed_sale

pytest_plugins = ("tests.pg",)  # the PostgreSQL fixtures: pg_cluster, pg_url, pg_empty_url, pg
DEADLINE_S = 20


def waiting_on_a_lock(url: str, pid: int) -> bool:
    with psycopg.connect(url, autocommit=True) as probe:
        row = probe.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return bool(row) and row[0] == "Lock"


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.01)


def hold_in_a_deadlock(pg, pg_url: str, hold: Callable) -> dict | BaseException:
    """Run *hold* for seat2 while another session closes a lock cycle with it; its outcome."""
    with storage.transaction(pg):
        seed_sale(pg)
        pg.execute("INSERT INTO seats (id, plan_id, section_id, row_label, label, x, y, zone_id) "
                   "VALUES ('seat2', 'plan', 'sec', '1', '2', 1, 0, 'zone')")
    pg.raw.execute("SET deadlock_timeout = '300ms'")  # the hold's session finds the cycle first
    other = psycopg.connect(pg_url)
    other.execute("SET deadlock_timeout = '60s'")
    other.execute("SELECT 1 FROM performances WHERE id = 'perf' FOR UPDATE")  # outside the write lock
    outcome: list[dict | BaseException] = []

    def buyer() -> None:
        try:
            outcome.append(hold(pg, "token:a", [("perf", "seat2")], now=utcnow()))
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=buyer)
    thread.start()
    try:
        until(lambda: waiting_on_a_lock(pg_url, pg.raw.info.backend_pid), "the hold waits for the row")
        other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))  # the cycle: granted once the hold gives up
        other.commit()
        thread.join(DEADLINE_S)
    finally:
        other.close()
    assert not thread.is_alive() and outcome
    return outcome[0]


def test_a_hold_chosen_as_deadlock_victim_is_run_again_and_completes(pg, pg_url, caplog):
    caplog.set_level(logging.INFO, logger="tessera.storage")
    held = hold_in_a_deadlock(pg, pg_url, holds.hold)
    assert isinstance(held, dict), held
    assert held["seats"] == [{"performance_id": "perf", "seat_id": "seat2"}]
    assert pg.execute("SELECT holder FROM seat_holds WHERE seat_id = 'seat2'").fetchone() == {"holder": "token:a"}
    assert any("40P01" in r.getMessage() for r in caplog.records)  # it was a real deadlock, run again


def test_without_the_retry_the_same_deadlock_fails_the_hold(pg, pg_url):
    failed = hold_in_a_deadlock(pg, pg_url, holds.hold.__wrapped__)
    assert isinstance(failed, sqlite3.OperationalError) and failed.sqlstate == "40P01", failed
    assert not pg.in_transaction
    assert pg.execute("SELECT count(*) AS n FROM seat_holds").fetchone()["n"] == 0


def test_only_the_outermost_transaction_is_run_again(pg):
    """Inside another transaction the failure goes up to whoever opened it (it cannot be
    re-run alone: the whole transaction was given up)."""
    calls = []

    @storage.retried
    def victim(db) -> None:
        calls.append(1)
        error = sqlite3.OperationalError("deadlock detected")
        error.sqlstate = "40P01"
        raise error

    with pytest.raises(sqlite3.OperationalError), storage.transaction(pg):
        victim(pg)
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(sqlite3.OperationalError):
        victim(pg)
    assert len(calls) == storage.RETRIES + 1


# --- a hub on PostgreSQL over real HTTP: the shop's write paths off the event loop, a seat
# taken under the buyer's feet is a 409 ----------------------------------------------------------


@dataclass
class PgShop:
    url: str
    folder: Path
    token: str
    ring: str
    dates: list[str]


@pytest.fixture(scope="module")
def pg_shop(pg_cluster, tmp_path_factory) -> PgShop:
    """The presale bench's hub (sample catalog, the ring, a shop token; 40 seats left per
    date) on PostgreSQL, made once for this module."""
    url = pg_cluster.create_database()
    folder = tmp_path_factory.mktemp("pg-shop") / "hub"
    token, ring, dates = presale.prepare(folder, presale.Size(leave_free=40), database=url)
    return PgShop(url, folder, token, ring, dates)


@pytest.fixture
async def served(pg_shop, aiohttp_client):
    """The hub app on loopback HTTP (started: its executor and pool are open)."""
    db = open_hub(pg_shop.folder)
    client = await aiohttp_client(make_app(db))
    assert client.app[OFFLOAD].executor is not None
    yield client
    await client.close()
    db.close()


def auth(pg_shop: PgShop, key: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {pg_shop.token}"}
    return {**headers, "Idempotency-Key": key} if key else headers


def lock_waiters(url: str, exclude: int) -> list[str]:
    """wait_event of every backend of this database waiting on a heavyweight lock."""
    with psycopg.connect(url, autocommit=True) as probe:
        rows = probe.execute("SELECT wait_event FROM pg_stat_activity WHERE datname = current_database() "
                             "AND wait_event_type = 'Lock' AND pid <> %s", (exclude,)).fetchall()
    return [r[0] for r in rows]


async def until_async(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        await asyncio.sleep(0.01)


async def test_a_hold_waiting_for_the_write_lock_does_not_stop_the_hubs_other_requests(pg_shop, served):
    """Another hub process holds the write lock: the shop's hold waits for it in a thread of
    the executor while the same process goes on answering (inline, a reader never waits)."""
    other = psycopg.connect(pg_shop.url)
    other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
    safety = threading.Timer(DEADLINE_S, other.rollback)  # never hang: a blocked loop only delays
    safety.start()
    try:
        hold = asyncio.create_task(served.post("/api/v1/shop/seat-holds", json={"product_id": pg_shop.ring},
                                               headers=auth(pg_shop)))
        await until_async(lambda: "advisory" in lock_waiters(pg_shop.url, other.info.backend_pid),
                          "the hold waits for the write lock")
        listed = await served.get("/api/v1/shop/subscription-products", headers=auth(pg_shop))
        assert listed.status == 200 and not hold.done()  # answered while the hold still waits
        other.rollback()
        answer = await hold
        assert answer.status == 201, await answer.text()
    finally:
        safety.cancel()
        other.close()


async def test_a_seat_sold_under_the_buyers_feet_is_a_409_seat_taken_never_a_500(pg_shop, served):
    """The unique index on sold seats refuses the order's ticket (another session sold the
    seat after the order had checked it, outside the write lock and without triggers): the
    buyer gets 409 naming the seat, and nothing of the order is stored."""
    held = await served.post("/api/v1/shop/seat-holds", json={"product_id": pg_shop.ring}, headers=auth(pg_shop))
    assert held.status == 201, await held.text()
    hold = await held.json()
    seat = hold["seats"][0]
    other = psycopg.connect(pg_shop.url)
    other.execute("SET session_replication_role = replica")  # no triggers: no write lock, no hold check
    other.execute("INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, "
                  "created_at) VALUES ('rogue', 'rogue', 'rogue', %s, %s, %s, 100, '2026-12-03T00:00:00Z')",
                  (seat["performance_id"], seat["seat_id"], seat["zone_id"]))
    db = open_hub(pg_shop.folder)
    before = db.execute("SELECT count(*) AS n FROM subscriptions").fetchone()["n"]
    try:
        order = {"product_id": pg_shop.ring, "hold_id": hold["id"], "delivery": "mail", "payment_reference": "psp-1",
                 "customer": {"first_name": "Greta", "last_name": "Sommer", "email": "greta@example.org",
                              "street": "Am Wall 12", "postcode": "28195", "town": "Bremen"}}
        sold = asyncio.create_task(served.post("/api/v1/shop/subscription-orders", json=order,
                                               headers=auth(pg_shop, "rogue-race")))
        await until_async(lambda: "transactionid" in lock_waiters(pg_shop.url, other.info.backend_pid),
                          "the order's ticket waits on the unique index")
        other.commit()
        answer = await sold
        problem = await answer.json()
        assert answer.status == 409, problem
        assert "already sold" in problem["detail"]
        assert problem["seats"] == [{"performance_id": seat["performance_id"], "seat_id": seat["seat_id"]}]
        assert db.execute("SELECT count(*) AS n FROM subscriptions").fetchone()["n"] == before
        assert db.execute("SELECT count(*) AS n FROM tickets WHERE performance_id = ? AND seat_id = ? AND "
                          "status = 'sold'", (seat["performance_id"], seat["seat_id"])).fetchone()["n"] == 1
    finally:
        other.close()
        db.close()


def admin_token(pg_shop: PgShop) -> str:
    db = open_hub(pg_shop.folder)
    try:
        return tokens.create_token(db, "off-loop test", "admin")[0]
    finally:
        db.close()


async def test_writes_waiting_for_the_write_lock_leave_the_hubs_loop_free(pg_shop, served):
    """Another hub process holds the write lock. The hold sweeper's delete, the mail worker's
    claim, the print desk's lease, a staff write through the API (a new token, as the office's
    writes go) and a personalization page's rate limit count all wait for it in threads of the
    executor, while the same process answers a GET within a deadline; released, each completes."""
    admin = {"Authorization": f"Bearer {admin_token(pg_shop)}"}
    other = psycopg.connect(pg_shop.url)
    other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
    safety = threading.Timer(DEADLINE_S, other.rollback)  # never hang: a blocked loop only delays
    safety.start()
    try:
        waiting = [asyncio.create_task(served.app[SWEEPER].round()),
                   asyncio.create_task(served.app[mail.WORKER].round()),
                   asyncio.create_task(served.app[PRINTING].batch("card")),
                   asyncio.create_task(served.post("/api/v1/tokens", json={"name": "Kasse", "role": "shop"},
                                                   headers=admin)),
                   asyncio.create_task(served.get("/p/no-such-link"))]
        # at least these five: the app's own workers may be in a round of theirs, waiting too
        await until_async(lambda: lock_waiters(pg_shop.url, other.info.backend_pid).count("advisory") >= 5,
                          "the sweeper, the mail, the print lease, the token and the rate limit wait for the lock")
        started = time.monotonic()
        listed = await asyncio.wait_for(served.get("/api/v1/shop/subscription-products", headers=auth(pg_shop)), 5)
        assert listed.status == 200 and time.monotonic() - started < 5
        assert not any(task.done() for task in waiting)  # answered while the writes still wait
        other.rollback()
        swept, mailed, printed, created, page = await asyncio.gather(*waiting)
        assert swept == VACUUM_EVERY_S and mailed > 0 and printed["jobs"] == 0
        assert created.status == 201, await created.text()
        assert page.status == 404, await page.text()  # counted, then no such link
    finally:
        safety.cancel()
        other.close()


def sessions(url: str) -> int:
    """Sessions on the database at *url*, this probe's own not counted."""
    with psycopg.connect(url, autocommit=True) as probe:
        return probe.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                             "AND pid <> pg_backend_pid()").fetchone()[0]


async def test_a_served_hubs_pooled_sessions_all_end_when_it_stops(pg_shop, aiohttp_client):
    """hub.toml `[storage] connections` sizes the pool and the executor; the pool's sessions
    (grown by writes waiting at once) all end when the app stops, before its database closes."""
    settings_file = pg_shop.folder / "hub.toml"
    kept = settings_file.read_text()
    settings_file.write_text(kept.replace("[storage]\n", "[storage]\nconnections = 3\n"))
    db = open_hub(pg_shop.folder)
    try:
        before = sessions(pg_shop.url)  # the process's own connection
        client = await aiohttp_client(make_app(db))
        offload = client.app[OFFLOAD]
        assert offload.workers == offload.pool.size == offload.executor._max_workers == 3
        other = psycopg.connect(pg_shop.url)
        other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
        pages = [asyncio.create_task(client.get(f"/p/no-such-link-{i}")) for i in range(3)]
        await until_async(lambda: lock_waiters(pg_shop.url, other.info.backend_pid).count("advisory") == 3,
                          "three pooled sessions wait for the write lock")
        other.close()
        assert [page.status for page in await asyncio.gather(*pages)] == [404] * 3
        await until_async(lambda: sessions(pg_shop.url) == before + 3, "the pool grown to 3, the other gone")
        await client.close()
        await until_async(lambda: sessions(pg_shop.url) == before, "the pool's sessions to end")
    finally:
        settings_file.write_text(kept)
        db.close()
