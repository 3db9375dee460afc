"""`tessera hub ...`: create, fill and run a hub."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cli import hub_backup, hub_bank, hub_datev, hub_rollover, hub_sepa
from cli.listening import bind
from hub import sample
from hub.services import tokens

if TYPE_CHECKING:
    from aiohttp import web

    from edge.notify import Heartbeat, SdNotify
    from hub.sync.advertise import HubAdvertiser

# The hub (hub.app, aiohttp, the services) is imported by the commands that use it, not here:
# `tessera hub --help` and a usage error stay fast (tests/test_cli.py measures the imports).
STAFF_ROLES = ("admin", "office")  # hub.services.staff.ROLES (tests/test_cli.py checks)


def register(areas: argparse._SubParsersAction) -> None:
    hub = areas.add_parser("hub", help="the central service: init, serve, sample data, tokens",
                           description="The central hub: the office, shop and agency API; sync and enrollment for "
                                       "cash desks, counters and gates; the customers' personalization pages; "
                                       "the mail and print workers.")
    cmds = hub.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init = cmds.add_parser("init", help="create a new hub data folder and print the first admin token",
                           description="Create DIR with the hub database; prints the first admin API "
                                       "token (shown once; only its hash is stored) and the one-time link that "
                                       "sets the password of the office login 'admin' (/office/setup/...).")
    init.add_argument("--data", required=True, type=Path, metavar="DIR", help="data folder to create")
    init.add_argument("--name", default="hub", help="name of this hub node (default: hub)")
    init.add_argument("--database", metavar="URL", help="keep the hub's data in this empty PostgreSQL database "
                      "(postgresql://...) instead of SQLite; written to hub.toml [storage] (docs/postgresql.md)")
    init.set_defaults(run=cmd_init)

    serve = cmds.add_parser("serve", help="run the hub API",
                            description="Serve the hub API until stopped (SIGTERM/SIGINT). The hub announces "
                                        "itself on the LAN with zeroconf (_tessera-hub._tcp) so edges enrolled "
                                        "without --hub find it; an announcement is only a hint, edges verify "
                                        "every answer against their pinned root key. Under systemd "
                                        "(Type=notify) it reports READY=1 once listening and feeds WatchdogSec=.")
    serve.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--no-read-cache", action="store_true",
                       help="render every read from SQLite (for diagnosis and benchmarks)")
    serve.add_argument("--no-advertise", action="store_true", help="do not announce the hub with zeroconf")
    serve.add_argument("--advertise-address", metavar="IP",
                       help="IPv4 address edges are told to connect to (default: the --host address; for a "
                            "wildcard --host such as 0.0.0.0, the first --zeroconf-interface, else the address "
                            "of the default route, else 127.0.0.1). With --host 127.0.0.1 only this machine can "
                            "use the announcement: listen on the LAN address or set this for edges elsewhere")
    serve.add_argument("--zeroconf-interface", action="append", metavar="IP",
                       help="announce only on the interface with this IPv4 address (repeatable; default: all)")
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
    token.add_argument("--role", required=True, choices=tokens.ROLES)
    token.set_defaults(run=cmd_token)

    rotate = cmds.add_parser("rotate-key", help="give the hub a new signing key (the old one is retired)",
                             description="Make a new hub signing key, certify it with the root and retire the "
                                         "old one. Crash-safe: a rotation cut short is finished or undone at "
                                         "the hub's next start. Edges learn the new key from the next answer.")
    rotate.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    rotate.set_defaults(run=cmd_rotate_key)

    enroll = cmds.add_parser("enroll", help="make a one-time code that enrolls a cash desk, counter or gate",
                             description="Print a one-time code for `tessera edge enroll --code CODE`, and the "
                                         "same code as a QR code (on stderr) for a device's camera. It is single "
                                         "use, expires after 24 hours, dies after 3 failed attempts, and carries "
                                         "130 bits of the organizer root key's fingerprint, so the edge can tell "
                                         "the real hub from a rogue one. Its secret is never sent over the network.")
    enroll.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    enroll.add_argument("--node", required=True, metavar="NAME", help="name of the new node, e.g. 'Kasse 1'")
    enroll.add_argument("--role", required=True, choices=("cashdesk", "counter", "gate"))
    enroll.add_argument("--venue", action="append", default=[], metavar="VENUE",
                        help="venue id or exact name the node serves (repeatable)")
    enroll.set_defaults(run=cmd_enroll)

    listing = cmds.add_parser("enrollments", help="list enrollment codes: open, used, expired, void (never secrets)",
                              description="One line per enrollment code, newest first: code id, state, role, name, "
                                          "created, expires, used at, node id, attempts left. The secret part of a "
                                          "code is shown only once, by `tessera hub enroll`.")
    listing.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    listing.add_argument("--json", action="store_true", help="print JSON instead of lines")
    listing.set_defaults(run=cmd_enrollments)

    operator = cmds.add_parser("operator", help="cash-desk operators: add, list",
                               description="Cash-desk operators log in at any desk or counter with their PIN, "
                                           "also offline (they reach the desks by sync). The PIN is stored as "
                                           "an scrypt hash only. Office staff use /api/v1/operators instead.")
    actions = operator.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add an operator with a PIN",
                             description="Add an operator. The PIN is 4 to 8 digits; `--pin -` reads it from "
                                         "standard input, which keeps it out of the shell history and the "
                                         "process list.")
    add.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    add.add_argument("--name", required=True, help="name shown at the desk, e.g. 'Anna'")
    add.add_argument("--pin", required=True, help="4 to 8 digits, or - to read it from standard input")
    add.add_argument("--inactive", action="store_true", help="add the operator locked out (activate later)")
    add.set_defaults(run=cmd_operator_add)
    show = actions.add_parser("list", help="list operators (never their PINs)",
                              description="One line per operator: name, active or inactive, id.")
    show.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    show.add_argument("--active", action="store_true", help="only active operators")
    show.set_defaults(run=cmd_operator_list)

    staff_cmd = cmds.add_parser("staff", help="office staff accounts: add (prints a password setup link)",
                                description="Staff log in to the office web app at /office/ with a user name "
                                            "and a password (Argon2id hash, never sent to any edge). A new "
                                            "account gets a one-time setup link (valid 24 hours) to set it.")
    staff_actions = staff_cmd.add_subparsers(dest="action", metavar="ACTION", required=True)
    staff_add = staff_actions.add_parser("add", help="add a staff account and print its password setup link",
                                         description="Add an office account without a password and print the "
                                                     "path of its one-time setup link (single use, 24 hours); "
                                                     "open it on the hub's address to set the password.")
    staff_add.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    staff_add.add_argument("--user", required=True, metavar="NAME", help="user name to log in with")
    staff_add.add_argument("--role", required=True, choices=STAFF_ROLES)
    staff_add.set_defaults(run=cmd_staff_add)
    staff_link = staff_actions.add_parser("link", help="a new password setup link for an existing account",
                                          description="For a forgotten password or a locked account: print a new "
                                                      "one-time setup link (24 hours); older open links of the "
                                                      "account stop working. Setting the password ends the "
                                                      "account's sessions and its lockout.")
    staff_link.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    staff_link.add_argument("--user", required=True, metavar="NAME", help="user name of the account")
    staff_link.set_defaults(run=cmd_staff_link)

    hub_backup.register(cmds)  # backup, restore (cli/hub_backup.py)
    hub_sepa.register(cmds)  # sepa export (cli/hub_sepa.py)
    hub_datev.register(cmds)  # datev export (cli/hub_datev.py)
    hub_bank.register(cmds)  # bank import (cli/hub_bank.py)
    hub_rollover.register(cmds)  # rollover plan, run, confirm (cli/hub_rollover.py)

    migrate = cmds.add_parser(
        "migrate-to-postgresql", help="move a SQLite hub's data into an empty PostgreSQL database",
        description="Copy every table of the SQLite hub in DIR (catalog, orders, invoices, the op log, the change "
                    "feed, the nodes' cursors) into the empty PostgreSQL database URL in one transaction, compare "
                    "each table's row count and print them, then move hub.sqlite aside "
                    "(hub.sqlite.migrated-<UTC time>) and add [storage] database = URL to DIR/hub.toml (its other "
                    "settings kept). Key files and the node id stay, so edges only need the hub's address if it "
                    "changes. Stop the hub first: a hub.sqlite open elsewhere is refused, and the file stays locked "
                    "during the copy. The hub must be at this Tessera's migration level (open it once with this "
                    "version). Any failure leaves the database empty and DIR as it was. Full-text indexes are not "
                    "copied (no FTS on PostgreSQL yet). Guide: docs/migrate-to-postgresql.md.")
    migrate.add_argument("--from", dest="source", required=True, type=Path, metavar="DIR",
                         help="the SQLite hub's data folder (with hub.sqlite)")
    migrate.add_argument("--to", dest="target", required=True, metavar="URL",
                         help="an empty PostgreSQL database, postgresql://USER[:PASSWORD]@HOST/NAME")
    migrate.set_defaults(run=cmd_migrate_to_postgresql)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def cmd_init(args: argparse.Namespace) -> int:
    from core.base.clock import utcnow
    from hub.app import init_hub
    from hub.services import staff

    db, secret = init_hub(args.data, args.name, args.database)
    _, setup = staff.add(db, "admin", "admin", utcnow())
    db.close()
    print(f"hub created in {args.data}")
    # the token stays the last word of the output (scripts take it with `split()[-1]`)
    print(f"office login 'admin': set its password once, within 24 hours, by opening {staff.SETUP_PATH}{setup} "
          f"on the hub's address (e.g. http://127.0.0.1:8080{staff.SETUP_PATH}{setup})")
    print(f"admin token (shown once, keep it safe): {secret}")
    return 0


def cmd_staff_link(args: argparse.Namespace) -> int:
    from core.base.clock import utcnow
    from hub.app import open_hub
    from hub.services import staff

    setup = staff.setup_link(open_hub(args.data), args.user, utcnow())
    print(f"set the password of {args.user!r} once within 24 hours at {staff.SETUP_PATH}{setup} (on the hub's address)")
    return 0


def cmd_staff_add(args: argparse.Namespace) -> int:
    from core.base.clock import utcnow
    from hub.app import open_hub
    from hub.services import staff

    db = open_hub(args.data)
    row, setup = staff.add(db, args.user, args.role, utcnow())
    print(f"{row['role']} account {row['user_name']!r} added; set its password once within 24 hours at "
          f"{staff.SETUP_PATH}{setup} (on the hub's address)")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from hub.app import make_app, open_hub
    from hub.client import LocalClient

    db = open_hub(args.data)
    if db.execute("SELECT 1 FROM organizers LIMIT 1").fetchone():
        raise RuntimeError(f"{args.data} already holds a catalog; load sample data into a new hub")
    ids = sample.build(LocalClient(make_app(db)), scale=args.scale, performances=args.performances,
                       progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"sample catalog loaded: {len(ids['performances'])} performances, "
          f"{len(ids['subscriptions'])} subscription products, {ids['customers']} customers")
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from core.base.clock import utcnow
    from core.catalog.organizers import venue_id
    from hub.app import open_hub
    from hub.sync import enrollment

    db = open_hub(args.data)
    venue_ids = [venue_id(db, venue) for venue in args.venue]
    code = enrollment.create_code(db, name=args.node, role=args.role, venue_ids=venue_ids, now=utcnow())
    print(f"one-time code for {args.role} {args.node!r} (valid 24 hours, single use, {enrollment.ATTEMPTS} attempts):")
    print(code)
    _print_qr(code)
    print(f"on the node: tessera edge enroll --data DIR --code {code} [--hub URL]", file=sys.stderr)
    return 0


def _print_qr(code: str) -> None:
    """The code as a QR code in the terminal (stderr, so stdout stays the code alone)."""
    import segno

    print("the same code for a device's camera:", file=sys.stderr)
    segno.make(code, error="m", micro=False).terminal(out=sys.stderr, compact=True)


def cmd_enrollments(args: argparse.Namespace) -> int:
    import msgspec

    from core.base.clock import utcnow
    from hub.app import open_hub
    from hub.sync import enrollment

    rows = enrollment.list_codes(open_hub(args.data), utcnow())
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(rows), indent=2).decode())
        return 0
    for row in rows:
        print("\t".join((row["code_id"] or "-", row["state"], row["role"], row["name"], row["created_at"],
                         row["expires_at"], row["used_at"] or "-", row["node_id"] or "-",
                         f"{row['attempts_left']} attempts left")))
    if not rows:
        print("no enrollment codes yet: tessera hub enroll --data DIR --node NAME --role ROLE", file=sys.stderr)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from hub.app import open_hub

    db = open_hub(args.data)
    secret, row = tokens.create_token(db, args.name, args.role)
    print(f"{row['role']} token for {row['name']} (shown once): {secret}")
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from hub.app import open_hub
    from hub.services.nodes import rotate_hub_key

    db = open_hub(args.data)
    try:
        print(f"{args.data}: new hub signing key {rotate_hub_key(args.data, db):08x}; the old key is retired")
    finally:
        db.close()
    return 0


def cmd_operator_add(args: argparse.Namespace) -> int:
    """The same rules as POST /api/v1/operators: `core.catalog.operators.OperatorIn` checks name and PIN."""
    import msgspec

    from core.base.clock import utcnow
    from core.catalog import operators
    from hub.app import open_hub

    pin = sys.stdin.readline().strip() if args.pin == "-" else args.pin
    try:
        data = msgspec.convert({"name": args.name, "pin": pin, "active": not args.inactive}, operators.OperatorIn)
    except msgspec.ValidationError as exc:
        field = str(exc).rpartition("$.")[2].rstrip("`") or "input"
        raise ValueError(f"--{field}: " + ("the PIN must be 4 to 8 digits" if field == "pin" else
                                           "give a name (1 to 200 characters)")) from None
    db = open_hub(args.data)
    row = operators.create(db, data, utcnow())
    print(f"operator {row['name']!r} added ({'active' if row['active'] else 'inactive'}), id {row['id']}")
    return 0


def cmd_operator_list(args: argparse.Namespace) -> int:
    from core.catalog import operators
    from hub.app import open_hub

    db = open_hub(args.data)
    rows = operators.listed(db, active_only=args.active)
    for row in rows:
        print(f"{row['name']}\t{'active' if row['active'] else 'inactive'}\t{row['id']}")
    if not rows:
        print("no operators yet: tessera hub operator add --data DIR --name NAME --pin PIN", file=sys.stderr)
    return 0


def cmd_migrate_to_postgresql(args: argparse.Namespace) -> int:
    """Progress on stderr (a line per table, more for big ones), the count table on stdout."""
    from hub.services import migrate_postgresql

    done = migrate_postgresql.migrate(args.source, args.target,
                                      lambda line: print(line, file=sys.stderr, flush=True))
    width = max(len(c.table) for c in done.counts)
    print(f"{'table':<{width}}  {'sqlite':>9}  {'postgresql':>10}")
    for counted in done.counts:
        print(f"{counted.table:<{width}}  {counted.sqlite:>9}  {counted.postgresql:>10}")
    print(f"{len(done.counts)} tables, {sum(c.sqlite for c in done.counts)} rows, every count equal")
    for reason in sorted(set(done.skipped.values())):
        print(f"left out, {reason}: {', '.join(t for t, why in done.skipped.items() if why == reason)}")
    print(f"change feed continues after position {done.feed_position}; {args.source / 'hub.sqlite'} moved to "
          f"{done.moved_to.name}; hub.toml names {migrate_postgresql.shown_url(args.target)}")
    print(f"start the hub as before: tessera hub serve --data {args.source}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from core.base.node import this_node
    from edge.notify import SdNotify
    from hub.app import make_app, open_hub
    from hub.sync.advertise import HubAdvertiser, root_fingerprint

    db = open_hub(args.data)
    app = make_app(db, read_cache=not args.no_read_cache)
    advertise = None
    if not args.no_advertise:
        node = this_node(db)
        root = root_fingerprint(db)
        address = args.advertise_address or advertise_address(args.host, args.zeroconf_interface)

        def advertise(port: int) -> HubAdvertiser:
            return HubAdvertiser(port=port, node_id=node["id"], name=node["name"], root_fingerprint=root,
                                 host_address=address, interfaces=args.zeroconf_interface)

    asyncio.run(serve(app, args.host, args.port, lambda url: print(f"hub API on {url}/api/v1", flush=True),
                      notify=SdNotify(), advertise=advertise))
    return 0


WILDCARDS = ("", "0.0.0.0", "::", "*")
HEARTBEAT_S = 1.0  # the event loop proves it runs this often
HEARTBEAT_MAX_AGE_S = 5.0  # older than this: stop feeding systemd's watchdog


def advertise_address(host: str, interfaces: Sequence[str] | None) -> str:
    """The address to announce when --advertise-address is not given (see `serve --help`)."""
    if host not in WILDCARDS:
        try:
            return str(ipaddress.ip_address(host))  # an IPv6 literal is refused by the advertiser, with a warning
        except ValueError:
            pass
        try:  # a host name: its first IPv4 address
            return socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0]
        except OSError:
            return "127.0.0.1"
    if interfaces:
        return interfaces[0]
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # UDP connect sends nothing; it only picks the outgoing address
        return probe.getsockname()[0]
    return "127.0.0.1"


async def serve(app: web.Application, host: str, port: int, ready: Callable[[str], None], *,
                notify: SdNotify | None = None, advertise: Callable[[int], HubAdvertiser] | None = None) -> None:
    """Run *app* until SIGTERM/SIGINT; report the bound URL (port 0 picks a free port).

    With *notify*: READY=1 and a STATUS line once listening, WATCHDOG=1 while a heartbeat
    task shows the event loop runs (if `WatchdogSec=` is set), STOPPING=1 on shutdown.
    With *advertise* (given the bound port): announce the hub in the background; a failure
    is one warning line on stderr and the hub serves on.
    """
    from aiohttp import web

    from edge.notify import Heartbeat, feed_watchdog, watchdog_interval

    sock = bind(host, port)  # before the app's workers start: a busy port is the only message
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
    except OSError as exc:
        await runner.cleanup()
        raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = runner.addresses[0][1]
    url = f"http://{host}:{bound}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready(url)
    tasks: list[asyncio.Task] = []
    status = f"hub API on {url}/api/v1"
    if notify is not None:
        notify.ready(status)
        heartbeat = Heartbeat()
        tasks.append(asyncio.create_task(_beat(heartbeat)))
        tasks.append(asyncio.create_task(feed_watchdog(notify, heartbeat, watchdog_interval(), HEARTBEAT_MAX_AGE_S)))
    advertiser = advertise(bound) if advertise is not None else None
    if advertiser is not None:
        tasks.append(asyncio.create_task(_advertise(advertiser, notify, status)))
    try:
        await stop.wait()
    finally:
        if notify is not None:
            notify.stopping()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if advertiser is not None:
            await advertiser.close()
        await runner.cleanup()
        if notify is not None:
            notify.close()


async def _beat(heartbeat: Heartbeat) -> None:
    while True:
        heartbeat.beat()
        await asyncio.sleep(HEARTBEAT_S)


async def _advertise(advertiser: HubAdvertiser, notify: SdNotify | None, status: str) -> None:
    try:
        await advertiser.start()
    except Exception as exc:  # no multicast, unknown interface, IPv6 address: serve on without it
        reason = str(exc) or exc.__class__.__name__
        print(f"tessera: warning: hub not advertised on the LAN ({reason}); edges need --hub URL",
              file=sys.stderr, flush=True)
        if notify is not None:
            notify.status(f"{status}; not advertised on the LAN: {reason}")
        return
    if notify is not None:
        notify.status(f"{status}; advertised as {advertiser.service_name.split('.')[0]!r} "
                      f"at {advertiser.host_address}:{advertiser.port}")
