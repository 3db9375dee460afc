"""`tessera gate ...` and `tessera card ...`: set up and run a turnstile, check and issue cards."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.base.clock import parse_iso, utcnow
from core.base.node import this_node
from core.cards import cards
from core.cards.access import Access, GateRules, verdict_json
from core.cards.trusted_time import TrustedClock
from core.catalog.organizers import venue_id
from devices.profiles import list_profiles
from edge.node_data import gate_rules, open_data, write_gate_rules

if TYPE_CHECKING:
    from edge.gate.loop import GateOptions

DENIED_EXIT = 3


def register(areas: argparse._SubParsersAction) -> None:
    profiles = list_profiles()
    scanners = ", ".join(n for n, k in sorted(profiles.items()) if k == "scanner")
    relays = ", ".join(n for n, k in sorted(profiles.items()) if k == "relay")

    gate = areas.add_parser("gate", help="a turnstile: set it up, run it",
                            description="A gate admits valid cards offline: scanner -> decision -> relay.")
    cmds = gate.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init = cmds.add_parser("init", help="set up a gate folder from a hub folder on this machine (no network)",
                           description="Create a gate data folder from the hub's folder on the same machine: its "
                                       "own key pair (certified by the hub's root key), a snapshot of the hub's "
                                       "catalog, cards and revocations, and gate.toml with the rules. Such a gate "
                                       "does not sync; `tessera gate refresh` copies the hub's state again. A gate "
                                       "on its own machine is enrolled instead (`tessera hub enroll --role gate "
                                       "--venue VENUE`, then `tessera edge enroll`) and syncs while it runs.")
    init.add_argument("--data", required=True, type=Path, metavar="DIR", help="gate data folder to create")
    init.add_argument("--hub-data", required=True, type=Path, metavar="DIR", help="the hub's data folder")
    init.add_argument("--name", required=True, help="name of this gate, e.g. 'Stadtmuseum Eingang 1'")
    init.add_argument("--venue", required=True, help="venue id or exact venue name where the gate stands")
    init.add_argument("--lockout-minutes", type=int, default=30,
                      help="no second entry at this venue within this time, at any gate (default 30)")
    init.add_argument("--exit-scans", action="store_true", help="an exit scan ends the lockout early")
    init.add_argument("--direction", choices=("in", "out"), default="in", help="entry (in) or exit (out) gate")
    init.set_defaults(run=cmd_init)

    refresh = cmds.add_parser("refresh", help="copy the hub's current state into a gate folder again",
                              description="For a gate set up with `tessera gate init`: copy the cards, "
                                          "revocations, node certificates and catalog from the hub's folder on "
                                          "this machine into the gate's folder (stop the gate first). An enrolled "
                                          "gate needs no refresh: `tessera gate run` pulls them from the hub.")
    refresh.add_argument("--data", required=True, type=Path, metavar="DIR", help="gate data folder")
    refresh.add_argument("--hub-data", required=True, type=Path, metavar="DIR", help="the hub's data folder")
    refresh.set_defaults(run=cmd_refresh)

    rotate = cmds.add_parser("rotate-key", help="give a gate (or any node folder) a new signing key",
                             description="Make a new key pair in the node folder and have the hub certify it; "
                                         "the old key is retired as of now, so what it signed stays valid.")
    rotate.add_argument("--data", required=True, type=Path, metavar="DIR", help="node data folder")
    rotate.add_argument("--hub-data", required=True, type=Path, metavar="DIR", help="the hub's data folder")
    rotate.set_defaults(run=cmd_rotate)

    run = cmds.add_parser("run", help="run the gate: scan, decide, record, open",
                          description="Run the turnstile until stopped. Each scan prints one line; a status "
                                      "page runs on --http-port. Peer gates are found with zeroconf. An enrolled "
                                      "gate syncs with its hub in the background (entries up; cards, revocations "
                                      "and certificates down) and decides offline when the hub is away.")
    run.add_argument("--data", required=True, type=Path, metavar="DIR", help="gate data folder")
    run.add_argument("--scanner", required=True, metavar="PROFILE", help=f"scanner profile: {scanners}")
    run.add_argument("--device", metavar="PATH", help="input device or serial port of the scanner "
                                                      "(default: found by the profile's USB id / port)")
    run.add_argument("--relay", required=True, metavar="PROFILE", help=f"relay profile: {relays}")
    run.add_argument("--port", metavar="PATH", help="serial port of the relay, e.g. /dev/ttyUSB0")
    run.add_argument("--http-host", default="127.0.0.1", help="address of the status page (default 127.0.0.1; "
                                                             "use the LAN address so peer gates can reach it)")
    run.add_argument("--http-port", type=int, default=8090, help="status page port (default 8090; 0: any)")
    run.add_argument("--no-peers", action="store_true", help="do not exchange entries with peer gates")
    run.add_argument("--peer-interface", action="append", metavar="IP",
                     help="announce and browse for peers only on this interface address (repeatable)")
    run.add_argument("--peer-group", default="", metavar="NAME",
                     help="exchange entries only with gates of this group (sites sharing one LAN)")
    run.set_defaults(run=cmd_run)

    card = areas.add_parser("card", help="check or issue a card",
                            description="Check a card code offline, or issue one on a hub.")
    ccmds = card.add_subparsers(dest="command", metavar="COMMAND", required=True)
    verify = ccmds.add_parser("verify", help="print the offline verdict for a code as JSON",
                              description=f"Decide like a gate would, without recording an entry. Works on a "
                                          f"hub's, cash desk's or gate's folder. Exit 0 only when admitted, "
                                          f"{DENIED_EXIT} when denied, 1 on an error.")
    verify.add_argument("code", help="the scanned code ('-' reads it from stdin)")
    verify.add_argument("--data", required=True, type=Path, metavar="DIR", help="any Tessera data folder")
    verify.add_argument("--venue", help="check for this venue id (default: the gate's venue, or none)")
    verify.add_argument("--at", help="decide as of this time (ISO 8601 with zone; default: trusted now)")
    verify.set_defaults(run=cmd_verify)

    issue = ccmds.add_parser("issue", help="issue a signed card on a hub (for tests and the demo)",
                             description="Issue a card signed with the hub's node key and print its code. "
                                         "The office normally uses POST /api/v1/cards.")
    issue.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    issue.add_argument("--product", required=True, help="annual-ticket product id")
    issue.add_argument("--holder", help="holder name printed on the card")
    issue.add_argument("--kind", default="annual", choices=("annual", "voucher"))
    issue.set_defaults(run=cmd_issue)


def _venue_id(hub_dir: Path, venue: str) -> str:
    db = open_data(hub_dir)
    try:
        return venue_id(db, venue)
    finally:
        db.close()


def cmd_init(args: argparse.Namespace) -> int:
    from hub.services.provisioning import provision  # the local stand-in for enrollment

    rules = GateRules(venue_id=_venue_id(args.hub_data, args.venue), lockout_minutes=args.lockout_minutes,
                      exit_scans=args.exit_scans, direction=args.direction)
    node = provision(args.data, args.hub_data, name=args.name, role="gate")
    write_gate_rules(args.data, rules)
    print(f"gate {node['name']} ({node['id']}) set up in {args.data}, venue {rules.venue_id}")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from hub.services.provisioning import refresh

    counts = refresh(args.data, args.hub_data)
    print(f"refreshed {args.data}: {counts.get('cards', 0)} cards, {counts.get('node_certs', 0)} certificates, "
          f"{counts.get('node_revocations', 0)} node revocations")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from hub.services.provisioning import rotate_key

    print(f"{args.data}: new signing key {rotate_key(args.data, args.hub_data):08x}; the old key is retired")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edge.gate.loop import GateOptions  # the gate's loop and devices: only for `gate run`

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    options = GateOptions(data_dir=args.data, scanner=args.scanner, relay=args.relay, device=args.device,
                          port=args.port, http_host=args.http_host, http_port=args.http_port,
                          peers=not args.no_peers,
                          peer_interfaces=tuple(args.peer_interface) if args.peer_interface else None,
                          peer_group=args.peer_group)
    return asyncio.run(_run(options))


async def _run(options: GateOptions) -> int:
    from edge.gate.loop import Gate

    gate = Gate(options)
    await gate.start()
    task = asyncio.create_task(gate.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        with contextlib.suppress(Exception):
            await gate.close()
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    code = sys.stdin.readline() if args.code == "-" else args.code
    db = open_data(args.data)
    try:
        rules = gate_rules(args.data) if this_node(db)["role"] == "gate" else GateRules()
        if args.venue:
            rules = GateRules(venue_id=args.venue, lockout_minutes=rules.lockout_minutes,
                              exit_scans=rules.exit_scans, direction=rules.direction)
        at = _when(args.at)
        clock = TrustedClock(db)
        if at is None and clock.skew_seconds() > 1:
            print(f"tessera: warning: the {clock.describe()}; "
                  f"deciding on trusted time {clock.status()['trusted']}", file=sys.stderr)
        result = Access(db, rules, clock).decide(code, at)
    finally:
        db.close()
    print(verdict_json(result))
    return 0 if result.admitted else DENIED_EXIT


def _when(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = parse_iso(text)
    except ValueError:
        raise ValueError(f"--at {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError("--at needs a time zone, e.g. 2026-12-01T10:00:00+01:00")
    return moment


def cmd_issue(args: argparse.Namespace) -> int:
    db = open_data(args.data)
    try:
        if this_node(db)["role"] != "hub":
            raise ValueError("cards are issued here on a hub folder; cash desks sell through their own screen")
        if not db.execute("SELECT 1 FROM annual_products WHERE id = ?", (args.product,)).fetchone():
            raise ValueError(f"no annual-ticket product {args.product}")
        card = cards.issue_card(db, cards.load_signer(db, args.data), product_id=args.product, kind=args.kind,
                                now=utcnow(), holder_name=args.holder)
    finally:
        db.close()
    print(f"card {card['number']} for {card['holder_name'] or '(no name)'}, valid {card['valid_from']} .. "
          f"{card['valid_until']}", file=sys.stderr)
    print(card["code"])
    return 0
