"""`bench sync`, phase 5: the live channel (issue 12, DESIGN §4).

A gate and a cash desk, enrolled with the real hub process, run their real sync loops
(`SyncClient.run`) in this process while the hub serves on loopback. Timed, each from the
moment the cause happened until the edge's database shows the effect (polled every 10 ms):

- `live_revocation_s`: a card revoked through the hub's API until the gate holds the
  revocation (the worst of REPEATS; budget 2 s).
- `live_pool_move_s`: seats moved to the desk's pool through the API until the desk's
  replica shows them in its pool (the worst of REPEATS; budget 2 s).
- `live_offline_flip_s`: the hub is stopped (SIGTERM, from the call) until the desk's status
  (`status(db)["online"]`, what `tessera edge status` and the desk's bar show) says offline;
  budget 3 s.
- `live_online_flip_s`: the hub is started again on the same port (from its ready line) until
  the status says online; budget 3 s.
- `live_backlog_moves_s`: from the same ready line until the first of the ops the gate
  queued during the outage is applied at the hub; budget 3 s.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from bench.procs import BenchError, Server, Servers
from core.base.node import NODE_DB
from core.base.storage import connect
from core.sales import contingents
from edge.sync.client import SyncClient, status
from hub.app import db_path

REPEATS = 5
CHANGE_BUDGET_S = 2.0
STATUS_BUDGET_S = 3.0
POLL_S = 0.01
TIMEOUT_S = 30.0
BACKLOG_OPS = 200


class LivePhase:
    def __init__(self, bench: Any, servers: Servers, hub: Server, start_hub: Callable[[], Server], port: int,
                 token: str, venue_id: str, gate: Any, desk: Any) -> None:
        """*bench*: the SyncBench (figures, hub folder, queue_entries); *gate*, *desk*: its Gate records;
        *start_hub*: starts the hub again on *port*."""
        self.bench, self.servers, self.hub, self.port, self.token = bench, servers, hub, port, token
        self.start_hub = start_hub
        self.venue_id, self.gate, self.desk = venue_id, gate, desk
        self.url = f"http://127.0.0.1:{port}"

    def run(self) -> Server:
        """Measure; the hub started again (the caller owns it)."""
        return asyncio.run(self._run())

    async def _run(self) -> Server:
        gate_db = connect(self.gate.folder / NODE_DB, edge=True)
        desk_db = connect(self.desk.folder / NODE_DB, edge=True)
        clients = [SyncClient(gate_db, self.gate.folder), SyncClient(desk_db, self.desk.folder)]
        loops = [asyncio.create_task(c.run(asyncio.Event())) for c in clients]
        try:
            self.catalog()
            await until(lambda: status(gate_db)["online"] and status(desk_db)["online"], "both edges online")
            revocations = [await self.revocation(gate_db) for _ in range(REPEATS)]
            moves = [await self.pool_move(desk_db, i) for i in range(REPEATS)]
            self.report("live_revocation_s", revocations)
            self.report("live_pool_move_s", moves)
            return await self.outage(gate_db, desk_db)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            for client in clients:
                await client.close()
            gate_db.close()
            desk_db.close()

    def report(self, name: str, times: list[float]) -> None:
        say(f"{name}: {', '.join(f'{t:.3f}' for t in times)} s")
        self.bench.figure(name, max(times), "s", CHANGE_BUDGET_S)
        self.bench.figure(f"{name}_p50", statistics.median(times), "s")

    # -- changes reaching running edges ------------------------------------------------------------

    def catalog(self) -> None:
        """A product to issue cards of, and a performance with seats in the hub's pool (read only)."""
        hub_db = connect(db_path(self.bench.hub_dir), migrate=False)
        try:
            self.product = hub_db.execute("SELECT id FROM annual_products ORDER BY id LIMIT 1").fetchone()["id"]
            self.performance = hub_db.execute("SELECT id FROM performances ORDER BY id LIMIT 1").fetchone()["id"]
            self.seats = [s for s in contingents.seats_of(hub_db, self.performance)
                          if contingents.pool_of(hub_db, self.performance, s) == contingents.HUB][-2 * REPEATS:]
        finally:
            hub_db.close()
        if len(self.seats) < 2 * REPEATS:
            raise BenchError("the sample performance has too few seats in the hub's pool")

    async def revocation(self, gate_db) -> float:
        card = await self.api("POST", "/cards", {"product_id": self.product, "kind": "annual", "holder_name": "Live"})
        await until(lambda: gate_db.execute("SELECT 1 FROM cards WHERE id = ?", (card["id"],)).fetchone(),
                    "the new card at the gate")
        started = time.perf_counter()
        await self.api("POST", f"/cards/{card['id']}/revoke", {"reason": "bench"})
        await until(lambda: gate_db.execute("SELECT revoked_at FROM cards WHERE id = ?",
                                            (card["id"],)).fetchone()["revoked_at"], "the revocation at the gate")
        return time.perf_counter() - started

    async def pool_move(self, desk_db, i: int) -> float:
        seats, pool = self.seats[2 * i:2 * i + 2], contingents.node_pool(self.desk.node_id)
        started = time.perf_counter()
        moved = await self.api("POST", f"/performances/{self.performance}/pools", {"seat_ids": seats, "to": pool})
        if moved["moved"] != seats:
            raise BenchError(f"the hub moved {moved['moved']}, not {seats}")
        await until(lambda: all(contingents.pool_of(desk_db, self.performance, s) == pool for s in seats),
                    f"move {i}: the seats in the desk's pool")
        return time.perf_counter() - started

    # -- the hub away and back -------------------------------------------------------------------

    async def outage(self, gate_db, desk_db) -> Server:
        started = time.perf_counter()
        await asyncio.to_thread(self.servers.stop, self.hub)
        await until(lambda: not status(desk_db)["online"], "offline shown")
        offline = time.perf_counter() - started
        queued = await asyncio.to_thread(self.bench.queue_entries, self.gate, self.venue_id, BACKLOG_OPS)
        hub = await asyncio.to_thread(self.start_hub)
        back = time.perf_counter()
        hub_db = connect(db_path(self.bench.hub_dir), migrate=False)
        try:
            await until(lambda: status(desk_db)["online"], "online shown")
            online = time.perf_counter() - back
            await until(lambda: (hub_db.execute("SELECT max(node_seq) AS s FROM sync_ops WHERE node_id = ?",
                                                (self.gate.node_id,)).fetchone()["s"] or 0) >= queued.first_seq,
                        "the first op of the backlog at the hub")
            moving = time.perf_counter() - back
            await until(lambda: status(gate_db)["ops_waiting"] == 0, "the backlog pushed")
        finally:
            hub_db.close()
        say(f"offline shown {offline:.2f} s after the stop; online {online:.2f} s and the backlog moving "
            f"{moving:.2f} s after the hub was back")
        self.bench.figure("live_offline_flip_s", offline, "s", STATUS_BUDGET_S)
        self.bench.figure("live_online_flip_s", online, "s", STATUS_BUDGET_S)
        self.bench.figure("live_backlog_moves_s", moving, "s", STATUS_BUDGET_S)
        return hub

    async def api(self, method: str, path: str, body: dict | None = None) -> dict:
        return await asyncio.to_thread(_call, f"{self.url}/api/v1{path}", self.token, method, body)


def _call(url: str, token: str, method: str, body: dict | None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise BenchError(f"{method} {url}: {exc.code} {exc.read()[:300]!r}") from None


async def until(predicate, what: str) -> None:
    deadline = time.perf_counter() + TIMEOUT_S
    while not predicate():
        if time.perf_counter() > deadline:
            raise BenchError(f"{what}: not within {TIMEOUT_S:.0f} s")
        await asyncio.sleep(POLL_S)


def say(message: str) -> None:
    print(f"bench sync: {message}", file=sys.stderr, flush=True)

