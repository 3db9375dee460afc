"""`tessera hub ...`: create, fill and run a hub."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from hub import auth, sample
from hub.app import init_hub, make_app, open_hub
from hub.client import LocalClient


def register(areas: argparse._SubParsersAction) -> None:
    hub = areas.add_parser("hub", help="the central service: init, serve, sample data, tokens",
                           description="The central hub: office/shop/agency API, later sync and jobs.")
    cmds = hub.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init = cmds.add_parser("init", help="create a new hub data folder and print the first admin token",
                           description="Create DIR with the hub database; prints the first admin API "
                                       "token (shown once; only its hash is stored).")
    init.add_argument("--data", required=True, type=Path, metavar="DIR", help="data folder to create")
    init.add_argument("--name", default="hub", help="name of this hub node (default: hub)")
    init.set_defaults(run=cmd_init)

    serve = cmds.add_parser("serve", help="run the hub API", description="Serve the hub API until stopped.")
    serve.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--no-read-cache", action="store_true",
                       help="render every read from SQLite (for diagnosis and benchmarks)")
    serve.set_defaults(run=cmd_serve)

    fill = cmds.add_parser("sample", help="load the sample catalog into a hub",
                           description="Create the sample museum association and theatre through the API "
                                       "(in-process). --scale multiplies customers (250 x N); "
                                       "--performances adds studio performances up to that total. "
                                       "Benchmark size: --scale 200 --performances 40 (50,000 customers).")
    fill.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    fill.add_argument("--scale", type=_positive, default=1, help="customer multiplier (default 1: 250)")
    fill.add_argument("--performances", type=_positive, default=sample.BASE_PERFORMANCES,
                      help=f"total performances (default and minimum {sample.BASE_PERFORMANCES})")
    fill.set_defaults(run=cmd_sample)

    token = cmds.add_parser("token", help="create an API token on the hub's own machine",
                            description="Create an API token directly in the hub database (for recovery; "
                                        "normally admins create tokens through POST /api/v1/tokens).")
    token.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    token.add_argument("--name", required=True, help="who uses the token")
    token.add_argument("--role", required=True, choices=auth.ROLES)
    token.set_defaults(run=cmd_token)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def cmd_init(args: argparse.Namespace) -> int:
    db, secret = init_hub(args.data, args.name)
    db.close()
    print(f"hub created in {args.data}")
    print(f"admin token (shown once, keep it safe): {secret}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    db = open_hub(args.data)
    if db.execute("SELECT 1 FROM organizers LIMIT 1").fetchone():
        raise RuntimeError(f"{args.data} already holds a catalog; load sample data into a new hub")
    ids = sample.build(LocalClient(make_app(db)), scale=args.scale, performances=args.performances,
                       progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"sample catalog loaded: {len(ids['performances'])} performances, "
          f"{len(ids['subscriptions'])} subscription products, {ids['customers']} customers")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    db = open_hub(args.data)
    secret, row = auth.create_token(db, args.name, args.role)
    print(f"{row['role']} token for {row['name']} (shown once): {secret}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    app = make_app(open_hub(args.data), read_cache=not args.no_read_cache)
    asyncio.run(serve(app, args.host, args.port, lambda url: print(f"hub API on {url}/api/v1", flush=True)))
    return 0


async def serve(app: web.Application, host: str, port: int, ready: Callable[[str], None]) -> None:
    """Run *app* until SIGTERM/SIGINT; report the bound URL (port 0 picks a free port)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = runner.addresses[0][1]
    ready(f"http://{host}:{bound}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
