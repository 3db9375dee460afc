"""The office app's API tokens screen (/office/tokens): list, create (secret shown once), revoke.

Admins only, like the API's token operations: the office role gets 403 on the page and on every
POST, and nothing changes. Every change is the API's own operation via `api_call`
(`POST /tokens`, `DELETE /tokens/{id}`), so its rules hold here too (roles, name limits, the
last admin token cannot be revoked). The secret is in the one response to the create POST
(`Cache-Control: no-store`, as every office page) and nowhere else: the hub keeps only its
SHA-256 hash, so no later page can show it.
"""

from __future__ import annotations

from aiohttp import web

from hub.services import staff, tokens
from hub.web.office import api_call, small_lists, views
from hub.web.office.lists import staff_only
from hub.web.office.text import TEXT

PATH = "/office/tokens"
ADMIN = "admin"



SORTS = {"name": lambda r: r["name"].casefold(), "role": lambda r: r["role"], "created": lambda r: r["created_at"],
         "state": lambda r: r["revoked_at"] or ""}
COLUMNS = (("name", "name"), ("role", "role"), ("created", "op_created"), ("state", "state"))


async def _arranged(request: web.Request, me: staff.Session, size: int = small_lists.PAGE_SIZE):
    rows = await api_call.call(request, me, "GET", "/tokens")
    return small_lists.arrange(request, rows, SORTS, "created", lambda r: f"{r['name']} {r['role']}", size)


async def _page(request: web.Request, me: staff.Session, status: int = 200, **ctx) -> web.Response:
    view = await _arranged(request, me)
    return views.render(request, "tokens.html", status, me=me, csrf=me.csrf, view=view, rows=view.rows,
                        columns=COLUMNS, roles=tokens.ROLES, when=views._when, **ctx)


@staff_only
async def download(request: web.Request, me: staff.Session) -> web.Response:
    """The tokens of the filter and sort as CSV (name, role, created, revoked); never a secret."""
    if me.role != ADMIN:
        return views.not_admin(request)
    t = TEXT[views._lang(request)]
    view = await _arranged(request, me, size=10_000)
    lines = [[k["name"], k["role"], views._when(k["created_at"]),
              f"{t['revoked']} {views._when(k['revoked_at'])}" if k["revoked_at"] else t["tk_valid"]]
             for k in view.rows]
    return small_lists.csv_response(request, "tokens", [label for _, label in COLUMNS], lines)


@staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """The token list and the create form (admins only)."""
    if me.role != ADMIN:
        return views.not_admin(request)
    return await _page(request, me)



@staff_only
async def create(request: web.Request, me: staff.Session) -> web.Response:
    """A new token; its secret is in this one response and never again."""
    form = await views.checked_form(request, me, admin=True)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    body = {"name": form.get("name", ""), "role": form.get("role", "")}
    try:
        made = await api_call.call(request, me, "POST", "/tokens", body)
    except api_call.Refused as exc:
        error = t["tk_e_role"] if exc.field == "role" else t["tk_e_name"] if exc.field == "name" else exc.detail
        return await _page(request, me, exc.status, error=error, name=body["name"])
    return await _page(request, me, 201, made=made)


@staff_only
async def revoke(request: web.Request, me: staff.Session) -> web.Response:
    """Revoke a token. First POST: the confirmation page; with `confirm=yes`: done."""
    form = await views.checked_form(request, me, admin=True)
    if isinstance(form, web.Response):
        return form
    token_id = request.match_info["id"]
    token = next((r for r in await api_call.call(request, me, "GET", "/tokens") if r["id"] == token_id), None)
    if token is None:
        raise web.HTTPNotFound(text=TEXT[views._lang(request)]["not_found"])
    if form.get("confirm") != "yes":
        return views.render(request, "tokens_confirm.html", me=me, csrf=me.csrf, token=token)
    try:
        await api_call.call(request, me, "DELETE", f"/tokens/{token_id}")
    except api_call.Refused as exc:
        return await _page(request, me, exc.status, error=exc.detail)
    raise web.HTTPSeeOther(PATH)


def install(app: web.Application) -> None:
    """Add the API tokens screen, its CSV and its two POSTs."""
    app.router.add_get(PATH, show)
    app.router.add_get(PATH + ".csv", download)
    app.router.add_post(PATH, create)
    app.router.add_post(PATH + "/{id}/revoke", revoke)
