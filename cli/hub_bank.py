"""`tessera hub bank import FILE`: read a camt.053 bank statement into the hub and match its
bookings. The work is core/payments/bank.py (the same as POST /api/v1/bank-statements)."""

from __future__ import annotations

import argparse
from pathlib import Path

IMPORT_HELP = """\
Import a camt.053 bank statement (001.02 to 001.13, as the bank's portal gives it). Each booked
transaction is stored once (by the account and the bank's reference: importing a file again adds
nothing) and matched: credits by Kassenzeichen, invoice number, the end-to-end id of a submitted
SEPA debit (then collected) or a unique open amount, and recorded as transfer payments; debits
carrying one of our end-to-end ids are returned SEPA debits (reason and fee from the file).
What does not match waits in the office's unmatched list (GET /api/v1/bank-entries?state=unmatched).
A file that is not a camt.053 statement is one error line and stores nothing."""


def register(cmds: argparse._SubParsersAction) -> None:
    area = cmds.add_parser("bank", help="bank statements: import camt.053",
                           description="Bank statements (camt.053) and their matching.")
    actions = area.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="import a camt.053 statement file and match its bookings",
                             description=IMPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("file", type=Path, metavar="FILE", help="the camt.053 XML file")
    imp.add_argument("--data", required=True, type=Path, metavar="DIR", help="hub data folder")
    imp.set_defaults(run=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from core.base.clock import utcnow
    from core.base.node import this_node
    from core.payments import bank, camt
    from hub.app import open_hub

    if not args.file.is_file():
        raise ValueError(f"{args.file}: no such file")
    if args.file.stat().st_size > camt.MAX_FILE_BYTES:
        raise ValueError(f"{args.file}: larger than {camt.MAX_FILE_BYTES // (1024 * 1024)} MiB, not a statement")
    raw = args.file.read_bytes()
    db = open_hub(args.data)
    try:
        done = bank.import_statement(db, raw, this_node(db)["id"], utcnow(), operator="cli")
    finally:
        db.close()
    if done["duplicate"]:
        print(f"{args.file}: nothing new ({done['known']} bookings imported before)")
        return 0
    print(f"{args.file}: {done['new']} bookings ({done['known']} known before): {done['matched']} matched, "
          f"{done['returned']} returned debits, {done['unmatched']} unmatched")
    return 0
