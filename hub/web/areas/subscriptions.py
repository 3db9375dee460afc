"""Subscriptions for the office over the API (issue 13): the phone sale, the subscriber list and
record, changes of tier, form, state and seats, staff seat holds, and what a product offers
(free-in-all seats per ring group and variant, best available).

Views only translate HTTP to `core.subscriptions` (sale, records, holds, offers). Staff hold and
buy as `staff:<token id>`: a hold of theirs is converted by their sale, anybody else's is taken.
After a sale or a change the subscription's cards are issued (`passes.issue_subscription_cards`)
in the same transaction, signed with the hub's key.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base.clock import utcnow
from core.base.errors import ValidationError
from core.base.ids import is_uuid
from core.base.node import this_node
from core.base.storage import transaction
from core.cards import cards
from core.catalog.common import Body
from core.catalog.resource import MAX_PAGE
from core.payments import cancellations
from core.subscriptions import holds, offers, passes, records
from core.subscriptions.passes import issue_subscription_cards
from core.subscriptions.sale import SeatAtIn, SubscriptionSaleIn, sell_subscriptions, variant_steps
from hub.services import idempotency, print_batches, subscription_mail
from hub.settings import context
from hub.web import schemas
from hub.web.api import Api, Ctx, Param
from hub.web.areas.cards import _one_of
from hub.web.problems import ApiError

STAFF = ("admin", "office")
STATES = ("active", "cancelled", "paused")
MAX_IDS = 200


# --- shapes for the API document -----------------------------------------------------------------------


class SubscriptionSeat(msgspec.Struct, kw_only=True):
    ticket_id: str
    performance_id: str
    title: str
    starts_at: str
    variant_id: str
    seat_id: str
    section: str
    row_label: str
    label: str
    zone_id: str
    price_cents: int


class SubscriptionListItem(msgspec.Struct, kw_only=True):
    id: str
    number: str
    order_id: str
    line_id: str
    customer_id: str
    customer: str
    product_id: str
    product: str
    tier_id: str | None
    zone_id: str | None
    form: Literal["pass", "single_tickets", "both"]
    state: Literal["active", "cancelled", "paused"]
    ends_season_id: str | None
    cancelled_at: str | None = None
    holder_name: str | None
    channel: str
    agency_token: str | None
    price_cents: int
    created_at: str
    updated_at: str


class SubscriptionRecord(SubscriptionListItem, kw_only=True):
    seats: list[SubscriptionSeat]


class SubscriptionOrder(SubscriptionRecord, kw_only=True):
    """A sale's answer: its first subscription (the only one of a single sale), and every
    subscription of the order (a party side by side) with the order's total."""

    order_number: str
    order_total_cents: int
    subscriptions: list[SubscriptionRecord]


class HoldIn(Body, kw_only=True):
    """Seats to hold, all or none: e.g. one seat in every performance of a ring."""

    seats: Annotated[list[SeatAtIn], Meta(min_length=1, max_length=holds.MAX_SEATS)]
    ttl_seconds: Annotated[int, Meta(ge=1, le=int(holds.MAX_TTL.total_seconds()))] = int(
        holds.DEFAULT_TTL.total_seconds())


class HeldSeat(msgspec.Struct, kw_only=True):
    performance_id: str
    seat_id: str


class Hold(msgspec.Struct, kw_only=True):
    id: str
    holder: str
    expires_at: str
    seats: list[HeldSeat]


class Released(msgspec.Struct, kw_only=True):
    released: int


class VariantSeats(msgspec.Struct, kw_only=True):
    variant_id: str
    lead: bool
    performance_ids: list[str]
    free_seat_ids: list[str]


class GroupSeats(msgspec.Struct, kw_only=True):
    plan_id: str
    performance_ids: list[str]
    variants: list[VariantSeats]


class PerformanceFree(msgspec.Struct, kw_only=True):
    performance_id: str
    variant_id: str
    free_seat_ids: list[str]


class Availability(msgspec.Struct, kw_only=True):
    product_id: str
    kind: str
    pick_count: int | None
    groups: list[GroupSeats]
    performances: list[PerformanceFree]


class VariantStep(msgspec.Struct, kw_only=True):
    plan_id: str
    variant_id: str
    performance_ids: list[str]
    missing_seat_id: str
    free_seat_ids: list[str]
    suggestion: str | None


class VariantSteps(msgspec.Struct, kw_only=True):
    product_id: str
    steps: list[VariantStep]


class BestAvailable(msgspec.Struct, kw_only=True):
    product_id: str
    found: bool
    bookings: list[HeldSeat]


# --- helpers -------------------------------------------------------------------------------------------


def _holder(ctx: Ctx) -> str:
    """`staff:<id>`: an API token's id, or the office's staff member (whose identity is already
    `staff:<staff id>`, `api_call.identity`)."""
    token_id = ctx.token["id"]
    return token_id if token_id.startswith("staff:") else f"staff:{token_id}"


def _performance_ids(ctx: Ctx) -> list[str] | None:
    """`performance_ids` as a comma-separated list of ids (a choice's chosen dates), or None."""
    raw = ctx.query.get("performance_ids")
    if raw is None:
        return None
    ids = [p.strip() for p in raw.split(",") if p.strip()]
    if not ids or len(ids) > MAX_IDS or not all(is_uuid(p) for p in ids):
        raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                       f"performance_ids must be 1 to {MAX_IDS} ids separated by commas", field="performance_ids")
    return ids


def sold_answer(db: sqlite3.Connection, sold: dict) -> dict:
    """The answer of a sale (`SubscriptionOrder`): the first subscription's record, with all of them."""
    subs = [records.get(db, sub["id"]) for sub in sold["subscriptions"]]
    return {**subs[0], "order_number": sold["number"], "order_total_cents": sold["total_cents"],
            "subscriptions": subs}


def _issue_cards(ctx: Ctx, subscription_id: str, now: dt.datetime) -> None:
    """The subscription's cards as its form and seats call for (none while it is paused)."""
    sub = records.row(ctx.db, subscription_id)
    if sub["state"] != "active":
        return
    signer = cards.load_signer(ctx.db, context(ctx.app).data_dir)
    issue_subscription_cards(ctx.db, signer, subscription_id, now)


# --- operations ----------------------------------------------------------------------------------------


def create_subscription(ctx: Ctx):
    """A phone sale; a retry with the same Idempotency-Key answers the first sale again."""
    body: SubscriptionSaleIn = ctx.body
    if body.operator is None:
        body = msgspec.structs.replace(body, operator=ctx.token["name"][:100])
    key = idempotency.require_key(ctx.headers)
    digest = idempotency.body_hash(ctx.body)
    now, db = utcnow(), ctx.db
    with transaction(db):
        earlier = idempotency.replay(db, ctx.token["id"], key, digest)
        if earlier is not None:
            ctx.response_headers[idempotency.REPLAYED_HEADER] = "true"
            return earlier.status, msgspec.Raw(earlier.response)
        sold = sell_subscriptions(db, this_node(db), body, channel="phone", holder=_holder(ctx), now=now)
        for sub in sold["subscriptions"]:
            _issue_cards(ctx, sub["id"], now)
        subscription_mail.confirm_order(ctx.app, db, sold["order_id"], now)
        answer = msgspec.json.encode(sold_answer(db, sold))
        idempotency.remember(db, ctx.token["id"], key, digest, 201, answer, now)
    print_batches.wake_worker(ctx.app)
    return 201, msgspec.Raw(answer)


def list_subscriptions(ctx: Ctx):
    _one_of(ctx, "state", STATES)
    q = ctx.query
    filters = {k: q.get(k) for k in records.FILTERS} | {"agency_token": q.get("agency")}  # an agency's sales
    return records.search(ctx.db, filters=filters,
                          performance_id=q.get("performance_id"), q=q.get("q"),
                          limit=q.get("limit", 50), offset=q.get("offset", 0))


def get_subscription(ctx: Ctx):
    return records.get(ctx.db, ctx.path("id"))


def change_subscription(ctx: Ctx):
    now = utcnow()
    body: records.SubscriptionChange = ctx.body
    if body.effective == "now":
        return _cancel_now(ctx, body, now)
    with transaction(ctx.db):
        records.change(ctx.db, ctx.path("id"), ctx.body, now)
        if ctx.body.form or ctx.body.state == "active":
            _issue_cards(ctx, ctx.path("id"), now)
    return records.get(ctx.db, ctx.path("id"))


def _cancel_now(ctx: Ctx, body: records.SubscriptionChange, now: dt.datetime) -> dict:
    """`{"state": "cancelled", "effective": "now"}`: the Storno, alone in its PATCH: the cancellation
    of the subscription's order line (core/payments/cancellations.py: `records.cancel_now`, then the
    refund of the dates not played and the invoice); a repeat answers the cancelled record and
    changes nothing."""
    others = [name for name in ("tier_id", "form", "ends_season_id") if getattr(body, name) is not None]
    if body.state not in (None, "cancelled") or body.clear_tier or others:
        raise ValidationError("effective now is an immediate cancellation: send state cancelled and nothing else",
                              field="effective")
    sub = records.row(ctx.db, ctx.path("id"))
    if sub["cancelled_at"] is None:  # the Storno is the cancellation of its order line: money and invoice too
        signer = cards.load_signer(ctx.db, context(ctx.app).data_dir)
        why = cancellations.LinesCancelIn(line_ids=[sub["line_id"]], reason=f"subscription {sub['number']} cancelled")
        cancellations.cancel(ctx.db, signer, this_node(ctx.db), sub["order_id"], why, now=now,
                             operator=ctx.token["name"][:100])
    return records.get(ctx.db, ctx.path("id"))


def change_subscription_seats(ctx: Ctx):
    now = utcnow()
    with transaction(ctx.db):
        before = passes.tickets_now(ctx.db, ctx.path("id"))
        records.change_seats(ctx.db, ctx.path("id"), ctx.body, holder=_holder(ctx), now=now)
        _issue_cards(ctx, ctx.path("id"), now)
        if records.row(ctx.db, ctx.path("id"))["state"] == "active":  # the paper with the old seat is replaced
            passes.reissue_moved(ctx.db, cards.load_signer(ctx.db, context(ctx.app).data_dir), ctx.path("id"),
                                 before, now)
    print_batches.wake_worker(ctx.app)
    return records.get(ctx.db, ctx.path("id"))


def create_seat_hold(ctx: Ctx):
    body: HoldIn = ctx.body
    return 201, holds.hold(ctx.db, _holder(ctx), [(s.performance_id, s.seat_id) for s in body.seats],
                           now=utcnow(), ttl=dt.timedelta(seconds=body.ttl_seconds))


def delete_seat_hold(ctx: Ctx):
    return {"released": holds.release(ctx.db, ctx.path("id"), _holder(ctx))}


def product_availability(ctx: Ctx):
    return offers.availability(ctx.db, ctx.path("id"), holder=_holder(ctx), now=utcnow(),
                               performance_ids=_performance_ids(ctx))


def _seat_ids(ctx: Ctx) -> list[str]:
    """`seat_ids`: the seats picked, one per ring group, as ids separated by commas."""
    ids = [p.strip() for p in ctx.query.get("seat_ids", "").split(",") if p.strip()]
    if not ids or len(ids) > MAX_IDS or not all(is_uuid(p) for p in ids):
        raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                       f"seat_ids must be 1 to {MAX_IDS} ids separated by commas", field="seat_ids")
    return ids


def product_variant_steps(ctx: Ctx):
    """The variant steps of the seats picked (the office's seat map steps through them)."""
    prod = offers.product(ctx.db, ctx.path("id"))
    if prod["kind"] == "combi":
        raise ValidationError("a combi ticket has a seat per date and no variant steps", field="product_id")
    chosen = _performance_ids(ctx)
    with transaction(ctx.db):
        perfs = offers.performances(ctx.db, prod, holder=_holder(ctx), now=utcnow(), performance_ids=chosen)
        steps = variant_steps(offers.groups(prod, perfs, chosen), _seat_ids(ctx))
    return {"product_id": prod["id"], "steps": steps}


def product_best_available(ctx: Ctx):
    q = ctx.query
    return offers.best(ctx.db, ctx.path("id"), count=q.get("count", 1), zone_id=q.get("zone_id"),
                       wheelchair=q.get("wheelchair", 0), holder=_holder(ctx), now=utcnow(),
                       performance_ids=_performance_ids(ctx))


PAGE = [Param("limit", "int", "page size (default 50)", minimum=1, maximum=MAX_PAGE),
        Param("offset", "int", "records to skip", minimum=0, maximum=10_000_000)]
CHOSEN = Param("performance_ids", "str", "a choice's chosen dates (or any of the product's): ids separated by "
               "commas", max_length=MAX_IDS * 37)


