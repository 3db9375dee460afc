"""The office's season rollover screen (S15): choose the seasons, try a dry run, start the run,
watch its progress, read what cannot be rolled over grouped by reason, confirm (all, or the
customers named).

Why this shape: every step is the API's own operation (`/rollover-runs`, via `api_call`), so
the office adds no rule of its own; the long steps run in the hub's background thread and this
page polls them by reloading itself every two seconds while a step runs (no script: the office
pages allow none). It lives under /office/subscriptions so the navigation's "Abonnements" stays
marked.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from aiohttp import web

from core.base.clock import LOCAL_TZ
from hub.services import staff
from hub.web.office import api_call, lists, views

PATH = "/office/subscriptions/rollover"
REFRESH_S = 2
REASONS = ("product_missing", "tier_missing", "seat_gone", "zone_changed", "wheelchair_locked")
TEXT = {
    "de": {
        "title": "Saisonübernahme", "intro": "Abonnements einer Spielzeit in die nächste übernehmen: gekündigte "
        "bleiben draußen, Rabattstufen werden über den gleichen Namen zugeordnet, Stammplätze bleiben, wo es geht. "
        "Die Plätze werden bis zur Verlängerungsfrist reserviert; erst die Bestätigung erzeugt Aufträge, "
        "Rechnungen, Lastschriften und Druckaufträge.",
        "from": "Von Spielzeit", "to": "In Spielzeit", "renewal": "Verlängerungsfrist (Plätze reserviert bis)",
        "dry": "Probelauf", "run": "Übernahme starten", "dry_h": "Probelauf: nichts gespeichert",
        "runs": "Übernahmen", "none": "Noch keine Übernahme.", "open": "Öffnen",
        "state": "Stand", "progress": "Fortschritt", "running": "läuft …", "error": "Abgebrochen: {e}",
        "st_planning": "wird geplant", "st_held": "Plätze reserviert", "st_confirming": "wird bestätigt",
        "st_done": "abgeschlossen", "held_until": "reserviert bis {d}",
        "kept": "Platz behalten", "moved": "anderer Platz (2. Durchgang)", "paused": "pausiert (Platz reserviert)",
        "listed": "nicht übernommen", "left_out": "gekündigt (nicht übernommen)",
        "confirmed": "bestätigt", "held": "reserviert", "failed": "fehlgeschlagen",
        "listed_h": "Nicht übernommen, nach Grund", "r_product_missing": "Produkt fehlt",
        "r_tier_missing": "Rabattstufe fehlt", "r_seat_gone": "Platz entfallen oder gesperrt",
        "r_zone_changed": "Preiskategorie geändert", "r_wheelchair_locked": "Rollstuhlplatz gesperrt",
        "number": "Abo", "customer": "Kunde", "detail": "Hinweis", "nothing_listed": "Alles übernommen.",
        "confirm_h": "Bestätigen", "confirm_all": "Alle bestätigen", "confirm_some": "Nur diese Kunden bestätigen",
        "numbers": "Kundennummern (durch Komma getrennt)", "e_numbers": "Bitte Kundennummern angeben.",
        "e_dates": "Bitte ein gültiges Datum angeben.", "e_seasons": "Bitte zwei Spielzeiten wählen.",
    },
    "en": {
        "title": "Season rollover", "intro": "Roll the subscriptions of one season over into the next: cancelled "
        "ones stay out, discount tiers are matched by identical name, seats are kept where they can be. The "
        "seats are held until the renewal deadline; only the confirmation makes orders, invoices, debits and "
        "print jobs.",
        "from": "From season", "to": "Into season", "renewal": "Renewal deadline (seats held until)",
        "dry": "Dry run", "run": "Start the rollover", "dry_h": "Dry run: nothing stored",
        "runs": "Rollovers", "none": "No rollover yet.", "open": "Open",
        "state": "State", "progress": "Progress", "running": "running …", "error": "Stopped: {e}",
        "st_planning": "planning", "st_held": "seats held", "st_confirming": "confirming", "st_done": "done",
        "held_until": "held until {d}",
        "kept": "seat kept", "moved": "another seat (pass 2)", "paused": "paused (seat held)",
        "listed": "not rolled over", "left_out": "cancelled (left out)",
        "confirmed": "confirmed", "held": "held", "failed": "failed",
        "listed_h": "Not rolled over, by reason", "r_product_missing": "product missing",
        "r_tier_missing": "discount tier missing", "r_seat_gone": "seat gone or blocked",
        "r_zone_changed": "price zone changed", "r_wheelchair_locked": "wheelchair place locked",
        "number": "Subscription", "customer": "Customer", "detail": "Note", "nothing_listed": "Everything rolled over.",
        "confirm_h": "Confirm", "confirm_all": "Confirm all", "confirm_some": "Confirm these customers only",
        "numbers": "Customer numbers (separated by commas)", "e_numbers": "Please give customer numbers.",
        "e_dates": "Please give a valid date.", "e_seasons": "Please choose two seasons.",
    },
}


def _text(request: web.Request) -> dict:
    return TEXT[views._lang(request)]


async def _page(request: web.Request, me: staff.Session, *, run_id: str | None = None, dry: dict | None = None,
                form: dict | None = None, error: str | None = None, status: int = 200) -> web.Response:
    seasons = (await api_call.call(request, me, "GET", "/seasons", query={"limit": 100, "sort": "starts_on"}))["items"]
    runs = (await api_call.call(request, me, "GET", "/rollover-runs"))["items"]
    shown = None
    if run_id:
        try:
            shown = await api_call.call(request, me, "GET", f"/rollover-runs/{run_id}")
        except api_call.Refused as exc:
            return views.render(request, "message.html", exc.status, message=exc.in_lang(views._lang(request)))
    names = {s["id"]: s["name"] for s in seasons}
    busy = shown is not None and (shown["running"] or shown["run"]["state"] in ("planning", "confirming"))
    response = views.render(request, "rollover.html", status, me=me, csrf=me.csrf, p=_text(request),
                            seasons=seasons, runs=runs, names=names, shown=shown, dry=dry, form=form or {},
                            error=error, reasons=REASONS, when=views._when, action=PATH,
                            refresh=REFRESH_S if busy else None)
    if busy:  # the poll: the browser reloads the page while a step runs (the office pages allow no script)
        response.headers["Refresh"] = str(REFRESH_S)
    return response


@lists.staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """The form, the rollovers so far, and the one asked for (`?run=`) with its progress and result."""
    run_id = request.query.get("run")
    return await _page(request, me, run_id=run_id if run_id and len(run_id) <= 64 else None)


def _deadline(day: str) -> str | None:
    """The end of *day* (YYYY-MM-DD) on the house clock, as the API takes it; None if left empty."""
    if not day.strip():
        return None
    chosen = dt.date.fromisoformat(day.strip())
    return dt.datetime.combine(chosen, dt.time(23, 59), LOCAL_TZ).isoformat()


@lists.staff_only
async def start(request: web.Request, me: staff.Session) -> web.Response:
    """A dry run (the result on this page) or the run itself (then its page, which polls)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    p = _text(request)
    body: dict = {"from_season_id": form.get("from", ""), "to_season_id": form.get("to", ""),
                  "dry_run": form.get("action") == "dry"}
    if not body["from_season_id"] or not body["to_season_id"]:
        return await _page(request, me, form=form, error=p["e_seasons"], status=400)
    try:
        body["renewal_until"] = _deadline(form.get("renewal", ""))
    except ValueError:
        return await _page(request, me, form=form, error=p["e_dates"], status=400)
    try:
        out = await api_call.call(request, me, "POST", "/rollover-runs", body)
    except api_call.Refused as exc:
        return await _page(request, me, form=form, error=exc.in_lang(views._lang(request)), status=exc.status)
    if body["dry_run"]:
        return await _page(request, me, dry=out, form=form)
    raise web.HTTPSeeOther(PATH + "?" + urlencode({"run": out["run"]["id"]}))


@lists.staff_only
async def confirm(request: web.Request, me: staff.Session) -> web.Response:
    """Confirm all held subscriptions, or those of the customer numbers typed."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    run_id = request.match_info["id"]
    numbers = [n.strip() for n in form.get("numbers", "").split(",") if n.strip()]
    if form.get("action") == "some" and not numbers:
        return await _page(request, me, run_id=run_id, error=_text(request)["e_numbers"], status=400)
    try:
        await api_call.call(request, me, "POST", f"/rollover-runs/{run_id}/confirm",
                            {"customer_numbers": numbers if form.get("action") == "some" else []})
    except api_call.Refused as exc:
        return await _page(request, me, run_id=run_id, error=exc.in_lang(views._lang(request)), status=exc.status)
    raise web.HTTPSeeOther(PATH + "?" + urlencode({"run": run_id}))


def install(app: web.Application) -> None:
    """Before the subscription detail route (/office/subscriptions/{id})."""
    app.router.add_get(PATH, show)
    app.router.add_post(PATH, start)
    app.router.add_post(PATH + "/{id}/confirm", confirm)
