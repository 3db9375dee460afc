"""The office app's own-account page (/office/account, every staff member): change one's
password (with the old one) and, for admins, turn TOTP on (secret as text and QR, confirmed by a
code) or off (with a current code).

Why the old password and a current code: a session left open on a shared office PC must not be
enough to take the account over or to strip its second factor. The rules are in
`hub/services/staff.py`; every POST passes the office CSRF rule (own origin, session token).
"""

from __future__ import annotations

import asyncio

import segno
from aiohttp import web

from core.base.errors import Conflict, ValidationError
from hub.services import staff
from hub.web.api import DB
from hub.web.office import views
from hub.web.office.lists import staff_only
from hub.web.office.text import TEXT

PATH = "/office/account"


def _totp_on(request: web.Request, me: staff.Session) -> bool:
    return any(r["id"] == me.staff_id and r["totp"] for r in staff.list_staff(request.app[DB]))


def _page(request: web.Request, me: staff.Session, status: int = 200, **ctx) -> web.Response:
    return views.render(request, "account.html", status, me=me, csrf=me.csrf, totp_on=_totp_on(request, me), **ctx)


@staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """One's own account: password form and the TOTP state."""
    return _page(request, me)



@staff_only
async def change_password(request: web.Request, me: staff.Session) -> web.Response:
    """A new password, proven by the old one; the account's other sessions end."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    if form.get("new", "") != form.get("new2", ""):
        return _page(request, me, 422, error=t["e_same"])
    try:
        stored = staff.password_hash_of(request.app[DB], me.staff_id)
        async with request.app[views.CHECKING]:  # two Argon2id runs: off the event loop, no database there
            new_hash = await asyncio.to_thread(staff.new_password_hash, stored, form.get("old", ""),
                                               form.get("new", ""))
        staff.store_changed_password(request.app[DB], me.staff_id, new_hash, views._now(request),
                                     request.cookies.get(views.COOKIE))
    except ValidationError as exc:
        return _page(request, me, 422, error=t["e_ac_old"] if exc.field == "old" else t["e_short"])
    return _page(request, me, done=t["ac_changed"])


@staff_only
async def totp_start(request: web.Request, me: staff.Session) -> web.Response:
    """A new (pending) secret, shown once as text and QR; TOTP is on only after a code confirms it."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    try:
        secret, uri = staff.totp_start(request.app[DB], me.staff_id)
    except ValidationError:
        return _page(request, me, 403, error=t["ac_totp_admins"])
    except Conflict:
        return _page(request, me, 409, error=t["ac_totp_is_on"])
    qr = segno.make(uri, error="m").svg_inline(scale=4, border=2, omitsize=True)
    return _page(request, me, secret=secret, qr=qr)


@staff_only
async def totp_confirm(request: web.Request, me: staff.Session) -> web.Response:
    """Turn TOTP on if the code fits the pending secret."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    try:
        staff.totp_confirm(request.app[DB], me.staff_id, form.get("code", ""), views._now(request))
    except ValidationError:
        return _page(request, me, 422, error=t["e_code"])
    return _page(request, me, done=t["ac_totp_on"])


@staff_only
async def totp_off(request: web.Request, me: staff.Session) -> web.Response:
    """Turn one's own TOTP off, with a current code."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    try:
        staff.totp_off(request.app[DB], me.staff_id, views._now(request), code=form.get("code", ""))
    except ValidationError:
        return _page(request, me, 422, error=t["e_code"])
    except Conflict:
        return _page(request, me, 409, error=t["ac_totp_is_off"])
    return _page(request, me, done=t["ac_totp_off_done"])


def install(app: web.Application) -> None:
    """Add the account page and its POSTs."""
    app.router.add_get(PATH, show)
    app.router.add_post(PATH + "/password", change_password)
    app.router.add_post(PATH + "/totp/start", totp_start)
    app.router.add_post(PATH + "/totp/confirm", totp_confirm)
    app.router.add_post(PATH + "/totp/off", totp_off)
