"""The office's "Kontingente / Pools" screen of a seated subscription product (issue 14, S17):
which pool holds each ring seat, on the seat map of each plan group, and moving ring seats into
a cash desk's pool or recalling them to the hub.

Why this shape: as the phone sale (`subscription_sale.py`), one form the hub re-renders at
every step, so the selection travels in the form and nothing is kept on the hub. A click on a
seat (`seatpick.js`, many seats per map) or a range ("Parkett, Reihe 3, Platz 1-12") adds
seats; "Weiter" shows what will move where; only "Bestätigen" changes anything, through the
API's own operation (`POST /subscription-products/{id}/pools`, via `api_call`), which moves
every seat in every date or nothing and names the seat that stands in the way. A recall is
two-step: the page shows it pending until the desk has answered.
"""

from __future__ import annotations

from aiohttp import web

from hub.services import office_ring_pools as view
from hub.services import office_subscriptions as subs
from hub.services import staff
from hub.web.api import DB
from hub.web.office import api_call, lists, subscription_sale, views

PATH = "/office/ring-pools/{id}"
SEATED = ("ring", "choice", "combi")
MAX_PICK = 50  # seats of one move: a form field holds views.MAX_FIELD characters, 50 ids (the API takes 500)
TEXT = {
    "de": {
        "title": "Kontingente / Pools: {p}", "link": "Kontingente / Pools", "back": "Zum Katalog",
        "legend": "Pools", "pool": "Pool", "ring_seats": "Ringplätze", "seats": "Plätze (je Termin)",
        "map": "Saalplan {p} ({n} Termine)", "hint": "Plätze im Saalplan anklicken (oder Tab und Leertaste) oder oben "
        "einen Bereich angeben; noch einmal anklicken nimmt den Platz wieder heraus.",
        "range": "Bereich wählen", "section": "Bereich", "row": "Reihe", "from": "Platz von", "to": "bis",
        "add": "Hinzufügen", "clear_sel": "Auswahl leeren", "chosen": "{n} Ringplätze ausgewählt",
        "target": "Ziel", "to_hub": "zurück an den Hub (Rückholung)", "check": "Weiter",
        "confirm_h": "Verschieben bestätigen", "confirm_move": "{n} Ringplätze in den Pool von {d} verschieben, "
        "in jedem Termin ({k} Termine).", "confirm_recall": "{n} Ringplätze von der Kasse an den Hub "
        "zurückholen. Sie kommen erst zurück, wenn die Kasse in jedem Termin geantwortet hat.",
        "confirm": "Bestätigen", "cancel": "Zurück", "moved": "{n} Ringplätze sind jetzt im Pool von {d}.",
        "recalled": "Rückholung von {n} Ringplätzen angefordert: ausstehend, bis die Kasse antwortet.",
        "refused": "Nichts verschoben: {a}", "e_none": "Keine Plätze ausgewählt.",
        "e_many": "Höchstens {n} Ringplätze auf einmal.", "e_target": "Bitte ein Ziel wählen.",
        "e_range": "Kein Platz in diesem Bereich.", "e_product": "Dieses Abo hat keine Plätze.",
        "recalls": "Rückholungen", "r_seat": "Platz", "r_desk": "Kasse", "r_state": "Stand",
        "st_requested": "ausstehend: wartet auf die Kasse (offene Termine: {n})", "st_partial": "teilweise: "
        "bei der Kasse verkauft (Termine: {n}), der Ringplatz bleibt bei der Kasse", "st_done": "erledigt",
        "none_pending": "Keine Rückholungen.",
    },
    "en": {
        "title": "Contingents / pools: {p}", "link": "Contingents / pools", "back": "To the catalog",
        "legend": "Pools", "pool": "Pool", "ring_seats": "Ring seats", "seats": "Seats (per date)",
        "map": "Seat map {p} ({n} dates)", "hint": "Click seats on the map (or Tab and Space) or give a range above; "
        "a second click takes the seat out again.",
        "range": "Choose a range", "section": "Section", "row": "Row", "from": "Seat from", "to": "to",
        "add": "Add", "clear_sel": "Clear selection", "chosen": "{n} ring seats selected",
        "target": "Target", "to_hub": "back to the hub (recall)", "check": "Next",
        "confirm_h": "Confirm the move", "confirm_move": "Move {n} ring seats into the pool of {d}, in every "
        "date ({k} dates).", "confirm_recall": "Recall {n} ring seats from the desk to the hub. They come "
        "back only once the desk has answered for every date.",
        "confirm": "Confirm", "cancel": "Back", "moved": "{n} ring seats are now in the pool of {d}.",
        "recalled": "Recall of {n} ring seats requested: pending until the desk answers.",
        "refused": "Nothing moved: {a}", "e_none": "No seats selected.",
        "e_many": "At most {n} ring seats at once.", "e_target": "Please choose a target.",
        "e_range": "No seat in that range.", "e_product": "This subscription has no seats.",
        "recalls": "Recalls", "r_seat": "Seat", "r_desk": "Desk", "r_state": "State",
        "st_requested": "pending: waiting for the desk (dates open: {n})", "st_partial": "partial: sold at "
        "the desk (dates: {n}), the ring seat stays with the desk", "st_done": "done",
        "none_pending": "No recalls.",
    },
}


