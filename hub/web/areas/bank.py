"""Bank statements over the API (B6): upload a camt.053 file, list statements, the unmatched
entries the office clears by hand (assign a credit to an order, or dismiss with a note).

Office and admin tokens only. Views only translate HTTP to `core.payments.bank` (the matching
rules live there; the file is read by `core.payments.camt` as hostile input).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from core.base.clock import utcnow
from core.base.node import this_node
from core.payments import bank
from hub.web.api import Api, Ctx, Param

STAFF = ("admin", "office")
XML = "application/xml"
PAGE = [Param("limit", "int", "page size (default 100)", minimum=1, maximum=500),
        Param("offset", "int", "records to skip", minimum=0, maximum=10_000_000)]


class Overpaid(msgspec.Struct, kw_only=True):
    entry_id: str
    order_id: str
    note: str | None


class Imported(msgspec.Struct, kw_only=True):
    statement_id: str | None
    duplicate: bool
    account_iban: str
    version: str
    transactions: int
    new: int
    known: int
    skipped: int
    matched: int
    returned: int
    unmatched: int
    overpaid: list[Overpaid]  # credits whose order is overpaid: a SEPA debit already submitted collects too
    debits_cancelled: int  # due SEPA debits a transfer paid instead (cancelled)
    debits_lowered: int  # due SEPA debits a transfer paid in part (lowered to what stays open)


class Statement(msgspec.Struct, kw_only=True):
    id: str
    message_id: str
    statement_id: str
    account_iban: str
    version: str
    created_at: str | None
    entries: int
    sha256: str
    operator: str | None
    imported_at: str
    unmatched: int


class StatementList(msgspec.Struct, kw_only=True):
    items: list[Statement]


class Entry(msgspec.Struct, kw_only=True):
    id: str
    statement_id: str
    account_iban: str
    reference: str
    direction: Literal["credit", "debit"]
    amount_cents: int
    currency: str
    booked_on: str
    value_on: str | None
    reversal: bool
    end_to_end_id: str | None
    remittance: str
    party_name: str | None
    party_iban: str | None
    bank_code: str | None
    return_reason: str | None
    fee_cents: int
    state: Literal["matched", "returned", "unmatched", "assigned", "dismissed"]
    rule: str | None
    order_id: str | None
    invoice_id: str | None
    debit_id: str | None
    payment_id: str | None
    note: str | None
    operator: str | None
    resolved_at: str | None
    created_at: str


class EntryList(msgspec.Struct, kw_only=True):
    items: list[Entry]


def _operator(ctx: Ctx) -> str | None:
    return ctx.token["name"][:100] if ctx.token else None


def import_statement(ctx: Ctx):
    raw = ctx.body.encode("utf-8")
    done = bank.import_statement(ctx.db, raw, this_node(ctx.db)["id"], utcnow(), operator=_operator(ctx))
    return (200 if done["duplicate"] else 201), done


def list_statements(ctx: Ctx):
    return {"items": bank.statements(ctx.db, ctx.query.get("limit", 100), ctx.query.get("offset", 0))}


def list_entries(ctx: Ctx):
    return {"items": bank.entries(ctx.db, state=ctx.query.get("state"), statement_id=ctx.query.get("statement_id"),
                                  limit=ctx.query.get("limit", 100), offset=ctx.query.get("offset", 0))}


def read_entry(ctx: Ctx):
    return bank.get(ctx.db, ctx.path("id"))


def assign_entry(ctx: Ctx):
    return bank.assign(ctx.db, ctx.path("id"), ctx.body, this_node(ctx.db)["id"], utcnow(), operator=_operator(ctx))


def dismiss_entry(ctx: Ctx):
    return bank.dismiss(ctx.db, ctx.path("id"), ctx.body, utcnow(), operator=_operator(ctx))


def take_back_entry(ctx: Ctx):
    return bank.take_back(ctx.db, ctx.path("id"), ctx.body, utcnow(), operator=_operator(ctx))


def register(api: Api) -> None:
    """Installs the bank statement operations."""
    tag = "Bank statements"
    api.add("POST", "/bank-statements", import_statement, summary="Import a camt.053 bank statement", tag=tag,
            roles=STAFF, body=str, body_media=XML, response=Imported, status=201,
            description="The camt.053 file (001.02 to 001.13, UTF-8) as the body. Each booked transaction is "
                        "stored once (by the account and the bank's reference) and matched: credits by "
                        "Kassenzeichen, invoice number, the end-to-end id of a SEPA debit (collected) or a unique "
                        "open amount; debits carrying one of our end-to-end ids are returns. 201 with what "
                        "happened; 200 with `duplicate: true` when the file brings nothing new. A file that is "
                        "not camt.053 (malformed, a DOCTYPE, another namespace, an amount with three decimals) is "
                        "422 and stores nothing.")
    api.add("GET", "/bank-statements", list_statements, summary="List imported bank statements", tag=tag,
            roles=STAFF, response=StatementList, cacheable=False, query=PAGE)
    api.add("GET", "/bank-entries", list_entries, summary="List bank entries (e.g. the unmatched ones)", tag=tag,
            roles=STAFF, response=EntryList, cacheable=False,
            query=[Param("state", "str", "matched, returned, unmatched, assigned or dismissed", max_length=10),
                   Param("statement_id", "uuid", "entries of one statement"), *PAGE])
    api.add("GET", "/bank-entries/{id}", read_entry, summary="Read a bank entry", tag=tag, roles=STAFF,
            response=Entry, cacheable=False)
    api.add("POST", "/bank-entries/{id}/assign", assign_entry, summary="Assign an unmatched credit to an order",
            tag=tag, roles=STAFF, body=bank.AssignIn, response=Entry,
            description="Recorded as a transfer payment of the order (settling its pending rows), as a match "
                        "would. 409 if the entry is not an unmatched EUR credit.")
    api.add("POST", "/bank-entries/{id}/dismiss", dismiss_entry, summary="Dismiss an unmatched bank entry",
            tag=tag, roles=STAFF, body=bank.DismissIn, response=Entry,
            description="Set aside with a note (a bank fee, a private transfer): nothing is booked.")
    api.add("POST", "/bank-entries/{id}/take-back", take_back_entry, summary="Take back a wrong match of a credit",
            tag=tag, roles=STAFF, body=bank.TakeBackIn, response=Entry,
            description="A matched or assigned credit goes back to the unmatched list: the payment rows it "
                        "wrote are restored as they were (a SEPA debit it cancelled is due again; a debit it "
                        "collected is submitted again), so the order is open again. 409 for any other entry, "
                        "or when the order's payment rows changed since the match (correct those by hand).")
