"""The office's SEPA direct-debit screens (issue 16 "Everywhere", S12, B4): a customer's
mandates (record one, with the IBAN checks' refusals in the page's language; change the
account; cancel), and "Lastschriften": a creditor's collection account, the preview of the next
run (what would be collected, what is held back and why), the export (the run and its pain.008
file to download), the runs, and the submitted debits to mark collected or returned (reason
code and fee).

Why this shape: every step is one API operation run in-process (`api_call`), so the IBAN check,
the sequence types, the TARGET calendar and the lead time are the rules of core/payments and
nothing else; a refusal shows the page again with the form as typed and nothing stored. A POST
that succeeded leads back to its page (303) with what was done, so a reload repeats nothing.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from aiohttp import web

from hub.services import office_money, staff
from hub.web.api import DB
from hub.web.office import api_call, lists, money, order_money, views
from hub.web.office.money_text import RETURN_CODES

PATH = "/office/sepa"
FEE = re.compile(r"^\d{1,6}([.,]\d{1,2})?$", re.ASCII)
MANDATE_FIELDS = ("organizer_id", "reference", "iban", "bic", "signed_on", "kind", "debtor_name")


def _back(path: str, **query: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(path + "?" + urlencode({k: v for k, v in query.items() if v}))


def _cents(text: str) -> int | None:
    """A fee typed in euros (3,50 or 3.50) as cents; None if it is not an amount."""
    text = text.strip()
    if not text:
        return 0
    if not FEE.match(text):
        return None
    euros, _, cents = text.replace(",", ".").partition(".")
    return int(euros) * 100 + int((cents + "00")[:2])


def _account(form) -> dict:  # noqa: ANN001 - the form's multidict
    """IBAN and (if typed) BIC of a form, as the API takes them."""
    bic = form.get("bic", "").strip()
    return {"iban": form.get("iban", "").strip(), **({"bic": bic} if bic else {})}


def _creditors(request: web.Request) -> list[dict]:
    return [o for o in office_money.organizers(request.app[DB]) if o["sepa_creditor_id"]]


# --- mandates of a customer --------------------------------------------------------------------------------


def _mandates_path(customer_id: str) -> str:
    return f"/office/customers/{customer_id}/mandates"


async def _mandates_page(request: web.Request, me: staff.Session, customer_id: str, *, form: dict | None = None,
                         error: str | None = None, status: int = 200) -> web.Response:
    customer = office_money.customer(request.app[DB], customer_id)
    if customer is None:
        raise web.HTTPNotFound(text="customer not found / Kunde nicht gefunden")
    found = await api_call.call(request, me, "GET", "/sepa-mandates", query={"customer_id": customer["id"]})
    creditors = _creditors(request)
    names = {o["id"]: o["name"] for o in office_money.organizers(request.app[DB])}
    today = views._now(request).date().isoformat()
    form = form or {"kind": "recurring", "signed_on": today,
                    "organizer_id": creditors[0]["id"] if len(creditors) == 1 else ""}
    return views.render(request, "money_mandates.html", status, me=me, csrf=me.csrf, m=money.text(request),
                        c=customer, mandates=found["items"], creditors=creditors, names=names, form=form,
                        error=error, note=order_money.note(request), day=order_money.day, today=today)


@lists.staff_only
async def mandates_page(request: web.Request, me: staff.Session) -> web.Response:
    """The customer's mandates, the form for a new one, and each active one's change and cancel."""
    return await _mandates_page(request, me, request.match_info["id"])


@lists.staff_only
async def create_mandate(request: web.Request, me: staff.Session) -> web.Response:
    """Record a mandate (`POST /sepa-mandates`); a refusal shows the form as typed with the reason."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    customer_id = request.match_info["id"]
    kept = {k: form.get(k, "").strip() for k in MANDATE_FIELDS}
    body = {"customer_id": customer_id, **{k: v for k, v in kept.items() if v}}
    try:
        made = await api_call.call(request, me, "POST", "/sepa-mandates", body)
    except api_call.Refused as exc:
        if exc.status == 404 or office_money.customer(request.app[DB], customer_id) is None:
            raise web.HTTPNotFound(text="customer not found / Kunde nicht gefunden") from None
        return await _mandates_page(request, me, customer_id, form=kept, error=money.refusal(request, exc),
                                    status=exc.status)
    raise _back(_mandates_path(customer_id), done="md_made", r=made["reference"])


