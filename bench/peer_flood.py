"""Scan latency at a gate while its peer endpoints are flooded from the LAN (DESIGN §9:
"p99 unchanged under a peer flood"), part of `python -m bench gate`.

The gate is the real one (`edge.gate.loop.Gate`): its scan loop and its HTTP side (status
page, peer endpoints behind the peer door) share one process and one event loop, as on a Pi.
A scanner thread hands it codes the way a scanner reader does, one at a time with a short
gap, and the latency of a scan runs from the moment the code is handed over to the moment
its entry is committed: a flood that keeps the event loop busy shows up there.

Four flood clients, each its own process with its own loopback address (127.0.0.11-14, as
four machines on the LAN), send as fast as they can over keep-alive HTTP: unsigned posts of
400 forged entry records that name the gate's own key id (each one a signature check for a
gate that opened the records), and requests validly signed by a key the organizer never
certified. They run at nice 10: on the shared benchmark machine they take the CPU the gate
leaves, as their own machines would on a LAN; without that, the figure would measure the
kernel's scheduler, not the gate. Quiet and flooded blocks alternate, so machine drift hits
both alike. Reported: p99 quiet, p99 flooded, their ratio against FLOOD_BUDGET, and what the
door answered.
"""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import multiprocessing
import os
import queue
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import BenchError
from core.base.clock import iso, utcnow
from core.base.ids import uuid7
from core.cards import keys
from core.cards.cards import NodeSigner
from core.cards.trust import sign
from devices.profiles import load_relay
from devices.relays.simulated import LogRelay
from devices.scanners.base import QueueScanner
from edge.gate.loop import Gate, GateOptions
from edge.gate.web import DOOR
from edge.peers.client import signed_headers

FLOOD_BUDGET = 1.5  # p99 flooded / p99 quiet: "unchanged" on a shared machine, with its noise
CLIENTS = 4
FORGED_RECORDS = 400  # about 180 KB: under the door's 256 KiB, so the flood is not just 413s
CLIENT_NICE = 10


@dataclass
class FloodResults:
    quiet_ns: list[int]
    flood_ns: list[int]
    flood_s: float  # time the flood ran
    answers: collections.Counter = field(default_factory=collections.Counter)  # HTTP status -> count
    door_refused: dict[str, int] = field(default_factory=dict)
    door_admitted: int = 0

    @property
    def requests(self) -> int:
        return sum(self.answers.values())


def measure(gate_dir: Path, codes: list[str], blocks: int, gap_s: float) -> FloodResults:
    """Admit *codes* (each a valid, distinct card) in alternating quiet and flooded blocks."""
    if len(codes) < 2 * blocks:
        raise BenchError("too few cards for the flood measurement")
    return asyncio.run(_measure(gate_dir, codes, blocks, gap_s))


async def _measure(gate_dir: Path, codes: list[str], blocks: int, gap_s: float) -> FloodResults:
    gate = Gate(GateOptions(gate_dir, http_port=0, peers=False, sync=False, quiet=True),
                scanner=QueueScanner(), relay=LogRelay(load_relay("sim-log")))
    await gate.start()
    ctx = multiprocessing.get_context("spawn")
    go, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    body = forged_body(gate)
    clients = [ctx.Process(target=flood_client, args=(gate.url, f"127.0.0.{11 + i}", body, go, stop, out),
                           daemon=True) for i in range(CLIENTS)]
    for client in clients:
        client.start()
    try:
        quiet, flooded, flood_s = await _alternate(gate, codes, blocks, gap_s, go)
    finally:
        stop.set()
        go.set()
        answers = collections.Counter()
        try:
            for _ in clients:
                answers.update(await asyncio.to_thread(out.get, True, 30))
        except queue.Empty:
            raise BenchError("a flood client ended without reporting what it sent") from None
        finally:
            for client in clients:
                client.join(10)
                if client.is_alive():
                    client.kill()
        door = gate.runner.app[DOOR]
        await gate.close()
    return FloodResults(quiet, flooded, flood_s, answers, dict(door.stats.refused), door.stats.admitted)


