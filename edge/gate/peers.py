"""Gates agree offline (B2): entry records travel directly between gates on the LAN, and
certificates from every peer (gates, cash desks, counters) reach the gates.

Each gate announces itself with zeroconf (`_tessera-edge._tcp`, edge/peers/announce.py) and
browses for the others; desks and counters announce themselves the same way. When a gate
admits someone it sends the signed entry record to every peer gate at once, so a card
passed in at gate 1 is refused with PASSBACK at gate 2 within a second, hub or no hub. When
a peer appears (or every RESYNC_S) a gate pulls the peer's certificates and revocations
and, from a gate, its recent entries, so records missed while a peer was unreachable still
arrive. A card signed by a key the gate does not know yet (a desk enrolled after the gate's
last sync) makes the gate ask its peers for that key's certificate before it answers.

Zeroconf is only a way to find addresses. Every peer request is signed with the node key
and refused by the receiving door unless a certified node of this organizer signed it
(edge/peers/door.py). Nothing a peer answers is trusted for being asked either: entry
records are verified against the sender's root-signed node certificate, certificates and
revocations against the organizer's root key. A forged record is logged and dropped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.cards import cardcode
from core.cards.access import Access
from core.cards.trust import BadRecord
from edge.peers.announce import SERVICE, Announcement, root_id
from edge.peers.browse import Peer, PeerBrowser
from edge.peers.certs import MAX_RECORDS, accept_trust, node_cert
from edge.peers.client import PeerClient, PeerError

__all__ = ["SERVICE", "Peer", "PeerStats", "Peers", "accept_entries", "learn_trust"]

log = logging.getLogger("tessera.peers")

RESYNC_S = 30.0
SEND_TIMEOUT_S = 1.0
ASK_TIMEOUT_S = 1.0  # how long a scan of an unknown signer's card waits for the peers' answers
ASK_AGAIN_S = 10.0  # an unknown key is asked for at most this often
PEER_ROLES = frozenset({"gate", "cashdesk", "counter"})


@dataclass
class PeerStats:
    sent: int = 0
    received: int = 0
    refused: int = 0
    refused_reasons: list[str] = field(default_factory=list)
    certs_learned: int = 0


def own_cert(access: Access) -> str | None:
    return node_cert(access.db, access.signer.key_id)


def learn_trust(access: Access, payload: object, *, quiet: bool = False) -> int:
    """Keep the verified certificates and revocations of a peer's payload; the gate's
    decisions see them at once."""
    new = accept_trust(access.db, payload, quiet=quiet)
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
    """Announce this gate, find the other nodes, and exchange records with them."""

    def __init__(self, access: Access, *, node: dict, port: int, interfaces: Sequence[str] | None = None,
                 host_address: str = "127.0.0.1", group: str = ""):
        self.access, self.node, self.port, self.group = access, node, port, group
        self.stats = PeerStats()
        self._tasks: set[asyncio.Task] = set()
        self._resync: asyncio.Task | None = None
        self._asked: dict[int, float] = {}
        self.root_id = root_id(access.db)
        self.announcement = Announcement(node, port=port, root_id=self.root_id, host_address=host_address,
                                         interfaces=interfaces, group=group, venue=access.rules.venue_id or "")
        self.client = PeerClient(access.signer, access.clock.now, cert=own_cert(access),
                                 timeout_s=SEND_TIMEOUT_S * 3)
        self.browser = PeerBrowser(node_id=node["id"], root_id=self.root_id, group=group, roles=PEER_ROLES,
                                   on_appear=self.pull)

    @property
    def peers(self) -> dict[str, Peer]:
        return self.browser.peers

    async def start(self) -> None:
        await self.announcement.start()
        self.browser.start(self.announcement.zc.zeroconf)
        self._resync = asyncio.create_task(self._resync_loop())

    async def close(self) -> None:
        if self._resync:
            self._resync.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.browser.close()
        await self.announcement.close()
        await self.client.close()

    # -- exchange ----------------------------------------------------------------------------

    def broadcast(self, record: str) -> None:
        """Send a fresh entry record to every peer gate, without waiting for them."""
        payload = {"records": [record], "certs": [self.client.cert] if self.client.cert else []}
        for peer in list(self.peers.values()):
            if peer.role == "gate":
                self._spawn(self._send(peer, payload))

    async def _send(self, peer: Peer, payload: dict) -> None:
        try:
            await self.client.post(peer.url, "/peer/v1/entries", payload, timeout_s=SEND_TIMEOUT_S)
            self.stats.sent += len(payload["records"])
            self._ok(peer)
        except PeerError as exc:
            peer.failures += 1
            log.info("peer %s unreachable (%s); it will pull the record later", peer.name, exc)

    async def pull(self, peer: Peer) -> None:
        """Fetch a peer's certificates and revocations and, from a gate, its recent entries: as far
        back as the lockout or a performance's entry window reaches (ALREADY_ENTERED needs them all)."""
        rules = self.access.rules
        reach = max(rules.lockout_minutes, rules.entry_before_minutes + rules.entry_after_minutes, 5) + 5
        since = self.access.clock.now() - dt.timedelta(minutes=reach)
        try:
            self.stats.certs_learned += learn_trust(self.access, await self.client.get(peer.url, "/peer/v1/trust"))
            if peer.role == "gate":
                body = await self.client.get(peer.url, "/peer/v1/entries",
                                             {"since": since.strftime("%Y-%m-%dT%H:%M:%SZ")})
                accept_entries(self.access, body.get("records", []) if isinstance(body, dict) else [], self.stats)
            self._ok(peer)
        except PeerError as exc:
            peer.failures += 1
            log.info("could not pull from peer %s: %s", peer.name, exc)

    async def learn_signer_of(self, code: str) -> bool:
        """Ask the peers for the certificate of the key that signed *code* (refused as
        UNKNOWN_SIGNER); True when the gate knows that key now. Each key is asked for at most
        every ASK_AGAIN_S, so a stack of strange cards at the scanner is no flood on the LAN."""
        try:
            key_id = cardcode.decode(code).payload.key_id
        except cardcode.Malformed:
            return False
        now = time.monotonic()
        if now - self._asked.get(key_id, float("-inf")) < ASK_AGAIN_S or not self.peers:
            return False
        self._asked = {k: t for k, t in self._asked.items() if now - t < ASK_AGAIN_S}
        self._asked[key_id] = now
        asks = [self._spawn(self._ask(peer, key_id)) for peer in self.peers.values()]
        for done in asyncio.as_completed(asks):
            if await done and self.access.trust.get(key_id) is not None:
                return True
        return False

    async def _ask(self, peer: Peer, key_id: int) -> bool:
        try:
            payload = await self.client.get(peer.url, "/peer/v1/trust", {"key": f"{key_id:08x}"},
                                            timeout_s=ASK_TIMEOUT_S)
        except PeerError as exc:
            log.info("peer %s could not tell about key %08x: %s", peer.name, key_id, exc)
            return False
        learned = learn_trust(self.access, payload)
        self.stats.certs_learned += learned
        return learned > 0

    def _ok(self, peer: Peer) -> None:
        peer.last_ok, peer.failures = asyncio.get_running_loop().time(), 0

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_S)
            for peer in list(self.peers.values()):
                await self.pull(peer)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def status(self) -> list[dict]:
        return [{"node_id": p.node_id, "name": p.name, "url": p.url, "role": p.role, "failures": p.failures}
                for p in self.peers.values()]
