"""The seats' sale log and the sold seats each process keeps from it (issue 18, the rush).

`seat_sales` gets a row from the tickets' triggers each time a seat becomes sold or stops being
sold; `core.subscriptions.seat_loader` keeps each date's sold seats per process and reads only
the log's rows since the last one it saw. These tests hold the cache to one standard: whatever
happened (sales, cancellations, restores, a sale rolled back after the cache saw it, another
connection, a writer racing the reader), its answer is exactly what the tickets say.
"""

from __future__ import annotations

import random
import threading

import pytest

from core.base.clock import utcnow
from core.base.node import this_node
from core.base.sql import is_postgresql
from core.base.storage import transaction
from core.sales import contingents
from core.sales.tickets import SaleIn, sell
from core.subscriptions import seat_loader
from hub.app import open_hub

pytestmark = pytest.mark.both_backends


def house_seats(db, perf: str, count: int) -> list[str]:
    """*count* seats of the hub's pool at *perf*, in a fixed order."""
    return sorted(contingents.seats_of(db, perf))[:count]


def sold_now(db, perfs: list[str]) -> dict[str, set[str]]:
    """What the tickets say, read directly."""
    out: dict[str, set[str]] = {}
    for r in db.execute("SELECT performance_id, seat_id FROM tickets WHERE status = 'sold'").fetchall():
        if r["performance_id"] in perfs:
            out.setdefault(r["performance_id"], set()).add(r["seat_id"])
    return out


def cached(db, perfs: list[str]) -> dict[str, set[str]]:
    return {p: set(s) for p, s in seat_loader.seat_state(db, perfs)[seat_loader.SOLD].items()}


def sell_one(db, perf: str, seat: str) -> None:
    sell(db, this_node(db), SaleIn(performance_id=perf, seat_ids=[seat], payment_method="transfer"),
         pool=contingents.HUB, channel="phone", now=utcnow())


def set_status(db, perf: str, seat: str, old: str, new: str) -> None:
    with transaction(db):
        db.execute("UPDATE tickets SET status = ? WHERE id = (SELECT id FROM tickets WHERE performance_id = ? "
                   "AND seat_id = ? AND status = ? LIMIT 1)", (new, perf, seat, old))


@pytest.fixture
def ring(sample_hub) -> list[str]:
    return sample_hub.ids["rings"]["B"]


def test_the_log_has_a_row_for_each_change_of_a_seats_sold_state_in_order(sample_hub, ring):
    db = sample_hub.db
    a, b = house_seats(db, ring[0], 2)
    start = db.execute("SELECT coalesce(max(pos), 0) AS n FROM seat_sales").fetchone()["n"]
    sell_one(db, ring[0], a)
    set_status(db, ring[0], a, "sold", "cancelled")
    set_status(db, ring[0], a, "cancelled", "sold")  # a cancellation taken back
    sell_one(db, ring[0], b)
    with transaction(db):
        db.execute("DELETE FROM tickets WHERE performance_id = ? AND seat_id = ?", (ring[0], b))
    rows = db.execute("SELECT pos, performance_id, seat_id, sold FROM seat_sales WHERE pos > ? ORDER BY pos",
                      (start,)).fetchall()
    assert [(r["seat_id"], r["sold"]) for r in rows] == [(a, 1), (a, 0), (a, 1), (b, 1), (b, 0)]
    assert all(r["performance_id"] == ring[0] for r in rows)
    assert [r["pos"] for r in rows] == sorted(r["pos"] for r in rows)


def test_after_the_first_read_a_dates_sold_seats_come_from_the_log_alone(sample_hub, ring):
    """The tickets are read once per date; later reads take only the log's new rows (proof: a
    ticket written while the log's trigger is switched off is not seen by the cache, while a
    date read whole sees it). That is why only the triggers may write a seat's sold state."""
    db = sample_hub.db
    a, b = house_seats(db, ring[1], 2)
    sell_one(db, ring[1], a)
    assert cached(db, ring[:2]) == {ring[1]: {a}}
    with transaction(db):
        db.execute("DROP TRIGGER seat_sales_sold" + (" ON tickets" if is_postgresql(db) else ""))
    sell_one(db, ring[1], b)
    assert cached(db, ring[:2]) == {ring[1]: {a}}  # from the cache and the log
    assert cached(db, [ring[2], ring[1]])[ring[1]] == {a}  # still the cache for ring[1]
    seat_loader._SOLD.clear()
    assert cached(db, ring[:2]) == {ring[1]: {a, b}}  # read whole


def test_sales_cancellations_and_another_connection_are_seen(sample_hub, ring):
    db = sample_hub.db
    other = open_hub(sample_hub.dir)  # another connection to the same hub (another process would do the same)
    try:
        seats = house_seats(db, ring[0], 4)
        assert cached(db, ring) == sold_now(db, ring) == {}
        for seat in seats[:3]:
            sell_one(other, ring[0], seat)
        sell_one(other, ring[4], seats[3])
        assert cached(db, ring) == sold_now(db, ring) == {ring[0]: set(seats[:3]), ring[4]: {seats[3]}}
        set_status(other, ring[0], seats[1], "sold", "cancelled")
        assert cached(db, ring) == {ring[0]: {seats[0], seats[2]}, ring[4]: {seats[3]}}
        assert cached(other, ring) == cached(db, ring) == sold_now(db, ring)
    finally:
        other.close()


