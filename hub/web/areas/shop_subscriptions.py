"""Subscriptions for the online shop and for agencies (issue 13: S3, S16): what is on sale, best
available, checkouts (seat holds of one subscription in every date) and paid orders.

The same endpoints serve both roles; the token decides (`core.subscriptions.checkout.Seller`):
a `shop` token sells online from the hub's pool, an `agency` token is the agency itself and
sells released products, tiers bookable by all, from its own contingent `agency:<token id>`.
Staff see the agencies' sales per agency (`GET /agency-sales`, and `GET /subscriptions?agency=`).

Views only translate HTTP to `core.subscriptions.checkout` (which calls the one sale rule in
`sale.py`). A lost race answers 409 with `alternatives`; an order needs an Idempotency-Key.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base.node import identity
from core.base.storage import retried, transaction
from core.cards import cards
from core.catalog.common import Body, Id, Name
from core.subscriptions import checkout, offers
from core.subscriptions.checkout import MAX_PARTY, CheckoutOrder, OrderMemberIn, Seller, ShopHoldIn
from core.subscriptions.passes import issue_subscription_cards
from hub.services import idempotency, print_batches, subscription_mail
from hub.settings import context
from hub.web.api import Api, Ctx, Param
from hub.web.areas.shop import Postcode, ShopCustomerIn, _customer
from hub.web.areas.subscriptions import CHOSEN, STAFF, SubscriptionOrder, _performance_ids, sold_answer
from hub.web.clock import now
from hub.web.problems import ApiError

SELLERS = ("shop", "agency")


# --- shapes --------------------------------------------------------------------------------------------


class SaleWindow(msgspec.Struct, kw_only=True):
    channel: str
    phase: str
    starts_at: str
    ends_at: str


class DatePlayed(msgspec.Struct, kw_only=True):
    id: str
    title: str
    starts_at: str
    venue: str
    variant_id: str
    plan_id: str


class OfferedTierPrice(msgspec.Struct, kw_only=True):
    tier_id: str
    name: str
    price_cents: int


class ProductOnSale(msgspec.Struct, kw_only=True):
    id: str
    name: str
    title: str
    subtitle: str
    kind: str
    pick_count: int | None
    phase: Literal["renewal", "general"] | None
    performances: int
    print_options: str
    transferable: bool
    sale_windows: list[SaleWindow]
    from_cents: int | None
    # a voucher subscription (Wahlgutschein): its vouchers, the performances they may be redeemed
    # for, and the package price per tier this token may offer (`from_cents`: the full price)
    voucher_count: int | None = None
    voucher_value_cents: int | None = None
    offer: list[DatePlayed] = []
    tiers: list[OfferedTierPrice] = []


class ProductsOnSale(msgspec.Struct, kw_only=True):
    items: list[ProductOnSale]


class ZonePrices(msgspec.Struct, kw_only=True):
    zone_id: str
    code: str
    name: str
    color: str
    base_cents: int
    tiers: list[OfferedTierPrice]


class CombiPrice(msgspec.Struct, kw_only=True):
    performance_id: str
    zone_id: str
    price_cents: int


class ProductDetail(ProductOnSale, kw_only=True):
    description: str
    dates: list[DatePlayed]
    zones: list[ZonePrices]
    combi_prices: list[CombiPrice]


class LabelledSeat(msgspec.Struct, kw_only=True):
    performance_id: str
    seat_id: str
    section: str
    row_label: str
    label: str
    zone_id: str | None
    text: str


class ShopBest(msgspec.Struct, kw_only=True):
    product_id: str
    found: bool
    seats: list[LabelledSeat]


class ShopHold(msgspec.Struct, kw_only=True):
    id: str
    product_id: str
    expires_at: str
    zone_id: str | None
    seats: list[LabelledSeat]


class CheckoutReleased(msgspec.Struct, kw_only=True):
    released: int


class SubscriberIn(Body, kw_only=True):
    """An existing customer, named as on their letters: customer number and postcode."""

    customer_number: Annotated[str, Meta(min_length=1, max_length=40)]
    postcode: Postcode


class ShopSubscriptionOrderIn(Body, kw_only=True):
    """A paid checkout. The customer: `customer_id`, a new `customer`, or `subscriber` (number
    and postcode; required in the renewal presale). A party's hold: `members`, a tier and pass
    name per subscription. No seats and no prices: the seats are the hold's, the price is the
    catalog's. A voucher subscription (Wahlgutschein) has no seats: no `hold_id`; its choice
    vouchers come with the answer's subscription (`GET /subscriptions/{id}/choice-vouchers`)."""

    product_id: Id
    hold_id: Id | None = None  # none only for a voucher subscription: it has no seats to hold
    zone_id: Id | None = None
    customer_id: Id | None = None
    customer: ShopCustomerIn | None = None
    subscriber: SubscriberIn | None = None
    tier_id: Id | None = None
    form: Literal["pass", "single_tickets", "both"] | None = None
    holder_name: Name | None = None
    members: Annotated[list[OrderMemberIn], Meta(max_length=MAX_PARTY)] = []
    delivery: Literal["mail", "pickup"]
    payment_reference: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"\S",
                                           description="the payment provider's or the agency's reference")]


