"""Pages of the office app: setup link, login, logout, start page.

Sessions: the cookie `tessera_office` holds a random secret (the hub stores its hash) and is
HttpOnly, SameSite=Strict and Secure when [shop] public_url is https. The office app is a
browser app only: a session cookie opens no /api/v1 operation (the API takes bearer tokens,
`hub/web/api.py`), and an API token in the cookie is no session.

CSRF: every POST must (1) come from this hub's own origin (`personalize.from_elsewhere`, the
hub's one origin rule: Origin, else Sec-Fetch-Site; [shop] public_url counts as own) and
(2) carry the form token in the hidden field `csrf`: the session's token, or, before a login,
the double-submit token of the cookie `tessera_office_form`. A refused POST changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Callable
from pathlib import Path

import jinja2
from aiohttp import web

from core.base.clock import LOCAL_TZ, parse_iso, utcnow
from core.base.errors import ValidationError
from hub.services import staff
from hub.settings import context
from hub.web.api import DB
from hub.web.areas import shop
from hub.web.office.text import LANGS, TEXT
from hub.web.offload import off_loop
from hub.web.personalize import choose_lang, from_elsewhere

CLOCK = web.AppKey("office_clock", Callable[[], dt.datetime])
CHECKING = web.AppKey("office_checking", asyncio.Semaphore)
CHECKS_AT_ONCE = 2  # password checks at the same time (each takes 64 MB)
COOKIE = "tessera_office"
FORM_COOKIE = "tessera_office_form"
CODE_COOKIE = "tessera_office_code"  # a half-login (password right, TOTP code due)
LANG_COOKIE = "tessera_office_lang"
MAX_FORM = 16 * 1024
# The navigation bar: (address, label key, admins only). One line per screen, in the order shown.
NAV: list[tuple[str, str, bool]] = [
    ("/office/", "start", False),
    ("/office/customers", "customers", False),
    ("/office/orders", "orders", False),
    ("/office/cards", "cards_title", False),
    ("/office/subscriptions", "subscriptions", False),
    ("/office/voucher-redemptions", "vouchers_nav", False),
    ("/office/open-items", "open_items_nav", False),  # money (issue 16)
    ("/office/refunds", "refunds_nav", False),
    ("/office/sepa", "sepa_nav", False),
    ("/office/bank", "bank_nav", False),
    ("/office/datev", "datev_nav", False),
    ("/office/reports", "reports_nav", False),  # S14 lists (issue 17)
    ("/office/print", "print_title", False),
    ("/office/conflicts", "conflict_list", False),
    ("/office/mail", "mail_list", False),
    ("/office/devices", "devices", False),
    ("/office/staff", "st_staff", True),
    ("/office/operators", "operators", False),
    ("/office/tokens", "tokens", True),
    ("/office/catalog", "catalog", False),
]
# Screens reached from a navigation entry that live at another address: the entry stays marked there.
NAV_ALSO: dict[str, tuple[str, ...]] = {
    "/office/voucher-redemptions": ("/office/choice-vouchers",),  # the voucher lookup beside the redemption
}


def nav_current(href: str, path: str) -> bool:
    """Whether the navigation entry *href* is the screen at *path* (or one below it, or one it leads to)."""
    return any(path == base or (base != "/office/" and path.startswith(base))
               for base in (href, *NAV_ALSO.get(href, ())))
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parents[1] / "templates" / "office"),
    autoescape=True, trim_blocks=True, lstrip_blocks=True)
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                      "base-uri 'none'; frame-ancestors 'none'"}


def _now(request: web.Request) -> dt.datetime:
    return request.app[CLOCK]()


def _lang(request: web.Request) -> str:
    if request.query.get("lang") in LANGS:
        return request.query["lang"]
    return request.cookies.get(LANG_COOKIE) if request.cookies.get(LANG_COOKIE) in LANGS else choose_lang(request)


def _secure(request: web.Request) -> bool:
    """Secure cookies when the hub is reached over https ([shop] public_url), or this request is."""
    public = context(request.app).section(shop.SECTION).public_url or ""
    return public.startswith("https://") or request.secure


def _cookie(response: web.StreamResponse, request: web.Request, name: str, value: str) -> None:
    response.set_cookie(name, value, path="/office", httponly=True, samesite="Strict", secure=_secure(request))


def render(request: web.Request, template: str, status: int = 200, **ctx) -> web.Response:
    lang = _lang(request)
    html = TEMPLATES.get_template(template).render(lang=lang, t=TEXT[lang], other=LANGS[1 - LANGS.index(lang)],
                                                   path=request.path, nav=NAV, nav_current=nav_current, **ctx)
    response = web.Response(status=status, text=html, content_type="text/html", charset="utf-8", headers=HEADERS)
    if request.query.get("lang") in LANGS:
        _cookie(response, request, LANG_COOKIE, request.query["lang"])
    return response


def _form_token(request: web.Request, response_ctx: dict) -> str:
    """The pre-login form token (double submit): the cookie's, or a new one to set."""
    token = request.cookies.get(FORM_COOKIE) or ""
    if len(token) != 43:
        token = secrets.token_urlsafe(32)
        response_ctx["set_form_cookie"] = token
    return token


