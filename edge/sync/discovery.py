"""Find hubs on the LAN with zeroconf (E7): browse `_tessera-hub._tcp.local.`.

DISCOVERY IS ONLY A HINT. Anyone on the LAN can announce `_tessera-hub._tcp` with any TXT
record, including our organizer's root fingerprint, so nothing found here is trusted:

- an edge verifies every hub response against the organizer root key it pinned at
  enrollment (that verification lives in the sync client, not here), so a rogue hub
  announced on the LAN gets nowhere: it cannot feed an edge a catalog, revocations or
  certificates; at best it costs a request that fails verification, and the edge tries
  the next candidate or waits for its hub.
- before enrollment nothing is pinned yet. An edge that enrolls through a discovered hub
  must not simply pin whatever root that hub hands out; the enrollment step has to bind
  the answer to something the operator holds (the one-time code, or the fingerprint passed
  as `root_fingerprint`), which is the enrollment code's job, not this module's.

`root_fingerprint` (8 hex digits, the organizer root key id; see `hub/sync/advertise.py`) is
therefore a *filter*, not a check: when given, hubs announcing another root (or none) are
dropped, because they belong to another organizer sharing the LAN and their answers
would fail verification anyway. The result is sorted by name and URL so repeated calls
list the same hubs in the same order.

Everything that answers within `timeout_s` is returned; a hub still resolving at the
deadline is left out (call again, or pass `--hub URL`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

__all__ = ["SERVICE", "HubCandidate", "DiscoveryError", "discover_hubs"]

SERVICE = "_tessera-hub._tcp.local."  # same as hub.sync.advertise.SERVICE (edge does not import hub)


class DiscoveryError(OSError):
    """Zeroconf could not start (no multicast, an unknown interface address)."""


@dataclass(frozen=True)
class HubCandidate:
    """A hub that announced itself. `url` is the base (`http://IP:PORT`); the API and sync
    endpoints are `url + api` and `url + sync`. Nothing here is verified."""

    url: str
    node_id: str
    name: str
    root_fingerprint: str
    proto: str
    api: str = "/api/v1"
    sync: str = "/sync/v1"
    service_name: str = ""


def _candidate(info: AsyncServiceInfo) -> HubCandidate | None:
    props = {k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace")
             for k, v in (info.properties or {}).items()}
    addresses = info.parsed_addresses(IPVersion.V4Only)
    if not addresses or not info.port or not props.get("node_id"):
        return None
    return HubCandidate(url=f"http://{addresses[0]}:{info.port}", node_id=props["node_id"],
                        name=props.get("name", ""), root_fingerprint=props.get("root", "").lower(),
                        proto=props.get("proto", ""), api=props.get("api") or "/api/v1",
                        sync=props.get("sync") or "/sync/v1", service_name=info.name)


async def discover_hubs(*, timeout_s: float = 3.0, interfaces: Sequence[str] | None = None,
                        root_fingerprint: str | None = None) -> list[HubCandidate]:
    """Browse for hubs for `timeout_s` seconds and return those resolved by then.

    `interfaces`: IPv4 addresses of the interfaces to browse on (None: all).
    `root_fingerprint`: keep only hubs announcing this organizer root (8 hex digits).
    Raises DiscoveryError if zeroconf cannot start at all.
    """
    kwargs: dict = {"ip_version": IPVersion.V4Only}
    if interfaces:
        kwargs["interfaces"] = list(interfaces)
    try:
        azc = AsyncZeroconf(**kwargs)
    except (OSError, ValueError) as exc:
        raise DiscoveryError(f"cannot browse the LAN for hubs: {exc}") from exc
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    found: dict[str, HubCandidate] = {}
    tasks: set[asyncio.Task] = set()

    async def resolve(name: str) -> None:
        info = AsyncServiceInfo(SERVICE, name)
        remaining_ms = (deadline - loop.time()) * 1000
        if remaining_ms > 0 and await info.async_request(azc.zeroconf, remaining_ms):
            candidate = _candidate(info)
            if candidate is not None:
                found[name] = candidate

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            found.pop(name, None)
            return
        task = loop.create_task(resolve(name))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    browser = AsyncServiceBrowser(azc.zeroconf, [SERVICE], handlers=[on_change])
    try:
        await asyncio.sleep(max(0.0, deadline - loop.time()))
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await browser.async_cancel()
        with contextlib.suppress(Exception):
            await azc.async_close()
    hubs = list(found.values())
    if root_fingerprint is not None:
        wanted = root_fingerprint.strip().lower()
        hubs = [hub for hub in hubs if hub.root_fingerprint == wanted]
    return sorted(hubs, key=lambda hub: (hub.name, hub.url, hub.node_id))
