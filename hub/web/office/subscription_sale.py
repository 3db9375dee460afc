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

A party side by side (a couple, a family): "Anzahl Abos" (`party`) is the number of
subscriptions of the one order. Each map then takes that many seats (a click adds a seat, a
second click gives it back; the field holds the ids in member order, comma-separated), a
variant step as many replacements as members lack their seat there, and every member has
its own tier and pass name. Member k is the k-th seat on every map.

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
MAX_PARTY = 10  # subscriptions side by side in one phone sale
HOLD_SECONDS = 900  # a phone call's time to choose; the API allows up to 2 h
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")


@dataclass
class Pick:
    """The sale as far as the form has it (every id checked by the API when it is used)."""

    product: dict | None = None
    dates: list[str] = field(default_factory=list)  # a choice's N dates
    seats: dict[str, list[str]] = field(default_factory=dict)  # ring/choice: plan -> seats; combi: per performance
    repl: dict[str, list[str]] = field(default_factory=dict)  # variant -> replacements of the members lacking theirs
    view: dict[str, str] = field(default_factory=dict)  # plan -> the variant whose map is shown
    hold_id: str = ""
    party: int = 1  # subscriptions side by side: member k has the k-th seat of every map


# --- reading the form -----------------------------------------------------------------------------------


def _prefixed(form: dict, prefix: str) -> dict[str, str]:
    return {k.removeprefix(prefix): v.strip() for k, v in form.items() if k.startswith(prefix) and v.strip()}


async def _products(request: web.Request, me: staff.Session) -> dict[str, dict]:
    """The seated subscription products (ring, choice, combi) of the catalog, active, by id."""
    found = await api_call.call(request, me, "GET", "/subscription-products", query={"limit": 500})
    return {p["id"]: p for p in found["items"] if p["active"] and p["kind"] in SEATED}


def party_of(form: dict) -> int:
    """`party`, the number of subscriptions side by side: 1 to MAX_PARTY, else refused."""
    raw = (form.get("party") or "1").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTY:
        raise sales.SaleRefused("ss_e_party", str(MAX_PARTY))
    return int(raw)


def _ids(value: str, most: int) -> list[str]:
    """Seat ids of a map's field (comma-separated, member order): distinct, at most *most*."""
    return list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))[:most]


def _pick(form: dict, products: dict[str, dict]) -> Pick:
    product = products.get(form.get("product_id", ""))
    if product is None:
        return Pick()
    try:
        party = party_of(form)
    except sales.SaleRefused:
        party = 1  # the step says so; the page shows one
    dates = [p for p in product["performance_ids"] if form.get("date_" + p)]
    return Pick(product, dates, {k: _ids(v, party) for k, v in _prefixed(form, "seat_").items()},
                {k: _ids(v, party) for k, v in _prefixed(form, "repl_").items()}, _prefixed(form, "view_"),
                form.get("hold_id", "").strip(), party)


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
    """The variant steps of the seats picked (none until every group has a seat per member)."""
    seats = [pick.seats.get(g["plan_id"], []) for g in offer["groups"]]
    if pick.product["kind"] == "combi" or not seats or any(len(s) != pick.party for s in seats):
        return []
    found = await api_call.call(request, me, "GET", f"/subscription-products/{pick.product['id']}/variant-steps",
                                query={"seat_ids": ",".join(s for group in seats for s in group),
                                       **(_chosen(pick) or {})})
    return found["steps"]


def _lacking(steps: list[dict]) -> set[tuple[str, str]]:
    """(variant, seat) pairs: the variants that lack a member's seat."""
    return {(s["variant_id"], s["missing_seat_id"]) for s in steps}


def _bookings(pick: Pick, offer: dict, steps: list[dict]) -> list[list[dict]] | None:
    """Per member, (performance, seat) for every date once every seat and replacement is chosen,
    else None."""
    n = pick.party
    if pick.product["kind"] == "combi":
        per = [(p["performance_id"], pick.seats.get(p["performance_id"], [])) for p in offer["performances"]]
        if not per or any(len(seats) != n for _, seats in per):
            return None
        return [[{"performance_id": perf, "seat_id": seats[k]} for perf, seats in per] for k in range(n)]
    lacking, out = _lacking(steps), [[] for _ in range(n)]
    for group in offer["groups"]:
        seats = pick.seats.get(group["plan_id"], [])
        if len(seats) != n:
            return None
        for variant in group["variants"]:
            v = variant["variant_id"]
            without = [k for k in range(n) if (v, seats[k]) in lacking]
            repl = pick.repl.get(v, [])
            if len(repl) != len(without):
                return None
            for k in range(n):
                chosen = repl[without.index(k)] if k in without else seats[k]
                out[k] += [{"performance_id": p, "seat_id": chosen} for p in variant["performance_ids"]]
    return out if out[0] else None


