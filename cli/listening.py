"""Taking a server's port before anything else starts.

aiohttp opens the port in `TCPSite.start()`, after `AppRunner.setup()` has run the app's
startup hooks (the hub's mail and print workers). On a busy port those workers had already
started and said their piece (a mail warning) before the one line that mattered: cannot
listen. `bind()` takes the port first, so a busy port is the first and only message; the
bound socket is then served with `web.SockSite`.
"""

from __future__ import annotations

import socket


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to *host*:*port* (0: any free port), not yet listening; RuntimeError
    with one clear line if the address is taken or unusable."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does: restart right after a stop
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock
