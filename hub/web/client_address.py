"""Which client a request came from, for rate limits and logs, also behind a reverse proxy.

The hub's units recommend a reverse proxy in front of the hub (TLS, DESIGN §7). Seen from the
hub, every request then comes from the proxy, so all clients would share one rate limit: one
guesser would lock out every customer. The proxy names the client in `X-Forwarded-For`, but
anyone can send that header, so it is read only when the direct peer is a proxy the operator
trusts (`hub.toml`)::

    [web]
    trusted_proxies = ["127.0.0.1/32", "::1/128"]   # addresses or networks; default: none

`client_address()` is the one place this rule lives. Without the setting it is the peer's
address and the header is ignored. With it, and a peer inside one of the networks, it is the
rightmost address of `X-Forwarded-For` that is not itself a trusted proxy: every proxy appends
the address it got the request from, so entries to the left of that one were written by the
client and prove nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aiohttp import web

from hub.settings import CONTEXT, SETTINGS_FILE, Section

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
FORWARDED_FOR = "X-Forwarded-For"
MAX_HOPS = 20  # a longer chain is not a proxy setup anyone runs: read no further


class WebConfigError(ValueError):
    """The `[web]` section of hub.toml is unusable; the message names file and key."""


@dataclass(frozen=True, slots=True)
class WebSettings:
    trusted_proxies: tuple[Network, ...] = ()


def settings_from_dict(section: object | None, source: str = SETTINGS_FILE) -> WebSettings:
    """`[web]` of hub.toml; no trusted proxy when the file or the section is absent."""
    if section is None:
        return WebSettings()
    if not isinstance(section, dict):
        raise WebConfigError(f"{source}: [web] must be a table")
    unknown = sorted(set(section) - {"trusted_proxies"})
    if unknown:
        raise WebConfigError(f"{source}: [web] has unknown key(s) {', '.join(unknown)}; known: trusted_proxies")
    listed = section.get("trusted_proxies", [])
    if not isinstance(listed, list):
        raise WebConfigError(f"{source}: [web] trusted_proxies must be a list like [\"127.0.0.1/32\"]")
    networks = []
    for entry in listed:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except (TypeError, ValueError):
            raise WebConfigError(f"{source}: [web] trusted_proxies: {entry!r} is not an address or network "
                                 "like \"127.0.0.1/32\"") from None
    return WebSettings(trusted_proxies=tuple(networks))


SECTION = Section("web", settings_from_dict, WebConfigError)


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: Address | None, proxies: tuple[Network, ...]) -> bool:
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in proxies)


def forwarded_client(peer: str, forwarded: list[str], proxies: tuple[Network, ...]) -> str:
    """The client address for a request from *peer* carrying the *forwarded* header lines.
    The header counts only when *peer* is a trusted proxy; then its rightmost entry that is
    not a trusted proxy is the client (entries further left were written by the client).
    An entry that is no address ends the walk: the last trusted hop is then the client."""
    if not proxies or not _trusted(_address(peer), proxies):
        return peer
    hops = [hop for line in forwarded for hop in line.split(",")][-MAX_HOPS:]
    client = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return client
        if not _trusted(address, proxies):
            return str(address)
        client = str(address)
    return client


def client_address(request: web.Request) -> str:
    """The address a request came from, for rate limits and logs (see the module's doc)."""
    peer = request.remote or "?"
    hub = request.app.get(CONTEXT)
    if hub is None:
        return peer
    proxies = hub.section(SECTION).trusted_proxies
    return forwarded_client(peer, request.headers.getall(FORWARDED_FOR, []), proxies)
