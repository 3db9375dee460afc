"""Routes for signed cards and node keys: issue, read, re-issue, revoke (E4, B3).

Views only translate HTTP to `core.cards.cards` and `hub.services.nodes`. The hub signs the cards it
issues with its own node key, which it reads from its data folder on each call (a key
rotation therefore takes effect without a restart).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base.clock import utcnow
from core.base.errors import ValidationError
from core.base.node import this_node
from core.cards import cards, fulfilment
from core.catalog.common import Body, Id, Name, check_when
from core.catalog.resource import MAX_PAGE, require
from core.sales import orders
from hub.services import lists, nodes
from hub.settings import context
from hub.web import schemas
from hub.web.api import Api, Ctx, Param
from hub.web.problems import ApiError

STAFF = ("admin", "office")
ADMIN = ("admin",)
Kind = Literal["annual", "subscription", "single", "voucher"]
PRODUCT_TABLES = {"annual": ("annual_products", "annual-ticket product"),
                  "voucher": ("annual_products", "annual-ticket product"),
                  "subscription": ("subscription_products", "subscription product"),
                  "single": ("performances", "performance")}


class CardIn(Body, kw_only=True):
    product_id: Id
    kind: Kind = "annual"
    customer_id: Id | None = None
    holder_name: Name | None = None
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None


class CardRevokeIn(Body, kw_only=True):
    reason: Annotated[str, Meta(min_length=1, max_length=200, pattern=r"\S")]


class NodeRevokeIn(Body, kw_only=True):
    reason: Literal["compromised", "lost", "retired"]
    revoked_at: dt.datetime | None = None


class Card(msgspec.Struct, kw_only=True):
    id: str
    number: str
    product_id: str
    kind: str
    customer_id: str | None
    holder_name: str | None
    valid_from: str
    valid_until: str
    issue: int
    key_id: int
    code: str
    issued_by: str
    issued_at: str
    revoked_at: str | None
    revoke_reason: str | None
    order_item_id: str | None = None
    holder_birth_date: str | None = None
    has_photo: int = 0
    delivery: Literal["mail", "pickup", "counter"] | None = None
    fulfilment: Literal["personalized", "printed", "dispatched", "deposited", "handed_over"] | None = None
    fulfilment_at: str | None = None
    created_at: str
    updated_at: str



class NodeCert(msgspec.Struct, kw_only=True):
    key_id: str
    node_id: str
    name: str
    role: str
    valid_from: str
    valid_until: str
    issued_at: str
    revoked_at: str | None
    revoke_reason: str | None
    last_op_at: str | None = None  # the node's latest op time the hub has seen (issue 11: naming a revocation time)
    last_op_received_at: str | None = None


def _aware(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValidationError("give a time zone (e.g. 2026-01-01T00:00:00Z)", field=field)
    check_when(value, field)
    return value


def issue_card(ctx: Ctx):
    body: CardIn = ctx.body
    table, what = PRODUCT_TABLES[body.kind]
    require(ctx.db, table, body.product_id, what, "product_id")
    if body.customer_id:
        require(ctx.db, "customers", body.customer_id, "customer", "customer_id")
    signer = cards.load_signer(ctx.db, context(ctx.app).data_dir)
    card = cards.issue_card(ctx.db, signer, product_id=body.product_id, kind=body.kind, now=utcnow(),
                            customer_id=body.customer_id, holder_name=body.holder_name,
                            valid_from=_aware(body.valid_from, "valid_from"),
                            valid_until=_aware(body.valid_until, "valid_until"))
    return 201, card


FULFILMENT_STATES = ("personalized", "printed", "dispatched", "deposited", "handed_over")
DELIVERIES = ("mail", "pickup", "counter")


def _one_of(ctx: Ctx, name: str, allowed: tuple[str, ...]) -> None:
    """A query filter with a fixed set of values: a typo is a clear 400, not an empty page."""
    value = ctx.query.get(name)
    if value is not None and value not in allowed:
        raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                       f"{name} must be one of {', '.join(allowed)}, not {value!r}", field=name)


def list_cards(ctx: Ctx):
    _one_of(ctx, "fulfilment", FULFILMENT_STATES)
    _one_of(ctx, "delivery", DELIVERIES)
    return lists.page(ctx, "cards", "id", ("customer_id", "product_id", "fulfilment", "delivery"))


def get_card(ctx: Ctx):
    return cards.get_card(ctx.db, ctx.path("id"))


def reissue_card(ctx: Ctx):
    get_card(ctx)
    signer = cards.load_signer(ctx.db, context(ctx.app).data_dir)
    return cards.reissue_card(ctx.db, signer, ctx.path("id"), utcnow())


def revoke_card(ctx: Ctx):
    get_card(ctx)
    signer = cards.load_signer(ctx.db, context(ctx.app).data_dir)
    return cards.revoke_card(ctx.db, signer, ctx.path("id"), ctx.body.reason, utcnow())


def move_cards(ctx: Ctx):
    """A8 in bulk (e.g. a morning's mail): all cards move or none; a 409 names the card that cannot."""
    body: fulfilment.FulfilmentIn = ctx.body
    return fulfilment.set_fulfilment(ctx.db, this_node(ctx.db), body.card_ids, body.state, utcnow())


def replace_card(ctx: Ctx):
    """A lost annual card: new issue (the old code is SUPERSEDED), back to personalized, printed again."""
    signer = cards.load_signer(ctx.db, context(ctx.app).data_dir)
    return orders.replace_lost_card(ctx.db, signer, ctx.path("id"), utcnow())


def list_nodes(ctx: Ctx):
    return nodes.list_nodes(ctx.db)


def revoke_node(ctx: Ctx):
    body: NodeRevokeIn = ctx.body
    root = nodes.root_key(context(ctx.app).data_dir)
    nodes.revoke_node(ctx.db, root, ctx.path("id"), reason=body.reason,
                      revoked_at=_aware(body.revoked_at, "revoked_at"))
    return [n for n in nodes.list_nodes(ctx.db) if n["node_id"] == ctx.path("id")]


def register(api: Api) -> None:
    api.add("POST", "/cards", issue_card, summary="Issue a signed card", tag="Cards", roles=STAFF, body=CardIn,
            response=Card, status=201,
            description="Signed with the hub's node key. The validity window follows the product "
                        "(fixed dates, months from purchase, or from the first entry) unless given.")
    api.add("GET", "/cards", list_cards, summary="List cards", tag="Cards", roles=STAFF, response=schemas.page_of(Card),
            cacheable=False,
            query=[Param("limit", "int", "page size (default 50)", minimum=1, maximum=MAX_PAGE),
                   Param("offset", "int", "records to skip", minimum=0, maximum=10_000_000),
                   Param("customer_id", "uuid", "only cards of this customer"),
                   Param("product_id", "uuid", "only cards of this product"),
                   Param("fulfilment", "str", "only cards in this fulfilment state: "
                         + ", ".join(FULFILMENT_STATES), max_length=20),
                   Param("delivery", "str", "only cards going this way: " + ", ".join(DELIVERIES), max_length=20)])
    api.add("POST", "/cards/fulfilment", move_cards, summary="Move cards to a fulfilment state", tag="Cards",
            roles=STAFF, body=fulfilment.FulfilmentIn, response=list[Card],
            description="personalized -> printed -> dispatched (mail) or deposited (pickup) -> handed_over. "
                        "All cards move or none does: a card that cannot move is a 409 naming it. A card "
                        "already in the state stays as it is.")
    api.add("GET", "/cards/{id}", get_card, summary="Read a card (with its code)", tag="Cards", roles=STAFF,
            response=Card, cacheable=False)
    api.add("POST", "/cards/{id}/reissue", reissue_card, summary="Re-issue a lost card", tag="Cards",
            roles=STAFF, response=Card,
            description="Same card, issue number + 1; the old code is refused as SUPERSEDED once synced.")
    api.add("POST", "/cards/{id}/replace", replace_card, summary="Replace a lost annual card", tag="Cards",
            roles=STAFF, response=Card,
            description="A new issue (the old code is refused as SUPERSEDED once synced), back to "
                        "`personalized`, and a new print job (plus a carrier for cards that go by mail).")
    api.add("POST", "/cards/{id}/revoke", revoke_card, summary="Revoke a card", tag="Cards", roles=STAFF,
            body=CardRevokeIn, response=Card)
    api.add("GET", "/nodes", list_nodes, summary="List node certificates", tag="Nodes", roles=ADMIN,
            response=list[NodeCert], cacheable=False)
    api.add("POST", "/nodes/{id}/revoke", revoke_node, summary="Revoke a node (stolen or retired device)",
            tag="Nodes", roles=ADMIN, body=NodeRevokeIn, response=list[NodeCert],
            description="Cards the node signed before `revoked_at` (default: now) stay valid; later ones "
                        "are refused at every gate once the revocation has reached it.")
