"""`tessera edge serve`: a cash desk's (or counter's) local API, its screens, printing and sync loop.

Works with the hub down: sales go to the local database and the outbox in one transaction
and reach the hub when it is back. The cash-desk screens (`edge/desk/web.py`) use the desk's
JSON API (`edge/desk/api.py`); printers are configured in `desk.toml` (`edge/desk/printing.py`).

- `GET  /api/status`                      online/offline, last push and pull, ops waiting, conflicts, skew,
                                          print queue counts, printer errors, logged-in operator
- `POST /api/sales`                       sell seats of a performance from this desk's contingent (the
                                          logged-in operator sells; JSON, from the desk's own origin)
- `GET  /api/performances/{id}/pools`     the contingents as this desk knows them
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import msgspec
from aiohttp import web
from msgspec import Meta

from core.base.clock import utcnow
from core.base.errors import TesseraError
from core.base.node import NODE_DB, this_node
from core.base.storage import connect
from core.cards.trusted_time import TrustedClock
from core.catalog.common import Body, Id
from core.sales import contingents, tickets
from core.sales.payments import Payment
from edge import browser_door
from edge.browser_door import own_hosts
from edge.desk import api, subscriptions_api, vouchers_api
from edge.desk import web as desk_web
from edge.desk.peers import DeskPeers
from edge.desk.printing import DeskPrinting, load_desk_config
from edge.notify import Heartbeat, SdNotify, feed_watchdog, watchdog_interval
from edge.problems import problem
from edge.sync import client as sync_client

log = logging.getLogger("tessera.edge")
EDGE = web.AppKey("edge", object)
STATUS = {"ValidationError": 422, "NotFound": 404, "Conflict": 409}
RESTART_S = 2.0


class Edge:
    def __init__(self, data_dir: Path, *, hub_url: str | None = None, sync: bool = True,
                 sync_period_s: float = 10.0):
        self.data_dir = Path(data_dir)
        if not (self.data_dir / NODE_DB).exists():
            raise FileNotFoundError(f"{data_dir} is not an edge folder; run `tessera edge enroll` first")
        self.db = connect(self.data_dir / NODE_DB, edge=True)
        self.node = this_node(self.db)
        if self.node["role"] == "hub":
            raise ValueError(f"{data_dir} is a hub folder; use `tessera hub serve`")
        self.clock = TrustedClock(self.db)
        self.wake = asyncio.Event()
        self.client = sync_client.SyncClient(self.db, self.data_dir, hub_url=hub_url, clock=self.clock) if sync \
            else None
        self.sync_period_s = sync_period_s
        self.sessions = api.Sessions()
        self.printing = DeskPrinting(self.db, self.node, self.data_dir, self.clock)
        self.desk_access = None  # core.cards.access.Access for voucher checks, made on first use
        self._tasks: list[asyncio.Task] = []
        self.peers = DeskPeers(self)  # gates on the LAN learn this desk's certificate from it

    def app(self) -> web.Application:
        hosts = own_hosts(load_desk_config(self.data_dir).web.hosts)
        app = web.Application(middlewares=[browser_door.middleware(hosts), problems], client_max_size=256 * 1024)
        app[EDGE] = self
        app.router.add_get("/api/status", get_status)
        app.router.add_post("/api/sales", post_sale)
        app.router.add_get("/api/performances/{id}/pools", get_pools)
        api.install(app, self)
        subscriptions_api.install(app, self)
        vouchers_api.install(app, self)
        self.peers.install(app)
        desk_web.install(app, self)
        return app

    def start_background(self) -> None:
        if self.client:
            self._tasks.append(asyncio.create_task(self._supervised("sync", lambda: self.client.run(
                self.wake, period_s=self.sync_period_s))))
        self._tasks.append(asyncio.create_task(self._supervised("printing", self.printing.run)))

    async def _supervised(self, name: str, start) -> None:
        """Keep a background loop alive: a bug that escapes it is logged (a dead sync loop
        would otherwise leave sales waiting silently) and the loop starts again."""
        while True:
            try:
                await start()
                return  # ended on purpose (an edge that must be upgraded stops syncing)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s loop failed; restarting it in %s s", name, RESTART_S)
                await asyncio.sleep(RESTART_S)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.client:
            await self.client.close()
        self.printing.close()
        await self.peers.close()
        self.db.close()


@web.middleware
async def problems(request: web.Request, handler):
    try:
        return await handler(request)
    except TesseraError as exc:
        return _problem_of(exc)
    except msgspec.ValidationError as exc:
        return problem(422, "ValidationError", str(exc), None)
    except msgspec.DecodeError as exc:
        return problem(400, "bad-request", f"body is not JSON: {exc}", None)


def _problem_of(exc: TesseraError) -> web.Response:
    """The error's own status and stable slug (a LoginRefused is 401), with its extra fields
    (`tries_left`, `locked_until`) next to `detail`."""
    status = exc.status if 400 <= exc.status < 600 else STATUS.get(type(exc).__name__, 400)
    resp = problem(status, exc.slug if exc.slug != "error" else type(exc).__name__, exc.detail,
                   getattr(exc, "field", None))
    if getattr(exc, "extra", None):
        body = {**msgspec.json.decode(resp.body), **exc.extra}
        resp = web.json_response(body, status=status, content_type="application/problem+json")
    return resp


async def get_status(request: web.Request) -> web.Response:
    edge: Edge = request.app[EDGE]
    state = sync_client.status(edge.db)
    last = max((t for t in (state["last_push_at"], state["last_pull_at"]) if t), default=None)
    return web.json_response({**state, "last_sync_at": last, "clock": edge.clock.status(),
                              **api.status_extra(request, edge)})


class DeskSaleIn(Body, kw_only=True):
    """A seat sale at the desk: the operator is the session's, so the body names none."""

    performance_id: Id
    seat_ids: Annotated[list[Id], Meta(min_length=1, max_length=50)]
    payment_method: Payment
    payment_reference: Annotated[str, Meta(max_length=100)] | None = None


