"""The office's subscriber list, a subscription's page and its changes (issue 13).

The list is a `lists.Screen` (sort, page, filter, CSV like every list) with filters by
product, performance, state, customer and text. The page shows the seat per date, the cards
(passes, tickets) with their fulfilment and the order; its forms change the tier (for the next
season), the form, the state (cancel with the season it ends in, pause, resume; or cancel with
immediate effect behind a confirmation page) and the seats of one date or of a whole ring group
on the seat map. Every change is the API's own operation
(`PATCH /subscriptions/{id}`, `PUT /subscriptions/{id}/seats`) through `api_call`, so a seat
change is checked like a sale; the office only reads through `office_subscriptions`.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from core.base.clock import parse_iso
from core.base.ids import is_uuid
from hub.services import office_lists, staff
from hub.services import office_subscriptions as subs
from hub.web.api import DB
from hub.web.office import api_call, lists, subscription_sale, views
from hub.web.office.text import TEXT

PATH = "/office/subscriptions"
ACTIONS = ("tier", "form", "cancel", "pause", "resume")


def _page(request: web.Request, page: int, size: int):
    q = request.query
    return subs.subscribers(request.app[DB], q.get("q", ""), product=q.get("product") or None,
                            performance=q.get("performance") or None, state=q.get("state"),
                            customer=q.get("customer") or None, sort=q.get("sort"), page=page, size=size)


def _cells(row: dict, euros: Callable[[int], str], t: dict) -> list[str]:
    return [row["number"], row["customer"], row["product"], row["tier"], row["seats"], t["f_" + row["state"]],
            euros(row["price_cents"]), views._when(row["created_at"])]


SCREEN = lists.Screen(PATH, "ss_list",
                      (("number", "number", False), ("customer", "customer", False), ("product", "product", False),
                       ("tier", "ss_tier", False), ("seats", "ss_seats_col", False), ("state", "state", False),
                       ("price", "price", True), ("date", "date", False)),
                      _page, _cells, filters=("q", "product", "performance", "state", "customer"),
                      states=("all", *subs.STATES))


@lists.staff_only
async def show_list(request: web.Request, me: staff.Session) -> web.Response:
    """The list with its product, performance (and customer) filters; `lists` draws it."""
    lang = views._lang(request)
    t = TEXT[lang]
    choices = subs.filter_choices(request.app[DB])
    size = min(lists._int(request.query.get("size"), office_lists.PAGE_SIZE), office_lists.MAX_PAGE_SIZE)
    found = SCREEN.fetch(request, lists._int(request.query.get("page"), 1), size)
    rows = [(row["id"], SCREEN.cells(row, views._euros(lang), t)) for row in found.rows]
    extra = [{"name": "product", "label": t["product"], "all": t["ss_all_products"],
              "options": [(p["id"], p["name"]) for p in choices["products"]]},
             {"name": "performance", "label": t["ss_performance"], "all": t["ss_all_performances"],
              "options": [(p["id"], f"{views._when(p['starts_at'])} {p['title']}") for p in choices["performances"]]},
             {"name": "customer", "label": t["customer"], "all": "", "options": []}]
    return views.render(request, "list.html", me=me, csrf=me.csrf, screen=SCREEN, page=found, rows=rows,
                        link=lambda **change: lists._query(request, SCREEN, **change), t_title=t["ss_list"],
                        channels=(), query=request.query, extra_filters=extra,
                        new_link=subscription_sale.PATH, new_text=t["ss_title"])


# --- one subscription -----------------------------------------------------------------------------------


def _not_found(request: web.Request) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=TEXT[views._lang(request)]["not_found"])


async def _record(request: web.Request, me: staff.Session) -> dict:
    """The subscription as the API reads it (GET /subscriptions/{id}); 404 page if there is none."""
    sub_id = request.match_info["id"]
    if not is_uuid(sub_id):
        raise _not_found(request)
    try:
        return await api_call.call(request, me, "GET", f"/subscriptions/{sub_id}")
    except api_call.Refused:
        raise _not_found(request) from None


def _groups(sub: dict, perfs: dict[str, dict]) -> list[dict]:
    """The subscription's dates by seating plan (a ring group: one seat change moves them all)."""
    groups: dict[str, dict] = {}
    for seat in sub["seats"]:
        plan = perfs[seat["performance_id"]]["plan_id"]
        groups.setdefault(plan, {"plan_id": plan, "dates": 0, "seat": seat})["dates"] += 1
    return list(groups.values())


