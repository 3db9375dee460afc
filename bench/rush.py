"""The presale rush on SQLite and on PostgreSQL with one, two and four hub processes (issue 18).

The rush of `bench presale` (issue 13): shop clients buying the sample's ring subscription
("Presale-Ring", eight dates in the 800-seat house) until it is sold out, each checkout a
seat hold in all dates and an order (Idempotency-Key, a new customer). All real: the hub
runs as `tessera hub serve` subprocesses; the PostgreSQL setups share one throwaway cluster
(core/base/pg/cluster.py: fsync off, unix socket) and each gets its own copy of one prepared
database, vacuumed and analyzed as autovacuum leaves a house built days before its presale
(`settle`). With several processes the bench client sends each request to the next process in
turn (round robin), so a checkout's hold and order usually land on different processes.

Setups: `sqlite_1` (the SQLite hub, synchronous=FULL), `postgresql_1`, `postgresql_2`,
`postgresql_4`. Figures per setup (`rush_<setup>_...`):
- `orders_per_s`: subscriptions sold per second of the rush (context: this 2-core machine
  runs the clients, the hubs and PostgreSQL at once; more processes need not be faster);
- `request_p99_ms`: p99 of one request (hold or order), budget 2,000 ms as in `bench presale`;
- `cpu_ms_per_order`: CPU time per order of the hub processes (utime+stime from /proc via
  psutil) plus, on PostgreSQL, of the cluster's server processes (the postmaster, every
  backend alive at the end, and the backends that ended meanwhile, counted in the
  postmaster's children time); the bench client's own CPU is not counted; the two parts
  also alone (`hub_cpu_ms_per_order`, `db_cpu_ms_per_order`);
- `seats_double_sold`: seats sold more than once in any date, counted in the database after
  the run; budget 0 (the benchmark fails otherwise, as it does for an acknowledged order
  without its eight tickets).

And `rush_postgresql_cost_ratio`: `cpu_ms_per_order` of `postgresql_1` over `sqlite_1`
against the issue's budget of 2 (the per-order cost on PostgreSQL within 2x of SQLite);
`bench postgresql` measures the same on one connection without HTTP. This machine's speed
drifts by a quarter between runs minutes apart, so the ratio is the median of `pairs` (3)
pairs of runs, `sqlite_1` then `postgresql_1` back to back: the setups' own runs, then
`pairs - 1` more pairs after them; each pair's ratio is reported too
(`rush_postgresql_cost_ratio_pair_<n>`, no budget), the per-setup figures are the first runs'.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

from bench import presale
from bench.procs import BenchError, Server, Servers, venv_command
from bench.report import figure
from core.base import pg, storage
from core.base.clock import utcnow
from core.base.pg.cluster import Cluster, running_cluster
from core.subscriptions import offers
from hub import settings
from hub.app import DB_NAME

NAME = "rush"
HOST = presale.HOST
REQUEST_P99_BUDGET_MS = presale.REQUEST_P99_BUDGET_MS
COST_BUDGET_FACTOR = 2.0
SETUPS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 4))


@dataclass(frozen=True)
class Size:
    clients: int = 100
    leave_free: int | None = None  # as in bench presale: None sells the whole house
    setups: tuple[tuple[str, int], ...] = SETUPS
    pairs: int = 3  # sqlite_1 + postgresql_1 pairs whose median ratio is the cost ratio (module docstring)

    @classmethod
    def tiny(cls) -> Size:
        """For the smoke test: 6 clients racing for 8 seats (12 until Dec 2026), sold out on every setup."""
        return cls(clients=6, leave_free=8, setups=(("sqlite", 1), ("postgresql", 1), ("postgresql", 2)), pairs=1)


@dataclass
class Outcome:
    setup: str
    rush: presale.Rush
    hub_cpu_s: float
    db_cpu_s: float
    twice: int
    free: int


@dataclass
class Prepared:
    folder: Path
    token: str
    ring: str
    dates: list[str]
    database: str | None = None  # the template database's name (PostgreSQL)
    copies: itertools.count = field(default_factory=lambda: itertools.count(1))


def say(message: str) -> None:
    print(f"bench {NAME}: {message}", file=sys.stderr, flush=True)


def prepare(work: Path, size: Size, cluster: Cluster | None) -> Prepared:
    """The sample hub with the ring and a shop token, made once per backend (presale.prepare);
    on PostgreSQL in a database that each setup copies."""
    folder = work / ("template-postgresql" if cluster else "template-sqlite")
    if cluster is None:
        token, ring, dates = presale.prepare(folder, presale.Size(leave_free=size.leave_free))
        return Prepared(folder, token, ring, dates)
    url = cluster.create_database(cluster.hub_template())  # the schema copied, not generated again
    token, ring, dates = presale.prepare(folder, presale.Size(leave_free=size.leave_free), database=url)
    settle(url)
    return Prepared(folder, token, ring, dates, database=urllib.parse.urlsplit(url).path.lstrip("/"))


def settle(url: str) -> None:
    """The database as a presale finds it: the house was built days before, and PostgreSQL's
    autovacuum has been through its tables since (VACUUM: the visibility maps that let index-only
    scans skip the table; ANALYZE: the planner's statistics). Without this the rush would start
    seconds after the build, before autovacuum's first round (its nap is a minute), a state no
    real presale meets: its prepared statements would keep plans made for empty tables. SQLite
    needs nothing of the kind (the hub never runs ANALYZE there, in the bench or in service)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("VACUUM (ANALYZE)")


def hub_folder(prepared: Prepared, cluster: Cluster | None, setup: str, run: int = 1) -> tuple[Path, str | None]:
    """A copy of the prepared hub for one setup's *run*: (its folder, its database URL on PostgreSQL)."""
    folder = prepared.folder.parent / (setup if run == 1 else f"{setup}-{run}")
    shutil.copytree(prepared.folder, folder)
    if cluster is None:
        return folder, None
    url = cluster.create_database(prepared.database)
    (folder / settings.SETTINGS_FILE).write_text(f'[storage]\ndatabase = "{url}"\n', encoding="utf-8")
    return folder, url


def cluster_cpu_s(cluster: Cluster) -> float:
    """CPU seconds of the cluster's server so far: the postmaster, its live children, and
    the children that ended (their time added to the postmaster's when it reaped them)."""
    pid = int((cluster.folder / "data" / "postmaster.pid").read_text().split()[0])
    master = psutil.Process(pid)
    times = master.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in master.children():
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def hubs_cpu_s(hubs: list[Server]) -> float:
    return sum(t.user + t.system for t in (psutil.Process(h.pid).cpu_times() for h in hubs))


async def round_robin_rush(ports: list[int], token: str, ring: str, clients: int) -> presale.Rush:
    """presale's buyers, each request to the next hub process in turn."""
    rush, bases = presale.Rush(), [f"http://{HOST}:{p}/api/v1" for p in ports]
    turn = itertools.count()

    class Spread:
        """The buyer's session; every request goes to the next process."""

        def __init__(self, session: aiohttp.ClientSession) -> None:
            self.session = session

        def post(self, url: str, **kw):
            base = bases[next(turn) % len(bases)]
            return self.session.post(base + url.removeprefix(bases[0]), **kw)

    sessions = [aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"},
                                      connector=aiohttp.TCPConnector(limit=0, limit_per_host=1))
                for _ in range(clients)]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(presale.buyer(Spread(s), bases[0], ring, n, rush) for n, s in enumerate(sessions)))
        rush.seconds = time.perf_counter() - started
    finally:
        await asyncio.gather(*(s.close() for s in sessions))
    return rush


def run_setup(prepared: Prepared, cluster: Cluster | None, backend: str, processes: int, clients: int,
              run: int = 1) -> Outcome:
    setup = f"{backend}_{processes}"
    folder, url = hub_folder(prepared, cluster, setup, run)
    command = [str(venv_command("tessera")), "hub", "serve", "--data", str(folder), "--host", HOST,
               "--port", "0", "--no-advertise"]
    with Servers() as servers:
        hubs = [servers.start(command, presale.HUB_READY) for _ in range(processes)]
        say(f"{setup}{'' if run == 1 else f' (pair {run})'}: {clients} shop clients buying {presale.RING} "
            f"until sold out, {processes} hub process(es)")
        hub_cpu, db_cpu = hubs_cpu_s(hubs), cluster_cpu_s(cluster) if cluster else 0.0
        rush = asyncio.run(round_robin_rush([int(h.match.group(1)) for h in hubs], prepared.token, prepared.ring,
                                            clients))
        hub_cpu, db_cpu = hubs_cpu_s(hubs) - hub_cpu, (cluster_cpu_s(cluster) - db_cpu) if cluster else 0.0
    db = pg.connect(url, migrate=False) if url else storage.connect(folder / DB_NAME, migrate=False)
    try:
        twice, free = check(db, rush, prepared.dates)
    finally:
        db.close()
    if not rush.orders:
        raise BenchError(f"{setup}: the rush sold nothing")
    return Outcome(setup, rush, hub_cpu, db_cpu, twice, free)


