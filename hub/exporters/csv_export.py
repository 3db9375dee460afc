"""Reports as CSV, in two dialects, written row by row (never the whole file in memory).

German (`csv-de`), as German office tools open it by double-click: UTF-8 with a BOM (so Excel
reads the umlauts), `;` between fields, a decimal comma (`1234,50`, no thousands dots, no
currency sign: a number Excel can add up), dates `01.10.2026`, moments in local time
`01.10.2026 19:30`. Plain (`csv`), for programs: UTF-8 without BOM, `,`, a decimal point, ISO
dates, moments as stored (ISO 8601 UTC). Both CRLF (RFC 4180). Text that a spreadsheet would run
as a formula (a customer named `=HYPERLINK(...)`) is made inert with a leading `'`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import BinaryIO

from core.reports.registry import Column, Result
from hub.exporters.cells import local


def inert(cell: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula: a leading = + - @ tab or
    CR gets a `'` before it."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _german(col: Column) -> Callable[[object], str]:
    if col.kind == "money":
        return lambda v: f"{int(v) / 100:.2f}".replace(".", ",")
    if col.kind == "date":
        return lambda v: f"{v[8:10]}.{v[5:7]}.{v[0:4]}"
    if col.kind == "datetime":
        return lambda v: f"{local(v):%d.%m.%Y %H:%M}"
    if col.kind == "int":
        return str
    return lambda v: inert(str(v))


def _plain(col: Column) -> Callable[[object], str]:
    if col.kind == "money":
        return lambda v: f"{int(v) / 100:.2f}"
    if col.kind in ("int", "date", "datetime"):
        return str
    return lambda v: inert(str(v))


def write(result: Result, out: BinaryIO, *, german: bool, lang: str = "de") -> None:
    """Header (titles in *lang*) and every row of *result* to the binary stream *out*."""
    text = io.TextIOWrapper(out, encoding="utf-8-sig" if german else "utf-8", newline="", write_through=False)
    writer = csv.writer(text, delimiter=";" if german else ",", lineterminator="\r\n")
    writer.writerow([c.title(lang) for c in result.columns])
    cells = [(_german if german else _plain)(c) for c in result.columns]
    for row in result.rows:
        writer.writerow(["" if v is None else f(v) for f, v in zip(cells, row, strict=True)])
    text.flush()
    text.detach()  # the caller's stream stays open
