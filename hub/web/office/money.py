"""The office's money screens (issue 16 "Everywhere"): the open items (Offene Posten), an
order's invoices (issue, PDF, duplicate, cancel behind a confirmation page) and its SEPA debit,
and the DATEV export.

Why this shape: every change and every figure goes through the API's operations in-process
(`api_call`), so an invoice issued at the office is the invoice the API would issue, refused for
the same reasons, in the page's language where the rule gives `detail_de`. The order page
(`lists.order_page`) shows the money part (`order_money.read`); its buttons post here and lead
back to it with what was done, or show it again with the refusal. Files (invoice PDF, DATEV
batch) are the API's bytes handed on as a download.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from aiohttp import web

from core.base.clock import LOCAL_TZ
from hub.services import office_money, staff
from hub.web.api import DB
from hub.web.office import api_call, lists, order_money, views
from hub.web.office.money_text import TEXT

OPEN_ITEMS = "/office/open-items"
DATEV = "/office/datev"
PAGE_SIZE = 50
LANGS = ("de", "en")


def text(request: web.Request) -> dict[str, str]:
    return TEXT[views._lang(request)]


def refusal(request: web.Request, exc: api_call.Refused) -> str:
    """The API's refusal in the page's language (German where the rule gives it)."""
    return text(request)["refused"].format(a=exc.in_lang(views._lang(request)))


def download(media, name: str) -> web.Response:
    """The API's file (an `api.Media`) as an attachment named *name*."""
    return web.Response(body=media.body, headers={**views.HEADERS, "Content-Type": media.content_type,
                                                  "Content-Disposition": f'attachment; filename="{name}"'})


def _order_back(order_id: str, note: str, **args: str) -> web.HTTPSeeOther:
    """Back to the order page, saying what was done (`order_money.note`)."""
    return web.HTTPSeeOther(f"/office/orders/{order_id}?" + urlencode({"done": note, **args}))


# --- open items -----------------------------------------------------------------------------------------


def _page_number(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or 1), 100_000))
    except ValueError:
        return 1


@lists.staff_only
async def open_items(request: web.Request, me: staff.Session) -> web.Response:
    """`?customer=` a customer's number (or id): all open items, oldest due date first, with the
    days overdue, what is open and the sums of the whole list."""
    m, db = text(request), request.app[DB]
    q = request.query.get("customer", "").strip()[:views.MAX_FIELD]
    page = _page_number(request.query.get("page"))
    customer, error = None, None
    query: dict = {"limit": PAGE_SIZE, "offset": (page - 1) * PAGE_SIZE}
    if q:
        customer = office_money.customer(db, q)
        if customer is None:
            error = m["e_oi_customer"].format(q=q)
        else:
            query["customer_id"] = customer["id"]
    found = {"items": [], "total": 0, "open_cents": 0, "overdue_cents": 0}
    if error is None:
        try:
            found = await api_call.call(request, me, "GET", "/open-items", query=query)
        except api_call.Refused as exc:
            error = refusal(request, exc)
    return views.render(request, "money_open_items.html", 404 if error and q else 200, me=me, csrf=me.csrf, m=m,
                        found=found, q=q, customer=customer, error=error, page=page, size=PAGE_SIZE,
                        euros=views._euros(views._lang(request)), day=order_money.day)


# --- an order's invoices and debit --------------------------------------------------------------------


@lists.staff_only
async def issue_invoice(request: web.Request, me: staff.Session) -> web.Response:
    """"Rechnung erstellen": the order's lines not yet invoiced, in the chosen language."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    order_id = request.match_info["id"]
    language = form.get("language") if form.get("language") in LANGS else views._lang(request)
    try:
        done = await api_call.call(request, me, "POST", f"/orders/{order_id}/invoices", {"language": language})
    except api_call.Refused as exc:
        return await lists.render_order(request, me, order_id, error=refusal(request, exc), status=exc.status)
    raise _order_back(order_id, "inv_issued", n=done["number"])


@lists.staff_only
async def invoice_pdf(request: web.Request, me: staff.Session) -> web.Response:
    """The invoice's PDF (`?duplicate=1`: the duplicate marked "Duplikat") as a download."""
    duplicate = request.query.get("duplicate") in ("1", "true")
    invoice_id = request.match_info["id"]
    try:
        invoice = await api_call.call(request, me, "GET", f"/invoices/{invoice_id}")
        media = await api_call.call(request, me, "GET", f"/invoices/{invoice_id}/pdf",
                                    query={"duplicate": "true" if duplicate else None})
    except api_call.Refused as exc:
        return views.render(request, "message.html", exc.status, message=refusal(request, exc))
    return download(media, f"{'duplikat' if duplicate else 'rechnung'}-{invoice['number']}.pdf")


