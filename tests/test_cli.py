"""The `tessera` command as a user runs it: real subprocesses, real HTTP on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from hub import sample
from hub.client import ApiFailure, HttpClient

pytestmark = pytest.mark.slow  # every test runs real tessera subprocesses

TESSERA = [sys.executable, "-m", "cli.main"]
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*TESSERA, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


class Server:
    """`tessera hub serve` (or `demo`) in the background; stopped with SIGTERM."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([*TESSERA, *args, "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.lines: list[str] = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"server exited: {self.proc.stderr.read()}")
            self.lines.append(line)
            match = re.search(r"(http://127\.0\.0\.1:\d+)/api/v1", line)
            if match:
                self.url = match.group(1)
                break

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def scan(gate_url: str, code: str) -> dict:
    """A simulated scan at the demo gate."""
    req = urllib.request.Request(gate_url + "/api/scan", data=json.dumps({"code": code}).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def get(url: str, token: str | None = None) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("args", [[], ["hub"], ["hub", "init"], ["hub", "serve"], ["hub", "sample"],
                                  ["hub", "token"], ["demo"], ["gate"], ["gate", "init"], ["gate", "run"],
                                  ["gate", "refresh"], ["card"], ["card", "verify"], ["card", "issue"]])
def test_every_command_has_help(args):
    out = run(*args, "--help").stdout
    assert out.startswith("usage: tessera") and "--help" in out


@pytest.mark.parametrize("args", [[], ["hub"], ["hub", "serve"], ["demo"]])
def test_help_does_not_load_the_hub_or_aiohttp(args):
    """`tessera --help` and `tessera hub --help` build the parser only: the hub's web app, aiohttp,
    the demo's edges and the PDF layouts load inside the commands that use them (~1.5 s of imports)."""
    probe = ("import sys; from cli.main import build_parser; build_parser(sys.argv[1:]); "
             "print(' '.join(sorted(m for m in sys.modules if m in ('hub.app', 'aiohttp', 'reportlab', 'jinja2', "
             "'edge.desk.server', 'edge.gate.loop', 'hub.services.staff', 'core.subscriptions.rollover_run'))))")
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=ROOT,
                         timeout=60, check=True).stdout
    assert out.strip() == ""


def test_the_parsers_constants_are_the_services_ones():
    """The hub's parser names these without importing their (heavy) modules."""
    from cli import hub_commands, hub_rollover
    from core.subscriptions import rollover_run
    from hub.services import staff

    assert hub_commands.STAFF_ROLES == staff.ROLES
    assert hub_rollover.CHUNK == rollover_run.CHUNK


def test_init_prints_an_admin_token_once_and_refuses_a_second_init(tmp_path):
    first = run("hub", "init", "--data", str(tmp_path / "hub"))
    assert re.search(r"admin token .*: tsr_\S+", first.stdout)
    again = run("hub", "init", "--data", str(tmp_path / "hub"), check=False)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and again.stderr.startswith("tessera: error: ")
    assert "already holds a hub" in again.stderr


@pytest.mark.parametrize("args,code,message", [
    (["hub", "serve", "--data", "/nonexistent/x"], 1, "holds no hub"),
    (["hub", "frobnicate"], 2, "invalid choice"),
    (["hub", "sample", "--data", "x", "--scale", "0"], 2, "must be at least 1"),
    (["hub", "serve"], 2, "required: --data"),
])
def test_errors_are_one_line_and_exit_non_zero(args, code, message):
    proc = run(*args, check=False)
    assert proc.returncode == code
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_answers_on_loopback_and_stops_cleanly(tmp_path):
    token = run("hub", "init", "--data", str(tmp_path / "hub")).stdout.split()[-1]
    server = Server("hub", "serve", "--data", str(tmp_path / "hub"))
    try:
        assert get(server.url + "/api/v1/health")["status"] == "ok"
        assert get(server.url + "/api/v1/organizers", token)["total"] == 0
    finally:
        assert server.stop() == 0


