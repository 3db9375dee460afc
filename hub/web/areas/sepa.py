"""SEPA direct debit over the API (S12, B4): the creditor account of an organizer, mandates
(create, read, list per customer, amend, cancel), debits (create from an order's open SEPA
payment, list, mark collected or returned) and SEPA runs (preview, export, the file, list).

Office and admin tokens only: IBANs are customer data, and a run moves money. Views only
translate HTTP to `core.payments.mandates`, `debits` and `sepa` (the rules live there).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

from core.base.clock import utcnow
from core.base.node import this_node
from core.catalog.common import Body, Id, check_when
from core.payments import debits, mandates, sepa
from hub.web.api import Api, Ctx, Media, Param

STAFF = ("admin", "office")
XML = "application/xml"
PAGE = [Param("limit", "int", "page size (default 100)", minimum=1, maximum=500),
        Param("offset", "int", "records to skip", minimum=0, maximum=10_000_000)]


class CreditorAccount(msgspec.Struct, kw_only=True):
    organizer_id: str
    iban: str
    bic: str | None
    prenotification_days: int
    updated_at: str


class Mandate(msgspec.Struct, kw_only=True):
    id: str
    organizer_id: str
    customer_id: str
    reference: str
    kind: Literal["recurring", "oneoff"]
    sequence: Literal["FRST", "RCUR", "OOFF"]
    debtor_name: str
    iban: str
    bic: str | None
    signed_on: str
    street: str | None
    postcode: str | None
    town: str | None
    country: str | None
    amendment: Literal["account", "agent"] | None
    amended_from_iban: str | None
    state: Literal["active", "used", "cancelled"]
    cancelled_at: str | None
    cancel_reason: str | None
    created_at: str
    updated_at: str
    last_presented_on: str | None  # collection date of the newest debit the bank was given
    expires_on: str  # 36 months after that (or after the signature): no debit collects later
    expired: bool


class MandateList(msgspec.Struct, kw_only=True):
    items: list[Mandate]


class Debit(msgspec.Struct, kw_only=True):
    id: str
    payment_id: str
    order_id: str
    mandate_id: str
    amount_cents: int
    due_on: str
    prenotified_on: str
    end_to_end_id: str
    remittance: str
    state: Literal["due", "submitted", "collected", "returned", "cancelled"]
    run_id: str | None
    sequence: str | None
    collection_date: str | None
    iban: str | None
    amendment: str | None
    amended_from_iban: str | None
    collected_at: str | None
    return_reason: str | None
    return_fee_cents: int | None
    returned_at: str | None
    created_at: str
    cancelled_at: str | None = None  # a due debit a bank transfer made unnecessary
    cancel_reason: str | None = None


class DebitList(msgspec.Struct, kw_only=True):
    items: list[Debit]


class Batch(msgspec.Struct, kw_only=True):
    sequence: Literal["FRST", "RCUR", "OOFF"]
    collection_date: str
    debits: int
    total_cents: int
    debit_ids: list[str]


class Held(msgspec.Struct, kw_only=True):
    debit_id: str
    end_to_end_id: str
    reason: str
    reason_de: str


class RunPreview(msgspec.Struct, kw_only=True):
    organizer_id: str
    debits: int
    total_cents: int
    batches: list[Batch]
    held: list[Held]


class Run(msgspec.Struct, kw_only=True):
    id: str
    organizer_id: str
    message_id: str
    debits: int
    total_cents: int
    sha256: str
    created_at: str


class RunExported(Run, kw_only=True):
    held: list[Held]


class RunList(msgspec.Struct, kw_only=True):
    items: list[Run]


class RunIn(Body, kw_only=True):
    organizer_id: Id
    collection_date: dt.date | None = None


def _day(ctx: Ctx, name: str) -> dt.date | None:
    raw = ctx.query.get(name)
    if raw is None:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        from hub.web.problems import ApiError

        raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                       f"{name} must be a date YYYY-MM-DD, not {raw!r}", field=name) from None
    check_when(day, name)
    return day


def put_creditor_account(ctx: Ctx):
    return mandates.set_creditor_account(ctx.db, ctx.path("id"), ctx.body, utcnow())


def read_creditor_account(ctx: Ctx):
    return mandates.creditor_account(ctx.db, ctx.path("id"))


def _mandate(ctx: Ctx, row: dict) -> dict:
    """A mandate as the API shows it: with its expiry (36 months unused) as of today."""
    return mandates.with_expiry(ctx.db, row, utcnow().date())


def create_mandate(ctx: Ctx):
    return 201, _mandate(ctx, mandates.create(ctx.db, ctx.body, utcnow()))


def read_mandate(ctx: Ctx):
    return _mandate(ctx, mandates.get(ctx.db, ctx.path("id")))


def list_mandates(ctx: Ctx):
    return {"items": [_mandate(ctx, m) for m in mandates.of_customer(ctx.db, ctx.query["customer_id"])]}


def amend_mandate(ctx: Ctx):
    return _mandate(ctx, mandates.amend(ctx.db, ctx.path("id"), ctx.body, utcnow()))


def cancel_mandate(ctx: Ctx):
    body: mandates.CancelIn = ctx.body
    return _mandate(ctx, mandates.cancel(ctx.db, ctx.path("id"), body.reason, utcnow()))


def create_debit(ctx: Ctx):
    return 201, debits.create_from_order(ctx.db, ctx.body, utcnow())


def list_debits(ctx: Ctx):
    return {"items": debits.listed(ctx.db, state=ctx.query.get("state"), order_id=ctx.query.get("order_id"),
                                   run_id=ctx.query.get("run_id"), limit=ctx.query.get("limit", 100),
                                   offset=ctx.query.get("offset", 0))}


def collect_debit(ctx: Ctx):
    return debits.mark_collected(ctx.db, ctx.path("id"), utcnow())


def return_debit(ctx: Ctx):
    return debits.mark_returned(ctx.db, ctx.path("id"), ctx.body, this_node(ctx.db)["id"], utcnow())


def preview_sepa_run(ctx: Ctx):
    return sepa.plan(ctx.db, ctx.query["organizer_id"], utcnow().date(),
                     collection_date=_day(ctx, "collection_date")).as_dict()


def create_sepa_run(ctx: Ctx):
    body: RunIn = ctx.body
    if body.collection_date is not None:
        check_when(body.collection_date, "collection_date")
    return 201, sepa.export(ctx.db, body.organizer_id, utcnow(), collection_date=body.collection_date)


def list_sepa_runs(ctx: Ctx):
    return {"items": sepa.runs(ctx.db, ctx.query.get("organizer_id"), ctx.query.get("limit", 100),
                               ctx.query.get("offset", 0))}


def read_sepa_run(ctx: Ctx):
    return sepa.run(ctx.db, ctx.path("id"))


def sepa_run_file(ctx: Ctx):
    run = sepa.run(ctx.db, ctx.path("id"))
    ctx.response_headers["Content-Disposition"] = f'attachment; filename="{run["message_id"]}.xml"'
    return Media(sepa.run_file(ctx.db, run["id"]), XML)


def register(api: Api) -> None:
    """Installs the SEPA direct-debit operations."""
    tag = "SEPA direct debit"
    organizer = Param("organizer_id", "uuid", "the creditor (organizer)", required=True)
    api.add("PUT", "/organizers/{id}/sepa-account", put_creditor_account, summary="Set an organizer's SEPA "
            "creditor account", tag=tag, roles=STAFF, body=mandates.CreditorAccountIn, response=CreditorAccount,
            description="The account debits are collected into (a SEPA IBAN; BIC optional) and the "
                        "pre-notification lead time its mandates agree (`prenotification_days`, 1 to 30, default "
                        "14): invoices announce a debit that many days ahead and the export keeps it. The "
                        "creditor identifier is the organizer's `sepa_creditor_id`.")
    api.add("GET", "/organizers/{id}/sepa-account", read_creditor_account, summary="Read an organizer's SEPA "
            "creditor account", tag=tag, roles=STAFF, response=CreditorAccount, cacheable=False)
    api.add("POST", "/sepa-mandates", create_mandate, summary="Record a SEPA mandate", tag=tag, roles=STAFF,
            body=mandates.MandateIn, response=Mandate, status=201,
            description="Refused (422, nothing stored): an IBAN with wrong check digits, a failing national "
                        "account check, from outside SEPA or of an unknown bank; a reference outside the SEPA "
                        "character set or over 35 characters; a signature date in the future. 409: the "
                        "reference is taken for this creditor. A recurring mandate's first debit goes FRST, "
                        "later ones RCUR; a one-off mandate's one debit OOFF.")
    api.add("GET", "/sepa-mandates", list_mandates, summary="A customer's SEPA mandates", tag=tag, roles=STAFF,
            response=MandateList, cacheable=False,
            query=[Param("customer_id", "uuid", "the customer", required=True)])
    api.add("GET", "/sepa-mandates/{id}", read_mandate, summary="Read a SEPA mandate", tag=tag, roles=STAFF,
            response=Mandate, cacheable=False)
    api.add("POST", "/sepa-mandates/{id}/amend", amend_mandate, summary="Change a mandate's account", tag=tag,
            roles=STAFF, body=mandates.AmendIn, response=Mandate,
            description="The reference stays. Once the mandate was debited, the next debit carries the "
                        "amendment: the old IBAN (same bank) or SMNDA (another bank, and that debit goes FRST).")
    api.add("POST", "/sepa-mandates/{id}/cancel", cancel_mandate, summary="Cancel a SEPA mandate", tag=tag,
            roles=STAFF, body=mandates.CancelIn, response=Mandate)
    api.add("POST", "/sepa-debits", create_debit, summary="Create a SEPA debit from an order's open SEPA payment",
            tag=tag, roles=STAFF, body=debits.DebitIn, response=Debit, status=201,
            description="The amount is the order's pending SEPA payment row's. The mandate must be the order "
                        "customer's and active (default: the customer's only active mandate). `prenotified_on` "
                        "is the day the customer was told of the debit: the export keeps the lead time from it.")
    api.add("GET", "/sepa-debits", list_debits, summary="List SEPA debits", tag=tag, roles=STAFF,
            response=DebitList, cacheable=False,
            query=[Param("state", "str", "due, submitted, collected, returned or cancelled", max_length=10),
                   Param("order_id", "uuid", "debits of one order"),
                   Param("run_id", "uuid", "debits of one SEPA run"), *PAGE])
    api.add("POST", "/sepa-debits/{id}/collected", collect_debit, summary="Mark a submitted debit collected",
            tag=tag, roles=STAFF, response=Debit,
            description="The bank credited it: its payment row is paid.")
    api.add("POST", "/sepa-debits/{id}/return", return_debit, summary="Record a returned debit "
            "(Rücklastschrift)", tag=tag, roles=STAFF, body=debits.ReturnIn, response=Debit,
            description="With the ISO return reason (AM04, MD06, ...) and the bank's fee passed on: the "
                        "payment row is open (pending) again, the fee an open row of its own. AC04, AC06, MD01 "
                        "and MD07 also cancel the mandate.")
    api.add("GET", "/sepa-runs/preview", preview_sepa_run, summary="Preview the next SEPA run", tag=tag,
            roles=STAFF, response=RunPreview, cacheable=False,
            query=[organizer, Param("collection_date", "str", "collect all on this TARGET day (YYYY-MM-DD)",
                                    max_length=10)],
            description="The batches (per sequence type and collection date) a run would write now, and the "
                        "debits held back with the reason in English and German (lead time, mandate cancelled "
                        "or expired after 36 months unused, address). Stores nothing.")
    api.add("POST", "/sepa-runs", create_sepa_run, summary="Export a SEPA run (pain.008.001.08)", tag=tag,
            roles=STAFF, body=RunIn, response=RunExported, status=201,
            description="Writes the XSD-validated file of the previewed debits and marks them submitted, in one "
                        "transaction. 409 if nothing is due. Download it from `/sepa-runs/{id}/file`.")
    api.add("GET", "/sepa-runs", list_sepa_runs, summary="List SEPA runs", tag=tag, roles=STAFF,
            response=RunList, cacheable=False,
            query=[Param("organizer_id", "uuid", "runs of one organizer"), *PAGE])
    api.add("GET", "/sepa-runs/{id}", read_sepa_run, summary="Read a SEPA run", tag=tag, roles=STAFF,
            response=Run, cacheable=False)
    api.add("GET", "/sepa-runs/{id}/file", sepa_run_file, summary="Download a SEPA run's pain.008 file", tag=tag,
            roles=STAFF, also_media=(XML,))
