"""The office app's Devices screen (/office/devices): enrolled nodes, enrollment codes, enroll, revoke,
and rotating the hub's own key.

Every logged-in staff member may look; only the `admin` role may enroll or revoke (the office
role gets 403 and nothing changes), as the API's node operations are admin only. Each POST
passes the office's CSRF rule (own origin and the session's form token, `views`).

The rules live elsewhere: the online/offline rule is the start page's (`staff.devices`), codes are
made by `enrollment.create_code` and a revocation is `nodes.revoke_node`, as in the API.
"""

from __future__ import annotations

import segno
from aiohttp import web

from core.base.errors import Conflict, NotFound, ValidationError
from core.sync import conflicts
from hub.services import nodes, staff
from hub.settings import context
from hub.sync import enrollment
from hub.web.api import DB
from hub.web.office import views
from hub.web.office.lists import staff_only
from hub.web.office.text import TEXT

PATH = "/office/devices"
ADMIN = "admin"


def _rows(request: web.Request) -> list[dict]:
    """One row per node certificate, online as the start page says (same rule, `staff.devices`)."""
    now = views._now(request)
    online = {(d["name"], d["role"], d["last_sync"]) for d in staff.devices(request.app[DB], now) if d["online"]}
    status = {s["node_id"]: s for s in conflicts.node_status(request.app[DB])}
    out = []
    for node in nodes.list_nodes(request.app[DB]):
        s = status.get(node["node_id"], {})
        last = max(filter(None, (s.get("last_push_at"), s.get("last_pull_at"))), default=None)
        out.append({**node, "venue_ids": s.get("venue_ids", []), "last_push_at": s.get("last_push_at"),
                    "last_pull_at": s.get("last_pull_at"), "clock_skew_s": s.get("clock_skew_s"),
                    "online": not node["revoked_at"] and (node["name"], node["role"], last) in online})
    return out


def _page(request: web.Request, me: staff.Session, status: int = 200, **ctx) -> web.Response:
    db = request.app[DB]
    codes = enrollment.list_codes(db, views._now(request))
    venues = staff.venue_choices(db)
    return views.render(request, "devices.html", status, me=me, csrf=me.csrf, rows=_rows(request), codes=codes,
                        admin=me.role == ADMIN, roles=enrollment.ROLES, reasons=nodes.REASONS, when=views._when,
                        venues=venues, venue_names={v["id"]: v["name"] for v in venues}, **ctx)


@staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """The list of nodes and codes (and, for admins, the enroll form)."""
    return _page(request, me)



@staff_only
async def enroll(request: web.Request, me: staff.Session) -> web.Response:
    """Make a one-time code and show it once (text and QR); the hub keeps only its verifier."""
    form = await views.checked_form(request, me, admin=True)
    if isinstance(form, web.Response):
        return form
    venues = [str(v)[:64] for v in (await request.post()).getall("venue", [])]  # the ticked checkboxes
    known = {v["id"] for v in staff.venue_choices(request.app[DB])}
    if any(v not in known for v in venues):
        return _page(request, me, 422, error=TEXT[views._lang(request)]["not_found"], form=form)
    try:
        code = enrollment.create_code(request.app[DB], name=form.get("name", ""), role=form.get("role", ""),
                                      venue_ids=venues, now=views._now(request))
    except ValidationError as exc:
        return _page(request, me, 422, error=str(exc), form=form)
    qr = segno.make(code, error="m").svg_inline(scale=4, border=2, omitsize=True)
    return _page(request, me, 201, code=code, qr=qr, made_for=form.get("name", ""))


@staff_only
async def revoke(request: web.Request, me: staff.Session) -> web.Response:
    """Revoke every key of a node. First POST: the confirmation page; with `confirm=yes`: done."""
    form = await views.checked_form(request, me, admin=True)
    if isinstance(form, web.Response):
        return form
    node_id, reason = request.match_info["id"], form.get("reason", "")
    node = next((n for n in _rows(request) if n["node_id"] == node_id), None)
    if node is None:
        raise web.HTTPNotFound(text=TEXT[views._lang(request)]["not_found"])
    if reason not in nodes.REASONS:
        return _page(request, me, 422, error=TEXT[views._lang(request)]["e_reason"])
    if form.get("confirm") != "yes":
        return views.render(request, "devices_confirm.html", me=me, csrf=me.csrf, node=node, reason=reason)
    try:
        nodes.revoke_node(request.app[DB], nodes.root_key(context(request.app).data_dir), node_id, reason=reason)
    except (NotFound, Conflict, ValidationError) as exc:
        return _page(request, me, 409, error=str(exc))
    raise web.HTTPSeeOther(PATH)


@staff_only
async def rotate(request: web.Request, me: staff.Session) -> web.Response:
    """Give the hub a new signing key, as `tessera hub rotate-key` does (`nodes.rotate_hub_key`:
    crash-safe, under the rotation lock). First POST: the confirmation page; `confirm=yes`: done.
    The hub's sync answers pick the new key up by its id, so enrolled devices keep syncing."""
    form = await views.checked_form(request, me, admin=True)
    if isinstance(form, web.Response):
        return form
    if form.get("confirm") != "yes":
        return views.render(request, "devices_rotate.html", me=me, csrf=me.csrf)
    key_id = nodes.rotate_hub_key(context(request.app).data_dir, request.app[DB])
    return _page(request, me, done=TEXT[views._lang(request)]["dv_rotated"].format(k=f"{key_id:08x}"))


def install(app: web.Application) -> None:
    """Add the Devices screen and its POSTs."""
    app.router.add_get(PATH, show)
    app.router.add_post(PATH + "/rotate", rotate)
    app.router.add_post(PATH + "/enroll", enroll)
    app.router.add_post(PATH + "/{id}/revoke", revoke)
