"""The cash desk's screens (A4, A5, A8), served by the edge itself so they work offline.

Server-rendered Jinja2 pages (`edge/desk/templates/`) plus one small vanilla script
(`edge/desk/static/desk.js`) that talks to the JSON API in `edge/desk/api.py`; the cash-or-card
block of the three sale screens is `templates/payment.html` with `static/payment.js`. Nothing is loaded
from outside the box. German by default; `?lang=en` / `?lang=de` switches and is kept in a
cookie. Every page carries the status bar, refreshed from `/api/status` every few seconds.
Pages other than the login need a logged-in operator (else: redirect to `/`). Dates are
formatted by the script itself in the venue's time zone (`data-tz`), de 2.12.2026, en
2 Dec 2026, never by the browser's locale.

Screens: `/` login (operator tiles, PIN pad), `/sell`, `/subscriptions` (ring, choice, combi from
this desk's pool; script `static/subscriptions.js`, words `subscription_texts.py`), `/vouchers`
(choice vouchers redeemed for a ticket, a cash desk only), `/counter`
(voucher -> card), `/cards` (lookup, reprint, lost card), `/print-queue`, `/summary`.

Stable element ids for browser tests (ids unless noted; `[data-testid=...]` marks repeated
elements):

- every page: `status-bar`, `status-node`, `status-operator`, `status-online`
  (data-online="true|false"), `status-waiting`, `status-last-sync`, `status-print`,
  `status-clock` (hidden unless the system clock is off trusted time; data-offset in seconds),
  `lang-de`, `lang-en`, `logout-button`, nav links `nav-sell`, `nav-subscriptions`, `nav-vouchers`,
  `nav-counter`, `nav-cards`, `nav-print-queue`, `nav-summary`, message line `message`
- login: `[data-testid=operator-tile]` (data-operator-id, data-operator-name), `pin-input`,
  `pin-key-0` ... `pin-key-9`, `pin-clear`, `pin-ok`, `login-error`
- sell: `[data-testid=product-tile]` / `[data-testid=voucher-tile]` (data-product-id), `cart`,
  `customer-search`, `[data-testid=customer-result]` (data-customer-id), `customer-chosen`, `customer-clear`,
  `[data-testid=cart-line]` (data-kind, data-product-id) with `[data-testid=qty-plus]`,
  `[data-testid=qty-minus]`, `[data-testid=remove-line]`, `[data-testid=holder-name]`;
  `total`, `pay-cash`, `pay-card`, `given`, `given-exact`, `[data-testid=quick-cash]`
  (`given-5` ... `given-100`, data-cents), `change-label`, `change`, `change-warning`,
  `terminal-ref`, `sell-button`, `sale-result`, `sale-number`, `sale-change-row` (cash only),
  `[data-testid=sale-card]`, `sale-receipt`, `new-sale`. The cart is kept in sessionStorage
  (`desk-cart`) across a language switch and other tabs; a sale, "new sale" and logout empty it.
- subscriptions: steps `sub-step-product|dates|seats|variants|customer|pay`; `[data-testid=sub-product-tile]`
  (data-product-id, data-kind) with `[data-testid=sub-free]`; `[data-testid=date-toggle]`
  (data-performance-id, aria-pressed); `[data-testid=map-tab]` (data-plan-id, data-variant-id) with
  `[data-testid=map-tab-count]`, `seat-map` (the server's SVG: `[data-seat-id][data-state]`),
  `zoom-in`, `zoom-out`; variant steps `variant-step-of`, `variant-step-text`, `variant-suggestion`,
  `take-suggestion`, `step-map`; `customer-search`, `[data-testid=customer-result]`, `new-customer`,
  `nc-first|last|street|postcode|town|country|email`, `nc-save`, `customer-chosen`, `customer-clear`,
  `[data-testid=form-choice]` (data-form), `[data-testid=member-row]` (data-member) with
  `[data-testid=member-holder]`, `[data-testid=tier-choice]` (data-tier-id), `[data-testid=member-price]`;
  the summary `[data-testid=member-summary]` (data-member) with `[data-testid=booked-date]`
  (data-performance-id, data-seat-id, data-replacement), `total`, `sub-back`, `sub-next`, `sub-cancel`;
  payment as on sell (`pay-cash`, `pay-card`, `given`, `given-exact`, `given-20` ... `given-500`,
  `change`, `change-warning`, `terminal-ref`), `sell-button`; `sale-result`, `sale-number`,
  `sale-change`, `[data-testid=sale-subscription]` (data-number, data-form), `sale-receipt`,
  `sale-passes`, `new-sale`. The sale in progress is kept in sessionStorage (`desk-subscription`,
  the result in `desk-subscription-done`) across a language switch; logout empties it. A scanned
  code (a burst of keys faster than typing, then Enter) opens `/cards?q=CODE`.
- vouchers (`/vouchers`, a cash desk only; script `static/vouchers.js`, words `voucher_texts.py`):
  `cv-scan`, `cv-add`, `cv-list` with `[data-testid=cv-voucher]` (data-number, data-state) and
  `[data-testid=cv-remove]`; `[data-testid=cv-perf]` (data-performance-id, aria-pressed);
  `[data-testid=cv-zone]` (data-zone-id), `[data-testid=cv-seat]` (data-seat-id); `[data-testid=cv-rule]`
  (data-rule value|payment); the split `cv-chosen`, `[data-testid=cv-split-voucher]`, `cv-price`,
  `cv-used`, `cv-lapsed`, `cv-discount`, `total` (the rest to pay); payment as on sell; `redeem-button`,
  `cv-cancel`; the result `cv-result`, `cv-number`, `cv-ticket`, `cv-change`, `[data-testid=cv-done-voucher]`,
  `cv-receipt`, `cv-new`. Kept in sessionStorage (`desk-vouchers`, `desk-vouchers-done`) across a
  language switch; logout empties it. A scan anywhere on the page adds the voucher.
- counter: `voucher-scan`, `voucher-check`, `voucher-info`, `voucher-product`, `holder-name`,
  `holder-birth`, `redeem-button`, `redeem-result`, `redeem-card-number`, `redeem-print`,
  `handover-button`, `counter-reset`
- cards: `card-search`, `card-search-button`, `scan-verdict` (a scanned code's verdict:
  data-reason, data-level ok|warn|refused), `card-results`, `[data-testid=card-row]`
  (data-card-id) with `[data-testid=card-valid]`, `[data-testid=card-state]`,
  `[data-testid=reprint]`, `[data-testid=replace]`, `[data-testid=handover]`
- print queue: `print-jobs`, `[data-testid=print-job]` (data-job-id, data-state) with
  `[data-testid=retry-job]`, `retry-all`, `print-refresh`
- summary: `summary-day` (typed as the language writes dates), `summary-day-iso`, `summary-table`,
  `[data-testid=summary-row]`, `summary-total`
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

from core.base.clock import LOCAL_TZ
from core.base.money import format_eur
from core.catalog import operators
from edge.desk import api
from edge.desk.api import current_operator, desk_products, local_today, open_jobs_view, summary
from edge.desk.subscription_texts import SUBSCRIPTION_TEXT
from edge.desk.voucher_texts import VOUCHER_TEXT

if TYPE_CHECKING:
    from edge.desk.server import Edge

HERE = Path(__file__).resolve().parent
LANG_COOKIE = "tessera_lang"
LANGS = ("de", "en")

TEXT: dict[str, dict[str, str]] = {
    "de": {
        "login": "Anmelden", "choose_operator": "Wer sind Sie?", "pin": "PIN", "ok": "OK", "clear_pin": "Löschen",
        "no_operators": "Noch keine Bediener auf diesem Gerät. Sie werden in der Zentrale angelegt und "
                        "kommen mit der nächsten Synchronisierung.",
        "sell": "Verkauf", "counter": "Personalisierung", "cards": "Karten", "print_queue": "Druckaufträge",
        "summary": "Tagesabschluss", "logout": "Abmelden", "online": "online", "offline": "offline",
        "waiting": "warten auf Sync", "last_sync": "letzte Sync", "never": "nie", "operator": "Bediener",
        "clock_ahead": "Uhr geht vor", "clock_behind": "Uhr geht nach", "clock_uses": "es gilt die Zeit des Hubs",
        "print_ok": "Drucker ok", "print_failed": "Druck fehlgeschlagen", "queued": "in Warteschlange",
        "annual_tickets": "Jahreskarten", "vouchers": "Gutscheine", "voucher": "Gutschein",
        "cart": "Warenkorb", "cart_empty": "Noch nichts ausgewählt: Produkt antippen.",
        "customer": "Kunde (optional)", "customer_search": "Name, Kundennummer oder E-Mail",
        "customer_none": "Kein Kunde gefunden.", "customer_clear": "Entfernen",
        "holder_name": "Name Karteninhaber/in", "total": "Summe", "payment": "Zahlung", "cash": "Bar",
        "card_payment": "Karte (EC/Kredit)", "given": "Gegeben (€)", "exact": "Passend", "change": "Rückgeld",
        "terminal_ref": "Terminal-Beleg-Nr.", "sell_button": "Verkaufen", "sale_done": "Verkauft",
        "sale_number": "Beleg-Nr.", "receipt": "Beleg", "printed": "gedruckt", "failed": "fehlgeschlagen",
        "new_sale": "Neuer Verkauf", "card_numbers": "Karten", "scan_voucher": "Gutschein scannen",
        "check": "Prüfen", "birth_date": "Geburtsdatum (optional)", "create_card": "Karte erstellen",
        "hand_over": "Übergeben", "handed_over": "übergeben", "next_voucher": "Nächster Gutschein",
        "card_created": "Karte erstellt", "search_card": "Karte scannen, Nummer oder Name",
        "search": "Suchen", "reprint": "Nachdrucken", "replace": "Verloren: ersetzen",
        "confirm_replace": "Karte als verloren ersetzen? Die alte Karte wird ungültig.",
        "no_results": "Keine Karte gefunden.", "number": "Nummer", "holder": "Inhaber/in",
        "product": "Produkt", "valid_until": "gültig bis", "state": "Status", "retry": "Erneut drucken",
        "retry_all": "Alle fehlgeschlagenen erneut drucken", "refresh": "Aktualisieren",
        "no_jobs": "Alles gedruckt.", "kind": "Art", "error": "Fehler", "attempts": "Versuche",
        "created": "erstellt", "day": "Tag", "payment_method": "Zahlart", "sales": "Verkäufe",
        "amount": "Betrag", "no_sales": "Keine Verkäufe an diesem Tag.", "show": "Anzeigen",
        "fulfilment_personalized": "personalisiert", "fulfilment_printed": "gedruckt",
        "fulfilment_handed_over": "übergeben", "fulfilment_dispatched": "versandt",
        "fulfilment_deposited": "hinterlegt", "kind_card": "Karte", "kind_receipt": "Beleg",
        "kind_carrier": "Versandbogen (Büro)", "method_cash": "Bar", "method_card": "Karte",
        "holders_missing": "Bitte für jede Jahreskarte einen Namen eingeben.",
        "given_too_low": "Der gegebene Betrag reicht nicht.", "ref_missing": "Terminal-Beleg-Nr. eingeben.",
        "revoked": "gesperrt", "voucher_for": "Gutschein für", "valid": "gültig",
        "remove_line": "Entfernen", "quick_cash": "Gegeben: Scheine", "date_invalid":
            "Datum bitte als TT.MM.JJJJ eingeben, z. B. 2.12.1990.", "date_placeholder": "TT.MM.JJJJ",
        "kind_annual": "Jahreskarte", "kind_voucher": "Gutschein", "kind_subscription": "Abo-Ausweis",
        "kind_single": "Einzelticket", "months_from_first_use": "{n} Monate ab erster Nutzung",
        "scan_refused": "Diesen Code nicht annehmen.", "scan_ok": "Code geprüft: echt und aktuell.",
        "drawer": "Kassenbestand", "drawer_float": "Anfangsbestand (Wechselgeld)", "drawer_deposit": "Einlage",
        "drawer_withdrawal": "Entnahme", "drawer_count": "Gezählt (Abschluss)", "drawer_takings": "Bareinnahmen",
        "drawer_expected": "Soll-Bestand", "drawer_difference": "Differenz", "drawer_record": "Buchen",
        "drawer_note": "Notiz (optional)", "drawer_not_counted": "noch nicht gezählt", "drawer_entries": "Buchungen",
        "drawer_amount_invalid": "Betrag bitte in Euro eingeben, z. B. 150,00.", "drawer_done": "Gebucht",
        "drawer_today_only": "Buchungen gehen auf den heutigen Tag.",
    },
    "en": {
        "login": "Log in", "choose_operator": "Who are you?", "pin": "PIN", "ok": "OK", "clear_pin": "Clear",
        "no_operators": "No operators on this device yet. They are created at the office and arrive "
                        "with the next sync.",
        "sell": "Sell", "counter": "Counter", "cards": "Cards", "print_queue": "Print jobs",
        "summary": "Day summary", "logout": "Log out", "online": "online", "offline": "offline",
        "waiting": "waiting to sync", "last_sync": "last sync", "never": "never", "operator": "Operator",
        "clock_ahead": "clock ahead", "clock_behind": "clock behind", "clock_uses": "using the hub's time",
        "print_ok": "printers ok", "print_failed": "printing failed", "queued": "queued",
        "annual_tickets": "Annual tickets", "vouchers": "Vouchers", "voucher": "Voucher",
        "cart": "Cart", "cart_empty": "Nothing selected yet: tap a product.",
        "customer": "Customer (optional)", "customer_search": "Name, customer number or e-mail",
        "customer_none": "No customer found.", "customer_clear": "Remove",
        "holder_name": "Card holder's name", "total": "Total", "payment": "Payment", "cash": "Cash",
        "card_payment": "Card (debit/credit)", "given": "Given (€)", "exact": "Exact", "change": "Change",
        "terminal_ref": "Terminal receipt no.", "sell_button": "Sell", "sale_done": "Sold",
        "sale_number": "Receipt no.", "receipt": "Receipt", "printed": "printed", "failed": "failed",
        "new_sale": "New sale", "card_numbers": "Cards", "scan_voucher": "Scan voucher",
        "check": "Check", "birth_date": "Date of birth (optional)", "create_card": "Create card",
        "hand_over": "Hand over", "handed_over": "handed over", "next_voucher": "Next voucher",
        "card_created": "Card created", "search_card": "Scan card, number or name",
        "search": "Search", "reprint": "Reprint", "replace": "Lost: replace",
        "confirm_replace": "Replace this card as lost? The old card stops working.",
        "no_results": "No card found.", "number": "Number", "holder": "Holder",
        "product": "Product", "valid_until": "valid until", "state": "State", "retry": "Print again",
        "retry_all": "Print all failed jobs again", "refresh": "Refresh",
        "no_jobs": "Everything printed.", "kind": "Kind", "error": "Error", "attempts": "Attempts",
        "created": "created", "day": "Day", "payment_method": "Payment", "sales": "Sales",
        "amount": "Amount", "no_sales": "No sales on this day.", "show": "Show",
        "fulfilment_personalized": "personalized", "fulfilment_printed": "printed",
        "fulfilment_handed_over": "handed over", "fulfilment_dispatched": "dispatched",
        "fulfilment_deposited": "deposited", "kind_card": "Card", "kind_receipt": "Receipt",
        "kind_carrier": "Carrier sheet (office)", "method_cash": "Cash", "method_card": "Card",
        "holders_missing": "Please enter a name for every annual card.",
        "given_too_low": "The amount given is not enough.", "ref_missing": "Enter the terminal receipt no.",
        "revoked": "revoked", "voucher_for": "Voucher for", "valid": "valid",
        "remove_line": "Remove", "quick_cash": "Given: notes", "date_invalid":
            "Please enter the date like 2 Dec 1990 or 2.12.1990.", "date_placeholder": "e.g. 2 Dec 1990",
        "kind_annual": "Annual ticket", "kind_voucher": "Voucher", "kind_subscription": "Subscription pass",
        "kind_single": "Single ticket", "months_from_first_use": "{n} months from first use",
        "scan_refused": "Do not accept this code.", "scan_ok": "Code checked: genuine and current.",
        "drawer": "Cash drawer", "drawer_float": "Opening float", "drawer_deposit": "Cash in",
        "drawer_withdrawal": "Cash out", "drawer_count": "Counted at closing", "drawer_takings": "Cash takings",
        "drawer_expected": "Expected in drawer", "drawer_difference": "Difference", "drawer_record": "Record",
        "drawer_note": "Note (optional)", "drawer_not_counted": "not counted yet", "drawer_entries": "Entries",
        "drawer_amount_invalid": "Enter the amount in euros, e.g. 150.00.", "drawer_done": "Recorded",
        "drawer_today_only": "Entries are booked on today.",
    },
}
for _lang, _words in SUBSCRIPTION_TEXT.items():
    TEXT[_lang].update(_words)
for _lang, _words in VOUCHER_TEXT.items():
    TEXT[_lang].update(_words)
NAV = (("sell", "/sell"), ("subscriptions", "/subscriptions"), ("choice_vouchers", "/vouchers"),
       ("counter", "/counter"), ("cards", "/cards"), ("print_queue", "/print-queue"), ("summary", "/summary"))
CASHDESK_ONLY = ("choice_vouchers",)  # a counter holds no seats: it redeems no choice voucher

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.filters["eur"] = format_eur


def language(request: web.Request) -> str:
    wanted = request.query.get("lang") or request.cookies.get(LANG_COOKIE)
    return wanted if wanted in LANGS else "de"


def _edge(request: web.Request) -> Edge:
    return request.app[api.DESK]


def page(request: web.Request, template: str, active: str, **context) -> web.Response:
    """Render a page with the layout's context (status bar, nav, language) and keep the language."""
    edge, lang = _edge(request), language(request)
    operator = current_operator(request)
    html = _env.get_template(template).render(
        t=TEXT[lang], lang=lang, texts=TEXT[lang], node=edge.node, operator=operator, nav=nav_of(edge),
        active=active, path=request.path, tz=str(LOCAL_TZ), **context)
    resp = web.Response(text=html, content_type="text/html")
    if request.query.get("lang") in LANGS:
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Strict", path="/")
    return resp


