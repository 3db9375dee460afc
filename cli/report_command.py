"""`tessera report NAME`: an S14 list from the hub's data folder as CSV, XLSX or PDF.

The same registry, sorts, filters and writers as `GET /api/v1/reports/{name}` (core/reports,
hub/exporters). The command runs on the hub machine against its database (read only, beside a
running hub: SQLite's WAL lets both read), with all columns: whoever can read the data folder can
read the customers anyway.

`python -m cli.report_command` is the same command without the rest of `tessera` loaded (the
benchmark measures the report's own memory that way; `tessera report` adds the other commands'
imports).
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

FORMATS = ("csv", "csv-de", "xlsx", "pdf")
HELP = """\
Write the report NAME (`tessera report --list` names them) to FILE, or to standard output.

Formats: csv (comma, decimal point, ISO dates, UTF-8), csv-de (semicolon, decimal comma, dates
01.10.2026, UTF-8 with BOM: what a German Excel opens by double-click), xlsx (frozen header,
autofilter, euro and date formats) and pdf (A4 landscape, for printing).

--sort COL sorts by any column of the report (-COL descending). --filter, as often as needed:
  COL=VALUE   equals (text ignores case)        COL~TEXT   contains (text)
  COL>=VALUE  at least / from (numbers, dates)  COL<=VALUE at most / until
Money as 12,50 or 12.50, dates as 2026-10-01 or 01.10.2026; a moment column (starts_at) is
filtered by its local calendar day.

Examples:
  tessera report subscribers --data /var/lib/tessera --format xlsx -o abonnenten.xlsx
  tessera report bookings --data DIR --filter performance~Faust --filter starts_at=2026-11-01 \
      --format pdf -o faust.pdf
  tessera report revenue --data DIR --sort=-revenue_cents   (with `=`: a leading - is no option)
  tessera report customer --data DIR --filter customer_number=KD-2026-000042 --format csv-de"""


def register(areas: argparse._SubParsersAction) -> None:
    cmd = areas.add_parser("report", help="an S14 list (setup, bookings, subscribers, ...) as CSV, XLSX or PDF",
                           description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(cmd)
    cmd.set_defaults(run=run)


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("name", nargs="?", metavar="NAME", help="the report (see --list)")
    cmd.add_argument("--data", type=Path, metavar="DIR", help="hub data folder")
    cmd.add_argument("--format", choices=FORMATS, default="csv-de", help="file format (default csv-de)")
    cmd.add_argument("--sort", metavar="COL", help="column to sort by; -COL for descending")
    cmd.add_argument("--filter", action="append", default=[], metavar="COND", help="COL=VAL, COL~TEXT, COL>=VAL, "
                     "COL<=VAL; repeat for more")
    cmd.add_argument("--lang", choices=("de", "en"), default="de", help="language of the column titles")
    cmd.add_argument("-o", "--out", type=Path, metavar="FILE", help="file to write (default: standard output)")
    cmd.add_argument("--list", action="store_true", help="list the reports and their columns, then stop")


def _list() -> int:
    from core.reports import lists, registry  # noqa: F401 (lists: the S14 lists register themselves)

    for report in registry.all_reports():
        print(f"{report.name:12} {report.title_en} — {report.about_en}")
        print(" " * 13 + "columns: " + ", ".join(c.name for c in report.columns))
    return 0


def _open(data: Path, connect: Any) -> Any:
    """The hub's database: hub.sqlite in *data*, or the PostgreSQL database its hub.toml names
    (`[storage] database`, read here without hub.settings: that loads aiohttp)."""
    database = data / "hub.sqlite"  # hub.app.DB_NAME (not imported: hub.app loads aiohttp)
    if database.is_file():
        return connect(database, migrate=False)
    settings = data / "hub.toml"
    url = tomllib.loads(settings.read_text(encoding="utf-8")).get("storage", {}).get("database") \
        if settings.is_file() else None
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"{data} holds no hub (no hub.sqlite, no database in hub.toml); see tessera hub init")
    from core.base import pg  # psycopg: only for a hub on PostgreSQL

    return pg.connect(url, data_dir=data, migrate=False)


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    if not args.name or not args.data:
        raise ValueError("name a report and the hub's --data DIR (tessera report --list shows the reports)")
    from core.base.storage import connect
    from core.reports import lists, registry  # noqa: F401 (lists: the S14 lists register themselves)
    from hub import exporters

    report = registry.get(args.name)
    query = registry.Query(sort=args.sort, conditions=tuple(registry.parse_condition(f) for f in args.filter))
    registry.check(report, query, personal=True)
    db = _open(args.data, connect)
    try:
        if args.out is None:
            exporters.export(db, report, query, args.format, sys.stdout.buffer, personal=True, lang=args.lang,
                             filters="; ".join(args.filter))
            sys.stdout.buffer.flush()
            return 0
        partial = args.out.with_name(args.out.name + ".part")
        with open(partial, "wb") as out:
            rows = exporters.export(db, report, query, args.format, out, personal=True, lang=args.lang,
                                    filters="; ".join(args.filter))
        os.replace(partial, args.out)
    finally:
        db.close()
    print(f"{args.out}: {report.title_en}, {rows} rows", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tessera report", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except Exception as exc:  # one clear line, as `tessera` does
        print(f"tessera: error: {getattr(exc, 'detail', None) or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