async def _detail(request: web.Request, me: staff.Session, *, error: str | None = None, note: str | None = None,
                  status: int = 200) -> web.Response:
    sub = await _record(request, me)
    db = request.app[DB]
    perfs = subs.performances(db, {s["performance_id"] for s in sub["seats"]}) if sub["seats"] else {}
    product = await api_call.call(request, me, "GET", f"/subscription-products/{sub['product_id']}")
    zones = {s["performance_id"]: s["zone_id"] for s in sub["seats"]}
    tiers = subs.tier_prices(db, product, zones) if zones else []
    options = product["print_options"]
    return views.render(request, "subscription.html", status, me=me, csrf=me.csrf, s=sub, product=product,
                        perfs=perfs, groups=_groups(sub, perfs) if product["kind"] != "combi" else [],
                        cards=subs.cards_of(db, sub["line_id"]), order=subs.order_of(db, sub["order_id"]),
                        party=subs.others_in_order(db, sub["order_id"], sub["id"]),
                        tiers=tiers, seasons=subs.seasons_of(db, sub["product_id"]),
                        forms=subscription_sale.FORMS if options == "both" else (options,),
                        euros=views._euros(views._lang(request)), when=views._when, error=error, note=note)


detail = lists.staff_only(_detail)


def _change_body(action: str, form: dict) -> dict:
    """The PATCH body of a change button; the API checks every value."""
    if action == "tier":
        tier = form.get("tier_id", "").strip()
        return {"tier_id": tier} if tier else {"clear_tier": True}
    if action == "form":
        return {"form": form.get("form", "")}
    if action == "cancel":
        return {"state": "cancelled", **({"ends_season_id": form["ends_season_id"]}
                                         if form.get("ends_season_id") else {})}
    return {"state": "paused" if action == "pause" else "active"}


@lists.staff_only
async def change(request: web.Request, me: staff.Session) -> web.Response:
    """Change tier, form or state (PATCH /subscriptions/{id}); a refusal changes nothing."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    t = TEXT[views._lang(request)]
    sub = await _record(request, me)
    action = form.get("action", "")
    if action not in ACTIONS:
        return await _detail(request, me, error=t["ss_e_action"], status=400)
    try:
        await api_call.call(request, me, "PATCH", f"/subscriptions/{sub['id']}", _change_body(action, form))
    except api_call.Refused as exc:
        return await _detail(request, me, error=t["sale_e_refused"].format(a=exc.detail),
                             status=exc.status if exc.status >= 400 else 400)
    raise web.HTTPSeeOther(f"{PATH}/{sub['id']}")


@lists.staff_only
async def storno(request: web.Request, me: staff.Session) -> web.Response:
    """Cancel with immediate effect (PATCH with `effective: now`). First POST: the confirmation
    page saying what it frees and revokes; with `confirm=yes`: done (a repeat changes nothing)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    sub = await _record(request, me)
    if form.get("confirm") != "yes":
        now = views._now(request)
        live = [c for c in subs.cards_of(request.app[DB], sub["line_id"]) if not c["revoked_at"]]
        ahead = [s for s in sub["seats"] if parse_iso(s["starts_at"]) > now]
        return views.render(request, "subscription_storno.html", me=me, csrf=me.csrf, s=sub, dates=len(ahead),
                            cards=len(live))
    try:
        await api_call.call(request, me, "PATCH", f"/subscriptions/{sub['id']}",
                            {"state": "cancelled", "effective": "now"})
    except api_call.Refused as exc:
        t = TEXT[views._lang(request)]
        return await _detail(request, me, error=t["sale_e_refused"].format(a=exc.detail),
                             status=exc.status if exc.status >= 400 else 400)
    raise web.HTTPSeeOther(f"{PATH}/{sub['id']}")


# --- seat change on the map -----------------------------------------------------------------------------


