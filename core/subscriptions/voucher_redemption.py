"""Redeeming choice vouchers per ticket (S10): one seat ticket of a performance of the vouchers'
offer, by availability (no seat guarantee): at the hub from the hub's pool (office, shop), and at a
cash desk offline from the desk's own pool (`core.subscriptions.desk_redemption`), which the hub
checks again with this very `quote()` when the desk's op arrives. One code path for all three: the
pool and the channel are parameters, nothing else differs.

One service function per rule, both through `_redeem` (one transaction, all or nothing), which
books what `quote()` checks and splits (the screens show that quote before booking) with
`store()` (the ledger's rows; the hub stores a desk's redemption through it under the desk's ids):

- `redeem_by_value()` (default): the ticket keeps the vouchers' discount type (e.g.
  "Schwerbehindert", the tier the voucher was bought with) as its label. Its price is the
  zone price of the performance: the catalog prices discount tiers per subscription product
  (the voucher package was already sold at the tier's price), not per ticket, so there is no
  tier price of a ticket to take; applying the tier again would discount twice.
- `redeem_as_payment()`: the voucher is only a means of payment: the ticket is an ordinary
  ticket at its normal price, without the voucher's discount type.

Under both, `rules.split` decides: the vouchers pay up to their value, the customer pays the
rest (a payment row: cash, card, online ...), what a voucher cannot use lapses (recorded on
the redemption as `lapsed_cents`, never paid out). The ledger: an order whose total is the
ticket's price, one `ticket` line and the seat ticket, a payment row of method `voucher` per
voucher for the value it used (reference: the voucher number) and one for the rest paid; so
the payments of every order add up to its total.

Refused, with a message in English and German (`detail_de`), changing nothing: a voucher
outside its offer, expired, already used, of a cancelled subscription, forged or malformed,
named twice, or not needed at all. Never twice at the hub: the check, and the primary key
of `choice_voucher_redemptions` on the voucher id under the hub's write lock.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from msgspec import Meta

from core.base.clock import LOCAL_TZ, iso, parse_iso
from core.base.errors import Conflict, ValidationError
from core.base.ids import uuid7
from core.base.numbering import next_number
from core.base.storage import transaction
from core.catalog import pricing
from core.catalog.common import Body, Cents, Id
from core.sales import contingents, payments
from core.sales.lines import store as store_lines
from core.sales.orders import ORDER_COLUMNS, order_series
from core.sales.payments import DESK_CHANNELS, check_payment
from core.subscriptions import holds
from core.subscriptions import voucher_rules as rules
from core.subscriptions.choice_vouchers import find, state_at

Rule = Literal["value", "payment"]
Method = Literal["cash", "card", "online", "transfer", "sepa"]
Channel = Literal["phone", "shop", "cashdesk"]
MAX_VOUCHERS = 10


class VoucherRef(Body, kw_only=True):
    """A voucher as scanned (`code`) or typed (`number`): one of them."""

    code: Annotated[str, Meta(max_length=200)] | None = None
    number: Annotated[str, Meta(max_length=40)] | None = None


class RedemptionIn(Body, kw_only=True):
    """Vouchers for one seat ticket. No price field: prices come from the catalog. A payment
    method is needed only when the vouchers leave something to pay."""

    vouchers: Annotated[list[VoucherRef], Meta(min_length=1, max_length=MAX_VOUCHERS)]
    performance_id: Id
    seat_id: Id
    rule: Rule = "value"
    payment_method: Method | None = None
    payment_reference: Annotated[str, Meta(max_length=100)] | None = None
    operator: Annotated[str, Meta(max_length=100)] | None = None


class DeskRedemptionIn(RedemptionIn, kw_only=True):
    """At a cash desk the rest is paid cash (with the amount given, for the change) or card."""

    given_cents: Cents | None = None


def _when(text: str) -> str:
    return f"{parse_iso(text).astimezone(LOCAL_TZ):%d.%m.%Y %H:%M}"


def check_usable(voucher: dict, performance_id: str, now: dt.datetime) -> None:
    """One voucher may pay a ticket of *performance_id* now, or a clear refusal."""
    number, state = voucher["number"], state_at(voucher, now)
    if state == "redeemed":
        used = voucher["redemption"]
        when = _when(used["redeemed_at"]) if used else "?"
        raise Conflict(f"voucher {number} was already redeemed on {when}", field="vouchers",
                       detail_de=f"Gutschein {number} wurde bereits am {when} eingelöst")
    if state == "void":
        raise Conflict(f"voucher {number} belongs to a cancelled subscription", field="vouchers",
                       detail_de=f"Gutschein {number} gehört zu einem stornierten Abo")
    if state == "expired":
        raise Conflict(f"voucher {number} expired on {_when(voucher['valid_until'])}", field="vouchers",
                       detail_de=f"Gutschein {number} ist seit {_when(voucher['valid_until'])} abgelaufen")
    if performance_id not in voucher["offer"]:
        raise ValidationError(f"voucher {number} is not valid for this performance (not in its offer)",
                              field="performance_id",
                              detail_de=f"Gutschein {number} gilt nicht für diese Vorstellung (nicht im Angebot)")


def _vouchers(db: sqlite3.Connection, body: RedemptionIn, now: dt.datetime, bearer_only: bool) -> list[dict]:
    found = []
    for ref in body.vouchers:
        if bearer_only and ref.code is None:
            raise ValidationError("redeem a voucher online with its code (the QR on the voucher), not its number",
                                  field="vouchers", detail_de="Online bitte den Code des Gutscheins angeben")
        voucher = find(db, code=ref.code, number=ref.number)
        if any(v["id"] == voucher["id"] for v in found):
            raise ValidationError(f"voucher {voucher['number']} is named twice", field="vouchers",
                                  detail_de=f"Gutschein {voucher['number']} ist doppelt angegeben")
        check_usable(voucher, body.performance_id, now)
        found.append(voucher)
    return found


def seat_words(seat: dict) -> str:
    """A seat as people read it (section, row, seat): what refusals and conflicts name."""
    return f"{seat['section']} row {seat['row_label']} seat {seat['label']}"


def _seat(db: sqlite3.Connection, body: RedemptionIn, now: dt.datetime, pool: str = contingents.HUB) -> dict:
    """The seat, offered by the performance, in *pool* (the hub's, or a desk's own), not sold; the
    performance ahead."""
    perf = contingents.performance(db, body.performance_id)
    if parse_iso(perf["starts_at"]) <= now:
        raise Conflict("this performance has begun; a voucher is redeemed for a performance ahead",
                       field="performance_id", detail_de="Die Vorstellung hat schon begonnen")
    seat = contingents.some_seats(db, body.performance_id, [body.seat_id]).get(body.seat_id)
    if seat is None:
        raise ValidationError(f"seat {body.seat_id} is not part of this performance", field="seat_id",
                              detail_de="Diesen Platz gibt es in dieser Vorstellung nicht")
    where = seat_words(seat)
    if contingents.pool_of(db, body.performance_id, body.seat_id) != pool:
        owner, owner_de = ("the box office's", "der Theaterkasse") if pool == contingents.HUB else \
            ("this desk's", "dieser Kasse")
        raise Conflict(f"{where} is not in {owner} contingent", field="seat_id",
                       detail_de=f"{where} ist nicht im Kontingent {owner_de}")
    if db.execute("SELECT 1 FROM tickets WHERE performance_id = ? AND seat_id = ? AND status = 'sold'",
                  (body.performance_id, body.seat_id)).fetchone():
        raise Conflict(f"{where} is already sold", field="seat_id", detail_de=f"{where} ist schon verkauft")
    return seat


def _same_tier(vouchers: list[dict]) -> str | None:
    tiers = {v["tier_name"] for v in vouchers}
    if len(tiers) > 1:
        raise ValidationError("vouchers of different discount types cannot pay one ticket by value",
                              field="vouchers", detail_de="Gutscheine verschiedener Ermäßigungsarten können nicht "
                                                          "zusammen für ein Ticket eingelöst werden")
    return tiers.pop()


def value_label(db: sqlite3.Connection, vouchers: list[dict]) -> str:
    """The ticket's discount type under the value rule: the tier with the product's name (S9/S10)."""
    tier = _same_tier(vouchers)
    product = db.execute("SELECT name FROM subscription_products WHERE id = ?",
                         (vouchers[0]["product_id"],)).fetchone()["name"]
    return f"{tier} – {product}" if tier else product


def redeem_by_value(db: sqlite3.Connection, node: dict, body: RedemptionIn, *, channel: Channel,
                    now: dt.datetime, bearer_only: bool = False, pool: str = contingents.HUB) -> dict:
    """Rule `value`: the ticket in the vouchers' discount type; dearer: the customer pays the
    difference; cheaper: the difference lapses."""
    return _redeem(db, node, body, channel=channel, now=now, bearer_only=bearer_only, label=value_label, pool=pool)


def redeem_as_payment(db: sqlite3.Connection, node: dict, body: RedemptionIn, *, channel: Channel,
                      now: dt.datetime, bearer_only: bool = False, pool: str = contingents.HUB) -> dict:
    """Rule `payment`: an ordinary ticket at its normal price, the vouchers pay part or all of
    it, the rest is paid otherwise; a rest of voucher value lapses."""
    return _redeem(db, node, body, channel=channel, now=now, bearer_only=bearer_only, label=lambda db, v: None,
                   pool=pool)


RULES: dict[str, Callable[..., dict]] = {"value": redeem_by_value, "payment": redeem_as_payment}


def redeem(db: sqlite3.Connection, node: dict, body: RedemptionIn, *, channel: Channel, now: dt.datetime,
           bearer_only: bool = False, pool: str = contingents.HUB) -> dict:
    """The body's rule, from *pool* (the hub's; a cash desk passes its own, `contingents.node_pool`)."""
    return RULES[body.rule](db, node, body, channel=channel, now=now, bearer_only=bearer_only, pool=pool)


def check_rest(body: RedemptionIn, channel: str, paid: int) -> None:
    if paid == 0:
        return
    if body.payment_method is None:
        raise ValidationError(f"the vouchers leave {paid / 100:.2f} EUR to pay: give payment_method",
                              field="payment_method", detail_de=f"Es bleiben {paid / 100:.2f} EUR zu zahlen: "
                                                                "bitte die Zahlungsart angeben")
    if channel == "shop" and (body.payment_method != "online" or not (body.payment_reference or "").strip()):
        raise ValidationError("the shop pays the rest online with the payment provider's reference",
                              field="payment_method", detail_de="Im Shop wird der Rest online bezahlt")
    check_payment(channel, body.payment_method, body.payment_reference)  # a desk: cash, or card with its reference
    given = getattr(body, "given_cents", None)
    if given is not None and (body.payment_method != "cash" or given < paid):
        raise ValidationError(f"the amount given is for cash and must cover the {paid / 100:.2f} EUR to pay",
                              field="given_cents", detail_de=f"Der gegebene Betrag ist für Barzahlung und muss "
                                                             f"die {paid / 100:.2f} EUR decken")


@dataclass(frozen=True)
class Quote:
    """What a redemption would book, checked but not stored: the vouchers (in order), the seat,
    the ticket's price and discount type, and the split (used, lapsed, rest to pay)."""

    vouchers: list[dict]
    seat: dict
    price_cents: int
    discount_label: str | None
    split: rules.Split

    def as_dict(self) -> dict:
        """The quote as the screens show it (and as a redemption's answer reads, without ids)."""
        s = self.split
        return {"total_cents": self.price_cents, "used_cents": sum(s.used), "lapsed_cents": sum(s.lapsed),
                "paid_cents": s.paid_cents, "discount_label": self.discount_label,
                "seat": {k: self.seat[k] for k in ("zone_id", "section", "row_label", "label")},
                "vouchers": [{"id": v["id"], "number": v["number"], "value_cents": v["value_cents"],
                              "used_cents": used, "lapsed_cents": lapsed}
                             for v, used, lapsed in zip(self.vouchers, s.used, s.lapsed, strict=True)]}


