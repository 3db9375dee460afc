"""Number series: gapless, never duplicated, owned by one node."""

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from core.base.errors import Conflict
from core.base.numbering import format_number, next_number
from core.base.storage import connect, transaction


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
    from core.base.numbering import next_number
    from core.base.storage import connect, transaction
    db = connect(sys.argv[1])
    db.execute("CREATE TABLE IF NOT EXISTS receipts (number TEXT PRIMARY KEY)")
    hold_after = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    for i in range(int(sys.argv[2])):
        with transaction(db):
            n = next_number(db, "K03", 2026, "node-1")
            db.execute("INSERT INTO receipts VALUES (?)", (n,))
            if i == hold_after:  # after that many commits: say which number is held, and hold it
                print(n, flush=True)
                time.sleep(3600)  # until the test kills this process, mid-transaction
            time.sleep(float(sys.argv[3]))
""")


def run_workers(path, count, per_worker, pause, hold_after=None):
    extra = [] if hold_after is None else [str(hold_after)]
    stdout = None if hold_after is None else subprocess.PIPE  # a holding worker says what it holds
    return [subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(per_worker), str(pause), *extra],
                             cwd=os.getcwd(), stdout=stdout, text=True) for _ in range(count)]


def read_line(proc, timeout):
    """The child's next line of output, waiting at most *timeout* seconds for it."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"the worker said nothing within {timeout} s"
    line = proc.stdout.readline()
    assert line, f"the worker ended (exit code {proc.wait()}) before holding a number"
    return line.strip()


@pytest.mark.slow  # Python subprocesses racing
def test_processes_racing_for_numbers_get_each_exactly_once(tmp_path):
    path = tmp_path / "n.sqlite"
    connect(path).execute("CREATE TABLE receipts (number TEXT PRIMARY KEY)")
    procs = run_workers(path, 4, 40, 0)
    assert all(p.wait(60) == 0 for p in procs)
    db = connect(path)
    numbers = [r["number"] for r in db.execute("SELECT number FROM receipts ORDER BY number")]
    assert numbers == [format_number("K03", 2026, i) for i in range(1, 161)]
    assert values(db) == 160


@pytest.mark.slow  # kill -9 rounds of subprocesses
def test_kill_9_mid_transaction_leaves_no_gap(tmp_path):
    """A process killed while holding a number never committed it: the series continues
    exactly after the last committed receipt. Each worker commits some receipts, then takes
    one more number inside a transaction, says so and waits: the kill comes provably then."""
    path = tmp_path / "n.sqlite"
    connect(path).execute("CREATE TABLE receipts (number TEXT PRIMARY KEY)")
    committed = 0
    for hold_after in (5, 23, 11):
        (proc,) = run_workers(path, 1, 1000, 0, hold_after=hold_after)
        try:
            held = read_line(proc, timeout=60)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        committed += hold_after
        assert held == format_number("K03", 2026, committed + 1)  # the next number, taken but not committed
    db = connect(path)
    numbers = [r["number"] for r in db.execute("SELECT number FROM receipts ORDER BY number")]
    assert numbers == [format_number("K03", 2026, i) for i in range(1, committed + 1)]
    assert values(db) == committed
    assert db.execute("PRAGMA integrity_check").fetchone()["integrity_check"] == "ok"
    assert take(db) == format_number("K03", 2026, committed + 1)  # the killed ones' number goes to the next sale
