"""A cash desk's or counter's part in the peer exchange: gates learn its certificate from it,
and desks and counters exchange redemption claims (edge/desk/claims.py).

A gate that has not synced since this desk was enrolled does not know the desk's key, and
would refuse every card the desk sells as UNKNOWN_SIGNER while the hub is away. So the desk
announces itself on the LAN like a gate (zeroconf `_tessera-edge._tcp`, edge/peers/announce.py)
and serves `GET /peer/v1/trust[?key=]`: the root-signed certificates and revocations it holds,
its own among them. Only a certified node of this organizer gets an answer (the peer door,
edge/peers/door.py), and the gate keeps only what verifies against its pinned root: the desk
vouches for nothing by its own word. While it announces itself the desk also browses for the
other desks and counters of its peer group and exchanges redemption claims with them, so a
voucher redeemed here is refused at the next desk within a second, hub or no hub.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from edge.desk import claims
from edge.peers.announce import Announcement, root_id
from edge.peers.certs import CachedTrust, accept_trust, trust_answer
from edge.peers.door import PeerDoor

if TYPE_CHECKING:
    from edge.desk.server import Edge

log = logging.getLogger("tessera.peers")
DESK_PEERS = web.AppKey("desk_peers", object)


class DeskPeers:
    """The desk's peer door and endpoint, and its announcement while it serves."""

    def __init__(self, edge: Edge):
        self.edge = edge
        self.trust = CachedTrust(edge.db)
        self.door = PeerDoor(trust=self.trust, now=edge.clock.now, learn=self._learn)
        self.announcement: Announcement | None = None
        self.claims = claims.DeskClaims(edge, self.trust)

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.door.middleware())
        app[DESK_PEERS] = self
        app.router.add_get("/peer/v1/trust", send_trust)
        claims.install(app, self.claims)

    async def start(self, port: int, host_address: str = "127.0.0.1", interfaces: Sequence[str] | None = None,
                    group: str = "") -> None:
        """Announce this desk and find its peer desks; a LAN without multicast costs the gates'
        shortcut and the claim exchange, not the desk's sales."""
        root = root_id(self.edge.db)
        self.announcement = Announcement(self.edge.node, port=port, root_id=root,
                                         host_address=host_address, interfaces=interfaces, group=group)
        try:
            await self.announcement.start()
        except (OSError, ValueError) as exc:
            log.warning("cannot announce this %s to peer gates: %s", self.edge.node["role"], exc)
            self.announcement = None
            return
        self.claims.start(self.announcement.zc.zeroconf, root, group)

    async def close(self) -> None:
        await self.claims.close()
        if self.announcement is not None:
            await self.announcement.close()
            self.announcement = None

    def _learn(self, cert: str) -> None:
        """A gate enrolled after this desk's last sync sends its certificate along."""
        if accept_trust(self.edge.db, {"certs": [cert]}, quiet=True):
            self.trust.forget()


async def send_trust(request: web.Request) -> web.Response:
    peers: DeskPeers = request.app[DESK_PEERS]
    return trust_answer(request, peers.edge.db)
