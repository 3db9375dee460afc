"""Hub API benchmark: catalog read throughput against a bare aiohttp baseline, and idle RSS.

Throughput on shared machines drifts, so the figure that counts is a ratio measured in the
same run (DESIGN.md section 9): requests per second of `tessera hub serve` answering a
realistic catalog read through the whole stack (bearer-token lookup, query validation,
SQLite, JSON encoding), divided by requests per second of a bare aiohttp handler returning
the very same bytes on the same path. Both servers run as subprocesses served the same way;
the load generator (`bench.loadgen`) runs in its own process, and its capacity is measured
against an even cheaper raw-asyncio server so the report shows it is not the limit.
Rounds alternate bare/ours (in ABBA order) and the median of the per-round ratios is kept.

Three reads are measured, each against its own bare baseline:
- `page`: a page of 20 performances as the shop asks for it again and again, served by the
  hub as it runs (repeat reads come from the read cache, checked against the database on
  every request; see hub/web/cache.py);
- `page_uncached`: the same page rendered from SQLite on every request (`--no-read-cache`);
- `record_uncached`: one performance by id, rendered from SQLite on every request.

When other processes compete for the two cores the rate ratio drifts (it flatters us: the
fast baseline loses more to contention), so the servers' own CPU time per request is
metered too; its ratio is the steadier cross-check, reported as context without a budget.
The idle RSS figure is the hub process after a few reads and a quiet pause.

Memory under orders: a fresh hub (sample catalog, a `shop` token, hub.toml pointing its mail
at a small SMTP sink in this process) takes 10,000 paid orders through the real HTTP API,
`POST /api/v1/shop/orders` with an Idempotency-Key, one after another on one keep-alive
connection, as a web shop sends them during presale: each order makes a new customer, one to
three cards, their personalization links, an idempotency row and one e-mail, which the hub's
mail worker delivers to the sink. Every 100th order is sent a second time with the same key
and must come back as a replay. The hub's RSS is read after 0, 1,000, 2,500, 5,000, 7,500 and
10,000 orders, each time once the mail worker has delivered every mail so far and the hub
has been quiet for a moment; the last reading is held against the 80 MB budget, and the
growth over the second half says whether memory levels off or keeps climbing.

Every hub runs with `--no-advertise`: a benchmark sends nothing beyond the loopback address.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.procs import ROOT, BenchError, Server, Servers, venv_command
from bench.report import figure
from hub import sample
from hub.app import init_hub, make_app
from hub.client import LocalClient
from hub.services import tokens

NAME = "api"
HOST = "127.0.0.1"
CONNECTIONS = 10
WARMUP_S = 0.5
WINDOW_S = 2.0
ROUNDS = 3
VS_BARE_BUDGET = 0.40  # our stack must reach at least 40% of the bare handler's throughput
RSS_BUDGET_MB = 80.0
IDLE_S = 2.0
MB = 1_000_000
HUB_READY = re.compile(r"hub API on http://127\.0\.0\.1:(\d+)/api/v1")
BARE_READY = re.compile(r"bare server on http://127\.0\.0\.1:(\d+)")
ORDERS = 10_000
RSS_POINTS = (0, 1_000, 2_500, 5_000, 7_500, ORDERS)  # orders placed when the hub's RSS is read
ORDERS_RSS_BUDGET_MB = 80.0
REPLAY_EVERY = 100  # every 100th order is retried with the same Idempotency-Key
MAIL_WAIT_S = 60.0  # the mail worker must have delivered every mail this soon after an RSS point is reached
SETTLE_S = 1.0  # quiet time before each RSS reading
ORDER_TIMEOUT_S = 30.0
IDLE_READS = ("/api/v1/health", "/api/v1/performances?limit=20", "/api/v1/subscription-products?limit=10",
              "/api/v1/customers?limit=50", "/api/v1/seating-plans", "/api/v1/openapi.json")


@dataclass
class Scenario:
    name: str
    path: str
    query: str
    cached: bool

    @property
    def target(self) -> str:
        return self.path + self.query


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes


def scenarios(first_performance: str) -> list[Scenario]:
    return [Scenario("page", "/api/v1/performances", "?limit=20", cached=True),
            Scenario("page_uncached", "/api/v1/performances", "?limit=20", cached=False),
            Scenario("record_uncached", f"/api/v1/performances/{first_performance}", "", cached=False)]


def run() -> None:
    with tempfile.TemporaryDirectory(prefix="tessera-bench-api-") as tmp, Servers() as servers:
        work = Path(tmp)
        data_dir = work / "hub"
        token, first_performance = prepare_hub(data_dir)
        rss_mb = idle_rss_mb(servers, data_dir, token)
        capacity = None
        for scenario in scenarios(first_performance):
            hub = servers.start(hub_command(data_dir, scenario.cached), HUB_READY)
            expected = fetch(port_of(hub), scenario.target, token)
            body_file = work / "body.json"
            body_file.write_bytes(expected.body)
            bare = servers.start(bare_command("aiohttp", scenario.path, body_file, expected.content_type),
                                 BARE_READY)
            check_same_response(port_of(bare), scenario, token, expected)
            if capacity is None:
                raw = servers.start(bare_command("raw", scenario.path, body_file, expected.content_type),
                                    BARE_READY)
                capacity = load(raw, scenario, token)
                servers.stop(raw)  # it would only compete for the two cores from here on
            ours_runs, bare_runs = alternate_rounds(hub, bare, scenario, token)
            servers.stop(hub)
            servers.stop(bare)
            report_throughput(scenario, ours_runs, bare_runs)
        figure(NAME, "loadgen_capacity_rps", loadgen_capacity(capacity), "req/s per client core")
        figure(NAME, "hub_idle_rss", rss_mb, "MB", RSS_BUDGET_MB, "cost")
        say(f"placing {ORDERS:,} shop orders through the HTTP API; hub RSS after "
            + ", ".join(f"{n:,}" for n in RSS_POINTS))
        orders_run = orders_rss(servers, work / "hub-orders", RSS_POINTS, on_point=report_rss_point)
    report_orders(orders_run)


def prepare_hub(data_dir: Path) -> tuple[str, str]:
    """A fresh hub with the sample catalog (loaded in-process, the fast way); returns the admin
    token and the id of the first performance."""
    db, token = init_hub(data_dir)
    try:
        ids = sample.build(LocalClient(make_app(db)))
    finally:
        db.close()
    return token, ids["performances"][0]


def say(message: str) -> None:
    print(f"bench {NAME}: {message}", file=sys.stderr, flush=True)


def hub_command(data_dir: Path, cached: bool = True) -> list[str]:
    command = [str(venv_command("tessera")), "hub", "serve", "--data", str(data_dir), "--host", HOST, "--port", "0",
               "--no-advertise"]
    return command if cached else [*command, "--no-read-cache"]


def bare_command(mode: str, path: str, body_file: Path, content_type: str) -> list[str]:
    return [sys.executable, "-m", "bench.bare_server", mode, "--path", path, "--body", str(body_file),
            "--content-type", content_type]


def port_of(server: Server) -> int:
    return int(server.match.group(1))


def fetch(port: int, target: str, token: str) -> Response:
    """One authenticated GET with the standard library; fails the benchmark unless it is a 200."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", target, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        result = Response(resp.status, resp.getheader("Content-Type", ""), resp.read())
    finally:
        conn.close()
    if result.status != 200:
        raise BenchError(f"GET {target} answered {result.status}: {result.body[:200]!r}")
    return result


