"""Sync benchmark (DESIGN.md sections 4 and 9, issue 4): push, pull and catch-up over loopback.

The hub is a real `tessera hub serve` process (its own core and GIL, as in production); the
edges are real enrolled gate folders driven by the real `SyncClient`.

1. **Push 100k ops.** An enrolled gate whose outbox holds 100,000 `entry.recorded` ops (node_seq
   1..100,000): signed entry records exactly as `Access.record_entry` makes them, with the gate's
   own `entries` row and the outbox row `core.base.outbox.append` writes, but generated in big
   transactions with executemany instead of one commit per scan. `SyncClient.push()` is timed
   from its call until the outbox is drained. The baseline, measured in the same run: insert the
   rows the hub writes for those ops (its `entries` rows and `sync_ops` rows, in the order the hub
   writes them) into a fresh copy of the hub database taken just before the push, with
   executemany in one transaction, on a connection opened like the hub's and with the hub's
   change-feed triggers in place. The median of `direct_rounds` such inserts: the first before the
   push (rows predicted from the ops, afterwards checked field by field against what the hub
   wrote, all but the hub's received_at), the others after it (the rows read back from the hub),
   so slow drift of the machine hits both sides. The figure that counts is push rate / direct
   rate (budget: at least 20%). The direct rate of the `sync_ops` rows alone, and the CPU time the
   hub and the edge spent per op during the push, are context.
2. **Pull and apply 100k changes.** After the push the hub's feed holds the sample catalog and
   the 100,000 pushed entries. A second, freshly enrolled gate pulls until its cursor reaches the
   head of the feed, in a subprocess that imports only what an edge needs, so its peak RSS is
   the edge's own (VmHWM, 1 MB = 10^6 bytes; not `ru_maxrss`, which on Linux inherits the
   benchmark process's RSS across fork and exec). Budget: 80 MB (DESIGN section 9).
3. **Catch-up after an outage.** The hub is stopped; the pulled gate (in sync until then) records
   10,000 entries; its background sync loop (`SyncClient.run`, tenacity backoff with jitter, cut
   short by a local change) is started and fails for a few seconds; then the hub is started again
   on the same port. Timed: from the hub's ready line until all 10,000 ops are applied at the hub (polled in the hub's
   database), split into the wait for the client's next attempt (backoff) and the push itself.
   No budget is given for it (SPEC and DESIGN set none); it is reported as context.

4. **The cost of synchronous=FULL.** The hub commits with `synchronous=FULL` (an answered push
   survives a power cut) unless hub.toml says `[storage] synchronous = "normal"`. A third gate
   queues `sync_ops` entries; consistent copies of the hub folder (SQLite backup API) are served
   in turn with FULL and with NORMAL, alternating, and the same ops are pushed to each: first
   `single_ops` of them one op per request (one hub commit each, as a desk pushes a sale), then
   the rest in the usual batches. Figures: both push rates per setting and FULL / NORMAL (no
   budget; 1.0 means FULL costs nothing).

5. **The live channel** (issue 12, bench/sync_live.py), while the hub serves again after phase 3:
   a gate and a desk with their real sync loops; a revocation and a seat-pool move reach them
   within 2 s (the worst of five each), the desk shows offline within 3 s of the hub's stop and
   online within 3 s of its return, and the gate's backlog starts moving within 3 s of it.

Every phase checks its outcome (each op applied exactly once at the hub, the cursor at the head),
so a run that measured refusals or nothing fails instead of printing figures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psutil

from bench.procs import ROOT, BenchError, Server, Servers, venv_command
from bench.report import figure
from bench.sync_live import LivePhase
from core.base import outbox
from core.base.clock import iso, utcnow
from core.base.ids import uuid7
from core.base.node import NODE_DB
from core.base.storage import connect, transaction
from core.cards.cards import load_signer
from core.cards.trust import sign
from edge.sync import client as sync_client
from edge.sync import enroll as enrolling
from edge.sync.client import SyncClient, SyncError
from hub import sample
from hub.app import db_path, init_hub, make_app
from hub.client import LocalClient
from hub.sync import enrollment, feed

NAME = "sync"
HOST = "127.0.0.1"
HUB_READY = re.compile(r"hub API on http://127\.0\.0\.1:(\d+)/api/v1")
PUSH_BUDGET = 0.20  # the push must reach at least 20% of the direct insert rate
RSS_BUDGET_MB = 80.0
MB = 1_000_000
VENUE = "Stadtmuseum"
PUSH_GATE, PULL_GATE = "Tor Push", "Tor Pull"
LIVE_GATE, LIVE_DESK = "Tor Live", "Kasse Live"
SYNC_GATES = ("Tor Sync 1", "Tor Sync n")  # one op per push, batched pushes
SYNCHRONOUS = ("FULL", "NORMAL")
WRITE_CHUNK = 25_000
SETUP_CACHE_KB = 256 * 1024  # generated ops per transaction on the gate
ENTRY_STEP_MS = 250  # one scan every quarter second: a busy entrance
POLL_S = 0.01
PULL_TIMEOUT_S = 600.0
CATCHUP_TIMEOUT_S = 120.0

ENTRY_INSERT = ("INSERT OR IGNORE INTO entries (id, card_id, card_issue, venue_id, node_id, direction, at, record, "
                # as core.cards.access.store_entry and hub.sync.apply
                "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
OUTBOX_INSERT = ("INSERT INTO outbox (node_seq, id, kind, body, wall_time, mono_ns, boot_id) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?)")
SYNC_OPS_INSERT = ("INSERT INTO sync_ops (node_id, node_seq, op_id, kind, wall_time, received_at, status, reason) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")  # as hub.sync.apply.apply_push
ENTRY_COLUMNS = "id, card_id, card_issue, venue_id, node_id, direction, at, record, received_at"

# The edge side of the pull, run with `python -c`: it imports what `tessera edge serve` imports
# for sync and nothing of the hub or of this benchmark, so its peak RSS is an edge's.
EDGE_PULL_SCRIPT = """
import asyncio, json, resource, sys, time
from pathlib import Path
from core.base.node import NODE_DB
from core.base.storage import connect
from edge.sync.client import SyncClient, SyncError

