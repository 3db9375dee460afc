"""Open items (Offene Posten) and the DATEV export (S11, accounting export). Registered from
hub/web/routes.py; `[datev]` of hub.toml is declared here (`SECTION`, read in hub/app.py).

Views only translate HTTP: the payment state and the open items come from
core/payments/states.py, the DATEV batch from core/payments/datev.py.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

import msgspec

from core.base.clock import LOCAL_TZ, utcnow
from core.payments import datev, states
from hub.settings import Section, context
from hub.web.api import Api, Ctx, Media, Param
from hub.web.problems import ApiError

STAFF = ("admin", "office")
CSV = "text/csv"
DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
SECTION = Section("datev", datev.settings_from_dict, datev.DatevConfigError)
PAGE = [Param("limit", "int", "page size (default 100)", minimum=1, maximum=1000),
        Param("offset", "int", "items to skip", minimum=0, maximum=10_000_000)]

PaymentStateName = Literal["open", "partly_paid", "paid", "overpaid", "refunded"]


class PaymentState(msgspec.Struct, kw_only=True):
    """An order's payment state from its payment rows (core/payments/states.py)."""

    state: PaymentStateName
    total_cents: int
    credited_cents: int  # what its cancelled lines credit: it owes that much less
    paid_cents: int
    refunded_cents: int
    pending_cents: int
    refund_due_cents: int  # refunds still to pay out (a pending refund: the order is overpaid until then)
    open_cents: int
    method: str | None
    due_date: str | None
    days_overdue: int


class OpenItem(msgspec.Struct, kw_only=True):
    order_id: str
    order_number: str
    channel: str
    customer_id: str | None
    customer_number: str | None
    customer_name: str | None
    company: str | None
    created_at: str
    method: str | None
    state: Literal["open", "partly_paid"]
    total_cents: int
    paid_cents: int
    pending_cents: int
    open_cents: int
    due_date: str
    days_overdue: int
    invoice_number: str | None  # the live invoice the customer pays against, if any
    kassenzeichen: str | None


class OpenItemPage(msgspec.Struct, kw_only=True):
    items: list[OpenItem]
    total: int
    open_cents: int
    overdue_cents: int
    limit: int
    offset: int


def today() -> dt.date:
    return utcnow().astimezone(LOCAL_TZ).date()


def payment_state(ctx: Ctx, order_id: str) -> dict:
    """The payment state of an order, for the order view (404 for an unknown order)."""
    return states.state_of_order(ctx.db, order_id, today())


def _page(ctx: Ctx, items: list[dict]) -> dict:
    limit, offset = ctx.query.get("limit", 100), ctx.query.get("offset", 0)
    return {"items": items[offset:offset + limit], "total": len(items),
            "open_cents": sum(i["open_cents"] for i in items),
            "overdue_cents": sum(i["open_cents"] for i in items if i["days_overdue"] > 0),
            "limit": limit, "offset": offset}


def list_open_items(ctx: Ctx):
    """Every order not fully paid, oldest due date first (optionally of one customer)."""
    return _page(ctx, states.open_items(ctx.db, today(), customer_id=ctx.query.get("customer_id")))


def list_customer_open_items(ctx: Ctx):
    return _page(ctx, states.open_items_of_customer(ctx.db, ctx.path("id"), today()))


def get_payment_state(ctx: Ctx):
    return payment_state(ctx, ctx.path("id"))


def _day(ctx: Ctx, name: str) -> dt.date:
    raw = ctx.query[name]
    try:
        if not DAY.fullmatch(raw):
            raise ValueError(raw)
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                       f"{name} must be a date YYYY-MM-DD, not {raw!r}", field=name) from None


def export_datev(ctx: Ctx):
    """The DATEV Buchungsstapel of the payments from `from` to `to`, as a file download."""
    try:
        config = context(ctx.app).section(SECTION)
    except datev.DatevConfigError as exc:
        raise ApiError(409, "datev-not-configured", "DATEV settings unusable", str(exc)) from None
    start, end = _day(ctx, "from"), _day(ctx, "to")
    body = datev.export(ctx.db, config, start, end, utcnow(), exported_by=ctx.token["name"] if ctx.token else "")
    ctx.response_headers["Content-Disposition"] = f'attachment; filename="{datev.file_name(start, end)}"'
    return Media(body, f"{CSV}; charset=windows-1252")


def register(api: Api) -> None:
    """Installs the open items, the order payment state and the DATEV export."""
    tag = "Accounting"
    api.add("GET", "/open-items", list_open_items, summary="List open items", tag=tag, roles=STAFF,
            response=OpenItemPage, cacheable=False,
            query=PAGE + [Param("customer_id", "uuid", "only the open items of this customer")],
            description="Offene Posten: every order not fully paid (state open or partly_paid), oldest due "
                        "date first, with what is open and the days overdue. The due date is the live invoice's "
                        "(its number and Kassenzeichen are given), else the order day plus the payment term "
                        "of its method (transfer and SEPA 14 days, the rest at once).")
    api.add("GET", "/customers/{id}/open-items", list_customer_open_items, summary="List a customer's open items",
            tag=tag, roles=STAFF, response=OpenItemPage, cacheable=False, query=PAGE)
    api.add("GET", "/orders/{id}/payment-state", get_payment_state, summary="Read an order's payment state",
            tag=tag, roles=STAFF, response=PaymentState, cacheable=False,
            description="open, partly_paid, paid, overpaid or refunded, from the order's payment rows.")
    api.add("GET", "/exports/datev", export_datev, summary="Download a DATEV Buchungsstapel", tag=tag,
            roles=STAFF, also_media=(CSV,), cacheable=False,
            query=[Param("from", "str", "first day (YYYY-MM-DD)", max_length=10, required=True),
                   Param("to", "str", "last day (YYYY-MM-DD)", max_length=10, required=True)],
            description="DATEV-Format EXTF (format version 13, category 21) of the paid payment rows of the "
                        "range (days at the venues, within one fiscal year): Windows-1252, CRLF, decimal comma. "
                        "Accounts and the tax advisor's numbers come from hub.toml [datev]; without the "
                        "consultant and client numbers the answer is 409.")
