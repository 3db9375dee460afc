"""The office's phone sale of a subscription on the seat map (issue 13): ring, choice (N of M)
and combi.

Why this shape: one form the hub re-renders at every step, as the annual phone sale
(`sales.py`), so everything the clerk has chosen travels in the form and nothing is kept on
the hub until the summary. The steps: the product; for a choice the N dates; then a map per
seating plan (a ring group) drawn by the one renderer with only the seats free in all its
dates (the API's availability); a click on a seat (`seatpick.js`, or Enter/Space on the
focused seat) puts it into the form and re-renders. Where a plan variant of the group lacks
the seat (the pit rows when the pit is open), the page steps through that variant: its own
map with the nearest free seat pre-selected, to accept or replace (the API's variant steps).
"Hold" keeps the seats of every date for this staff member (`POST /seat-holds`), so a shop
buyer cannot take them mid-call; "Cancel" releases them. Then customer (the annual sale's
customer part), tier with the catalog's prices, form, delivery, payment, and the summary.

Confirming is exactly once: the summary is kept under a one-time number (`sales.Draft`) that
is also the sale's `Idempotency-Key`, so a double click or a reload answers the first sale
again. Every state change is an API operation through `api_call`; prices are never read
from the form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from aiohttp import web

from core.subscriptions.sale import SubscriptionSaleIn
from hub.services import office_subscriptions as subs
from hub.services import staff
from hub.web.api import DB
from hub.web.office import api_call, lists, sales, views
from hub.web.office.text import TEXT

PATH = "/office/subscriptions/new"
SCRIPT = "/office/static/seatpick.js"
SCRIPT_FILE = Path(__file__).parents[1] / "static" / "office" / "seatpick.js"
SEATED = ("ring", "choice", "combi")
FORMS = ("pass", "single_tickets", "both")
HOLD_SECONDS = 900  # a phone call's time to choose; the API allows up to 2 h
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")


@dataclass
class Pick:
    """The sale as far as the form has it (every id checked by the API when it is used)."""

    product: dict | None = None
    dates: list[str] = field(default_factory=list)  # a choice's N dates
    seats: dict[str, str] = field(default_factory=dict)  # ring/choice: plan -> seat; combi: performance -> seat
    repl: dict[str, str] = field(default_factory=dict)  # variant -> replacement seat
    view: dict[str, str] = field(default_factory=dict)  # plan -> the variant whose map is shown
    hold_id: str = ""


# --- reading the form -----------------------------------------------------------------------------------


def _prefixed(form: dict, prefix: str) -> dict[str, str]:
    return {k.removeprefix(prefix): v.strip() for k, v in form.items() if k.startswith(prefix) and v.strip()}


async def _products(request: web.Request, me: staff.Session) -> dict[str, dict]:
    """The seated subscription products (ring, choice, combi) of the catalog, active, by id."""
    found = await api_call.call(request, me, "GET", "/subscription-products", query={"limit": 500})
    return {p["id"]: p for p in found["items"] if p["active"] and p["kind"] in SEATED}


def _pick(form: dict, products: dict[str, dict]) -> Pick:
    product = products.get(form.get("product_id", ""))
    if product is None:
        return Pick()
    dates = [p for p in product["performance_ids"] if form.get("date_" + p)]
    return Pick(product, dates, _prefixed(form, "seat_"), _prefixed(form, "repl_"), _prefixed(form, "view_"),
                form.get("hold_id", "").strip())


def _dates_ready(pick: Pick) -> bool:
    return pick.product is not None and (pick.product["kind"] != "choice"
                                         or len(pick.dates) == pick.product["pick_count"])


def _chosen(pick: Pick) -> dict[str, str] | None:
    """`performance_ids` for the API: a choice's chosen dates, else None (all dates)."""
    return {"performance_ids": ",".join(pick.dates)} if pick.product["kind"] == "choice" else None


# --- the seats ------------------------------------------------------------------------------------------


async def _offer(request: web.Request, me: staff.Session, pick: Pick) -> dict:
    """Free-in-all seats per ring group and variant (or per date for a combi), from the API."""
    return await api_call.call(request, me, "GET", f"/subscription-products/{pick.product['id']}/availability",
                               query=_chosen(pick))


async def _steps(request: web.Request, me: staff.Session, pick: Pick, offer: dict) -> list[dict]:
    """The variant steps of the seats picked (none until every group has its seat)."""
    seats = [pick.seats.get(g["plan_id"]) for g in offer["groups"]]
    if pick.product["kind"] == "combi" or not seats or not all(seats):
        return []
    found = await api_call.call(request, me, "GET", f"/subscription-products/{pick.product['id']}/variant-steps",
                                query={"seat_ids": ",".join(seats), **(_chosen(pick) or {})})
    return found["steps"]