def test_a_busy_port_is_a_clear_error(tmp_path):
    run("hub", "init", "--data", str(tmp_path / "hub"))
    server = Server("hub", "serve", "--data", str(tmp_path / "hub"))
    try:
        port = server.url.rsplit(":", 1)[1]
        proc = subprocess.run([*TESSERA, "hub", "serve", "--data", str(tmp_path / "hub"), "--port", port],
                              capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert proc.returncode == 1 and "cannot listen" in proc.stderr
    finally:
        server.stop()


def test_a_busy_port_is_the_first_and_only_message_even_with_mail_waiting(tmp_path):
    """The port is taken before the hub's workers start: no mail warning ahead of the error."""
    from core.base.clock import utcnow
    from hub.app import open_hub
    from hub.services import mail

    run("hub", "init", "--data", str(tmp_path / "hub"))
    db = open_hub(tmp_path / "hub")
    mail.enqueue(db, to="eva@example.org", subject="Ihre Jahreskarte", text="Hallo", now=utcnow())
    db.close()
    server = Server("hub", "serve", "--data", str(tmp_path / "hub"), "--no-advertise")
    try:
        port = server.url.rsplit(":", 1)[1]
        proc = subprocess.run([*TESSERA, "hub", "serve", "--data", str(tmp_path / "hub"), "--port", port,
                               "--no-advertise"], capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert proc.returncode == 1
        assert proc.stderr.startswith("tessera: error: cannot listen on") and proc.stderr.count("\n") == 1, \
            proc.stderr
    finally:
        server.stop()


def test_the_full_sample_catalog_is_set_up_over_http(tmp_path):
    """What the issue promises: the API alone can set up the whole sample catalog."""
    token = run("hub", "init", "--data", str(tmp_path / "hub")).stdout.split()[-1]
    server = Server("hub", "serve", "--data", str(tmp_path / "hub"))
    try:
        client = HttpClient(server.url, token)
        ids = sample.build(client)
        assert len(ids["performances"]) == 32 and len(ids["subscriptions"]) == 6 and ids["customers"] == 250
        products = client.call("GET", "/subscription-products?limit=100")["items"]
        assert sorted(p["kind"] for p in products) == ["choice", "combi", "ring", "ring", "ring", "voucher"]
        rings = [p for p in products if p["kind"] == "ring"]
        assert all(len(p["performance_ids"]) == 8 for p in rings)
        choice = next(p for p in products if p["kind"] == "choice")
        assert (choice["pick_count"], len(choice["performance_ids"])) == (5, 8)
        plans = client.call("GET", "/seating-plans")["items"]
        counts = {p["name"]: sorted(v["seat_count"] for v in p["variants"]) for p in plans}
        assert counts == {"Großes Haus": [760, 800, 832], "Studio": [199]}
        with pytest.raises(ApiFailure) as failure:
            client.call("POST", "/seasons", {"organizer_id": ids["theatre_organizer"], "name": "2026/27",
                                             "starts_on": "2026-09-01", "ends_on": "2027-07-15"})
        assert failure.value.status == 409
    finally:
        server.stop()


def test_sample_scale_makes_larger_data_sets(tmp_path):
    run("hub", "init", "--data", str(tmp_path / "hub"))
    out = run("hub", "sample", "--data", str(tmp_path / "hub"), "--scale", "2", "--performances", "34").stdout
    assert "34 performances" in out and "500 customers" in out
    again = run("hub", "sample", "--data", str(tmp_path / "hub"), check=False)
    assert again.returncode == 1 and "already holds a catalog" in again.stderr


def test_demo_starts_a_hub_and_a_gate_with_sample_data_and_prints_how_to_use_them(tmp_path):
    server = Server("demo", "--data", str(tmp_path / "demo"))
    try:
        while not any("Stop with Ctrl-C" in line for line in server.lines):
            server.lines.append(server.proc.stdout.readline())
        text = "".join(server.lines)
        token = re.search(r"admin token\s+(tsr_\S+)", text).group(1)
        products = get(server.url + "/api/v1/subscription-products", token)
        assert products["total"] == 6
        gate_url = re.search(r"gate\s+(http://\S+)", text).group(1)
        code = re.search(r"A card to scan .*\n\s+([0-9A-X]{160})\n", text).group(1)
        assert scan(gate_url, code)["reason"] == "ADMITTED"
        assert scan(gate_url, code)["reason"] == "PASSBACK"
        assert scan(gate_url, code[:-1] + "Y")["reason"] == "MALFORMED"
        sale = sell_at_demo_desk(text)
        receipts = list((tmp_path / "demo" / "desk" / "var" / "printer-out").glob("*"))
        assert sale["receipt"]["state"] == "printed" and receipts
        assert sale["order"]["number"].encode() in receipts[0].read_bytes()
        counter_url = re.search(r"counter\s+(http://\S+)/counter", text).group(1)
        with urllib.request.urlopen(counter_url + "/api/status", timeout=10) as resp:
            assert json.loads(resp.read())["role"] == "counter"
    finally:
        assert server.stop() == 0
    # a second start reuses the data and prints a fresh token
    server = Server("demo", "--data", str(tmp_path / "demo"))
    server.stop()


def sell_at_demo_desk(text: str) -> dict:
    """Log in as the demo cashier with the printed PIN and sell an annual ticket."""
    desk_url = re.search(r"cash desk\s+(http://\S+)", text).group(1)
    name, pin = re.search(r"log in as (.+), PIN (\d+)", text).groups()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())

    def call(path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(desk_url + path, data=data, headers={"Content-Type": "application/json"})
        with opener.open(req, timeout=20) as resp:
            return json.loads(resp.read())

    operator = next(o for o in call("/api/operators") if o["name"] == name)
    call("/api/login", {"operator_id": operator["id"], "pin": pin})
    product = call("/api/products")[0]
    return call("/api/orders", {"lines": [{"product_id": product["id"], "holders": [{"name": "Demo Gast"}]}],
                                "payment_method": "cash", "given_cents": 100_00})


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "tessera"
    assert script.exists(), "pip install -e . should install the tessera command"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60,
                         env={**os.environ}).stdout
    assert "demo" in out and "hub" in out
