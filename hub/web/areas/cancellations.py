"""Cancellations and refunds over the API (issue 16): preview and cancel lines of an order, list an
order's cancellations, the refunds to pay out and paying one out.

Office and admin only. The views translate HTTP to `core.payments.cancellations` and
`core.payments.refunds`; credits, refunds and invoices are decided there from the hub's rows,
never from the request (which names lines, a reason, a fee and how to refund, nothing more).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from core.base.node import this_node
from core.cards import cards
from core.payments import cancellations, refunds
from hub.settings import context
from hub.web.api import Api, Ctx, Param
from hub.web.areas.cards import _one_of
from hub.web.clock import now

STAFF = ("admin", "office")


class CancellationQuoteLine(msgspec.Struct, kw_only=True):
    line_id: str
    position: int
    kind: str
    product: str | None
    price_cents: int
    credit_cents: int


class RefundOut(msgspec.Struct, kw_only=True):
    method: Literal["cash", "card", "online", "transfer"]
    amount_cents: int
    reference: str | None


class CancellationQuote(msgspec.Struct, kw_only=True):
    order_id: str
    order_number: str
    fee_cents: int
    lines: list[CancellationQuoteLine]
    credit_cents: int
    released_cents: int
    refund_cents: int
    kept_cents: int
    at_bank_cents: int
    refunds: list[RefundOut]
    invoice_number: str | None


class CancelledLine(msgspec.Struct, kw_only=True):
    line_id: str
    position: int
    kind: str
    credit_cents: int
    what: dict


class RefundRow(msgspec.Struct, kw_only=True):
    id: str
    method: Literal["cash", "card", "online", "transfer"]
    amount_cents: int
    state: Literal["pending", "paid"]
    reference: str | None


class Cancellation(msgspec.Struct, kw_only=True):
    id: str
    order_id: str
    order_number: str
    reason: str
    fee_cents: int
    credit_cents: int
    refund_cents: int
    released_cents: int
    kept_cents: int
    cancellation_invoice_id: str | None
    cancellation_invoice_number: str | None
    reissued_invoice_id: str | None
    reissued_invoice_number: str | None
    operator: str | None
    created_at: str
    lines: list[CancelledLine]
    refunds: list[RefundRow]


class Refund(msgspec.Struct, kw_only=True):
    id: str
    order_id: str
    order_number: str
    method: Literal["cash", "card", "online", "transfer"]
    amount_cents: int
    state: Literal["pending", "paid"]
    reference: str | None
    cancellation_id: str
    reason: str
    created_at: str
    operator: str | None
    customer_id: str | None
    customer_number: str | None
    customer_name: str | None


class RefundPage(msgspec.Struct, kw_only=True):
    items: list[Refund]
    total: int
    limit: int
    offset: int


def quote_cancellation(ctx: Ctx):
    return cancellations.quote(ctx.db, ctx.path("id"), ctx.body, now(ctx))


def cancel_lines(ctx: Ctx):
    signer = cards.load_signer(ctx.db, context(ctx.app).data_dir)
    done = cancellations.cancel(ctx.db, signer, this_node(ctx.db), ctx.path("id"), ctx.body, now=now(ctx),
                                operator=ctx.token["name"][:100])
    return 201, done


def list_cancellations(ctx: Ctx):
    return cancellations.of_order(ctx.db, ctx.path("id"))


def list_refunds(ctx: Ctx):
    _one_of(ctx, "state", ("pending", "paid"))
    q = ctx.query
    return refunds.refunds(ctx.db, state=q.get("state"), limit=q.get("limit", 100), offset=q.get("offset", 0))


def pay_out_refund(ctx: Ctx):
    return refunds.pay_out(ctx.db, ctx.path("id"), ctx.body, node_id=this_node(ctx.db)["id"],
                           operator=ctx.token["name"][:100], now=now(ctx))


def register(api: Api) -> None:
    """Installs the cancellation and refund operations."""
    tag = "Cancellations"
    what = ("Each line's credit is its price (a card, an annual voucher, a seat ticket) or, for a subscription, the "
            "share of the performances not yet begun (a choice-voucher subscription: its unused vouchers); "
            "`fee_cents` is kept from it. Claims not yet paid are dropped first (a SEPA debit not yet exported is "
            "lowered or withdrawn); then what the order holds beyond what it owes is refunded by the method it came "
            "in (`refund_method` original; or cash or transfer), as refunds to pay out. A line on a live invoice: "
            "the invoice is cancelled (Stornorechnung) and what stays billed is invoiced again. Refused, nothing "
            "changed: a line cancelled before, an annual voucher already exchanged, a performance begun, lines on "
            "several invoices, a fee above the credit.")
    api.add("POST", "/orders/{id}/cancellations/quote", quote_cancellation, summary="Preview cancelling order lines",
            tag=tag, roles=STAFF, body=cancellations.LinesCancelIn, response=CancellationQuote, cacheable=False,
            description="What `POST /orders/{id}/cancellations` would do, nothing written. " + what)
    api.add("POST", "/orders/{id}/cancellations", cancel_lines, summary="Cancel order lines (Storno)", tag=tag,
            roles=STAFF, body=cancellations.LinesCancelIn, response=Cancellation, status=201,
            description="In one transaction: seats free again in their pool, every card of the lines revoked (gates "
                        "refuse them after their next pull), unused choice vouchers void. " + what)
    api.add("GET", "/orders/{id}/cancellations", list_cancellations, summary="An order's cancellations", tag=tag,
            roles=STAFF, response=list[Cancellation], cacheable=False)
    api.add("GET", "/refunds", list_refunds, summary="Refunds", tag=tag, roles=STAFF, response=RefundPage,
            cacheable=False,
            query=[Param("state", "str", "pending (to pay out) or paid", max_length=10),
                   Param("limit", "int", "page size (default 100)", minimum=1, maximum=500),
                   Param("offset", "int", "refunds to skip", minimum=0, maximum=10_000_000)],
            description="The ones still to pay out first, oldest first; `reference` says what to reverse (the card "
                        "or online transaction) or where to send it (the customer's IBAN).")
    api.add("POST", "/refunds/{id}/paid-out", pay_out_refund, summary="Mark a refund paid out", tag=tag,
            roles=STAFF, body=refunds.PayOutIn, response=Refund,
            description="The refund becomes paid today (so the accounting export books it today). A card or online "
                        "refund needs the terminal's or payment service's refund reference. Paid out once (409).")
