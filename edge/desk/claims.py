"""Never twice on the LAN: desks and counters claim a voucher before they redeem it (issue 15).

A voucher is a bearer code and desks redeem offline, so while the hub is away the same voucher
can be shown at two desks. Before a desk stores and prints a redemption it calls `claim`:

1. a live claim another node holds on one of the vouchers (in this desk's `redemption_claims`,
   sent here by that node or pulled from a peer) refuses at once, naming that desk and the time;
2. otherwise the desk signs its claim with its node key, keeps it, and sends it to every peer
   desk and counter found on the LAN (zeroconf, edge/peers/browse.py) in parallel, waiting at
   most SEND_TIMEOUT_S for each: an unreachable peer does not block the sale (offline is normal);
3. a peer that holds an earlier live claim on one of the vouchers answers with it; after the
   answers the earliest live claim wins (then the smaller node id), the same rule every desk
   applies (core/sales/redemption_claims.py), so of two desks claiming at once exactly one
   goes on; the other releases its claim and refuses.

`release` withdraws a claim whose sale then failed (and tells the peers), unless this desk's
database shows the voucher redeemed or another request of this desk still holds it. A desk that
appears on the LAN (and every RESYNC_S) pulls its peers' recent claims, like gates pull entries.

Peer endpoints, behind the peer door (edge/peers/door.py: only a certified node of this
organizer gets in), each record verified again against its own signer's certificate:

- `POST /peer/v1/claims` {records, certs}: store the claims and releases that verify; answer
  {stored, refused, claims}: `claims` are this desk's signed records of earlier live claims
  that beat a claim sent (that claim is not stored). A forged record is logged and dropped.
- `GET /peer/v1/claims?since=ISO`: the claims and releases this desk holds since then.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from zeroconf import Zeroconf

from core.base.clock import iso_ms, parse_iso
from core.cards import cards
from core.cards.trust import BadRecord
from core.sales import redemption_claims as rc
from edge.peers.browse import Peer, PeerBrowser
from edge.peers.certs import MAX_RECORDS, accept_trust, node_cert
from edge.peers.client import PeerClient, PeerError
from edge.peers.door import PEER_BODY
from edge.problems import problem

if TYPE_CHECKING:
    from edge.desk.server import Edge

__all__ = ["DeskClaims", "claim", "release"]

log = logging.getLogger("tessera.peers")
CLAIM_ROLES = frozenset({"cashdesk", "counter"})
SEND_TIMEOUT_S = 1.0
RESYNC_S = 30.0
PULL_REACH = dt.timedelta(hours=48)  # what a desk that appears pulls: a long hub outage, not the season
PRUNE_EVERY_S = 600.0


async def claim(edge: Edge, kind: str, keys: list[str]) -> None:
    """Claim vouchers *keys* of *kind* ('choice_voucher' | 'annual_voucher') for a redemption at
    this desk; Conflict (English, `detail_de`, naming the other desk and the time) when another
    desk or counter holds a live claim on one of them, here or at a reachable peer."""
    await edge.peers.claims.claim(kind, keys)


async def release(edge: Edge, kind: str, keys: list[str]) -> None:
    """Withdraw this desk's claim on *keys* after its sale failed (peers are told in the background)."""
    await edge.peers.claims.release(kind, keys)


