"""Office API around sync: contingents, recalls, sales from the hub's pool, conflicts,
enrollment codes and what each node last did. Views only translate HTTP to core/hub calls."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base.clock import iso, utcnow
from core.base.node import this_node
from core.catalog.common import Body, Id, Name
from core.sales import contingents
from core.sales import tickets as sales
from core.sync import conflicts
from hub.sync import enrollment
from hub.web.api import Api, Ctx, Param

STAFF = ("admin", "office")
ADMIN = ("admin",)
Pool = Annotated[str, Meta(min_length=1, max_length=80,
                           pattern=r"^(hub|blocked|node:[0-9a-f-]{36}|agency:[\w.-]{1,40})$")]


class MoveIn(Body, kw_only=True):
    seat_ids: Annotated[list[Id], Meta(min_length=1, max_length=5000)]
    to: Pool


class ResolveIn(Body, kw_only=True):
    resolution: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"\S")]


class CodeIn(Body, kw_only=True):
    name: Name
    role: Literal["cashdesk", "counter", "gate"]
    venue_ids: Annotated[list[Id], Meta(max_length=50)] = []


class PoolCount(msgspec.Struct, kw_only=True):
    pool: str
    seats: int
    sold: int


class Recall(msgspec.Struct, kw_only=True):
    id: str
    node_id: str
    performance_id: str | None = None
    seat_ids: list[str]
    to_pool: str
    state: str | None = None
    created_at: str


class PoolSummary(msgspec.Struct, kw_only=True):
    performance_id: str
    seats: int
    pools: list[PoolCount]
    open_recalls: list[Recall]


class MoveOut(msgspec.Struct, kw_only=True):
    moved: list[str]
    recalls: list[Recall]


class Ticket(msgspec.Struct, kw_only=True):
    id: str
    seat_id: str
    zone_id: str
    price_cents: int


class Sale(msgspec.Struct, kw_only=True):
    id: str
    number: str
    node_id: str
    channel: str
    payment_method: str
    payment_reference: str | None
    operator: str | None
    total_cents: int
    created_at: str
    performance_id: str
    tickets: list[Ticket]


class ConflictOut(msgspec.Struct, kw_only=True):
    id: str
    node_id: str
    node_seq: int
    kind: str
    body: dict
    reason: str
    created_at: str
    resolved_at: str | None
    resolution: str | None


class CodeOut(msgspec.Struct, kw_only=True):
    code: str
    name: str
    role: str
    venue_ids: list[str]
    expires_at: str


class EnrollmentOut(msgspec.Struct, kw_only=True):
    """An enrollment code as the office sees it: never its secret."""

    id: int
    code_id: str | None
    state: Literal["open", "used", "expired", "dead"]
    name: str
    role: str
    venue_ids: list[str]
    created_at: str
    expires_at: str
    used_at: str | None
    node_id: str | None
    attempts_left: int


class NodeSync(msgspec.Struct, kw_only=True):
    node_id: str
    name: str
    role: str
    venue_ids: list[str]
    enrolled_at: str
    last_push_at: str | None
    last_pull_at: str | None
    pulled_seq: int
    behind: int
    clock_skew_s: float | None
    open_conflicts: int


def pools(ctx: Ctx):
    return contingents.summary(ctx.db, ctx.path("id"))


def move(ctx: Ctx):
    body: MoveIn = ctx.body
    contingents.performance(ctx.db, ctx.path("id"))
    return contingents.move_seats(ctx.db, ctx.path("id"), body.seat_ids, body.to, utcnow())


def sell(ctx: Ctx):
    channel = "shop" if ctx.token and ctx.token["role"] == "shop" else "phone"  # the ledger's channels
    return 201, sales.sell(ctx.db, this_node(ctx.db), ctx.body, pool=contingents.HUB, channel=channel, now=utcnow())


def list_conflicts(ctx: Ctx):
    return conflicts.listed(ctx.db, include_resolved=bool(ctx.query.get("all")))


def resolve_conflict(ctx: Ctx):
    return conflicts.resolve(ctx.db, ctx.path("id"), ctx.body.resolution, utcnow())


def create_code(ctx: Ctx):
    body: CodeIn = ctx.body
    now = utcnow()
    code = enrollment.create_code(ctx.db, name=body.name, role=body.role, venue_ids=body.venue_ids, now=now)
    return 201, {"code": code, "name": body.name, "role": body.role, "venue_ids": body.venue_ids,
                 "expires_at": iso(now + enrollment.TTL)}


def list_codes(ctx: Ctx):
    return enrollment.list_codes(ctx.db, utcnow())


def node_sync(ctx: Ctx):
    return conflicts.node_status(ctx.db)


def register(api: Api) -> None:
    api.add("GET", "/performances/{id}/pools", pools, summary="Seats per contingent of a performance",
            tag="Contingents", roles=STAFF, response=PoolSummary, cacheable=False,
            description="Pools: hub (online/office), node:<id> (a cash desk, sells offline), agency:<id>, blocked.")
    api.add("POST", "/performances/{id}/pools", move, summary="Move seats to a contingent", tag="Contingents",
            roles=STAFF, body=MoveIn, response=MoveOut,
            description="Seats held by a cash desk are recalled in two steps: the desk gives them back (or reports "
                        "them sold) in its own op stream, and only then do they move.")
    api.add("POST", "/sales", sell, summary="Sell seats from the hub's contingent", tag="Sales",
            roles=("admin", "office", "shop"), body=sales.SaleIn, response=Sale, status=201)
    api.add("GET", "/conflicts", list_conflicts, summary="Ops the hub could not apply", tag="Sync", roles=STAFF,
            response=list[ConflictOut], cacheable=False,
            query=[Param("all", "bool", "include resolved conflicts")])
    api.add("POST", "/conflicts/{id}/resolve", resolve_conflict, summary="Mark a conflict resolved", tag="Sync",
            roles=STAFF, body=ResolveIn, response=ConflictOut)
    api.add("POST", "/enrollment-codes", create_code, summary="Make a one-time enrollment code", tag="Nodes",
            roles=ADMIN, body=CodeIn, response=CodeOut, status=201)
    api.add("GET", "/enrollment-codes", list_codes, summary="Enrollment codes and the nodes they enrolled",
            tag="Nodes", roles=STAFF, response=list[EnrollmentOut], cacheable=False,
            description="Newest first: open, used (with the node id), expired, or dead (no attempts left). "
                        "The secret part of a code is shown only once, when it is made.")
    api.add("GET", "/node-sync", node_sync, summary="What each enrolled node last synced", tag="Nodes", roles=ADMIN,
            response=list[NodeSync], cacheable=False)
