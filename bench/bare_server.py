"""Baseline servers answering one path with fixed response bytes, for `bench.api`.

- `aiohttp`: the least any aiohttp handler can do, served exactly the way `tessera hub serve`
  serves the hub (same runner, no access log), so the hub's throughput divided by this one
  is the cost of our own stack: auth, query validation, SQLite and JSON encoding.
- `raw`: a bare asyncio protocol writing the complete response per request; far cheaper
  than aiohttp, it shows how many requests per second the load generator itself can drive.

Run as `python -m bench.bare_server MODE --path PATH --body FILE --content-type TYPE`;
prints `bare server on http://127.0.0.1:PORT` when ready and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from aiohttp import web

from cli.hub_commands import serve

HOST = "127.0.0.1"


def announce(url: str) -> None:
    print(f"bare server on {url}", flush=True)


def aiohttp_app(path: str, body: bytes, content_type: str) -> web.Application:
    """One GET route returning the prepared bytes; nothing else runs per request."""
    headers = {"Content-Type": content_type}

    async def fixed(_request: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get(path, fixed)
    return app


class FixedResponse(asyncio.Protocol):
    """Answers every complete request head with the same response; keeps the connection open."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.pending = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.pending += data
        heads = self.pending.count(b"\r\n\r\n")
        if heads:
            self.pending = self.pending[self.pending.rfind(b"\r\n\r\n") + 4:]
            self.transport.write(self.response * heads)


async def serve_raw(body: bytes, content_type: str) -> None:
    response = (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
                .encode() + body)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FixedResponse(response), HOST, 0)
    announce(f"http://{HOST}:{server.sockets[0].getsockname()[1]}")
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("aiohttp", "raw"))
    parser.add_argument("--path", required=True, help="URL path to answer (aiohttp mode)")
    parser.add_argument("--body", required=True, type=Path, help="file holding the response body")
    parser.add_argument("--content-type", required=True)
    args = parser.parse_args(argv)
    body = args.body.read_bytes()
    if args.mode == "aiohttp":
        asyncio.run(serve(aiohttp_app(args.path, body, args.content_type), HOST, 0, announce))
    else:
        asyncio.run(serve_raw(body, args.content_type))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