def check(db, rush: presale.Rush, dates: list[str]) -> tuple[int, int]:
    """(seats sold twice, seats still free in all dates' lead variant), from the database;
    every acknowledged order has its ticket in every date, and one subscription each."""
    twice = db.execute("SELECT count(*) AS n FROM (SELECT 1 FROM tickets WHERE status = 'sold' "
                       "GROUP BY performance_id, seat_id HAVING count(*) > 1) AS doubled").fetchone()["n"]
    for sold in rush.orders:
        tickets = db.execute("SELECT performance_id FROM tickets WHERE line_id = ? AND status = 'sold'",
                             (sold["line_id"],)).fetchall()
        if sorted(t["performance_id"] for t in tickets) != sorted(dates):
            raise BenchError(f"order {sold['number']} was acknowledged without a ticket in every date")
    stored = db.execute("SELECT count(*) AS n FROM subscriptions").fetchone()["n"]
    if stored != len(rush.orders):
        raise BenchError(f"{len(rush.orders)} orders acknowledged, {stored} subscriptions stored")
    left = offers.availability(db, rush.orders[0]["product_id"], now=utcnow()) if rush.orders else None
    free = len(left["groups"][0]["variants"][0]["free_seat_ids"]) if left else 0
    return twice, free


def none_allowed(name: str, value: int, unit: str) -> dict:
    """A figure whose budget is 0 (report.figure divides by the budget): ratio 0 when it is
    0, else 1 + value (> 1: missed, as everywhere)."""
    line = {"bench": NAME, "figure": name, "value": value, "unit": unit, "budget": 0,
            "ratio": 0 if value == 0 else 1 + value}
    print(json.dumps(line), flush=True)
    return line


def cpu_ms_per_order(o: Outcome) -> float:
    return (o.hub_cpu_s + o.db_cpu_s) / len(o.rush.orders) * 1000


def report(outcomes: list[Outcome], pairs: list[tuple[Outcome, Outcome]] = ()) -> list[dict]:
    """The figures of the setups' *outcomes*, and the cost ratio: the median over their
    sqlite_1/postgresql_1 pair and the further *pairs* (sqlite_1, postgresql_1) run after them."""
    results, cost = [], {}
    for o in outcomes:
        orders = len(o.rush.orders)
        per_order = cpu_ms_per_order(o)
        cost[o.setup] = per_order
        prefix = f"rush_{o.setup}_"
        results += [
            figure(NAME, prefix + "orders_per_s", orders / o.rush.seconds, "orders/s"),
            figure(NAME, prefix + "request_p99_ms", presale.p99(o.rush.request_ms), "ms", REQUEST_P99_BUDGET_MS),
            figure(NAME, prefix + "cpu_ms_per_order", per_order, "ms"),
            figure(NAME, prefix + "hub_cpu_ms_per_order", o.hub_cpu_s / orders * 1000, "ms"),
            figure(NAME, prefix + "db_cpu_ms_per_order", o.db_cpu_s / orders * 1000, "ms"),
            figure(NAME, prefix + "subscriptions_sold", len(o.rush.orders), "subscriptions"),
            figure(NAME, prefix + "seats_left", o.free, "seats"),
            none_allowed(prefix + "seats_double_sold", o.twice, "seats"),
        ]
    if "sqlite_1" in cost and "postgresql_1" in cost:
        ratios = [cost["postgresql_1"] / cost["sqlite_1"],
                  *(cpu_ms_per_order(pg_run) / cpu_ms_per_order(lite_run) for lite_run, pg_run in pairs)]
        if len(ratios) > 1:
            results += [figure(NAME, f"rush_postgresql_cost_ratio_pair_{n}", ratio, "x")
                        for n, ratio in enumerate(ratios, 1)]
        results.append(figure(NAME, "rush_postgresql_cost_ratio", statistics.median(ratios), "x", COST_BUDGET_FACTOR))
    return results


def measure(work: Path, size: Size, cluster: Cluster | None = None) -> list[dict]:
    """The rush on each setup of *size*, then the further pairs of the cost ratio; PostgreSQL on
    *cluster* if given (the smoke test passes the test session's), else on a cluster started
    for the run."""
    outcomes, pairs = [], []
    say("building the sample hub and the ring on SQLite")
    lite = prepare(work, size, None)
    wanted = any(backend == "postgresql" for backend, _ in size.setups)
    with contextlib.nullcontext(cluster) if cluster is not None or not wanted else running_cluster() as cluster:
        prepared = None
        if wanted:
            say("building the sample hub and the ring on PostgreSQL")
            prepared = prepare(work, size, cluster)
        for backend, processes in size.setups:
            on_pg = backend == "postgresql"
            outcomes.append(run_setup(prepared if on_pg else lite, cluster if on_pg else None, backend, processes,
                                      size.clients))
        if {("sqlite", 1), ("postgresql", 1)} <= set(size.setups):
            for run in range(2, size.pairs + 1):
                pairs.append((run_setup(lite, None, "sqlite", 1, size.clients, run),
                              run_setup(prepared, cluster, "postgresql", 1, size.clients, run)))
    results = report(outcomes, pairs)
    doubled = sorted({o.setup for o in [*outcomes, *(o for pair in pairs for o in pair)] if o.twice})
    if doubled:
        raise BenchError(f"seats were sold twice in {', '.join(doubled)}")
    return results


def run(size: Size | None = None) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="tessera-bench-rush-") as tmp:
        return measure(Path(tmp), size or Size())
