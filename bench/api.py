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
  every request; see hub/cache.py);
- `page_uncached`: the same page rendered from SQLite on every request (`--no-read-cache`);
- `record_uncached`: one performance by id, rendered from SQLite on every request.

When other processes compete for the two cores the rate ratio drifts (it flatters us: the
fast baseline loses more to contention), so the servers' own CPU time per request is
metered too; its ratio is the steadier cross-check, reported as context without a budget.
The idle RSS figure is the hub process after a few reads and a quiet pause.
"""

from __future__ import annotations

import http.client
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.procs import ROOT, BenchError, Server, Servers, venv_command
from bench.report import figure
from hub import sample
from hub.app import init_hub, make_app
from hub.client import LocalClient

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


def prepare_hub(data_dir: Path) -> tuple[str, str]:
    """A fresh hub with the sample catalog (loaded in-process, the fast way); returns the admin
    token and the id of the first performance."""
    db, token = init_hub(data_dir)
    try:
        ids = sample.build(LocalClient(make_app(db)))
    finally:
        db.close()
    return token, ids["performances"][0]


def hub_command(data_dir: Path, cached: bool = True) -> list[str]:
    command = [str(venv_command("tessera")), "hub", "serve", "--data", str(data_dir), "--host", HOST, "--port", "0"]
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
