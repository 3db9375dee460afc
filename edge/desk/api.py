"""The cash desk's and counter's JSON API (A4, A5, A8, E6), served by `tessera edge serve`.

Every rule is `core`'s (`core.sales.orders`, `core.catalog.operators`, `core.printing.print_queue`); this module
only adds the session, the node's channel and the printing. Errors are problem+json (the
edge's `problems` middleware); a wrong PIN is 401 with `tries_left`, a lockout 401 with
`locked_until`.

Session: `POST /api/login` sets an HttpOnly, SameSite=Strict cookie holding a random id;
the operator behind it is kept in memory for 12 hours (a restart logs everybody out,
which is harmless: logging in works offline). Every endpoint except status, operators and
login needs a logged-in operator, and every order and exchange records that operator.

- `GET  /api/operators`                 active operators (login tiles)
- `POST /api/login` {operator_id, pin}  `POST /api/logout`   `GET /api/session`
- `GET  /api/products`                  annual tickets this desk sells (channel cashdesk)
- `POST /api/orders`                    core.sales.orders.OrderIn without `operator`; payment cash
                                        (`given_cents`) or card (`payment_reference` = terminal
                                        reference) -> 201 {order, change_cents, receipt, printing}
- `GET  /api/vouchers/check?code=`      `POST /api/vouchers/redeem` {code, holder}: the voucher is
                                        claimed with the peer desks first (edge/desk/claims.py)
- `GET  /api/cards?q=`                  {cards, scan}: by scanned code, card number or holder name;
                                        a scanned code also gets the gate's verdict (`scan`: level
                                        ok|warn|refused, reason, message_de/_en): forged, superseded
                                        and revoked codes are named
- `POST /api/cards/{id}/handed-over`    `/reprint`   `/replace` (lost card: new issue)
- `GET  /api/print-jobs`                `POST /api/print-jobs/retry` {job_ids?}
- `GET  /api/summary?day=YYYY-MM-DD`    takings of this node per operator and payment method, and the
                                        cash drawer (float, in, out, cash takings, expected, count, difference)
- `POST /api/cash` {kind, amount_cents, note?}  a drawer entry: float, deposit, withdrawal or count
                                        (core.sales.cash_drawer; pushed to the hub as `cash.moved`)
- `GET  /api/customers?q=`              search;  `POST /api/customers` CustomerIn -> 201 the new customer
                                        (number from this node's series; core.sales.desk_customers)
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import msgspec
from aiohttp import web
from msgspec import Meta

from core.base.clock import LOCAL_TZ
from core.base.errors import Conflict, NotFound, TesseraError, ValidationError
from core.base.storage import transaction
from core.base.tomlfiles import field_error
from core.cards import cardcode, cards, fulfilment
from core.cards.access import Access, GateRules
from core.catalog import operators
from core.catalog.common import Body, Id
from core.catalog.customers import CustomerIn, Customers
from core.catalog.resource import ListQuery, list_
from core.printing import print_queue
from core.sales import cash_drawer, desk_customers, orders
from edge.desk import claims
from edge.desk.printing import Outcome, job_ids_for
from edge.sync import client

if TYPE_CHECKING:
    from edge.desk.server import Edge

DESK = web.AppKey("desk", object)
SESSION_COOKIE = "tessera_desk"
SESSION_S = 12 * 3600  # a shift at most
IDLE_S = 15 * 60  # a till left alone this long asks for the PIN again
Code = Annotated[str, Meta(max_length=1000)]


class NotLoggedIn(TesseraError):
    slug = "unauthorized"
    status = 401
    title = "Login required"


class LoginIn(Body, kw_only=True):
    operator_id: Id
    pin: Annotated[str, Meta(max_length=32)]


class RedeemIn(Body, kw_only=True):
    code: Code
    holder: orders.HolderIn


class RetryIn(Body, kw_only=True):
    job_ids: Annotated[list[Id], Meta(max_length=1000)] | None = None


# --- sessions -------------------------------------------------------------------------------------------------


@dataclass
class Sessions:
    """Logged-in operators by random session id, in memory only."""

    lifetime_s: float = SESSION_S
    idle_s: float = IDLE_S
    # session id -> (operator, end of the shift, end of the idle time)
    _by_id: dict[str, tuple[dict, float, float]] = field(default_factory=dict)

    def create(self, operator: dict) -> str:
        self._expire()
        sid = secrets.token_urlsafe(32)
        now = time.monotonic()
        self._by_id[sid] = ({"id": operator["id"], "name": operator["name"]}, now + self.lifetime_s,
                            now + self.idle_s)
        return sid

    def get(self, sid: str | None) -> dict | None:
        """The session's operator; each use moves its idle end on. An idle or too old session
        is gone: a till left alone cannot be used by whoever walks up to it."""
        entry = self._by_id.get(sid or "")
        now = time.monotonic()
        if entry is None or entry[1] < now or entry[2] < now:
            self._by_id.pop(sid or "", None)
            return None
        self._by_id[sid] = (entry[0], entry[1], now + self.idle_s)
        return entry[0]

    def drop(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, (_, until, idle) in self._by_id.items() if min(until, idle) < now]:
            del self._by_id[sid]


def current_operator(request: web.Request) -> dict | None:
    return request.app[DESK].sessions.get(request.cookies.get(SESSION_COOKIE))


def require_operator(request: web.Request) -> dict:
    operator = current_operator(request)
    if operator is None:
        raise NotLoggedIn("log in at the desk first")
    return operator


def _edge(request: web.Request) -> Edge:
    return request.app[DESK]


async def _body(request: web.Request, kind: type):
    return msgspec.json.decode(await request.read() or b"{}", type=kind)


def _json(data, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


def channel_of(edge: Edge) -> str:
    """Orders at a counter are booked as counter sales; everything else as the cash desk."""
    return "counter" if edge.node["role"] == "counter" else "cashdesk"


def local_today(edge: Edge) -> dt.date:
    return edge.clock.now().astimezone(LOCAL_TZ).date()


# --- login ----------------------------------------------------------------------------------------------------


async def get_operators(request: web.Request) -> web.Response:
    rows = operators.listed(_edge(request).db, active_only=True)
    return _json([{"id": r["id"], "name": r["name"]} for r in rows])


def _screen(request: web.Request) -> str:
    """Which screen tries a PIN: the desk's own (loopback) or another address on the LAN. Wrong
    PINs lock out only the screen they came from (core/catalog/operators.py)."""
    remote = request.remote or "?"
    return operators.LOCAL_SCREEN if remote in ("127.0.0.1", "::1") else remote


async def post_login(request: web.Request) -> web.Response:
    edge = _edge(request)
    data = await _body(request, LoginIn)
    operator = operators.login(edge.db, data.operator_id, data.pin, edge.clock.now(), screen=_screen(request),
                               node_key=cards.load_signer(edge.db, edge.data_dir))  # its verifiers need node.key
    sid = edge.sessions.create(operator)
    resp = _json({"operator": {"id": operator["id"], "name": operator["name"]}})
    resp.set_cookie(SESSION_COOKIE, sid, max_age=SESSION_S, httponly=True, samesite="Strict", path="/")
    return resp


async def post_logout(request: web.Request) -> web.Response:
    _edge(request).sessions.drop(request.cookies.get(SESSION_COOKIE))
    resp = _json({"logged_out": True})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


async def get_session(request: web.Request) -> web.Response:
    return _json({"operator": require_operator(request)})


# --- selling --------------------------------------------------------------------------------------------------


def desk_products(db) -> list[dict]:
    """Active annual-ticket products sold through the cash desk, from the local replica."""
    rows = db.execute("SELECT id, name, price_cents, vat_code, validity_mode, months, valid_from, valid_until "
                      "FROM annual_products WHERE active = 1 AND EXISTS (SELECT 1 FROM json_each(channels) "
                      "WHERE value = 'cashdesk') ORDER BY name COLLATE NOCASE").fetchall()
    return rows


async def get_products(request: web.Request) -> web.Response:
    require_operator(request)
    return _json(desk_products(_edge(request).db))


def _desk_order(order: orders.OrderIn, operator: dict) -> orders.OrderIn:
    """The operator is the one logged in (core checks the rest, payment included)."""
    if order.operator is not None:
        raise ValidationError("the operator is the one logged in; do not send it", field="operator")
    return msgspec.structs.replace(order, operator=operator["name"])


async def post_order(request: web.Request) -> web.Response:
    operator = require_operator(request)
    edge = _edge(request)
    order = _desk_order(await _body(request, orders.OrderIn), operator)
    now = edge.clock.now()
    with transaction(edge.db):  # the order and its receipt job commit together
        placed = orders.place_order(edge.db, edge.node, cards.load_signer(edge.db, edge.data_dir), order,
                                    channel=channel_of(edge), now=now)
        receipt_job = print_queue.enqueue(edge.db, "receipt", placed["id"], None, now)
    edge.wake.set()  # push soon
    card_ids = [i["card_id"] for i in placed["items"] if i["card_id"] and i["kind"] == "annual"]
    # The receipt is printed before the answer (the customer waits for it); cards go to the
    # print worker at once, so the next customer is not kept waiting for a card printer.
    outcomes = [await edge.printing.print_job(receipt_job),
                *(Outcome(job_id, "card", "queued") for job_id in job_ids_for(edge.db, card_ids))]
    edge.printing.kick()
    view = orders.order_view(edge.db, placed["id"])
    change = view["given_cents"] - view["total_cents"] if view["given_cents"] is not None else 0
    return _json({"order": _order_out(view), "change_cents": change, "receipt": outcomes[0].as_dict(),
                  "printing": [o.as_dict() for o in outcomes]}, status=201)


def _order_out(view: dict) -> dict:
    """The order view with a short form of each item's card (the code included: a voucher
    slip that did not print can be printed again from it)."""
    items = []
    for item in view["items"]:
        card = item["card"]
        items.append({**item, "card": _card_out(card) if card else None})
    return {**view, "items": items}


def _card_out(card: dict) -> dict:
    return {k: card.get(k) for k in ("id", "number", "kind", "product_id", "holder_name", "valid_from", "valid_until",
                                     "issue", "fulfilment", "fulfilment_at", "delivery", "revoked_at", "code")}


# --- vouchers (counter) ---------------------------------------------------------------------------------------


def _access(edge: Edge) -> Access:
    """A venue-less check: signature, revocation and validity are the gate's own rules."""
    if edge.desk_access is None:
        edge.desk_access = Access(edge.db, GateRules(venue_id=None), edge.clock)
    return edge.desk_access


