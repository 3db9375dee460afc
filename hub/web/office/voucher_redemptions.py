"""The office's choice-voucher screens (issue 15, S10): redeem one or more vouchers for one seat
ticket, and look a voucher up.

Why this shape: as the ring pool screen and the phone sales, one form the hub re-renders at
every step, so what the clerk has chosen travels in the form and nothing is kept on the hub
until the check. A scan (or a typed number) and Enter adds a voucher to the list; the
vouchers are read through the API (value, tier, state, offer); then a performance their
offer shares and that has not begun, a free seat of the hub's pool on its map (a click, or
Tab and Space: `seatpick.js`, as the subscription sale), and the rule (by value / as
payment). "Weiter" asks the API for the split (`POST /voucher-redemptions/quote`: the
redemption's own checks, nothing stored) and shows it: price, value used, lapsing, rest to
pay, with the payment method for the rest. Only "Einlösen" books, once: the checked body is
kept under a one-time number (`sales.Draft`), so a double click or a reload leads to the same
redemption and never tries a second. Refusals come in the page's language (`detail_de`).

The lookup shows one voucher's state and, once redeemed, its order and ticket.
"""

from __future__ import annotations

from aiohttp import web

from hub.services import office_subscriptions as subs
from hub.services import office_vouchers as view
from hub.services import staff
from hub.web.api import DB
from hub.web.office import api_call, lists, sales, subscription_sale, views