def _anonymous_page(request: web.Request, template: str, status: int = 200, **ctx) -> web.Response:
    pending: dict = {}
    response = render(request, template, status, csrf=_form_token(request, pending), **ctx)
    if "set_form_cookie" in pending:
        _cookie(response, request, FORM_COOKIE, pending["set_form_cookie"])
    return response


MAX_FIELD = 2000  # characters of one form field; no office form has a longer one


async def _form(request: web.Request) -> dict[str, str] | None:
    """The posted fields, or None if the body or one of its fields is too big: a field is
    refused whole, never cut (a cut list of seat ids would reach the API as other seats)."""
    if request.content_length is None or request.content_length > MAX_FORM:
        return None
    fields = {k: str(v) for k, v in (await request.post()).items()}
    return None if any(len(v) > MAX_FIELD for v in fields.values()) else fields


def _refused(request: web.Request) -> web.Response:
    lang = _lang(request)
    return render(request, "message.html", 403, message=TEXT[lang]["e_form"])


def _anonymous_post_ok(request: web.Request, form: dict | None) -> bool:
    token = request.cookies.get(FORM_COOKIE) or ""
    return (form is not None and not from_elsewhere(request) and len(token) == 43
            and secrets.compare_digest(token.encode(), form.get("csrf", "").encode()))


# --- setup link -----------------------------------------------------------------------------------------


async def show_setup(request: web.Request) -> web.Response:
    t = TEXT[_lang(request)]
    try:
        link = staff.open_link(request.app[DB], request.match_info["token"], _now(request))
    except staff.SetupRefused as exc:
        return render(request, "message.html", 410, message=t["e_link"].format(d=exc.detail))
    return _anonymous_page(request, "setup.html", link=link)


async def submit_setup(request: web.Request) -> web.Response:
    t = TEXT[_lang(request)]
    form = await _form(request)
    if not _anonymous_post_ok(request, form):
        return _refused(request)
    db, token, now = request.app[DB], request.match_info["token"], _now(request)
    try:
        link = staff.open_link(db, token, now)
        if form.get("password", "") != form.get("password2", ""):
            return _anonymous_page(request, "setup.html", 422, link=link, error=t["e_same"])
        async with request.app[CHECKING]:  # Argon2id: ~60 ms and 64 MB, off the event loop
            password_hash = await asyncio.to_thread(staff.hash_password, form.get("password", ""))
        stored_at = _now(request)
        await off_loop(request.app, db, lambda pooled: staff.store_password(pooled, token, password_hash, stored_at))
    except staff.SetupRefused as exc:
        return render(request, "message.html", 410, message=t["e_link"].format(d=exc.detail))
    except ValidationError:
        return _anonymous_page(request, "setup.html", 422, link=link, error=t["e_short"])
    raise web.HTTPSeeOther("/office/login?done=1")