async def _seat_page(request: web.Request, me: staff.Session, form: dict, *, error: str | None = None,
                     status: int = 200) -> web.Response:
    """The map for a seat change: one date (`performance`) or the dates on one plan (`plan`)
    with the seats free in all of them; the current seat selected until another is clicked; for
    a group, the variant steps of the new seat as in the sale."""
    sub = await _record(request, me)
    db, lang = request.app[DB], views._lang(request)
    perfs = subs.performances(db, {s["performance_id"] for s in sub["seats"]}) if sub["seats"] else {}
    one = form.get("performance", "")
    plan = form.get("plan", "")
    dates = [p for p in perfs if p == one] if one else [p for p, f in perfs.items() if f["plan_id"] == plan]
    if not dates:
        raise _not_found(request)
    offer = await api_call.call(request, me, "GET", f"/subscription-products/{sub['product_id']}/availability",
                                query={"performance_ids": ",".join(dates)})
    current = next(s["seat_id"] for s in sub["seats"] if s["performance_id"] == dates[0])
    seat = form.get("seat_id") or current
    tabs: list[dict] = []
    if offer["kind"] == "combi":
        free = next(p["free_seat_ids"] for p in offer["performances"])
        variant = perfs[dates[0]]["variant_id"]
    else:  # the variant's map asked for (a tab), else the lead's
        variants = offer["groups"][0]["variants"]
        shown = next((v for v in variants if v["variant_id"] == form.get("view")), variants[0])
        free, variant = shown["free_seat_ids"], shown["variant_id"]
        tabs = [{"id": v["variant_id"], "dates": len(v["performance_ids"]), "shown": v is shown} for v in variants]
    maps = [{"key": "seat_id", "value": seat, "svg": subs.seat_map(db, variant, free, [seat], lang)}]
    steps = []
    if not one and seat != current:
        steps = (await api_call.call(request, me, "GET", f"/subscription-products/{sub['product_id']}/variant-steps",
                                     query={"seat_ids": seat, "performance_ids": ",".join(dates)}))["steps"]
    names = subs.variant_names(db, {s["variant_id"] for s in steps} | {t["id"] for t in tabs} | {variant})
    for step in steps:
        chosen = form.get("repl_" + step["variant_id"]) or step["suggestion"] or ""
        maps.append({"key": "repl_" + step["variant_id"], "value": chosen, "step": step,
                     "variant": names[step["variant_id"]], "dates": len(step["performance_ids"]),
                     "svg": subs.seat_map(db, step["variant_id"], step["free_seat_ids"], [chosen], lang)})
    response = views.render(request, "subscription_seats.html", status, me=me, csrf=me.csrf, s=sub, maps=maps,
                            dates=[perfs[d] for d in dates], one=one, plan=plan, variant=names[variant],
                            tabs=[{**tab, "name": names[tab["id"]]} for tab in tabs], view=variant,
                            current=subs.seat_names(db, [current]).get(current),
                            chosen=subs.seat_names(db, [seat]).get(seat), changed=seat != current,
                            when=views._when, error=error, script=subscription_sale.SCRIPT)
    response.headers["Content-Security-Policy"] = subscription_sale.PAGE_CSP
    return response


@lists.staff_only
async def seats_page(request: web.Request, me: staff.Session) -> web.Response:
    return await _seat_page(request, me, dict(request.query))


@lists.staff_only
async def move(request: web.Request, me: staff.Session) -> web.Response:
    """A click on the map (`pick`: shown again with the seat) or the change itself (`move`:
    PUT /subscriptions/{id}/seats, checked like a sale; refused: the message, nothing changed)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    if form.get("action", "").startswith("view:"):  # a variant's tab: that variant's map
        form["view"] = form["action"].removeprefix("view:")
    if form.get("action") != "move":
        return await _seat_page(request, me, form)
    t = TEXT[views._lang(request)]
    sub = await _record(request, me)
    body: dict = {"seat_id": form.get("seat_id", "")}
    if form.get("performance"):
        body["performance_id"] = form["performance"]
    else:
        body["replacements"] = [{"variant_id": k.removeprefix("repl_"), "seat_id": v} for k, v in form.items()
                                if k.startswith("repl_") and v]
    try:
        await api_call.call(request, me, "PUT", f"/subscriptions/{sub['id']}/seats", body)
    except api_call.Refused as exc:
        return await _seat_page(request, me, form, error=t["sale_e_refused"].format(a=exc.detail),
                                status=exc.status if exc.status >= 400 else 400)
    raise web.HTTPSeeOther(f"{PATH}/{sub['id']}")


def install(app: web.Application) -> None:
    """The list, its CSV, a subscription's page, its changes and the seat change. The sale
    (`subscription_sale.install`) goes first, so /office/subscriptions/new is no id."""
    app.router.add_get(PATH, show_list)
    app.router.add_get(PATH + ".csv", lists.staff_only(lambda r, me: lists._csv(r, me, SCREEN)))
    app.router.add_get(PATH + "/{id}", detail)
    app.router.add_post(PATH + "/{id}/change", change)
    app.router.add_post(PATH + "/{id}/storno", storno)
    app.router.add_get(PATH + "/{id}/seats", seats_page)
    app.router.add_post(PATH + "/{id}/seats", move)
