"""The office's bank statement screen (issue 16 "Everywhere", B6): upload a camt.053 file, see
what the import matched, and clear the unmatched entries by hand (assign a credit to an order
by its number, or dismiss it with a note); the matched credits, each of which can be taken back
when it went to the wrong order; the statements imported so far.

Why this shape: the file goes to the API's own import (`POST /bank-statements`, in-process via
`api_call`), which reads it as hostile input and stores each booking once; the office adds no
rule of its own. The upload is the one office form with a file: it is read here with its own
size limit (the API's body limit) instead of the 16 KB of the other forms, and checked by the
same CSRF rule (own origin and the session's form token).
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from hub.services import office_money, staff
from hub.web.api import DB
from hub.web.office import api_call, lists, money, order_money, views
from hub.web.problems import MAX_BODY_BYTES

PATH = "/office/bank"
MAX_UPLOAD = MAX_BODY_BYTES  # what the API takes as a statement body
SLACK = 16 * 1024  # the multipart framing and the form token around the file


def _back(**query: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(PATH + "?" + urlencode({k: v for k, v in query.items() if v}))


async def _page(request: web.Request, me: staff.Session, *, error: str | None = None,
                status: int = 200) -> web.Response:
    entries = (await api_call.call(request, me, "GET", "/bank-entries", query={"state": "unmatched",
                                                                                "limit": 500}))["items"]
    matched = []
    for state in ("matched", "assigned"):
        matched += (await api_call.call(request, me, "GET", "/bank-entries", query={"state": state,
                                                                                     "limit": 200}))["items"]
    matched = [e for e in matched if e["direction"] == "credit"]
    matched.sort(key=lambda e: e["resolved_at"] or "", reverse=True)
    statements = (await api_call.call(request, me, "GET", "/bank-statements", query={"limit": 50}))["items"]
    lang = views._lang(request)
    return views.render(request, "money_bank.html", status, me=me, csrf=me.csrf, m=money.text(request),
                        entries=entries, statements=statements, error=error, note=order_money.note(request),
                        matched=matched[:200],
                        orders=office_money.order_numbers(request.app[DB], [e["order_id"] for e in matched]),
                        euros=views._euros(lang), day=order_money.day, when=views._when)


@lists.staff_only
async def bank_page(request: web.Request, me: staff.Session) -> web.Response:
    """The upload form, the unmatched entries with their assign and dismiss forms, the statements."""
    return await _page(request, me)


async def _upload(request: web.Request) -> tuple[str | None, bytes | None]:
    """(form token, file bytes) of the multipart upload; (None, None) if it is too big or no form."""
    if request.content_length is None or request.content_length > MAX_UPLOAD + SLACK \
            or not request.content_type.startswith("multipart/"):
        return None, None
    token, raw = None, None
    reader = await request.multipart()
    async for part in reader:
        if part.name == "csrf":
            token = (await part.read(decode=True))[:200].decode("utf-8", "replace")
        elif part.name == "file":
            raw = bytes(await part.read(decode=True))
    return token, raw


@lists.staff_only
async def upload(request: web.Request, me: staff.Session) -> web.Response:
    """Import the file through the API; the page again with what happened, or the refusal."""
    token, raw = await _upload(request)
    if token is None or not views.posted_ok(request, me, {"csrf": token}):
        return views._refused(request)
    m = money.text(request)
    try:
        text = (raw or b"").decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if not text.strip() or len(raw) > MAX_UPLOAD:
        return await _page(request, me, error=m["e_bank_file"], status=422)
    try:
        done = await api_call.call(request, me, "POST", "/bank-statements", text)
    except api_call.Refused as exc:
        return await _page(request, me, error=money.refusal(request, exc), status=exc.status)
    if done["duplicate"]:
        raise _back(done="bank_duplicate")
    raise _back(done="bank_imported_overpaid" if done["overpaid"] else "bank_imported", n=str(done["new"]),
                m=str(done["matched"] + done["returned"]), r=str(done["unmatched"]))


@lists.staff_only
async def assign(request: web.Request, me: staff.Session) -> web.Response:
    """An unmatched credit to the order of the typed number (a transfer payment of that order)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    typed = form.get("order", "").strip()
    found = office_money.order_id(request.app[DB], typed)
    if found is None:
        return await _page(request, me, error=money.text(request)["e_bank_order"].format(q=typed), status=422)
    try:
        await api_call.call(request, me, "POST", f"/bank-entries/{request.match_info['id']}/assign",
                            {"order_id": found, "note": form.get("note", "").strip() or None})
    except api_call.Refused as exc:
        return await _page(request, me, error=money.refusal(request, exc), status=exc.status)
    raise _back(done="bank_assigned", n=typed)


async def _entry_step(request: web.Request, me: staff.Session, step: str, done: str, *, optional: bool = False):
    """One API step on the entry of the address with the form's note (*optional*: none if blank);
    back with *done*, or the page with the refusal in its language."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    text = form.get("note", "")
    try:
        await api_call.call(request, me, "POST", f"/bank-entries/{request.match_info['id']}/{step}",
                            {"note": (text.strip()[:500] or None) if optional else text})
    except api_call.Refused as exc:
        return await _page(request, me, error=money.refusal(request, exc), status=exc.status)
    raise _back(done=done)


@lists.staff_only
async def dismiss(request: web.Request, me: staff.Session) -> web.Response:
    """Set an unmatched entry aside with a note; nothing is booked."""
    return await _entry_step(request, me, "dismiss", "bank_dismissed")


@lists.staff_only
async def take_back(request: web.Request, me: staff.Session) -> web.Response:
    """Take back a wrong match: the order is open again, the entry back on the unmatched list."""
    return await _entry_step(request, me, "take-back", "bank_taken_back", optional=True)


def install(app: web.Application) -> None:
    """The bank statement screen: upload, unmatched entries (assign, dismiss), statements."""
    app.router.add_get(PATH, bank_page)
    app.router.add_post(PATH, upload)
    app.router.add_post(PATH + "/entries/{id}/assign", assign)
    app.router.add_post(PATH + "/entries/{id}/dismiss", dismiss)
    app.router.add_post(PATH + "/entries/{id}/take-back", take_back)
