"""Never twice on the LAN (issue 15): how soon a second desk refuses a voucher the first one took.

Set-up, all real: a hub with the sample catalog, two cash desks enrolled over HTTP and served by
`tessera edge serve` in their own processes, announced on loopback in one peer group; they find
each other with zeroconf (the desk status lists its peer desks). Then the hub is stopped.

Per round, one annual-ticket voucher is sold at desk 1 and exchanged there (`POST
/api/vouchers/redeem`); as soon as desk 1 answers, the same voucher is exchanged at desk 2,
which must refuse it (409) naming desk 1. Measured from desk 1's answer to desk 2's refusal:

- `second_desk_refusal_ms_p50/p99`: budget p99 <= 1,000 ms ("the second desk refuses within a
  second"). The claim travels during desk 1's request, so desk 2 usually refuses from its own
  table; the figure includes desk 2's own checks.
- `second_desk_choice_refusal_ms_p50/p99`: the same for a choice voucher redeemed for a seat
  (`POST /api/voucher-redemptions`), set up by bench/claims_choice.py; same budget.
"""

from __future__ import annotations

import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench import claims_choice
from bench.cashdesk import PIN, DeskClient, _cli, _setup_hub, say
from bench.procs import BenchError, Server, venv_command
from bench.report import figure

NAME = "claims"
ROUNDS = 100
BUDGET_MS = 1000.0
FIND_TIMEOUT_S = 60.0
HOLDER = {"name": "Erika Mustermann"}


def run() -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-claims-"))
    try:
        return _run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path) -> list[dict]:
    tessera = str(venv_command("tessera"))
    hub_dir = work / "hub"
    _setup_hub(tessera, hub_dir)
    hub = Server([tessera, "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise"],
                 re.compile(r"(http://127\.0\.0\.1:\d+)/api/v1"))
    desks: list[Server] = []
    try:
        hub_url = hub.match.group(1)
        clients = []
        for n in (1, 2):
            folder = work / f"desk-{n}"
            code = _cli(tessera, "hub", "enroll", "--data", str(hub_dir), "--node", f"Kasse {n}", "--role", "cashdesk")
            _cli(tessera, "edge", "enroll", "--data", str(folder), "--code", code, "--hub", hub_url)
            desks.append(Server([tessera, "edge", "serve", "--data", str(folder), "--port", "0",
                                 "--peer-group", str(work)], re.compile(r"(http://127\.0\.0\.1:\d+)/api/status")))
            client = DeskClient(desks[-1].match.group(1))
            client.wait_for_catalog()
            client.login("Bench Kasse", PIN)
            clients.append(client)
        _wait_for_peers(clients)
        say(f"{ROUNDS} choice vouchers sold at the hub, seats into both desks' pools")
        choice = claims_choice.prepare(hub_dir, [work / "desk-1", work / "desk-2"], ROUNDS)
        for client, seats in zip(clients, choice["seats"], strict=True):
            claims_choice.wait_for_pull(client, choice, seats)
        hub.stop()
        say(f"hub stopped; {ROUNDS} vouchers exchanged at Kasse 1, then shown at Kasse 2")
        times = [_round(*clients) for _ in range(ROUNDS)]
        say(f"{ROUNDS} choice vouchers redeemed at Kasse 1, then shown at Kasse 2")
        choice_times = [claims_choice.round_(*clients, choice, k) for k in range(ROUNDS)]
    finally:
        for desk in desks:
            desk.stop()
        hub.stop()
    return [*_figures("second_desk_refusal_ms", times), *_figures("second_desk_choice_refusal_ms", choice_times)]


def _figures(name: str, times: list[float]) -> list[dict]:
    p99 = statistics.quantiles(times, n=100)[98]
    return [figure(NAME, f"{name}_p50", statistics.median(times), "ms"),
            figure(NAME, f"{name}_p99", p99, "ms", BUDGET_MS)]


def _wait_for_peers(clients: list[DeskClient]) -> None:
    deadline = time.monotonic() + FIND_TIMEOUT_S
    while time.monotonic() < deadline:
        if all(c.call("GET", "/api/status").get("peer_desks") for c in clients):
            return
        time.sleep(0.1)
    raise BenchError("the two desks did not find each other with zeroconf on loopback")


def _round(desk1: DeskClient, desk2: DeskClient) -> float:
    product = desk1.call("GET", "/api/products")[0]["id"]
    sold = desk1.call("POST", "/api/orders", {"lines": [{"product_id": product, "kind": "voucher"}],
                                              "payment_method": "cash", "given_cents": 100_00})
    body = {"code": sold["order"]["items"][0]["card"]["code"], "holder": HOLDER}
    desk1.call("POST", "/api/vouchers/redeem", body)
    answered = time.perf_counter()
    try:
        desk2.call("POST", "/api/vouchers/redeem", body)
    except BenchError as exc:
        if ": 409 " not in str(exc) or "Kasse 1" not in str(exc):
            raise
        return (time.perf_counter() - answered) * 1000
    raise BenchError("Kasse 2 exchanged a voucher Kasse 1 had exchanged already")