def rss_kb(field):
    # VmHWM/VmRSS of this process image. Not ru_maxrss: Linux carries the parent's RSS at fork
    # over into the child's ru_maxrss, so it would report the benchmark process's size.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

async def main(folder):
    db = connect(folder / NODE_DB, edge=True)
    client = SyncClient(db, folder)
    start_cursor = db.execute("SELECT cursor FROM sync_state").fetchone()["cursor"]
    rss_start_kb = rss_kb("VmRSS")
    cpu = time.process_time()
    started = time.perf_counter()
    try:
        applied = await client.pull()
    finally:
        await client.close()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    cursor = db.execute("SELECT cursor FROM sync_state").fetchone()["cursor"]
    db.close()
    print(json.dumps({"applied": applied, "seconds": seconds, "cpu_s": cpu, "start_cursor": start_cursor,
                      "cursor": cursor, "rss_start_kb": rss_start_kb, "peak_rss_kb": rss_kb("VmHWM")}))

asyncio.run(main(Path(sys.argv[1])))
"""


@dataclass(frozen=True)
class Size:
    push_ops: int = 100_000
    catchup_ops: int = 10_000
    cards: int = 20_000  # distinct cards the generated entries scan
    direct_rounds: int = 3  # the baseline is cheap: median of a few fresh copies, the first before the push
    outage_s: float = 3.0  # how long the edge's sync loop fails before the hub is back
    sync_ops: int = 20_000  # ops pushed in batches to each hub copy in the synchronous FULL/NORMAL phase
    single_ops: int = 300  # ops pushed one per request to each copy
    sync_rounds: int = 2  # hub copies per setting, FULL and NORMAL alternating

    @classmethod
    def tiny(cls) -> Size:
        """For the smoke test: every phase and figure, each push still one batch and each pull
        several pages (halved in Dec 2026 from 2,000 / 300 / 500 / 200 / 20)."""
        return cls(push_ops=1_000, catchup_ops=150, cards=250, direct_rounds=2, outage_s=0.5, sync_ops=100,
                   single_ops=10, sync_rounds=1)


@dataclass
class Gate:
    folder: Path
    node_id: str


@dataclass
class Queued:
    first_seq: int
    last_seq: int
    entries: list[tuple]  # the gate's entries rows (ENTRY_COLUMNS), in node_seq order
    op_ids: list[str]  # the outbox ids, in node_seq order

    @property
    def entry_ids(self) -> list[str]:
        return [row[0] for row in self.entries]

    def hub_rows(self, node_id: str, received_at: str) -> tuple[list[tuple], list[tuple]]:
        """The entries and sync_ops rows the hub writes for these ops (hub.sync.apply.apply_push),
        in the order it writes them; the hub's own clock sets received_at."""
        entries = [(*row[:-1], received_at) for row in self.entries]
        ops = [(node_id, self.first_seq + i, op_id, "entry.recorded", row[6], received_at, "applied", None)
               for i, (row, op_id) in enumerate(zip(self.entries, self.op_ids, strict=True))]
        return entries, ops


