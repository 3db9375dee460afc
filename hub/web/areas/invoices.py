"""Invoices over the API (issue 16, S13): issue an invoice for an order's open lines, read and
list invoices (per customer, per order, the open ones), download one as PDF (the original or a
duplicate marked "Duplikat"), cancel one (the cancellation invoice), and an organizer's invoicing
settings (Kassenzeichen pattern, payment terms, the VAT code of seat tickets).

Office and admin only; the settings are the admin's. Views only translate HTTP to
`core.payments.invoices` and `core.payments.invoice_pdf` (the rules live there).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from core.base.node import this_node
from core.payments import invoice_pdf, invoices
from hub.web.api import Api, Ctx, Media, Param
from hub.web.clock import now

STAFF = ("admin", "office")
ADMIN = ("admin",)
PDF = "application/pdf"


class Issuer(msgspec.Struct, kw_only=True):
    name: str
    street: str
    postcode: str
    town: str
    country: str
    tax_number: str | None
    vat_id: str | None
    sepa_creditor_id: str | None


class Recipient(msgspec.Struct, kw_only=True):
    number: str
    salutation: str
    first_name: str
    last_name: str
    company: str
    street: str
    postcode: str
    town: str
    country: str
    email: str | None


class InvoiceLine(msgspec.Struct, kw_only=True):
    position: int
    order_line_id: str
    description: str
    gross_cents: int
    vat_code: Literal["19", "7", "exempt"]


class VatRate(msgspec.Struct, kw_only=True):
    vat_code: Literal["19", "7", "exempt"]
    rate: int
    gross_cents: int
    net_cents: int
    vat_cents: int


class PreNotification(msgspec.Struct, kw_only=True):
    creditor_id: str
    mandate_reference: str | None
    collection_on: str
    amount_cents: int


class InvoiceRef(msgspec.Struct, kw_only=True):
    id: str
    number: str
    issued_on: str


class Invoice(msgspec.Struct, kw_only=True):
    id: str
    number: str
    kind: Literal["invoice", "cancellation"]
    cancels_id: str | None
    cancels_number: str | None
    cancelled_by: InvoiceRef | None
    order_id: str
    order_number: str
    organizer_id: str
    customer_id: str
    language: Literal["de", "en"]
    issued_on: str
    due_on: str | None
    issuer: Issuer
    recipient: Recipient
    lines: list[InvoiceLine]
    vat: list[VatRate]
    total_cents: int
    paid_cents: int
    due_cents: int
    kassenzeichen: str | None
    sepa: PreNotification | None
    reason: str | None
    operator: str | None
    created_at: str


class InvoicePage(msgspec.Struct, kw_only=True):
    items: list[Invoice]
    total: int
    limit: int
    offset: int


class Invoicing(msgspec.Struct, kw_only=True):
    organizer_id: str
    kassenzeichen_pattern: str
    payment_days: int
    ticket_vat_code: Literal["19", "7", "exempt"]
    updated_at: str | None


FIELDS = tuple(Invoice.__struct_fields__)


def _out(invoice: dict) -> dict:
    return {k: invoice[k] for k in FIELDS}


def create_invoice(ctx: Ctx):
    done = invoices.issue(ctx.db, this_node(ctx.db), ctx.path("id"), ctx.body, now=now(ctx),
                          operator=ctx.token["name"][:100])
    return 201, _out(done)


def list_invoices(ctx: Ctx):
    q = ctx.query
    found = invoices.list_(ctx.db, customer_id=q.get("customer_id"), order_id=q.get("order_id"),
                           open_only=bool(q.get("open")), limit=q.get("limit", 50), offset=q.get("offset", 0))
    return {**found, "items": [_out(i) for i in found["items"]]}


def get_invoice(ctx: Ctx):
    return _out(invoices.get(ctx.db, ctx.path("id")))


def invoice_pdf_download(ctx: Ctx):
    invoice = invoices.get(ctx.db, ctx.path("id"))
    duplicate = bool(ctx.query.get("duplicate"))
    name = f"{'duplikat' if duplicate else 'rechnung'}-{invoice['number']}.pdf"
    ctx.response_headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Media(invoice_pdf.render(invoice, duplicate=duplicate), PDF)


def cancel_invoice(ctx: Ctx):
    done = invoices.cancel(ctx.db, this_node(ctx.db), ctx.path("id"), ctx.body, now=now(ctx),
                           operator=ctx.token["name"][:100])
    return 201, _out(done)


def get_invoicing(ctx: Ctx):
    return invoices.settings_of(ctx.db, ctx.path("id"))


def change_invoicing(ctx: Ctx):
    return invoices.set_settings(ctx.db, ctx.path("id"), ctx.body, now(ctx))


def register(api: Api) -> None:
    """Installs the invoice operations."""
    tag = "Invoices"
    api.add("POST", "/orders/{id}/invoices", create_invoice, summary="Issue an invoice for an order", tag=tag,
            roles=STAFF, body=invoices.InvoiceIn, response=Invoice, status=201,
            description="Bills the order's lines that are not on a live invoice yet (or the `line_ids` named): the "
                        "organizer of the lines issues it (one organizer per invoice), the order's customer "
                        "receives it. Number from the hub's gapless series (`RE-<year>-<n>`), a Kassenzeichen from "
                        "the organizer's pattern, net and VAT per rate (computed once per rate from the rate's "
                        "gross sum), payment terms, and the SEPA pre-notification where the order is debited. "
                        "Refused, nothing stored: an order without customer, lines of several organizers, a line "
                        "already invoiced, an organizer without tax number and VAT id.")
    api.add("GET", "/invoices", list_invoices, summary="List invoices", tag=tag, roles=STAFF, response=InvoicePage,
            cacheable=False,
            query=[Param("customer_id", "uuid", "only this customer's invoices"),
                   Param("order_id", "uuid", "only this order's invoices"),
                   Param("open", "bool", "only invoices not cancelled whose order is not fully paid"),
                   Param("limit", "int", "page size (default 50)", minimum=1, maximum=500),
                   Param("offset", "int", "invoices to skip", minimum=0, maximum=10_000_000)],
            description="Newest first.")
    api.add("GET", "/invoices/{id}", get_invoice, summary="Read an invoice", tag=tag, roles=STAFF, response=Invoice,
            cacheable=False)
    api.add("GET", "/invoices/{id}/pdf", invoice_pdf_download, summary="An invoice as PDF", tag=tag, roles=STAFF,
            also_media=(PDF,), query=[Param("duplicate", "bool", "a duplicate: the same invoice marked Duplikat")],
            description="German or English as the invoice was issued; printed from the stored invoice, so a "
                        "duplicate says what the original said.")
    api.add("POST", "/invoices/{id}/cancel", cancel_invoice, summary="Cancel an invoice (Stornorechnung)", tag=tag,
            roles=STAFF, body=invoices.InvoiceCancelIn, response=Invoice, status=201,
            description="Issues the cancellation invoice: its own number from the same series, naming the original, "
                        "every amount negated. Invoices are never edited or deleted. An invoice is cancelled once "
                        "(409 after); a cancellation invoice cannot be cancelled. Its lines can then be invoiced "
                        "again.")
    api.add("GET", "/organizers/{id}/invoicing", get_invoicing, summary="An organizer's invoicing settings", tag=tag,
            roles=STAFF, response=Invoicing, cacheable=False)
    api.add("PUT", "/organizers/{id}/invoicing", change_invoicing, summary="Change an organizer's invoicing settings",
            tag=tag, roles=ADMIN, body=invoices.InvoicingIn, response=Invoicing,
            description="`kassenzeichen_pattern`: fixed text (letters, digits, `. - /`, spaces) with exactly one "
                        "`{seq}` (optionally zero-padded, `{seq:06d}`) and at most one `{year}`, e.g. "
                        "`5.1100.{seq:07d}` for a municipal treasury. `payment_days`: the due date after the invoice "
                        "date. `ticket_vat_code`: the VAT code of seat tickets (the ledger has none for them).")