PATH = "/office/voucher-redemptions"
LOOKUP = "/office/choice-vouchers"
MAX_VOUCHERS = 10  # as the API's RedemptionIn
RULES = ("value", "payment")
PAYMENTS = ("cash", "card", "transfer", "sepa")  # the office's ways to pay a rest (online is the shop's)
TEXT = {
    "de": {
        "title": "Wahlgutscheine einlösen", "lookup": "Gutschein nachschlagen", "scan": "Gutschein scannen "
        "oder Nummer eingeben", "add": "Hinzufügen", "list": "Gutscheine (je Zeile eine Nummer oder ein Code)",
        "read": "Gutscheine lesen", "restart": "Neu beginnen", "number": "Nummer", "value": "Wert", "tier":
        "Ermäßigungsart", "state": "Zustand", "valid": "gültig bis", "offer": "Angebot", "offer_n": "{n} Vorstellungen",
        "offer_ahead": "Angebot: Vorstellungen, die noch vor uns liegen",
        "full_price": "ohne Ermäßigung", "st_open": "offen", "st_redeemed": "eingelöst", "st_expired": "abgelaufen",
        "st_void": "ungültig (Abo storniert)", "perf": "Vorstellung", "perf_pick": "Vorstellung anzeigen",
        "perf_none": "Keine Vorstellung des gemeinsamen Angebots liegt noch vor uns.",
        "choose_perf": "– Vorstellung wählen –", "seat": "Platz", "seat_hint": "Einen freien Platz im Saalplan "
        "anklicken (oder Tab und Leertaste).", "seat_chosen": "Gewählt: {s} ({z}, {p})", "prices": "Preise",
        "zone": "Preiszone", "price": "Preis", "rule": "Einlösung", "rule_value": "nach Wert (das Ticket trägt die "
        "Ermäßigungsart des Gutscheins)", "rule_payment": "als Zahlungsmittel (normales Ticket zum normalen Preis)",
        "check": "Weiter", "split": "Aufteilung", "ticket_price": "Ticketpreis", "used": "durch Gutscheine bezahlt",
        "lapsed": "verfällt (keine Auszahlung)",
        "used_short": "eingesetzt", "lapsed_short": "verfällt", "rest": "Rest zu zahlen",
        "discount": "Ermäßigungsart auf dem Ticket", "none": "–", "pay": "Zahlungsart für den Rest",
        "reference": "Referenz (Beleg, Verwendungszweck)",
        "pm_cash": "bar", "pm_card": "Karte", "pm_transfer": "Überweisung", "pm_sepa": "Lastschrift",
        "pm_voucher": "Wahlgutschein", "pm_online": "online",
        "confirm": "Einlösen", "back": "Zurück", "confirm_h": "Einlösung prüfen", "done_h": "Eingelöst",
        "order": "Bestellung", "ticket": "Ticket", "vouchers": "Gutscheine", "payments": "Zahlungen",
        "method": "Zahlungsart", "amount": "Betrag", "more": "Weitere Gutscheine einlösen",
        "redeemed_at": "eingelöst am {d}", "redeem_this": "Diesen Gutschein einlösen", "q": "Nummer oder Code",
        "find": "Suchen", "subscription": "Abo", "rule_of": {"value": "nach Wert", "payment": "als Zahlungsmittel"},
        "seat_text": "{sec} · Reihe {row} · Platz {lab}",
        "e_many": "Höchstens {n} Gutscheine für ein Ticket.", "e_twice": "Gutschein {n} ist doppelt in der Liste.",
        "e_state": "Gutschein {n} ist nicht einlösbar: {s}.", "e_none": "Bitte zuerst Gutscheine scannen.",
        "e_perf": "Bitte eine Vorstellung wählen.", "e_seat": "Bitte einen freien Platz wählen.",
        "e_rule": "Bitte eine Einlösung wählen.", "e_pay": "Bitte die Zahlungsart für den Rest wählen.",
        "e_ref": "Die Referenz ist zu lang (höchstens 100 Zeichen).",
        "e_draft": "Diese Einlösung ist nicht (mehr) bekannt: bitte neu prüfen.",
        "e_busy": "Diese Einlösung wird gerade gebucht.", "refused": "Nicht eingelöst: {a}",
        "e_nothing": "Kein Gutschein gefunden: {a}", "raw": "{a}",
    },
    "en": {
        "title": "Redeem choice vouchers", "lookup": "Look a voucher up", "scan": "Scan a voucher or type its "
        "number", "add": "Add", "list": "Vouchers (one number or code per line)", "read": "Read the vouchers",
        "restart": "Start again", "number": "Number", "value": "Value", "tier": "Discount type", "state": "State",
        "valid": "valid until", "offer": "Offer", "offer_n": "{n} performances",
        "offer_ahead": "Offer: performances still ahead", "full_price": "no discount",
        "st_open": "open", "st_redeemed": "redeemed", "st_expired": "expired", "st_void": "void (subscription "
        "cancelled)", "perf": "Performance", "perf_pick": "Show the performance",
        "perf_none": "No performance of the vouchers' common offer lies ahead.",
        "choose_perf": "– choose a performance –", "seat": "Seat", "seat_hint": "Click a free seat on the map (or "
        "Tab and Space).", "seat_chosen": "Chosen: {s} ({z}, {p})", "prices": "Prices", "zone": "Price zone",
        "price": "Price", "rule": "Redemption", "rule_value": "by value (the ticket keeps the voucher's discount "
        "type)", "rule_payment": "as payment (an ordinary ticket at its normal price)", "check": "Next",
        "split": "Split", "ticket_price": "Ticket price", "used": "paid by vouchers", "lapsed": "lapses (no cash "
        "refund)",
        "used_short": "used", "lapsed_short": "lapses", "rest": "Rest to pay",
        "discount": "Discount type on the ticket", "none": "–",
        "pay": "Payment method for the rest", "reference": "Reference (receipt, transfer note)",
        "pm_cash": "cash", "pm_card": "card", "pm_transfer": "bank transfer", "pm_sepa": "direct debit",
        "pm_voucher": "choice voucher", "pm_online": "online",
        "confirm": "Redeem", "back": "Back", "confirm_h": "Check the redemption", "done_h": "Redeemed",
        "order": "Order", "ticket": "Ticket", "vouchers": "Vouchers", "payments": "Payments",
        "method": "Method", "amount": "Amount", "more": "Redeem more vouchers",
        "redeemed_at": "redeemed on {d}", "redeem_this": "Redeem this voucher", "q": "Number or code",
        "find": "Find", "subscription": "Subscription", "rule_of": {"value": "by value", "payment": "as payment"},
        "seat_text": "{sec} · row {row} · seat {lab}",
        "e_many": "At most {n} vouchers for one ticket.", "e_twice": "Voucher {n} is in the list twice.",
        "e_state": "Voucher {n} cannot be redeemed: {s}.", "e_none": "Please scan vouchers first.",
        "e_perf": "Please choose a performance.", "e_seat": "Please choose a free seat.",
        "e_rule": "Please choose a redemption rule.", "e_pay": "Please choose how the rest is paid.",
        "e_ref": "The reference is too long (at most 100 characters).",
        "e_draft": "This redemption is not known (any more): please check again.",
        "e_busy": "This redemption is being booked right now.", "refused": "Not redeemed: {a}",
        "e_nothing": "No voucher found: {a}", "raw": "{a}",
    },
}