def check_same_response(bare_port: int, scenario: Scenario, token: str, expected: Response) -> None:
    """The baseline must send byte-for-byte what the hub sends, or the ratio compares different work."""
    got = fetch(bare_port, scenario.target, token)
    if (got.body, got.content_type) != (expected.body, expected.content_type):
        raise BenchError("the bare server's response differs from the hub's")


def request_bytes(port: int, scenario: Scenario, token: str) -> bytes:
    """The request every load connection repeats: what a shop front end would send."""
    return (f"GET {scenario.target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n").encode()


def load(server: Server, scenario: Scenario, token: str) -> dict:
    """Run the load generator in its own process for one window; its JSON result, all responses 200.

    Adds `server_cpu_us`: the server's CPU time per response over the whole run. Unlike the
    rate, it hardly moves when other processes compete for the cores, so it backs up the ratio.
    """
    port = port_of(server)
    meter = psutil.Process(server.pid)
    cpu_before = cpu_seconds(meter)
    result = run_loadgen(port, request_bytes(port, scenario, token))
    result["server_cpu_us"] = (cpu_seconds(meter) - cpu_before) / result["all_requests"] * 1e6
    return result


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def run_loadgen(port: int, request: bytes) -> dict:
    args = [sys.executable, "-m", "bench.loadgen", HOST, str(port), "--connections", str(CONNECTIONS),
            "--warmup", str(WARMUP_S), "--duration", str(WINDOW_S)]
    try:
        done = subprocess.run(args, cwd=ROOT, input=request, capture_output=True,
                              timeout=WARMUP_S + WINDOW_S + 20)
    except subprocess.TimeoutExpired:
        raise BenchError(f"the load generator did not finish within {WARMUP_S + WINDOW_S + 20:.0f} s") from None
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        detail = lines[-1] if lines else (done.stderr.decode().strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"load on port {port} failed: {detail}")
    return json.loads(lines[-1])


