"""The office app's phone sale of annual tickets (A6, issue 12) and staff personalization of an
order item on the customer's behalf.

Why this shape: the page must work without JavaScript (the office's CSP allows none), so the
sale is one form that the hub re-renders: pick or enter the customer, choose products and
quantities, press "Next" and a holder field appears per card ("Karteninhaber/in 1, 2, ...");
with every holder given, "Next" shows the summary. The summary's prices come from the hub's
own catalog (the API's product list), never from the form: the form has no price field, and
one posted anyway is not read.

Confirming is exactly once: the checked order is kept on the hub under a one-time number
(`Draft`) that the summary's form carries; the confirmation posts only that number. A second
POST of it (a double click, a reload) finds the draft already used and leads to the same
order; a number the hub does not know (a restart, another staff member's) is refused with
nothing stored. The order itself and a new customer are made by the API's own operations
(`api_call`: POST /customers, POST /orders, POST /order-items/{id}/personalize).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field

import msgspec
from aiohttp import web

from core.base.errors import ValidationError
from core.catalog.common import Address, check_address
from core.catalog.customers import CustomerIn
from core.sales.orders import HolderIn, OrderIn
from hub.services import staff
from hub.web.office import api_call, lists, views
from hub.web.office.text import TEXT

PATH = "/office/orders/new"
PAYMENTS = ("transfer", "sepa", "card", "cash")  # what OrderIn allows for a sale by phone
DELIVERIES = ("mail", "pickup")
LINE_ROWS = 3  # product rows on the form (the API takes up to 20 lines)
MAX_QUANTITY = 20  # cards per line, as the API's LineIn
SEARCH_HITS = 10
DRAFT_LIFE = dt.timedelta(hours=2)
MAX_DRAFTS = 1000
_NOT_A_NAME = re.compile(r"[<>\x00-\x1f\x7f]")


@dataclass
class Draft:
    """A checked sale waiting for its one confirmation."""

    staff_id: str
    order: dict  # the OrderIn body, without customer_id when the customer is new
    new_customer: dict | None
    made_at: dt.datetime
    order_id: str | None = None
    busy: bool = False
    customer_id: str | None = field(default=None)


DRAFTS = web.AppKey("office_sale_drafts", dict)


class SaleRefused(Exception):
    """A form value the sale cannot take: *key* names the message in text.py, *arg* fills it."""

    def __init__(self, key: str, arg: str = "") -> None:
        super().__init__(key)
        self.key, self.arg = key, arg


# --- reading the form -----------------------------------------------------------------------------------


def _quantity(text: str) -> int:
    try:
        quantity = int(text.strip() or "1")
    except ValueError:
        raise SaleRefused("sale_e_qty", str(MAX_QUANTITY)) from None
    if not 1 <= quantity <= MAX_QUANTITY:
        raise SaleRefused("sale_e_qty", str(MAX_QUANTITY))
    return quantity


def _holder(text: str) -> str:
    """A holder's name as printed on the card: no markup or control characters, 1-200 characters."""
    name = text.strip()
    if _NOT_A_NAME.search(name) or len(name) > 200:
        raise SaleRefused("sale_e_holder_bad")
    return name


def _lines(form: dict, products: dict[str, dict]) -> list[dict]:
    """The product rows in use: product (one the catalog sells by phone), quantity, holders given."""
    lines = []
    for row in range(LINE_ROWS):
        product_id = form.get(f"product_{row}", "").strip()
        if not product_id:
            continue
        if product_id not in products:
            raise SaleRefused("sale_e_product")
        quantity = _quantity(form.get(f"qty_{row}", ""))
        holders = [_holder(form.get(f"holder_{row}_{k}", "")) for k in range(quantity)]
        lines.append({"row": row, "product": products[product_id], "quantity": quantity, "holders": holders})
    if not lines:
        raise SaleRefused("sale_e_no_lines")
    return lines


def _new_customer(form: dict) -> dict:
    """The new customer as the API's CustomerIn takes it, checked by that type and its address rule."""
    data = {"first_name": form.get("c_first_name", "").strip(), "last_name": form.get("c_last_name", "").strip(),
            "address": {"street": form.get("c_street", "").strip(), "postcode": form.get("c_postcode", "").strip(),
                        "town": form.get("c_town", "").strip()},
            "email": form.get("c_email", "").strip() or None, "phone": form.get("c_phone", "").strip() or None}
    if any(_NOT_A_NAME.search(v) for v in (data["first_name"], data["last_name"], *data["address"].values())):
        raise SaleRefused("sale_e_customer_bad", "")
    try:
        checked = msgspec.convert(data, CustomerIn)
        check_address(msgspec.convert(data["address"], Address))
    except msgspec.ValidationError as exc:
        raise SaleRefused("sale_e_customer_bad", str(exc)) from None
    except ValidationError as exc:
        raise SaleRefused("sale_e_customer_bad", exc.detail) from None
    return msgspec.to_builtins(checked)


