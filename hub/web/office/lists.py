"""The office app's list screens (customers, orders) and their detail pages.

One machinery for every list: a screen names its columns (key, label, numeric) and a service
function that returns a `office_lists.Page` for (filter text, sort key, page, page size); this
module turns the query string into those arguments, renders `list.html` with sort links, page
links, the filter box and a CSV link, and answers the same rows as CSV. The service decides
which sort keys exist (a key it does not know gives its default order), so nothing the browser
sends reaches SQL here. Every page needs a session (`staff_only`): without one, the login page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from core.base.clock import LOCAL_TZ, parse_iso
from core.base.errors import NotFound
from hub.exporters.csv_export import inert
from hub.services import office_lists, staff
from hub.web.api import DB
from hub.web.office import order_money, views
from hub.web.office.money_text import TEXT as MONEY_TEXT
from hub.web.office.text import TEXT

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Fetch = Callable[[web.Request, int, int], office_lists.Page]
Cells = Callable[[dict, Callable[[int], str], dict], list[str]]


def staff_only(handler: Callable[[web.Request, staff.Session], Awaitable[web.StreamResponse]]) -> Handler:
    """A page for logged-in staff only: without a (live) session, the login page, as `/office/`."""
    async def page(request: web.Request) -> web.StreamResponse:
        me = await views.current(request)
        if me is None:
            raise views._to_login(request)
        return await handler(request, me)
    page.__doc__ = handler.__doc__
    return page


@dataclass(frozen=True)
class Screen:
    """One list screen: its address, title, columns (sort key, label key, numeric), how to
    fetch a page, how a row becomes cells and where a row leads."""

    path: str
    title: str
    columns: tuple[tuple[str, str, bool], ...]
    fetch: Fetch
    cells: Cells
    filters: tuple[str, ...] = ("q",)
    states: tuple[str, ...] = ()  # the choices of the `state` filter (label keys `f_<state>`), if any


def _int(value: str | None, default: int) -> int:
    try:
        return int(value or default)
    except ValueError:
        return default


def _query(request: web.Request, screen: Screen, **change: object) -> str:
    """This list's query string with *change* applied (empty values left out)."""
    keep = {k: request.query.get(k, "") for k in (*screen.filters, "sort", "size")}
    keep.update({k: str(v) for k, v in change.items()})
    return urlencode({k: v for k, v in keep.items() if v not in ("", None)})


def _plain_euros(lang: str) -> Callable[[int], str]:
    """Cents as a plain number for a spreadsheet: 1234,50 (de) or 1234.50 (en)."""
    return lambda cents: f"{cents / 100:.2f}".replace(".", "," if lang == "de" else ".")


async def _show(request: web.Request, me: staff.Session, screen: Screen) -> web.Response:
    lang = views._lang(request)
    size = min(_int(request.query.get("size"), office_lists.PAGE_SIZE), office_lists.MAX_PAGE_SIZE)
    found = screen.fetch(request, _int(request.query.get("page"), 1), size)
    rows = [(row["id"], screen.cells(row, views._euros(lang), TEXT[lang])) for row in found.rows]
    return views.render(request, "list.html", me=me, csrf=me.csrf, screen=screen, page=found, rows=rows,
                        link=lambda **change: _query(request, screen, **change), t_title=TEXT[lang][screen.title],
                        channels=office_lists.CHANNELS, query=request.query)


# A cell a spreadsheet shows as text, never runs as a formula (a customer named `=HYPERLINK(...)`
# typed into the shop): the reports' rule (`hub/exporters/csv_export.inert`), one rule for every CSV.
_inert = inert


