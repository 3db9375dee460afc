"""The turnstile (E5): scan -> decision -> entry recorded -> relay pulse -> feedback.

The entry is committed (synchronous=FULL) *before* the relay opens the door, so a power
cut or `kill -9` right after the pulse can never lose an entry that let someone in; the
commit costs a few milliseconds of the ~100 ms a person notices. The pulse runs as its
own task: a stuck relay reports a fault on the status page but never holds up the next
scan, and the record goes to peer gates at the same time.

The systemd watchdog is fed only while the scanner loop is alive: the loop beats the
heartbeat on every code and every idle second, so a hung or dead scanner reader stops the
beats and systemd restarts the gate.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from core.base import outbox
from core.base.node import NODE_DB, this_node
from core.base.storage import connect
from core.cards import cards
from core.cards.access import Access, Verdict
from core.cards.trusted_time import TrustedClock
from core.catalog.organizers import venue_name
from devices.profiles import load_relay, load_scanner
from devices.relays.base import Relay
from devices.relays.factory import open_relay
from devices.scanners.base import QueueScanner, Scanner, open_scanner
from edge.gate import web as gate_web
from edge.gate.peers import Peers, PeerStats
from edge.node_data import gate_rules
from edge.notify import Heartbeat, SdNotify, feed_watchdog, watchdog_interval
from edge.sync.client import SyncClient
from edge.sync.client import status as sync_status

log = logging.getLogger("tessera.gate")
IDLE_BEAT_S = 1.0
HEARTBEAT_MAX_AGE_S = 5.0


@dataclass
class GateOptions:
    data_dir: Path
    scanner: str = "sim-stdin"
    relay: str = "sim-log"
    device: str | None = None
    port: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 0
    peers: bool = True
    peer_interfaces: tuple[str, ...] | None = None
    peer_group: str = ""
    sync: bool = True  # sync with the hub when the gate was enrolled (not set up locally)
    sync_period_s: float = 10.0
    hub_url: str | None = None  # instead of the address stored at enrollment (the demo's hub moves ports)
    quiet: bool = False


PRIVATE = ("holder",)  # verdict fields the LAN-facing status leaves out (the console shows them)


class Gate:
    def __init__(self, options: GateOptions, *, scanner: Scanner | None = None, relay: Relay | None = None):
        self.options = options
        self.data_dir = Path(options.data_dir)
        self.scanner, self.relay = scanner, relay
        self.recent: collections.deque[dict] = collections.deque(maxlen=20)
        self.peers: Peers | None = None
        self.peers_stats = PeerStats()
        self.heartbeat = Heartbeat()
        self.notify = SdNotify()
        self._tasks: set[asyncio.Task] = set()
        self.url = ""

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        path = self.data_dir / NODE_DB
        if not path.exists():
            raise FileNotFoundError(f"{self.data_dir} is not a gate folder; run `tessera gate init` first")
        self.db = connect(path, edge=True)
        self.node = this_node(self.db)
        if self.node["role"] != "gate":
            raise ValueError(f"{self.data_dir} belongs to a {self.node['role']}, not a gate")
        rules = gate_rules(self.data_dir)
        if rules.venue_id is None:
            raise ValueError(f"{self.data_dir}/gate.toml names no venue_id")
        self.clock = TrustedClock(self.db)
        self.access = Access(self.db, rules, self.clock, signer=cards.load_signer(self.db, self.data_dir))
        scanner_profile = load_scanner(self.options.scanner)
        self.simulated = scanner_profile.interface == "stdin" or isinstance(self.scanner, QueueScanner)
        self.relay = self.relay or open_relay(load_relay(self.options.relay), self.options.port)
        self.scanner = self.scanner or open_scanner(scanner_profile, self.options.device)
        self.runner = web.AppRunner(gate_web.make_app(self), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.options.http_host, self.options.http_port)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            raise RuntimeError(f"status page cannot listen on {self.options.http_host}:{self.options.http_port}: "
                               f"{exc.strerror} (use --http-port)") from None
        port = self.runner.addresses[0][1]
        self.url = f"http://{self.options.http_host}:{port}"
        self._start_sync()
        if self.options.peers:
            self.peers = Peers(self.access, node=self.node, port=port, interfaces=self.options.peer_interfaces,
                               host_address=self.options.http_host, group=self.options.peer_group)
            self.peers.stats = self.peers_stats
            await self.peers.start()
        if self.clock.skew_seconds() > 1:  # either way: a clock ahead is caught like one behind
            self.say(f"WARNING {self.clock.describe()}; using trusted time")
        venue = venue_name(self.db, rules.venue_id) or rules.venue_id  # the id until the catalog has the venue
        self.say(f"gate {self.node['name']} ready: venue {venue}, status page {self.url}")

    def _start_sync(self) -> None:
        """An enrolled gate syncs with its hub in the background: entries up, cards and
        revocations down. Its own connection, so the decisions' caches notice pulled changes."""
        state = self.db.execute("SELECT hub_url FROM sync_state").fetchone()
        if not (state and state["hub_url"]) or not self.options.sync:
            self.sync = None
            return
        self.sync = SyncClient(connect(self.data_dir / NODE_DB, edge=True), self.data_dir, hub_url=self.options.hub_url,
                               clock=self.clock)
        self.sync_wake = asyncio.Event()
        self._spawn(self.sync.run(self.sync_wake, period_s=self.options.sync_period_s))

    async def close(self) -> None:
        self.notify.stopping()
        for task in list(self._tasks):
            task.cancel()
        if self.peers:
            await self.peers.close()
        if self.scanner:
            self.scanner.close()
        if self.relay:
            self.relay.close()
        if getattr(self, "sync", None):
            await self.sync.close()
            self.sync.db.close()
        await self.runner.cleanup()
        self.db.close()

    async def run(self) -> None:
        """Read scans until the scanner ends (stdin closed) or fails (then raise: systemd restarts)."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        reader = asyncio.create_task(self._read(queue))
        dog = asyncio.create_task(feed_watchdog(self.notify, self.heartbeat, watchdog_interval(),
                                                HEARTBEAT_MAX_AGE_S))
        self.notify.ready(f"gate {self.node['name']} ready")
        try:
            while True:
                if reader.done():  # the scanner is gone: stop beating, let systemd see it
                    await self._drain(queue)
                    reader.result()
                    return
                self.heartbeat.beat()
                try:
                    code = await asyncio.wait_for(queue.get(), IDLE_BEAT_S)
                except TimeoutError:
                    continue
                if code is None:
                    continue
                await self.handle(code)
        finally:
            reader.cancel()
            dog.cancel()

    async def _drain(self, queue: asyncio.Queue) -> None:
        while not queue.empty():
            code = queue.get_nowait()
            if code is not None:
                await self.handle(code)

    async def _read(self, queue: asyncio.Queue) -> None:
        async for code in self.scanner.codes():
            queue.put_nowait(code)

    # -- one scan ----------------------------------------------------------------------------------

    async def handle(self, code: str) -> Verdict:
        started = time.perf_counter()
        result, record = self.access.admit(code)
        if result.reason == "UNKNOWN_SIGNER" and self.peers and await self.peers.learn_signer_of(code):
            result, record = self.access.admit(code)  # a peer knew the (root-signed) certificate of a new desk
        elapsed_ms = (time.perf_counter() - started) * 1000
        if result.admitted:
            self._spawn(self._pulse())
            if record and self.peers:
                self.peers.broadcast(record)
            if getattr(self, "sync", None):
                self.sync_wake.set()
        shown = result.as_dict()
        shown["ms"] = round(elapsed_ms, 2)
        self.recent.append(shown)
        self.say(f"{result.line()}  [{elapsed_ms:.1f} ms]")
        return result

    async def _pulse(self) -> None:
        pulse = await self.relay.pulse()
        if not pulse.ok:
            self.say(f"RELAY FAULT {pulse.relay}: {pulse.error}")

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def say(self, line: str) -> None:
        """The console line for staff (stdout); device and peer chatter goes to the log (stderr)."""
        if not self.options.quiet:
            print(line, flush=True, file=sys.stdout)

    def status(self) -> dict:
        rules = self.access.rules
        return {"node_id": self.node["id"], "name": self.node["name"], "venue": rules.venue_id,
                "direction": rules.direction, "lockout_minutes": rules.lockout_minutes,
                "exit_scans": rules.exit_scans, "clock": self.clock.status(), "outbox": outbox.pending(self.db),
                "relay_faulty": bool(self.relay and self.relay.faulty),
                "relay_error": self.relay.last_error if self.relay else "",
                "peers": self.peers.status() if self.peers else [],
                "peer_records": {"sent": self.peers_stats.sent, "received": self.peers_stats.received,
                                 "refused": self.peers_stats.refused},
                "alive": self.heartbeat.alive(HEARTBEAT_MAX_AGE_S),
                # the status page and JSON answer anyone on the LAN: no holder names there
                "recent": [{k: v for k, v in shown.items() if k not in PRIVATE} for shown in self.recent],
                "sync": sync_status(self.db) if getattr(self, "sync", None) else None}


async def run_gate(options: GateOptions) -> int:
    gate = Gate(options)
    await gate.start()
    try:
        await gate.run()
    finally:
        with contextlib.suppress(Exception):
            await gate.close()
    return 0
