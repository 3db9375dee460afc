"""Office operations for annual tickets (A6-A8): phone orders, personalization on the customer's
behalf, print batches and print jobs, cash-desk operators. Registered from hub/web/routes.py.

Views only translate HTTP to `core.sales.orders`, `core.printing.print_queue`, `core.catalog.operators` and
`hub.services.print_batches`; every rule (who needs a holder, which moves are allowed) lives there. The hub
signs the cards it issues with its own node key, read from the data folder on each call.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base.clock import utcnow
from core.base.node import this_node
from core.cards import cards
from core.catalog import operators
from core.catalog.common import Body, Id
from core.catalog.resource import MAX_PAGE
from core.printing import print_queue
from core.sales import orders
from hub.services import lists, print_batches
from hub.services.print_batches import MAX_BATCH, PRINTING, BatchKind
from hub.settings import context
from hub.web import schemas
from hub.web.api import Api, Ctx, Media, Param
from hub.web.areas import accounting
from hub.web.areas.accounting import PaymentState
from hub.web.areas.cards import Card, _one_of

STAFF = ("admin", "office")
PDF = "application/pdf"
CHANNELS = ("shop", "phone", "cashdesk", "counter")
JOB_STATES = ("queued", "failed")
JOB_KINDS = ("card", "carrier", "receipt")
PAGE = [Param("limit", "int", "page size (default 50)", minimum=1, maximum=MAX_PAGE),
        Param("offset", "int", "records to skip", minimum=0, maximum=10_000_000)]


# --- shapes for the API document -----------------------------------------------------------------------


class SeatTicket(msgspec.Struct, kw_only=True):
    id: str
    performance_id: str
    seat_id: str
    zone_id: str
    status: Literal["sold", "cancelled"]


class OrderItem(msgspec.Struct, kw_only=True):
    """One line of the order ledger: an annual card, a voucher or a seat ticket."""

    id: str
    order_id: str
    position: int
    product_id: str
    product: str | None
    kind: Literal["annual", "voucher", "ticket", "subscription"]
    price_cents: int
    vat_code: str | None
    card_id: str | None
    card: Card | None
    ticket: SeatTicket | None
    cancelled: bool = False  # cancelled (POST /orders/{id}/cancellations)
    credit_cents: int | None = None  # what its cancellation credited


class Payment(msgspec.Struct, kw_only=True):
    id: str
    order_id: str
    method: Literal["cash", "card", "online", "transfer", "sepa", "none", "voucher"]
    amount_cents: int
    state: Literal["pending", "paid", "failed", "refunded"]
    reference: str | None
    given_cents: int | None
    operator: str | None
    node_id: str
    created_at: str
    cancellation_id: str | None = None  # a refund: the cancellation it pays back


class Order(msgspec.Struct, kw_only=True):
    id: str
    number: str
    node_id: str
    channel: Literal["shop", "phone", "cashdesk", "counter"]
    customer_id: str | None
    delivery: Literal["mail", "pickup", "counter"] | None
    payment_method: str | None
    payment_reference: str | None
    given_cents: int | None
    operator: str | None
    total_cents: int
    created_at: str
    items: list[OrderItem]
    payments: list[Payment]
    payment_state: PaymentState


class Operator(msgspec.Struct, kw_only=True):
    id: str
    name: str
    active: bool
    created_at: str
    updated_at: str


class PrintBatchIn(Body, kw_only=True):
    kind: BatchKind = "card"
    limit: Annotated[int, Meta(ge=1, le=MAX_BATCH)] = 200


class PrintJobError(msgspec.Struct, kw_only=True):
    job_id: str
    card_id: str
    card_number: str | None
    error: str


class PrintBatchResult(msgspec.Struct, kw_only=True):
    batch_id: str | None
    kind: BatchKind
    printer: str
    layout: str
    jobs: int
    target: str | None
    failed: int
    errors: list[PrintJobError]


class PrintBatch(msgspec.Struct, kw_only=True):
    id: str
    kind: BatchKind
    printer: str
    jobs: int
    target: str | None
    created_at: str



class PrintJob(msgspec.Struct, kw_only=True):
    id: str
    kind: Literal["card", "carrier", "receipt"]
    ref_id: str
    card_number: str | None
    card_issue: int | None
    state: Literal["queued", "printed", "failed"]
    batch_id: str | None
    attempts: int
    last_error: str | None
    created_at: str
    printed_at: str | None


class PrintJobPage(msgspec.Struct, kw_only=True):
    items: list[PrintJob]
    total: int
    limit: int
    offset: int


class RetryIn(Body, kw_only=True):
    job_ids: Annotated[list[Id], Meta(min_length=1, max_length=1000)] | None = None


class Retried(msgspec.Struct, kw_only=True):
    requeued: int


# --- orders ----------------------------------------------------------------------------------------------


def create_order(ctx: Ctx):
    """A6: staff sell by phone; every card has its holder, so the cards are issued (and queued for
    printing) at once. Without an operator the order records who sold it: the token's name."""
    body: orders.OrderIn = ctx.body
    if body.operator is None:
        body = msgspec.structs.replace(body, operator=ctx.token["name"][:100])
    signer = cards.load_signer(ctx.db, context(ctx.app).data_dir)
    placed = orders.place_order(ctx.db, this_node(ctx.db), signer, body, channel="phone", now=utcnow())
    _wake_printer(ctx)
    return 201, _order_view(ctx, placed["id"])


