"""The office app's Staff screen (/office/staff, admins only): accounts, setup links, deactivate
and reactivate, and turning another admin's TOTP off (a lost phone).

Staff accounts are the office app's own log-in, not an /api/v1 resource (the API takes bearer
tokens): the rules are in `hub/services/staff.py` (one function per state change), this module
only reads the form and shows the outcome. Every POST passes the office CSRF rule (own origin,
the session's form token) and the admin role; a refused POST changes nothing.
"""

from __future__ import annotations

from aiohttp import web

from core.base.errors import Conflict, NotFound, ValidationError
from hub.services import staff
from hub.web.api import DB
from hub.web.office import views
from hub.web.office.lists import staff_only
from hub.web.office.text import TEXT

PATH = "/office/staff"
ADMIN = "admin"


def _page(request: web.Request, me: staff.Session, status: int = 200, **ctx) -> web.Response:
    return views.render(request, "staff_admin.html", status, me=me, csrf=me.csrf,
                        rows=staff.list_staff(request.app[DB]), when=views._when, **ctx)



@staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """The staff list and the add form (admins only)."""
    if me.role != ADMIN:
        return views.not_admin(request)
    return _page(request, me)



@staff_only
async def add(request: web.Request, me: staff.Session) -> web.Response:
    """A new account; its one-time setup link is shown on this answer only."""
    form = await views.checked_form(request, me, admin=True)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    try:
        row, token = staff.add(request.app[DB], form.get("user", ""), form.get("role", ""), views._now(request))
    except ValidationError:
        return _page(request, me, 422, error=t["e_st_user"])
    except Conflict:
        return _page(request, me, 409, error=t["e_st_taken"])
    return _page(request, me, 201, link=_link(request, token), link_user=row["user_name"])


def _link(request: web.Request, token: str) -> str:
    return f"{request.scheme}://{request.host}{staff.SETUP_PATH}{token}"


def _staff_id(request: web.Request) -> str:
    return request.match_info["id"][:64]


@staff_only
async def new_link(request: web.Request, me: staff.Session) -> web.Response:
    """A fresh setup link (forgotten password); older open links of the account die."""
    form = await views.checked_form(request, me, admin=True)
    if isinstance(form, web.Response):
        return form
    try:
        row, token = staff.link_for(request.app[DB], _staff_id(request), views._now(request))
    except NotFound:
        raise web.HTTPNotFound(text=TEXT[views._lang(request)]["not_found"]) from None
    return _page(request, me, 201, link=_link(request, token), link_user=row["user_name"])


@staff_only
async def deactivate(request: web.Request, me: staff.Session) -> web.Response:
    """Switch an account off; its sessions end at once (not oneself, not the last admin)."""
    form = await views.checked_form(request, me, admin=True)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    try:
        row = staff.deactivate(request.app[DB], me.staff_id, _staff_id(request), views._now(request))
    except NotFound:
        raise web.HTTPNotFound(text=t["not_found"]) from None
    except Conflict as exc:
        return _page(request, me, 409, error=t["e_st_self"] if "own" in exc.detail else t["e_st_last"])
    return _page(request, me, done=t["st_done_off"].format(u=row["user_name"]))


@staff_only
async def reactivate(request: web.Request, me: staff.Session) -> web.Response:
    """Switch an account on again."""
    form = await views.checked_form(request, me, admin=True)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    try:
        row = staff.reactivate(request.app[DB], _staff_id(request), views._now(request))
    except NotFound:
        raise web.HTTPNotFound(text=t["not_found"]) from None
    return _page(request, me, done=t["st_done_on"].format(u=row["user_name"]))


@staff_only
async def totp_off(request: web.Request, me: staff.Session) -> web.Response:
    """Turn another admin's TOTP off (lost phone); one's own needs a code (the account page)."""
    form = await views.checked_form(request, me, admin=True)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    staff_id = _staff_id(request)
    if staff_id == me.staff_id:
        raise web.HTTPSeeOther("/office/account")
    try:
        staff.totp_off(request.app[DB], staff_id, views._now(request), by_other_admin=True)
        row = next(r for r in staff.list_staff(request.app[DB]) if r["id"] == staff_id)
    except NotFound:
        raise web.HTTPNotFound(text=t["not_found"]) from None
    except Conflict:
        return _page(request, me, 409, error=t["ac_totp_is_off"])
    return _page(request, me, done=t["st_done_totp"].format(u=row["user_name"]))


def install(app: web.Application) -> None:
    """Add the Staff screen and its POSTs."""
    app.router.add_get(PATH, show)
    app.router.add_post(PATH + "/add", add)
    app.router.add_post(PATH + "/{id}/link", new_link)
    app.router.add_post(PATH + "/{id}/deactivate", deactivate)
    app.router.add_post(PATH + "/{id}/reactivate", reactivate)
    app.router.add_post(PATH + "/{id}/totp-off", totp_off)