def register(api: Api) -> None:
    """Installs the office's subscription operations."""
    tag = "Subscriptions"
    api.add("POST", "/subscriptions", create_subscription, summary="Sell a subscription (phone)", tag=tag,
            roles=STAFF, body=SubscriptionSaleIn, response=SubscriptionOrder, status=201,
            headers=[Param(idempotency.HEADER, "str", "unique per sale; a retry sends the same key",
                           max_length=idempotency.MAX_KEY, required=True)],
            description="Ring: `seat_ids` (one seat per seating plan of its dates, the same in every date of "
                        "the plan) and `replacements` (variant -> seat) where a plan variant lacks the seat. "
                        "Choice: `performance_ids` (exactly N of the M) and `seat_ids`. Combi: `seats` (a seat "
                        "per performance). A party side by side in one order: `members`, each with its seats "
                        "(as above), `tier_id` and `holder_name`; all are sold or none, `subscriptions` lists "
                        "them and `order_total_cents` is the sum. Prices come from the catalog only (no price "
                        "field); sale windows of the `phone` channel apply (renewal: subscribers of an earlier "
                        "season only). A seat "
                        "sold or held by someone else meanwhile: 409 naming it (ask best-available for "
                        "alternatives); your own hold on it is converted. Requires `Idempotency-Key`.")
    api.add("GET", "/subscriptions", list_subscriptions, summary="List and search subscriptions", tag=tag,
            roles=STAFF, response=schemas.page_of(SubscriptionListItem), cacheable=False,
            query=PAGE + [Param("customer_id", "uuid", "only this customer's"),
                          Param("product_id", "uuid", "only this product's"),
                          Param("performance_id", "uuid", "only those with a seat in this performance"),
                          Param("state", "str", "active, cancelled or paused", max_length=20),
                          Param("number", "str", "the subscription's number (ABO-...)", max_length=40),
                          Param("agency", "uuid", "only those an agency booked: its token id"),
                          Param("q", "str", "part of the customer's or holder's name, or of the number")])
    api.add("GET", "/subscriptions/{id}", get_subscription, summary="Read a subscription with its seats", tag=tag,
            roles=STAFF, response=SubscriptionRecord, cacheable=False)
    api.add("PATCH", "/subscriptions/{id}", change_subscription, summary="Change tier, form or state", tag=tag,
            roles=STAFF, body=records.SubscriptionChange, response=SubscriptionRecord,
            description="`tier_id` (or `clear_tier`) is recorded for the next season: nothing is re-priced. "
                        "`form` as the product's print options allow (cards are issued or revoked to match). "
                        "`state`: cancelled (runs to the end of `ends_season_id`, default the product's season), "
                        "paused, or active again (a paused one only). `{\"state\": \"cancelled\", \"effective\": "
                        "\"now\"}` cancels with immediate effect (Storno; alone in its request): the tickets of "
                        "performances not yet begun are cancelled and their seats free again, every card of the "
                        "subscription (pass and tickets, also a desk's) is revoked and refused at the gates after "
                        "their next pull; `cancelled_at` records when. Sent again it changes nothing.")
    api.add("PUT", "/subscriptions/{id}/seats", change_subscription_seats, summary="Change a subscription's seats",
            tag=tag, roles=STAFF, body=records.SeatChangeIn, response=SubscriptionRecord,
            description="With `performance_id`: that date's seat. Without: every date of the ring group on the "
                        "seat's plan (with `replacements` where a variant lacks it). Checked like a sale, in the "
                        "zone paid for; the old tickets are cancelled and the new ones sold in one transaction.")

    tag = "Seat holds"
    api.add("POST", "/seat-holds", create_seat_hold, summary="Hold seats for a checkout", tag=tag, roles=STAFF,
            body=HoldIn, response=Hold, status=201,
            description="All the seats or none (409 naming a seat sold or held by someone else). The hold "
                        "expires after `ttl_seconds` (default 600); a sale by the same staff token converts it.")
    api.add("DELETE", "/seat-holds/{id}", delete_seat_hold, summary="Release a seat hold", tag=tag, roles=STAFF,
            response=Released, description="Only the token that holds it may release it (else 404).")

    tag = "Subscriptions"
    api.add("GET", "/subscription-products/{id}/availability", product_availability,
            summary="Seats free in all dates of a subscription product", tag=tag, roles=STAFF,
            response=Availability, cacheable=False, query=[CHOSEN],
            description="Per ring group (the dates on one seating plan) and plan variant (the lead first): "
                        "the seats that may be picked there, free in every date of the group whose variant has "
                        "them. A combi lists each performance's free seats instead.")
    api.add("GET", "/subscription-products/{id}/variant-steps", product_variant_steps,
            summary="Plan variants lacking the seats picked", tag=tag, roles=STAFF, response=VariantSteps,
            cacheable=False, query=[Param("seat_ids", "str", "the seats picked, one per ring group: ids separated "
                                          "by commas", max_length=MAX_IDS * 37, required=True), CHOSEN],
            description="Ring or choice: for each seat picked (checked: free in every date whose variant has "
                        "it), the plan variants of its group that lack it, with the seats free in all their "
                        "dates and the nearest free one (`suggestion`). The sale takes a replacement for each "
                        "(`replacements`).")
    api.add("GET", "/subscription-products/{id}/best-available", product_best_available,
            summary="Best available seats for a subscription product", tag=tag, roles=STAFF,
            response=BestAvailable, cacheable=False,
            query=[Param("count", "int", "subscribers side by side (default 1)", minimum=1, maximum=20),
                   Param("zone_id", "uuid", "only seats of this price zone"),
                   Param("wheelchair", "int", "wheelchair places among them (default 0)", minimum=0, maximum=20),
                   CHOSEN])