async def get_voucher_check(request: web.Request) -> web.Response:
    require_operator(request)
    edge = _edge(request)
    code = request.query.get("code", "")
    if len(code) > 1000:
        raise ValidationError("code too long", field="code")
    voucher = orders.check_voucher(edge.db, _access(edge), code)
    product = edge.db.execute("SELECT validity_mode, months, price_cents FROM annual_products WHERE id = ?",
                              (voucher["product_id"],)).fetchone()
    return _json({**voucher, **(product or {})})


async def post_voucher_redeem(request: web.Request) -> web.Response:
    operator = require_operator(request)
    edge = _edge(request)
    data = await _body(request, RedeemIn)
    # Claimed on the LAN before it is stored and printed: a second desk refuses it while the hub is away.
    voucher_id = orders.check_voucher(edge.db, _access(edge), data.code)["voucher_id"]
    await claims.claim(edge, "annual_voucher", [voucher_id])
    try:
        card = orders.redeem_voucher(edge.db, cards.load_signer(edge.db, edge.data_dir), _access(edge), data.code,
                                     data.holder, edge.clock.now(), operator=operator["name"])
    except BaseException:
        await claims.release(edge, "annual_voucher", [voucher_id])
        raise
    edge.wake.set()
    refused = await _ask_hub_first(edge, card["id"])
    if refused:
        raise Conflict(f"voucher already exchanged elsewhere: {refused}",
                       detail_de="Gutschein wurde bereits an einer anderen Theke eingelöst; "
                                 "die Karte wurde nicht gedruckt")
    outcomes = await edge.printing.print_jobs(job_ids_for(edge.db, [card["id"]]))
    return _json({"card": _card_with_product(edge, card["id"]), "printing": [o.as_dict() for o in outcomes]},
                 status=201)


