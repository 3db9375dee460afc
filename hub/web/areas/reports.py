"""Reports over the API (S14): the registry, and one report as JSON rows or as a file (German or
plain CSV, XLSX, PDF), sorted by any of its columns and filtered.

Who may read what (decided here, documented in docs/reports.md):
- admin and office tokens (and office logins, through `api_call`) get every report with every
  column: they are the roles that read customers (`GET /customers`);
- an agency token gets the reports without the columns that are personal data (names, customer
  numbers, contact, town): it sells for the organizer and may see stock and sales, never whom the
  organizer's customers are; a report that is about one person (`customer`) is a 403, and a sort
  or filter by a personal column is refused like an unknown column (it would reveal the data
  one condition at a time);
- a shop token gets 403: a storefront has no business with the box office's lists.

Files are written in a thread on a connection of their own (a 100,000-row XLSX takes seconds and
must not stall the hub's event loop) into a temporary file that is streamed out in chunks.
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any, Literal

import msgspec

from core.reports import lists, registry  # noqa: F401 (lists: the S14 lists register themselves on import)
from core.reports.registry import Query
from hub import exporters
from hub.services import connections
from hub.web.api import Api, Ctx, Download, Param
from hub.web.problems import ApiError

READERS = ("admin", "office", "agency")
CUSTOMER_READERS = ("admin", "office")  # the roles of GET /customers (routes.py: read=STAFF)
MAX_PAGE = 1000  # rows of one JSON page
MAX_ROWS = 1_000_000  # rows of one file
SPOOL = 8 * 1024 * 1024  # a file stays in memory up to this size, then goes to disk


class ColumnOut(msgspec.Struct, kw_only=True):
    name: str
    kind: Literal["text", "int", "money", "date", "datetime"]
    title_de: str
    title_en: str
    personal: bool


class ReportOut(msgspec.Struct, kw_only=True):
    name: str
    title_de: str
    title_en: str
    about_de: str
    about_en: str
    columns: list[ColumnOut]
    default_sort: str
    required_filters: list[str]
    formats: list[str]


class ReportList(msgspec.Struct, kw_only=True):
    items: list[ReportOut]


class ReportPage(msgspec.Struct, kw_only=True):
    report: str
    columns: list[str]
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int
    sort: str


def personal(ctx: Ctx) -> bool:
    """Whether the caller may see customer data."""
    return ctx.token is not None and ctx.token["role"] in CUSTOMER_READERS


def _describe(report: registry.Report, with_personal: bool) -> dict:
    return {"name": report.name, "title_de": report.title_de, "title_en": report.title_en,
            "about_de": report.about_de, "about_en": report.about_en,
            "columns": [{"name": c.name, "kind": c.kind, "title_de": c.de, "title_en": c.en, "personal": c.personal}
                        for c in report.visible(with_personal)],
            "default_sort": report.default_sort, "required_filters": list(report.required),
            "formats": ["json", *exporters.FORMATS]}


def list_reports(ctx: Ctx):
    mine = personal(ctx)
    return {"items": [_describe(r, mine) for r in registry.all_reports() if mine or not r.personal_report]}


def _report(ctx: Ctx) -> tuple[registry.Report, Query, bool]:
    """The report named in the path, the caller's query (checked) and whether it sees customer data."""
    report = registry.get(ctx.path("name"))
    mine = personal(ctx)
    if report.personal_report and not mine:
        raise ApiError(403, "forbidden", "Not allowed",
                       f"the report {report.name} is about one customer; a token with role {ctx.token['role']} "
                       "may not read customer data")
    q = ctx.query
    query = Query(sort=q.get("sort"), conditions=registry.parse_filter(q.get("filter", "")),
                  limit=q.get("limit"), offset=q.get("offset", 0))
    registry.check(report, query, personal=mine)
    return report, query, mine