def _bookings(pick: Pick, offer: dict, steps: list[dict]) -> list[dict] | None:
    """(performance, seat) for every date once every seat and replacement is chosen, else None."""
    if pick.product["kind"] == "combi":
        out = [{"performance_id": p["performance_id"], "seat_id": pick.seats.get(p["performance_id"], "")}
               for p in offer["performances"]]
        return out if out and all(b["seat_id"] for b in out) else None
    stepped = {s["variant_id"] for s in steps}
    out = []
    for group in offer["groups"]:
        seat = pick.seats.get(group["plan_id"])
        for variant in group["variants"]:
            chosen = pick.repl.get(variant["variant_id"]) if variant["variant_id"] in stepped else seat
            if not chosen:
                return None
            out += [{"performance_id": p, "seat_id": chosen} for p in variant["performance_ids"]]
    return out or None


def _body(pick: Pick, offer: dict, steps: list[dict]) -> dict:
    """The seats of the sale as the API's SubscriptionSaleIn takes them (no price: the catalog's)."""
    if pick.product["kind"] == "combi":
        return {"seats": _bookings(pick, offer, steps) or []}
    body = {"seat_ids": [pick.seats[g["plan_id"]] for g in offer["groups"] if g["plan_id"] in pick.seats],
            "replacements": [{"variant_id": s["variant_id"], "seat_id": pick.repl[s["variant_id"]]}
                             for s in steps if s["variant_id"] in pick.repl]}
    return {**body, "performance_ids": pick.dates} if pick.product["kind"] == "choice" else body


def _maps(request: web.Request, pick: Pick, offer: dict, steps: list[dict], lang: str) -> list[dict]:
    """One map per ring group (the variant shown: the clerk's choice, else the lead), then one
    per variant step; a combi one per date. Each with the form field a click fills."""
    db, perfs = request.app[DB], subs.performances(request.app[DB], pick.product["performance_ids"])
    held = bool(pick.hold_id)
    if pick.product["kind"] == "combi":
        return [{"key": "seat_" + p["performance_id"], "value": pick.seats.get(p["performance_id"], ""),
                 "title": perfs[p["performance_id"]]["title"], "when": views._when(perfs[p["performance_id"]]
                                                                                  ["starts_at"]),
                 "svg": subs.seat_map(db, p["variant_id"], [] if held else p["free_seat_ids"],
                                      [pick.seats.get(p["performance_id"], "")], lang)}
                for p in offer["performances"]]
    names = subs.variant_names(db, {v["variant_id"] for g in offer["groups"] for v in g["variants"]})
    out = []
    for n, group in enumerate(offer["groups"]):
        variants = {v["variant_id"]: v for v in group["variants"]}
        shown = variants.get(pick.view.get(group["plan_id"], "")) or group["variants"][0]
        seat = pick.seats.get(group["plan_id"], "")
        out.append({"key": "seat_" + group["plan_id"], "value": seat, "group": n + 1, "plan": group["plan_id"],
                    "variant": names[shown["variant_id"]], "dates": len(group["performance_ids"]),
                    "tabs": [{"id": v["variant_id"], "name": names[v["variant_id"]], "dates":
                              len(v["performance_ids"]), "shown": v is shown} for v in group["variants"]],
                    "svg": subs.seat_map(db, shown["variant_id"], [] if held else shown["free_seat_ids"], [seat],
                                         lang)})
    for step in steps:
        chosen = pick.repl.get(step["variant_id"]) or step["suggestion"] or ""
        pick.repl.setdefault(step["variant_id"], chosen)
        out.append({"key": "repl_" + step["variant_id"], "value": chosen, "step": step,
                    "variant": names.get(step["variant_id"], ""), "dates": len(step["performance_ids"]),
                    "svg": subs.seat_map(db, step["variant_id"], [] if held else step["free_seat_ids"], [chosen],
                                         lang)})
    return out


def _booked_rows(request: web.Request, bookings: list[dict]) -> list[dict]:
    """The seat per date, as the clerk reads it back: date, title, variant, section, row, seat."""
    db = request.app[DB]
    perfs = subs.performances(db, {b["performance_id"] for b in bookings})
    seats = subs.seat_names(db, {b["seat_id"] for b in bookings})
    rows = [{"perf": perfs[b["performance_id"]], "seat": seats.get(b["seat_id"])} for b in bookings
            if b["performance_id"] in perfs]
    return sorted(rows, key=lambda r: (r["perf"]["starts_at"], r["perf"]["id"]))


