"""The office app's report screens (S14): `/office/reports` lists the reports, `/office/reports/{name}`
shows one as a table with sort links on every column heading, up to three filter rows (column,
condition, value) and download links for German CSV, plain CSV, XLSX and PDF.

Views only, and through the API: the page and the files come from `GET /api/v1/reports/{name}`
via `api_call` with the staff member's role (both office roles read customers, so they see every
column), so the office sorts, filters and refuses exactly as the API does; a refusal (an unknown
column, a value of the wrong type, the customer report without its customer) is shown above the
table in the page's language. Nothing here reaches SQL: the column names a browser sends are only
passed on, and the registry accepts only its own.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from hub import exporters
from hub.exporters.cells import shown
from hub.services import staff
from hub.web.api import send_file
from hub.web.office import api_call, views
from hub.web.office.lists import staff_only
from hub.web.office.reports_text import TEXT

PATH = "/office/reports"
PAGE = 50
FILTER_ROWS = 3
OPS = (("=", "op_eq"), ("~", "op_has"), (">=", "op_ge"), ("<=", "op_le"))
KEEP = ("sort", *(f"{k}{i}" for i in range(1, FILTER_ROWS + 1) for k in "cov"))


def _text(request: web.Request) -> dict[str, str]:
    return TEXT[views._lang(request)]


def _filter(request: web.Request) -> str:
    """The filter rows of the form (`c1`, `o1`, `v1`, ...) as the API's `filter` text."""
    parts = []
    for i in range(1, FILTER_ROWS + 1):
        column, op, value = (request.query.get(f"{k}{i}", "")[:200] for k in "cov")
        if column and value:
            parts.append(f"{column}{op if op in dict(OPS) else '='}{value.replace(';', chr(92) + ';')}")
    return ";".join(parts)


def _query(request: web.Request, **change: object) -> str:
    keep = {k: request.query.get(k, "") for k in KEEP}
    keep.update({k: str(v) for k, v in change.items()})
    return urlencode({k: v for k, v in keep.items() if v not in ("", None)})


async def _described(request: web.Request, me: staff.Session, name: str) -> dict:
    found = await api_call.call(request, me, "GET", "/reports")
    for report in found["items"]:
        if report["name"] == name:
            return report
    raise web.HTTPNotFound(text=TEXT[views._lang(request)]["title"])


@staff_only
async def index(request: web.Request, me: staff.Session) -> web.Response:
    """Every report with what it lists."""
    found = await api_call.call(request, me, "GET", "/reports")
    return views.render(request, "reports.html", me=me, csrf=me.csrf, r=_text(request), reports=found["items"])


def _page_number(raw: str | None) -> int:
    return int(raw) if raw and raw.isdigit() and 0 < int(raw) < 100_000 else 1


@staff_only
async def report_page(request: web.Request, me: staff.Session) -> web.Response:
    """One report: a page of rows for the sort and filters in the query string."""
    lang, r = views._lang(request), _text(request)
    report = await _described(request, me, request.match_info["name"])
    page = _page_number(request.query.get("page"))
    query = {"filter": _filter(request), "sort": request.query.get("sort", "")[:40], "limit": PAGE,
             "offset": (page - 1) * PAGE}
    error, found, status = None, None, 200
    try:
        found = await api_call.call(request, me, "GET", f"/reports/{report['name']}", query=query)
    except api_call.Refused as exc:
        error, status = r["refused"].format(a=exc.in_lang(lang)), exc.status
    columns = [_Column(c, lang) for c in report["columns"]]
    rows = [[shown(col, item[col.name], lang) for col in columns] for item in (found or {}).get("items", [])]
    sort = (found or {}).get("sort") or request.query.get("sort", "") or report["default_sort"]
    total = (found or {}).get("total", 0)
    return views.render(request, "report.html", status, me=me, csrf=me.csrf, r=r, report=report, columns=columns,
                        rows=rows, total=total, page=page, pages=max(1, -(-total // PAGE)), error=error,
                        sort=sort.removeprefix("-"), desc=sort.startswith("-"), ops=OPS, rows_n=FILTER_ROWS,
                        query=request.query, link=lambda **change: _query(request, **change),
                        title=report["title_de" if lang == "de" else "title_en"])


class _Column:
    """A column as the page and `cells.shown` need it."""

    def __init__(self, described: dict, lang: str) -> None:
        self.name, self.kind = described["name"], described["kind"]
        self.title = described["title_de" if lang == "de" else "title_en"]
        self.numeric = self.kind in ("int", "money")


@staff_only
async def report_file(request: web.Request, me: staff.Session) -> web.StreamResponse:
    """`?format=`: the whole report (all rows of the filters, in the sort) as a file."""
    fmt = request.query.get("format", "")
    name = request.match_info["name"]
    if fmt not in exporters.FORMATS:
        raise web.HTTPBadRequest(text="format: " + ", ".join(exporters.FORMATS))
    query = {"format": fmt, "filter": _filter(request), "sort": request.query.get("sort", "")[:40],
             "lang": views._lang(request)}
    try:
        download = await api_call.call(request, me, "GET", f"/reports/{name}", query=query)
    except api_call.Refused as exc:  # the page says why (it asks the API again with the same filters)
        if exc.status == 422:
            raise web.HTTPSeeOther(f"{PATH}/{name}?{_query(request)}") from None
        raise web.HTTPNotFound(text=exc.in_lang(views._lang(request))) from None
    return await send_file(request, 200, download, views.HEADERS)


def install(app: web.Application) -> None:
    """The report list, one report, and its files."""
    app.router.add_get(PATH, index)
    app.router.add_get(PATH + "/{name}", report_page)
    app.router.add_get(PATH + "/{name}/file", report_file)