def say(message: str) -> None:
    print(f"bench {NAME}: {message}", file=sys.stderr, flush=True)


def run(size: Size | None = None, work: Path | None = None) -> list[dict]:
    """Run the three phases and print their figures. With *work*, the folders are kept there
    (for the smoke test to inspect); otherwise they live in a temporary folder removed at the end."""
    size = size or Size()
    if work is not None:
        return SyncBench(Path(work), size).run()
    with tempfile.TemporaryDirectory(prefix="tessera-bench-sync-") as tmp:
        return SyncBench(Path(tmp), size).run()


class SyncBench:
    def __init__(self, work: Path, size: Size) -> None:
        self.work, self.size = work, size
        self.hub_dir = work / "hub"
        self.rng = random.Random(2026)
        self.figures: list[dict] = []

    def figure(self, *args, **kwargs) -> None:
        self.figures.append(figure(NAME, *args, **kwargs))

    def run(self) -> list[dict]:
        started = time.perf_counter()
        venue_id, codes = self.prepare_hub()
        with Servers() as servers:
            hub = servers.start(hub_command(self.hub_dir, 0), HUB_READY)
            port = int(hub.match.group(1))
            url = f"http://{HOST}:{port}"
            push_gate = self.enroll(PUSH_GATE, codes[PUSH_GATE], url)
            pull_gate = self.enroll(PULL_GATE, codes[PULL_GATE], url)
            sync_gates = tuple(self.enroll(name, codes[name], url) for name in SYNC_GATES)
            say(f"hub on port {port}, two gates enrolled ({time.perf_counter() - started:.1f} s)")
            self.push_phase(hub, push_gate, venue_id)
            self.pull_phase(hub, pull_gate)
            servers.stop(hub)  # the outage begins
            hub = self.catchup_phase(servers, port, pull_gate, venue_id)
            live_gate, live_desk = (self.enroll(name, codes[name], url) for name in (LIVE_GATE, LIVE_DESK))
            hub = LivePhase(self, servers, hub, lambda: servers.start(hub_command(self.hub_dir, port), HUB_READY),
                            port, self.token, venue_id, live_gate, live_desk).run()
            self.synchronous_phase(servers, sync_gates, venue_id)
        say(f"done in {time.perf_counter() - started:.1f} s")
        return self.figures

    # -- setup ------------------------------------------------------------------------------------

    def prepare_hub(self) -> tuple[str, dict[str, str]]:
        """A hub with the sample catalog and one-time codes for two gates at one museum."""
        db, self.token = init_hub(self.hub_dir)
        try:
            ids = sample.build(LocalClient(make_app(db)))
            venue_id = ids["museum_venues"][VENUE]
            codes = {name: enrollment.create_code(db, name=name, role="gate", venue_ids=[venue_id], now=utcnow())
                     for name in (PUSH_GATE, PULL_GATE, LIVE_GATE, *SYNC_GATES)}
            codes[LIVE_DESK] = enrollment.create_code(db, name=LIVE_DESK, role="cashdesk", venue_ids=[], now=utcnow())
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        return venue_id, codes

    def enroll(self, name: str, code: str, url: str) -> Gate:
        folder = gate_folder(self.work, name)
        node = asyncio.run(enrolling.enroll(folder, code, [url]))
        return Gate(folder, node["id"])

    def queue_entries(self, gate: Gate, venue_id: str, count: int) -> Queued:
        """Record *count* entries on the gate as `Access.record_entry` would (signed record, the
        gate's entries row, the outbox op), but in big transactions: one scan every
        ENTRY_STEP_MS up to now, on a pool of season cards."""
        db = connect(gate.folder / NODE_DB, edge=True)
        db.execute(f"PRAGMA cache_size = -{SETUP_CACHE_KB}")  # setup speed only: random-key inserts into entries
        try:
            signer = load_signer(db, gate.folder)
            first = db.execute("SELECT coalesce(max(node_seq), 0) + 1 AS n FROM outbox").fetchone()["n"]
            end_ms = int(utcnow().timestamp() * 1000)
            start_ms = end_ms - count * ENTRY_STEP_MS
            # cards issued before the first generated entry: an entry before its card's issue is refused
            cards = [uuid7(start_ms - 1000 - self.rng.randrange(10**10)) for _ in range(self.size.cards)]
            mono0 = time.monotonic_ns() - count * ENTRY_STEP_MS * 1_000_000
            boot, node_id, key_id, private = outbox.boot_id(), signer.node_id, signer.key_id, signer.private
            all_entries: list[tuple] = []
            op_ids: list[str] = []
            for chunk in range(0, count, WRITE_CHUNK):
                entries, queued = [], []
                for i in range(chunk, min(count, chunk + WRITE_CHUNK)):
                    at_ms = start_ms + i * ENTRY_STEP_MS
                    at = iso(dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC))
                    body = {"v": 1, "id": uuid7(at_ms), "card_id": self.rng.choice(cards), "card_issue": 1,
                            "venue_id": venue_id, "node_id": node_id, "direction": "in", "at": at}
                    record = sign(private, "entry", body, key_id)
                    entries.append((body["id"], body["card_id"], 1, venue_id, node_id, "in", at, record, at))
                    queued.append((first + i, uuid7(), "entry.recorded",
                                   msgspec.json.encode({"record": record}).decode(), at,
                                   mono0 + i * ENTRY_STEP_MS * 1_000_000, boot))
                    op_ids.append(queued[-1][1])
                with transaction(db):
                    db.executemany(ENTRY_INSERT, entries)
                    db.executemany(OUTBOX_INSERT, queued)
                all_entries.extend(entries)
        finally:
            db.close()
        return Queued(first, first + count - 1, all_entries, op_ids)

    # -- 1. push ----------------------------------------------------------------------------------

    def push_phase(self, hub: Server, gate: Gate, venue_id: str) -> None:
        n = self.size.push_ops
        started = time.perf_counter()
        queued = self.queue_entries(gate, venue_id, n)
        say(f"{n:,} entry ops queued on the gate ({time.perf_counter() - started:.1f} s); pushing")
        snapshot = self.work / "hub-before-push.sqlite"
        backup(db_path(self.hub_dir), snapshot)
        scratch = self.work / "direct.sqlite"
        # One baseline round before the push (with the rows the hub will write, as predicted) and
        # the others after it (with the rows it did write), so slow drift of the machine hits both.
        entry_rows, op_rows = queued.hub_rows(gate.node_id, iso(utcnow()))
        direct = [direct_insert(snapshot, scratch, entry_rows, op_rows)]
        ops_only = [direct_insert(snapshot, scratch, [], op_rows)]

        meter = psutil.Process(hub.pid)
        hub_cpu = cpu_seconds(meter)
        pushed, rejected, seconds, edge_cpu = asyncio.run(push_all(gate))
        hub_cpu = cpu_seconds(meter) - hub_cpu
        if (pushed, rejected) != (n, 0):
            raise BenchError(f"pushed {pushed} ops with {rejected} rejected, expected {n} applied")
        entry_rows, op_rows = self.check_arrived_once(gate, queued)
        push_rate = n / seconds
        say(f"pushed in {seconds:.2f} s ({push_rate:,.0f} ops/s); timing the direct inserts")

        for _ in range(self.size.direct_rounds - 1):
            direct.append(direct_insert(snapshot, scratch, entry_rows, op_rows))
            ops_only.append(direct_insert(snapshot, scratch, [], op_rows))
        snapshot.unlink()
        direct_rate = n / statistics.median(direct)
        self.figure("push_ops_per_s", push_rate, "ops/s")
        self.figure("direct_insert_ops_per_s", direct_rate, "ops/s (entries + sync_ops rows)")
        self.figure("direct_insert_sync_ops_only_per_s", n / statistics.median(ops_only), "ops/s (sync_ops rows)")
        self.figure("push_vs_direct_insert", push_rate / direct_rate, "fraction of direct", PUSH_BUDGET, "at_least")
        self.figure("push_hub_cpu_us_per_op", hub_cpu / n * 1e6, "us per op")
        self.figure("push_edge_cpu_us_per_op", edge_cpu / n * 1e6, "us per op")

    def check_arrived_once(self, gate: Gate, queued: Queued) -> tuple[list[tuple], list[tuple]]:
        """Each op exactly once at the hub, all applied; returns the rows the hub wrote for them
        (entries in the order the ops carried them, sync_ops in node_seq order)."""
        hub = connect(db_path(self.hub_dir))
        try:
            ops = hub.execute("SELECT node_id, node_seq, op_id, kind, wall_time, received_at, status, reason "
                              "FROM sync_ops WHERE node_id = ? AND node_seq BETWEEN ? AND ? ORDER BY node_seq",
                              (gate.node_id, queued.first_seq, queued.last_seq)).fetchall()
            entries = {r["id"]: r for r in hub.execute(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE node_id = ?",
                                                       (gate.node_id,))}
            conflicts = hub.execute("SELECT count(*) AS n FROM conflicts WHERE node_id = ?",
                                    (gate.node_id,)).fetchone()["n"]
        finally:
            hub.close()
        expected = list(range(queued.first_seq, queued.last_seq + 1))
        if [r["node_seq"] for r in ops] != expected or {r["status"] for r in ops} != {"applied"} or conflicts:
            raise BenchError(f"the hub logged {len(ops)} ops of {len(expected)} (or some not applied, "
                             f"{conflicts} conflicts)")
        missing = [i for i in queued.entry_ids if i not in entries]
        if missing or len(entries) < len(queued.entry_ids):
            raise BenchError(f"{len(missing)} pushed entries are missing at the hub")
        db = connect(gate.folder / NODE_DB, edge=True)
        try:
            state = db.execute("SELECT pushed_seq FROM sync_state").fetchone()["pushed_seq"]
            waiting = db.execute("SELECT count(*) AS n FROM outbox WHERE node_seq > ? OR result IS NOT 'applied'",
                                 (state,)).fetchone()["n"]
        finally:
            db.close()
        if state != queued.last_seq or waiting:
            raise BenchError(f"the gate's outbox is not drained: pushed_seq {state}, {waiting} ops not applied")
        keys = ENTRY_COLUMNS.split(", ")
        entry_rows = [tuple(entries[i][k] for k in keys) for i in queued.entry_ids]
        op_rows = [tuple(r.values()) for r in ops]
        predicted = queued.hub_rows(gate.node_id, "")
        if [r[:-1] for r in entry_rows] != [r[:-1] for r in predicted[0]] or \
                [r[:5] + r[6:] for r in op_rows] != [r[:5] + r[6:] for r in predicted[1]]:
            raise BenchError("the hub wrote other rows than the ops carry")
        return entry_rows, op_rows

    # -- 2. pull ----------------------------------------------------------------------------------

    def pull_phase(self, hub: Server, gate: Gate) -> None:
        db = connect(db_path(self.hub_dir))
        try:
            head = feed.head(db)
            entries = db.execute("SELECT count(*) AS n FROM entries").fetchone()["n"]
        finally:
            db.close()
        say(f"a fresh gate pulls {head:,} changes ({entries:,} of them entries) in a subprocess")
        meter = psutil.Process(hub.pid)
        hub_cpu = cpu_seconds(meter)
        try:
            done = subprocess.run([sys.executable, "-c", EDGE_PULL_SCRIPT, str(gate.folder)], cwd=ROOT,
                                  capture_output=True, text=True, timeout=PULL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BenchError(f"the pulling edge did not finish within {PULL_TIMEOUT_S:.0f} s") from None
        hub_cpu = cpu_seconds(meter) - hub_cpu
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"the pulling edge failed: {detail}")
        result = json.loads(lines[-1])
        if result["cursor"] != head or result["start_cursor"] != 0:
            raise BenchError(f"the edge's cursor is at {result['cursor']}, the feed's head at {head}")
        edge = connect(gate.folder / NODE_DB, edge=True)
        try:
            pulled_entries = edge.execute("SELECT count(*) AS n FROM entries").fetchone()["n"]
        finally:
            edge.close()
        if pulled_entries != entries:
            raise BenchError(f"the edge holds {pulled_entries} entries after the pull, the hub {entries}")
        applied = result["applied"]
        say(f"pulled {applied:,} changes in {result['seconds']:.2f} s")
        self.figure("pull_changes", applied, "changes")
        self.figure("pull_changes_per_s", applied / result["seconds"], "changes/s")
        self.figure("pull_edge_peak_rss", result["peak_rss_kb"] * 1024 / MB, "MB", RSS_BUDGET_MB, "cost")
        self.figure("pull_edge_rss_at_start", result["rss_start_kb"] * 1024 / MB, "MB")
        self.figure("pull_edge_cpu_us_per_change", result["cpu_s"] / applied * 1e6, "us per change")
        self.figure("pull_hub_cpu_us_per_change", hub_cpu / applied * 1e6, "us per change")

    # -- 3. catch-up ------------------------------------------------------------------------------

    def catchup_phase(self, servers: Servers, port: int, gate: Gate, venue_id: str) -> Server:
        """The outage and the catch-up; the hub started again (still running)."""
        n = self.size.catchup_ops
        queued = self.queue_entries(gate, venue_id, n)
        say(f"hub stopped; {n:,} ops queued on the pulled gate; its sync loop fails for {self.size.outage_s:g} s")
        waited, pushed, hub = asyncio.run(self.outage(servers, port, gate, queued))
        self.check_arrived_once(gate, queued)
        say(f"caught up {waited + pushed:.2f} s after the hub was back ({waited:.2f} s until the next attempt)")
        self.figure("catchup_s", waited + pushed, "s")
        self.figure("catchup_wait_s", waited, "s")
        self.figure("catchup_push_s", pushed, "s")
        return hub

    async def outage(self, servers: Servers, port: int, gate: Gate, queued: Queued) -> tuple[float, float, Server]:
        """Run the gate's sync loop while the hub is away, start the hub again, and time until the
        hub has applied the last queued op: (wait until the first op arrived, rest of the push)."""
        db = connect(gate.folder / NODE_DB, edge=True)
        client = SyncClient(db, gate.folder)
        wake = asyncio.Event()
        wake.set()
        loop_task = asyncio.create_task(client.run(wake))
        hub_db: sqlite3.Connection | None = None
        try:
            await asyncio.sleep(self.size.outage_s)
            if loop_task.done():
                raise BenchError(f"the sync loop ended during the outage: {loop_task.exception()}")
            # started in a thread: waiting for the ready line must not freeze the client's event loop
            hub = await asyncio.to_thread(servers.start, hub_command(self.hub_dir, port), HUB_READY)
            back = time.perf_counter()
            hub_db = connect(db_path(self.hub_dir), migrate=False)
            first_at = None
            while True:
                latest = hub_db.execute("SELECT max(node_seq) AS s FROM sync_ops WHERE node_id = ?",
                                        (gate.node_id,)).fetchone()["s"] or 0
                now = time.perf_counter()
                if first_at is None and latest >= queued.first_seq:
                    first_at = now
                if latest >= queued.last_seq:
                    break
                if now - back > CATCHUP_TIMEOUT_S:
                    raise BenchError(f"the hub applied ops up to {latest} of {queued.last_seq} in "
                                     f"{CATCHUP_TIMEOUT_S:.0f} s")
                if loop_task.done():
                    raise BenchError(f"the sync loop ended: {loop_task.exception()}")
                await asyncio.sleep(POLL_S)
            done_at = time.perf_counter()
            # let the client record the answer before it is stopped (its outbox is checked afterwards)
            while db.execute("SELECT pushed_seq FROM sync_state").fetchone()["pushed_seq"] < queued.last_seq:
                if time.perf_counter() - done_at > CATCHUP_TIMEOUT_S:
                    raise BenchError("the gate never recorded the hub's answer to its last push")
                await asyncio.sleep(POLL_S)
        finally:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
            await client.close()
            db.close()
            if hub_db is not None:
                hub_db.close()
        assert first_at is not None
        return first_at - back, done_at - first_at, hub


    # -- 4. synchronous=FULL vs NORMAL --------------------------------------------------------------

    def synchronous_phase(self, servers: Servers, gates: tuple[Gate, Gate], venue_id: str) -> None:
        """Push the same ops to copies of the hub served with FULL and with NORMAL, alternating:
        the first gate's one op per request, the second gate's in the usual batches."""
        size = self.size
        single_gate, batch_gate = gates
        self.queue_entries(single_gate, venue_id, size.single_ops)
        self.queue_entries(batch_gate, venue_id, size.sync_ops)
        template = self.work / "hub-sync-copy"
        copy_hub(self.hub_dir, template)
        say(f"{size.single_ops:,} single and {size.sync_ops:,} batched ops pushed to hub copies with "
            f"synchronous FULL and NORMAL, {size.sync_rounds} of each")
        rates: dict[str, dict[str, list[float]]] = {level: {"single": [], "batch": []} for level in SYNCHRONOUS}
        try:
            for turn in range(size.sync_rounds):
                for level in SYNCHRONOUS if turn % 2 == 0 else tuple(reversed(SYNCHRONOUS)):
                    single, batch = self.push_to_copy(servers, template, gates, level)
                    rates[level]["single"].append(single)
                    rates[level]["batch"].append(batch)
        finally:
            shutil.rmtree(template, ignore_errors=True)
        full, normal = ({k: statistics.median(v) for k, v in rates[level].items()} for level in SYNCHRONOUS)
        say(f"FULL {full['batch']:,.0f} / NORMAL {normal['batch']:,.0f} ops/s batched, "
            f"{full['single']:,.0f} / {normal['single']:,.0f} ops/s one op per push")
        self.figure("push_ops_per_s_synchronous_full", full["batch"], "ops/s")
        self.figure("push_ops_per_s_synchronous_normal", normal["batch"], "ops/s")
        self.figure("push_synchronous_full_vs_normal", full["batch"] / normal["batch"], "fraction of NORMAL")
        self.figure("push_single_ops_per_s_synchronous_full", full["single"], "ops/s (one op per push)")
        self.figure("push_single_ops_per_s_synchronous_normal", normal["single"], "ops/s (one op per push)")
        self.figure("push_single_synchronous_full_vs_normal", full["single"] / normal["single"],
                    "fraction of NORMAL")

    def push_to_copy(self, servers: Servers, template: Path, gates: tuple[Gate, Gate],
                     level: str) -> tuple[float, float]:
        """Serve a fresh copy of *template* with `[storage] synchronous = level`, push both gates'
        whole outboxes to it (the first gate one op per request: one hub commit per op, as a desk
        pushes each sale), check that each op was applied once, and stop it: (single-op push
        rate, batched push rate)."""
        folder = self.work / f"hub-{level.lower()}"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(template, folder)
        (folder / "hub.toml").write_text(f'[storage]\nsynchronous = "{level.lower()}"\n')
        hub = servers.start(hub_command(folder, 0), HUB_READY)
        rates = []
        try:
            url = f"http://{HOST}:{hub.match.group(1)}"
            for gate, batch_ops in zip(gates, (1, sync_client.PUSH_BATCH_OPS), strict=True):
                total = unpush(gate)  # everything again, to a hub that has none of it
                usual = sync_client.PUSH_BATCH_OPS
                sync_client.PUSH_BATCH_OPS = batch_ops  # the client's batch size, read per push
                try:
                    pushed, rejected, seconds, _cpu = asyncio.run(push_all(gate, url))
                finally:
                    sync_client.PUSH_BATCH_OPS = usual
                if (pushed, rejected) != (total, 0):
                    raise BenchError(f"{level}: pushed {pushed} of {total} ops, {rejected} rejected")
                check_logged_once(folder, gate.node_id, total)
                rates.append(pushed / seconds)
        finally:
            servers.stop(hub)
            shutil.rmtree(folder, ignore_errors=True)
        return rates[0], rates[1]


