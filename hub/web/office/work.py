"""The office app's work screens (issue 12): conflicts (ops the hub could not apply) with a
Resolve form, and the mail outbox.

Both lists are `lists.Screen`s, so they sort, page, filter and download as CSV like the
customer and order lists. The rules stay where the API has them: listing and resolving a
conflict are `core.sync.conflicts` (as `hub/web/areas/sync_office.py` calls them), the mail
rows come from `hub.services.office_lists`. The Resolve POST is refused (403, nothing changed)
unless it comes from this hub's own origin and carries the session's form token, as every
office POST.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web

from core.base.errors import Conflict, NotFound
from core.sync import conflicts
from hub.services import mail, office_lists, staff
from hub.settings import context
from hub.web.api import DB
from hub.web.office import lists, views
from hub.web.office.text import TEXT

MAX_NOTE = 500  # as the API's ResolveIn


def _conflict_page(request: web.Request, page: int, size: int) -> office_lists.Page:
    return office_lists.conflict_rows(request.app[DB], request.query.get("q", ""), request.query.get("state"),
                                      request.query.get("sort"), page, size)


def _conflict_cells(row: dict, euros: Callable[[int], str], t: dict) -> list[str]:
    state = t["f_resolved"] if row["resolved_at"] else t["f_open"]
    return [views._when(row["created_at"]), row.get("node_name") or row["node_id"], row["kind"], row["reason"], state]


CONFLICTS = lists.Screen("/office/conflicts", "conflict_list",
                         (("time", "time", False), ("node", "node", False), ("kind", "op_kind", False),
                          ("reason", "reason", False), ("state", "state", False)),
                         _conflict_page, _conflict_cells, filters=("q", "state"),
                         states=office_lists.CONFLICT_STATES)


def _mail_page(request: web.Request, page: int, size: int) -> office_lists.Page:
    return office_lists.mails(request.app[DB], request.query.get("q", ""), request.query.get("state"),
                              request.query.get("sort"), page, size)


def _mail_cells(row: dict, euros: Callable[[int], str], t: dict) -> list[str]:
    return [views._when(row["created_at"]), row["to_address"], row["subject"], t["f_" + row["state"]],
            str(row["attempts"])]


MAIL = lists.Screen("/office/mail", "mail_list",
                    (("time", "time", False), ("to", "recipient", False), ("subject", "subject", False),
                     ("state", "state", False), ("attempts", "attempts", True)),
                    _mail_page, _mail_cells, filters=("q", "state"), states=("all", *office_lists.MAIL_STATES))


def _not_found(request: web.Request) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=TEXT[views._lang(request)]["not_found"])


async def _conflict_view(request: web.Request, me: staff.Session, error: str | None = None,
                        status: int = 200) -> web.Response:
    """One conflict: the op body pretty-printed (the template escapes it), and the Resolve form."""
    try:
        found = conflicts.get(request.app[DB], request.match_info["id"])
    except NotFound:
        raise _not_found(request) from None
    body = json.dumps(found["body"], indent=2, ensure_ascii=False, sort_keys=True)
    return views.render(request, "conflict.html", status, me=me, csrf=me.csrf, c=found, body=body,
                        when=views._when, error=error)


conflict_page = lists.staff_only(_conflict_view)


@lists.staff_only
async def resolve(request: web.Request, me: staff.Session) -> web.Response:
    """Mark the conflict resolved with the note (`conflicts.resolve`, as the API's resolve)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    note = form.get("note", "").strip()
    t = TEXT[views._lang(request)]
    if not note or len(note) > MAX_NOTE:
        return await _conflict_view(request, me, t["e_note"], 400)
    try:
        conflicts.resolve(request.app[DB], request.match_info["id"], note, views._now(request))
    except NotFound:
        raise _not_found(request) from None
    except Conflict:
        return await _conflict_view(request, me, t["e_resolved"], 409)
    raise web.HTTPSeeOther(f"/office/conflicts/{request.match_info['id']}")


@lists.staff_only
async def mail_page(request: web.Request, me: staff.Session) -> web.Response:
    """One mail with its text as queued (a sent one with its personal links redacted)."""
    try:
        found = office_lists.mail_detail(request.app[DB], request.match_info["id"])
    except NotFound:
        raise _not_found(request) from None
    inbox = context(request.app).section(mail.SECTION).inbox_url
    return views.render(request, "mail.html", me=me, csrf=me.csrf, m=found, when=views._when, inbox=inbox)


def install(app: web.Application) -> None:
    """Add the conflict and mail lists, their CSV downloads, detail pages and the Resolve POST."""
    for screen, detail in ((CONFLICTS, conflict_page), (MAIL, mail_page)):
        app.router.add_get(screen.path, lists.staff_only(lambda r, me, s=screen: lists._show(r, me, s)))
        app.router.add_get(screen.path + ".csv", lists.staff_only(lambda r, me, s=screen: lists._csv(r, me, s)))
        app.router.add_get(screen.path + "/{id}", detail)
    app.router.add_post(CONFLICTS.path + "/{id}/resolve", resolve)
