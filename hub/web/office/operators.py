"""The office app's Operators screen (/office/operators): cash-desk operators, add, (de)activate, reset PIN.

Every change goes through the API's own operations (`POST /operators`, `PUT /operators/{id}`) via
`api_call`, so the name and PIN rules (`core.catalog.operators`: 4 to 8 digits, unique names) and
the roles (both staff roles, as the API's STAFF) are the API's. The screen adds only what a form
needs: the PIN typed twice. A PIN is never shown, never put back into a re-rendered form and
never logged; the hub keeps only its slow hash (`core.catalog.pins`).
"""

from __future__ import annotations

from aiohttp import web

from hub.services import staff
from hub.web.office import api_call, small_lists, views
from hub.web.office.lists import staff_only
from hub.web.office.text import TEXT

PATH = "/office/operators"


async def _operators(request: web.Request, me: staff.Session) -> list[dict]:
    return await api_call.call(request, me, "GET", "/operators")


SORTS = {"name": lambda r: r["name"].casefold(), "state": lambda r: not r["active"],
         "created": lambda r: r["created_at"]}
COLUMNS = (("name", "name"), ("state", "state"), ("created", "op_created"))


async def _arranged(request: web.Request, me: staff.Session, size: int = small_lists.PAGE_SIZE):
    return small_lists.arrange(request, await _operators(request, me), SORTS, "name", lambda r: r["name"], size)


async def _page(request: web.Request, me: staff.Session, status: int = 200, **ctx) -> web.Response:
    view = await _arranged(request, me)
    return views.render(request, "operators.html", status, me=me, csrf=me.csrf, view=view, rows=view.rows,
                        columns=COLUMNS, when=views._when, **ctx)


@staff_only
async def download(request: web.Request, me: staff.Session) -> web.Response:
    """The operators of the filter and sort as CSV (name, state, created); never a PIN."""
    t = TEXT[views._lang(request)]
    view = await _arranged(request, me, size=10_000)
    lines = [[o["name"], t["op_active"] if o["active"] else t["op_inactive"], views._when(o["created_at"])]
             for o in view.rows]
    return small_lists.csv_response(request, "operators", [label for _, label in COLUMNS], lines)


@staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """The operator list with the add form; `?done=` names what the last POST did."""
    t = TEXT[views._lang(request)]
    done = request.query.get("done")
    return await _page(request, me, notice=t.get("op_done_" + done, "") if done else "")



def _pin_problem(form: dict[str, str], t: dict[str, str]) -> str | None:
    """The form's own rule: the two PINs agree (the API checks the PIN itself)."""
    return t["op_e_differ"] if form.get("pin", "") != form.get("pin2", "") else None


def _message(exc: api_call.Refused, t: dict[str, str], name: str) -> str:
    """The API's refusal in the screen's words where we know the case, else the API's detail."""
    if exc.status == 409:
        return t["op_e_taken"].format(n=name)
    if exc.field == "pin":
        return t["op_e_pin"]
    if exc.field == "name":
        return t["op_e_name"]
    return exc.detail


@staff_only
async def add(request: web.Request, me: staff.Session) -> web.Response:
    """POST /operators with name and PIN (typed twice)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    name = form.get("name", "")
    problem = _pin_problem(form, t)
    if problem is None:
        try:
            await api_call.call(request, me, "POST", "/operators", {"name": name, "pin": form.get("pin", "")})
        except api_call.Refused as exc:
            problem = _message(exc, t, name)
            status = exc.status
        else:
            raise web.HTTPSeeOther(PATH + "?done=added")
    else:
        status = 422
    return await _page(request, me, status, error=problem, name=name)


async def _change(request: web.Request, me: staff.Session, body: dict) -> dict:
    """PUT /operators/{id} with the operator's current name and *body* (active flag or PIN)."""
    operator_id = request.match_info["id"]
    current = next((o for o in await _operators(request, me) if o["id"] == operator_id), None)
    if current is None:
        raise api_call.Refused(404, TEXT[views._lang(request)]["not_found"])
    change = {"name": current["name"], "active": current["active"], **body}
    return await api_call.call(request, me, "PUT", f"/operators/{operator_id}", change)


@staff_only
async def set_active(request: web.Request, me: staff.Session) -> web.Response:
    """Deactivate (`active=0`) or reactivate (`active=1`) an operator; the PIN stays as it is."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    if form.get("active") not in ("0", "1"):
        return await _page(request, me, 422, error=t["op_e_active"])
    try:
        await _change(request, me, {"active": form["active"] == "1"})
    except api_call.Refused as exc:
        return await _page(request, me, exc.status, error=exc.detail)
    raise web.HTTPSeeOther(PATH + ("?done=active" if form["active"] == "1" else "?done=inactive"))


@staff_only
async def reset_pin(request: web.Request, me: staff.Session) -> web.Response:
    """Give an operator a new PIN (typed twice); desks learn it with their next sync."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    problem = _pin_problem(form, t)
    if problem is not None:
        return await _page(request, me, 422, error=problem)
    try:
        await _change(request, me, {"pin": form.get("pin", "")})
    except api_call.Refused as exc:
        return await _page(request, me, exc.status, error=_message(exc, t, ""))
    raise web.HTTPSeeOther(PATH + "?done=pin")


def install(app: web.Application) -> None:
    """Add the Operators screen, its CSV and its three POSTs."""
    app.router.add_get(PATH, show)
    app.router.add_get(PATH + ".csv", download)
    app.router.add_post(PATH, add)
    app.router.add_post(PATH + "/{id}/active", set_active)
    app.router.add_post(PATH + "/{id}/pin", reset_pin)