async def _customer(request: web.Request, me: staff.Session, customer_id: str) -> dict | None:
    """An existing customer through the API (GET /customers/{id}); None if there is none."""
    if not customer_id:
        return None
    try:
        return await api_call.call(request, me, "GET", f"/customers/{customer_id}")
    except api_call.Refused:
        return None


async def _search(request: web.Request, me: staff.Session, text: str) -> list[dict]:
    """Customers matching *text* (name, number, e-mail) as the API's search finds them."""
    if not text.strip():
        return []
    try:
        found = await api_call.call(request, me, "GET", "/customers", query={"q": text.strip()[:200],
                                                                             "limit": SEARCH_HITS})
    except api_call.Refused:
        return []
    return found["items"]


async def _products(request: web.Request, me: staff.Session) -> dict[str, dict]:
    """The annual-ticket products on sale by phone, from the hub's catalog, by id."""
    found = await api_call.call(request, me, "GET", "/annual-ticket-products", query={"active": "true",
                                                                                      "limit": 500})
    return {p["id"]: p for p in found["items"] if p["active"] and "phone" in p["channels"]}


# --- the page -------------------------------------------------------------------------------------------


async def _page(request: web.Request, me: staff.Session, form: dict, *, error: str | None = None,
                show_holders: bool = False, status: int = 200) -> web.Response:
    lang = views._lang(request)
    products = await _products(request, me)
    chosen = await _customer(request, me, form.get("customer_id", ""))
    hits = await _search(request, me, form.get("q", ""))
    options = ([chosen] if chosen else []) + [h for h in hits if not chosen or h["id"] != chosen["id"]]
    rows = [{"row": r, "product_id": form.get(f"product_{r}", ""), "qty": form.get(f"qty_{r}", "1" if r == 0 else "")}
            for r in range(LINE_ROWS)]
    holders = _holder_fields(form, products) if show_holders else []
    return views.render(request, "sale.html", status, me=me, csrf=me.csrf, form=form, products=products.values(),
                        customers=options, rows=rows, holders=holders, error=error, payments=PAYMENTS,
                        deliveries=DELIVERIES, euros=views._euros(lang), max_qty=MAX_QUANTITY)


def _holder_fields(form: dict, products: dict[str, dict]) -> list[dict]:
    """One field per card, numbered across the whole order (1, 2, 3 ...), with the product's name."""
    fields, number = [], 0
    for row in range(LINE_ROWS):
        product = products.get(form.get(f"product_{row}", ""))
        if product is None:
            continue
        try:
            quantity = _quantity(form.get(f"qty_{row}", ""))
        except SaleRefused:
            continue
        for k in range(quantity):
            number += 1
            fields.append({"name": f"holder_{row}_{k}", "number": number, "product": product["name"],
                           "value": form.get(f"holder_{row}_{k}", "")})
    return fields


@lists.staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """The empty sale form; `?customer=ID` pre-selects a customer, `?q=` searches customers."""
    form = {"q": request.query.get("q", ""), "customer_id": request.query.get("customer", ""),
            "delivery": "mail", "payment_method": "transfer"}
    return await _page(request, me, form)



@lists.staff_only
async def check(request: web.Request, me: staff.Session) -> web.Response:
    """"Next": the holder fields while some are missing, then the summary with the catalog's prices."""
    form = await views._form(request)
    if not views.posted_ok(request, me, form):
        return views._refused(request)
    t = TEXT[views._lang(request)]
    try:
        summary = await _summary(request, me, form)
    except SaleRefused as exc:
        return await _page(request, me, form, error=t[exc.key].format(a=exc.arg), show_holders=True, status=400)
    if summary is None:  # lines fine, holders still to fill in
        return await _page(request, me, form, show_holders=True)
    return views.render(request, "sale_check.html", me=me, csrf=me.csrf, s=summary,
                        euros=views._euros(views._lang(request)))


async def _summary(request: web.Request, me: staff.Session, form: dict) -> dict | None:
    """The checked sale and its draft number, or None while a holder name is missing."""
    products = await _products(request, me)
    lines = _lines(form, products)
    if form.get("holders_shown") != "1" or any(not h for line in lines for h in line["holders"]):
        if form.get("holders_shown") == "1":
            raise SaleRefused("sale_e_holder")
        return None
    customer, new = await _chosen_customer(request, me, form)
    if form.get("delivery") not in DELIVERIES:
        raise SaleRefused("sale_e_delivery")
    if form.get("payment_method") not in PAYMENTS:
        raise SaleRefused("sale_e_payment")
    order = {"lines": [{"product_id": line["product"]["id"], "quantity": line["quantity"],
                        "holders": [{"name": h} for h in line["holders"]]} for line in lines],
             "delivery": form["delivery"], "payment_method": form["payment_method"],
             "payment_reference": form.get("payment_reference", "").strip() or None}
    try:  # the API's own body type: a value it would refuse is refused here, before the summary
        msgspec.convert({**order, "customer_id": customer["id"] if customer else None}, OrderIn)
    except msgspec.ValidationError as exc:
        raise SaleRefused("sale_e_order_bad", str(exc)) from None
    nonce = _keep(request, Draft(me.staff_id, order, new, views._now(request),
                                 customer_id=customer["id"] if customer else None))
    priced = [{**line, "price_cents": line["product"]["price_cents"],
               "sum_cents": line["quantity"] * line["product"]["price_cents"]} for line in lines]
    return {"nonce": nonce, "lines": priced, "total_cents": sum(p["sum_cents"] for p in priced),
            "customer": customer or new, "new": new is not None, "delivery": order["delivery"],
            "payment_method": order["payment_method"], "payment_reference": order["payment_reference"]}