# --- login and logout -----------------------------------------------------------------------------------


async def show_login(request: web.Request) -> web.Response:
    t = TEXT[_lang(request)]
    note = t["setup_done"] if request.query.get("done") else t["expired"] if request.query.get("expired") else ""
    return _anonymous_page(request, "login.html", note=note)


async def submit_login(request: web.Request) -> web.Response:
    t = TEXT[_lang(request)]
    form = await _form(request)
    if not _anonymous_post_ok(request, form):
        return _refused(request)
    db = request.app[DB]
    try:
        user, began = form.get("user", ""), _now(request)
        attempt = await off_loop(request.app, db, lambda pooled: staff.begin_login(pooled, user, began))
        async with request.app[CHECKING]:  # Argon2id: ~60 ms and 64 MB each, off the event loop
            matches = await asyncio.to_thread(staff.password_matches, attempt, form.get("password", ""))
        finished = _now(request)  # the login's writes (session, failures) off the loop too
        secret, _ = await off_loop(request.app, db, lambda pooled: staff.finish_login(pooled, attempt, matches,
                                                                                       finished))
    except staff.CodeNeeded as exc:  # TOTP on: the code step next (the form token cookie stays)
        response = web.HTTPSeeOther("/office/login/code")
        _cookie(response, request, CODE_COOKIE, exc.extra["pending"])
        raise response from None
    except staff.LoginRefused as exc:
        locked = exc.extra.get("locked_until")
        error = t["e_locked"].format(t=_local_time(locked)) if locked else t["e_login"]
        return _anonymous_page(request, "login.html", 401, error=error, user=form.get("user", ""))
    response = web.HTTPSeeOther("/office/")
    _cookie(response, request, COOKIE, secret)
    response.del_cookie(FORM_COOKIE, path="/office")
    raise response


async def show_code(request: web.Request) -> web.Response:
    """The login's second step for a TOTP account: the 6-digit code."""
    if not request.cookies.get(CODE_COOKIE):
        raise web.HTTPSeeOther("/office/login")
    return _anonymous_page(request, "login_totp.html")


async def submit_code(request: web.Request) -> web.Response:
    """Check the code of the half-login in the cookie; a wrong code counts toward the lockout."""
    t = TEXT[_lang(request)]
    form = await _form(request)
    if not _anonymous_post_ok(request, form):
        return _refused(request)
    try:
        pending, code, now = request.cookies.get(CODE_COOKIE), form.get("code", ""), _now(request)
        secret, _ = await off_loop(request.app, request.app[DB],
                                   lambda db: staff.finish_code(db, pending, code, now))
    except staff.LoginRefused as exc:
        locked = exc.extra.get("locked_until")
        if not locked and not exc.extra.get("wrong_code"):
            response = web.HTTPSeeOther("/office/login")
            response.del_cookie(CODE_COOKIE, path="/office")
            raise response from None
        error = t["e_locked"].format(t=_local_time(locked)) if locked else t["e_code"]
        return _anonymous_page(request, "login_totp.html", 401, error=error)
    response = web.HTTPSeeOther("/office/")
    _cookie(response, request, COOKIE, secret)
    response.del_cookie(CODE_COOKIE, path="/office")
    response.del_cookie(FORM_COOKIE, path="/office")
    raise response


def _local_time(moment: str) -> str:
    return parse_iso(moment).astimezone(LOCAL_TZ).strftime("%H:%M:%S")


