"""What `tessera demo` runs (cli/demo.py has its command line): a hub with the sample catalog,
a cash desk, a personalization counter and a gate, a mail sink and its inbox page."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import signal
import sys
from pathlib import Path

from aiohttp import web

from cli import demo_inbox
from cli.demo_mail import MailSink
from cli.listening import bind
from core.base.clock import utcnow
from core.base.errors import Conflict
from core.base.node import NODE_DB
from core.base.storage import connect
from core.cards import cards
from core.cards.access import GateRules
from core.catalog import operators
from edge.desk.server import Edge
from edge.gate.loop import Gate, GateOptions
from edge.node_data import write_gate_rules
from edge.sync import enroll as enrolling
from hub import sample
from hub.app import db_path, init_hub, make_app, open_hub
from hub.client import LocalClient
from hub.services import staff, tokens
from hub.settings import SETTINGS_FILE
from hub.sync import enrollment

GATE_VENUE = "Stadtmuseum"
ORGANIZER = "Museumsverbund Nordstadt e.V."
OPERATOR, PIN = "Anna Kasse", "1234"
SYNC_S = 2.0  # the demo's edges sync this often (and at once after a local change)
# The three edges: folder name, node name, role, port offset from the hub's port (0: the gate
# enrolls here, its status page is on port+10 and is started by the gate itself).
EDGES = (("desk", "Kasse 1", "cashdesk", 1), ("counter", "Personalisierung", "counter", 2))
GATE = ("gate", f"{GATE_VENUE} Eingang", "gate")
MAIL_OFFSET = 3
INBOX_OFFSET = 4  # the inbox page over the sink's mails (cli/demo_inbox.py)


def run_demo(args: argparse.Namespace) -> int:
    hub_dir = args.data / "hub"
    if db_path(hub_dir).exists():
        db = open_hub(hub_dir)
    else:
        db, _ = init_hub(hub_dir, "demo-hub")
        print("loading the sample catalog ...", file=sys.stderr, flush=True)
        sample.build(LocalClient(make_app(db)), progress=lambda line: print("  " + line, file=sys.stderr))
    token, _ = tokens.create_token(db, "demo session", "admin")
    shop_token, _ = tokens.create_token(db, "demo shop", "shop")
    office = _office_link(db)
    _ensure_operator(db)
    for row in db.execute("SELECT id FROM annual_products").fetchall():
        cards.product_code(db, row["id"], "annual")  # the gate's catalog knows every product's card code
    card = _demo_card(db, hub_dir)
    _retire_local_gate(args.data / GATE[0])
    return asyncio.run(_run(args, db, {"admin": token, "shop": shop_token, "office": office}, card))


def _demo_card(db, hub_dir: Path) -> dict:
    """A fresh annual ticket for the museum association, signed by the hub."""
    product = db.execute("SELECT id FROM annual_products WHERE name = 'Jahreskarte Verbund'").fetchone()
    return cards.issue_card(db, cards.load_signer(db, hub_dir), product_id=product["id"], kind="annual",
                            now=utcnow(), holder_name="Erika Mustermann")


def _ensure_operator(db) -> None:
    if not db.execute("SELECT 1 FROM operators WHERE name = ?", (OPERATOR,)).fetchone():
        operators.create(db, operators.OperatorIn(name=OPERATOR, pin=PIN), utcnow())


def _retire_local_gate(gate_dir: Path) -> None:
    """Demo folders from before the gate was enrolled hold a gate set up from the hub's folder,
    which never syncs (cards sold at the desk were refused as UNKNOWN_SIGNER): move it aside,
    so this run enrolls a gate that syncs."""
    if not (gate_dir / NODE_DB).exists():
        return
    db = connect(gate_dir / NODE_DB, edge=True)
    try:
        state = db.execute("SELECT hub_url FROM sync_state").fetchone()
    finally:
        db.close()
    if not (state and state["hub_url"]):
        aside = gate_dir.with_name(f"gate-unsynced-{dt.datetime.now():%Y%m%d-%H%M%S}")
        gate_dir.rename(aside)
        print(f"the demo gate in {gate_dir} did not sync; moved to {aside}, enrolling a new one", file=sys.stderr)


def _write_settings(hub_dir: Path, url: str, sink: MailSink, inbox_url: str) -> None:
    """hub.toml for this run: mail to the demo's sink (readable at *inbox_url*), personalization
    links to this hub. Rewritten at every start (the ports may change); it shows how a real hub
    is set up."""
    (hub_dir / SETTINGS_FILE).write_text(
        "# Written by `tessera demo` at every start; a real hub's settings are described in README.md.\n"
        f'[mail]\nhost = "{sink.host}"\nport = {sink.port}\nfrom = "{ORGANIZER} <tickets@museum.example>"\n'
        f'inbox_url = "{inbox_url}"\n\n'
        f'[shop]\npublic_url = "{url}"\n', encoding="utf-8")


async def _enroll(db, edge_dir: Path, url: str, name: str, role: str, venue_ids: list[str]) -> None:
    """A one-time code and the real handshake over HTTP, as `tessera hub enroll` and
    `tessera edge enroll` do it (first run only)."""
    if not (edge_dir / NODE_DB).exists():
        code = enrollment.create_code(db, name=name, role=role, venue_ids=venue_ids, now=utcnow())
        await enrolling.enroll(edge_dir, code, [url])


async def _start_edges(args: argparse.Namespace, db, url: str) -> list[tuple[Edge, web.AppRunner, str]]:
    """Enroll the desk and the counter, then serve each one's web app with its sync loop, as
    `tessera edge serve` does."""
    started = []
    for folder, name, role, offset in EDGES:
        edge_dir = args.data / folder
        await _enroll(db, edge_dir, url, name, role, [])
        sock = bind(args.host, args.port + offset if args.port else 0)
        edge = Edge(edge_dir, hub_url=url, sync_period_s=SYNC_S)
        runner = web.AppRunner(edge.app(), access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        edge.start_background()
        started.append((edge, runner, f"http://{args.host}:{runner.addresses[0][1]}"))
    return started


async def _start_gate(args: argparse.Namespace, db, url: str) -> Gate:
    """Enroll the gate for the Stadtmuseum (2 minutes' lockout, so the demo's second scan shows
    PASSBACK) and run it with its sync loop."""
    gate_dir = args.data / GATE[0]
    if not (gate_dir / NODE_DB).exists():
        venue = db.execute("SELECT id FROM venues WHERE name = ?", (GATE_VENUE,)).fetchone()
        await _enroll(db, gate_dir, url, GATE[1], GATE[2], [venue["id"]])
        write_gate_rules(gate_dir, GateRules(venue_id=venue["id"], lockout_minutes=2))
    gate = Gate(GateOptions(gate_dir, scanner="sim-stdin", relay="sim-log", http_host=args.host,
                            http_port=args.port + 10 if args.port else 0, peer_interfaces=(args.host,),
                            hub_url=url, sync_period_s=SYNC_S))
    await gate.start()
    return gate


async def _run(args: argparse.Namespace, db, token: dict[str, str], card: dict) -> int:
    stop = asyncio.Event()  # set by SIGTERM/SIGINT from now on: a stop during startup ends cleanly after it
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    hub_sock = bind(args.host, args.port)  # before anything starts: a busy port is the only message
    url = f"http://{args.host}:{hub_sock.getsockname()[1]}"
    sink = MailSink(args.data / "mail")
    await sink.start(args.host, args.port + MAIL_OFFSET if args.port else 0)
    inbox = web.AppRunner(demo_inbox.app(sink.folder), access_log=None)
    await inbox.setup()
    inbox_sock = bind(args.host, args.port + INBOX_OFFSET if args.port else 0)
    await web.SockSite(inbox, inbox_sock).start()
    inbox_url = f"http://{args.host}:{inbox_sock.getsockname()[1]}/"
    _write_settings(args.data / "hub", url, sink, inbox_url)
    runner = web.AppRunner(make_app(db), access_log=None)
    edges: list[tuple[Edge, web.AppRunner, str]] = []
    gate = None
    try:
        await runner.setup()
        await web.SockSite(runner, hub_sock).start()
        edges = await _start_edges(args, db, url)
        gate = await _start_gate(args, db, url)
        _print_welcome(args, url, token, card, edges, gate, sink, inbox_url)
        await _serve_until_stopped(gate, stop)
    finally:
        if gate is not None:
            with contextlib.suppress(Exception):
                await gate.close()
        for edge, edge_runner, _ in edges:
            await edge_runner.cleanup()
            await edge.close()
        await runner.cleanup()
        await inbox.cleanup()
        await sink.close()
    return 0


def _office_link(db) -> str:
    """A setup link for the office login 'admin': made with the account on the first run, a
    fresh one on every later run (the demo's user may have forgotten the password)."""
    try:
        _, link = staff.add(db, "admin", "admin", utcnow())
    except Conflict:
        link = staff.setup_link(db, "admin", utcnow())
    return link


def _print_welcome(args: argparse.Namespace, url: str, token: dict[str, str], card: dict, edges: list, gate: Gate,
                   sink: MailSink, inbox_url: str) -> None:
    (desk, _, desk_url), (counter, _, counter_url) = edges
    short = card["code"][:12]
    print(f"""
Tessera demo is running.
  hub API        {url}/api/v1   (document: {url}/api/v1/openapi.json)
  admin token    {token['admin']}
  shop token     {token['shop']}
  office app     {url}/office/   (log in as admin; set its password first at {url}{staff.SETUP_PATH}{token['office']})
  cash desk      {desk_url}   (log in as {OPERATOR}, PIN {PIN}; receipts: {desk.data_dir}/var/printer-out)
  counter        {counter_url}/counter   (exchange vouchers; cards: {counter.data_dir}/var/card-out)
  gate           {gate.url}   (Stadtmuseum, simulated scanner and relay; syncs with the hub every {SYNC_S:g} s)
  mail inbox     {inbox_url}   (the shop's mails with their links; files: {sink.folder}/*.eml)

A card to scan (Jahreskarte Verbund, Erika Mustermann, {card['number']}):
  {card['code']}
Paste it here and press Enter (the simulated scanner reads this terminal), or:
  curl -s -X POST {gate.url}/api/scan -H 'Content-Type: application/json' -d '{{"code": "{short}..."}}'
A second scan within 2 minutes is refused (PASSBACK). Check any code offline with:
  tessera card verify CODE --data {gate.data_dir}

A card sold at the cash desk reaches the gate within seconds. Its code is in the PDF the desk's
card printer writes ({desk.data_dir}/var/card-out) and in the desk's card lookup (Karten);
paste it here or POST it to {gate.url}/api/scan as above.

A shop order mails a personalization link; open it in the mail inbox ({inbox_url}):
  curl -s -X POST {url}/api/v1/shop/orders -H 'Authorization: Bearer {token['shop']}' \\
    -H "Idempotency-Key: demo-$(date +%s)" -H 'Content-Type: application/json' \\
    -d '{{"lines": [{{"product_id": "{card['product_id']}"}}], "delivery": "mail", "payment_reference": "demo", \\
         "customer": {{"first_name": "Eva", "last_name": "Beispiel", "email": "eva@example.org", \\
                      "street": "Am Markt 1", "postcode": "28195", "town": "Bremen"}}}}'

Try the office API:
  curl -s -H 'Authorization: Bearer {token['admin']}' '{url}/api/v1/subscription-products?limit=10'
  curl -s -H 'Authorization: Bearer {token['admin']}' '{url}/api/v1/customers?q=Müller&limit=3'
Stop with Ctrl-C. Data is kept in {args.data}.""", flush=True)


async def _serve_until_stopped(gate: Gate, stop: asyncio.Event) -> None:
    gate_task = asyncio.create_task(gate.run())
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({gate_task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if gate_task.done() and not stop.is_set():
        await stop.wait()  # stdin closed (e.g. started from a script): keep serving until stopped
    gate_task.cancel()
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await gate_task
