"""`tessera demo`: a hub with the sample catalog, ready to explore.

(Grows with later issues: cash desk and gate with simulated devices join here.)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from cli.hub_commands import serve
from hub import auth, sample
from hub.app import db_path, init_hub, make_app, open_hub
from hub.client import LocalClient


def register(areas: argparse._SubParsersAction) -> None:
    demo = areas.add_parser("demo", help="run a hub with sample data and print how to use it",
                            description="Start a hub with the sample museum and theatre catalog. The first "
                                        "run creates DIR and loads the data; later runs reuse it. Prints the "
                                        "API URL and a fresh admin token.")
    demo.add_argument("--data", type=Path, default=Path("demo-data"), metavar="DIR",
                      help="data folder (default: ./demo-data)")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8080, help="hub port (default 8080; 0 picks a free one)")
    demo.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    hub_dir = args.data / "hub"
    if db_path(hub_dir).exists():
        db = open_hub(hub_dir)
    else:
        db, _ = init_hub(hub_dir, "demo-hub")
        print("loading the sample catalog ...", file=sys.stderr, flush=True)
        sample.build(LocalClient(make_app(db)), progress=lambda line: print("  " + line, file=sys.stderr))
    token, _ = auth.create_token(db, "demo session", "admin")
    app = make_app(db)

    def ready(url: str) -> None:
        print(f"""
Tessera demo is running.
  hub API        {url}/api/v1   (document: {url}/api/v1/openapi.json)
  admin token    {token}

Try:
  curl -s -H 'Authorization: Bearer {token}' '{url}/api/v1/subscription-products?limit=10'
  curl -s -H 'Authorization: Bearer {token}' '{url}/api/v1/customers?q=Müller&limit=3'
Stop with Ctrl-C. Data is kept in {args.data}.""", flush=True)

    asyncio.run(serve(app, args.host, args.port, ready))
    return 0