def get_report(ctx: Ctx):
    report, query, mine = _report(ctx)
    fmt = ctx.query.get("format", "json")
    if fmt == "json":
        return _page(ctx, report, query, mine)
    if fmt not in exporters.FORMATS:
        raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                       f"format is one of json, {', '.join(exporters.FORMATS)}; not {fmt!r}", field="format")
    return _file(ctx, report, query, mine, fmt)


def _page(ctx: Ctx, report: registry.Report, query: Query, mine: bool) -> dict:
    limit = query.limit or 100
    if limit > MAX_PAGE:
        raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                       f"a JSON page has at most {MAX_PAGE} rows (use offset, or a file format)", field="limit")
    query = Query(query.sort, query.conditions, limit, query.offset)
    result = registry.run(ctx.db, report, query, personal=mine)
    names = [c.name for c in result.columns]
    items = [dict(zip(names, row, strict=True)) for row in result.rows]
    return {"report": report.name, "columns": names, "items": items,
            "total": registry.count(ctx.db, report, query, personal=mine), "limit": limit, "offset": query.offset,
            "sort": query.sort or report.default_sort}


def _write_file(open_db: connections.Opener, report: registry.Report, query: Query, mine: bool, fmt: str, lang: str,
                filters: str) -> Any:
    """In a worker thread: the file, on a read connection of its own."""
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115 (closed by the answer that sends it)
    db = open_db()
    try:
        exporters.export(db, report, query, fmt, out, personal=mine, lang=lang, filters=filters)
    except BaseException:
        out.close()
        raise
    finally:
        db.close()
    return out


async def _file(ctx: Ctx, report: registry.Report, query: Query, mine: bool, fmt: str):
    if query.limit is None:
        query = Query(query.sort, query.conditions, MAX_ROWS, query.offset)
    lang = ctx.query.get("lang", "de")
    if lang not in ("de", "en"):
        raise ApiError(400, "invalid-parameter", "Invalid query parameter", "lang is de or en", field="lang")
    out = await asyncio.to_thread(_write_file, connections.opener(ctx.db, migrate=False), report, query, mine, fmt,
                                  lang, ctx.query.get("filter", ""))
    return Download(out, exporters.FORMATS[fmt], exporters.file_name(report.name, fmt))


def register(api: Api) -> None:
    """Installs the report operations."""
    tag = "Reports"
    api.add("GET", "/reports", list_reports, summary="List the reports", tag=tag, roles=READERS,
            response=ReportList, cacheable=False,
            description="Every report with its columns (name, type, German and English title, whether it is "
                        "personal data), default sort and the filters it needs. An agency token sees the reports "
                        "without personal columns and not the one-customer report.")
    api.add("GET", "/reports/{name}", get_report, summary="Read a report", tag=tag, roles=READERS,
            response=ReportPage, cacheable=False,
            also_media=tuple(sorted(set(exporters.FORMATS.values()))),
            query=[Param("format", "str", "json (default), csv (comma, ISO), csv-de (semicolon, decimal comma, "
                                          "BOM), xlsx or pdf", max_length=10),
                   Param("sort", "str", "a column of the report; prefix '-' for descending", max_length=40),
                   Param("filter", "str", "conditions separated by ';': column=value (text ignores case), "
                                          "column~text (contains), column>=value, column<=value; money as 12,50 "
                                          "or 12.50, dates as 2026-10-01 or 01.10.2026", max_length=2000),
                   Param("limit", "int", "rows (JSON: default 100, at most 1000; files: all)", minimum=1,
                         maximum=MAX_ROWS),
                   Param("offset", "int", "rows to skip", minimum=0, maximum=10_000_000),
                   Param("lang", "str", "language of the column titles in files: de (default) or en",
                         max_length=2)],
            description="Sorted by any column (`sort`), filtered by any (`filter`). Unknown report: 404; unknown "
                        "column, a malformed filter or a value of the wrong type: 422, nothing read. Files come "
                        "as attachments: German CSV as German Excel opens it, plain CSV for programs, XLSX with "
                        "a frozen header, autofilter, euro and date formats, PDF for printing (A4 landscape).")