LABELS: dict[str, Callable[[sqlite3.Connection, list[dict]], str | None]] = {
    "value": value_label, "payment": lambda db, vouchers: None}


def quote(db: sqlite3.Connection, body: RedemptionIn, *, now: dt.datetime, bearer_only: bool = False,
          label: Callable[[sqlite3.Connection, list[dict]], str | None] | None = None,
          pool: str = contingents.HUB) -> Quote:
    """Every check of a redemption and its split, storing nothing: the office and the desk show
    it before booking, and `_redeem` books exactly this (in its transaction). A rest to pay
    without a payment method is not checked here: the quote is what tells the clerk the rest."""
    vouchers = _vouchers(db, body, now, bearer_only)
    seat = _seat(db, body, now, pool)
    price = pricing.ticket_price(db, body.performance_id, seat["zone_id"])
    discount = (label or LABELS[body.rule])(db, vouchers)
    try:
        split = rules.split(price, [v["value_cents"] for v in vouchers])
    except rules.VoucherNotNeeded as exc:
        number = vouchers[exc.index]["number"]
        raise ValidationError(f"voucher {number} is not needed: the vouchers before it already pay the ticket",
                              field="vouchers", detail_de=f"Gutschein {number} wird nicht gebraucht: die "
                              "Gutscheine davor bezahlen das Ticket schon") from None
    return Quote(vouchers, seat, price, discount, split)


