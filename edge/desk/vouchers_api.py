"""The cash desk's choice-voucher redemption endpoints (issue 15, S10): offline, from the desk's pool.

Every rule is core's: finding and checking a voucher (`core.subscriptions.choice_vouchers`), the
redemption with its split and refusals (`core.subscriptions.voucher_redemption`, the hub's own
function with this desk's pool and channel `cashdesk`), the op, the ticket's card and the
withdrawal of a redemption the hub refused (`core.subscriptions.desk_redemption`). This module
adds the session's operator, the desk's clock, the LAN claim, asking the hub first, and printing.

Only a cash desk redeems (it holds seats; a counter or gate: 403), with an operator logged in
(401). Errors are problem+json with `detail` and `detail_de`.

- `GET  /api/choice-vouchers?code=` | `?number=`         the voucher: number, value, discount type,
                                                        product, valid until, state, its offer ahead
- `GET  /api/voucher-redemptions/seats?performance_id=` free seats of this desk's pool, zone and price
- `POST /api/voucher-redemptions/quote`                 {vouchers, performance_id, seat_id, rule} ->
                                                        price, per voucher used/lapsed, rest to pay
- `POST /api/voucher-redemptions`                       the same + payment_method cash|card,
                                                        given_cents | payment_reference -> 201: order,
                                                        ticket with its seat, vouchers, paid, change;
                                                        the receipt and the ticket slip (its QR) as
                                                        one receipt-printer job

Before storing, the vouchers are claimed on the LAN (`edge/desk/claims.py`): a peer desk that
redeemed one of them a moment ago refuses it here at once. With the hub reachable the desk then
pushes at once and asks for the verdict before printing, like the counter's voucher exchange: if
another desk or the office was first, the ticket is withdrawn and nothing prints (409). Offline it
prints, and the hub settles it later (first to reach the hub wins; `desk_redemption`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from core.base.errors import Conflict, TesseraError, ValidationError
from core.base.ids import is_uuid
from core.base.storage import transaction
from core.cards import cards
from core.sales import contingents
from core.subscriptions import desk_redemption
from core.subscriptions.choice_vouchers import find
from core.subscriptions.voucher_redemption import DeskRedemptionIn
from edge.desk import claims
from edge.desk.api import require_operator
from edge.sync import client

if TYPE_CHECKING:
    from edge.desk.server import Edge

EDGE_KEY = web.AppKey("desk_vouchers", object)
CLAIM_KIND = "choice_voucher"


class NotACashDesk(TesseraError):
    slug = "forbidden"
    status = 403
    title = "Not a cash desk"


class BadParameter(TesseraError):
    slug = "invalid-parameter"
    status = 400
    title = "Invalid query parameter"


def _json(data, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


def _redeemer(request: web.Request) -> tuple[Edge, dict]:
    """The logged-in operator of a cash desk (401 before 403: a stranger learns nothing)."""
    operator = require_operator(request)
    edge: Edge = request.app[EDGE_KEY]
    if edge.node["role"] != "cashdesk":
        raise NotACashDesk(f"a {edge.node['role']} does not redeem choice vouchers (it holds no seats)",
                           detail_de="Wahlgutscheine werden an der Kasse eingelöst")
    return edge, operator


def _pool(edge: Edge) -> str:
    return contingents.node_pool(edge.node["id"])


async def _body(request: web.Request, operator: dict, *, quote: bool) -> DeskRedemptionIn:
    """The body as the redemption takes it, with the session's operator."""
    body = msgspec.json.decode(await request.read() or b"{}", type=DeskRedemptionIn)
    if body.operator is not None:
        raise ValidationError("the operator is the one logged in; do not send it", field="operator",
                              detail_de="Bedient wird von der angemeldeten Person; bitte nicht mitsenden")
    if quote and (body.payment_method or body.given_cents is not None or body.payment_reference):
        raise ValidationError("a quote takes no payment", field="payment_method",
                              detail_de="Eine Vorschau nimmt keine Zahlung an")
    return msgspec.structs.replace(body, operator=operator["name"])


# --- reading ------------------------------------------------------------------------------------------


async def get_voucher(request: web.Request) -> web.Response:
    edge, _ = _redeemer(request)
    code, number = request.query.get("code"), request.query.get("number")
    if len(code or "") > 200 or len(number or "") > 40:
        raise BadParameter("code or number too long", field="code", detail_de="Code oder Nummer zu lang")
    voucher = find(edge.db, code=code, number=number)
    return _json(desk_redemption.voucher_view(edge.db, voucher, edge.clock.now()))


