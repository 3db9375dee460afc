"""The office app's Cards screen (/office/cards): cards by fulfilment state, bulk moves, and one
card's page with Re-issue, Replace lost card and Revoke.

Why every change goes through `api_call`: the rules of a move (only forward, only along the card's
delivery, all cards or none), of a re-issue and of a revocation are the API's (`hub/web/areas/cards.py`
and `core.cards`); the office names the operation and shows the API's answer, e.g. the 409 that names
the one card of a selection that cannot move. The list itself is read from `office_lists`, like the
other list screens, so it sorts, filters, pages and downloads as CSV the same way.

Every POST passes the office's CSRF rule (own origin and the session's form token); a revocation
shows a confirmation page first, as the Devices screen does.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from core.base.clock import LOCAL_TZ, parse_iso
from core.catalog.annual import validity_window
from hub.services import office_lists, staff
from hub.web.api import DB
from hub.web.office import api_call, lists, views
from hub.web.office.text import TEXT

PATH = "/office/cards"
MAX_REASON = 200  # as the API's CardRevokeIn
ACTIONS = ("reissue", "replace", "revoke")


def _card_page(request: web.Request, page: int, size: int) -> office_lists.Page:
    q = request.query
    return office_lists.fulfilment_cards(request.app[DB], q.get("q", ""), q.get("state"), q.get("delivery"),
                                         q.get("sort"), page, size)


def _card_cells(row: dict, euros: Callable[[int], str], t: dict) -> list[str]:
    return [row["number"], row["holder"], row["customer"], t["cdl_" + row["delivery"]] if row["delivery"] else "",
            t["fs_" + row["fulfilment"]], views._when(row["fulfilment_at"])]


CARDS = lists.Screen(PATH, "cards_title",
                     (("number", "number", False), ("holder", "holder", False), ("customer", "customer", False),
                      ("delivery", "delivery", False), ("state", "state", False), ("since", "since", False)),
                     _card_page, _card_cells, filters=("q", "state", "delivery"),
                     states=office_lists.FULFILMENT_STATES)


def _list(request: web.Request, me: staff.Session, status: int = 200, **ctx) -> web.Response:
    """The cards list with state tabs (counts of the filter), checkboxes and the bulk-move form."""
    lang = views._lang(request)
    size = min(lists._int(request.query.get("size"), office_lists.PAGE_SIZE), office_lists.MAX_PAGE_SIZE)
    found = CARDS.fetch(request, lists._int(request.query.get("page"), 1), size)
    rows = [(row, CARDS.cells(row, views._euros(lang), TEXT[lang])) for row in found.rows]
    counts = office_lists.fulfilment_counts(request.app[DB], request.query.get("q", ""),
                                            request.query.get("delivery"))
    return views.render(request, "cards.html", status, me=me, csrf=me.csrf, screen=CARDS, page=found, rows=rows,
                        link=lambda **change: lists._query(request, CARDS, **change), counts=counts,
                        states=office_lists.FULFILMENT_STATES, deliveries=office_lists.DELIVERIES,
                        query=request.query, **ctx)


@lists.staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """Cards by fulfilment state (after a move, with what moved: `moved` and `to` in the query)."""
    to, moved = request.query.get("to"), lists._int(request.query.get("moved"), 0)
    if to in office_lists.FULFILMENT_STATES and moved > 0:
        t = TEXT[views._lang(request)]
        return _list(request, me, notice=t["cd_moved"].format(n=moved, s=t["fs_" + to]), to=to)
    return _list(request, me)


@lists.staff_only
async def csv(request: web.Request, me: staff.Session) -> web.Response:
    """The filtered cards as CSV (the list machinery's)."""
    return await lists._csv(request, me, CARDS)



@lists.staff_only
async def move(request: web.Request, me: staff.Session) -> web.Response:
    """Move the ticked cards to the chosen state through POST /cards/fulfilment: all or none."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    ids, to = list((await request.post()).getall("card", [])), form.get("to", "")
    if not ids:
        return _list(request, me, 400, error=t["cd_none"], to=to)
    try:
        moved = await api_call.call(request, me, "POST", "/cards/fulfilment", {"card_ids": ids, "state": to})
    except api_call.Refused as exc:
        return _list(request, me, exc.status, error=t["cd_refused"].format(d=exc.detail), to=to)
    raise web.HTTPSeeOther(f"{PATH}?{lists._query(request, CARDS, moved=len(moved), to=to)}")


def _day(moment: str | None) -> str:
    return parse_iso(moment).astimezone(LOCAL_TZ).strftime("%d.%m.%Y") if moment else ""


def _validity(card: dict, more: dict, t: dict) -> str:
    """What the card's validity is, as the gate's rule has it: a card valid N months from its
    first entry shows the months until that entry (its signed end is only the outer bound), then
    the window the first entry started (`core.catalog.annual.validity_window`)."""
    if more.get("validity_mode") != "from_first_entry":
        return f"{_day(card['valid_from'])} – {_day(card['valid_until'])}"
    if not more.get("first_entry_at"):
        return t["cd_months_first_use"].format(n=more["months"])
    first = parse_iso(more["first_entry_at"]).astimezone(LOCAL_TZ).date()
    start, end = validity_window({"validity_mode": "from_first_entry", "months": more["months"]}, first, first)
    return f"{start:%d.%m.%Y} – {end:%d.%m.%Y}"


async def _card(request: web.Request, me: staff.Session) -> dict:
    """The card of the address as GET /cards/{id} answers it; 404 for an unknown (or odd) id."""
    try:
        return await api_call.call(request, me, "GET", f"/cards/{request.match_info['id']}")
    except api_call.Refused:
        raise web.HTTPNotFound(text=TEXT[views._lang(request)]["not_found"]) from None


async def _card_view(request: web.Request, me: staff.Session, status: int = 200, **ctx) -> web.Response:
    """One card with product, customer, order and history."""
    card = await _card(request, me)
    more = office_lists.card_detail(request.app[DB], card["id"])
    done = request.query.get("done")
    if done in ACTIONS and "error" not in ctx:
        ctx["notice"] = TEXT[views._lang(request)]["cd_done_" + done].format(n=card["number"], i=card["issue"])
    validity = _validity(card, more, TEXT[views._lang(request)])
    return views.render(request, "card.html", status, me=me, csrf=me.csrf, c=card, more=more, when=views._when,
                        day=_day, validity=validity, **ctx)


card_page = lists.staff_only(_card_view)


async def _act(request: web.Request, me: staff.Session, what: str, body: dict | None = None) -> web.Response:
    """POST /cards/{id}/<what> as *me*; then back to the card page (a GET, so a reload repeats nothing)."""
    t = TEXT[views._lang(request)]
    card_id = (await _card(request, me))["id"]  # an unknown id: 404 before anything is tried
    try:
        await api_call.call(request, me, "POST", f"/cards/{card_id}/{what}", body)
    except api_call.Refused as exc:
        return await _card_view(request, me, exc.status, error=t["cd_refused"].format(d=exc.detail))
    raise web.HTTPSeeOther(f"{PATH}/{card_id}?done={what}")


@lists.staff_only
async def reissue(request: web.Request, me: staff.Session) -> web.Response:
    """Re-issue: same card, issue + 1; the old code is superseded."""
    form = await views.checked_form(request, me)
    return form if isinstance(form, web.Response) else await _act(request, me, "reissue")


@lists.staff_only
async def replace(request: web.Request, me: staff.Session) -> web.Response:
    """Replace a lost card: a new issue, back to personalized, printed again."""
    form = await views.checked_form(request, me)
    return form if isinstance(form, web.Response) else await _act(request, me, "replace")


@lists.staff_only
async def revoke(request: web.Request, me: staff.Session) -> web.Response:
    """Revoke with a reason. First POST: the confirmation page; with `confirm=yes`: done."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    reason = form.get("reason", "").strip()
    card = await _card(request, me)
    if not reason or len(reason) > MAX_REASON:
        return await _card_view(request, me, 400, error=t["cd_reason"])
    if form.get("confirm") != "yes":
        return views.render(request, "card_confirm.html", me=me, csrf=me.csrf, c=card, reason=reason)
    return await _act(request, me, "revoke", {"reason": reason})


def install(app: web.Application) -> None:
    """Add the cards list, its CSV, the bulk move, the card page and its three actions."""
    app.router.add_get(PATH, show)
    app.router.add_get(PATH + ".csv", csv)
    app.router.add_post(PATH + "/move", move)
    app.router.add_get(PATH + "/{id}", card_page)
    app.router.add_post(PATH + "/{id}/reissue", reissue)
    app.router.add_post(PATH + "/{id}/replace", replace)
    app.router.add_post(PATH + "/{id}/revoke", revoke)
