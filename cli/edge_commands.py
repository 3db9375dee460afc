"""`tessera edge ...`: enroll a cash desk or counter with the hub, run it, ask how it is."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from core.base.node import NODE_DB
from core.base.storage import connect
from core.cards.trusted_time import TrustedClock
from core.sync import enroll as enroll_codes


def register(areas: argparse._SubParsersAction) -> None:
    edge = areas.add_parser("edge", help="a cash desk or counter: enroll, serve, status",
                            description="An edge node keeps its own replica, works offline and syncs with the hub.")
    cmds = edge.add_subparsers(dest="command", metavar="COMMAND", required=True)

    enroll = cmds.add_parser("enroll", help="enroll this node with a one-time code from `tessera hub enroll`",
                             description="Create DIR: a new key pair, the node certificate from the hub, the "
                                         "organizer's root key (checked against the code), and the node's scope. "
                                         "Without --hub the hub is found on the LAN with zeroconf. The code's "
                                         "secret is never sent: each candidate hub must first prove it knows the "
                                         "code (SPAKE2), and one that cannot is skipped.")
    enroll.add_argument("--data", required=True, type=Path, metavar="DIR", help="data folder to create")
    enroll.add_argument("--code", required=True,
                        help="the one-time code from `tessera hub enroll` (39 symbols; dashes, spaces and case "
                             "do not matter)")
    enroll.add_argument("--hub", metavar="URL", help="hub address, e.g. http://10.0.0.2:8080 (default: zeroconf)")
    enroll.add_argument("--discover-seconds", type=float, default=3.0, help="how long to look for hubs (default 3)")
    enroll.add_argument("--zeroconf-interface", action="append", metavar="IP", help="look only on this interface")
    enroll.set_defaults(run=cmd_enroll)

    serve = cmds.add_parser("serve", help="run the node's local API and the sync loop",
                            description="Serve the local API (sales, status) and sync with the hub in the "
                                        "background: soon after each local change and periodically, with "
                                        "backoff while the hub is away.")
    serve.add_argument("--data", required=True, type=Path, metavar="DIR", help="edge data folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8081, help="port (default 8081; 0 picks a free one)")
    serve.add_argument("--hub", metavar="URL", help="override the hub address stored at enrollment")
    serve.add_argument("--sync-seconds", type=float, default=10.0,
                       help="push waiting ops at least this often (default 10); the hub's changes arrive "
                            "at once over the live channel")
    serve.add_argument("--no-peers", action="store_true",
                       help="do not announce this node to the gates (they then learn its key only by sync)")
    serve.add_argument("--peer-group", default="", metavar="NAME",
                       help="the gates' --peer-group at this site, when sites of one organizer share a LAN")
    serve.set_defaults(run=cmd_serve)

    status = cmds.add_parser("status", help="online/offline, last sync, ops waiting, conflicts, clock skew",
                             description="Read the node's sync state from its data folder (no network).")
    status.add_argument("--data", required=True, type=Path, metavar="DIR", help="edge data folder")
    status.set_defaults(run=cmd_status)


def cmd_enroll(args: argparse.Namespace) -> int:
    from edge.sync import enroll as enrolling  # each command imports its own part (`--help` none)

    code = enroll_codes.parse(args.code)  # a typo is caught here, before any hub is contacted
    urls = [args.hub] if args.hub else asyncio.run(_discover(args, enroll_codes.root_key_id(code.fingerprint)))
    if not urls:
        raise RuntimeError("no hub found on the LAN; give its address with --hub URL")
    node = asyncio.run(enrolling.enroll(args.data, args.code, urls))
    print(f"enrolled {node['role']} {node['name']} ({node['id']}) with {node['hub_url']}; data in {args.data}")
    return 0


async def _discover(args: argparse.Namespace, root_id: str) -> list[str]:
    from edge.sync.discovery import discover_hubs

    found = await discover_hubs(timeout_s=args.discover_seconds, interfaces=args.zeroconf_interface,
                                root_fingerprint=root_id)
    return [c.url for c in found]


def cmd_serve(args: argparse.Namespace) -> int:
    from edge.desk import server  # the desk's web app: only for `edge serve`

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(server.serve(args.data, args.host, args.port, hub_url=args.hub, sync_period_s=args.sync_seconds,
                             ready=lambda line: print(line, flush=True), peers=not args.no_peers,
                             peer_group=args.peer_group))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from edge.sync import client

    if not (args.data / NODE_DB).exists():
        raise FileNotFoundError(f"{args.data} is not an edge folder")
    db = connect(args.data / NODE_DB, edge=True)
    try:
        # the clock as this node judges cards: its error either way against the hub's time
        print(json.dumps({**client.status(db), "clock": TrustedClock(db).status()}, indent=2))
    finally:
        db.close()
    return 0