async def _ask_hub_first(edge: Edge, card_id: str) -> str | None:
    """With the hub reachable, the exchange goes to it before the card is printed, so two
    counters cannot both print a card for one voucher; the hub's reason if it refused.
    Offline (or no answer within 2 s) the counter prints, and the hub settles it later."""
    if edge.client is None or not client.status(edge.db)["online"]:
        return None
    if not await edge.client.push_now():
        return None
    reason = orders.exchange_verdict(edge.db, card_id)
    if reason:
        orders.withdraw_exchange(edge.db, card_id, reason, edge.clock.now())
    return reason


# --- cards ----------------------------------------------------------------------------------------------------


def _card_with_product(edge: Edge, card_id: str) -> dict:
    row = edge.db.execute("SELECT c.*, p.name AS product, p.validity_mode, p.months FROM cards c "
                          "LEFT JOIN annual_products p ON p.id = c.product_id WHERE c.id = ?", (card_id,)).fetchone()
    jobs = edge.db.execute("SELECT state, last_error FROM print_jobs WHERE ref_id = ? AND kind = 'card' "
                           "ORDER BY created_at DESC, id DESC LIMIT 1", (card_id,)).fetchone()
    return {**_card_out(row), "product": row["product"], "print_state": jobs["state"] if jobs else None,
            "print_error": jobs["last_error"] if jobs else None, **_first_entry_validity(edge, row)}