class AgencySales(msgspec.Struct, kw_only=True):
    agency: str
    name: str
    subscriptions: int
    active: int
    revenue_cents: int


class AgencySalesList(msgspec.Struct, kw_only=True):
    items: list[AgencySales]


# --- helpers -------------------------------------------------------------------------------------------


def seller(ctx: Ctx) -> Seller:
    return Seller(ctx.token["id"], ctx.token["role"])


def _customer_of(ctx: Ctx, body: ShopSubscriptionOrderIn) -> tuple[str, bool]:
    """(customer id, named as a subscriber by number and postcode)."""
    if body.subscriber is not None:
        if body.customer_id is not None or body.customer is not None:
            raise ApiError(422, "validation-failed", "Invalid input",
                           "give one of customer_id, customer or subscriber", field="subscriber")
        return checkout.subscriber(ctx.db, body.subscriber.customer_number, body.subscriber.postcode), True
    return _customer(ctx.db, body, stored=False)["id"], False


def _issue_cards(ctx: Ctx, subscription_id: str, at) -> None:
    signer = cards.load_signer(ctx.db, context(ctx.app).data_dir)
    issue_subscription_cards(ctx.db, signer, subscription_id, at)


# --- operations ----------------------------------------------------------------------------------------


def list_products_on_sale(ctx: Ctx):
    return {"items": checkout.on_sale(ctx.db, seller(ctx), now(ctx))}


def get_product_on_sale(ctx: Ctx):
    return checkout.detail(ctx.db, ctx.path("id"), seller(ctx), now(ctx))


def shop_best_available(ctx: Ctx):
    who, q = seller(ctx), ctx.query
    found = offers.best(ctx.db, ctx.path("id"), count=q.get("count", 1), zone_id=q.get("zone_id"),
                        audience=who.audience, pool=who.pool, holder=None, now=now(ctx),
                        performance_ids=_performance_ids(ctx))
    seats = checkout.labelled(ctx.db, [(b["performance_id"], b["seat_id"]) for b in found["bookings"]])
    return {"product_id": found["product_id"], "found": found["found"], "seats": seats}


def create_checkout_hold(ctx: Ctx):
    return 201, checkout.hold_checkout(ctx.db, seller(ctx), ctx.body, now(ctx))


def delete_checkout_hold(ctx: Ctx):
    return {"released": checkout.release_checkout(ctx.db, ctx.path("id"), seller(ctx))}


@retried  # a deadlock or serialization failure on PostgreSQL: run again
def create_subscription_order(ctx: Ctx):
    """The order of a held checkout; a retry with the same Idempotency-Key answers the first again."""
    body: ShopSubscriptionOrderIn = ctx.body
    key = idempotency.require_key(ctx.headers)
    digest = idempotency.body_hash(body)
    at, db, who = now(ctx), ctx.db, seller(ctx)
    with transaction(db):
        earlier = idempotency.replay(db, ctx.token["id"], key, digest)
        if earlier is not None:
            ctx.response_headers[idempotency.REPLAYED_HEADER] = "true"
            return earlier.status, msgspec.Raw(earlier.response)
        customer_id, proven = _customer_of(ctx, body)
        order = CheckoutOrder(product_id=body.product_id, hold_id=body.hold_id, customer_id=customer_id,
                              proven_subscriber=proven, tier_id=body.tier_id, form=body.form,
                              holder_name=body.holder_name, delivery=body.delivery,
                              payment_reference=body.payment_reference.strip(), operator=ctx.token["name"][:100],
                              zone_id=body.zone_id, members=tuple(body.members))
        sold = checkout.sell_checkout(db, identity(db), who, order, at)  # id and role: all a sale uses
        for sub in sold["subscriptions"]:
            _issue_cards(ctx, sub["id"], at)
        subscription_mail.confirm_order(ctx.app, db, sold["order_id"], at)
        answer = msgspec.json.encode(sold_answer(db, sold))
        idempotency.remember(db, ctx.token["id"], key, digest, 201, answer, at)
    print_batches.wake_worker(ctx.app)
    return 201, msgspec.Raw(answer)


