"""An HTTP man in the middle between an edge and the hub, for the sync attack tests: someone
on the venue LAN who sees every request and answer, records them, and may change a request
on its way or answer in the hub's place. Real HTTP on loopback both ways."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class Exchange:
    method: str
    path_qs: str
    headers: dict  # as the edge sent them (before any change the tap makes)
    body: bytes
    status: int = 0
    answer_headers: dict = field(default_factory=dict)
    answer: bytes = b""


class Tap:
    """Modes: "pass" (forward), "protocol-99" (the request's X-Tessera-Protocol changed on the
    way), "forge-426" (answer 426 itself, unsigned), "replay-426" (answer with the last real
    signed 426 it saw, headers and body, whatever the request)."""

    def __init__(self, target: str):
        self.target = target.rstrip("/")
        self.mode = "pass"
        self.seen: list[Exchange] = []
        self.last_426: Exchange | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    async def start(cls, target: str) -> Tap:
        self = cls(target)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        await self._session.close()
        await self._runner.cleanup()

    def requests(self, path: str) -> list[Exchange]:
        return [x for x in self.seen if x.path_qs.split("?")[0].endswith(path)]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        exchange = Exchange(request.method, request.path_qs, dict(headers), body)
        self.seen.append(exchange)
        if self.mode == "forge-426":
            forged = b'{"type": "urn:tessera:problem:upgrade-edge", "status": 426, "detail": "upgrade now"}'
            return web.Response(status=426, body=forged, content_type="application/problem+json")
        if self.mode == "replay-426" and self.last_426 is not None:
            old = self.last_426
            return web.Response(status=426, body=old.answer, headers=old.answer_headers)
        if self.mode == "protocol-99":
            headers["X-Tessera-Protocol"] = "99"
        status, answer_headers, answer = await send(self._session, self.target, request.method, request.path_qs,
                                                    headers, body)
        exchange.status, exchange.answer_headers, exchange.answer = status, answer_headers, answer
        if status == 426:
            self.last_426 = exchange
        return web.Response(status=status, body=answer, headers=answer_headers)


async def send(session: aiohttp.ClientSession, base: str, method: str, path_qs: str, headers: dict,
               body: bytes) -> tuple[int, dict, bytes]:
    """One raw HTTP request (a replay, a forwarded request): status, headers worth passing on, body."""
    async with session.request(method, f"{base}{path_qs}", data=body or None, headers=headers) as resp:
        answer = await resp.read()
        dropped = HOP_BY_HOP | {"date", "server", "content-encoding"}
        kept = {k: v for k, v in resp.headers.items() if k.lower() not in dropped}
        return resp.status, kept, answer


async def replay(base: str, exchange: Exchange) -> tuple[int, dict, bytes]:
    """Send a captured request again, byte for byte, straight to *base*."""
    async with aiohttp.ClientSession() as session:
        return await send(session, base, exchange.method, exchange.path_qs, exchange.headers, exchange.body)
