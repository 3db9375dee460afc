"""The season rollover over the API (S15): start a run (or a dry run), read its progress and result,
confirm it for all or for named subscribers.

Office and admin tokens only (the roles that sell and change subscriptions). Views only translate
HTTP to `core.subscriptions.rollover_run` and `hub.services.rollover_confirm`; the long steps run
in a thread of their own (`hub.services.rollover_jobs`), so POST answers 202 at once and the
caller polls GET /rollover-runs/{id} (`total`, `done`, `state`, `running`). A dry run is read
only and answers its result (200), also computed off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base.clock import utcnow
from core.base.node import this_node
from core.cards import cards
from core.catalog.common import Body, Id
from core.subscriptions import rollover_run
from core.subscriptions.rollover_map import MappingIn, ProductPairIn
from hub.services import connections, rollover_confirm, rollover_jobs
from hub.settings import context
from hub.web.api import Api, Ctx

STAFF = ("admin", "office")
Moment = Annotated[dt.datetime, Meta(tz=True)]
CustomerNumber = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z-]+$")]


class RolloverIn(Body, kw_only=True):
    """A rollover of one season into the next; `products` overrides the default mapping (same
    name, else same kind and position), `to_product_id` null: that product has no successor."""

    from_season_id: Id
    to_season_id: Id
    products: Annotated[list[ProductPairIn], Meta(max_length=500)] = []
    renewal_until: Moment | None = None
    cancel_deadline: Moment | None = None
    dry_run: bool = False


class ConfirmIn(Body, kw_only=True):
    """Confirm the held seats of these customers (by number), or of all (empty)."""

    customer_numbers: Annotated[list[CustomerNumber], Meta(max_length=500)] = []


class RolloverListed(msgspec.Struct, kw_only=True):
    subscription_id: str
    number: str
    customer: str
    detail: str


class RolloverCounts(msgspec.Struct, kw_only=True):
    kept: int
    moved: int
    paused: int
    listed: int
    left_out: int


class RolloverStates(msgspec.Struct, kw_only=True):
    held: int
    confirmed: int
    open: int
    failed: int


class RolloverRun(msgspec.Struct, kw_only=True):
    id: str
    from_season_id: str
    to_season_id: str
    renewal_until: str
    cancel_deadline: str | None
    state: Literal["planning", "held", "confirming", "done"]
    total: int
    done: int
    error: str | None
    created_at: str
    updated_at: str


class RolloverResult(msgspec.Struct, kw_only=True):
    run: RolloverRun | None
    dry_run: bool
    running: bool = False
    counts: RolloverCounts
    listed: dict[str, list[RolloverListed]]
    states: RolloverStates | None = None


class RolloverRunList(msgspec.Struct, kw_only=True):
    items: list[RolloverRun]


def _answer(db, run_id: str) -> dict:
    out = rollover_run.result(db, run_id)
    return {**out, "run": {k: v for k, v in out["run"].items() if k != "mapping"},
            "running": rollover_jobs.running(run_id, db)}


async def _dry_run(open_db: connections.Opener, body: RolloverIn, mapping: MappingIn) -> tuple[int, dict]:
    """The dry run's result, computed in a thread with its own connection (it may read for seconds)."""

    def work() -> dict:
        db = open_db()
        try:
            out = rollover_run.run(db, body.from_season_id, body.to_season_id, utcnow(), mapping=mapping,
                                   renewal_until=body.renewal_until, cancel_deadline=body.cancel_deadline,
                                   dry_run=True)
        finally:
            db.close()
        out.pop("items")
        if out["run"] is not None:
            out["run"] = {k: v for k, v in out["run"].items() if k != "mapping"}
        return out

    return 200, await asyncio.to_thread(work)


def start_rollover(ctx: Ctx):
    body: RolloverIn = ctx.body
    mapping = MappingIn(products=body.products)
    if body.dry_run:
        return _dry_run(connections.opener(ctx.db), body, mapping)
    _, _, run_row = rollover_run.prepare(ctx.db, body.from_season_id, body.to_season_id, utcnow(), mapping=mapping,
                                         renewal_until=body.renewal_until, cancel_deadline=body.cancel_deadline)
    rollover_jobs.start(ctx.db, run_row["id"], lambda db: rollover_run.run(
        db, body.from_season_id, body.to_season_id, utcnow(), mapping=mapping))
    return 202, _answer(ctx.db, run_row["id"])


def read_rollover(ctx: Ctx):
    return _answer(ctx.db, ctx.path("id"))


def list_rollovers(ctx: Ctx):
    return {"items": [{k: v for k, v in r.items() if k != "mapping"} for r in rollover_run.runs(ctx.db)]}


def confirm_rollover(ctx: Ctx):
    body: ConfirmIn = ctx.body
    run_id = ctx.path("id")
    current = rollover_run.get(ctx.db, run_id)
    rollover_confirm.selected(ctx.db, run_id, body.customer_numbers or None)  # unknown numbers: refused now
    rollover_confirm.check_planned(current)
    signer = cards.load_signer(ctx.db, context(ctx.app).data_dir)
    rollover_jobs.start(ctx.db, run_id, lambda db: rollover_confirm.confirm(
        db, this_node(db), signer, run_id, utcnow(), customer_numbers=body.customer_numbers or None))
    return 202, _answer(ctx.db, run_id)


def register(api: Api) -> None:
    """Installs the season rollover operations."""
    tag = "Season rollover"
    api.add("POST", "/rollover-runs", start_rollover, summary="Start (or continue) a season rollover, or a dry run",
            tag=tag, roles=STAFF, body=RolloverIn, response=RolloverResult, status=202,
            description="Plans every subscription of the old season (kept, moved, paused, listed by reason, left "
                        "out) and holds the seats until `renewal_until` (default: six weeks), in the background: "
                        "202 at once, then poll GET /rollover-runs/{id}. One run per pair of seasons; starting it "
                        "again continues it (nothing doubled). `dry_run: true` answers the result (200) and "
                        "writes nothing.")
    api.add("GET", "/rollover-runs", list_rollovers, summary="List season rollovers", tag=tag, roles=STAFF,
            response=RolloverRunList, cacheable=False)
    api.add("GET", "/rollover-runs/{id}", read_rollover, summary="A season rollover: progress and result",
            tag=tag, roles=STAFF, response=RolloverResult, cacheable=False)
    api.add("POST", "/rollover-runs/{id}/confirm", confirm_rollover,
            summary="Confirm a rollover: orders, invoices, SEPA debits, print jobs", tag=tag, roles=STAFF,
            body=ConfirmIn, response=RolloverResult, status=202,
            description="For every held subscription (or those of `customer_numbers`): one order per customer and "
                        "product, its invoice, a SEPA debit where the customer has an active recurring mandate, "
                        "and the cards' print jobs. In the background: 202 at once, then poll.")

