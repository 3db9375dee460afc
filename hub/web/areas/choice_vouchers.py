"""Choice vouchers (Wahlgutscheine, S5/S10) over the API: read one by code or number, list a
subscription's vouchers, redeem vouchers for one seat ticket, and a voucher's PDF.

Who may do what. A choice voucher is a bearer code (the QR on the paper): whoever holds it may
redeem it, as at the box office. So the office (staff tokens) reads and redeems by code or
number; the online shop reads and redeems by the signed code only, never by number, because a
number is short and printed on receipts and lists while the 160-symbol signed code cannot be
guessed; an agency token may do neither (vouchers are redeemed at the hub's own channels).
Listing a subscription's vouchers and their PDFs are the office's.

Views only translate HTTP to `core.subscriptions.choice_vouchers` and `voucher_redemption` (the rules
live there).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from core.base.node import this_node
from core.base.storage import transaction
from core.subscriptions import choice_vouchers as vouchers
from core.subscriptions import voucher_redemption as redeem
from core.subscriptions.voucher_print import voucher_pdf
from hub.web.api import Api, Ctx, Media, Param
from hub.web.clock import now
from hub.web.problems import ApiError

STAFF = ("admin", "office")
REDEEMERS = ("admin", "office", "shop")
PDF = "application/pdf"


class VoucherRedemptionOut(msgspec.Struct, kw_only=True):
    rule: Literal["value", "payment"]
    order_id: str
    ticket_id: str
    performance_id: str
    discount_label: str | None
    used_cents: int
    lapsed_cents: int
    redeemed_at: str


class ChoiceVoucher(msgspec.Struct, kw_only=True):
    id: str
    number: str
    subscription_id: str
    subscription_number: str | None
    product_id: str
    position: int
    value_cents: int
    tier_id: str | None
    tier_name: str | None
    valid_until: str
    state: Literal["open", "redeemed", "expired", "void"]
    offer: list[str]
    code: str | None
    redemption: VoucherRedemptionOut | None


class ChoiceVoucherList(msgspec.Struct, kw_only=True):
    items: list[ChoiceVoucher]


class RedeemedTicket(msgspec.Struct, kw_only=True):
    id: str
    performance_id: str
    seat_id: str
    zone_id: str
    section: str
    row_label: str
    label: str
    price_cents: int
    discount_label: str | None


class RedeemedVoucher(msgspec.Struct, kw_only=True):
    id: str
    number: str
    value_cents: int
    used_cents: int
    lapsed_cents: int


class VoucherRedemption(msgspec.Struct, kw_only=True):
    order_id: str
    number: str
    rule: Literal["value", "payment"]
    total_cents: int
    used_cents: int
    paid_cents: int
    payment_method: str | None
    lapsed_cents: int
    ticket: RedeemedTicket
    vouchers: list[RedeemedVoucher]


class QuotedSeat(msgspec.Struct, kw_only=True):
    zone_id: str
    section: str
    row_label: str
    label: str


class VoucherQuote(msgspec.Struct, kw_only=True):
    total_cents: int
    used_cents: int
    lapsed_cents: int
    paid_cents: int
    discount_label: str | None
    seat: QuotedSeat
    vouchers: list[RedeemedVoucher]


def _view(voucher: dict, ctx: Ctx) -> dict:
    """What a reader sees; the shop gets no code back (it sent it) and no customer."""
    used = voucher["redemption"]
    return {**{k: voucher[k] for k in ("id", "number", "subscription_id", "subscription_number", "product_id",
                                        "position", "value_cents", "tier_id", "tier_name", "valid_until", "offer")},
            "state": vouchers.state_at(voucher, now(ctx)),
            "code": voucher["code"] if ctx.token["role"] in STAFF else None,
            "redemption": {k: used[k] for k in ("rule", "order_id", "ticket_id", "performance_id", "discount_label",
                                                "used_cents", "lapsed_cents", "redeemed_at")} if used else None}


def _shop(ctx: Ctx) -> bool:
    return ctx.token["role"] == "shop"


def read_choice_voucher(ctx: Ctx):
    code, number = ctx.query.get("code"), ctx.query.get("number")
    if _shop(ctx) and number is not None:
        raise ApiError(403, "forbidden", "Forbidden", "the shop reads a voucher by its code only", field="number")
    return _view(vouchers.find(ctx.db, code=code, number=number), ctx)


def list_subscription_vouchers(ctx: Ctx):
    rows = vouchers.of_subscription(ctx.db, ctx.path("id"))
    return {"items": [_view(vouchers.with_state(ctx.db, row), ctx) for row in rows]}


def create_voucher_redemption(ctx: Ctx):
    body: redeem.RedemptionIn = ctx.body
    if body.operator is None:
        body = msgspec.structs.replace(body, operator=ctx.token["name"][:100])
    with transaction(ctx.db):
        done = redeem.redeem(ctx.db, this_node(ctx.db), body, channel="shop" if _shop(ctx) else "phone",
                             now=now(ctx), bearer_only=_shop(ctx))
    return 201, done


def quote_voucher_redemption(ctx: Ctx):
    """The redemption's checks and split, nothing stored (what the screens show before booking)."""
    return redeem.quote(ctx.db, ctx.body, now=now(ctx), bearer_only=_shop(ctx)).as_dict()


