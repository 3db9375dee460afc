"""The office app's Print batches screen (/office/print): jobs waiting or failed (with the printer's
own error), the batches made, "make a print batch", "retry failed jobs" and each batch's PDF.

Why through `api_call` only, reads included: the print queue's rules (which jobs a batch takes, one
batch at a time, a failed job waits for a retry) live in `hub.services.print_batches` behind the API's
printing operations; the office shows what GET /print-jobs and GET /print-batches answer and acts with
POST /print-batches and POST /print-jobs/retry. A batch renders in a thread and the POST waits for it,
so the form says "printing…" in the button's place while the browser waits (plain HTML, no script).

The PDF download is GET /print-batches/{id}/pdf: the hub's own copy of the batch, named after the
batch id parsed as a UUID (a path in the address is a 404, never a file).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from hub.services import staff
from hub.web.office import api_call, lists, views
from hub.web.office.text import TEXT

PATH = "/office/print"
SHOWN = 100  # jobs and batches on the screen (the API's page size limit is higher)


async def _page(request: web.Request, me: staff.Session, status: int = 200, **ctx) -> web.Response:
    jobs = await api_call.call(request, me, "GET", "/print-jobs", query={"limit": SHOWN})
    batches = await api_call.call(request, me, "GET", "/print-batches", query={"limit": SHOWN})
    waiting = [j for j in jobs["items"] if j["state"] == "queued"]
    failed = [j for j in jobs["items"] if j["state"] == "failed"]
    made = next((b for b in batches["items"] if b["id"] == request.query.get("made")), None)
    if made and "made" not in ctx:  # back from making a batch (a GET: a reload prints nothing again)
        t = TEXT[views._lang(request)]
        ctx.update(made=made, notice=t["pr_made"].format(n=made["jobs"], k=t["pk_" + made["kind"]]))
    return views.render(request, "print.html", status, me=me, csrf=me.csrf, waiting=waiting, failed=failed,
                        jobs_total=jobs["total"], batches=batches["items"], batches_total=batches["total"],
                        when=views._when, **ctx)


@lists.staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """Jobs waiting and failed, batches made, and the two forms."""
    return await _page(request, me)



@lists.staff_only
async def make_batch(request: web.Request, me: staff.Session) -> web.Response:
    """POST /print-batches with the chosen kind; the page says what was printed or why not."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    try:
        made = await api_call.call(request, me, "POST", "/print-batches", {"kind": form.get("kind", "")})
    except api_call.Refused as exc:
        return await _page(request, me, exc.status, error=t["pr_refused"].format(d=exc.detail))
    if made["batch_id"]:
        raise web.HTTPSeeOther(f"{PATH}?made={made['batch_id']}")
    if made["failed"]:
        return await _page(request, me, 200, error=t["pr_failed"].format(n=made["failed"]))
    return await _page(request, me, 200, notice=t["pr_nothing"])


@lists.staff_only
async def retry(request: web.Request, me: staff.Session) -> web.Response:
    """POST /print-jobs/retry: every failed job (or the one named) back into the queue."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    body = {"job_ids": [form["job"]]} if form.get("job") else {}
    try:
        done = await api_call.call(request, me, "POST", "/print-jobs/retry", body)
    except api_call.Refused as exc:
        return await _page(request, me, exc.status, error=t["pr_refused"].format(d=exc.detail))
    return await _page(request, me, notice=t["pr_requeued"].format(n=done["requeued"]))


@lists.staff_only
async def pdf(request: web.Request, me: staff.Session) -> web.Response:
    """A batch's PDF as an attachment (GET /print-batches/{id}/pdf)."""
    try:
        answer = await api_call.call(request, me, "GET", f"/print-batches/{request.match_info['id']}/pdf")
    except api_call.Refused as exc:
        status = 404 if exc.status in (400, 404) else exc.status
        return views.render(request, "message.html", status, message=TEXT[views._lang(request)]["not_found"])
    name = f"tessera-print-{uuid.UUID(request.match_info['id'])}.pdf"  # the API found it: a UUID
    return web.Response(body=answer.body, headers={**views.HEADERS, "Content-Type": answer.content_type,
                                            "Content-Disposition": f'attachment; filename="{name}"'})


def install(app: web.Application) -> None:
    """Add the print screen, its two POSTs and the PDF download."""
    app.router.add_get(PATH, show)
    app.router.add_post(PATH + "/batch", make_batch)
    app.router.add_post(PATH + "/retry", retry)
    app.router.add_get(PATH + "/{id}.pdf", pdf)