async def post_sale(request: web.Request) -> web.Response:
    edge: Edge = request.app[EDGE]
    if edge.node["role"] != "cashdesk":
        return problem(403, "forbidden", f"a {edge.node['role']} does not sell seats", None)
    operator = api.require_operator(request)  # who sells is the one logged in, never the body's word
    body = msgspec.json.decode(await request.read(), type=DeskSaleIn)
    sale = tickets.SaleIn(**msgspec.structs.asdict(body), operator=operator["name"])
    record = tickets.sell(edge.db, edge.node, sale, pool=contingents.node_pool(edge.node["id"]), channel="cashdesk",
                          now=edge.clock.now())
    edge.wake.set()  # push soon
    return web.json_response(record, status=201)


async def get_pools(request: web.Request) -> web.Response:
    edge: Edge = request.app[EDGE]
    return web.json_response(contingents.summary(edge.db, request.match_info["id"]))


async def serve(data_dir: Path, host: str, port: int, *, hub_url: str | None = None, ready=print,
                sync_period_s: float = 10.0, peers: bool = True, peer_group: str = "") -> None:
    """Run until SIGTERM/SIGINT (or cancellation). The desk announces itself to the gates of its
    peer group (edge/desk/peers.py)."""
    import signal

    edge = Edge(data_dir, hub_url=hub_url, sync_period_s=sync_period_s)
    runner = web.AppRunner(edge.app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        await edge.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    edge.start_background()
    if peers:
        await edge.peers.start(runner.addresses[0][1], host, group=peer_group)
    notify, heart = SdNotify(), Heartbeat()

    async def beat() -> None:
        while True:
            heart.beat()
            await asyncio.sleep(1.0)

    beats = asyncio.create_task(beat())
    dog = asyncio.create_task(feed_watchdog(notify, heart, watchdog_interval(), 10.0))
    url = f"http://{host}:{runner.addresses[0][1]}"
    notify.ready(f"edge {edge.node['name']} on {url}")
    ready(f"edge {edge.node['name']} ({edge.node['role']}) on {url}/api/status, "
          f"syncing with {edge.client.hub_url if edge.client else '-'}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        notify.stopping()
        beats.cancel()
        dog.cancel()
        await runner.cleanup()
        await edge.close()
    log.info("edge stopped at %s", utcnow())
