"""`tessera hub datev export`: the DATEV Buchungsstapel of a date range as a file.

The work is core/payments/datev.py (the same as GET /api/v1/exports/datev); here are the
arguments. The accounts and the tax advisor's numbers come from hub.toml `[datev]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

EXPORT_HELP = """\
Write the DATEV-Format Buchungsstapel (EXTF, format version 13) of the paid payments from
--from to --to (days at the venues, within one fiscal year) to FILE: Windows-1252, CRLF,
decimal comma, one line per payment and VAT code (money account against revenue account,
Belegfeld 1 the order number). hub.toml [datev] must give consultant_number and
client_number; accounts default to SKR03 (see docs/money.md). FILE is replaced atomically."""


def _day(text: str) -> dt.date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def register(cmds: argparse._SubParsersAction) -> None:
    area = cmds.add_parser("datev", help="accounting export for the tax advisor (DATEV)",
                           description="DATEV exports of the hub's payments.")
    actions = area.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write a DATEV Buchungsstapel of a date range",
                                description=EXPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    export.add_argument("--from", dest="start", required=True, type=_day, metavar="DAY", help="first day, YYYY-MM-DD")
    export.add_argument("--to", dest="end", required=True, type=_day, metavar="DAY", help="last day, YYYY-MM-DD")
    export.add_argument("--out", required=True, type=Path, metavar="FILE", help="file to write")
    export.set_defaults(run=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from core.base.clock import utcnow
    from core.payments import datev
    from hub.app import open_hub, read_settings
    from hub.web.areas.accounting import SECTION

    config = read_settings(args.data).get(SECTION)
    db = open_hub(args.data)
    try:
        body = datev.export(db, config, args.start, args.end, utcnow(), exported_by="CLI")
    finally:
        db.close()
    partial = args.out.with_name(args.out.name + ".part")
    partial.write_bytes(body)
    os.replace(partial, args.out)
    lines = body.count(b"\r\n") - 2
    print(f"{args.out}: DATEV batch {args.start} to {args.end}, {lines} bookings")
    return 0