def alternate_rounds(hub: Server, bare_server: Server, scenario: Scenario, token: str) -> tuple[list[dict], list[dict]]:
    """ABBA order (bare, ours, ours, bare, ...) so slow drift of the machine hits both sides alike."""
    ours: list[dict] = []
    bare: list[dict] = []
    for round_no in range(ROUNDS):
        order = [(bare, bare_server), (ours, hub)]
        for results, server in order if round_no % 2 == 0 else reversed(order):
            results.append(load(server, scenario, token))
    return ours, bare


def report_throughput(scenario: Scenario, ours: list[dict], bare: list[dict]) -> None:
    name = f"catalog_{scenario.name}"
    ratios = [o["rps"] / b["rps"] for o, b in zip(ours, bare, strict=True)]
    figure(NAME, f"{name}_rps", statistics.median(o["rps"] for o in ours), "req/s")
    figure(NAME, f"{name}_bare_rps", statistics.median(b["rps"] for b in bare), "req/s")
    figure(NAME, f"{name}_vs_bare", statistics.median(ratios), "fraction of bare", VS_BARE_BUDGET, "at_least")
    # How much the per-round ratios disagreed: a large spread means a busy machine, so read with care.
    figure(NAME, f"{name}_vs_bare_spread", (max(ratios) - min(ratios)) / statistics.median(ratios),
           "fraction of median")
    cpu_ratios = [b["server_cpu_us"] / o["server_cpu_us"] for o, b in zip(ours, bare, strict=True)]
    figure(NAME, f"{name}_cpu_us", statistics.median(o["server_cpu_us"] for o in ours), "us per request")
    figure(NAME, f"{name}_bare_cpu_us", statistics.median(b["server_cpu_us"] for b in bare), "us per request")
    figure(NAME, f"{name}_vs_bare_by_cpu", statistics.median(cpu_ratios), "fraction of bare")
    figure(NAME, f"{name}_loadgen_cpu_during_bare", statistics.median(b["cpu"] for b in bare), "cores")


def loadgen_capacity(raw_run: dict | None) -> float:
    """Responses the load generator handles per second of its own CPU time, measured against the raw server.

    The raw server is itself Python and may saturate first, so its plain rate would only be a lower
    bound; the client's CPU cost per response is what says how far it is from being the limit.
    """
    if raw_run is None or raw_run["cpu"] <= 0:
        raise BenchError("the load generator reported no CPU time; cannot judge its capacity")
    return raw_run["rps"] / raw_run["cpu"]


