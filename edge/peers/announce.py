"""Tell the LAN where this node's peer endpoints are: zeroconf `_tessera-edge._tcp`.

Gates, cash desks and counters announce themselves alike; the TXT record names the node,
its role, the organizer's root key id and the peer group. This is only a way to find
addresses: whatever answers there is trusted for nothing it says (every request is signed,
every record verified against the root), so a false announcement costs one refused request.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from collections.abc import Sequence

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

SERVICE = "_tessera-edge._tcp.local."
WILDCARDS = ("", "0.0.0.0", "::")


class Announcement:
    """This node's zeroconf registration (and the zeroconf instance a gate browses with)."""

    def __init__(self, node: dict, *, port: int, root_id: str, host_address: str = "127.0.0.1",
                 interfaces: Sequence[str] | None = None, group: str = "", venue: str = ""):
        self.node, self.port, self.root_id, self.group, self.venue = node, port, root_id, group, venue
        self.host_address, self.interfaces = lan_address(host_address), interfaces
        self.zc: AsyncZeroconf | None = None
        self.info: AsyncServiceInfo | None = None

    @property
    def service_name(self) -> str:
        return f"{self.node['name']}-{self.node['id'][-8:]}.{SERVICE}"  # the random end: ids start with a time

    async def start(self) -> None:
        kwargs: dict = {"ip_version": IPVersion.V4Only}
        if self.interfaces:
            kwargs["interfaces"] = list(self.interfaces)
        self.zc = AsyncZeroconf(**kwargs)
        self.info = AsyncServiceInfo(
            SERVICE, self.service_name, addresses=[socket.inet_aton(self.host_address)], port=self.port,
            properties={"node_id": self.node["id"], "name": self.node["name"], "role": self.node["role"],
                        "root": self.root_id, "group": self.group, "venue": self.venue})
        await self.zc.async_register_service(self.info)

    async def close(self) -> None:
        if self.zc is None:
            return
        if self.info is not None:
            with contextlib.suppress(Exception):
                await self.zc.async_unregister_service(self.info)
        await self.zc.async_close()
        self.zc = None


def root_id(db: sqlite3.Connection) -> str:
    """The organizer's root key id as announced (8 hex digits), '' before enrollment."""
    row = db.execute("SELECT key_id FROM trust_roots ORDER BY key_id LIMIT 1").fetchone()
    return f"{row['key_id']:08x}" if row else ""


def lan_address(host: str) -> str:
    """The address peers should use: the listening address, or for a wildcard listener the
    address this machine reaches the LAN from (no packet is sent to find it)."""
    if host not in WILDCARDS:
        return host
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET: only picks the route
        return probe.getsockname()[0]
    return "127.0.0.1"