async def _mandate_step(request: web.Request, me: staff.Session, step: str, body: dict, done_key: str):
    customer_id, mandate_id = request.match_info["id"], request.match_info["mandate"]
    try:
        mandate = await api_call.call(request, me, "GET", f"/sepa-mandates/{mandate_id}")
        if mandate["customer_id"] != customer_id:
            raise api_call.Refused(404, "no such mandate of this customer")
        await api_call.call(request, me, "POST", f"/sepa-mandates/{mandate_id}/{step}", body)
    except api_call.Refused as exc:
        if exc.status == 404:
            raise web.HTTPNotFound(text="mandate not found / Mandat nicht gefunden") from None
        return await _mandates_page(request, me, customer_id, error=money.refusal(request, exc), status=exc.status)
    raise _back(_mandates_path(customer_id), done=done_key, r=mandate["reference"])


@lists.staff_only
async def amend_mandate(request: web.Request, me: staff.Session) -> web.Response:
    """A new account for the mandate (the reference stays; the next debit tells the bank)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    return await _mandate_step(request, me, "amend", _account(form), "md_amended")


@lists.staff_only
async def cancel_mandate(request: web.Request, me: staff.Session) -> web.Response:
    """Cancel the mandate: no new debits; due ones are held back at export."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    reason = form.get("reason", "").strip()
    return await _mandate_step(request, me, "cancel", {"reason": reason or None}, "md_cancelled_done")


# --- Lastschriften: account, preview, export, runs, returns --------------------------------------------------


@lists.staff_only
async def sepa_page(request: web.Request, me: staff.Session) -> web.Response:
    """`?organizer=`: the creditor's account, the preview of the next run, its runs, and the
    submitted debits (default: the first creditor)."""
    return await _sepa_page(request, me, request.query.get("organizer", "")[:64])


async def _sepa_page(request: web.Request, me: staff.Session, organizer_id: str, *, error: str | None = None,
                     status: int = 200, form: dict | None = None) -> web.Response:
    creditors = _creditors(request)
    chosen = next((o for o in creditors if o["id"] == organizer_id), creditors[0] if creditors else None)
    ctx: dict = {"account": None, "preview": None, "runs": [], "debits": [], "orders": {}}
    if chosen:
        try:
            ctx["account"] = await api_call.call(request, me, "GET", f"/organizers/{chosen['id']}/sepa-account")
        except api_call.Refused:
            pass  # none yet: the page asks for it
        ctx["runs"] = (await api_call.call(request, me, "GET", "/sepa-runs",
                                           query={"organizer_id": chosen["id"]}))["items"]
        try:
            ctx["preview"] = await api_call.call(request, me, "GET", "/sepa-runs/preview",
                                                 query={"organizer_id": chosen["id"]})
        except api_call.Refused as exc:
            error = error or money.refusal(request, exc)
        ctx["debits"] = (await api_call.call(request, me, "GET", "/sepa-debits",
                                             query={"state": "submitted", "limit": 500}))["items"]
        ctx["orders"] = office_money.order_numbers(request.app[DB], [d["order_id"] for d in ctx["debits"]])
    lang = views._lang(request)
    return views.render(request, "money_sepa.html", status, me=me, csrf=me.csrf, m=money.text(request),
                        creditors=creditors, org=chosen, error=error, note=order_money.note(request),
                        euros=views._euros(lang), day=order_money.day, when=views._when, codes=RETURN_CODES,
                        form=form or {}, **ctx)


