"""`subscription.sold`: the body of a subscription sale a cash desk made from its own pool (S17).

Kept apart from `sale.py` (which records it) and `desk_sales.py` (which the hub applies it with)
so neither imports the other. The body carries what the hub needs to sell the same thing again
from the desk's pool and store it under the same ids: the request (product, customer, form, the
chosen dates, per member its seat_ids/replacements/seats and tier) and what the desk made of it
(ids, numbers, tickets, prices; a voucher subscription's choice vouchers with their signed codes).
Strict: unknown fields are refused; every list is bounded.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.cards.cards import Stamp
from core.catalog.common import Cents, Id, Name

Text = Annotated[str, Meta(max_length=100)]
Number = Annotated[str, Meta(min_length=1, max_length=40)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ReplacementOp(Strict, kw_only=True):
    variant_id: Id
    seat_id: Id


class SeatAtOp(Strict, kw_only=True):
    performance_id: Id
    seat_id: Id


class SoldTicketOp(Strict, kw_only=True):
    id: Id
    performance_id: Id
    seat_id: Id
    zone_id: Id
    price_cents: Cents


class SoldVoucherOp(Strict, kw_only=True):
    """A choice voucher the desk issued with a voucher subscription (S5), as it stored it: the hub
    stores it under these id, number and code only after re-deriving the rest."""

    id: Id
    number: Number
    position: Annotated[int, Meta(ge=1, le=100)]
    value_cents: Cents
    valid_until: Stamp
    code: Annotated[str, Meta(min_length=1, max_length=400)]


class SoldMemberOp(Strict, kw_only=True):
    """One subscription of the sale: its request fields, then its ids, tickets (none for a voucher
    subscription) and price, and a voucher subscription's vouchers."""

    line_id: Id
    subscription_id: Id
    number: Number
    tier_id: Id | None = None
    holder_name: Name | None = None
    seat_ids: Annotated[list[Id], Meta(max_length=20)] = []
    replacements: Annotated[list[ReplacementOp], Meta(max_length=40)] = []
    seats: Annotated[list[SeatAtOp], Meta(max_length=200)] = []
    zone_id: Id | None = None
    price_cents: Cents
    tickets: Annotated[list[SoldTicketOp], Meta(max_length=200)]
    vouchers: Annotated[list[SoldVoucherOp], Meta(max_length=100)] = []


class SubscriptionSoldOp(Strict, kw_only=True):
    """`subscription.sold`: a party's subscriptions sold in one order at a cash desk."""

    order_id: Id
    number: Number
    node_id: Id
    channel: Literal["cashdesk"]
    product_id: Id
    customer_id: Id
    form: Literal["pass", "single_tickets", "both"]
    zone_id: Id | None = None
    performance_ids: Annotated[list[Id], Meta(max_length=200)] = []
    payment_method: Annotated[str, Meta(max_length=20)]
    payment_reference: Text | None = None
    given_cents: Cents | None = None
    operator: Text | None = None
    total_cents: Cents
    created_at: Stamp
    members: Annotated[list[SoldMemberOp], Meta(min_length=1, max_length=20)]