class Stop(Exception):
    """A step the form cannot take: the text key (and its argument) to show; nothing changed."""

    def __init__(self, key: str, arg: str = "") -> None:
        super().__init__(key)
        self.key, self.arg = key, arg


def link(product_id: str) -> str:
    return PATH.replace("{id}", product_id)


def _selected(form: dict) -> dict[str, list[str]]:
    """plan id -> the seat ids picked on its map (distinct, in order)."""
    return {k.removeprefix("sel_"): list(dict.fromkeys(s.strip() for s in v.split(",") if s.strip()))
            for k, v in form.items() if k.startswith("sel_")}


def _all(selected: dict[str, list[str]]) -> list[str]:
    return list(dict.fromkeys(s for seats in selected.values() for s in seats))


async def _product(request: web.Request, me: staff.Session) -> dict:
    product = await api_call.call(request, me, "GET", f"/subscription-products/{request.match_info['id']}")
    if product["kind"] not in SEATED:
        raise Stop("e_product")
    return product


async def _page(request: web.Request, me: staff.Session, form: dict, *, error: str | None = None,
                note: str | None = None, status: int = 200) -> web.Response:
    lang, db = views._lang(request), request.app[DB]
    p = TEXT[lang]
    try:
        product = await _product(request, me)
    except (api_call.Refused, Stop) as exc:
        message = p[exc.key] if isinstance(exc, Stop) else exc.detail
        return views.render(request, "message.html", getattr(exc, "status", 422), message=message)
    pools = await api_call.call(request, me, "GET", f"/subscription-products/{product['id']}/pools")
    desks = view.cash_desks(db)
    selected = _selected(form)
    shown = view.pool_view(db, product, pools, desks, _all(selected), lang, views._now(request))
    for m in shown["maps"]:
        m["sections"] = list(dict.fromkeys(s.section for s in m["seats"]))
    response = views.render(request, "ring_pools.html", status, me=me, csrf=me.csrf, p=p, product=product,
                            form=form, error=error, note=note, desks=desks, recalls=_recalls(db, pools, desks, p),
                            chosen=len(_all(selected)), script=subscription_sale.SCRIPT, max_pick=MAX_PICK,
                            action=link(product["id"]), **shown)
    response.headers["Content-Security-Policy"] = subscription_sale.PAGE_CSP
    return response


def _recalls(db, pools: dict, desks: dict[str, str], p: dict) -> list[dict]:
    """The product's ring recalls, pending first, as the clerk reads them."""
    names = subs.seat_names(db, {r["seat_id"] for r in pools["recalls"]}) if pools["recalls"] else {}
    out = []
    for r in pools["recalls"]:
        seat = names.get(r["seat_id"])
        n = len(r["waiting_for"]) if r["state"] == "requested" else len(r["kept_sold"])
        out.append({"seat": _seat_text(seat, p) if seat else r["seat_id"], "state_key": r["state"],
                    "desk": desks.get("node:" + r["node_id"], r["node_id"]),
                    "state": p.get("st_" + r["state"], r["state"]).format(n=n)})
    return sorted(out, key=lambda r: r["state_key"] != "requested")


def _seat_text(seat: dict, p: dict) -> str:
    return f"{seat['section']} · {p['row']} {seat['row_label']} · {seat['label']}"


