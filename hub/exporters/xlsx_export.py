"""Reports as XLSX (xlsxwriter in constant-memory mode: each row goes to disk as it is written,
so a 100,000-row list stays within a few megabytes).

What a box office expects when it opens the file: the header row bold and frozen, an autofilter
over every column, money as numbers in a euro format (sums work), dates and moments as real
Excel dates (local time; filters by month work), column widths from the report. Text is always
written as text (`write_string`), never parsed as a formula or number.
"""

from __future__ import annotations

import datetime as dt
from typing import BinaryIO

import xlsxwriter

from core.reports.registry import Result
from hub.exporters.cells import local

MONEY = '#,##0.00 "€"'
DAY = "dd.mm.yyyy"
MOMENT = "dd.mm.yyyy hh:mm"
MAX_TITLE = 31  # Excel's limit for a sheet name


def write(result: Result, out: BinaryIO, *, lang: str = "de") -> None:
    """The report as one sheet, written to *out*. xlsxwriter writes its rows to temporary files
    (constant memory) and zips them into *out* at the end."""
    book = xlsxwriter.Workbook(out, {"constant_memory": True, "strings_to_formulas": False,
                                     "strings_to_numbers": False, "strings_to_urls": False,
                                     "default_date_format": DAY})
    sheet = book.add_worksheet(result.report.title(lang)[:MAX_TITLE].replace("/", "-").replace(":", " "))
    head = book.add_format({"bold": True, "bg_color": "#e8eaed", "bottom": 1})
    formats = {"money": book.add_format({"num_format": MONEY}), "date": book.add_format({"num_format": DAY}),
               "datetime": book.add_format({"num_format": MOMENT})}
    columns = result.columns
    for i, col in enumerate(columns):
        sheet.set_column(i, i, max(col.width, len(col.title(lang)) + 2), formats.get(col.kind))
        sheet.write_string(0, i, col.title(lang), head)
    sheet.freeze_panes(1, 0)
    kinds = [c.kind for c in columns]
    last = 0
    for last, row in enumerate(result.rows, start=1):  # noqa: B007 (last: the row count for the autofilter)
        for i, (kind, value) in enumerate(zip(kinds, row, strict=True)):
            if value is None or value == "":
                continue
            if kind == "money":
                sheet.write_number(last, i, value / 100, formats["money"])
            elif kind == "int":
                sheet.write_number(last, i, value)
            elif kind == "date":
                sheet.write_datetime(last, i, dt.datetime.fromisoformat(value[:10]), formats["date"])
            elif kind == "datetime":
                sheet.write_datetime(last, i, local(value), formats["datetime"])
            else:
                sheet.write_string(last, i, str(value))
    sheet.autofilter(0, 0, max(last, 1), len(columns) - 1)
    book.close()