def _redeem(db: sqlite3.Connection, node: dict, body: RedemptionIn, *, channel: Channel, now: dt.datetime,
            bearer_only: bool, label: Callable[[sqlite3.Connection, list[dict]], str | None], pool: str) -> dict:
    with transaction(db):
        q = quote(db, body, now=now, bearer_only=bearer_only, label=label, pool=pool)
        check_rest(body, channel, q.split.paid_cents)
        ids = Ids(uuid7(), next_number(db, order_series(node["id"]), now.year, node["id"]), uuid7(), iso(now))
        return store(db, node, body, q, ids, channel=channel)


@dataclass(frozen=True)
class Ids:
    """Who a redemption is stored as: new ids where it is made; a desk's own ids at the hub."""

    order_id: str
    number: str
    ticket_id: str
    created_at: str


def store(db: sqlite3.Connection, node: dict, body: RedemptionIn, q: Quote, ids: Ids, *, channel: Channel) -> dict:
    """The ledger's rows of one redemption, in the caller's transaction: the order (total = the
    ticket's price; at a desk handed over at the counter), its `ticket` line and seat ticket, the
    payments, the redemptions. Returns the redemption as the APIs answer it."""
    vouchers, seat, price, split = q.vouchers, q.seat, q.price_cents, q.split
    order = {"id": ids.order_id, "number": ids.number, "node_id": node["id"], "channel": channel,
             "customer_id": vouchers[0]["customer_id"], "delivery": "counter" if channel in DESK_CHANNELS else None,
             "operator": body.operator, "total_cents": price, "created_at": ids.created_at}
    db.execute(f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({', '.join('?' * len(ORDER_COLUMNS))})",
               tuple(order[c] for c in ORDER_COLUMNS))
    store_lines(db, ids.order_id, [{"id": ids.ticket_id, "position": 1, "kind": "ticket",
                                    "product_id": body.performance_id, "price_cents": price, "vat_code": None,
                                    "card_id": None}])
    try:
        with transaction(db):  # a savepoint: refused, the seat can still be read (PostgreSQL aborts otherwise)
            db.execute("INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (ids.ticket_id, ids.order_id, ids.ticket_id, body.performance_id, body.seat_id,
                        seat["zone_id"], price, ids.created_at))
    except sqlite3.IntegrityError as exc:
        raise holds.seat_conflict(db, body.performance_id, body.seat_id, exc) from None
    _pay(db, node, order, body, vouchers, split)
    _record(db, node, order, ids.ticket_id, body, vouchers, split, q.discount_label)
    return {"order_id": ids.order_id, "number": ids.number, "rule": body.rule, "total_cents": price,
            "paid_cents": split.paid_cents, "payment_method": body.payment_method if split.paid_cents else None,
            "lapsed_cents": sum(split.lapsed), "used_cents": sum(split.used),
            "ticket": {"id": ids.ticket_id, "performance_id": body.performance_id, "seat_id": body.seat_id,
                       "zone_id": seat["zone_id"], "section": seat["section"], "row_label": seat["row_label"],
                       "label": seat["label"], "price_cents": price, "discount_label": q.discount_label},
            "vouchers": [{"id": v["id"], "number": v["number"], "value_cents": v["value_cents"], "used_cents": used,
                          "lapsed_cents": lapsed}
                         for v, used, lapsed in zip(vouchers, split.used, split.lapsed, strict=True)]}


