"""`tessera demo`: a hub with the sample catalog, a cash desk, a personalization counter
and a gate, all with simulated devices (printers write files, the scanner reads stdin).

The desk and the counter are enrolled over the network with one-time codes, exactly as
real ones are, and sync with the hub in the background: stop the demo hub's port with a
firewall, or just watch the status bar, to see them work offline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from aiohttp import web

from core.base.clock import utcnow
from core.base.node import NODE_DB
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
from hub.services import provisioning, tokens
from hub.sync import enrollment

GATE_VENUE = "Stadtmuseum"
OPERATOR, PIN = "Anna Kasse", "1234"
# The two edges: folder name, node name, role, port offset from the hub's port.
EDGES = (("desk", "Kasse 1", "cashdesk", 1), ("counter", "Personalisierung", "counter", 2))


def register(areas: argparse._SubParsersAction) -> None:
    demo = areas.add_parser("demo", help="run a hub, cash desk, counter and gate with sample data",
                            description="Start a hub with the sample museum and theatre catalog, a cash desk "
                                        "and a personalization counter (web apps with simulated receipt and "
                                        "card printers: files in their data folders), and a gate at the "
                                        "Stadtmuseum with a simulated scanner (stdin or its status page) and "
                                        "relay. The first run creates DIR and loads the data; later runs "
                                        "reuse it. Prints the URLs, the cashier's PIN, a fresh admin token "
                                        "and a card to scan.")
    demo.add_argument("--data", type=Path, default=Path("demo-data"), metavar="DIR",
                      help="data folder (default: ./demo-data)")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8080,
                      help="hub port (default 8080; desk port+1, counter port+2, gate status page port+10; "
                           "0 picks free ones)")
    demo.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    hub_dir, gate_dir = args.data / "hub", args.data / "gate"
    if db_path(hub_dir).exists():
        db = open_hub(hub_dir)
    else:
        db, _ = init_hub(hub_dir, "demo-hub")
        print("loading the sample catalog ...", file=sys.stderr, flush=True)
        sample.build(LocalClient(make_app(db)), progress=lambda line: print("  " + line, file=sys.stderr))
    token, _ = tokens.create_token(db, "demo session", "admin")
    _ensure_operator(db)
    card = _demo_card(db, hub_dir)
    _ensure_gate(db, hub_dir, gate_dir)
    return asyncio.run(_run(args, db, gate_dir, token, card))


def _demo_card(db, hub_dir: Path) -> dict:
    """A fresh annual ticket for the museum association, signed by the hub."""
    product = db.execute("SELECT id FROM annual_products WHERE name = 'Jahreskarte Verbund'").fetchone()
    return cards.issue_card(db, cards.load_signer(db, hub_dir), product_id=product["id"], kind="annual",
                            now=utcnow(), holder_name="Erika Mustermann")


def _ensure_operator(db) -> None:
    if not db.execute("SELECT 1 FROM operators WHERE name = ?", (OPERATOR,)).fetchone():
        operators.create(db, operators.OperatorIn(name=OPERATOR, pin=PIN), utcnow())


async def _start_edges(args: argparse.Namespace, db, url: str) -> list[tuple[Edge, web.AppRunner, str]]:
    """Enroll the desk and the counter on the first run (one-time codes, over HTTP), then
    serve each one's web app with its sync loop, as `tessera edge serve` does."""
    started = []
    for folder, name, role, offset in EDGES:
        edge_dir = args.data / folder
        if not (edge_dir / NODE_DB).exists():
            code = enrollment.create_code(db, name=name, role=role, venue_ids=[], now=utcnow())
            await enrolling.enroll(edge_dir, code, [url])
        edge = Edge(edge_dir, hub_url=url, sync_period_s=5.0)
        runner = web.AppRunner(edge.app(), access_log=None)
        await runner.setup()
        port = args.port + offset if args.port else 0
        try:
            await web.TCPSite(runner, args.host, port).start()
        except OSError as exc:
            await runner.cleanup()
            await edge.close()
            raise RuntimeError(f"cannot listen on {args.host}:{port}: {exc.strerror}") from None
        edge.start_background()
        started.append((edge, runner, f"http://{args.host}:{runner.addresses[0][1]}"))
    return started


def _ensure_gate(db, hub_dir: Path, gate_dir: Path) -> None:
    for row in db.execute("SELECT id FROM annual_products").fetchall():
        cards.product_code(db, row["id"], "annual")
    if (gate_dir / NODE_DB).exists():
        provisioning.refresh(gate_dir, hub_dir)  # stand-in for pull sync: the demo card reaches the gate
        return
    venue = db.execute("SELECT id FROM venues WHERE name = ?", (GATE_VENUE,)).fetchone()
    provisioning.provision(gate_dir, hub_dir, name=f"{GATE_VENUE} Eingang", role="gate")
    write_gate_rules(gate_dir, GateRules(venue_id=venue["id"], lockout_minutes=2))


async def _run(args: argparse.Namespace, db, gate_dir: Path, token: str, card: dict) -> int:
    runner = web.AppRunner(make_app(db), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, args.host, args.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise RuntimeError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    url = f"http://{args.host}:{runner.addresses[0][1]}"
    try:
        edges = await _start_edges(args, db, url)
    except BaseException:
        await runner.cleanup()
        raise
    (desk, _, desk_url), (counter, _, counter_url) = edges
    gate = Gate(GateOptions(gate_dir, scanner="sim-stdin", relay="sim-log", http_host=args.host,
                            http_port=args.port + 10 if args.port else 0, peer_interfaces=(args.host,)))
    await gate.start()
    print(f"""
Tessera demo is running.
  hub API        {url}/api/v1   (document: {url}/api/v1/openapi.json)
  admin token    {token}
  cash desk      {desk_url}   (log in as {OPERATOR}, PIN {PIN}; receipts: {desk.data_dir}/var/printer-out)
  counter        {counter_url}/counter   (exchange vouchers; cards: {counter.data_dir}/var/card-out)
  gate           {gate.url}   (Stadtmuseum, simulated scanner and relay)

A card to scan (Jahreskarte Verbund, Erika Mustermann, {card['number']}):
  {card['code']}
Paste it here and press Enter (the simulated scanner reads this terminal), or:
  curl -s -X POST {gate.url}/api/scan -H 'Content-Type: application/json' -d '{{"code": "{card['code'][:12]}..."}}'
A second scan within 2 minutes is refused (PASSBACK). Check any code offline with:
  tessera card verify CODE --data {gate_dir}

Try the office API:
  curl -s -H 'Authorization: Bearer {token}' '{url}/api/v1/subscription-products?limit=10'
  curl -s -H 'Authorization: Bearer {token}' '{url}/api/v1/customers?q=Müller&limit=3'
Stop with Ctrl-C. Data is kept in {args.data}.""", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gate_task = asyncio.create_task(gate.run())
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({gate_task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if gate_task.done() and not stop.is_set():
        await stop.wait()  # stdin closed (e.g. started from a script): keep serving until stopped
    gate_task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await gate_task
    await gate.close()
    for edge, edge_runner, _ in edges:
        await edge_runner.cleanup()
        await edge.close()
    await runner.cleanup()
    return 0