def list_orders(ctx: Ctx):
    _one_of(ctx, "channel", CHANNELS)
    found = lists.page(ctx, "orders", "created_at DESC, id DESC", ("channel", "customer_id"), select="id")
    return {**found, "items": [_order_view(ctx, r["id"]) for r in found["items"]]}


def get_order(ctx: Ctx):
    return _order_view(ctx, ctx.path("id"))


def _order_view(ctx: Ctx, order_id: str) -> dict:
    """The order as the ledger shows it, with its payment state (open, partly paid, paid, refunded:
    core/payments/states.py, which core/sales cannot import)."""
    view = orders.order_view(ctx.db, order_id)
    return {**view, "payment_state": accounting.payment_state(ctx, view["id"])}


def personalize_order_item(ctx: Ctx):
    """Staff fill in the holder for the customer (e.g. a shop order, the customer on the phone)."""
    signer = cards.load_signer(ctx.db, context(ctx.app).data_dir)
    card = orders.personalize_item(ctx.db, signer, ctx.path("id"), ctx.body, utcnow())
    _wake_printer(ctx)
    return 201, card


# --- printing --------------------------------------------------------------------------------------------


def _wake_printer(ctx: Ctx) -> None:
    print_batches.wake_worker(ctx.app)


async def create_print_batch(ctx: Ctx):
    """201 with the batch when the printer took one; 200 when nothing was printed (no queued jobs, or
    the printer failed: `errors` says why, the jobs are failed and wait for a retry)."""
    body: PrintBatchIn = ctx.body
    summary = await ctx.app[PRINTING].batch(body.kind, body.limit)
    return (201 if summary["batch_id"] else 200), summary


def list_print_batches(ctx: Ctx):
    return lists.page(ctx, "print_batches", "created_at DESC, id DESC")


def print_batch_pdf(ctx: Ctx):
    """The batch's PDF as the hub kept it (a copy per batch in its data folder), as a download."""
    data_dir = context(ctx.app).data_dir
    pdf = print_batches.batch_pdf(ctx.db, data_dir, ctx.path("id"))
    name = print_batches.kept_pdf_path(data_dir, ctx.path("id")).stem  # the parsed UUID, not the text given
    ctx.response_headers["Content-Disposition"] = f'attachment; filename="tessera-print-{name}.pdf"'
    return Media(pdf, PDF)


def list_print_jobs(ctx: Ctx):
    """Jobs not printed yet (queued or failed, with the printer's error), oldest first."""
    _one_of(ctx, "state", JOB_STATES)
    _one_of(ctx, "kind", JOB_KINDS)
    return lists.page(ctx, "print_jobs j LEFT JOIN cards c ON c.id = j.ref_id", "j.created_at, j.id", ("state", "kind"),
                      select="j.*, c.number AS card_number", where=("j.state <> 'printed'",), column_prefix="j.")


def retry_print_jobs(ctx: Ctx):
    """Failed jobs (all, or the given ones) go back into the queue, e.g. after the printer is fixed."""
    body: RetryIn = ctx.body
    requeued = print_queue.retry(ctx.db, list(dict.fromkeys(body.job_ids)) if body.job_ids else None)
    if requeued:
        _wake_printer(ctx)
    return {"requeued": requeued}


# --- operators -------------------------------------------------------------------------------------------


def _operator(row: dict) -> dict:
    """`core.catalog.operators.public` already leaves out the PIN hash; active as a JSON boolean."""
    return {**row, "active": bool(row["active"])}


def list_operators(ctx: Ctx):
    return [_operator(r) for r in operators.listed(ctx.db, active_only=ctx.query.get("active", False))]