# --- the page -------------------------------------------------------------------------------------------


async def _page(request: web.Request, me: staff.Session, form: dict, *, error: str | None = None,
                note: str | None = None, summary: dict | None = None, status: int = 200) -> web.Response:
    lang = views._lang(request)
    products = await _products(request, me)
    pick = _pick(form, products)
    ctx: dict = {"pick": pick, "maps": [], "booked": [], "tiers": [], "forms": [], "zones": [], "choice_dates": []}
    if pick.product and pick.product["kind"] == "choice":
        ctx["choice_dates"] = list(subs.performances(request.app[DB], pick.product["performance_ids"]).values())
    if form.get("product_id") and pick.product is None:
        error, status = error or TEXT[lang]["ss_e_product"], max(status, 400)
    if _dates_ready(pick):
        try:
            ctx.update(await _seats_part(request, me, pick, lang))
        except api_call.Refused as exc:  # a seat id the API refuses: say so, draw the maps without picks
            error, status = error or TEXT[lang]["sale_e_refused"].format(a=exc.detail), max(status, 400)
            pick = Pick(pick.product, pick.dates, view=pick.view)
            ctx.update(await _seats_part(request, me, pick, lang), pick=pick)
    chosen = await sales._customer(request, me, form.get("customer_id", ""))
    hits = await sales._search(request, me, form.get("q", ""))
    customers = ([chosen] if chosen else []) + [h for h in hits if not chosen or h["id"] != chosen["id"]]
    response = views.render(request, "subscription_sale.html", status, me=me, csrf=me.csrf, form=form,
                            products=products.values(), customers=customers, error=error, note=note,
                            summary=summary, payments=sales.PAYMENTS, deliveries=sales.DELIVERIES,
                            euros=views._euros(lang), when=views._when, script=SCRIPT, **ctx)
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


async def _seats_part(request: web.Request, me: staff.Session, pick: Pick, lang: str) -> dict:
    """The maps (with the variant steps), the seats booked per date, the zones for best
    available, the tiers with their prices for these seats, and the forms the product allows."""
    offer = await _offer(request, me, pick)
    steps = await _steps(request, me, pick, offer)
    maps = _maps(request, pick, offer, steps, lang)  # fills the suggested replacements in
    bookings = _bookings(pick, offer, steps)
    options = pick.product["print_options"]
    return {"maps": maps, "booked": _booked_rows(request, bookings) if bookings else [],
            "zones": _zones(request, offer, pick), "forms": FORMS if options == "both" else (options,),
            "tiers": subs.tier_prices(request.app[DB], pick.product, _zones_by_perf(request, bookings))
            if bookings else []}


def _zones_by_perf(request: web.Request, bookings: list[dict]) -> dict[str, str]:
    seats = subs.seat_names(request.app[DB], {b["seat_id"] for b in bookings})
    return {b["performance_id"]: seats[b["seat_id"]]["zone_id"] for b in bookings if b["seat_id"] in seats}


def _zones(request: web.Request, offer: dict, pick: Pick) -> list[dict]:
    """The price zones of the first map, for best available."""
    first = offer["performances"][0]["variant_id"] if pick.product["kind"] == "combi" and offer["performances"] \
        else offer["groups"][0]["variants"][0]["variant_id"] if offer["groups"] else None
    return subs.zones_of_map(request.app[DB], first) if first else []


@lists.staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """The empty sale; `?customer=ID` pre-selects a customer, `?product=ID` a product."""
    form = {"customer_id": request.query.get("customer", ""), "product_id": request.query.get("product", ""),
            "delivery": "mail", "payment_method": "transfer", "q": request.query.get("q", "")}
    return await _page(request, me, form)