async def _alternate(gate: Gate, codes: list[str], blocks: int, gap_s: float, go) -> tuple[list, list, float]:
    loop = asyncio.get_running_loop()
    per_block = len(codes) // (2 * blocks)
    quiet: list[int] = []
    flooded: list[int] = []
    flood_s = 0.0
    todo = iter(codes)
    for block in range(2 * blocks):
        flooding = block % 2 == 1
        if flooding:
            started = time.perf_counter()  # the flood's time runs from go to stop (for its rate)
            go.set()
            await asyncio.sleep(0.5)  # the clients reach full speed
        batch = [next(todo) for _ in range(per_block)]
        times = await asyncio.to_thread(_scanner, loop, gate, batch, gap_s)
        if flooding:
            go.clear()
            flood_s += time.perf_counter() - started
            await asyncio.sleep(0.3)  # requests in flight drain before the next quiet block
        (flooded if flooding else quiet).extend(times)
    return quiet, flooded, flood_s


def _scanner(loop: asyncio.AbstractEventLoop, gate: Gate, codes: list[str], gap_s: float) -> list[int]:
    """The scanner reader: hands each code to the gate's loop and waits for its verdict."""
    times = []
    for code in codes:
        time.sleep(gap_s)
        started = time.perf_counter_ns()
        elapsed = asyncio.run_coroutine_threadsafe(_timed(gate, code, started), loop).result(30)
        times.append(elapsed)
    return times


async def _timed(gate: Gate, code: str, started: int) -> int:
    result = await gate.handle(code)
    elapsed = time.perf_counter_ns() - started
    if not result.admitted:
        raise BenchError(f"a valid card was refused during the flood measurement: {result.reason} {result.detail}")
    return elapsed


def forged_body(gate: Gate) -> bytes:
    """Entry records signed by an outsider but naming the gate's own key id: a gate that looked
    at the records would spend one signature check on each."""
    outsider, key_id = keys.generate(), gate.access.signer.key_id
    records = []
    for _ in range(FORGED_RECORDS):
        record = json.loads(sign(outsider, "entry", {
            "v": 1, "id": uuid7(), "card_id": uuid7(), "card_issue": 1, "venue_id": gate.access.rules.venue_id,
            "node_id": gate.node["id"], "direction": "in", "at": iso(utcnow())}))
        record["k"] = key_id
        records.append(json.dumps(record, separators=(",", ":")))
    return json.dumps({"records": records}).encode()


def flood_client(url: str, source: str, body: bytes, go, stop, out) -> None:
    """One flooding machine: while *go* is set, post forged records unsigned, then an empty
    request signed by an uncertified key, and so on, as fast as the answers come."""
    os.nice(CLIENT_NICE)
    host, port = url.removeprefix("http://").split(":")
    private = keys.generate()
    outsider = NodeSigner(node_id=uuid7(), role="gate", key_id=keys.key_id(keys.public_bytes(private)), private=private)
    answers: collections.Counter = collections.Counter()
    conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
    n = 0
    while not stop.is_set():
        if not go.wait(0.1):
            continue
        n += 1
        if n % 2:
            headers, data = {"Content-Type": "application/json"}, body
        else:
            data = b'{"records": []}'
            headers = signed_headers(outsider, "POST", "/peer/v1/entries", data, utcnow())
        try:
            conn.request("POST", "/peer/v1/entries", body=data, headers=headers)
            resp = conn.getresponse()
            resp.read()
            answers[resp.status] += 1
            if resp.will_close:
                conn.close()
        except (OSError, http.client.HTTPException):
            answers["error"] += 1
            conn.close()
    conn.close()
    out.put(answers)


def p99(values: list[int]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else float(values[0])
