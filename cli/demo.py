"""`tessera demo`: a hub with the sample catalog, a cash desk, a personalization counter
and a gate, all with simulated devices (printers write files, the scanner reads stdin),
and a mail sink that keeps the shop's mails as files.

The desk, the counter and the gate are enrolled over the network with one-time codes,
exactly as real ones are, and sync with the hub in the background: a card sold at the desk
reaches the gate within seconds. Stop the demo hub's port with a firewall, or just watch
the status bar, to see them work offline.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(areas: argparse._SubParsersAction) -> None:
    demo = areas.add_parser("demo", help="run a hub, cash desk, counter and gate with sample data",
                            description="Start a hub with the sample museum and theatre catalog, a cash desk "
                                        "and a personalization counter (web apps with simulated receipt and "
                                        "card printers: files in their data folders), a gate at the "
                                        "Stadtmuseum with a simulated scanner (stdin or its status page) and "
                                        "relay, and a mail sink that keeps the shop's mails as .eml files in "
                                        "DIR/mail. Desk, counter and gate are enrolled with one-time codes and "
                                        "sync with the hub, as real ones do. The first run creates DIR and "
                                        "loads the data; later runs reuse it. Prints the URLs, the cashier's "
                                        "PIN, fresh admin and shop tokens and a card to scan.")
    demo.add_argument("--data", type=Path, default=Path("demo-data"), metavar="DIR",
                      help="data folder (default: ./demo-data)")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8080,
                      help="hub port (default 8080; desk port+1, counter port+2, mail sink port+3, mail inbox "
                           "page port+4, gate status page port+10; 0 picks free ones)")
    demo.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    # The demo's hub, edges, gate and mail sink load here, not with the parser: `tessera --help` stays fast
    from cli.demo_run import run_demo

    return run_demo(args)