def choice_voucher_pdf(ctx: Ctx):
    voucher = vouchers.with_state(ctx.db, vouchers.get(ctx.db, ctx.path("id")))
    ctx.response_headers["Content-Disposition"] = f'attachment; filename="wahlgutschein-{voucher["number"]}.pdf"'
    return Media(voucher_pdf(ctx.db, voucher), PDF)


def register(api: Api) -> None:
    """Installs the choice-voucher operations."""
    tag = "Choice vouchers"
    api.add("GET", "/choice-vouchers", read_choice_voucher, summary="Read a choice voucher by code or number",
            tag=tag, roles=REDEEMERS, response=ChoiceVoucher, cacheable=False,
            query=[Param("code", "str", "the signed code as scanned (the QR's text)", max_length=200),
                   Param("number", "str", "the voucher number (office only)", max_length=40)],
            description="State (open, redeemed, expired, void: its subscription cancelled), value, offer "
                        "(performance ids) and the discount tier it keeps. A forged or malformed code is 422. "
                        "The shop reads by code only (a bearer code) and gets no code back.")
    api.add("GET", "/subscriptions/{id}/choice-vouchers", list_subscription_vouchers,
            summary="A voucher subscription's choice vouchers", tag=tag, roles=STAFF, response=ChoiceVoucherList,
            cacheable=False)
    api.add("POST", "/voucher-redemptions", create_voucher_redemption,
            summary="Redeem choice vouchers for one seat ticket", tag=tag, roles=REDEEMERS,
            body=redeem.RedemptionIn, response=VoucherRedemption, status=201,
            description="`rule` `value` (default): the ticket keeps the vouchers' discount type; dearer than "
                        "their value: the rest is paid (`payment_method`); cheaper: the difference lapses "
                        "(`lapsed_cents`, never paid out). `payment`: the vouchers are only a means of payment "
                        "for an ordinary ticket at its normal price. Refused (nothing stored): a voucher outside "
                        "its offer, expired, used, of a cancelled subscription, forged, named twice or not "
                        "needed. The shop redeems by code only and pays a rest `online`.")
    api.add("POST", "/voucher-redemptions/quote", quote_voucher_redemption,
            summary="Check a redemption and show its split, storing nothing", tag=tag, roles=REDEEMERS,
            body=redeem.RedemptionIn, response=VoucherQuote,
            description="The same checks and refusals as `POST /voucher-redemptions`, and the split it would "
                        "book: the ticket's price (`total_cents`), per voucher the value used and lapsing, and "
                        "the rest to pay (`paid_cents`). Nothing is stored or held: the seat may be gone when "
                        "the redemption comes.")
    api.add("GET", "/choice-vouchers/{id}/pdf", choice_voucher_pdf, summary="A choice voucher as PDF (with QR)",
            tag=tag, roles=STAFF, also_media=(PDF,))