# -- helpers --------------------------------------------------------------------------------------

def gate_folder(work: Path, name: str) -> Path:
    return work / name.replace(" ", "-").lower()


def hub_command(data_dir: Path, port: int) -> list[str]:
    return [str(venv_command("tessera")), "hub", "serve", "--data", str(data_dir), "--host", HOST,
            "--port", str(port), "--no-advertise"]


async def push_all(gate: Gate, hub_url: str | None = None) -> tuple[int, int, float, float]:
    """`SyncClient.push()` until the outbox is drained: (pushed, rejected, seconds, edge CPU seconds)."""
    db = connect(gate.folder / NODE_DB, edge=True)
    client = SyncClient(db, gate.folder, hub_url=hub_url)
    try:
        cpu = time.process_time()
        started = time.perf_counter()
        try:
            pushed, rejected = await client.push()
        except SyncError as exc:
            raise BenchError(f"push failed: {exc}") from None
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        await client.close()
        db.close()
    return pushed, rejected, seconds, cpu


def unpush(gate: Gate) -> int:
    """Mark the gate's whole outbox as never pushed; returns how many ops it holds."""
    db = connect(gate.folder / NODE_DB, edge=True)
    try:
        with transaction(db):
            db.execute("UPDATE sync_state SET pushed_seq = 0")
            db.execute("UPDATE outbox SET pushed_at = NULL, result = NULL")
        return db.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"]
    finally:
        db.close()


