"""The hub announces itself on the LAN with zeroconf (E7): `_tessera-hub._tcp.local.`.

An edge enrolled without `--hub`, or one whose hub moved to another address, browses for
this service (`edge/sync/discovery.py`). The TXT record says which hub answers and for which
organizer:

    node_id  the hub's node id            name   the hub's node name
    root     organizer root key id, 8 lower-case hex digits (`root_fingerprint`)
    proto    sync protocol version ("1")  api    "/api/v1"    sync   "/sync/v1"

None of this is a credential. Anyone on the LAN can announce the same TXT record; an
edge verifies every hub response against the root key it pinned at enrollment, so an
announcement only tells it where to knock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sqlite3
from collections.abc import Sequence

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from core.cards import keys

__all__ = ["SERVICE", "PROTO", "API_PATH", "SYNC_PATH", "HubAdvertiser", "root_fingerprint", "instance_name"]

log = logging.getLogger("tessera.advertise")

SERVICE = "_tessera-hub._tcp.local."
PROTO = "1"
API_PATH = "/api/v1"
SYNC_PATH = "/sync/v1"
CLOSE_TIMEOUT_S = 3.0


def root_fingerprint(db: sqlite3.Connection) -> str:
    """The organizer root key id as 8 lower-case hex digits (the first pinned root)."""
    row = db.execute("SELECT public_key FROM trust_roots ORDER BY key_id LIMIT 1").fetchone()
    if row is None:
        raise LookupError("this data folder trusts no organizer root key yet")
    return f"{keys.key_id(row['public_key']):08x}"


def instance_name(name: str, node_id: str) -> str:
    """A DNS-SD instance label unique per node: the name, then the random tail of the node id.

    (The head of a UUIDv7 is a timestamp: two hubs made within a minute share it.)
    """
    label = "".join(c if c.isalnum() or c in "-_ " else "-" for c in name).strip() or "hub"
    return f"{label[:40]}-{node_id.replace('-', '')[-12:]}"


class HubAdvertiser:
    """Registers the hub's service on start(), withdraws it (goodbye packets) on close().

    `interfaces` are IPv4 addresses of the interfaces to announce on (None: all);
    `host_address` is the IPv4 address written into the A record, i.e. where edges will
    connect. start() raises if zeroconf cannot start (no multicast, unknown interface,
    not an IPv4 address); the caller decides whether that matters.
    """

    def __init__(self, *, port: int, node_id: str, name: str, root_fingerprint: str,
                 host_address: str = "127.0.0.1", interfaces: Sequence[str] | None = None) -> None:
        self.port, self.node_id, self.name, self.root = port, node_id, name, root_fingerprint
        self.host_address = host_address
        self.interfaces = list(interfaces) if interfaces else None
        self.service_name = f"{instance_name(name, node_id)}.{SERVICE}"
        self._zc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None

    def properties(self) -> dict[str, str]:
        return {"node_id": self.node_id, "name": self.name, "root": self.root, "proto": PROTO,
                "api": API_PATH, "sync": SYNC_PATH}

    async def start(self) -> None:
        """Announce the service; returns once the announcement went out."""
        try:
            address = socket.inet_aton(self.host_address)
        except OSError:
            raise ValueError(f"{self.host_address!r} is not an IPv4 address") from None
        kwargs: dict = {"ip_version": IPVersion.V4Only}
        if self.interfaces:
            kwargs["interfaces"] = self.interfaces
        self._zc = AsyncZeroconf(**kwargs)
        host = f"tessera-hub-{self.node_id.replace('-', '')[-12:]}.local."
        self._info = AsyncServiceInfo(SERVICE, self.service_name, addresses=[address], port=self.port,
                                      properties=self.properties(), server=host)
        try:
            announced = await self._zc.async_register_service(self._info, allow_name_change=True)
            await announced
        except BaseException:
            await self._close_zeroconf(unregister=False)
            raise
        self.service_name = self._info.name  # may carry a " (2)" if the name was taken
        log.info("advertised %s at %s:%d", self.service_name, self.host_address, self.port)

    async def close(self) -> None:
        """Withdraw the service (best effort, bounded in time) and stop zeroconf."""
        await self._close_zeroconf(unregister=True)

    async def _close_zeroconf(self, *, unregister: bool) -> None:
        zc, info, self._zc = self._zc, self._info, None
        if zc is None:
            return
        if unregister and info is not None:
            async def goodbye() -> None:
                await (await zc.async_unregister_service(info))

            with contextlib.suppress(Exception):
                await asyncio.wait_for(goodbye(), CLOSE_TIMEOUT_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(zc.async_close(), CLOSE_TIMEOUT_S)

    async def __aenter__(self) -> HubAdvertiser:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
