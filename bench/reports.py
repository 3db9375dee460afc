"""`python -m bench reports` (issue 17, S14): a 100,000-row XLSX report, budget 10 s and 50 MB peak RSS.

A real hub database (the sample catalog in a temporary folder) whose house performances are copied
until the booking list has 100,000 sold seats (tickets written straight into the ledger tables:
the sale path has its own benchmarks; setting up is not measured). Measured: the report command
as its own process (`python -m cli.report_command bookings --format xlsx -o FILE`: registry
query, xlsxwriter in constant-memory mode, the file renamed into place), wall time from start
to exit and the process's peak RSS from `os.wait4` (started by a bare interpreter: see
LAUNCHER). As context (no budget): rows per second, the
file's size, and the same export through `tessera report` (which also loads every other
command's imports: aiohttp, the edge and demo code) with its peak RSS.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.procs import BenchError
from bench.report import figure

NAME = "reports"
ROWS = 100_000
BUDGET_S = 10.0
BUDGET_MB = 50.0
ROOT = Path(__file__).resolve().parents[1]


def _hub(folder: Path, rows: int) -> None:
    """The sample catalog plus *rows* sold seats in copies of its house performances."""
    from hub import sample
    from hub.app import init_hub, make_app
    from hub.client import LocalClient

    db, _ = init_hub(folder)
    ids = sample.build(LocalClient(make_app(db)), performances=4)
    stamp = "2026-06-01T10:00:00Z"
    customer = db.execute("SELECT id FROM customers ORDER BY number LIMIT 1").fetchone()["id"]
    db.execute("BEGIN")
    db.execute("INSERT INTO orders (id, number, node_id, channel, customer_id, total_cents, created_at) "
               "VALUES ('bench-order', 'BENCH-1', (SELECT id FROM node), 'phone', ?, 0, ?)", (customer, stamp))
    db.execute("INSERT INTO order_lines (id, order_id, position, kind, product_id, price_cents) "
               "VALUES ('bench-line', 'bench-order', 1, 'ticket', 'bench', 0)")
    house = ids["rings"]["A"] + ids["rings"]["B"] + ids["rings"]["C"]
    copies = rows // (len(house) * 790) + 1
    for n in range(copies):
        db.execute("INSERT INTO performances (id, venue_id, variant_id, season_id, title, starts_at, active, "
                   "created_at, updated_at) SELECT lower(hex(randomblob(16))), venue_id, variant_id, season_id, "
                   f"title || ' #{n}', starts_at, 1, created_at, updated_at FROM performances WHERE id IN "
                   f"({', '.join('?' * len(house))})", house)
    db.execute(
        "INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, status, "
        "created_at) SELECT lower(hex(randomblob(16))), 'bench-order', 'bench-line', p.id, s.id, s.zone_id, 4600, "
        "'sold', ? "
        "FROM performances p JOIN plan_variants v ON v.id = p.variant_id JOIN seats s ON s.plan_id = v.plan_id "
        "AND (s.variant_id IS NULL OR s.variant_id = v.id) AND s.active = 1 WHERE p.title LIKE '% #%' LIMIT ?",
        (stamp, rows))
    db.execute("COMMIT")
    got = db.execute("SELECT count(*) AS n FROM tickets WHERE status = 'sold'").fetchone()["n"]
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    if got != rows:
        raise BenchError(f"the booking list should have {rows} rows, the database has {got}")


# Linux counts a child's peak RSS from its fork: a child of this process (which built the hub, some
# 80 MB) would report at least that. So a bare interpreter (about 10 MB) starts the command and
# reports its wall time and peak RSS (os.wait4) on its last stderr line.
LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(f"{time.perf_counter() - start} {usage.ru_maxrss / 1024} {os.waitstatus_to_exitcode(status)}", file=sys.stderr)
"""


def _measure(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) and stderr of one process, from its start to its exit."""
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *command], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    *err, last = done.stderr.strip().split("\n")
    seconds, peak, code = last.split()
    if int(code) != 0:
        raise BenchError(f"{' '.join(command[1:4])} failed: {' '.join(err).strip()}")
    return float(seconds), float(peak), "\n".join(err)


def run(rows: int = ROWS) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-reports-"))
    try:
        _hub(work / "hub", rows)
        target = work / "bookings.xlsx"
        args = ["bookings", "--data", str(work / "hub"), "--format", "xlsx", "-o", str(target)]
        seconds, peak, err = _measure([sys.executable, "-m", "cli.report_command", *args])
        if f"{rows} rows" not in err:
            raise BenchError(f"the report did not write {rows} rows: {err.strip()}")
        out = [figure(NAME, "xlsx_100k_rows_seconds", seconds, "s", BUDGET_S),
               figure(NAME, "xlsx_100k_rows_peak_rss", peak, "MB", BUDGET_MB),
               figure(NAME, "xlsx_rows_per_second", rows / seconds, "rows/s"),
               figure(NAME, "xlsx_file_size", target.stat().st_size / 1e6, "MB")]
        full_s, full_peak, _ = _measure([sys.executable, "-m", "cli.main", "report", *args])
        out += [figure(NAME, "tessera_report_command_seconds", full_s, "s"),
                figure(NAME, "tessera_report_command_peak_rss", full_peak, "MB")]
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run()