async def current(request: web.Request) -> staff.Session | None:
    """The staff session of the request's cookie. It may write (the session's last-seen time, an
    idle session's end), so on PostgreSQL it runs off the event loop (hub/web/offload.py)."""
    secret, now = request.cookies.get(COOKIE), _now(request)
    return await off_loop(request.app, request.app[DB], lambda db: staff.session(db, secret, now))


def _to_login(request: web.Request) -> web.HTTPSeeOther:
    expired = "?expired=1" if request.cookies.get(COOKIE) else ""
    response = web.HTTPSeeOther("/office/login" + expired)
    response.del_cookie(COOKIE, path="/office")
    return response


def posted_ok(request: web.Request, me: staff.Session, form: dict | None) -> bool:
    """The office's one CSRF rule for a logged-in POST: from this hub's own origin, with the
    session's form token."""
    return form is not None and not from_elsewhere(request) and staff.csrf_ok(me, form.get("csrf"))


def not_admin(request: web.Request) -> web.Response:
    """The 403 page for an office-role member on an admin-only screen or action."""
    return render(request, "message.html", 403, message=TEXT[_lang(request)]["e_admin"])


async def checked_form(request: web.Request, me: staff.Session, *,
                       admin: bool = False) -> dict[str, str] | web.Response:
    """The posted form if it may act (`posted_ok`; and the admin role if *admin*); else the
    refusal page to answer with. A refused POST changes nothing."""
    form = await _form(request)
    if not posted_ok(request, me, form):
        return _refused(request)
    if admin and me.role != "admin":
        return not_admin(request)
    return form


async def logout(request: web.Request) -> web.Response:
    form = await _form(request)
    me = await current(request)
    if me is None:
        raise _to_login(request)
    if not posted_ok(request, me, form):
        return _refused(request)
    secret = request.cookies.get(COOKIE)
    await off_loop(request.app, request.app[DB], lambda db: staff.logout(db, secret))
    response = web.HTTPSeeOther("/office/login")
    response.del_cookie(COOKIE, path="/office")
    raise response


# --- start page -----------------------------------------------------------------------------------------


async def start(request: web.Request) -> web.Response:
    me = await current(request)
    if me is None:
        raise _to_login(request)
    data = staff.start_page(request.app[DB], _now(request))
    sales = data["sales"]
    total = {"orders": sum(s["orders"] for s in sales), "total_cents": sum(s["total_cents"] for s in sales)}
    return render(request, "start.html", me=me, csrf=me.csrf, total=total, euros=_euros(_lang(request)),
                  when=_when, **data)


def _euros(lang: str) -> Callable[[int], str]:
    """Cents as euros the way the language writes them: 1.234,50 € or €1,234.50."""
    def euros(cents: int) -> str:
        text = f"{cents / 100:,.2f}"
        return "€" + text if lang == "en" else text.translate(str.maketrans(",.", ".,")) + " €"
    return euros


def _when(moment: str | None) -> str:
    return parse_iso(moment).astimezone(LOCAL_TZ).strftime("%d.%m.%Y %H:%M") if moment else ""


async def to_start(request: web.Request) -> web.Response:
    raise web.HTTPFound("/office/")


def install(app: web.Application, clock: Callable[[], dt.datetime] = utcnow) -> None:
    """Add the office pages; *clock* is what "now" is (tests move it instead of sleeping)."""
    app[CLOCK] = clock
    app[CHECKING] = asyncio.Semaphore(CHECKS_AT_ONCE)
    app.router.add_get("/office", to_start)
    app.router.add_get("/office/", start, name="office_start")
    app.router.add_get("/office/login", show_login, name="office_login")
    app.router.add_post("/office/login", submit_login)
    app.router.add_get("/office/login/code", show_code, name="office_login_code")
    app.router.add_post("/office/login/code", submit_code)
    app.router.add_post("/office/logout", logout, name="office_logout")
    app.router.add_get("/office/setup/{token}", show_setup, name="office_setup")
    app.router.add_post("/office/setup/{token}", submit_setup)
