"""Number series: gapless, never duplicated, owned by one node."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from core.errors import Conflict
from core.numbering import format_number, next_number
from core.storage import connect, transaction


def take(db, prefix="K03", year=2026, node="node-1"):
    with transaction(db):
        return next_number(db, prefix, year, node)


def values(db, prefix="K03"):
    return db.execute("SELECT last_value FROM number_series WHERE prefix = ?", (prefix,)).fetchone()["last_value"]


def test_numbers_have_prefix_year_and_six_digits(tmp_path):
    db = connect(tmp_path / "n.sqlite")
    assert [take(db) for _ in range(3)] == ["K03-2026-000001", "K03-2026-000002", "K03-2026-000003"]
    assert take(db, year=2027) == "K03-2027-000001"
    assert format_number("KD", 2026, 123) == "KD-2026-000123"


def test_a_number_must_be_taken_inside_the_transaction_that_uses_it(tmp_path):
    db = connect(tmp_path / "n.sqlite")
    with pytest.raises(RuntimeError, match="inside the transaction"):
        next_number(db, "K03", 2026, "node-1")


def test_a_rolled_back_sale_gives_its_number_to_the_next_sale(tmp_path):
    db = connect(tmp_path / "n.sqlite")
    take(db)
    with pytest.raises(ValueError), transaction(db):
        assert next_number(db, "K03", 2026, "node-1") == "K03-2026-000002"
        raise ValueError("payment declined")
    assert take(db) == "K03-2026-000002"


def test_a_series_belongs_to_one_node(tmp_path):
    db = connect(tmp_path / "n.sqlite")
    take(db, node="desk-3")
    with pytest.raises(Conflict, match="belongs to node desk-3"):
        take(db, node="desk-4")


def test_threads_with_their_own_connections_never_share_a_number(tmp_path):
    path = tmp_path / "n.sqlite"
    connect(path).close()
    taken: list[str] = []
    lock = threading.Lock()

    def worker():
        db = connect(path)
        for _ in range(50):
            number = take(db)
            with lock:
                taken.append(number)
        db.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == [format_number("K03", 2026, i) for i in range(1, 301)]


WORKER = textwrap.dedent("""
    import sys, time
    from core.numbering import next_number
    from core.storage import connect, transaction
    db = connect(sys.argv[1])
    db.execute("CREATE TABLE IF NOT EXISTS receipts (number TEXT PRIMARY KEY)")
    for _ in range(int(sys.argv[2])):
        with transaction(db):
            n = next_number(db, "K03", 2026, "node-1")
            db.execute("INSERT INTO receipts VALUES (?)", (n,))
            time.sleep(float(sys.argv[3]))
""")


def run_workers(path, count, per_worker, pause):
    return [subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(per_worker), str(pause)],
                             cwd=os.getcwd()) for _ in range(count)]


def test_processes_racing_for_numbers_get_each_exactly_once(tmp_path):
    path = tmp_path / "n.sqlite"
    connect(path).execute("CREATE TABLE receipts (number TEXT PRIMARY KEY)")
    procs = run_workers(path, 4, 40, 0)
    assert all(p.wait(60) == 0 for p in procs)
    db = connect(path)
    numbers = [r["number"] for r in db.execute("SELECT number FROM receipts ORDER BY number")]
    assert numbers == [format_number("K03", 2026, i) for i in range(1, 161)]
    assert values(db) == 160


def test_kill_9_mid_transaction_leaves_no_gap(tmp_path):
    """A process killed while holding a number never committed it: the series continues
    exactly after the last committed receipt."""
    path = tmp_path / "n.sqlite"
    connect(path).execute("CREATE TABLE receipts (number TEXT PRIMARY KEY)")
    for _ in range(3):
        (proc,) = run_workers(path, 1, 1000, 0.01)
        time.sleep(0.4)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    db = connect(path)
    numbers = [r["number"] for r in db.execute("SELECT number FROM receipts ORDER BY number")]
    assert numbers, "the workers should have committed some receipts before being killed"
    assert numbers == [format_number("K03", 2026, i) for i in range(1, len(numbers) + 1)]
    assert values(db) == len(numbers)
    assert db.execute("PRAGMA integrity_check").fetchone()["integrity_check"] == "ok"