def _first_entry_validity(edge: Edge, card: dict) -> dict:
    """An "N months from the first entry" card has no end date until it is first used: the
    desk shows the months then, and afterwards the end the gate's own rule gives."""
    if card["validity_mode"] != "from_first_entry" or card["kind"] != "annual":
        return {"validity_mode": card["validity_mode"], "months": card["months"]}
    access = _access(edge)
    first = access.first_entry(card["id"])
    out = {"validity_mode": "from_first_entry", "months": card["months"],
           "first_entry_at": first.isoformat() if first else None}
    if first is not None and card["code"]:
        out["valid_until"] = access.decide(card["code"]).valid_until or card["valid_until"]
    return out


# What a venue-less check of a sound code answers: a card (ADMITTED) or a voucher (WRONG_VENUE: it
# is exchanged at the counter first). EXPIRED and NOT_YET_VALID are genuine codes out of their time.
_SOUND = ("ADMITTED", "WRONG_VENUE")
_GENUINE = ("EXPIRED", "NOT_YET_VALID")


def scan_check(edge: Edge, query: str) -> dict | None:
    """A scanned code in the lookup goes through the gate's own decision (signature, signer,
    revocation, issue number): a forged, superseded or revoked code is named, never shown
    as the real card without a word. None when the query is not a card code."""
    try:
        cardcode.decode(query.strip())
    except cardcode.Malformed:
        return None
    result = _access(edge).decide(query.strip())
    level = "ok" if result.reason in _SOUND else "warn" if result.reason in _GENUINE else "refused"
    used = orders.redemption_of(edge.db, result.card_id) if result.kind == "voucher" and level == "ok" else None
    if used:  # a sound voucher that was exchanged already is spent, not "ok"
        return {"level": "refused", "reason": "REDEEMED", "message_de": used["de"], "message_en": used["en"],
                "detail": "", "issue": result.issue}
    return {"level": level, "reason": result.reason, "message_de": result.message_de,
            "message_en": result.message_en, "detail": result.detail, "issue": result.issue}