def nav_of(edge: Edge) -> tuple[tuple[str, str], ...]:
    """The screens of this node's role (the voucher redemption at a cash desk only)."""
    return tuple(n for n in NAV if n[0] not in CASHDESK_ONLY or edge.node["role"] == "cashdesk")


def logged_in(handler):
    """Pages behind the login: without a session, back to the login screen."""
    async def wrapped(request: web.Request) -> web.Response:
        if current_operator(request) is None:
            raise web.HTTPSeeOther("/")
        return await handler(request)
    wrapped.__name__ = handler.__name__
    return wrapped


def home_of(edge: Edge) -> str:
    return "/counter" if edge.node["role"] == "counter" else "/sell"


async def login_page(request: web.Request) -> web.Response:
    edge = _edge(request)
    return page(request, "login.html", "login", operators=operators.listed(edge.db, active_only=True),
                home=home_of(edge))


@logged_in
async def sell_page(request: web.Request) -> web.Response:
    return page(request, "sell.html", "sell", products=desk_products(_edge(request).db))


@logged_in
async def subscriptions_page(request: web.Request) -> web.Response:
    """The subscription sale (ring, choice, combi from this desk's pool): the page is a frame,
    the script fetches products, maps and prices from the JSON API (`subscriptions_api.py`)."""
    return page(request, "subscriptions.html", "subscriptions")