def list_agency_sales(ctx: Ctx):
    return {"items": checkout.sales_per_agency(ctx.db)}


def register(api: Api) -> None:
    """Installs the shop's and agencies' subscription operations, and the staff's agency summary."""
    tag = "Shop subscriptions"
    api.add("GET", "/shop/subscription-products", list_products_on_sale, summary="List subscriptions on sale now",
            tag=tag, roles=SELLERS, response=ProductsOnSale, cacheable=False,
            description="Subscription products the token may sell now (ring, choice, combi, and voucher "
                        "subscriptions with `voucher_count`, `voucher_value_cents`, their `offer` and the price per "
                        "tier): the shop those in an open `online` sale window, an agency those released to "
                        "agencies in an open `agency` window; `phase` renewal (subscribers only) or general.")
    api.add("GET", "/shop/subscription-products/{id}", get_product_on_sale, summary="Read a subscription on sale",
            tag=tag, roles=SELLERS, response=ProductDetail, cacheable=False,
            description="Dates, and per zone the package price with each tier this token may offer (the shop: "
                        "no complimentary tier; an agency: tiers bookable by all). `phase` null: closed now.")
    api.add("GET", "/shop/subscription-products/{id}/best-available", shop_best_available,
            summary="Best available seats of a subscription on sale", tag=tag, roles=SELLERS,
            response=ShopBest, cacheable=False,
            query=[Param("count", "int", "subscribers side by side (default 1)", minimum=1, maximum=10),
                   Param("zone_id", "uuid", "only seats of this price zone"), CHOSEN],
            description="One seat per subscriber in every date (a replacement where a plan variant lacks it), "
                        "free for this token's pool and held by nobody; `found` false when none is left.")
    api.add("POST", "/shop/seat-holds", create_checkout_hold, summary="Hold a subscription's seats for a checkout",
            tag=tag, offload=True, roles=SELLERS, body=ShopHoldIn, response=ShopHold, status=201,
            description="A party of `count` subscriptions (1-10) side by side: with `zone_id` alone the best "
                        "available seats there, or the seats named as in a sale (`seat_ids` + `replacements`, a "
                        "choice's `performance_ids`, a combi's `seats`; a party's in `members`, one set each). "
                        "All dates held at once or none; the hold expires after `ttl_seconds` (60-1800, default "
                        "600). A seat sold or held meanwhile: 409 with "
                        "`alternatives` (seats with labels to try instead).")
    api.add("DELETE", "/shop/seat-holds/{id}", delete_checkout_hold, summary="Release a checkout's hold", tag=tag,
            offload=True,
            roles=SELLERS, response=CheckoutReleased, description="Only the token that made the hold (else 404).")
    api.add("POST", "/shop/subscription-orders", create_subscription_order, summary="Order a held subscription",
            tag=tag, offload=True, roles=SELLERS, body=ShopSubscriptionOrderIn, response=SubscriptionOrder,
            status=201,
            headers=[Param(idempotency.HEADER, "str", "unique per order; a retry sends the same key",
                           max_length=idempotency.MAX_KEY, required=True)],
            description="Sells exactly the hold's seats as one subscription, or a party's hold as one "
                        "subscription per member (`members`: tier and holder each, as many as the hold has seats "
                        "per date) in one order, priced by the catalog (the body has no price). The renewal "
                        "presale sells only to a `subscriber` named by customer number and postcode. A hold that "
                        "expired, or a seat lost: 409 with `alternatives`. "
                        "Requires `Idempotency-Key`: a retry returns the first answer (`Idempotent-Replayed: "
                        "true`); the same key with another body is refused (422 idempotency-key-reused).")
    api.add("GET", "/agency-sales", list_agency_sales, summary="Subscriptions sold per agency", tag="Subscriptions",
            roles=STAFF, response=AgencySalesList, cacheable=False,
            description="Per agency (its token id and name): subscriptions booked, still active, and revenue. "
                        "List one agency's with `GET /subscriptions?agency=<token id>`.")