class DeskClaims:
    """This desk's side of the claim exchange: its claims, its peers, its two endpoints."""

    def __init__(self, edge: Edge, trust):
        self.edge, self.trust = edge, trust
        self.browser: PeerBrowser | None = None
        self.client: PeerClient | None = None
        self.held: collections.Counter[tuple[str, str]] = collections.Counter()  # requests holding a claim
        self.sent = self.received = self.refused = 0
        self._signer: cards.NodeSigner | None = None
        self._tasks: set[asyncio.Task] = set()
        self._resync: asyncio.Task | None = None
        self._pruned = float("-inf")

    # -- the interface ---------------------------------------------------------------------------

    async def claim(self, kind: str, keys: Sequence[str]) -> None:
        db, node = self.edge.db, self.edge.node
        vouchers = rc.check_request(kind, keys)
        now = self.edge.clock.now()
        self._prune(now)
        other = rc.held_elsewhere(db, kind, vouchers, node["id"])
        if other is not None:
            raise rc.refusal(other)
        own = rc.make(self.signer(), node["name"], kind, vouchers, now)
        rc.store(db, own, now)
        self.held.update((kind, v) for v in vouchers)
        for answer in await self._send_all(own.record):
            self.accept(answer.get("claims") if isinstance(answer, dict) else None)
        lost = rc.lost_to(db, own)
        if lost:
            await self.release(kind, vouchers)
            raise rc.refusal(min(lost, key=lambda r: (r["claimed_at"], r["node_id"])))

    async def release(self, kind: str, keys: Sequence[str]) -> None:
        vouchers = rc.check_request(kind, keys)
        redeemed = rc.redeemed_here(self.edge.db, kind, vouchers)
        free = [v for v in vouchers if self.held[(kind, v)] <= 1 and v not in redeemed]
        for v in vouchers:
            self.held[(kind, v)] -= 1
            if self.held[(kind, v)] <= 0:
                del self.held[(kind, v)]
        if not free:
            return
        now = self.edge.clock.now()
        withdrawn = rc.make(self.signer(), self.edge.node["name"], kind, free, now, live=False)
        rc.store(self.edge.db, withdrawn, now)
        self._spawn(self._send_all(withdrawn.record))

    # -- peers -----------------------------------------------------------------------------------

    def signer(self) -> cards.NodeSigner:
        if self._signer is None:
            self._signer = cards.load_signer(self.edge.db, self.edge.data_dir)
        return self._signer

    def peers(self) -> list[Peer]:
        return list(self.browser.peers.values()) if self.browser else []

    def status(self) -> list[dict]:
        """The peer desks and counters found (desk status page: is the claim exchange on?)."""
        return [{"name": p.name, "role": p.role, "url": p.url, "failures": p.failures} for p in self.peers()]

    def start(self, zeroconf: Zeroconf, root_id: str, group: str) -> None:
        """Browse for peer desks and counters (the announcement's zeroconf) and keep pulling."""
        self.open(root_id, group)
        self.browser.start(zeroconf)

    def open(self, root_id: str, group: str) -> None:
        """The client and the (not yet browsing) peer list; `start` browses, a test may fill
        `browser.peers` itself."""
        signer = self.signer()
        self.client = PeerClient(signer, self.edge.clock.now, cert=node_cert(self.edge.db, signer.key_id),
                                 timeout_s=SEND_TIMEOUT_S * 3)
        self.browser = PeerBrowser(node_id=self.edge.node["id"], root_id=root_id, group=group, roles=CLAIM_ROLES,
                                   on_appear=self.pull)
        self._resync = asyncio.create_task(self._resync_loop())

    async def close(self) -> None:
        if self._resync:
            self._resync.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self.browser:
            await self.browser.close()
        if self.client:
            await self.client.close()

    async def _send_all(self, record: str) -> list[object]:
        """Send *record* to every peer at once; the answers of those that answered in time."""
        if self.client is None:
            return []
        payload = {"records": [record], "certs": [self.client.cert] if self.client.cert else []}
        answers = await asyncio.gather(*(self._send(peer, payload) for peer in self.peers()))
        return [a for a in answers if a is not None]

    async def _send(self, peer: Peer, payload: dict) -> object | None:
        try:
            answer = await self.client.post(peer.url, "/peer/v1/claims", payload, timeout_s=SEND_TIMEOUT_S)
        except PeerError as exc:
            peer.failures += 1
            log.info("peer %s did not take a claim (%s); it pulls claims when it is back", peer.name, exc)
            return None
        self.sent += 1
        peer.failures = 0
        return answer

    async def pull(self, peer: Peer) -> None:
        """A peer's certificates (a desk enrolled after our last sync) and its recent claims."""
        if self.client is None:
            return
        since = self.edge.clock.now() - PULL_REACH
        try:
            if accept_trust(self.edge.db, await self.client.get(peer.url, "/peer/v1/trust"), quiet=True):
                self.trust.forget()
            body = await self.client.get(peer.url, "/peer/v1/claims", {"since": iso_ms(since)})
        except PeerError as exc:
            peer.failures += 1
            log.info("could not pull claims from peer %s: %s", peer.name, exc)
            return
        self.accept(body.get("records") if isinstance(body, dict) else None)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_S)
            for peer in self.peers():
                await self.pull(peer)

    def accept(self, records: object) -> tuple[int, list[str]]:
        """Store the claim records that verify; (stored, signed records of earlier claims that
        beat a live claim among them: that claim is not stored)."""
        if not isinstance(records, list):
            return 0, []
        stored, beaten_by = 0, []
        now = self.edge.clock.now()
        trust = self.trust()
        for record in records[:MAX_RECORDS]:
            try:
                claimed = rc.verify(trust, record, now)
            except BadRecord as exc:
                self.refused += 1
                log.warning("dropped a redemption claim from a peer: %s", exc)
                continue
            earlier = rc.lost_to(self.edge.db, claimed) if claimed.live else []
            if earlier:
                beaten_by.extend(row["record"] for row in earlier)
                continue
            stored += rc.store(self.edge.db, claimed, now) > 0
        self.received += stored
        return stored, list(dict.fromkeys(beaten_by))

    def _prune(self, now: dt.datetime) -> None:
        loop_now = asyncio.get_running_loop().time()
        if loop_now - self._pruned > PRUNE_EVERY_S:
            self._pruned = loop_now
            rc.prune(self.edge.db, now)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# -- the peer endpoints ------------------------------------------------------------------------------


CLAIMS = web.AppKey("desk_claims", DeskClaims)


def install(app: web.Application, claims: DeskClaims) -> None:
    app[CLAIMS] = claims
    app.router.add_post("/peer/v1/claims", post_claims)
    app.router.add_get("/peer/v1/claims", get_claims)


async def post_claims(request: web.Request) -> web.Response:
    claims = request.app[CLAIMS]
    try:
        payload = json.loads(request[PEER_BODY])
    except ValueError:
        return problem(400, "bad-request", "body is not JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        return problem(422, "validation-failed", "expected {records: [...]}")
    if isinstance(payload.get("certs"), list) and accept_trust(claims.edge.db, {"certs": payload["certs"]},
                                                               quiet=True):
        claims.trust.forget()
    refused_before = claims.refused
    stored, beaten_by = claims.accept(payload["records"])
    return web.json_response({"stored": stored, "refused": claims.refused - refused_before, "claims": beaten_by})


async def get_claims(request: web.Request) -> web.Response:
    claims = request.app[CLAIMS]
    now = claims.edge.clock.now()
    oldest = now - dt.timedelta(days=rc.KEEP_DAYS)
    try:
        since = parse_iso(request.query.get("since") or iso_ms(now - PULL_REACH))
        if since.tzinfo is None:
            raise ValueError("no zone")
    except ValueError:
        return problem(422, "validation-failed", "since must be an ISO time with zone")
    with contextlib.suppress(OverflowError):
        since = max(since, oldest)
    return web.json_response({"records": rc.recent(claims.edge.db, since, MAX_RECORDS)})