def idle_rss_mb(servers: Servers, data_dir: Path, token: str) -> float:
    """Resident memory of a hub that has served a few reads and then sat idle (1 MB = 10^6 bytes)."""
    hub = servers.start(hub_command(data_dir), HUB_READY)
    port = port_of(hub)
    for target in IDLE_READS:
        fetch(port, target, token)
    time.sleep(IDLE_S)
    try:
        rss = psutil.Process(hub.pid).memory_info().rss
    except psutil.NoSuchProcess:
        raise BenchError("the hub exited while idle") from None
    servers.stop(hub)
    return rss / MB


# --- memory under orders -------------------------------------------------------------------------------


class MailSink:
    """A minimal SMTP server on the loopback address that accepts every mail and counts it.

    Runs its own event loop in a thread of this process, so the hub's mail worker delivers as it
    would to a real MTA (a hub without one would retry every mail with backoff, and the retries
    would be measured instead of the orders). Use as a context manager."""

    def __init__(self) -> None:
        self.received = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="bench-mail-sink", daemon=True)
        self._failure: BaseException | None = None

    def __enter__(self) -> MailSink:
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            raise BenchError(f"the mail sink did not start: {self._failure}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            server = self._loop.run_until_complete(asyncio.start_server(self._session, HOST, 0))
            self.port = server.sockets[0].getsockname()[1]
        except BaseException as exc:  # reported by __enter__
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 bench mail sink\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"DATA":
                    writer.write(b"354 end with <CRLF>.<CRLF>\r\n")
                    while await reader.readline() not in (b".\r\n", b""):
                        pass
                    self.received += 1
                    writer.write(b"250 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:  # EHLO, MAIL, RCPT, RSET, NOOP: all fine
                    writer.write(b"250 ok\r\n")
                await writer.drain()
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@dataclass
class OrdersRun:
    rss_mb: dict[int, float] = field(default_factory=dict)  # orders placed -> hub RSS
    order_s: float = 0.0  # time spent placing orders (not waiting at the RSS points)
    orders: int = 0
    replays: int = 0
    db_mb: float = 0.0  # hub.sqlite with its WAL at the end


def prepare_shop_hub(data_dir: Path, smtp_port: int) -> tuple[str, list[str]]:
    """A fresh hub with the sample catalog, a `shop` token and its mail sent to *smtp_port*;
    returns the shop token and the annual-ticket products on sale online."""
    db, _ = init_hub(data_dir)
    try:
        ids = sample.build(LocalClient(make_app(db)))
        shop_token, _ = tokens.create_token(db, "bench shop", "shop")
        online = [row["id"] for row in db.execute(
            "SELECT id FROM annual_products WHERE active AND channels LIKE '%online%' ORDER BY created_at, id")]
    finally:
        db.close()
    online = [p for p in ids["annual_products"] if p in online]
    if not online:
        raise BenchError("the sample catalog has no annual-ticket product on sale online")
    (data_dir / "hub.toml").write_text(
        f'[mail]\nhost = "{HOST}"\nport = {smtp_port}\nfrom = "Bench <bench@example.org>"\ntimeout = 10\n\n'
        '[shop]\npublic_url = "https://shop.example.org"\n', encoding="utf-8")
    return shop_token, online


def shop_order_body(n: int, products: list[str]) -> bytes:
    """Order number *n*: a new customer, one to three cards of one or two products."""
    lines = [{"product_id": products[n % len(products)], "quantity": 1 + n % 2}]
    if n % 3 == 0 and len(products) > 1:
        lines.append({"product_id": products[(n + 1) % len(products)], "quantity": 1})
    customer = {"first_name": f"Käufer{n}", "last_name": "Bench", "email": f"buyer{n}@example.org",
                "street": f"Am Wall {1 + n % 200}", "postcode": "28195", "town": "Bremen"}
    body = {"customer": customer, "lines": lines, "delivery": "mail" if n % 4 else "pickup",
            "payment_reference": f"PSP-{n:08d}"}
    return json.dumps(body).encode()


def post_order(conn: http.client.HTTPConnection, token: str, key: str, body: bytes) -> tuple[int, bool, bytes]:
    conn.request("POST", "/api/v1/shop/orders", body=body,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                          "Idempotency-Key": key})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, resp.getheader("Idempotent-Replayed") == "true", data


def orders_rss(servers: Servers, data_dir: Path, points: Iterable[int],
               on_point: Callable[[int, float, Server], None] | None = None) -> OrdersRun:
    """Place max(points) shop orders through a `tessera hub serve` and read its RSS at each point.

    At each point the mail worker must first have delivered every mail (one per order), then the hub
    is left alone for SETTLE_S before its RSS is read, so each reading is of a hub at rest.
    *on_point(orders, rss_mb, hub)* is called after each reading."""
    result = OrdersRun()
    with MailSink() as sink:
        token, products = prepare_shop_hub(data_dir, sink.port)
        hub = servers.start(hub_command(data_dir), HUB_READY)
        meter = psutil.Process(hub.pid)
        conn = http.client.HTTPConnection(HOST, port_of(hub), timeout=ORDER_TIMEOUT_S)
        try:
            for target in sorted(set(points)):
                started = time.perf_counter()
                while result.orders < target:
                    place_one(conn, token, products, result, hub)
                result.order_s += time.perf_counter() - started
                wait_for_mail(sink, result.orders, hub)
                time.sleep(SETTLE_S)
                rss = rss_mb(meter)
                result.rss_mb[target] = rss
                if on_point is not None:
                    on_point(target, rss, hub)
        finally:
            conn.close()
        servers.stop(hub)
    result.db_mb = sum(p.stat().st_size for p in data_dir.glob("hub.sqlite*")) / MB
    return result


def place_one(conn: http.client.HTTPConnection, token: str, products: list[str], result: OrdersRun,
              hub: Server) -> None:
    n = result.orders
    key, body = f"bench-order-{n}", shop_order_body(n, products)
    try:
        status, replayed, answer = post_order(conn, token, key, body)
        if status != 201 or replayed:
            raise BenchError(f"shop order {n} answered {status} (replayed: {replayed}): {answer[:300]!r}")
        if n % REPLAY_EVERY == REPLAY_EVERY - 1:  # the shop lost the answer and retries
            again = post_order(conn, token, key, body)
            if again != (201, True, answer):
                raise BenchError(f"the retry of shop order {n} answered {again[0]} "
                                 f"(replayed: {again[1]}) instead of the first answer")
            result.replays += 1
    except (OSError, http.client.HTTPException) as exc:
        raise BenchError(f"shop order {n} failed: {exc!r}; hub: {hub.last_error()}") from None
    result.orders += 1


def wait_for_mail(sink: MailSink, expected: int, hub: Server) -> None:
    deadline = time.monotonic() + MAIL_WAIT_S
    while sink.received < expected:
        if time.monotonic() > deadline:
            raise BenchError(f"the hub's mail worker delivered {sink.received} of {expected} mails within "
                             f"{MAIL_WAIT_S:.0f} s; hub: {hub.last_error()}")
        time.sleep(0.05)


def rss_mb(process: psutil.Process) -> float:
    try:
        return process.memory_info().rss / MB
    except psutil.NoSuchProcess:
        raise BenchError("the hub exited while taking orders") from None


def report_rss_point(orders: int, rss: float, _hub: Server) -> None:
    """One figure per RSS point as soon as it is read (a long run shows progress); the last one counts."""
    final = orders == max(RSS_POINTS)
    figure(NAME, f"hub_rss_after_{orders}_orders", rss, "MB", ORDERS_RSS_BUDGET_MB if final else None, "cost")


def report_orders(result: OrdersRun) -> None:
    half = max(RSS_POINTS) // 2
    if half in result.rss_mb and max(RSS_POINTS) in result.rss_mb:
        growth = (result.rss_mb[max(RSS_POINTS)] - result.rss_mb[half]) / (max(RSS_POINTS) - half) * 1000
        # about 0 when memory has levelled off; above 0 it still climbs (read with the curve above)
        figure(NAME, "hub_rss_growth_second_half", growth, "MB per 1,000 orders")
    figure(NAME, "shop_orders_per_s", result.orders / result.order_s, "orders/s (one connection, with the mails)")
    figure(NAME, "hub_db_after_orders", result.db_mb, "MB (hub.sqlite with WAL)")