def _members(pick: Pick, offer: dict, steps: list[dict]) -> list[dict]:
    """The members' seats as the API's `members` take them (no price: the catalog's)."""
    if pick.product["kind"] == "combi":
        return [{"seats": b} for b in _bookings(pick, offer, steps) or []]
    lacking = _lacking(steps)
    members: list[dict] = [{"seat_ids": [], "replacements": []} for _ in range(pick.party)]
    for group in offer["groups"]:
        seats = pick.seats.get(group["plan_id"], [])
        for k, seat in enumerate(seats):
            members[k]["seat_ids"].append(seat)
        for variant in group["variants"]:
            v = variant["variant_id"]
            without = [k for k in range(len(seats)) if (v, seats[k]) in lacking]
            for k, chosen in zip(without, pick.repl.get(v, []), strict=False):
                members[k]["replacements"].append({"variant_id": v, "seat_id": chosen})
    return members


def _maps(request: web.Request, pick: Pick, offer: dict, steps: list[dict], lang: str) -> list[dict]:
    """One map per ring group (the variant shown: the clerk's choice, else the lead), then one
    per variant step; a combi one per date. Each with the form field a click fills and how many
    seats it takes (`max`: the party, or the members lacking their seat in a step's variant)."""
    db, perfs = request.app[DB], subs.performances(request.app[DB], pick.product["performance_ids"])
    held, n = bool(pick.hold_id), pick.party
    if pick.product["kind"] == "combi":
        return [{"key": "seat_" + p["performance_id"], "value": ",".join(pick.seats.get(p["performance_id"], [])),
                 "max": n, "title": perfs[p["performance_id"]]["title"],
                 "when": views._when(perfs[p["performance_id"]]["starts_at"]),
                 "svg": subs.seat_map(db, p["variant_id"], [] if held else p["free_seat_ids"],
                                      pick.seats.get(p["performance_id"], []), lang)}
                for p in offer["performances"]]
    names = subs.variant_names(db, {v["variant_id"] for g in offer["groups"] for v in g["variants"]})
    out = []
    for k, group in enumerate(offer["groups"]):
        variants = {v["variant_id"]: v for v in group["variants"]}
        shown = variants.get(pick.view.get(group["plan_id"], "")) or group["variants"][0]
        seats = pick.seats.get(group["plan_id"], [])
        out.append({"key": "seat_" + group["plan_id"], "value": ",".join(seats), "max": n, "group": k + 1,
                    "plan": group["plan_id"], "variant": names[shown["variant_id"]],
                    "dates": len(group["performance_ids"]),
                    "tabs": [{"id": v["variant_id"], "name": names[v["variant_id"]], "dates":
                              len(v["performance_ids"]), "shown": v is shown} for v in group["variants"]],
                    "svg": subs.seat_map(db, shown["variant_id"], [] if held else shown["free_seat_ids"], seats,
                                         lang)})
    return out + [_step_map(db, pick, step, names, lang) for step in _by_variant(steps)]


def _by_variant(steps: list[dict]) -> list[dict]:
    """The API's steps (one per member and variant) as one step per variant, its members' seats in order."""
    out: dict[str, dict] = {}
    for step in steps:
        entry = out.setdefault(step["variant_id"], {**step, "missing": [], "suggestions": []})
        entry["missing"].append(step["missing_seat_id"])
        entry["suggestions"].append(step["suggestion"])
    return list(out.values())


