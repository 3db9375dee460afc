"""Several hub processes on one PostgreSQL database (issue 18; docs/hub-processes.md).

Shared state raced from several connections at once (threads, each with its own connection
and event loop, as separate processes would be): a rate limit allows its limit in total, a
lease has one holder, a queued mail is sent once. Then real `tessera hub serve` processes
(tests/hub_processes.py) on one database (slow lane): 4 processes selling the same ring seats
to 40+ round-robin shop clients while their print workers print the cards of phone orders
(each card once); holds taken on one process expire on another; wrong enrollment codes
spread over the processes share one limit; two desks pushing to two processes while a gate
pulls from a third; kill -9 of the process a push is in flight to, the desk pushing again
through the same address, now served by another process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable

from core.base import pg as postgresql
from core.base.node import init_node
from hub.services import leases
from hub.services.mail import MailSettings, enqueue, send_due
from hub.services.rate_limits import RateLimit
from tests.test_mail import Smtp, free_port

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)


def race(n: int, url: str, work: Callable[[object, int], object]) -> list:
    """Run *work(connection, i)* in *n* threads at once, each on its own connection to *url*;
    their results in thread order (an exception in a thread fails the test)."""
    start = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        db = postgresql.connect(url)
        try:
            start.wait()
            results[i] = work(db, i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    return results


# --- shared state raced through separate connections -------------------------------------------------------


def test_a_rate_limit_allows_its_limit_in_total_across_connections(pg_url):
    """Four connections (four hub processes) taking hits for one client and for many: the
    per-client limit and the overall limit hold in total, not per connection."""
    clock = lambda: 1000.0  # noqa: E731 - one moment: nothing leaves the window
    per_client = RateLimit("enroll", limit=5, window_s=60, overall=12, clock=clock)

    def guesses(db, i: int) -> list[bool]:
        return [per_client.take(db, "203.0.113.9").allowed for _ in range(10)]

    allowed = race(4, pg_url, guesses)
    assert sum(map(sum, allowed)) == 5
    spread = race(4, pg_url, lambda db, i: [per_client.take(db, f"198.51.100.{i}{k}").allowed for k in range(10)])
    assert sum(map(sum, spread)) == 12 - 5  # the overall limit counts every client's hits
    db = postgresql.connect(pg_url)
    try:
        assert per_client.hits(db) == 12
        later = RateLimit("enroll", limit=5, window_s=60, overall=12, clock=lambda: 1061.0)
        assert later.take(db, "203.0.113.9").allowed  # the window moved on
        assert later.hits(db) == 1  # and the old hits are gone from the table
        assert db.execute("SELECT count(*) AS n FROM rate_hits").fetchone()["n"] == 1
    finally:
        db.close()


def test_a_lease_has_one_holder_until_given_back_or_expired(pg_url):
    holders = [f"process-{i}" for i in range(6)]
    won = race(6, pg_url, lambda db, i: leases.take(db, "print-batch-card", holders[i], NOW, dt.timedelta(minutes=5)))
    assert sum(won) == 1
    winner = holders[won.index(True)]
    db = postgresql.connect(pg_url)
    try:
        other = next(h for h in holders if h != winner)
        assert leases.holder(db, "print-batch-card", NOW) == winner
        assert not leases.take(db, "print-batch-card", other, NOW + dt.timedelta(minutes=4), dt.timedelta(minutes=5))
        leases.give_back(db, "print-batch-card", other)  # not its lease: nothing happens
        assert leases.holder(db, "print-batch-card", NOW) == winner
        # the winner dies without giving it back: after the expiry another process takes over
        assert leases.take(db, "print-batch-card", other, NOW + dt.timedelta(minutes=6), dt.timedelta(minutes=5))
        leases.give_back(db, "print-batch-card", other)
        assert leases.holder(db, "print-batch-card", NOW) is None
    finally:
        db.close()


def test_queued_mail_is_sent_once_by_workers_racing_on_separate_connections(pg_url):
    """Four mail workers (one per hub process) sending the same queue at once: every mail
    arrives exactly once, because the due rows are claimed under the write lock."""
    smtp = Smtp(free_port())
    smtp.start()
    try:
        db = postgresql.connect(pg_url)
        init_node(db, "hub", "hub")
        ids = [enqueue(db, to=f"kunde{i}@example.org", subject=f"Bestellung {i}", text="Danke!", now=NOW)
               for i in range(60)]
        settings = MailSettings(host="127.0.0.1", port=smtp.port, sender="Tessera <t@example.org>")

        def worker(conn, i: int) -> int:
            sent = 0
            while True:  # rounds until this worker finds nothing due (the others may have it)
                done, failed = asyncio.run(send_due(conn, settings, NOW))
                assert failed == 0
                if not done:
                    return sent
                sent += done

        sent = race(4, pg_url, worker)
        assert sum(sent) == 60
        received = [msg for _, _, msg in smtp.inbox.received]
        assert len(received) == 60
        ids_seen = sorted(line.split(b"<", 1)[1].split(b"@", 1)[0].decode() for raw in received
                          for line in raw.splitlines() if line.lower().startswith(b"message-id:"))
        assert ids_seen == sorted(ids)
        assert db.execute("SELECT count(*) AS n FROM mail_queue WHERE sent_at IS NOT NULL AND attempts = 1"
                          ).fetchone()["n"] == 60
        db.close()
    finally:
        smtp.stop()
