"""Cash-desk benchmark (issue 5): a sale from HTTP request to committed sale + receipt bytes.

Set-up, all real: a hub with the sample catalog (`tessera hub serve`), a cash desk enrolled
over HTTP with a one-time code and served by `tessera edge serve` in its own process (its
sync loop running), simulated printers (receipt ESC/POS bytes and card PDFs written to
files in the desk's folder). One operator logs in with a PIN, as a cashier does.

A sale is `POST /api/orders` on the desk: the order, its signed card and the receipt job
commit in one transaction; the desk then renders the ESC/POS receipt (and the card's PDF)
and writes them to the printers before it answers, so the answer's arrival is "committed
sale + receipt bytes". Measured from the client's side, one sale at a time (a cashier
does not sell in parallel):

- `sale_annual_ms_p50/p99`: one personalized annual ticket, cash; budget p99 <= 50 ms.
- `sale_voucher_ms_p50/p99`: one voucher (receipt with its QR slip), cash; same budget.
- `sale_annual_offline_ms_p99`: the same with the hub stopped (the desk works offline).
- `sale_annual_offline_backlog_ms_p50/p99` (issue 12): still offline, after enough further
  sales (real ones, through the same API) that `BACKLOG_OPS` ops wait in the outbox, as after
  weeks cut off; same budget. The sync loop must not read, encode and seal that backlog at
  every sale while the hub is unreachable.
- `sale_ring_pass_ms_p50/p99`, `sale_ring_tickets_ms_p50/p99` (issue 14): a subscription ring of
  eight dates sold from the desk's pool, as a pass or with eight ticket slips on the receipt
  printer (bench/cashdesk_ring.py); same budget.
- `card_pdf_per_card_ms`: 1,000 card PDFs in one batch (see bench/cardpdf.py); budget <= 20 ms.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from bench import cardpdf, cashdesk_ring
from bench.procs import BenchError, Server, venv_command
from bench.report import figure

NAME = "cashdesk"
SALES = 300
WARMUP = 20
BUDGET_P99_MS = 50.0
BACKLOG_OPS = 5000
PIN = "2468"


def say(message: str) -> None:
    print(f"# {message}", flush=True)


def run() -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-cashdesk-"))
    try:
        return _run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work: Path) -> list[dict]:
    tessera = str(venv_command("tessera"))
    hub_dir, desk_dir = work / "hub", work / "desk"
    _setup_hub(tessera, hub_dir)
    hub = Server([tessera, "hub", "serve", "--data", str(hub_dir), "--port", "0", "--no-advertise"],
                 re.compile(r"(http://127\.0\.0\.1:\d+)/api/v1"))
    desk = None
    try:
        hub_url = hub.match.group(1)
        code = _cli(tessera, "hub", "enroll", "--data", str(hub_dir), "--node", "Kasse Bench", "--role", "cashdesk")
        _cli(tessera, "edge", "enroll", "--data", str(desk_dir), "--code", code, "--hub", hub_url)
        desk = Server([tessera, "edge", "serve", "--data", str(desk_dir), "--port", "0"],
                      re.compile(r"(http://127\.0\.0\.1:\d+)/api/status"))
        client = DeskClient(desk.match.group(1))
        client.wait_for_catalog()
        client.login("Bench Kasse", PIN)
        cashdesk_ring.move_ring_seats(hub_dir, desk_dir, cashdesk_ring.seats_needed())  # pulled while selling
        product = client.call("GET", "/api/products")[0]["id"]
        annual = {"lines": [{"product_id": product, "holders": [{"name": "Erika Mustermann"}]}],
                  "payment_method": "cash", "given_cents": 100_00}
        voucher = {"lines": [{"product_id": product, "kind": "voucher"}], "payment_method": "cash",
                   "given_cents": 100_00}
        say(f"{SALES} annual-ticket sales, then {SALES} voucher sales, one at a time, hub online")
        results = [*_report("sale_annual_ms", client.time_sales(annual)),
                   *_report("sale_voucher_ms", client.time_sales(voucher))]
        ring = cashdesk_ring.wait_for_seats(client, cashdesk_ring.seats_needed())
        customer = cashdesk_ring.first_customer(hub_dir)
        for form, name in (("pass", "sale_ring_pass_ms"), ("single_tickets", "sale_ring_tickets_ms")):
            say(f"{cashdesk_ring.RING_SALES} ring sales ({cashdesk_ring.RING}, 8 dates, form {form}) from the "
                "desk's pool")
            results.extend(_report(name, cashdesk_ring.time_ring_sales(client, ring, customer, form)))
        hub.stop()
        say("hub stopped: the same sales offline")
        offline = client.time_sales(annual, count=SALES // 2)
        results.append(figure(NAME, "sale_annual_offline_ms_p99", _p99(offline), "ms", BUDGET_P99_MS))
        filled = client.fill_backlog(annual, BACKLOG_OPS)
        say(f"{filled} more sales offline: {client.call('GET', '/api/status')['ops_waiting']} ops waiting; "
            f"the same sales again")
        backlog = client.time_sales(annual, count=SALES // 2)
        results.extend(_report("sale_annual_offline_backlog_ms", backlog))
        _check_receipts(desk_dir, len(offline) + len(backlog) + filled + 2 * SALES + 4 * WARMUP)
    finally:
        if desk:
            desk.stop()
        hub.stop()
    say("1,000 card PDFs in one batch (museum-standard layout)")
    seconds, _ = cardpdf._batch("museum-standard", None)
    results.append(figure(NAME, "card_pdf_per_card_ms", seconds * 1000 / cardpdf.CARDS, "ms", cardpdf.BUDGET_MS))
    return results


def _setup_hub(tessera: str, hub_dir: Path) -> None:
    say("hub with the sample catalog and one operator")
    _cli(tessera, "hub", "init", "--data", str(hub_dir))
    _cli(tessera, "hub", "sample", "--data", str(hub_dir))
    _cli(tessera, "hub", "operator", "add", "--data", str(hub_dir), "--name", "Bench Kasse", "--pin", PIN)


def _cli(tessera: str, *args: str) -> str:
    proc = subprocess.run([tessera, *args], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise BenchError(f"tessera {' '.join(args[:2])} failed: {proc.stderr.strip()[-300:]}")
    if args[:2] == ("hub", "enroll"):
        match = re.search(r"\b[0-9A-Z]{4}(?:-[0-9A-Z]{1,4}){4,}\b", proc.stdout)  # the code's line
        if not match:
            raise BenchError(f"no enrollment code in: {proc.stdout.strip()[:200]}")
        return match.group(0)
    return proc.stdout


class DeskClient:
    """A cashier's browser, reduced to HTTP: a cookie session and JSON calls."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def call(self, method: str, path: str, body: dict | None = None) -> dict | list:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with self.opener.open(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise BenchError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None

    def wait_for_catalog(self, timeout_s: float = 60.0) -> None:
        """The desk's first sync brings the operators and products."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.call("GET", "/api/operators"):
                return
            time.sleep(0.2)
        raise BenchError("the desk did not receive its operators from the hub")

    def login(self, name: str, pin: str) -> None:
        operator = next(o for o in self.call("GET", "/api/operators") if o["name"] == name)
        self.call("POST", "/api/login", {"operator_id": operator["id"], "pin": pin})

    def fill_backlog(self, body: dict, ops: int) -> int:
        """Sell until at least *ops* ops wait in the outbox; the number of sales."""
        sales = 0
        while self.call("GET", "/api/status")["ops_waiting"] < ops:
            for _ in range(50):
                self.call("POST", "/api/orders", body)
            sales += 50
        return sales

    def time_sales(self, body: dict, count: int = SALES) -> list[float]:
        for _ in range(WARMUP):
            self.call("POST", "/api/orders", body)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            answer = self.call("POST", "/api/orders", body)
            times.append((time.perf_counter() - started) * 1000)
            if answer["receipt"]["state"] != "printed":
                raise BenchError(f"receipt not printed: {answer['receipt']}")
        return times


def _p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100)[98]


def _report(name: str, times: list[float]) -> list[dict]:
    return [figure(NAME, f"{name}_p50", statistics.median(times), "ms"),
            figure(NAME, f"{name}_p99", _p99(times), "ms", BUDGET_P99_MS)]


def _check_receipts(desk_dir: Path, expected: int) -> None:
    """Every sale's receipt bytes are on the (simulated) printer."""
    found = len(list((desk_dir / "var" / "printer-out").glob("*")))
    if found < expected:
        raise BenchError(f"{found} receipt files for {expected} sales")