def _step_map(db, pick: Pick, step: dict, names: dict[str, str], lang: str) -> dict:
    """A variant's step: its map with the replacements chosen, the nearest free ones suggested
    (each once); the party's own seats there are not offered again."""
    v, want = step["variant_id"], len(step["missing"])
    chosen = (pick.repl.get(v) or list(dict.fromkeys(s for s in step["suggestions"] if s)))[:want]
    pick.repl[v] = chosen
    own = {seat for seats in pick.seats.values() for seat in seats}
    free = [] if pick.hold_id else [s for s in step["free_seat_ids"] if s not in own]
    return {"key": "repl_" + v, "value": ",".join(chosen), "max": want, "step": step,
            "variant": names.get(v, ""), "dates": len(step["performance_ids"]),
            "svg": subs.seat_map(db, v, free, chosen, lang)}


def _booked_rows(request: web.Request, bookings: list[dict], member: int = 1) -> list[dict]:
    """The seat per date, as the clerk reads it back: date, title, variant, section, row, seat."""
    db = request.app[DB]
    perfs = subs.performances(db, {b["performance_id"] for b in bookings})
    seats = subs.seat_names(db, {b["seat_id"] for b in bookings})
    rows = [{"perf": perfs[b["performance_id"]], "seat": seats.get(b["seat_id"]), "member": member}
            for b in bookings if b["performance_id"] in perfs]
    return sorted(rows, key=lambda r: (r["perf"]["starts_at"], r["perf"]["id"]))


def _party_rows(request: web.Request, members: list[list[dict]]) -> list[dict]:
    """Every member's seat per date, by date, then member."""
    rows = [row for k, bookings in enumerate(members) for row in _booked_rows(request, bookings, k + 1)]
    return sorted(rows, key=lambda r: (r["perf"]["starts_at"], r["perf"]["id"], r["member"]))


def _member_keys(k: int) -> tuple[str, str]:
    """The form fields of member k (from 0): the first keeps `tier_id` and `holder_name`."""
    return ("tier_id", "holder_name") if k == 0 else (f"tier_id_{k + 1}", f"holder_name_{k + 1}")


# --- the page -------------------------------------------------------------------------------------------


async def _page(request: web.Request, me: staff.Session, form: dict, *, error: str | None = None,
                note: str | None = None, summary: dict | None = None, status: int = 200) -> web.Response:
    lang = views._lang(request)
    products = await _products(request, me)
    pick = _pick(form, products)
    ctx: dict = {"pick": pick, "maps": [], "booked": [], "members": [], "forms": [], "zones": [], "choice_dates": []}
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
    members = [{"n": k + 1, "keys": _member_keys(k),
                "tiers": subs.tier_prices(request.app[DB], pick.product, _zones_by_perf(request, b))}
               for k, b in enumerate(bookings or [])]
    return {"maps": maps, "booked": _party_rows(request, bookings) if bookings else [],
            "zones": _zones(request, offer, pick), "forms": FORMS if options == "both" else (options,),
            "members": members}


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
        party_of(form)
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
    query = {"count": pick.party, "zone_id": form.get("best_zone", "").strip() or None,
             "wheelchair": 1 if form.get("best_wheelchair") else 0, **(_chosen(pick) or {})}
    found = await api_call.call(request, me, "GET", f"/subscription-products/{pick.product['id']}/best-available",
                                query=query)
    if not found["found"]:
        raise sales.SaleRefused("ss_e_none")
    for key in [k for k in form if k.startswith(("seat_", "repl_"))]:
        form.pop(key)
    seats_at: dict[str, list[str]] = {}  # the API lists a party member by member: member k is the k-th
    for b in found["bookings"]:
        seats_at.setdefault(b["performance_id"], []).append(b["seat_id"])
    if pick.product["kind"] == "combi":
        form.update({"seat_" + perf: ",".join(seats) for perf, seats in seats_at.items()})
        return
    offer = await _offer(request, me, pick)
    for group in offer["groups"]:
        lead = group["variants"][0]
        own = seats_at[lead["performance_ids"][0]]
        form["seat_" + group["plan_id"]] = ",".join(own)
        form["view_" + group["plan_id"]] = lead["variant_id"]
        for variant in group["variants"][1:]:
            there = seats_at[variant["performance_ids"][0]]
            repl = [seat for seat, mine in zip(there, own, strict=True) if seat != mine]
            if repl:
                form["repl_" + variant["variant_id"]] = ",".join(repl)


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
        raise sales.SaleRefused("ss_e_party_seats", str(pick.party))
    await _release(request, me, form)
    held = await api_call.call(request, me, "POST", "/seat-holds",
                               {"seats": [b for member in bookings for b in member], "ttl_seconds": HOLD_SECONDS})
    form["hold_id"] = held["id"]


