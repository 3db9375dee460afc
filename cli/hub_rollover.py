"""`tessera hub rollover plan|run|confirm`: the season rollover (S15) from the command line.

The work is core/subscriptions/rollover_run.py (plan, hold, resume) and
hub/services/rollover_confirm.py (orders, invoices, debits, prints): the same as the API's
/rollover-runs. A progress bar on stderr: one redrawn bar on a terminal, a line per 10 %
otherwise (a log file or a pipe gets no carriage returns).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from core.base.clock import LOCAL_TZ

if TYPE_CHECKING:
    from core.subscriptions.rollover_map import ProductPairIn

# The rollover's modules (core.subscriptions, hub.app) are imported by the commands, not here:
# `tessera hub --help` stays fast.
CHUNK = 500  # subscriptions per transaction by default: rollover_run.CHUNK (tests/test_cli.py checks)

REASON_TEXT = {"product_missing": "product missing", "tier_missing": "discount tier missing",
               "seat_gone": "seat gone or blocked", "zone_changed": "price zone changed",
               "wheelchair_locked": "wheelchair place locked"}
STAGES = {"plan": "planning", "hold": "holding seats", "confirm": "confirming"}

HELP = """\
plan     show what the rollover would do, writing nothing (a dry run)
run      plan and hold the seats until the renewal deadline; again after a crash: it continues
confirm  turn the held seats into orders, invoices, SEPA debits and print jobs (all, or --subscriber)