async def get_seats(request: web.Request) -> web.Response:
    edge, _ = _redeemer(request)
    performance_id = request.query.get("performance_id", "")
    if not is_uuid(performance_id):
        raise BadParameter("performance_id must be an id", field="performance_id",
                           detail_de="Bitte eine Vorstellung angeben")
    return _json({"performance_id": performance_id,
                  "seats": desk_redemption.free_seats(edge.db, performance_id, _pool(edge))})


# --- quote and redemption -----------------------------------------------------------------------------


def _quoted(q) -> dict:
    return {**q.as_dict(), "rest_cents": q.split.paid_cents}


async def post_quote(request: web.Request) -> web.Response:
    edge, operator = _redeemer(request)
    body = await _body(request, operator, quote=True)
    with transaction(edge.db):
        q = desk_redemption.quote_at_desk(edge.db, edge.node, body, edge.clock.now())
    return _json(_quoted(q))


async def post_redemption(request: web.Request) -> web.Response:
    edge, operator = _redeemer(request)
    body = await _body(request, operator, quote=False)
    with transaction(edge.db):  # the voucher ids behind the codes and numbers, for the LAN claim
        ids = [v["id"] for v in desk_redemption.quote_at_desk(edge.db, edge.node, body, edge.clock.now()).vouchers]
    claimed = await _claim(edge, ids)
    try:
        done = desk_redemption.redeem_at_desk(edge.db, edge.node, cards.load_signer(edge.db, edge.data_dir), body,
                                              edge.clock.now())
    except BaseException:
        if claimed:
            await _release(edge, ids)
        raise
    edge.wake.set()
    refused = await _ask_hub_first(edge, done)
    if refused:
        raise Conflict(f"the hub refused this redemption, nothing was printed: {refused}",
                       detail_de="Gutschein wurde bereits anderswo eingelöst; das Ticket ist storniert und wurde "
                                 "nicht gedruckt")
    outcomes = await edge.printing.print_with_slips(done["receipt_job"], [done["card_job"]])
    given = body.given_cents
    change = (given - done["paid_cents"] if given is not None else 0) if done["paid_cents"] and \
        body.payment_method == "cash" else None
    ticket = done["ticket"]
    return _json({"order": {"id": done["order_id"], "number": done["number"], "total_cents": done["total_cents"]},
                  "rule": done["rule"],
                  "ticket": {**ticket, "seat": f"{ticket['section']}, Reihe {ticket['row_label']}, "
                                               f"Platz {ticket['label']}",
                             "card": {k: done["card"][k] for k in ("id", "number", "valid_from", "valid_until")}},
                  "vouchers": done["vouchers"], "used_cents": done["used_cents"], "lapsed_cents": done["lapsed_cents"],
                  "paid_cents": done["paid_cents"], "payment_method": done["payment_method"], "change_cents": change,
                  "receipt": outcomes[0].as_dict(), "printing": [o.as_dict() for o in outcomes]}, status=201)


async def _ask_hub_first(edge: Edge, done: dict) -> str | None:
    """With the hub reachable, the redemption goes to it before anything prints, so a voucher the
    office or another desk redeemed first is caught now: the ticket is withdrawn here and the hub's
    reason answered. Offline (or no answer within 2 s) the desk prints; the hub settles it later."""
    if edge.client is None or not client.status(edge.db)["online"]:
        return None
    if not await edge.client.push_now():
        return None
    reason = desk_redemption.redemption_verdict(edge.db, done["order_id"])
    if reason:
        desk_redemption.settle_lost(edge.db, edge.clock.now())
    return reason


# --- the LAN claim (edge/desk/claims.py) -----------------------------------------------------------------


async def _claim(edge: Edge, voucher_ids: list[str]) -> bool:
    """Claim the vouchers with the peer desks before the redemption is stored (Conflict with
    detail_de when a peer holds one). False on a desk without the claim exchange (none in tests
    that build an edge without peers)."""
    if getattr(edge.peers, "claims", None) is None:
        return False
    await claims.claim(edge, CLAIM_KIND, voucher_ids)
    return True


async def _release(edge: Edge, voucher_ids: list[str]) -> None:
    await claims.release(edge, CLAIM_KIND, voucher_ids)


def install(app: web.Application, edge: Edge) -> None:
    app[EDGE_KEY] = edge
    r = app.router
    r.add_get("/api/choice-vouchers", get_voucher)
    r.add_get("/api/voucher-redemptions/seats", get_seats)
    r.add_post("/api/voucher-redemptions/quote", post_quote)
    r.add_post("/api/voucher-redemptions", post_redemption)