def _pay(db: sqlite3.Connection, node: dict, order: dict, body: RedemptionIn, vouchers: list[dict],
         split: rules.Split) -> None:
    """The payment rows: a `voucher` row per voucher for what it used, one for the rest paid."""
    for voucher, used in zip(vouchers, split.used, strict=True):
        if used:
            payments.record(db, order["id"], method="voucher", amount_cents=used, node_id=node["id"],
                            now=order["created_at"], reference=voucher["number"], operator=body.operator,
                            state="paid")
    if split.paid_cents:
        payments.record(db, order["id"], method=body.payment_method, amount_cents=split.paid_cents,
                        node_id=node["id"], now=order["created_at"], reference=body.payment_reference,
                        given_cents=getattr(body, "given_cents", None), operator=body.operator)


def _record(db: sqlite3.Connection, node: dict, order: dict, ticket_id: str, body: RedemptionIn,
            vouchers: list[dict], split: rules.Split, discount: str | None) -> None:
    """The redemptions; a voucher redeemed meanwhile (the primary key) refuses the whole redemption."""
    for voucher, used, lapsed in zip(vouchers, split.used, split.lapsed, strict=True):
        try:
            with transaction(db):  # a savepoint: the refusal is reported here on PostgreSQL too (pipelined writes)
                db.execute(
                    "INSERT INTO choice_voucher_redemptions (voucher_id, rule, order_id, ticket_id, performance_id, "
                    "discount_label, value_cents, used_cents, lapsed_cents, node_id, operator, redeemed_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (voucher["id"], body.rule, order["id"], ticket_id, body.performance_id, discount,
                     voucher["value_cents"], used, lapsed, node["id"], body.operator, order["created_at"]))
        except sqlite3.IntegrityError:
            raise Conflict(f"voucher {voucher['number']} was redeemed meanwhile", field="vouchers",
                           detail_de=f"Gutschein {voucher['number']} wurde inzwischen eingelöst") from None
        db.execute("UPDATE choice_vouchers SET state = 'redeemed', updated_at = ? WHERE id = ?",
                   (order["created_at"], voucher["id"]))