@lists.staff_only
async def cancel_page(request: web.Request, me: staff.Session) -> web.Response:
    """The confirmation page of "Stornieren": what the cancellation does, a reason, the button."""
    try:
        invoice = await api_call.call(request, me, "GET", f"/invoices/{request.match_info['id']}")
    except api_call.Refused as exc:
        return views.render(request, "message.html", exc.status, message=refusal(request, exc))
    return views.render(request, "money_invoice_cancel.html", me=me, csrf=me.csrf, m=text(request), i=invoice,
                        euros=views._euros(views._lang(request)), day=order_money.day, error=None)


@lists.staff_only
async def cancel_invoice(request: web.Request, me: staff.Session) -> web.Response:
    """Issue the cancellation invoice (once: a second POST is the API's 409, shown)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    invoice_id = request.match_info["id"]
    try:
        invoice = await api_call.call(request, me, "GET", f"/invoices/{invoice_id}")
        done = await api_call.call(request, me, "POST", f"/invoices/{invoice_id}/cancel",
                                   {"reason": form.get("reason", "").strip() or None})
    except api_call.Refused as exc:
        if exc.status == 404:
            return views.render(request, "message.html", 404, message=refusal(request, exc))
        return views.render(request, "money_invoice_cancel.html", exc.status, me=me, csrf=me.csrf, m=text(request),
                            i=invoice, euros=views._euros(views._lang(request)), day=order_money.day,
                            error=refusal(request, exc))
    raise _order_back(invoice["order_id"], "inv_cancelled", n=done["number"])


@lists.staff_only
async def create_debit(request: web.Request, me: staff.Session) -> web.Response:
    """"Lastschrift anlegen": a debit of the order's open SEPA payment by the customer's mandate."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    order_id = request.match_info["id"]
    body = {"order_id": order_id, **({"mandate_id": form["mandate_id"]} if form.get("mandate_id") else {})}
    try:
        await api_call.call(request, me, "POST", "/sepa-debits", body)
    except api_call.Refused as exc:
        return await lists.render_order(request, me, order_id, error=refusal(request, exc), status=exc.status)
    raise _order_back(order_id, "deb_made")


# --- DATEV ----------------------------------------------------------------------------------------------


def _today(request: web.Request) -> dt.date:
    return views._now(request).astimezone(LOCAL_TZ).date()


@lists.staff_only
async def datev_page(request: web.Request, me: staff.Session) -> web.Response:
    """The from/to form; by default this month up to today."""
    today = _today(request)
    return views.render(request, "money_datev.html", me=me, csrf=me.csrf, m=text(request), error=None,
                        start=today.replace(day=1).isoformat(), end=today.isoformat())


@lists.staff_only
async def datev_file(request: web.Request, me: staff.Session) -> web.Response:
    """`?from=&to=`: the API's Buchungsstapel as a download, or the form again with the refusal
    (a range over two fiscal years, no [datev] numbers in hub.toml, a malformed day)."""
    start, end = request.query.get("from", "")[:10], request.query.get("to", "")[:10]
    try:
        if not start or not end:
            raise api_call.Refused(400, text(request)["e_day"])
        media = await api_call.call(request, me, "GET", "/exports/datev", query={"from": start, "to": end})
    except api_call.Refused as exc:
        return views.render(request, "money_datev.html", exc.status, me=me, csrf=me.csrf, m=text(request),
                            error=refusal(request, exc), start=start, end=end)
    return download(media, f"EXTF_Buchungsstapel_{start.replace('-', '')}_{end.replace('-', '')}.csv")


def install(app: web.Application) -> None:
    """The open items, the invoice and debit actions of the order page, the DATEV export."""
    app.router.add_get(OPEN_ITEMS, open_items)
    app.router.add_post("/office/orders/{id}/invoices", issue_invoice)
    app.router.add_post("/office/orders/{id}/sepa-debit", create_debit)
    app.router.add_get("/office/invoices/{id}/pdf", invoice_pdf)
    app.router.add_get("/office/invoices/{id}/cancel", cancel_page)
    app.router.add_post("/office/invoices/{id}/cancel", cancel_invoice)
    app.router.add_get(DATEV, datev_page)
    app.router.add_get(DATEV + "/file", datev_file)
