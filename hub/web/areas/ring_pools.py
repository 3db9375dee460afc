"""Office API for ring seats in a cash desk's pool (issue 14, S17): move a subscription
product's ring seats into a desk's pool or recall them, and read which pool holds each.
Views only translate HTTP to `core.subscriptions.ring_pools`."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from core.base.clock import utcnow
from core.catalog.common import Body, Id
from core.subscriptions import ring_pools
from hub.web.api import Api, Ctx

STAFF = ("admin", "office")
DeskOrHub = Annotated[str, Meta(min_length=3, max_length=80, pattern=r"^(hub|node:[0-9a-f-]{36})$")]


class RingMoveIn(Body, kw_only=True):
    seat_ids: Annotated[list[Id], Meta(min_length=1, max_length=500)]
    to: DeskOrHub


class RingMoved(msgspec.Struct, kw_only=True):
    seat_id: str
    performance_ids: list[str]


class RingRecallOut(msgspec.Struct, kw_only=True):
    id: str
    node_id: str
    seat_id: str
    performance_ids: list[str]
    state: str


class RingMoveOut(msgspec.Struct, kw_only=True):
    moved: list[RingMoved]
    recalls: list[RingRecallOut]


class SeatInPerformance(msgspec.Struct, kw_only=True):
    performance_id: str
    pool: str
    sold: bool
    recalling: bool


class RingSeatPool(msgspec.Struct, kw_only=True):
    seat_id: str
    pool: str
    performances: list[SeatInPerformance]


class RingRecallState(msgspec.Struct, kw_only=True):
    id: str
    node_id: str
    seat_id: str
    to_pool: str
    state: str
    kept_sold: list[str]
    waiting_for: list[str]
    created_at: str
    done_at: str | None


class RingPools(msgspec.Struct, kw_only=True):
    product_id: str
    seats: list[RingSeatPool]
    recalls: list[RingRecallState]


def read_ring_pools(ctx: Ctx):
    return ring_pools.ring_seat_pools(ctx.db, ctx.path("id"), utcnow())


def move_ring_seats(ctx: Ctx):
    body: RingMoveIn = ctx.body
    return ring_pools.move_ring_seats(ctx.db, ctx.path("id"), body.seat_ids, body.to, utcnow())


def register(api: Api) -> None:
    """Installs the ring seat pool operations."""
    tag = "Contingents"
    api.add("GET", "/subscription-products/{id}/pools", read_ring_pools, summary="Which pool holds each ring seat",
            tag=tag, roles=STAFF, response=RingPools, cacheable=False,
            description="Every seat of the product's plans that is not in the hub's pool in all its dates: the "
                        "pool holding it where all dates agree, else `mixed` with each date's pool; and the "
                        "product's ring recalls (`partial`: the desk had sold the seat on `kept_sold` dates, "
                        "so the ring seat stayed with it; `waiting_for`: dates the desk has not answered yet).")
    api.add("POST", "/subscription-products/{id}/pools", move_ring_seats,
            summary="Move ring seats to or from a cash desk", tag=tag, roles=STAFF, body=RingMoveIn,
            response=RingMoveOut,
            description="A ring seat is a seat of one of the product's seating plans, in every date of that plan "
                        "whose variant has it. `to: node:<id>` moves it into that cash desk's pool in all of them "
                        "or in none (409 naming a date where it is sold, held or in another pool). `to: hub` "
                        "recalls it from the desk in two steps; it comes back only when the desk released it in "
                        "every date, else it stays with the desk and the recall is reported `partial`.")
