"""The cash desk's subscription endpoints (issue 14: S2 ring, S4 choice, S6 combi, S17 pools).

Every rule is core's: what is on sale and the map's states (`core.subscriptions.desk_offer`, `seat_maps`),
the sale (`core.subscriptions.sale.sell_subscriptions`, channel `cashdesk`, from this desk's own
pool, so a desk sells offline without any collision), the cards (`passes`), the receipt and
the printing (`edge.desk.printing`). This module adds the session, the node's pool and clock,
and the order of printing: the receipt and the single tickets (slips with their QR codes on
the receipt printer) print before the answer, since the customer waits for them; passes go to
the card printer through the print queue, like annual cards. A voucher subscription (S5) has no
seats: its choice vouchers are issued in the sale's transaction with this desk's key and print as
slips with their QR codes below the receipt, in the receipt's own job (a retry prints them too).

Only a node with role `cashdesk` sells subscriptions (a counter or gate: 403). Errors are
problem+json through the edge's middleware.

- `GET  /api/subscription-products`                    products on sale via the cash desk now (vouchers too)
- `GET  /api/subscription-products/{id}/availability`  ?performance_ids= (a choice's N dates)
- `GET  /api/subscription-products/{id}/seat-map.svg`  ?plan_id=&variant_id=&performance_ids=&selected=&lang=
- `GET  /api/subscription-products/{id}/variant-steps` ?seat_ids=&performance_ids=
- `POST /api/subscription-quote`                       a sale's body: price, nothing stored
- `POST /api/subscriptions`                            the sale -> 201 order, subscriptions, change, printing
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from core.base.errors import TesseraError, ValidationError
from core.base.ids import is_uuid
from core.base.storage import transaction
from core.cards import cards
from core.catalog.seating.seatmap import LANGS
from core.printing import print_queue
from core.sales import contingents
from core.subscriptions import desk_offer, offers, print_data
from core.subscriptions.passes import issue_subscription_cards
from core.subscriptions.sale import SubscriptionSaleIn, sell_subscriptions, variant_steps
from edge.desk.api import require_operator
from edge.desk.printing import Outcome, by_printer, job_ids_for

if TYPE_CHECKING:
    from edge.desk.server import Edge

EDGE_KEY = web.AppKey("desk_subscriptions", object)
MAX_IDS = 200


class NotACashDesk(TesseraError):
    slug = "forbidden"
    status = 403
    title = "Not a cash desk"


DeskSubscriptionIn = SubscriptionSaleIn
"""A sale at the desk is the sale's own body (with `given_cents` for cash) without `operator`
(the session's); delivery is at the counter (the sale refuses mail from a desk)."""


def _edge(request: web.Request) -> Edge:
    return request.app[EDGE_KEY]


def _json(data, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


def _seller(request: web.Request) -> tuple[Edge, dict]:
    """The logged-in operator of a cash desk (401 before 403: a stranger learns nothing)."""
    operator = require_operator(request)
    edge = _edge(request)
    if edge.node["role"] != "cashdesk":
        raise NotACashDesk(f"a {edge.node['role']} does not sell subscriptions")
    return edge, operator


def _pool(edge: Edge) -> str:
    return contingents.node_pool(edge.node["id"])


def _ids(request: web.Request, name: str) -> list[str] | None:
    """A comma-separated list of ids from the query, or None when absent; anything else is a 400."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    ids = [p.strip() for p in raw.split(",") if p.strip()]
    if not ids or len(ids) > MAX_IDS or not all(is_uuid(p) for p in ids):
        raise BadParameter(f"{name} must be 1 to {MAX_IDS} ids separated by commas", field=name)
    return ids


def _id(request: web.Request, name: str) -> str | None:
    ids = _ids(request, name)
    if ids is not None and len(ids) != 1:
        raise BadParameter(f"{name} is one id", field=name)
    return ids[0] if ids else None


def _product_id(request: web.Request) -> str:
    product_id = request.match_info["id"]
    if not is_uuid(product_id):
        raise BadParameter("the product id is not an id", field="id")
    return product_id


class BadParameter(TesseraError):
    slug = "invalid-parameter"
    status = 400
    title = "Invalid query parameter"


# --- reading ------------------------------------------------------------------------------------------


async def get_products(request: web.Request) -> web.Response:
    edge, _ = _seller(request)
    with transaction(edge.db):  # looking deletes expired holds (offers.performances)
        products = desk_offer.on_sale_at_desk(edge.db, pool=_pool(edge), now=edge.clock.now())
    return _json({"products": products})


async def get_availability(request: web.Request) -> web.Response:
    edge, _ = _seller(request)
    product_id, chosen = _product_id(request), _ids(request, "performance_ids")
    with transaction(edge.db):
        found = offers.availability(edge.db, product_id, pool=_pool(edge), now=edge.clock.now(),
                                    performance_ids=chosen)
    return _json(found)


async def get_seat_map(request: web.Request) -> web.Response:
    edge, _ = _seller(request)
    lang = request.query.get("lang", "de")
    if lang not in LANGS:
        raise BadParameter(f"lang is one of {', '.join(LANGS)}", field="lang")
    with transaction(edge.db):
        svg = desk_offer.desk_seat_map(edge.db, _product_id(request), pool=_pool(edge), now=edge.clock.now(),
                                       lang=lang, plan_id=_id(request, "plan_id"),
                                       variant_id=_id(request, "variant_id"),
                                       performance_ids=_ids(request, "performance_ids"),
                                       selected=_ids(request, "selected") or ())
    return web.Response(text=svg, content_type="image/svg+xml")


async def get_variant_steps(request: web.Request) -> web.Response:
    edge, _ = _seller(request)
    seat_ids = _ids(request, "seat_ids")
    if seat_ids is None:
        raise BadParameter("seat_ids: the seats picked, one per seating plan", field="seat_ids")
    chosen = _ids(request, "performance_ids")
    prod = offers.product(edge.db, _product_id(request))
    if prod["kind"] == "combi":
        raise ValidationError("a combi ticket has a seat per date and no variant steps", field="product_id")
    with transaction(edge.db):
        perfs = offers.performances(edge.db, prod, pool=_pool(edge), now=edge.clock.now(), performance_ids=chosen)
        steps = variant_steps(offers.groups(prod, perfs, chosen), seat_ids)
    return _json({"product_id": prod["id"], "steps": steps})


# --- quote and sale -----------------------------------------------------------------------------------


async def _sale_body(request: web.Request, operator: dict, *, quote: bool) -> DeskSubscriptionIn:
    """The body as the sale takes it, with the session's operator. A quote may leave the payment out."""
    raw = await request.read() or b"{}"
    if quote:
        data = msgspec.json.decode(raw)
        if isinstance(data, dict):
            data.setdefault("payment_method", "cash")
        body = msgspec.convert(data, DeskSubscriptionIn)
    else:
        body = msgspec.json.decode(raw, type=DeskSubscriptionIn)
    if body.operator is not None:
        raise ValidationError("the operator is the one logged in; do not send it", field="operator")
    return msgspec.structs.replace(body, operator=operator["name"])


async def post_quote(request: web.Request) -> web.Response:
    edge, operator = _seller(request)
    body = await _sale_body(request, operator, quote=True)
    with transaction(edge.db):
        found = desk_offer.quote(edge.db, body, pool=_pool(edge), now=edge.clock.now())
    return _json(found)


async def post_subscriptions(request: web.Request) -> web.Response:
    edge, operator = _seller(request)
    body = await _sale_body(request, operator, quote=False)
    sold, receipt_job, card_ids = sell_at_desk(edge, body)
    edge.wake.set()  # push soon
    # The receipt and the single tickets (the receipt printer's slips) print before the answer: the
    # customer waits for them. Passes go to the card printer's worker at once.
    printers = by_printer(edge.db, job_ids_for(edge.db, card_ids))
    outcomes = [*(await edge.printing.print_with_slips(receipt_job, printers["receipt"])),
                *(Outcome(j, "card", "queued") for j in printers["card"])]
    edge.printing.kick()
    given = body.given_cents
    change = (given - sold["total_cents"] if given is not None else 0) if body.payment_method == "cash" else None
    return _json({"order": {"id": sold["order_id"], "number": sold["number"], "total_cents": sold["total_cents"]},
                  "subscriptions": [_subscription_out(edge, s) for s in sold["subscriptions"]],
                  "change_cents": change, "receipt": outcomes[0].as_dict(),
                  "printing": [o.as_dict() for o in outcomes]}, status=201)


def sell_at_desk(edge: Edge, body: DeskSubscriptionIn) -> tuple[dict, str, list[str]]:
    """One transaction: the sale from this desk's pool (the cash given checked and kept by it), the
    cards its form calls for (each with its print job) and the receipt job. All or nothing."""
    now = edge.clock.now()
    signer = cards.load_signer(edge.db, edge.data_dir)
    with transaction(edge.db):
        sold = sell_subscriptions(edge.db, edge.node, body, channel="cashdesk", pool=_pool(edge), signer=signer,
                                  now=now)
        card_ids = [c["id"] for s in sold["subscriptions"]
                    for c in issue_subscription_cards(edge.db, signer, s["id"], now)]
        receipt_job = print_queue.enqueue(edge.db, "receipt", sold["order_id"], None, now)
    return sold, receipt_job, card_ids


def _subscription_out(edge: Edge, sub: dict) -> dict:
    """What the screen shows of a subscription sold: number, form, holder, tier, price, and each
    date with its seat in words."""
    held = print_data.seats(edge.db, sub["line_id"])
    return {"id": sub["id"], "number": sub["number"], "form": sub["form"], "holder_name": sub["holder_name"],
            "tier_id": sub["tier_id"], "price_cents": sub["price_cents"],
            "tickets": [{"performance_id": s.performance_id, "seat_id": _seat_id(sub, s.performance_id),
                         "seat": f"{s.section}, Reihe {s.row}, Platz {s.label}", "starts_at": s.starts_at.isoformat(),
                         "title": s.title} for s in held],
            "vouchers": [{"id": v["id"], "number": v["number"], "position": v["position"],
                          "value_cents": v["value_cents"], "valid_until": v["valid_until"]}
                         for v in sub.get("vouchers", [])]}


def _seat_id(sub: dict, performance_id: str) -> str:
    return next(t["seat_id"] for t in sub["tickets"] if t["performance_id"] == performance_id)


def install(app: web.Application, edge: Edge) -> None:
    app[EDGE_KEY] = edge
    r = app.router
    r.add_get("/api/subscription-products", get_products)
    r.add_get("/api/subscription-products/{id}/availability", get_availability)
    r.add_get("/api/subscription-products/{id}/seat-map.svg", get_seat_map)
    r.add_get("/api/subscription-products/{id}/variant-steps", get_variant_steps)
    r.add_post("/api/subscription-quote", post_quote)
    r.add_post("/api/subscriptions", post_subscriptions)