Seasons are named by id or by name (e.g. 2026/27)."""


class ProgressBar:
    """A progress bar on *out*: redrawn in place on a terminal, a line per 10 % otherwise."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out, self.tty = out, out.isatty()
        self.shown: tuple[str, int] | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        percent = 100 if total <= 0 else min(100, done * 100 // total)
        step = percent if self.tty else percent - percent % 10
        if self.shown == (stage, step):
            return
        self.shown = (stage, step)
        label = STAGES.get(stage, stage)
        if not self.tty:
            print(f"{label}: {percent}% ({done} of {total})", file=self.out, flush=True)
            return
        width = max(10, min(40, shutil.get_terminal_size((80, 20)).columns - len(label) - 30))
        filled = width * percent // 100
        bar = "#" * filled + "-" * (width - filled)
        print(f"\r{label} [{bar}] {percent:3d}% {done}/{total}", end="\n" if percent >= 100 else "",
              file=self.out, flush=True)


def register(cmds: argparse._SubParsersAction) -> None:
    area = cmds.add_parser("rollover", help="season rollover: plan, run (hold seats), confirm",
                           description="Roll the subscriptions of one season over into the next (S15).\n\n" + HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = area.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext in (("plan", "dry run: what would become of every subscription"),
                           ("run", "plan and hold the seats until the renewal deadline"),
                           ("confirm", "orders, invoices, debits and print jobs for the held seats")):
        cmd = actions.add_parser(name, help=helptext, description=helptext)
        cmd.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
        cmd.add_argument("--from", dest="from_season", required=True, metavar="SEASON",
                         help="the season rolled over (id or name)")
        cmd.add_argument("--to", dest="to_season", required=True, metavar="SEASON",
                         help="the next season (id or name)")
        if name == "confirm":
            cmd.add_argument("--subscriber", action="append", metavar="N", default=[],
                             help="confirm only this customer number (repeat for several); default: all")
        else:
            _plan_options(cmd, dry_flag=name == "run")
        cmd.set_defaults(run=cmd_confirm if name == "confirm" else cmd_run, action_name=name)


def _plan_options(cmd: argparse.ArgumentParser, *, dry_flag: bool) -> None:
    if dry_flag:
        cmd.add_argument("--dry-run", action="store_true", help="show the result, write nothing (= plan)")
    cmd.add_argument("--product", action="append", default=[], metavar="OLD=NEW", type=_pair,
                     help="map an old product to a new one by id (NEW empty: no successor); default: same "
                          "name, else same kind and position")
    cmd.add_argument("--renewal-until", type=_date, metavar="YYYY-MM-DD",
                     help="the renewal deadline: seats are held until the end of this day (default: 6 weeks)")
    cmd.add_argument("--cancel-deadline", type=_date, metavar="YYYY-MM-DD",
                     help="cancellations recorded after the end of this day do not count")
    cmd.add_argument("--chunk", type=int, default=CHUNK, metavar="N",
                     help=f"subscriptions stored per transaction (default {CHUNK})")


def _pair(text: str) -> ProductPairIn:
    from core.subscriptions.rollover_map import ProductPairIn

    old, sep, new = text.partition("=")
    if not sep or not old.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not OLD=NEW (product ids)")
    return ProductPairIn(from_product_id=old.strip(), to_product_id=new.strip() or None)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _end_of(day: dt.date | None) -> dt.datetime | None:
    return None if day is None else dt.datetime.combine(day, dt.time(23, 59, 59), LOCAL_TZ)


def cmd_run(args: argparse.Namespace) -> int:
    from core.base.clock import utcnow
    from core.subscriptions import rollover_run
    from core.subscriptions.rollover_map import MappingIn
    from hub.app import open_hub

    if args.chunk < 1:
        raise ValueError("--chunk must be at least 1")
    db = open_hub(args.data)
    try:
        seasons = _seasons(db, args)
        out = rollover_run.run(db, *seasons, utcnow(), mapping=MappingIn(products=args.product) if args.product
                               else None, renewal_until=_end_of(args.renewal_until),
                               cancel_deadline=_end_of(args.cancel_deadline),
                               dry_run=args.action_name == "plan" or args.dry_run, progress=ProgressBar(),
                               chunk=args.chunk)
    finally:
        db.close()
    _print_result(out)
    return 0


def cmd_confirm(args: argparse.Namespace) -> int:
    from core.base.clock import utcnow
    from core.base.money import format_eur
    from core.base.node import this_node
    from core.cards import cards
    from core.subscriptions import rollover_run
    from hub.app import open_hub
    from hub.services import rollover_confirm

    db = open_hub(args.data)
    try:
        found = rollover_run.find(db, *_seasons(db, args))
        if found is None:
            raise ValueError("no rollover of these seasons yet: `tessera hub rollover run` first")
        signer = cards.load_signer(db, args.data)
        out = rollover_confirm.confirm(db, this_node(db), signer, found["id"], utcnow(),
                                       customer_numbers=args.subscriber or None, progress=ProgressBar())
        revenue = db.execute("SELECT coalesce(sum(o.total_cents), 0) AS c FROM orders o WHERE o.id IN "
                             "(SELECT DISTINCT order_id FROM rollover_items WHERE run_id = ? AND state = 'confirmed')",
                             (found["id"],)).fetchone()["c"]
    finally:
        db.close()
    _print_result(out)
    print(f"orders of the rollover so far: {format_eur(revenue)}")
    return 0


def _seasons(db, args: argparse.Namespace) -> tuple[str, str]:
    from core.subscriptions import rollover_map

    return (rollover_map.season_by_name_or_id(db, args.from_season, "--from"),
            rollover_map.season_by_name_or_id(db, args.to_season, "--to"))


def _print_result(out: dict) -> None:
    counts = out["counts"]
    head = "dry run, nothing written: " if out["dry_run"] else ""
    print(f"{head}{counts['kept']} kept, {counts['moved']} moved to another seat, {counts['paused']} paused "
          f"(seat held), {counts['listed']} listed, {counts['left_out']} left out (cancelled)")
    if not out["dry_run"]:
        states = out["states"]
        print(f"run {out['run']['id']}: {out['run']['state']}; held until {out['run']['renewal_until']}; "
              f"{states['confirmed']} confirmed, {states['held']} held, {states['failed']} failed")
    for reason, items in out["listed"].items():
        print(f"listed: {REASON_TEXT[reason]} ({len(items)})")
        for item in items:
            print(f"  {item['number']}  {item['customer']}  {item['detail']}".rstrip())