def create_operator(ctx: Ctx):
    return 201, _operator(operators.create(ctx.db, ctx.body, utcnow()))


def change_operator(ctx: Ctx):
    """A new name, PIN (optional: left out, the PIN stays) or active flag. A name another operator
    has is a 409 (`operators.update`)."""
    return _operator(operators.update(ctx.db, ctx.path("id"), ctx.body, utcnow()))


def register(api: Api) -> None:
    """Installs the office's order, printing and operator operations."""
    tag = "Annual-ticket orders"
    api.add("POST", "/orders", create_order, summary="Place a phone order", tag=tag, roles=STAFF,
            body=orders.OrderIn, response=Order, status=201,
            description="A6: every card needs its holder; delivery `mail` or `pickup`; a customer is required. "
                        "The cards are issued and signed by the hub at once and queued for printing (a carrier "
                        "sheet too for mail). Products must be on sale through the `phone` channel (else 409).")
    api.add("GET", "/orders", list_orders, summary="List orders", tag=tag, roles=STAFF, response=schemas.page_of(Order),
            cacheable=False,
            query=PAGE + [Param("channel", "str", "only orders of this channel: " + ", ".join(CHANNELS),
                                max_length=20),
                          Param("customer_id", "uuid", "only orders of this customer")])
    api.add("GET", "/orders/{id}", get_order, summary="Read an order with its items and cards", tag=tag,
            roles=STAFF, response=Order, cacheable=False)
    api.add("POST", "/order-items/{id}/personalize", personalize_order_item,
            summary="Personalize an order item for the customer", tag=tag, roles=STAFF, body=orders.HolderIn,
            response=Card, status=201,
            description="Issues the item's card (as the customer's personalization link would) and queues it "
                        "for printing. An item that has its card already is a 409.")

    tag = "Printing"
    api.add("POST", "/print-batches", create_print_batch, summary="Print queued cards or carriers as one PDF",
            tag=tag, roles=STAFF, body=PrintBatchIn, response=PrintBatchResult, status=201,
            description="Takes up to `limit` queued jobs of `kind`, renders one PDF (cards: CR80, one per page, "
                        "in hub.toml `[print] layout`; carriers: A4 with the customer's address) and sends it to "
                        "`[print] card_printer` (default: a folder printer into <data>/print-out/). 201: the "
                        "printer took it and the cards are `printed`. 200: nothing was printed - no queued jobs, "
                        "or the printer failed; `errors` give the reason and the jobs wait for a retry.")
    api.add("GET", "/print-batches", list_print_batches, summary="List print batches", tag=tag, roles=STAFF,
            response=schemas.page_of(PrintBatch), query=PAGE, cacheable=False)
    api.add("GET", "/print-batches/{id}/pdf", print_batch_pdf, summary="Download a print batch's PDF", tag=tag,
            roles=STAFF, also_media=(PDF,), cacheable=False,
            description="The PDF the batch sent to the card printer, as the hub kept it. 404 for an unknown "
                        "batch (or one made before the hub kept copies).")
    api.add("GET", "/print-jobs", list_print_jobs, summary="List print jobs not printed yet", tag=tag,
            roles=STAFF, response=PrintJobPage, cacheable=False,
            query=PAGE + [Param("state", "str", "queued or failed", max_length=20),
                          Param("kind", "str", "card, carrier or receipt", max_length=20)])
    api.add("POST", "/print-jobs/retry", retry_print_jobs, summary="Put failed print jobs back in the queue",
            tag=tag, roles=STAFF, body=RetryIn, response=Retried,
            description="All failed jobs, or only `job_ids`. Jobs that are not failed are left as they are.")

    tag = "Operators"
    api.add("GET", "/operators", list_operators, summary="List cash-desk operators", tag=tag, roles=STAFF,
            response=list[Operator], cacheable=False,
            query=[Param("active", "bool", "only active operators (true)")])
    api.add("POST", "/operators", create_operator, summary="Create a cash-desk operator", tag=tag, roles=STAFF,
            body=operators.OperatorIn, response=Operator, status=201,
            description="The PIN (4 to 8 digits) is stored as an scrypt hash and never shown again.")
    api.add("PUT", "/operators/{id}", change_operator, summary="Change a cash-desk operator", tag=tag,
            roles=STAFF, body=operators.OperatorChange, response=Operator,
            description="Name and active flag are set; the PIN only if given (left out, it stays). "
                        "`active: false` locks the operator out.")
