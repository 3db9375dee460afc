"""The office app's Catalog screen (/office/catalog): a read-only overview, editing is the API's.

Five sections, each paged on its own (`?venues=2`): venues, annual-ticket products, subscription
products, seating plans and upcoming performances. Each reads through the API's own GET
operation via `api_call` (so the role rules and the output are the API's, prices included:
a subscription's prices are `GET /subscription-products/{id}/prices`, i.e.
`core.catalog.pricing.price_table`), except upcoming performances, which the API cannot filter
by date: those come from `office_lists.upcoming_performances`. Each section links the API
operation that edits it, in the hub's OpenAPI document; a form is not worth it yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiohttp import web

from core.base.clock import LOCAL_TZ, iso, parse_iso
from hub.services import office_lists, staff
from hub.web.api import DB
from hub.web.office import api_call, views
from hub.web.office.lists import staff_only
from hub.web.office.text import TEXT

PATH = "/office/catalog"
SIZE = 10  # rows per section page
OPENAPI = "/api/v1/openapi.json"
LOOKUP = 200  # names looked up for ids (venues, zones): the API's page maximum


@dataclass(frozen=True)
class Section:
    """One section: its key (also its page parameter), the API list it reads, the edit operation."""

    key: str
    path: str
    edit: str


SECTIONS = (
    Section("venues", "/venues", "PATCH /venues/{id}"),
    Section("annual", "/annual-ticket-products", "PATCH /annual-ticket-products/{id}"),
    Section("subscriptions", "/subscription-products", "PATCH /subscription-products/{id}"),
    Section("plans", "/seating-plans", "PATCH /seating-plans/{id}"),
    Section("performances", "/performances", "PATCH /performances/{id}"),
)


def api_link(operation: str) -> str:
    """The operation's entry in the OpenAPI document (a JSON pointer to its path)."""
    path = ("/api/v1" + operation.split(" ", 1)[1]).replace("~", "~0").replace("/", "~1")
    return f"{OPENAPI}#/paths/{path}"


def _page_no(request: web.Request, key: str) -> int:
    raw = request.query.get(key, "1")
    return min(max(1, int(raw)), 1_000_000) if raw.isdigit() and len(raw) < 9 else 1


async def _listed(request: web.Request, me: staff.Session, path: str, page: int, size: int = SIZE) -> dict:
    """One page of an API list operation, sorted by name."""
    return await api_call.call(request, me, "GET", path, query={"limit": size, "offset": (page - 1) * size,
                                                                "sort": "name"})


async def _names(request: web.Request, me: staff.Session, path: str) -> dict[str, str]:
    return {r["id"]: r["name"] for r in (await _listed(request, me, path, 1, LOOKUP))["items"]}


def _validity(product: dict, t: dict[str, str]) -> str:
    """The annual product's validity rule in words (fixed dates, or months from purchase/first entry)."""
    if product["validity_mode"] == "fixed":
        return t["ct_fixed"].format(a=_date(product["valid_from"]), b=_date(product["valid_until"]))
    return t["ct_" + product["validity_mode"]].format(m=product["months"])


def _date(day: str | None) -> str:
    return ".".join(reversed(day.split("-"))) if day else ""


async def _subscriptions(request: web.Request, me: staff.Session, page: int) -> dict:
    """Subscription products with their price table (zones x discount tiers) from the API."""
    listed = await _listed(request, me, "/subscription-products", page)
    zones = await _names(request, me, "/price-zones")
    for product in listed["items"]:
        table = await api_call.call(request, me, "GET", f"/subscription-products/{product['id']}/prices")
        product["prices"] = [{**z, "zone": zones.get(z["zone_id"] or "", "")} for z in table["zones"]]
    return listed


async def _sections(request: web.Request, me: staff.Session) -> dict[str, dict]:
    pages = {s.key: _page_no(request, s.key) for s in SECTIONS}
    venues = await _names(request, me, "/venues")
    out = {
        "venues": await _listed(request, me, "/venues", pages["venues"]),
        "annual": await _listed(request, me, "/annual-ticket-products", pages["annual"]),
        "subscriptions": await _subscriptions(request, me, pages["subscriptions"]),
        "plans": await _listed(request, me, "/seating-plans", pages["plans"]),
    }
    for plan in out["plans"]["items"]:
        plan["venue"] = venues.get(plan["venue_id"], "")
        plan["seats"] = next((v["seat_count"] for v in plan["variants"] if v["is_base"]), 0)
    shows = office_lists.upcoming_performances(request.app[DB], iso(views._now(request)), pages["performances"],
                                               SIZE)
    out["performances"] = {"items": shows.rows, "total": shows.total, "limit": SIZE,
                           "offset": (shows.page - 1) * SIZE}
    for listed in out.values():
        listed["page"] = listed["offset"] // SIZE + 1
        listed["pages"] = max(1, math.ceil(listed["total"] / SIZE))
    return out


def _local(moment: str) -> str:
    return parse_iso(moment).astimezone(LOCAL_TZ).strftime("%d.%m.%Y %H:%M")


@staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """The five sections, read only, each with its page links and its API edit link."""
    lang = views._lang(request)
    sections = await _sections(request, me)
    t = TEXT[lang]

    def link(key: str, page: int) -> str:
        query = {s.key: str(_page_no(request, s.key)) for s in SECTIONS}
        query[key] = str(page)
        return "?" + "&".join(f"{k}={v}" for k, v in query.items() if v != "1")

    return views.render(request, "catalog.html", me=me, csrf=me.csrf, s=sections, sections=SECTIONS,
                        euros=views._euros(lang), validity=lambda p: _validity(p, t), local=_local,
                        api_link=api_link, link=link)


def install(app: web.Application) -> None:
    """Add the Catalog screen (GET only: nothing here changes anything)."""
    app.router.add_get(PATH, show)
