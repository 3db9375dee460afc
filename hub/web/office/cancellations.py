"""The office's cancellation screens (issue 16 "Refunds and cancellations"): cancel lines of an
order behind a preview, and the refunds to pay out.

Why this shape: the office app has no JavaScript, so the order page's line table carries a
checkbox per line for a GET form (`/office/orders/{id}/cancel?line=...`); that page asks for the
reason, a fee and how to refund, and shows what the API's preview (`POST .../cancellations/quote`)
says the cancellation will do: each line's credit, the claims dropped, the refunds by method, the
invoice that gets a Stornorechnung. Only the confirmation posts (form token and origin checked),
and only to the API's own operation (`api_call`), so the office cancels exactly as the API
would, refused for the same reasons in the page's language. A second confirmation of the same
lines is the API's 409, shown. The refunds list shows what the office still owes customers and
records each one paid out (with the card terminal's or payment service's reference where the
method needs one).
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from hub.services import staff
from hub.web.office import api_call, lists, money, order_money, views

REFUNDS = "/office/refunds"
METHODS = ("original", "cash", "transfer")
MAX_LINES = 200


def _cents(text: str) -> int | None:
    """A euro amount as typed ("5", "5,50", "5.50") in cents; None for anything else."""
    raw = text.strip().replace(".", ",")
    whole, _, part = raw.partition(",")
    if not whole.isdigit() or len(whole) > 7 or (part and (not part.isdigit() or len(part) > 2)):
        return None
    return int(whole) * 100 + int((part + "00")[:2]) if part else int(whole) * 100


def _body(request: web.Request, form, lines: list[str]) -> tuple[dict, str | None]:
    """The API body from the page's fields, or the message of what is wrong with them. *lines*:
    the marked lines (the order page's checkboxes; the confirmation carries them as one field)."""
    m = money.text(request)
    lines = list(dict.fromkeys(line.strip() for line in lines if line.strip()))[:MAX_LINES]
    fee_text = (form.get("fee") or "").strip()
    fee = _cents(fee_text) if fee_text else 0
    method = form.get("refund") if form.get("refund") in METHODS else "original"
    body = {"line_ids": lines, "reason": (form.get("reason") or "").strip()[:180], "fee_cents": fee or 0,
            "refund_method": method}
    if not lines:
        return body, m["cn_e_lines"]
    if fee is None:
        return body, m["cn_e_fee"]
    return body, None


async def _order(request: web.Request, me: staff.Session, order_id: str) -> dict | web.Response:
    try:
        return await api_call.call(request, me, "GET", f"/orders/{order_id}")
    except api_call.Refused as exc:
        return views.render(request, "message.html", exc.status, message=money.refusal(request, exc))


def _page(request: web.Request, me: staff.Session, order: dict, body: dict, *, quote: dict | None = None,
          error: str | None = None, status: int = 200) -> web.Response:
    lang = views._lang(request)
    chosen = set(body["line_ids"])
    return views.render(request, "order_cancel.html", status, me=me, csrf=me.csrf, m=money.text(request), o=order,
                        lines=[i for i in order["items"] if i["id"] in chosen], body=body, quote=quote,
                        error=error, euros=views._euros(lang), fee=_euro_text(body["fee_cents"]))


def _euro_text(cents: int) -> str:
    return f"{cents // 100},{cents % 100:02d}" if cents else ""


@lists.staff_only
async def cancel_page(request: web.Request, me: staff.Session) -> web.Response:
    """The chosen lines, the reason/fee/refund fields and, once a reason is given, the API's preview."""
    order = await _order(request, me, request.match_info["id"])
    if isinstance(order, web.Response):
        return order
    body, error = _body(request, request.query, request.query.getall("line", []))
    quote = None
    if error is None and body["reason"]:
        try:
            quote = await api_call.call(request, me, "POST", f"/orders/{order['id']}/cancellations/quote", body)
        except api_call.Refused as exc:
            return _page(request, me, order, body, error=money.refusal(request, exc), status=exc.status)
    return _page(request, me, order, body, quote=quote, error=error, status=422 if error else 200)


@lists.staff_only
async def cancel_lines(request: web.Request, me: staff.Session) -> web.Response:
    """Cancel the lines (once: a second POST is the API's 409, shown on the preview page)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    order = await _order(request, me, request.match_info["id"])
    if isinstance(order, web.Response):
        return order
    body, error = _body(request, form, (form.get("lines") or "").split(","))
    if error is None and not body["reason"]:
        error = money.text(request)["cn_e_reason"]
    if error:
        return _page(request, me, order, body, error=error, status=422)
    try:
        done = await api_call.call(request, me, "POST", f"/orders/{order['id']}/cancellations", body)
    except api_call.Refused as exc:
        return _page(request, me, order, body, error=money.refusal(request, exc), status=exc.status)
    raise web.HTTPSeeOther(f"/office/orders/{order['id']}?" + urlencode(
        {"done": "cn_done", "n": str(len(done["lines"])), "c": str(done["refund_cents"])}))


# --- refunds to pay out ---------------------------------------------------------------------------------


@lists.staff_only
async def refunds_page(request: web.Request, me: staff.Session) -> web.Response:
    """The refunds still to pay out, oldest first, then the last ones paid out."""
    error = None
    due = done = {"items": [], "total": 0}
    try:
        due = await api_call.call(request, me, "GET", "/refunds", query={"state": "pending", "limit": 500})
        done = await api_call.call(request, me, "GET", "/refunds", query={"state": "paid", "limit": 500})
    except api_call.Refused as exc:
        error = money.refusal(request, exc)
    lang = views._lang(request)
    paid = sorted(done["items"], key=lambda r: r["created_at"], reverse=True)[:20]
    return views.render(request, "money_refunds.html", 403 if error else 200, me=me, csrf=me.csrf,
                        m=money.text(request), due=due, paid=paid, error=error, note=order_money.note(request),
                        euros=views._euros(lang), when=views._when)


@lists.staff_only
async def pay_out(request: web.Request, me: staff.Session) -> web.Response:
    """"Ausgezahlt": the refund is paid out today (with the reference where its method needs one)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    reference = (form.get("reference") or "").strip()[:200] or None
    try:
        done = await api_call.call(request, me, "POST", f"/refunds/{request.match_info['id']}/paid-out",
                                   {"reference": reference})
    except api_call.Refused as exc:
        return views.render(request, "message.html", exc.status, message=money.refusal(request, exc))
    raise web.HTTPSeeOther(REFUNDS + "?" + urlencode({"done": "rf_paid", "n": done["order_number"],
                                                      "c": str(done["amount_cents"])}))


def install(app: web.Application) -> None:
    app.router.add_get("/office/orders/{id}/cancel", cancel_page)
    app.router.add_post("/office/orders/{id}/cancel", cancel_lines)
    app.router.add_get(REFUNDS, refunds_page)
    app.router.add_post(REFUNDS + "/{id}/paid-out", pay_out)