def _range(request: web.Request, product: dict, form: dict) -> None:
    """Add the seats of section (`plan|section`) / row / from-to to that plan's selection."""
    groups = {g["plan"].id: g for g in view.plan_groups(request.app[DB], product["performance_ids"])}
    plan, _, section = form.get("r_section", "").partition("|")
    group = groups.get(plan)
    low, high = (form.get(k, "").strip() for k in ("r_from", "r_to"))
    if group is None or not low.isdigit() or not (high or low).isdigit():
        raise Stop("e_range")
    low_n, high_n = int(low), int(high or low)
    row = form.get("r_row", "").strip()
    found = [s.id for s in group["seats"].values() if s.section == section and s.row == row
             and s.label.isdigit() and low_n <= int(s.label) <= high_n]
    if not found:
        raise Stop("e_range")
    key = "sel_" + group["plan"].id
    merged = list(dict.fromkeys([s for s in form.get(key, "").split(",") if s] + found))
    if len(_all({**_selected(form), group["plan"].id: merged})) > MAX_PICK:  # the form must stay postable
        raise Stop("e_many", str(MAX_PICK))
    form[key] = ",".join(merged)


@lists.staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """The maps coloured by pool, the legend with counts and the recalls."""
    return await _page(request, me, {})


@lists.staff_only
async def step(request: web.Request, me: staff.Session) -> web.Response:
    """Pick (a click on the map), range, clear, and next (the confirmation page)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    p = TEXT[views._lang(request)]
    action = form.get("action", "")
    try:
        if action == "range":
            _range(request, await _product(request, me), form)
        elif action == "clear":
            form = {k: v for k, v in form.items() if not k.startswith("sel_")}
        elif action == "check":
            return await _confirm_page(request, me, form)
    except Stop as exc:
        return await _page(request, me, form, error=p[exc.key].format(n=exc.arg), status=400)
    except api_call.Refused as exc:
        return await _page(request, me, form, error=p["refused"].format(a=exc.detail), status=exc.status)
    return await _page(request, me, form)


def _checked(form: dict, desks: dict[str, str]) -> tuple[list[str], str]:
    seat_ids, to = _all(_selected(form)), form.get("to", "")
    if not seat_ids:
        raise Stop("e_none")
    if len(seat_ids) > MAX_PICK:
        raise Stop("e_many", str(MAX_PICK))
    if to != "hub" and to not in desks:
        raise Stop("e_target")
    return seat_ids, to


async def _confirm_page(request: web.Request, me: staff.Session, form: dict) -> web.Response:
    """What will move where, seat by seat; the form carries the selection back unchanged."""
    db, p = request.app[DB], TEXT[views._lang(request)]
    product = await _product(request, me)
    desks = view.cash_desks(db)
    seat_ids, to = _checked(form, desks)
    names = subs.seat_names(db, seat_ids)
    seats = sorted((names[s] for s in seat_ids if s in names),
                   key=lambda s: (s["section"], _num(s["row_label"]), _num(s["label"])))
    text = (p["confirm_recall"].format(n=len(seat_ids)) if to == "hub" else
            p["confirm_move"].format(n=len(seat_ids), d=desks[to], k=len(product["performance_ids"])))
    hidden = {k: v for k, v in form.items() if k.startswith("sel_") or k == "to"}
    return views.render(request, "ring_pools_confirm.html", me=me, csrf=me.csrf, p=p, product=product, text=text,
                        seats=[_seat_text(s, p) for s in seats], hidden=hidden, action=link(product["id"]))


def _num(label: str) -> tuple[int, str]:
    return (int(label), "") if label.isdigit() else (10 ** 9, label)


@lists.staff_only
async def move(request: web.Request, me: staff.Session) -> web.Response:
    """The confirmed move or recall, through the API: all seats in all dates, or nothing and the
    API's reason (naming the seat and date) next to the selection, kept for another try."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    p, db = TEXT[views._lang(request)], request.app[DB]
    try:
        product = await _product(request, me)
        desks = view.cash_desks(db)
        seat_ids, to = _checked(form, desks)
        await api_call.call(request, me, "POST", f"/subscription-products/{product['id']}/pools",
                            {"seat_ids": seat_ids, "to": to})
    except Stop as exc:
        return await _page(request, me, form, error=p[exc.key].format(n=exc.arg), status=400)
    except api_call.Refused as exc:
        return await _page(request, me, form, error=p["refused"].format(a=exc.detail),
                           status=exc.status if exc.status >= 400 else 400)
    note = p["recalled"].format(n=len(seat_ids)) if to == "hub" else p["moved"].format(n=len(seat_ids), d=desks[to])
    return await _page(request, me, {"to": to}, note=note)


def install(app: web.Application) -> None:
    """The screen (GET), its steps and the confirmed move (POST, form token checked)."""
    app.router.add_get(PATH, show)
    app.router.add_post(PATH, step)
    app.router.add_post(PATH + "/move", move)