@lists.staff_only
async def set_account(request: web.Request, me: staff.Session) -> web.Response:
    """The creditor's collection account (`PUT /organizers/{id}/sepa-account`)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    org = form.get("organizer_id", "")
    body = _account(form)
    days = form.get("prenotification_days", "").strip()
    if days:  # a number the API checks (1 to 30); anything else goes as typed and is refused there
        body["prenotification_days"] = int(days) if days.isascii() and days.isdigit() and len(days) < 4 else days
    try:
        await api_call.call(request, me, "PUT", f"/organizers/{org}/sepa-account", body)
    except api_call.Refused as exc:
        return await _sepa_page(request, me, org, error=money.refusal(request, exc), status=exc.status,
                                form={"iban": body["iban"], "prenotification_days": days})
    raise _back(PATH, organizer=org, done="sepa_account_done")


@lists.staff_only
async def export_run(request: web.Request, me: staff.Session) -> web.Response:
    """Create the run (`POST /sepa-runs`): its debits are submitted; the page offers the file."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    org = form.get("organizer_id", "")
    body = {"organizer_id": org, **({"collection_date": form["collection_date"]}
                                    if form.get("collection_date") else {})}
    try:
        run = await api_call.call(request, me, "POST", "/sepa-runs", body)
    except api_call.Refused as exc:
        return await _sepa_page(request, me, org, error=money.refusal(request, exc), status=exc.status)
    raise _back(PATH, organizer=org, done="sepa_exported", m=run["message_id"], n=str(run["debits"]),
                c=str(run["total_cents"]))


@lists.staff_only
async def run_file(request: web.Request, me: staff.Session) -> web.Response:
    """A run's pain.008 file as the bank software takes it."""
    try:
        run = await api_call.call(request, me, "GET", f"/sepa-runs/{request.match_info['id']}")
        media = await api_call.call(request, me, "GET", f"/sepa-runs/{run['id']}/file")
    except api_call.Refused as exc:
        return views.render(request, "message.html", exc.status, message=money.refusal(request, exc))
    return money.download(media, f"{run['message_id']}.xml")


@lists.staff_only
async def debit_returned(request: web.Request, me: staff.Session) -> web.Response:
    """A Rücklastschrift: the reason code and the fee passed on (the item is open again)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    org, m = form.get("organizer_id", ""), money.text(request)
    fee = _cents(form.get("fee", ""))
    if fee is None:
        return await _sepa_page(request, me, org, error=m["e_fee"], status=422)
    body = {"reason": form.get("reason", ""), **({"fee_cents": fee} if fee else {})}
    try:
        await api_call.call(request, me, "POST", f"/sepa-debits/{request.match_info['id']}/return", body)
    except api_call.Refused as exc:
        return await _sepa_page(request, me, org, error=money.refusal(request, exc), status=exc.status)
    raise _back(PATH, organizer=org, done="sepa_returned_done")


@lists.staff_only
async def debit_collected(request: web.Request, me: staff.Session) -> web.Response:
    """The bank credited the debit: its payment is paid."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    org = form.get("organizer_id", "")
    try:
        await api_call.call(request, me, "POST", f"/sepa-debits/{request.match_info['id']}/collected")
    except api_call.Refused as exc:
        return await _sepa_page(request, me, org, error=money.refusal(request, exc), status=exc.status)
    raise _back(PATH, organizer=org, done="sepa_collected_done")


def install(app: web.Application) -> None:
    """The mandates of a customer and the Lastschriften screen."""
    app.router.add_get("/office/customers/{id}/mandates", mandates_page)
    app.router.add_post("/office/customers/{id}/mandates", create_mandate)
    app.router.add_post("/office/customers/{id}/mandates/{mandate}/amend", amend_mandate)
    app.router.add_post("/office/customers/{id}/mandates/{mandate}/cancel", cancel_mandate)
    app.router.add_get(PATH, sepa_page)
    app.router.add_post(PATH + "/account", set_account)
    app.router.add_post(PATH + "/runs", export_run)
    app.router.add_get(PATH + "/runs/{id}/file", run_file)
    app.router.add_post(PATH + "/debits/{id}/return", debit_returned)
    app.router.add_post(PATH + "/debits/{id}/collected", debit_collected)