def check_logged_once(hub_dir: Path, node_id: str, count: int) -> None:
    """The hub in *hub_dir* logged ops 1..count of *node_id*, each once and applied."""
    hub = connect(db_path(hub_dir), migrate=False)
    try:
        rows = hub.execute("SELECT node_seq, status FROM sync_ops WHERE node_id = ? ORDER BY node_seq",
                           (node_id,)).fetchall()
    finally:
        hub.close()
    if [r["node_seq"] for r in rows] != list(range(1, count + 1)) or {r["status"] for r in rows} - {"applied"}:
        raise BenchError(f"the hub copy logged {len(rows)} ops of {count} (or some not applied)")


def copy_hub(source: Path, target: Path) -> None:
    """A hub folder that serves like *source*: a consistent copy of the live database (backup API)
    and its key files."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(mode=0o700)
    backup(db_path(source), db_path(target))
    for key in source.glob("*.key"):
        shutil.copy2(key, target / key.name)


def backup(source: Path, target: Path) -> None:
    """A consistent copy of a live database (the hub keeps running)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def direct_insert(snapshot: Path, scratch: Path, entry_rows: list[tuple], op_rows: list[tuple]) -> float:
    """Seconds to insert the rows into a fresh copy of the hub database in one transaction,
    opened as the hub opens it (WAL, synchronous=FULL, foreign keys), triggers firing."""
    remove_db(scratch)
    shutil.copyfile(snapshot, scratch)
    db = connect(scratch)
    try:
        changes_before = feed.head(db)
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        if entry_rows:
            db.executemany(ENTRY_INSERT, entry_rows)
        db.executemany(SYNC_OPS_INSERT, op_rows)
        db.execute("COMMIT")
        seconds = time.perf_counter() - started
        counted = db.execute("SELECT count(*) AS n FROM sync_ops").fetchone()["n"]
        changes = feed.head(db) - changes_before
    finally:
        db.close()
        remove_db(scratch)
    if counted < len(op_rows) or changes != len(entry_rows):
        raise BenchError(f"direct insert wrote {counted} sync_ops and {changes} change rows")
    return seconds


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system
