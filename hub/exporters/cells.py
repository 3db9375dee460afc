"""A report cell as people read it: money `1.234,50 €` / `EUR 1,234.50`, a date `01.10.2026` /
`2026-10-01`, a moment in the box office's local time. One place for the office screen, the PDF
and the German CSV, so the three never disagree."""

from __future__ import annotations

import datetime as dt

from core.base.clock import LOCAL_TZ, parse_iso
from core.payments.invoice_pdf import money
from core.reports.registry import Column


def local(value: str) -> dt.datetime:
    """A stored UTC timestamp as a naive local datetime (what a spreadsheet shows)."""
    return parse_iso(value).astimezone(LOCAL_TZ).replace(tzinfo=None)


def shown(col: Column, value: object, lang: str) -> str:
    """*value* of *col* for reading: on the office screen and in the PDF."""
    if value is None or value == "":
        return ""
    if col.kind == "money":
        return money(int(value), lang)
    if col.kind == "date":
        day = dt.date.fromisoformat(str(value)[:10])
        return f"{day:%d.%m.%Y}" if lang == "de" else day.isoformat()
    if col.kind == "datetime":
        moment = local(str(value))
        return f"{moment:%d.%m.%Y %H:%M}" if lang == "de" else f"{moment:%Y-%m-%d %H:%M}"
    return str(value)