@logged_in
async def vouchers_page(request: web.Request) -> web.Response:
    """Choice vouchers redeemed for a ticket from this desk's pool: the page is a frame, the
    script (`static/vouchers.js`) talks to `vouchers_api.py`. A counter has no seats: home."""
    edge = _edge(request)
    if edge.node["role"] != "cashdesk":
        raise web.HTTPSeeOther(home_of(edge))
    return page(request, "vouchers.html", "choice_vouchers")


@logged_in
async def counter_page(request: web.Request) -> web.Response:
    return page(request, "counter.html", "counter")


@logged_in
async def cards_page(request: web.Request) -> web.Response:
    return page(request, "cards.html", "cards", query=request.query.get("q", "")[:200])


@logged_in
async def print_queue_page(request: web.Request) -> web.Response:
    edge = _edge(request)
    return page(request, "print_queue.html", "print_queue", jobs=open_jobs_view(edge))


@logged_in
async def summary_page(request: web.Request) -> web.Response:
    edge = _edge(request)
    try:
        day = api.parse_day(request.query.get("day"), edge)
    except api.ValidationError:
        day = local_today(edge)
    today = local_today(edge)
    return page(request, "summary.html", "summary", summary=summary(edge, day), is_today=day == today)


def install(app: web.Application, edge: Edge) -> None:
    r = app.router
    r.add_get("/", login_page)
    r.add_get("/sell", sell_page)
    r.add_get("/subscriptions", subscriptions_page)
    r.add_get("/vouchers", vouchers_page)
    r.add_get("/counter", counter_page)
    r.add_get("/cards", cards_page)
    r.add_get("/print-queue", print_queue_page)
    r.add_get("/summary", summary_page)
    r.add_static("/static/", HERE / "static", append_version=False)