@lists.staff_only
async def step(request: web.Request, me: staff.Session) -> web.Response:
    """Every button of the sale but the confirmation: product, pick, variant tab, best available,
    hold, cancel, customer search, check (the summary)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    action = form.get("action", "")
    try:
        if action in ("product", "pick", "best") and form.get("hold_id"):
            await _release(request, me, form)  # other seats: the old hold goes first
        if action.startswith("view:"):
            _, plan, variant = (action.split(":") + ["", ""])[:3]
            form["view_" + plan] = variant
        elif action == "best":
            await _best(request, me, form)
        elif action == "hold":
            await _hold(request, me, form)
        elif action == "cancel":
            await _release(request, me, form)
            return await _page(request, me, _fresh(form), note=t["ss_released"])
        elif action == "check":
            return await _page(request, me, form, summary=await _summary(request, me, form))
    except sales.SaleRefused as exc:
        return await _page(request, me, form, error=t[exc.key].format(a=exc.arg), status=400)
    except api_call.Refused as exc:
        return await _page(request, me, form, error=t["sale_e_refused"].format(a=exc.detail),
                           status=exc.status if exc.status >= 400 else 400)
    return await _page(request, me, form)


def _fresh(form: dict) -> dict:
    """The form without its seats and hold (after a cancel): product, dates and customer stay."""
    return {k: v for k, v in form.items() if not k.startswith(("seat_", "repl_", "hold_id"))}


async def _release(request: web.Request, me: staff.Session, form: dict) -> None:
    """DELETE /seat-holds/{id} (only this staff member's own hold is found)."""
    hold_id = form.pop("hold_id", "").strip()
    if hold_id:
        try:
            await api_call.call(request, me, "DELETE", f"/seat-holds/{hold_id}")
        except api_call.Refused as exc:
            if exc.status != 404:  # gone already (expired): nothing to release
                raise


async def _best(request: web.Request, me: staff.Session, form: dict) -> None:
    """Best available (zone, wheelchair) from the API, put into the form as picks."""
    pick = _pick(form, await _products(request, me))
    if not _dates_ready(pick):
        raise sales.SaleRefused("ss_e_dates")
    query = {"count": 1, "zone_id": form.get("best_zone", "").strip() or None,
             "wheelchair": 1 if form.get("best_wheelchair") else 0, **(_chosen(pick) or {})}
    found = await api_call.call(request, me, "GET", f"/subscription-products/{pick.product['id']}/best-available",
                                query=query)
    if not found["found"]:
        raise sales.SaleRefused("ss_e_none")
    for key in [k for k in form if k.startswith(("seat_", "repl_"))]:
        form.pop(key)
    if pick.product["kind"] == "combi":
        form.update({"seat_" + b["performance_id"]: b["seat_id"] for b in found["bookings"]})
        return
    offer = await _offer(request, me, pick)
    seat_of = {b["performance_id"]: b["seat_id"] for b in found["bookings"]}
    for group in offer["groups"]:
        lead = group["variants"][0]
        form["seat_" + group["plan_id"]] = seat_of[lead["performance_ids"][0]]
        form["view_" + group["plan_id"]] = lead["variant_id"]
        for variant in group["variants"][1:]:
            seat = seat_of[variant["performance_ids"][0]]
            if seat != form["seat_" + group["plan_id"]]:
                form["repl_" + variant["variant_id"]] = seat


async def _hold(request: web.Request, me: staff.Session, form: dict) -> None:
    """Hold the seat of every date for this staff member (all or none), replacing an older hold."""
    pick = _pick(form, await _products(request, me))
    if not _dates_ready(pick):
        raise sales.SaleRefused("ss_e_dates")
    offer = await _offer(request, me, pick)
    steps = await _steps(request, me, pick, offer)
    for s in steps:
        if s["variant_id"] not in pick.repl:
            raise sales.SaleRefused("ss_e_step")
    bookings = _bookings(pick, offer, steps)
    if not bookings:
        raise sales.SaleRefused("ss_e_seats")
    await _release(request, me, form)
    held = await api_call.call(request, me, "POST", "/seat-holds", {"seats": bookings, "ttl_seconds": HOLD_SECONDS})
    form["hold_id"] = held["id"]


async def _summary(request: web.Request, me: staff.Session, form: dict) -> dict:
    """The checked sale with the catalog's price, kept as a one-time draft (its number is the
    sale's Idempotency-Key); refused with nothing kept while something is missing."""
    products = await _products(request, me)
    pick = _pick(form, products)
    if not _dates_ready(pick) or not pick.hold_id:
        raise sales.SaleRefused("ss_e_hold")
    offer = await _offer(request, me, pick)
    steps = await _steps(request, me, pick, offer)
    bookings = _bookings(pick, offer, steps)
    if not bookings:
        raise sales.SaleRefused("ss_e_seats")
    customer, new = await sales._chosen_customer(request, me, form)
    tier_id = form.get("tier_id", "").strip() or None
    prices = {t["id"] or None: t for t in subs.tier_prices(request.app[DB], pick.product,
                                                           _zones_by_perf(request, bookings))}
    if tier_id not in prices:
        raise sales.SaleRefused("ss_e_tier")
    if form.get("delivery") not in sales.DELIVERIES:
        raise sales.SaleRefused("sale_e_delivery")
    if form.get("payment_method") not in sales.PAYMENTS:
        raise sales.SaleRefused("sale_e_payment")
    holder = sales._holder(form.get("holder_name", "")) or None  # on the pass; none: the customer's name
    body = {"product_id": pick.product["id"], "tier_id": tier_id, "form": form.get("form") or None,
            "holder_name": holder,
            **_body(pick, offer, steps), "delivery": form["delivery"], "payment_method": form["payment_method"],
            "payment_reference": form.get("payment_reference", "").strip() or None}
    try:  # the API's own body type: a value it would refuse is refused here, before the summary
        msgspec.convert({**body, "customer_id": customer["id"] if customer else pick.product["id"]},
                        SubscriptionSaleIn, strict=False)
    except msgspec.ValidationError as exc:
        raise sales.SaleRefused("sale_e_order_bad", str(exc)) from None
    nonce = sales._keep(request, sales.Draft(me.staff_id, body, new, views._now(request),
                                             customer_id=customer["id"] if customer else None))
    return {"nonce": nonce, "product": pick.product, "tier": prices[tier_id], "customer": customer or new,
            "new": new is not None, "booked": _booked_rows(request, bookings), "body": body}


# --- confirming -----------------------------------------------------------------------------------------


@lists.staff_only
async def confirm(request: web.Request, me: staff.Session) -> web.Response:
    """Sell the draft once (POST /subscriptions with its number as Idempotency-Key); a second
    POST of it leads to the same subscription. A lost seat: the message, alternatives, nothing sold."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    nonce = form.get("nonce", "")
    draft: sales.Draft | None = request.app[sales.DRAFTS].get(nonce)
    if draft is None or draft.staff_id != me.staff_id or "product_id" not in draft.order:
        return views.render(request, "message.html", 409, message=t["sale_e_draft"])
    if draft.order_id:
        raise web.HTTPSeeOther(f"/office/subscriptions/{draft.order_id}")
    if draft.busy:
        return views.render(request, "message.html", 409, message=t["sale_e_busy"])
    draft.busy = True
    try:
        sold = await _sell(request, me, draft, nonce)
    except api_call.Refused as exc:
        return await _lost(request, me, draft, exc)
    finally:
        draft.busy = False
    raise web.HTTPSeeOther(f"/office/subscriptions/{sold['id']}")


async def _sell(request: web.Request, me: staff.Session, draft: sales.Draft, nonce: str) -> dict:
    """POST /customers (a new customer, once) and POST /subscriptions, as the staff member."""
    if draft.customer_id is None and draft.new_customer is not None:
        draft.customer_id = (await api_call.call(request, me, "POST", "/customers", draft.new_customer))["id"]
    sold = await api_call.call(request, me, "POST", "/subscriptions", {**draft.order, "customer_id":
                                                                       draft.customer_id},
                               headers={"Idempotency-Key": nonce})
    draft.order_id = sold["id"]
    return sold


async def _lost(request: web.Request, me: staff.Session, draft: sales.Draft,
                exc: api_call.Refused) -> web.Response:
    """The API refused the sale (e.g. a seat sold meanwhile): say why, propose the best seats
    available now (same product, any zone), and sell nothing."""
    t = TEXT[views._lang(request)]
    product_id = draft.order["product_id"]
    query = {"count": 1, **({"performance_ids": ",".join(draft.order["performance_ids"])}
                            if draft.order.get("performance_ids") else {})}
    try:
        best = await api_call.call(request, me, "GET", f"/subscription-products/{product_id}/best-available",
                                   query=query)
    except api_call.Refused:
        best = {"found": False, "bookings": []}
    alternatives = _booked_rows(request, best["bookings"]) if best["found"] else []
    return views.render(request, "subscription_lost.html", exc.status if exc.status >= 400 else 409, me=me,
                        csrf=me.csrf, message=t["ss_e_lost"].format(a=exc.detail), alternatives=alternatives,
                        product_id=product_id, when=views._when, customer_id=draft.customer_id or "")


async def script(request: web.Request) -> web.Response:
    """The seat map's click and key handler (no inline script: the sale page allows 'self' only)."""
    return web.Response(body=SCRIPT_FILE.read_bytes(), content_type="text/javascript", charset="utf-8",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


def install(app: web.Application) -> None:
    """The sale page, its steps and confirmation, and the seat map's script. Before the
    subscription detail route, so that /office/subscriptions/new is this page."""
    app.setdefault(sales.DRAFTS, {})
    app.router.add_get(PATH, show)
    app.router.add_post(PATH, step)
    app.router.add_post(PATH + "/confirm", confirm)
    app.router.add_get(SCRIPT, script)
