"""Filter, sort, pages and CSV for the office's short lists that come whole from an API operation.

Why not `lists.Screen`: operators and API tokens are read through the API's own list operations
(`GET /operators`, `GET /tokens`, via `api_call`), which return every row at once and have no
sort or filter of their own; the lists are short (people at the tills, integrations), so the
screen arranges them in memory. The sort a browser asks for is only a key from a fixed list,
as on every office list; anything else gives the default order.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from hub.web.office import lists, views
from hub.web.office.text import TEXT

PAGE_SIZE = 25


@dataclass(frozen=True)
class Arranged:
    """One page of a filtered, sorted list, with what the page links need."""

    rows: list[dict]
    total: int
    page: int
    pages: int
    sort: str
    desc: bool
    q: str

    def link(self, **change: object) -> str:
        """This list's query string with *change* applied (empty values left out)."""
        keep: dict[str, object] = {"q": self.q, "sort": ("-" if self.desc else "") + self.sort, "page": self.page}
        keep.update(change)
        return urlencode({k: v for k, v in keep.items() if v not in ("", None, 1)})


def arrange(request: web.Request, rows: list[dict], sorts: dict[str, Callable[[dict], object]], default: str,
            text: Callable[[dict], str], size: int = PAGE_SIZE) -> Arranged:
    """*rows* filtered by `?q=` (case-insensitive, in *text* of a row), sorted by `?sort=` (a key of
    *sorts*, `-` for descending, else *default*) and cut to the page `?page=`."""
    q = request.query.get("q", "")[:200]
    asked = request.query.get("sort", "")
    key, desc = (asked.removeprefix("-"), asked.startswith("-")) if asked.removeprefix("-") in sorts \
        else (default.removeprefix("-"), default.startswith("-"))
    found = [r for r in rows if q.casefold() in text(r).casefold()]
    found.sort(key=sorts[key], reverse=desc)
    pages = max(1, -(-len(found) // size))
    raw = request.query.get("page", "1")
    page = min(int(raw), pages) if raw.isdigit() and len(raw) < 9 and int(raw) > 0 else 1
    return Arranged(found[(page - 1) * size:page * size], len(found), page, pages, key, desc, q)


def csv_response(request: web.Request, name: str, header: list[str], lines: list[list[str]]) -> web.Response:
    """Rows as CSV the way the other office lists write it: UTF-8 with a BOM, `;` in German,
    cells that a spreadsheet would run as a formula made inert (`lists._inert`)."""
    lang = views._lang(request)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";" if lang == "de" else ",", lineterminator="\r\n")
    writer.writerow([TEXT[lang][label] for label in header])
    writer.writerows([lists._inert(cell) for cell in line] for line in lines)
    return web.Response(body=("\ufeff" + out.getvalue()).encode("utf-8"), headers={
        **views.HEADERS, "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="tessera-{name}.csv"'})