async def _chosen_customer(request: web.Request, me: staff.Session, form: dict) -> tuple[dict | None, dict | None]:
    """(existing customer, None) or (None, the new customer's data)."""
    choice = form.get("customer_id", "")
    if choice == "new":
        return None, _new_customer(form)
    customer = await _customer(request, me, choice)
    if customer is None:
        raise SaleRefused("sale_e_no_customer")
    return customer, None


def _keep(request: web.Request, draft: Draft) -> str:
    """Store the draft under a new one-time number; old and surplus drafts are dropped."""
    drafts: dict[str, Draft] = request.app[DRAFTS]
    for old in [n for n, d in drafts.items() if d.made_at < draft.made_at - DRAFT_LIFE]:
        drafts.pop(old)
    while len(drafts) >= MAX_DRAFTS:  # the oldest first (a dict keeps the order of insertion)
        drafts.pop(next(iter(drafts)))
    nonce = secrets.token_urlsafe(24)
    drafts[nonce] = draft
    return nonce


# --- confirming -----------------------------------------------------------------------------------------


@lists.staff_only
async def confirm(request: web.Request, me: staff.Session) -> web.Response:
    """Place the order of the draft once; any further POST of the same draft leads to that order."""
    form = await views._form(request)
    if not views.posted_ok(request, me, form):
        return views._refused(request)
    t = TEXT[views._lang(request)]
    draft: Draft | None = request.app[DRAFTS].get(form.get("nonce", ""))
    if draft is None or draft.staff_id != me.staff_id:
        return views.render(request, "message.html", 409, message=t["sale_e_draft"])
    if draft.order_id:
        raise web.HTTPSeeOther(f"/office/orders/{draft.order_id}")
    if draft.busy:
        return views.render(request, "message.html", 409, message=t["sale_e_busy"])
    draft.busy = True
    try:
        order = await _place(request, me, draft)
    except api_call.Refused as exc:
        return views.render(request, "message.html", exc.status, message=t["sale_e_refused"].format(a=exc.detail))
    finally:
        draft.busy = False
    raise web.HTTPSeeOther(f"/office/orders/{order['id']}")


async def _place(request: web.Request, me: staff.Session, draft: Draft) -> dict:
    """POST /customers (a new customer, once) and POST /orders, as the staff member."""
    if draft.customer_id is None and draft.new_customer is not None:
        draft.customer_id = (await api_call.call(request, me, "POST", "/customers", draft.new_customer))["id"]
    order = await api_call.call(request, me, "POST", "/orders", {**draft.order, "customer_id": draft.customer_id})
    draft.order_id = order["id"]
    return order


# --- personalizing an item for the customer -------------------------------------------------------------


@lists.staff_only
async def personalize(request: web.Request, me: staff.Session) -> web.Response:
    """The holder of one item of this order, as the customer on the phone gives it."""
    form = await views._form(request)
    if not views.posted_ok(request, me, form):
        return views._refused(request)
    t = TEXT[views._lang(request)]
    order_id, item_id = request.match_info["id"], request.match_info["item"]
    try:
        order = await api_call.call(request, me, "GET", f"/orders/{order_id}")
    except api_call.Refused:
        raise web.HTTPNotFound(text=t["not_found"]) from None
    if not any(i["id"] == item_id for i in order["items"]):
        raise web.HTTPNotFound(text=t["not_found"])
    try:
        name = _holder(form.get("name", ""))
        msgspec.convert({"name": name}, HolderIn)
        await api_call.call(request, me, "POST", f"/order-items/{item_id}/personalize", {"name": name})
    except SaleRefused as exc:
        return views.render(request, "message.html", 400, message=t[exc.key])
    except msgspec.ValidationError:
        return views.render(request, "message.html", 400, message=t["sale_e_holder_bad"])
    except api_call.Refused as exc:
        return views.render(request, "message.html", exc.status, message=t["sale_e_refused"].format(a=exc.detail))
    raise web.HTTPSeeOther(f"/office/orders/{order_id}")


def install(app: web.Application) -> None:
    """The sale form, its "Next" and "Confirm" POSTs, and the staff personalization POST. Before
    the order detail route, so that /office/orders/new is this page and not an order id."""
    app[DRAFTS] = {}
    app.router.add_get(PATH, show)
    app.router.add_post(PATH, check)
    app.router.add_post(PATH + "/confirm", confirm)
    app.router.add_post("/office/orders/{id}/items/{item}/personalize", personalize)