class Stop(Exception):
    """A step the form cannot take: the text key (and its arguments) to show; nothing changed."""

    def __init__(self, key: str, **fill: str) -> None:
        super().__init__(key)
        self.key, self.fill = key, fill


def _lines(form: dict) -> list[str]:
    """The voucher lines of the list, the scan field's appended (distinct text, in order)."""
    lines = [line.strip() for line in form.get("vouchers", "").splitlines() if line.strip()]
    scanned = form.get("scan", "").strip()
    if scanned and scanned not in lines:
        lines.append(scanned)
    return lines


async def _read(request: web.Request, me: staff.Session, lines: list[str], lang: str) -> tuple[list[dict], str | None]:
    """Each line's voucher through the API (or its refusal), and the first problem that stops a
    redemption (too many, unknown or forged, twice, not open)."""
    p, rows, problem, seen = TEXT[lang], [], None, set()
    if len(lines) > MAX_VOUCHERS:
        problem = p["e_many"].format(n=MAX_VOUCHERS)
    for line in lines[:MAX_VOUCHERS]:
        try:
            voucher = await api_call.call(request, me, "GET", "/choice-vouchers", query=view.reference(line))
        except api_call.Refused as exc:
            rows.append({"text": line, "voucher": None, "error": exc.in_lang(lang)})
            problem = problem or p["e_nothing"].format(a=exc.in_lang(lang))
            continue
        if voucher["id"] in seen:
            problem = problem or p["e_twice"].format(n=voucher["number"])
        elif voucher["state"] != "open":
            problem = problem or p["e_state"].format(n=voucher["number"], s=p["st_" + voucher["state"]])
        seen.add(voucher["id"])
        rows.append({"text": line, "voucher": voucher, "error": None})
    return rows, problem


def _body(form: dict, rows: list[dict]) -> dict:
    """The API's RedemptionIn from the form: the vouchers as read (number or code as given)."""
    if not rows:
        raise Stop("e_none")
    if not form.get("performance_id"):
        raise Stop("e_perf")
    if not form.get("seat_id"):
        raise Stop("e_seat")
    if form.get("rule") not in RULES:
        raise Stop("e_rule")
    return {"vouchers": [view.reference(r["text"]) for r in rows], "performance_id": form["performance_id"],
            "seat_id": form["seat_id"], "rule": form["rule"]}


async def _page(request: web.Request, me: staff.Session, form: dict, *, error: str | None = None,
                status: int = 200) -> web.Response:
    """The form: the voucher list with what each is, the performances, the map, the rule."""
    lang, db, now = views._lang(request), request.app[DB], views._now(request)
    p = TEXT[lang]
    lines = _lines(form)
    form = {**form, "vouchers": "\n".join(lines), "scan": ""}
    rows, problem = await _read(request, me, lines, lang) if lines else ([], None)
    ctx: dict = {"perfs": [], "svg": "", "zones": [], "chosen": None}
    if rows and problem is None:
        ctx["perfs"] = view.performances_ahead(db, view.common_offer([r["voucher"] for r in rows]), now)
        if form.get("performance_id") not in {f["id"] for f in ctx["perfs"]}:
            form["performance_id"], form["seat_id"] = "", ""
    else:
        form["performance_id"], form["seat_id"] = "", ""
    if form.get("performance_id"):
        ctx["zones"] = view.zone_prices(db, form["performance_id"])
        ctx["svg"], free = view.seat_map(db, form["performance_id"], form.get("seat_id"), lang, now)
        if not free:  # sold or held meanwhile, or not of this performance: choose again
            form["seat_id"] = ""
        ctx["chosen"] = _chosen(db, form, ctx["zones"], lang)
    response = views.render(request, "voucher_redeem.html", status, me=me, csrf=me.csrf, p=p, form=form, rows=rows,
                            error=error or problem, euros=views._euros(lang), when=views._when, action=PATH,
                            script=subscription_sale.SCRIPT, rules=RULES, **ctx)
    response.headers["Content-Security-Policy"] = subscription_sale.PAGE_CSP
    return response