async def get_cards(request: web.Request) -> web.Response:
    """{cards, scan}: the cards found and, for a scanned code, the gate's verdict on that code."""
    require_operator(request)
    edge = _edge(request)
    query = request.query.get("q", "")[:1000]
    found = [_card_with_product(edge, row["id"]) for row in orders.find_cards(edge.db, query)]
    return _json({"cards": found, "scan": scan_check(edge, query)})


async def post_handed_over(request: web.Request) -> web.Response:
    require_operator(request)
    edge = _edge(request)
    card_id = request.match_info["id"]
    fulfilment.set_fulfilment(edge.db, edge.node, [card_id], "handed_over", edge.clock.now())
    edge.wake.set()
    return _json({"card": _card_with_product(edge, card_id)})


def _printable_card(edge: Edge, card_id: str) -> dict:
    card = edge.db.execute("SELECT * FROM cards WHERE id = ?", (card_id,)).fetchone()
    if card is None:
        raise NotFound(f"card {card_id} does not exist")
    if (problem := print_queue.unprintable(card, kinds=print_queue.PRINTED_KINDS)) is not None:
        raise Conflict(problem)
    return card


async def post_reprint(request: web.Request) -> web.Response:
    """Print the card again as it is (same issue: the old print stays valid too)."""
    require_operator(request)
    edge = _edge(request)
    card = _printable_card(edge, request.match_info["id"])
    with transaction(edge.db):
        job = print_queue.enqueue(edge.db, "card", card["id"], card["issue"], edge.clock.now())
    outcomes = await edge.printing.print_jobs([job])
    return _json({"card": _card_with_product(edge, card["id"]), "printing": [o.as_dict() for o in outcomes]},
                 status=201)


async def post_replace(request: web.Request) -> web.Response:
    """Lost card: a new issue (the old code is refused once gates have synced), printed now."""
    require_operator(request)
    edge = _edge(request)
    card = orders.replace_lost_card(edge.db, cards.load_signer(edge.db, edge.data_dir), request.match_info["id"],
                                    edge.clock.now())
    edge.wake.set()
    outcomes = await edge.printing.print_jobs(job_ids_for(edge.db, [card["id"]]))
    return _json({"card": _card_with_product(edge, card["id"]), "printing": [o.as_dict() for o in outcomes]},
                 status=201)


# --- print queue ----------------------------------------------------------------------------------------------


def open_jobs_view(edge: Edge) -> list[dict]:
    """Open jobs with what a cashier recognises: the sale number or the card number and holder."""
    out = []
    for job in print_queue.open_jobs(edge.db, limit=500):
        sql = "SELECT number, NULL AS holder_name FROM orders WHERE id = ?" if job["kind"] == "receipt" else \
            "SELECT number, holder_name FROM cards WHERE id = ?"
        ref = edge.db.execute(sql, (job["ref_id"],)).fetchone() or {}
        out.append({**job, "number": ref.get("number"), "holder_name": ref.get("holder_name")})
    return out


async def get_print_jobs(request: web.Request) -> web.Response:
    require_operator(request)
    edge = _edge(request)
    return _json({"jobs": open_jobs_view(edge), "counts": print_queue.counts(edge.db), **edge.printing.status()})


async def post_print_retry(request: web.Request) -> web.Response:
    require_operator(request)
    edge = _edge(request)
    data = await _body(request, RetryIn)
    ids = data.job_ids if data.job_ids is not None else \
        [j["id"] for j in print_queue.open_jobs(edge.db) if j["state"] == "failed"]
    print_queue.retry(edge.db, ids)
    outcomes = await edge.printing.print_jobs(ids)
    return _json({"printing": [o.as_dict() for o in outcomes], "counts": print_queue.counts(edge.db)})


# --- summary --------------------------------------------------------------------------------------------------