def test_a_sale_the_cache_saw_inside_a_transaction_that_rolled_back_is_noticed(sample_hub, ring):
    db = sample_hub.db
    a, b = house_seats(db, ring[2], 2)
    sell_one(db, ring[2], a)
    assert cached(db, ring) == {ring[2]: {a}}
    with pytest.raises(RuntimeError), transaction(db):
        sell_one(db, ring[2], b)
        assert cached(db, ring) == {ring[2]: {a, b}}  # its own sale, seen inside the transaction
        raise RuntimeError("the order fails after the seats were read")
    assert cached(db, ring) == sold_now(db, ring) == {ring[2]: {a}}
    # SQLite hands the rolled-back position out again, to another ticket: still noticed
    with pytest.raises(RuntimeError), transaction(db):
        sell_one(db, ring[2], b)
        cached(db, ring)
        raise RuntimeError("again")
    sell_one(db, ring[3], b)
    assert cached(db, ring) == sold_now(db, ring) == {ring[2]: {a}, ring[3]: {b}}


def test_more_rows_than_the_limit_since_the_last_read_reads_the_dates_afresh(sample_hub, ring, monkeypatch):
    db = sample_hub.db
    monkeypatch.setattr(seat_loader, "DELTA_LIMIT", 3)
    seats = house_seats(db, ring[5], 6)
    assert cached(db, ring) == {}
    for seat in seats:
        sell_one(db, ring[5], seat)
    assert cached(db, ring) == sold_now(db, ring) == {ring[5]: set(seats)}
    sell_one(db, ring[6], seats[0])
    assert cached(db, ring) == sold_now(db, ring)  # two rows: from the log


def test_any_mix_of_changes_and_reads_from_two_connections_answers_as_the_tickets(sample_hub, ring):
    db = sample_hub.db
    other = open_hub(sample_hub.dir)
    try:
        rng = random.Random(18)
        seats = {perf: house_seats(db, perf, 6) for perf in ring[:4]}
        for step in range(60):
            conn = rng.choice((db, other))
            perf = rng.choice(ring[:4])
            seat = rng.choice(seats[perf])
            sold = seat in sold_now(conn, [perf]).get(perf, set())
            action = rng.random()
            if action < 0.45 and not sold:
                if rng.random() < 0.25:  # sold, read, then rolled back
                    with pytest.raises(RuntimeError), transaction(conn):
                        sell_one(conn, perf, seat)
                        cached(conn, rng.sample(ring[:4], 2))
                        raise RuntimeError("rolled back")
                else:
                    sell_one(conn, perf, seat)
            elif action < 0.7 and sold:
                set_status(conn, perf, seat, "sold", "cancelled")
            elif action < 0.8 and not sold and conn.execute(
                    "SELECT 1 FROM tickets WHERE performance_id = ? AND seat_id = ? AND status = 'cancelled'",
                    (perf, seat)).fetchone():
                set_status(conn, perf, seat, "cancelled", "sold")
            asked = rng.sample(ring[:4], rng.randint(1, 4))
            reader = rng.choice((db, other))
            assert cached(reader, asked) == sold_now(reader, asked), f"step {step}"
            named = set(rng.sample(seats[perf], 3))  # a check of named seats: the same answer for those
            truth = {p: s & named for p, s in sold_now(reader, asked).items() if s & named}
            state = seat_loader.seat_state(rng.choice((db, other)), asked, seats=named)[seat_loader.SOLD]
            assert {p: set(s) for p, s in state.items()} == truth, f"step {step}"
    finally:
        other.close()


def test_a_reader_racing_a_writer_never_loses_a_sale(sample_hub, ring):
    """One connection sells seat after seat (each its own transaction) while another reads the
    sold seats as fast as it can: every read is a state the tickets had (only growing), and the
    last read, after the writer stopped, is exactly the tickets'. A log row that committed with
    a position below one the reader had already seen would be lost for good."""
    writer, reader = open_hub(sample_hub.dir), open_hub(sample_hub.dir)
    seats = house_seats(sample_hub.db, ring[0], 40)
    done, failures = threading.Event(), []

    def write() -> None:
        try:
            for i, seat in enumerate(seats):
                sell_one(writer, ring[i % 3], seat)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
        finally:
            done.set()

    try:
        thread = threading.Thread(target=write)
        thread.start()
        seen: dict[str, set[str]] = {}
        reads = 0
        while not done.is_set() or reads == 0:
            now = cached(reader, ring[:3])
            assert all(seen.get(p, set()) <= now.get(p, set()) for p in ring[:3]), "a sale disappeared"
            seen, reads = now, reads + 1
        thread.join(timeout=60)
        assert not failures
        assert cached(reader, ring[:3]) == sold_now(reader, ring[:3])
        assert sum(len(s) for s in sold_now(reader, ring[:3]).values()) == len(seats)
    finally:
        writer.close()
        reader.close()