def _chosen(db, form: dict, zones: list[dict], lang: str) -> str | None:
    """The chosen seat as the clerk reads it, with zone and price (None: none or not of this map)."""
    seat = subs.seat_names(db, [form["seat_id"]]).get(form["seat_id"]) if form.get("seat_id") else None
    if seat is None:
        form["seat_id"] = ""
        return None
    price = next((z["price_cents"] for z in zones if z["id"] == seat["zone_id"]), None)
    p = TEXT[lang]
    return p["seat_chosen"].format(s=_seat_text(seat, p), z=seat["zone"],
                                   p=views._euros(lang)(price) if price is not None else "–")


def _seat_text(seat: dict, p: dict) -> str:
    return p["seat_text"].format(sec=seat["section"], row=seat["row_label"], lab=seat["label"])


@lists.staff_only
async def show(request: web.Request, me: staff.Session) -> web.Response:
    """The empty form; `?v=NUMBER` starts the list with that voucher (from the lookup)."""
    return await _page(request, me, {"vouchers": request.query.get("v", "")[:views.MAX_FIELD], "rule": "value"})


@lists.staff_only
async def step(request: web.Request, me: staff.Session) -> web.Response:
    """Every button but the booking: add a scan, read, performance, pick a seat, start again,
    and "Weiter" (the API's quote, shown with the payment for the rest)."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    lang = views._lang(request)
    action = form.get("action", "")
    if action == "clear":
        return await _page(request, me, {"rule": "value"})
    if action == "perf":
        form["seat_id"] = ""
    if action == "check":
        try:
            return await _check(request, me, form)
        except Stop as exc:
            return await _page(request, me, form, error=TEXT[lang][exc.key].format(**exc.fill), status=400)
        except api_call.Refused as exc:
            return await _page(request, me, form, error=TEXT[lang]["refused"].format(a=exc.in_lang(lang)),
                               status=exc.status if exc.status >= 400 else 400)
    return await _page(request, me, form)


async def _check(request: web.Request, me: staff.Session, form: dict) -> web.Response:
    """The split the API would book, and the draft (one-time number) that books exactly it."""
    lang = views._lang(request)
    p = TEXT[lang]
    rows, problem = await _read(request, me, _lines(form), lang)
    if problem:
        raise Stop("raw", a=problem)
    body = _body(form, rows)
    quote = await api_call.call(request, me, "POST", "/voucher-redemptions/quote", body)
    nonce = sales._keep(request, sales.Draft(me.staff_id, body, None, views._now(request)))
    perf = view.performances_ahead(request.app[DB], [body["performance_id"]], views._now(request))
    hidden = {k: form.get(k, "") for k in ("vouchers", "performance_id", "seat_id", "rule")}
    return views.render(request, "voucher_redeem_check.html", me=me, csrf=me.csrf, p=p, q=quote, nonce=nonce,
                        perf=perf[0] if perf else None, seat=_seat_text(quote["seat"], p), rule=body["rule"],
                        payments=PAYMENTS, euros=views._euros(lang), when=views._when, hidden=hidden, action=PATH,
                        numbers=[r["voucher"]["number"] for r in rows])


@lists.staff_only
async def confirm(request: web.Request, me: staff.Session) -> web.Response:
    """Book the draft once (`POST /voucher-redemptions`); a second POST of it leads to the same
    redemption. A refusal (a seat sold meanwhile, a voucher used at the same moment): the form
    again with the reason, nothing booked."""
    form = await views.checked_form(request, me)
    if isinstance(form, web.Response):
        return form
    lang = views._lang(request)
    p = TEXT[lang]
    draft: sales.Draft | None = request.app[sales.DRAFTS].get(form.get("nonce", ""))
    if draft is None or draft.staff_id != me.staff_id or "vouchers" not in draft.order:
        return views.render(request, "message.html", 409, message=p["e_draft"])
    if draft.order_id:
        raise web.HTTPSeeOther(f"{PATH}/{draft.order_id}")
    if draft.busy:
        return views.render(request, "message.html", 409, message=p["e_busy"])
    back = _form_of(draft.order)
    method, ref = form.get("payment_method", "").strip(), form.get("payment_reference", "").strip()
    if len(ref) > 100:
        return await _page(request, me, back, error=p["e_ref"], status=400)
    draft.busy = True
    try:
        done = await api_call.call(request, me, "POST", "/voucher-redemptions",
                                   {**draft.order, "payment_method": method if method in PAYMENTS else None,
                                    "payment_reference": ref or None})
        draft.order_id = done["order_id"]
    except api_call.Refused as exc:
        error = p["e_pay"] if exc.field == "payment_method" else p["refused"].format(a=exc.in_lang(lang))
        return await _page(request, me, back, error=error, status=exc.status if exc.status >= 400 else 400)
    finally:
        draft.busy = False
    raise web.HTTPSeeOther(f"{PATH}/{done['order_id']}")


def _form_of(body: dict) -> dict:
    """The redemption form again from a draft's body (after a refusal, to choose anew)."""
    return {"vouchers": "\n".join(v.get("number") or v.get("code") or "" for v in body["vouchers"]),
            "performance_id": body["performance_id"], "seat_id": body["seat_id"], "rule": body["rule"]}


