"""What a web page may make an edge do (DESIGN §12: "a kiosk browser may open a hostile page").

A desk's and a gate's local apps answer on the LAN and in the kiosk's own browser. A page
from anywhere else must not be able to sell, print or log in through them: not by a form or
a `text/plain` fetch (which a browser sends cross-site without asking), not by DNS
rebinding (a hostile name that resolves to the desk). So every state-changing request
(POST, PUT, PATCH, DELETE) must

- be addressed to a host name this node answers to (`Host`: loopback, this machine's name,
  or one listed in the node's settings) - a rebound name is refused;
- come from the app's own origin when a browser says where it comes from (`Origin`, else
  `Sec-Fetch-Site`) - a cross-site request is refused;
- carry a JSON body (`Content-Type: application/json`), which no cross-site form or
  "simple" request can send without the browser asking first.

Requests between nodes (the gates' `/peer/` exchange) carry signed records and are not
browser requests; they are exempt here.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from aiohttp import web

from edge.problems import problem

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def own_hosts(extra: Iterable[str] = ()) -> frozenset[str]:
    """Host names this node answers to: loopback, the machine's name (plain and .local), extras."""
    name = socket.gethostname().lower()
    return LOOPBACK | {name, f"{name}.local"} | {h.lower().strip("[]") for h in extra}


def refusal(request: web.Request, hosts: frozenset[str]) -> web.Response | None:
    """Why this state-changing request is refused (a problem response), or None."""
    host = request.host or ""
    name = (host.rpartition("]")[0].lstrip("[") if host.startswith("[") else host.partition(":")[0]).lower()
    if name not in hosts:
        return problem(403, "unknown-host", f"this node does not answer to {host!r}; open it by its own name")
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin != f"{request.scheme}://{host}":
            return problem(403, "cross-origin", f"a page from {origin} may not do this here")
    elif request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return problem(403, "cross-origin", "a page from another site may not do this here")
    if request.content_type != "application/json":
        return problem(415, "unsupported-media-type", "send a JSON body (Content-Type: application/json)")
    return None


def middleware(hosts: frozenset[str], exempt_prefixes: tuple[str, ...] = ()):
    @web.middleware
    async def browser_door(request: web.Request, handler):
        if request.method in STATE_CHANGING and not request.path.startswith(exempt_prefixes):
            refused = refusal(request, hosts)
            if refused is not None:
                return refused
        return await handler(request)

    return browser_door
