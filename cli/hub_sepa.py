"""`tessera hub sepa export`: the pain.008.001.08 file of the due SEPA debits, for the banking
software. The work is core/payments/sepa.py (the same as POST /api/v1/sepa-runs)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

EXPORT_HELP = """\
Write the pain.008.001.08 file (SEPA core direct debit, validated against its XSD) of an
organizer's due debits and mark them submitted; the file is also kept in the hub (GET
/api/v1/sepa-runs/ID/file). Batches per sequence type (FRST, RCUR, OOFF) and collection date.
Without --collection-date each debit collects on the earliest TARGET day the rules allow (one
TARGET day after today, and the pre-notification lead time of 14 days); with it, every debit due
by then collects on that day and debits whose lead time it breaks are held back (listed on
stderr). Nothing due: an error, nothing written."""


def register(cmds: argparse._SubParsersAction) -> None:
    area = cmds.add_parser("sepa", help="SEPA direct debit: export the due debits as pain.008",
                           description="SEPA direct debit (mandates and debits are kept through the API).")
    actions = area.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write the pain.008.001.08 file of the due debits",
                                description=EXPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    export.add_argument("--organizer", metavar="ID",
                        help="the creditor's organizer id (default: the one organizer with a SEPA account)")
    export.add_argument("--collection-date", type=_date, metavar="YYYY-MM-DD",
                        help="collect every debit on this TARGET business day")
    export.add_argument("--out", type=Path, metavar="FILE", help="file to write (default: ./<message id>.xml)")
    export.set_defaults(run=cmd_export)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def cmd_export(args: argparse.Namespace) -> int:
    from core.base.clock import utcnow
    from core.base.money import format_eur
    from core.payments import sepa
    from hub.app import open_hub

    db = open_hub(args.data)
    try:
        organizer = args.organizer or _only_creditor(db)
        if args.out is not None and not args.out.parent.is_dir():
            raise ValueError(f"--out: the folder {args.out.parent} does not exist")
        done = sepa.export(db, organizer, utcnow(), collection_date=args.collection_date)
        out = args.out or Path(f"{done['message_id']}.xml")
        out.write_bytes(sepa.run_file(db, done["id"]))
    finally:
        db.close()
    for held in done["held"]:
        print(f"held back: {held['end_to_end_id']}: {held['reason']}", file=sys.stderr)
    print(f"{out}: {done['debits']} debits, {format_eur(done['total_cents'])}, message {done['message_id']}")
    return 0


def _only_creditor(db) -> str:
    from core.payments import mandates

    rows = mandates.creditor_accounts(db)
    if len(rows) != 1:
        raise ValueError("no organizer has a SEPA creditor account yet (PUT /api/v1/organizers/ID/sepa-account)"
                         if not rows else "several organizers collect by SEPA: name one with --organizer ID")
    return rows[0]["organizer_id"]
