"""Find the peers of this node on the LAN: zeroconf `_tessera-edge._tcp` (edge/peers/announce.py).

Gates browse for gates, desks and counters (edge/gate/peers.py); desks and counters browse for
each other to exchange redemption claims (edge/desk/claims.py). A peer is kept when its
announcement names another node of the same organizer (root key id) and peer group, in one
of the roles asked for. That is only an address: everything the peer answers is verified
(edge/peers/door.py on its requests, the records one by one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo

from edge.peers.announce import SERVICE

log = logging.getLogger("tessera.peers")
RESOLVE_MS = 3000


@dataclass
class Peer:
    node_id: str
    name: str
    url: str
    role: str = "gate"
    last_ok: float | None = None
    failures: int = 0


class PeerBrowser:
    """The peers found so far (`peers`, by node id); *on_appear* runs for a new peer or one at
    a new address (to pull what it holds)."""

    def __init__(self, *, node_id: str, root_id: str, group: str, roles: Collection[str],
                 on_appear: Callable[[Peer], Awaitable[None]]):
        self.node_id, self.root_id, self.group, self.roles = node_id, root_id, group, frozenset(roles)
        self.on_appear = on_appear
        self.peers: dict[str, Peer] = {}
        self._zeroconf: Zeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._tasks: set[asyncio.Task] = set()

    def start(self, zeroconf: Zeroconf) -> None:
        self._zeroconf = zeroconf
        self._browser = AsyncServiceBrowser(zeroconf, [SERVICE], handlers=[self._on_change])

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._browser:
            await self._browser.async_cancel()
            self._browser = None

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            for node_id, peer in list(self.peers.items()):
                if name.startswith(peer.name):
                    self.peers.pop(node_id, None)
            return
        task = asyncio.create_task(self._resolve(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, name: str) -> None:
        info = AsyncServiceInfo(SERVICE, name)
        if self._zeroconf is None or not await info.async_request(self._zeroconf, RESOLVE_MS):
            return
        props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        node_id = props.get("node_id")
        if not node_id or node_id == self.node_id or props.get("root") != self.root_id:
            return  # ourselves, or a device of another organizer
        if props.get("group", "") != self.group or props.get("role") not in self.roles:
            return  # another site of the same organizer on this LAN, or no peer of ours
        addresses = info.parsed_addresses()
        if not addresses:
            return
        peer = Peer(node_id=node_id, name=name.split(".")[0], url=f"http://{addresses[0]}:{info.port}",
                    role=props["role"])
        known = self.peers.get(node_id)
        self.peers[node_id] = peer
        if known is None or known.url != peer.url:
            log.info("peer %s %s at %s", peer.role, props.get("name"), peer.url)
            await self.on_appear(peer)
