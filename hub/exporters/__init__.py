"""Writers for the reports (S14, `core/reports/`): CSV (German and plain), XLSX and PDF.

`write(result, fmt, out, lang=..., total=...)` writes a report's rows to a binary file object as
they come from the cursor: CSV and XLSX never hold the whole list in memory (XLSX in xlsxwriter's
constant-memory mode, row after row), which is what lets a 100,000-row export stay small.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import BinaryIO

from core.reports import registry
from core.reports.registry import Query, Report, Result

FORMATS = {"csv": "text/csv; charset=utf-8", "csv-de": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "pdf": "application/pdf"}
SUFFIX = {"csv": "csv", "csv-de": "csv", "xlsx": "xlsx", "pdf": "pdf"}


def write(result: Result, fmt: str, out: BinaryIO, *, lang: str = "de", total: int | None = None,
          filters: str = "") -> None:
    """Write *result* as *fmt* (one of FORMATS) to *out*. *total* (the row count) is needed by
    the PDF for "page n of m"; *filters* is printed in its header."""
    if fmt in ("csv", "csv-de"):
        from hub.exporters import csv_export

        csv_export.write(result, out, german=fmt == "csv-de", lang=lang)
    elif fmt == "xlsx":
        from hub.exporters import xlsx_export

        xlsx_export.write(result, out, lang=lang)
    elif fmt == "pdf":
        from hub.exporters import pdf_export

        pdf_export.write(result, out, lang=lang, total=total or 0, filters=filters)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def file_name(report_name: str, fmt: str) -> str:
    return f"tessera-{report_name}.{SUFFIX[fmt]}"


def export(db: sqlite3.Connection, report: Report, query: Query, fmt: str, out: BinaryIO, *, personal: bool,
           lang: str = "de", filters: str = "") -> int:
    """Run *report* and write it as *fmt* to *out*, counting and reading in one snapshot (a
    read transaction) so the PDF's page count fits its rows; the number of rows."""
    own = not db.in_transaction
    if own:
        db.execute("BEGIN")
    try:
        total = registry.count(db, report, query, personal=personal) if fmt == "pdf" else None
        result = registry.run(db, report, query, personal=personal)
        counted = _Counted(result.rows)
        result.rows = counted
        write(result, fmt, out, lang=lang, total=total, filters=filters)
        return counted.n
    finally:
        if own:
            db.execute("COMMIT")


class _Counted:
    """Rows passed through, counted."""

    def __init__(self, rows: Iterator[tuple]) -> None:
        self.rows, self.n = rows, 0

    def __iter__(self) -> Iterator[tuple]:
        for row in self.rows:
            self.n += 1
            yield row