async def _csv(request: web.Request, me: staff.Session, screen: Screen) -> web.Response:
    """All rows of the filter and sort (up to CSV_CAP) as CSV: UTF-8 with a BOM, so that Excel
    reads the umlauts; `;` between fields in German (what a German Excel expects), `,` in English."""
    lang = views._lang(request)
    found = screen.fetch(request, 1, office_lists.CSV_CAP)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";" if lang == "de" else ",", lineterminator="\r\n")
    writer.writerow([TEXT[lang][label] for _, label, _ in screen.columns])
    writer.writerows([_inert(cell) for cell in screen.cells(row, _plain_euros(lang), TEXT[lang])]
                     for row in found.rows)
    name = screen.path.rsplit("/", 1)[-1]
    return web.Response(body=("\ufeff" + out.getvalue()).encode("utf-8"), headers={
        **views.HEADERS, "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="tessera-{name}.csv"'})


# --- customers ------------------------------------------------------------------------------------------


def _customer_page(request: web.Request, page: int, size: int) -> office_lists.Page:
    return office_lists.customers(request.app[DB], request.query.get("q", ""), request.query.get("sort"),
                                  page, size)


CUSTOMERS = Screen("/office/customers", "customers",
                   (("number", "number", False), ("name", "name", False), ("town", "town", False),
                    ("email", "email", False)),
                   _customer_page, lambda r, euros, t: [r["number"], r["name"], r["town"], r["email"]])


def _order_page(request: web.Request, page: int, size: int) -> office_lists.Page:
    return office_lists.orders(request.app[DB], request.query.get("q", ""), request.query.get("channel"),
                               request.query.get("sort"), page, size)


def _order_cells(row: dict, euros: Callable[[int], str], t: dict) -> list[str]:
    return [row["number"], views._when(row["created_at"]), t["ch_" + row["channel"]], row["customer"],
            euros(row["total_cents"]), t["st_" + row["state"]]]


ORDERS = Screen("/office/orders", "orders",
                (("number", "number", False), ("date", "date", False), ("channel", "channel", False),
                 ("customer", "customer", False), ("total", "total", True), ("state", "state", False)),
                _order_page, _order_cells, filters=("q", "channel"))


# --- detail pages ---------------------------------------------------------------------------------------


@staff_only
async def customer_page(request: web.Request, me: staff.Session) -> web.Response:
    """One customer with its orders and cards."""
    try:
        customer = office_lists.customer_detail(request.app[DB], request.match_info["id"])
    except NotFound:
        raise web.HTTPNotFound(text=TEXT[views._lang(request)]["not_found"]) from None
    return views.render(request, "customer.html", me=me, csrf=me.csrf, c=customer,
                        euros=views._euros(views._lang(request)), when=views._when, day=_day)


def _day(moment: str) -> str:
    """A card's validity bound as the local calendar day (stored as UTC instants)."""
    return parse_iso(moment).astimezone(LOCAL_TZ).strftime("%d.%m.%Y")


@staff_only
async def order_page(request: web.Request, me: staff.Session) -> web.Response:
    """One order with its lines and payments, its payment state, invoices and SEPA debits;
    `?done=` says what a money button just did."""
    return await render_order(request, me, request.match_info["id"], note=order_money.note(request))


async def render_order(request: web.Request, me: staff.Session, order_id: str, *, error: str | None = None,
                       note: str = "", status: int = 200) -> web.Response:
    """The order page (the money screens show it again with a refusal in *error*)."""
    try:
        order = office_lists.order_detail(request.app[DB], order_id)
    except NotFound:
        raise web.HTTPNotFound(text=TEXT[views._lang(request)]["not_found"]) from None
    lang = views._lang(request)
    return views.render(request, "order.html", status, me=me, csrf=me.csrf, o=order, euros=views._euros(lang),
                        when=views._when, money=await order_money.read(request, me, order), m=MONEY_TEXT[lang],
                        day=order_money.day, money_error=error, money_note=note)


def install(app: web.Application) -> None:
    """Add the list screens, their CSV downloads and detail pages."""
    for screen, detail in ((CUSTOMERS, customer_page), (ORDERS, order_page)):
        app.router.add_get(screen.path, staff_only(lambda r, me, s=screen: _show(r, me, s)))
        app.router.add_get(screen.path + ".csv", staff_only(lambda r, me, s=screen: _csv(r, me, s)))
        app.router.add_get(screen.path + "/{id}", detail)
