"""Transactions that guard seats and money are run again when PostgreSQL gives them up
(deadlock 40P01, serialization failure 40001): `core.base.storage.retried`, on the sale,
hold, checkout, payment and sync push functions.

The deadlock is real: a second session locks the performance row that a seat hold's
foreign key check needs, then asks for the hub's write lock, which the hold's transaction
holds. PostgreSQL breaks the cycle by failing the hold (its deadlock_timeout is the shorter);
the retried hold waits for the other session to finish and completes. Without the retry the
same scenario fails with 40P01 (so the test can fail)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from core.base import storage
from core.base.clock import utcnow
from core.base.pg.connection import WRITER_LOCK
from core.subscriptions import holds
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