def summary(edge: Edge, day: dt.date) -> dict:
    rows = orders.day_summary(edge.db, edge.node["id"], day)
    by_method: dict[str, int] = {}
    for r in rows:
        by_method[r["payment_method"]] = by_method.get(r["payment_method"], 0) + r["total_cents"]
    return {"day": day.isoformat(), "node": edge.node["name"], "rows": rows, "by_method": by_method,
            "total_cents": sum(r["total_cents"] for r in rows), "sales": sum(r["sales"] for r in rows),
            "drawer": cash_drawer.drawer(edge.db, edge.node["id"], day)}


def parse_day(text: str | None, edge: Edge) -> dt.date:
    if not text:
        return local_today(edge)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationError("day must be YYYY-MM-DD", field="day") from None


async def get_summary(request: web.Request) -> web.Response:
    require_operator(request)
    edge = _edge(request)
    return _json(summary(edge, parse_day(request.query.get("day"), edge)))


async def post_cash(request: web.Request) -> web.Response:
    """A drawer entry by the logged-in operator (works offline: it is the desk's own record)."""
    operator = require_operator(request)
    edge = _edge(request)
    data = await _body(request, cash_drawer.CashIn)
    row = cash_drawer.record_at_desk(edge.db, edge.node, data, operator["name"], edge.clock.now())
    return _json({"entry": row, "drawer": cash_drawer.drawer(edge.db, edge.node["id"], local_today(edge))}, 201)


async def get_customers(request: web.Request) -> web.Response:
    """The optional customer of a sale: search by name, number, e-mail or company, with the
    hub's own search rule (the replica has the same trigram index)."""
    require_operator(request)
    q = request.query.get("q", "").strip()
    if len(q) < 2 or len(q) > 100:
        return _json([])
    found = list_(_edge(request).db, Customers(), ListQuery(limit=8, q=q, active=True))
    return _json([{**{k: c.get(k) for k in ("id", "number", "first_name", "last_name", "company", "email")},
                   "town": (c.get("address") or {}).get("town")} for c in found["items"]])


async def post_customer(request: web.Request) -> web.Response:
    """A new customer at the desk (a subscriber at the counter), offline too: the hub's rules,
    a number from this node's series, pushed to the hub as `customer.created`. A bad field is a
    422 naming it, so the form can point at it."""
    require_operator(request)
    edge = _edge(request)
    try:
        data = await _body(request, CustomerIn)
    except msgspec.ValidationError as exc:
        field, message = field_error(exc)
        raise ValidationError(f"{field}: {message}", field=field) from None
    created = desk_customers.create_at_desk(edge.db, edge.node, data, edge.clock.now())
    edge.wake.set()  # push soon
    return _json(created, status=201)


def install(app: web.Application, edge: Edge) -> None:
    app[DESK] = edge
    r = app.router
    r.add_get("/api/operators", get_operators)
    r.add_post("/api/login", post_login)
    r.add_post("/api/logout", post_logout)
    r.add_get("/api/session", get_session)
    r.add_get("/api/products", get_products)
    r.add_post("/api/orders", post_order)
    r.add_get("/api/vouchers/check", get_voucher_check)
    r.add_post("/api/vouchers/redeem", post_voucher_redeem)
    r.add_get("/api/cards", get_cards)
    r.add_post("/api/cards/{id}/handed-over", post_handed_over)
    r.add_post("/api/cards/{id}/reprint", post_reprint)
    r.add_post("/api/cards/{id}/replace", post_replace)
    r.add_get("/api/print-jobs", get_print_jobs)
    r.add_post("/api/print-jobs/retry", post_print_retry)
    r.add_get("/api/summary", get_summary)
    r.add_post("/api/cash", post_cash)
    r.add_get("/api/customers", get_customers)
    r.add_post("/api/customers", post_customer)


def status_extra(request: web.Request, edge: Edge) -> dict:
    """What the desk adds to /api/status: print queue, printer errors, who is logged in."""
    operator = current_operator(request)
    return {"print_queue": print_queue.counts(edge.db), "printer_errors": edge.printing.status()["errors"],
            "operator": operator["name"] if operator else None, "peer_desks": edge.peers.claims.status()}