@lists.staff_only
async def done(request: web.Request, me: staff.Session) -> web.Response:
    """A redemption read back: order, ticket, each voucher's value used and lapsed, payments."""
    lang = views._lang(request)
    found = view.redemption_of_order(request.app[DB], request.match_info["order"])
    if found is None:
        raise web.HTTPNotFound(text=TEXT[lang]["e_draft"])
    return views.render(request, "voucher_redeemed.html", me=me, csrf=me.csrf, p=TEXT[lang], r=found,
                        euros=views._euros(lang), when=views._when, seat=_seat_text(found["ticket"], TEXT[lang]))


@lists.staff_only
async def lookup(request: web.Request, me: staff.Session) -> web.Response:
    """`?q=` a number or scanned code: the voucher's state, offer, and once redeemed its order
    and ticket."""
    lang, db = views._lang(request), request.app[DB]
    q = request.query.get("q", "").strip()[:views.MAX_FIELD]
    voucher, error, redeemed, offer = None, None, None, []
    if q:
        try:
            voucher = await api_call.call(request, me, "GET", "/choice-vouchers", query=view.reference(q))
        except api_call.Refused as exc:
            error = TEXT[lang]["e_nothing"].format(a=exc.in_lang(lang))
    if voucher:
        offer = view.performances_ahead(db, voucher["offer"], views._now(request))
        if voucher["redemption"]:
            redeemed = view.redemption_of_order(db, voucher["redemption"]["order_id"])
    return views.render(request, "voucher_lookup.html", 404 if error else 200, me=me, csrf=me.csrf, p=TEXT[lang],
                        q=q, v=voucher, error=error, r=redeemed, offer=offer, euros=views._euros(lang),
                        when=views._when, seat=_seat_text(redeemed["ticket"], TEXT[lang]) if redeemed else "")


def install(app: web.Application) -> None:
    """The redemption form, its steps, the booking and the result; the lookup."""
    app.setdefault(sales.DRAFTS, {})
    app.router.add_get(PATH, show)
    app.router.add_post(PATH, step)
    app.router.add_post(PATH + "/confirm", confirm)
    app.router.add_get(PATH + "/{order}", done)
    app.router.add_get(LOOKUP, lookup)
