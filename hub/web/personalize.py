"""The customer's page for a personalization link, at `/p/<token>` (A3).

A shop order's items are sold without a holder; the order mail carries one link per card
(the links themselves: `hub/services/personalization.py`). The page asks for the holder's
name, optionally a date of birth and a photo (and a start day for cards valid N months from
purchase), and issues the card through `personalization.personalize` with the hub's own
signing key, which marks the link used in the same transaction: a link issues at most one card.

These are HTML pages for people, not API operations: errors are pages (404 unknown link,
410 used or expired, 429 too many requests) in German or English, never problem+json.
The token is the only secret, so there is no CSRF token; instead bodies are capped (6 MB)
and each client address may make at most 30 requests a minute to /p/* (behind a trusted proxy:
the forwarded client, hub/web/client_address.py), counted in the database so that every hub
process on it shares the limit. A photo is decoded last, in a worker thread,
only when everything else about the form is right (`hub/services/personalization.py`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import msgspec
import segno
import yarl
from aiohttp import BodyPartReader, web

from core.base.clock import LOCAL_TZ, parse_iso, utcnow
from core.base.errors import TesseraError
from core.cards import cards
from core.catalog.annual import validity_window
from core.sales import orders
from hub.services import personalization, print_batches
from hub.services.personalization import MAX_PHOTO, PhotoRefused, prepare_photo
from hub.services.rate_limits import RateLimit
from hub.settings import context
from hub.web.api import DB
from hub.web.areas import shop
from hub.web.client_address import client_address
from hub.web.offload import off_loop

MAX_BODY = 6 * 1024 * 1024
MAX_FIELD = 2000  # bytes of one text field
DECODING_AT_ONCE = 2  # photos decoded at the same time (each may take ~160 MB at MAX_PIXELS)
OLDEST_YEARS = 120
LANGS = ("de", "en")
RATE_LIMIT = 30
RATE_WINDOW_S = 60.0
RATE_SCOPE = "personalize"

LIMITER = web.AppKey("personalize_limiter", "RateLimiter")
DECODING = web.AppKey("personalize_decoding", asyncio.Semaphore)
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True, trim_blocks=True, lstrip_blocks=True)


# --- rate limit -----------------------------------------------------------------------------------------


class RateLimiter(RateLimit):
    """At most *limit* requests per *window_s* per client address to /p/* (sliding window).
    The hits are kept in the database (`hub/services/rate_limits.py`), so several hub
    processes on one database together allow *limit*, not one *limit* each. *clock* (wall
    seconds) is injectable so tests need not sleep."""

    def __init__(self, limit: int = RATE_LIMIT, window_s: float = RATE_WINDOW_S,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(RATE_SCOPE, limit, window_s, clock=clock)


# --- language -------------------------------------------------------------------------------------------

TEXT = {
    "de": {
        "title": "Jahreskarte personalisieren", "intro": "Bitte geben Sie an, für wen diese Jahreskarte ist.",
        "order": "Bestellung", "product": "Karte", "name": "Name der Karteninhaberin / des Karteninhabers",
        "birth_date": "Geburtsdatum (freiwillig)", "photo": "Foto (freiwillig, JPEG oder PNG, höchstens 5 MB)",
        "valid_from": "Gültig ab (freiwillig; ohne Angabe ab heute)", "submit": "Karte ausstellen",
        "done_title": "Ihre Jahreskarte ist ausgestellt", "card_number": "Kartennummer", "holder": "Inhaber/in",
        "valid": "Gültig", "until": "bis", "show_qr": "Zeigen Sie diesen Code am Eingang vor. Die gedruckte "
        "Karte erhalten Sie wie bestellt.", "fix": "Bitte korrigieren Sie die markierten Angaben.",
        "unknown_title": "Link unbekannt", "unknown": "Diesen Personalisierungs-Link gibt es nicht. Bitte prüfen "
        "Sie, ob er vollständig aus der E-Mail übernommen wurde.",
        "used_title": "Bereits personalisiert", "used": "Diese Karte wurde bereits personalisiert.",
        "used_again": "Diese Karte wurde bereits personalisiert; Ihre Angaben wurden nicht übernommen.",
        "your_card": "Ihre Jahreskarte", "revoked_title": "Karte gesperrt", "revoked": "Diese Karte ist gesperrt "
        "und gilt nicht mehr. Bitte wenden Sie sich an den Besucherservice.",
        "expired_title": "Link abgelaufen", "expired": "Dieser Link ist abgelaufen. Bitte wenden Sie sich an "
        "den Besucherservice; Ihre Karte ist nicht verloren.",
        "busy_title": "Zu viele Anfragen", "busy": "Bitte warten Sie {s} Sekunden und versuchen Sie es erneut.",
        "big_title": "Zu groß", "big": "Die gesendeten Daten sind zu groß (höchstens 6 MB).",
        "foreign_title": "Nicht von dieser Seite", "foreign": "Das Formular kam nicht von dieser Seite. Bitte öffnen "
                                                              "Sie den Link aus Ihrer E-Mail.",
        "e_name": "Bitte geben Sie einen Namen an (höchstens 200 Zeichen).",
        "e_date": "Bitte ein Datum im Format JJJJ-MM-TT angeben.",
        "e_birth_future": "Das Geburtsdatum muss in der Vergangenheit liegen.",
        "e_birth_old": "Bitte prüfen Sie das Geburtsdatum (mehr als 120 Jahre).",
        "e_start": "Der Beginn muss zwischen heute und {days} Tagen im Voraus liegen.",
        "e_photo_type": "Das Foto muss ein JPEG- oder PNG-Bild sein.",
        "e_photo_big": "Das Foto ist größer als 5 MB.",
        "e_photo_pixels": "Das Bild hat zu viele Bildpunkte.",
        "e_photo_broken": "Das Bild ist beschädigt und lässt sich nicht öffnen.",
        "e_other": "Die Karte konnte nicht ausgestellt werden: {detail}",
        "mode_fixed": "gültig vom {a} bis {b}", "mode_from_purchase": "{m} Monate ab Ausstellung oder gewähltem "
        "Beginn", "mode_from_first_entry": "{m} Monate ab dem ersten Besuch",
    },
    "en": {
        "title": "Personalize your annual ticket", "intro": "Please tell us who this annual ticket is for.",
        "order": "Order", "product": "Ticket", "name": "Card holder's name",
        "birth_date": "Date of birth (optional)", "photo": "Photo (optional, JPEG or PNG, at most 5 MB)",
        "valid_from": "Valid from (optional; default today)", "submit": "Issue card",
        "done_title": "Your annual ticket is issued", "card_number": "Card number", "holder": "Holder",
        "valid": "Valid", "until": "until", "show_qr": "Show this code at the entrance. You will receive the "
        "printed card as ordered.", "fix": "Please correct the marked fields.",
        "unknown_title": "Unknown link", "unknown": "This personalization link does not exist. Please check "
        "that it was copied completely from the e-mail.",
        "used_title": "Already personalized", "used": "This card has already been personalized.",
        "used_again": "This card has already been personalized; what you sent was not used.",
        "your_card": "Your annual ticket", "revoked_title": "Card revoked", "revoked": "This card is revoked and "
        "no longer valid. Please contact visitor services.",
        "expired_title": "Link expired", "expired": "This link has expired. Please contact visitor services; "
        "your ticket is not lost.",
        "busy_title": "Too many requests", "busy": "Please wait {s} seconds and try again.",
        "big_title": "Too large", "big": "The data sent is too large (at most 6 MB).",
        "foreign_title": "Not from this page", "foreign": "The form did not come from this page. Please open the "
                                                          "link in your e-mail.",
        "e_name": "Please enter a name (at most 200 characters).",
        "e_date": "Please give a date as YYYY-MM-DD.",
        "e_birth_future": "The date of birth must be in the past.",
        "e_birth_old": "Please check the date of birth (more than 120 years ago).",
        "e_start": "The start day must be between today and {days} days ahead.",
        "e_photo_type": "The photo must be a JPEG or PNG image.",
        "e_photo_big": "The photo is larger than 5 MB.",
        "e_photo_pixels": "The image has too many pixels.",
        "e_photo_broken": "The image is damaged and cannot be opened.",
        "e_other": "The card could not be issued: {detail}",
        "mode_fixed": "valid from {a} to {b}", "mode_from_purchase": "{m} months from issue or the chosen start day",
        "mode_from_first_entry": "{m} months from the first visit",
    },
}


def choose_lang(request: web.Request) -> str:
    """?lang= first (the switch link), then the browser's Accept-Language, else German."""
    asked = request.query.get("lang", "")
    if asked in LANGS:
        return asked
    best, best_q = "de", -1.0
    for part in request.headers.get("Accept-Language", "")[:500].split(","):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower()[:2]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if lang in LANGS and q > best_q:
            best, best_q = lang, q
    return best


# --- the form -------------------------------------------------------------------------------------------


@dataclass
class Form:
    """What the customer sent: the text fields as typed (to show them again) and the photo."""

    values: dict[str, str] = field(default_factory=dict)
    photo: bytes | None = None
    photo_too_big: bool = False
    too_big: bool = False


async def read_form(request: web.Request) -> Form:
    """Read a multipart (or urlencoded) form within MAX_BODY; the photo within MAX_PHOTO."""
    form = Form()
    if request.content_length is not None and request.content_length > MAX_BODY:
        form.too_big = True
        return form
    if request.content_type == "multipart/form-data":
        await _read_multipart(request, form)
    else:
        try:
            data = await request.post()
        except web.HTTPRequestEntityTooLarge:
            form.too_big = True
            return form
        for name in ("name", "birth_date", "valid_from"):
            value = data.get(name)
            if isinstance(value, str):
                form.values[name] = value[:MAX_FIELD]
    return form


async def _read_multipart(request: web.Request, form: Form) -> None:
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError):
        return  # no or broken boundary: an empty form, whose errors the page shows
    total = 0
    while True:
        try:
            part = await reader.next()
        except (ValueError, AssertionError, KeyError):
            return
        if part is None:
            return
        if not isinstance(part, BodyPartReader):
            continue  # a nested multipart: nothing our form sends
        limit = MAX_PHOTO if part.name == "photo" else MAX_FIELD
        data, size = await _read_part(part, limit, MAX_BODY - total)
        total += size
        if total > MAX_BODY:
            form.too_big = True
            return
        if part.name == "photo":
            form.photo_too_big = size > MAX_PHOTO
            form.photo = data if part.filename or data else None
        elif part.name in ("name", "birth_date", "valid_from") and data is not None:
            form.values[part.name] = data.decode("utf-8", "replace")


async def _read_part(part: BodyPartReader, keep: int, budget: int) -> tuple[bytes | None, int]:
    """Read one part: keep at most *keep* bytes, count (and drain) up to *budget* + 1."""
    chunks, size = [], 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size <= keep:
            chunks.append(chunk)
        if size > budget:
            break
    return (b"".join(chunks) if size <= keep else None), size


def _parse_date(text: str) -> dt.date:
    return dt.date.fromisoformat(text.strip())


def check_form(form: Form, link: dict, today: dt.date) -> tuple[dict[str, str], dict]:
    """Field -> message key for every mistake, and the clean holder fields."""
    errors: dict[str, str] = {}
    clean: dict = {}
    name = " ".join(form.values.get("name", "").split())
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        errors["name"] = "e_name"
    clean["name"] = name
    birth = form.values.get("birth_date", "").strip()
    if birth:
        try:
            born = _parse_date(birth)
        except ValueError:
            errors["birth_date"] = "e_date"
        else:
            if born >= today:
                errors["birth_date"] = "e_birth_future"
            elif born.year < today.year - OLDEST_YEARS:
                errors["birth_date"] = "e_birth_old"
            clean["birth_date"] = born.isoformat()
    start = form.values.get("valid_from", "").strip()
    if start and link["validity_mode"] == "from_purchase":
        try:
            clean["valid_from"] = _parse_date(start).isoformat()
        except ValueError:
            errors["valid_from"] = "e_date"
    if form.photo_too_big:
        errors["photo"] = "e_photo_big"
    return errors, clean


# --- pages ----------------------------------------------------------------------------------------------


def _headers() -> dict[str, str]:
    """The token is in the URL: never cache the page, never send it on as a Referer."""
    return {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"}


def render(template: str, status: int, lang: str, request: web.Request, **context) -> web.Response:
    """A page; its header names the organizer of the link's product (none for an unknown link)."""
    organizer = (context.get("link") or {}).get("organizer") or ""
    html = TEMPLATES.get_template(template).render(
        lang=lang, t=TEXT[lang], other=[x for x in LANGS if x != lang][0], path=request.path, organizer=organizer,
        **context)
    headers = _headers()
    if "retry_after" in context:
        headers["Retry-After"] = str(context["retry_after"])
    return web.Response(status=status, text=html, content_type="text/html", charset="utf-8", headers=headers)


def message(request: web.Request, lang: str, status: int, key: str, **context) -> web.Response:
    t = TEXT[lang]
    text = t[key].format(s=context.get("retry_after", ""))
    return render("personalize_message.html", status, lang, request, heading=t[key + "_title"], text=text,
                  **context)


def _validity_text(link: dict, lang: str) -> str:
    mode = link["validity_mode"]
    t = TEXT[lang]
    if mode == "fixed":
        return t["mode_fixed"].format(a=_day(link["product_from"]), b=_day(link["product_until"]))
    return t["mode_" + mode].format(m=link["months"])


def _day(text: str | None) -> str:
    """A stored day ("2027-01-01") or instant ("2026-12-01T23:00:00Z", local midnight) as the
    venue's calendar day: the instant's UTC date would be a day early."""
    if not text:
        return ""
    day = parse_iso(text).astimezone(LOCAL_TZ).date() if "T" in text else dt.date.fromisoformat(text)
    return day.strftime("%d.%m.%Y")


def _card_validity(link: dict, card: dict, lang: str) -> str:
    """"01.12.2026 bis 30.11.2027"; for a card valid N months from its first entry, the months
    until that entry (its stored dates are only the outer bounds), then the window it started."""
    t = TEXT[lang]
    if link["validity_mode"] == "from_first_entry":
        if not card.get("first_entry_at"):
            return t["mode_from_first_entry"].format(m=link["months"])
        first = parse_iso(card["first_entry_at"]).astimezone(LOCAL_TZ).date()
        start, end = validity_window({"validity_mode": "from_first_entry", "months": link["months"]}, first, first)
        return f"{start:%d.%m.%Y} {t['until']} {end:%d.%m.%Y}"
    return f"{_day(card['valid_from'])} {t['until']} {_day(card['valid_until'])}"


def qr_svg(card: dict) -> str:
    """The card's code as an inline SVG that scales with its box (a viewBox, no fixed size:
    with a fixed size the drawing stayed small in the top-left corner of a wider box)."""
    return segno.make(card["code"], error="m").svg_inline(scale=4, border=2, title=card["number"], omitsize=True)


def _card_page(request: web.Request, lang: str, link: dict, card: dict, status: int, note: str = "") -> web.Response:
    """The issued card: number, holder, validity and its code as a QR code to show at the
    entrance; after issuing it, and whenever the used link is opened again."""
    if card["revoked_at"]:
        return message(request, lang, 410, "revoked", link=link, card_number=card["number"])
    qr = qr_svg(card)
    heading = TEXT[lang]["done_title" if status == 201 else "your_card"]
    return render("personalize_done.html", status, lang, request, link=link, card=card, qr=qr, heading=heading,
                  validity=_card_validity(link, card, lang), note=TEXT[lang][note] if note else "")


def _form_page(request: web.Request, lang: str, link: dict, today: dt.date, *, values: dict | None = None,
               errors: dict | None = None, status: int = 200, detail: str = "") -> web.Response:
    t = TEXT[lang]
    messages = {f: t[k].format(days=orders.START_AHEAD_DAYS, detail=detail) for f, k in (errors or {}).items()}
    return render("personalize_form.html", status, lang, request, link=link, values=values or {},
                  errors=messages, validity=_validity_text(link, lang),
                  choose_start=link["validity_mode"] == "from_purchase", today=today.isoformat(),
                  last_start=(today + dt.timedelta(days=orders.START_AHEAD_DAYS)).isoformat())


def _closed(request: web.Request, lang: str, db: sqlite3.Connection, link: dict | None,
            now: dt.datetime, *, sent: bool = False) -> web.Response | None:
    """The page for an unknown, used or expired link; None if the link is open. A used link
    shows its card again (*sent*: a form for it came in and was not used: 409)."""
    if link is None:
        return message(request, lang, 404, "unknown")
    state = personalization.link_state(link, now)
    if state == "used":
        card = personalization.issued_card(db, link)
        if card is None:
            return message(request, lang, 410, "used", link=link)
        return _card_page(request, lang, link, card, 409 if sent else 200, "used_again" if sent else "used")
    if state == "expired":
        return message(request, lang, 410, "expired", link=link)
    return None


async def _limited(request: web.Request, lang: str) -> web.Response | None:
    """429 when the client has asked too often. Counting is a write (under the write lock): on
    PostgreSQL off the event loop (hub/web/offload.py)."""
    limiter, client = request.app[LIMITER], client_address(request)
    wait = (await off_loop(request.app, request.app[DB], lambda db: limiter.take(db, client))).wait
    return None if wait is None else message(request, lang, 429, "busy", retry_after=wait)


async def show_form(request: web.Request) -> web.Response:
    lang = choose_lang(request)
    if (refusal := await _limited(request, lang)) is not None:
        return refusal
    db = request.app[DB]
    now = utcnow()
    link = personalization.find_link(db, request.match_info["token"])
    closed = _closed(request, lang, db, link, now)
    return closed or _form_page(request, lang, link, now.astimezone(LOCAL_TZ).date())


def from_elsewhere(request: web.Request) -> bool:
    """A form post that a browser says comes from another site (DESIGN §12): the page's own
    form is same-origin; a hostile page could post for a customer whose link it learnt."""
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if origin == "null":
        # our own form under `Referrer-Policy: no-referrer`: browsers send the origin as "null"
        # (so does a sandboxed frame on another site, which Sec-Fetch-Site names cross-site)
        return fetch_site != "same-origin"
    if origin is not None:
        return origin not in (f"{request.scheme}://{request.host}", _public_origin(request))
    return (fetch_site or "same-origin") not in ("same-origin", "none")


def _public_origin(request: web.Request) -> str:
    """scheme://host[:port] of [shop] public_url (the address in the mails, behind a proxy)."""
    try:
        public = context(request.app).section(shop.SECTION).public_url or ""
    except shop.ShopConfigError:
        return ""
    url = yarl.URL(public)
    return str(url.origin()) if url.scheme and url.host else ""


async def submit_form(request: web.Request) -> web.Response:
    lang = choose_lang(request)
    if (refusal := await _limited(request, lang)) is not None:
        return refusal
    if from_elsewhere(request):
        return message(request, lang, 403, "foreign")
    form = await read_form(request)
    if form.too_big:
        return message(request, lang, 413, "big")
    db = request.app[DB]
    now = utcnow()
    link = personalization.find_link(db, request.match_info["token"])
    if (closed := _closed(request, lang, db, link, now, sent=True)) is not None:
        return closed
    today = now.astimezone(LOCAL_TZ).date()
    errors, clean = check_form(form, link, today)
    if errors:  # the photo is not even opened: a refused form costs no decode
        return _form_page(request, lang, link, today, values=form.values, errors=errors, status=422)
    photo = None
    if form.photo:
        try:
            photo = ("image/jpeg", await _decode(request, form.photo))
        except PhotoRefused as refused:
            return _form_page(request, lang, link, today, values=form.values, errors={"photo": refused.args[0]},
                              status=422)
    return await _issue(request, lang, db, link, clean, photo, now, form)


async def _decode(request: web.Request, data: bytes) -> bytes:
    """`personalization.prepare_photo` in a worker thread, at most DECODING_AT_ONCE at a time:
    the event loop keeps serving while Pillow works, and a burst of uploads cannot hold
    many decoded images in memory at once."""
    async with request.app[DECODING]:
        return await asyncio.to_thread(prepare_photo, data)


async def _issue(request: web.Request, lang: str, db: sqlite3.Connection, link: dict, clean: dict,
                 photo: tuple[str, bytes] | None, now: dt.datetime, form: Form) -> web.Response:
    """Issue the card and close the link, together or not at all (a write: on PostgreSQL off the
    event loop, hub/web/offload.py)."""
    today = now.astimezone(LOCAL_TZ).date()
    data_dir = context(request.app).data_dir
    try:
        holder = msgspec.convert(clean, orders.HolderIn)
        card = await off_loop(request.app, db, lambda pooled: personalization.personalize(
            pooled, cards.load_signer(pooled, data_dir), link, holder, now, photo=photo))
    except msgspec.ValidationError:
        return _form_page(request, lang, link, today, values=form.values, errors={"name": "e_name"}, status=422)
    except TesseraError as exc:
        key = "e_start" if exc.field == "valid_from" else "e_other"
        return _form_page(request, lang, link, today, values=form.values, errors={exc.field or "form": key},
                          status=exc.status, detail=exc.detail)
    if card is None:  # the link was taken by a request that got here first
        return _closed(request, lang, db, personalization.find_link(db, request.match_info["token"]), now, sent=True)
    print_batches.wake_worker(request.app)  # the card's print data is due
    return _card_page(request, lang, link, {**card, "first_entry_at": None}, 201)


def install(app: web.Application, limiter: RateLimiter | None = None) -> None:
    """Add the page routes; the database is the app's (set by make_app before serving)."""
    app[LIMITER] = limiter or RateLimiter()
    app[DECODING] = asyncio.Semaphore(DECODING_AT_ONCE)
    app.router.add_get("/p/{token}", show_form, name="personalize_form")
    app.router.add_post("/p/{token}", submit_form, name="personalize_submit")
