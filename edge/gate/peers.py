"""Gates agree offline (B2): entry records travel directly between gates on the LAN.

Each gate announces itself with zeroconf (`_tessera-edge._tcp`) and browses for the others.
When a gate admits someone it sends the signed entry record to every peer at once, so a
card passed in at gate 1 is refused with PASSBACK at gate 2 within a second, hub or no
hub. When a peer appears (or every RESYNC_S) a gate also pulls the peer's recent entries,
so records missed while a peer was unreachable still arrive.

Zeroconf is only a way to find addresses. Nothing a peer sends is trusted for being on
the LAN: entry records are verified against the sender's root-signed node certificate,
certificates and revocations against the organizer's root key. A forged record from a
device that was never enrolled is logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from core.cards import trust
from core.cards.access import Access
from core.cards.trust import BadRecord

log = logging.getLogger("tessera.peers")

SERVICE = "_tessera-edge._tcp.local."
RESYNC_S = 30.0
SEND_TIMEOUT_S = 1.0
MAX_RECORDS = 1000


@dataclass
class Peer:
    node_id: str
    name: str
    url: str
    last_ok: float | None = None
    failures: int = 0


@dataclass
class PeerStats:
    sent: int = 0
    received: int = 0
    refused: int = 0
    refused_reasons: list[str] = field(default_factory=list)


def trust_records(access: Access) -> dict:
    """Certificates and node revocations, for peers that may not know them yet."""
    certs = [r["record"] for r in access.db.execute("SELECT record FROM node_certs")]
    revocations = [r["record"] for r in access.db.execute("SELECT record FROM node_revocations")]
    return {"certs": certs, "revocations": revocations}


def accept_trust(access: Access, payload: dict) -> int:
    """Store root-signed certificates and revocations from a peer; returns how many were new."""
    new = 0
    for kind, store in (("certs", trust.store_cert), ("revocations", trust.store_revocation)):
        records = payload.get(kind) or []
        if not isinstance(records, list):
            continue
        for record in records[:MAX_RECORDS]:
            try:
                before = access.db.total_changes
                store(access.db, record)
                new += access.db.total_changes > before
            except (BadRecord, TypeError, ValueError) as exc:
                log.warning("peer sent a %s record we do not trust: %s", kind, exc)
            except Exception as exc:  # e.g. Conflict: a key id already used by another node
                log.warning("peer %s record refused: %s", kind, exc)
    if new:
        access.refresh(force=True)
    return new


def accept_entries(access: Access, records: Sequence[object], stats: PeerStats) -> tuple[int, int]:
    """Store verified entry records; returns (new, refused)."""
    new = refused = 0
    for record in list(records)[:MAX_RECORDS]:
        try:
            if not isinstance(record, str):
                raise BadRecord("an entry record is a string")
            new += access.accept_entry_record(record)
        except BadRecord as exc:
            refused += 1
            stats.refused += 1
            stats.refused_reasons = (stats.refused_reasons + [str(exc)])[-10:]
            log.warning("ignored an entry record from a peer: %s", exc)
    stats.received += new
    return new, refused


class Peers:
    """Announce this gate, find the others, and exchange entry records with them."""

    def __init__(self, access: Access, *, node: dict, port: int, interfaces: Sequence[str] | None = None,
                 host_address: str = "127.0.0.1", group: str = ""):
        self.access, self.node, self.port, self.group = access, node, port, group
        self.interfaces, self.host_address = interfaces, host_address
        self.peers: dict[str, Peer] = {}
        self.stats = PeerStats()
        self._tasks: set[asyncio.Task] = set()
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._session: aiohttp.ClientSession | None = None
        self._resync: asyncio.Task | None = None
        self.root_id = _root_id(access)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_S * 3))
        kwargs = {"ip_version": IPVersion.V4Only}
        if self.interfaces:
            kwargs["interfaces"] = list(self.interfaces)
        self._zc = AsyncZeroconf(**kwargs)
        name = f"{self.node['name']}-{self.node['id'][-8:]}"  # the random end: ids start with a time
        self.info = AsyncServiceInfo(
            SERVICE, f"{name}.{SERVICE}", addresses=[socket.inet_aton(self.host_address)], port=self.port,
            properties={"node_id": self.node["id"], "name": self.node["name"], "role": self.node["role"],
                        "root": self.root_id, "group": self.group, "venue": self.access.rules.venue_id or ""})
        await self._zc.async_register_service(self.info)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, [SERVICE], handlers=[self._on_change])
        self._resync = asyncio.create_task(self._resync_loop())

    async def close(self) -> None:
        if self._resync:
            self._resync.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._browser:
            await self._browser.async_cancel()
        if self._zc:
            with contextlib.suppress(Exception):
                await self._zc.async_unregister_service(self.info)
            await self._zc.async_close()
        if self._session:
            await self._session.close()

    # -- discovery ---------------------------------------------------------------------------

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            for node_id, peer in list(self.peers.items()):
                if name.startswith(peer.name):
                    self.peers.pop(node_id, None)
            return
        self._spawn(self._resolve(name))

    async def _resolve(self, name: str) -> None:
        info = AsyncServiceInfo(SERVICE, name)
        if not await info.async_request(self._zc.zeroconf, 3000):
            return
        props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        node_id = props.get("node_id")
        if not node_id or node_id == self.node["id"] or props.get("root") != self.root_id:
            return  # ourselves, or a device of another organizer
        if props.get("group", "") != self.group:
            return  # another site of the same organizer on this LAN
        addresses = info.parsed_addresses()
        if not addresses:
            return
        peer = Peer(node_id=node_id, name=name.split(".")[0], url=f"http://{addresses[0]}:{info.port}")
        known = self.peers.get(node_id)
        self.peers[node_id] = peer
        if known is None or known.url != peer.url:
            log.info("peer gate %s at %s", props.get("name"), peer.url)
            await self.pull(peer)

    # -- exchange ----------------------------------------------------------------------------

    def broadcast(self, record: str) -> None:
        """Send a fresh entry record to every peer, without waiting for them."""
        own_cert = self.access.db.execute("SELECT record FROM node_certs WHERE key_id = ?",
                                          (self.access.signer.key_id,)).fetchone()
        payload = {"records": [record], "certs": [own_cert["record"]] if own_cert else []}
        for peer in list(self.peers.values()):
            self._spawn(self._send(peer, payload))

    async def _send(self, peer: Peer, payload: dict) -> None:
        try:
            async with self._session.post(f"{peer.url}/peer/v1/entries", json=payload,
                                          timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_S)) as resp:
                resp.raise_for_status()
            self.stats.sent += len(payload["records"])
            peer.last_ok, peer.failures = asyncio.get_running_loop().time(), 0
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            peer.failures += 1
            log.info("peer %s unreachable (%s); it will pull the record later", peer.name, exc)

    async def pull(self, peer: Peer) -> None:
        """Fetch a peer's trust records and recent entries."""
        since = self.access.clock.now() - dt.timedelta(minutes=max(self.access.rules.lockout_minutes, 5) + 5)
        try:
            async with self._session.get(f"{peer.url}/peer/v1/trust") as resp:
                resp.raise_for_status()
                accept_trust(self.access, await resp.json())
            async with self._session.get(f"{peer.url}/peer/v1/entries",
                                         params={"since": since.strftime("%Y-%m-%dT%H:%M:%SZ")}) as resp:
                resp.raise_for_status()
                body = await resp.json()
            accept_entries(self.access, body.get("records", []) if isinstance(body, dict) else [], self.stats)
            peer.last_ok, peer.failures = asyncio.get_running_loop().time(), 0
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            peer.failures += 1
            log.info("could not pull from peer %s: %s", peer.name, exc)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_S)
            for peer in list(self.peers.values()):
                await self.pull(peer)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def status(self) -> list[dict]:
        return [{"node_id": p.node_id, "name": p.name, "url": p.url, "failures": p.failures}
                for p in self.peers.values()]


def _root_id(access: Access) -> str:
    row = access.db.execute("SELECT key_id FROM trust_roots ORDER BY key_id LIMIT 1").fetchone()
    return f"{row['key_id']:08x}" if row else ""