async def _summary(request: web.Request, me: staff.Session, form: dict) -> dict:
    """The checked sale with the catalog's prices per member, kept as a one-time draft (its
    number is the sale's Idempotency-Key); refused with nothing kept while something is missing."""
    products = await _products(request, me)
    pick = _pick(form, products)
    if not _dates_ready(pick) or not pick.hold_id:
        raise sales.SaleRefused("ss_e_hold")
    offer = await _offer(request, me, pick)
    steps = await _steps(request, me, pick, offer)
    bookings = _bookings(pick, offer, steps)
    if not bookings:
        raise sales.SaleRefused("ss_e_party_seats", str(pick.party))
    customer, new = await sales._chosen_customer(request, me, form)
    if form.get("delivery") not in sales.DELIVERIES:
        raise sales.SaleRefused("sale_e_delivery")
    if form.get("payment_method") not in sales.PAYMENTS:
        raise sales.SaleRefused("sale_e_payment")
    members, seats = [], _members(pick, offer, steps)
    for k, booked in enumerate(bookings):
        members.append(_member(request, pick, form, k, booked, seats[k]))
    body = {"product_id": pick.product["id"], "form": form.get("form") or None,
            "members": [m["body"] for m in members], "delivery": form["delivery"],
            "payment_method": form["payment_method"],
            "payment_reference": form.get("payment_reference", "").strip() or None,
            **({"performance_ids": pick.dates} if pick.product["kind"] == "choice" else {})}
    try:  # the API's own body type: a value it would refuse is refused here, before the summary
        msgspec.convert({**body, "customer_id": customer["id"] if customer else pick.product["id"]},
                        SubscriptionSaleIn, strict=False)
    except msgspec.ValidationError as exc:
        raise sales.SaleRefused("sale_e_order_bad", str(exc)) from None
    nonce = sales._keep(request, sales.Draft(me.staff_id, body, new, views._now(request),
                                             customer_id=customer["id"] if customer else None))
    return {"nonce": nonce, "product": pick.product, "members": members, "customer": customer or new,
            "new": new is not None, "booked": _party_rows(request, bookings), "body": body,
            "total": sum(m["tier"]["price_cents"] for m in members), "party": pick.party}


def _member(request: web.Request, pick: Pick, form: dict, k: int, booked: list[dict], seats: dict) -> dict:
    """Member k's tier (priced for its seats' zone by the catalog) and pass name, checked."""
    tier_key, holder_key = _member_keys(k)
    tier_id = form.get(tier_key, "").strip() or None
    prices = {t["id"] or None: t for t in subs.tier_prices(request.app[DB], pick.product,
                                                           _zones_by_perf(request, booked))}
    if tier_id not in prices:
        raise sales.SaleRefused("ss_e_tier")
    holder = sales._holder(form.get(holder_key, "")) or None  # on the pass; none: the customer's name
    return {"n": k + 1, "tier": prices[tier_id], "holder": holder,
            "body": {**seats, "tier_id": tier_id, "holder_name": holder}}


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
    query = {"count": len(draft.order.get("members") or [None]),
             **({"performance_ids": ",".join(draft.order["performance_ids"])}
                            if draft.order.get("performance_ids") else {})}
    try:
        best = await api_call.call(request, me, "GET", f"/subscription-products/{product_id}/best-available",
                                   query=query)
    except api_call.Refused:
        best = {"found": False, "bookings": []}
    alternatives = _party_rows(request, _split(best["bookings"])) if best["found"] else []
    return views.render(request, "subscription_lost.html", exc.status if exc.status >= 400 else 409, me=me,
                        csrf=me.csrf, message=t["ss_e_lost"].format(a=exc.detail), alternatives=alternatives,
                        product_id=product_id, when=views._when, customer_id=draft.customer_id or "")


def _split(bookings: list[dict]) -> list[list[dict]]:
    """Best available's bookings (member by member within each date) as per member."""
    seen: dict[str, int] = {}
    members: list[list[dict]] = []
    for b in bookings:
        k = seen[b["performance_id"]] = seen.get(b["performance_id"], -1) + 1
        members.extend([] for _ in range(k + 1 - len(members)))
        members[k].append(b)
    return members


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
