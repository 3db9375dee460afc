"""A cash desk's subscription sale at the hub (S17, E3): `subscription.sold` and the desk's cards.

A desk sells rings, choices and combis offline from its own pool (`sale.sell_subscriptions` with
channel `cashdesk` and pool `node:<id>`) and records one `subscription.sold` op. The hub does not
believe what it says: it sells the same request again from that desk's pool at the hub
(`offers.performances` + `sale.resolve` + `sale.price`, exactly as a sale does) and compares
tickets, prices and totals with the op; any difference is refused (a conflict for the office),
never stored as sent. Then it stores through the one store path of every sale
(`sale.store_sale`) under the desk's ids and numbers. A voucher subscription has no seats: its
price is derived the same way, and the choice vouchers the desk issued and signed offline come in
the op; `choice_vouchers.store_from_desk` checks each and stores it under the desk's id, number
and code (any difference refuses the whole sale).

The desk then issues the subscription's cards (`passes.issue_subscription_cards`): a pass and/or
a single ticket per performance, each its own `card.issued` op after the sale's. The card room
does not know subscriptions; this module registers the rule it checks those cards with
(`cards.register_desk_card_rule`): the line is a subscription this node sold, the card is what
its form and seats call for, with exactly the validity `passes.py` gives it, and not there twice;
a pass gets the dates it admits at the gate (`passes.record_pass_dates`) as a hub-issued one does.
A card the hub refuses although the node really signed it is kept as revoked
(`cards.void_refused_desk_card`): that is what happens to the cards of a refused sale, so gates
refuse them after their next sync.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

from core.base.clock import day_end, day_start, iso, parse_iso
from core.cards import cards
from core.cards.cards import CardOp, Refused
from core.sales import contingents
from core.sales.orders import order_series
from core.sales.payments import check_payment, desk_channel
from core.subscriptions import choice_vouchers, desk_redemption, offers, passes
from core.subscriptions.print_data import holder_name, seats, subscription_row
from core.subscriptions.sale import (
    MemberIds,
    MemberIn,
    ReplacementIn,
    SaleIds,
    SeatAtIn,
    SubscriptionSaleIn,
    abo_series,
    check_phase,
    derive_party,
    form_of,
    members_of,
    store_sale,
)
from core.subscriptions.sale_op import SoldMemberOp, SubscriptionSoldOp
from core.sync.ops import CASHDESK, OpKind, Pushed, register

KIND = "subscription.sold"


def request_of(op: SubscriptionSoldOp) -> SubscriptionSaleIn:
    """The sale request the desk sold, rebuilt from the op (what the hub sells again)."""
    return SubscriptionSaleIn(
        product_id=op.product_id, customer_id=op.customer_id, zone_id=op.zone_id, form=op.form,
        performance_ids=list(op.performance_ids), delivery="counter", payment_method=op.payment_method,
        payment_reference=op.payment_reference, given_cents=op.given_cents, operator=op.operator,
        members=[MemberIn(tier_id=m.tier_id, holder_name=m.holder_name, seat_ids=list(m.seat_ids),
                          replacements=[ReplacementIn(variant_id=r.variant_id, seat_id=r.seat_id)
                                        for r in m.replacements],
                          seats=[SeatAtIn(performance_id=s.performance_id, seat_id=s.seat_id) for s in m.seats])
                 for m in op.members])


def _check_origin(db: sqlite3.Connection, pushed: Pushed, op: SubscriptionSoldOp) -> dict:
    """Who sold it and under which numbers: the pushing desk, its channel and payment rule, its own
    series, ids the hub has not stored yet. Returns the node as the store path needs it."""
    if op.node_id != pushed.node_id:
        raise Refused("subscription sale recorded by another node than the one that pushed it")
    channel = desk_channel(pushed.role)
    if op.channel != channel:
        raise Refused(f"a {pushed.role} sells through the {channel} channel, not {op.channel}")
    check_payment(channel, op.payment_method, op.payment_reference)
    node = {"id": pushed.node_id, "role": pushed.role}
    if not op.number.startswith(order_series(node["id"]) + "-"):
        raise Refused(f"order number {op.number} is not from this node's series {order_series(node['id'])}")
    series = abo_series(node)
    for m in op.members:
        if not m.number.startswith(series + "-"):
            raise Refused(f"subscription number {m.number} is not from this node's series {series}")
    ids = [op.order_id] + [i for m in op.members for i in (m.line_id, m.subscription_id, *(t.id for t in m.tickets))]
    if len(set(ids)) != len(ids):
        raise Refused("an id is used twice in the sale")
    if db.execute("SELECT 1 FROM orders WHERE id = ?", (op.order_id,)).fetchone():
        raise Refused(f"order {op.order_id} exists already")
    return node


def _compare(m: SoldMemberOp, booked: list, priced: tuple[int, dict[str, int], str | None]) -> None:
    """The hub's tickets and price of one member against the op's: equal, or refused."""
    total, per_perf, zone = priced
    derived = sorted((b.performance_id, b.seat_id, b.zone_id, per_perf[b.performance_id]) for b in booked)
    sent = sorted((t.performance_id, t.seat_id, t.zone_id, t.price_cents) for t in m.tickets)
    if len({t.performance_id for t in m.tickets}) != len(m.tickets):
        raise Refused(f"subscription {m.number}: two tickets for one performance")
    if derived != sent:
        missing = sorted(set(derived) - set(sent))
        what = f"e.g. {missing[0][1]} at performance {missing[0][0]} for {missing[0][3]} cents" if missing else \
            "it sent tickets the hub does not derive"
        raise Refused(f"subscription {m.number}: its tickets are not what the hub derives from the request ({what})")
    if (m.price_cents, m.zone_id) != (total, zone):
        raise Refused(f"subscription {m.number} costs {total} cents at the hub, not {m.price_cents} cents")


def apply_sold(pushed: Pushed, op: SubscriptionSoldOp) -> None:
    """Hub: a desk's subscription sale arrives. Sold again from the desk's pool at the hub and
    compared; stored with the desk's ids only when everything is equal."""
    db = pushed.db
    node = _check_origin(db, pushed, op)
    at = min(parse_iso(op.created_at), pushed.now)  # a desk clock ahead does not sell in a later window
    body = request_of(op)
    prod = offers.product(db, op.product_id, kinds=(*offers.SEATED, "voucher"))
    if not db.execute("SELECT 1 FROM customers WHERE id = ?", (op.customer_id,)).fetchone():
        raise Refused(f"customer {op.customer_id} does not exist")
    check_phase(db, prod, "cashdesk", op.customer_id, at)
    if form_of(prod, op.form) != op.form:
        raise Refused(f"form {op.form} is not offered by {prod['name']}")
    members = members_of(body)
    booked, priced = derive_party(db, prod, members, body, pool=contingents.node_pool(node["id"]), now=pushed.now)
    if prod["kind"] != "voucher" and any(m.vouchers for m in op.members):
        raise Refused(f"{prod['name']} is a {prod['kind']} subscription: it has no choice vouchers")
    for m, b, pr in zip(op.members, booked, priced, strict=True):
        _compare(m, b, pr)
    if op.total_cents != sum(pr[0] for pr in priced):
        raise Refused(f"sale total {op.total_cents} is not the sum of its subscriptions at the hub's prices")
    ids = SaleIds(op.order_id, op.number, [MemberIds(m.line_id, m.subscription_id, m.number,
                                                     {t.performance_id: t.id for t in m.tickets})
                                           for m in op.members])
    store_sale(db, node, prod, body, list(zip(members, booked, priced, strict=True)), ids, form=op.form,
               channel="cashdesk", agency_token=None, now=at)
    if prod["kind"] == "voucher":  # the vouchers the desk issued offline, checked one by one
        for m in op.members:
            choice_vouchers.store_from_desk(db, pushed.trust, node, m.subscription_id, m.vouchers,
                                            parse_iso(op.created_at))


register(OpKind(
    KIND, SubscriptionSoldOp, CASHDESK, apply_sold,
    "channel from the node's role (cashdesk); payment rule of a desk; order and subscription numbers in the "
    "node's series, ids not stored yet; product on sale through the cashdesk channel at the sale's "
    "time (capped at the hub's); customer exists; form allowed; tiers bookable; the seats sold again at the hub "
    "from the node's pool (same seat logic and prices as any sale): tickets (performance, seat, zone, price), "
    "each subscription's price and the total must equal the op's; stored under the op's ids. A voucher "
    "subscription (no seats): the package price with the tier, and its choice vouchers each exactly as the desk's "
    "issuing makes them (count and value of the product, valid until the season's end, number in the node's W "
    "series, code signed by a cashdesk card key of the pushing node for that voucher id, kind, product and the "
    "sale's time, not stored yet), stored under the desk's ids, numbers and codes"))


# --- the desk's cards of its subscriptions (cards.DESK_CARD_RULES) ------------------------------------------


def _sold_line(db: sqlite3.Connection, node_id: str, op: CardOp) -> dict:
    """The subscription behind the card's order line: a subscription line of an order this node sold."""
    row = db.execute("SELECT s.id FROM subscriptions s JOIN orders o ON o.id = s.order_id "
                     "WHERE s.line_id = ? AND o.node_id = ?", (op.order_item_id or "", node_id)).fetchone()
    if row is None:
        raise Refused(f"card {op.number}: order line {op.order_item_id} is not a subscription this node sold")
    sub = subscription_row(db, row["id"])
    if sub["state"] != "active":
        raise Refused(f"card {op.number}: subscription {sub['number']} is {sub['state']}")
    if op.customer_id not in (None, sub["customer_id"]):
        raise Refused(f"card {op.number}: not the subscription's customer")
    return sub


def _live(db: sqlite3.Connection, sub: dict, kind: str, product_id: str) -> bool:
    return db.execute("SELECT 1 FROM cards WHERE order_item_id = ? AND kind = ? AND product_id = ? "
                      "AND revoked_at IS NULL", (sub["line_id"], kind, product_id)).fetchone() is not None


def _same_window(op: CardOp, window: tuple[dt.datetime, dt.datetime]) -> None:
    if (op.valid_from, op.valid_until) != (iso(window[0]), iso(window[1])):
        raise Refused(f"card {op.number}: validity {op.valid_from}..{op.valid_until} is not the one its "
                      f"subscription gives it ({iso(window[0])}..{iso(window[1])})")


def _derived(sub: dict, holder: str | None) -> dict:
    return {"holder_name": holder, "delivery": sub["order_delivery"], "fulfilment": "personalized"}


def pass_rule(db: sqlite3.Connection, node_id: str, op: CardOp, sold_at: dt.datetime) -> dict:
    """A desk's season pass: its subscription's product, form with a pass, the window from the day of
    its first seat to the end of the day of its last (as `passes._issue_pass`), the first pass."""
    sub = _sold_line(db, node_id, op)
    if op.product_id != sub["product_id"] or sub["form"] not in ("pass", "both"):
        raise Refused(f"card {op.number}: subscription {sub['number']} has no pass of product {op.product_id}")
    held = seats(db, sub["line_id"])
    _same_window(op, (day_start(held[0].starts_at.date()), day_end(held[-1].starts_at.date())))
    if _live(db, sub, "subscription", op.product_id):
        raise Refused(f"card {op.number}: subscription {sub['number']} has a pass already")
    if op.holder_name != holder_name(sub):
        raise Refused(f"card {op.number}: the pass is not made out to the subscription's holder")
    return _derived(sub, holder_name(sub))


def single_rule(db: sqlite3.Connection, node_id: str, op: CardOp, sold_at: dt.datetime) -> dict:
    """A desk's single ticket: a performance with a sold seat on the line, form with tickets, the
    performance's entry window (`cards.default_validity`), the first ticket of that performance.
    Or the ticket of choice vouchers this desk redeemed (its own rule, `desk_redemption.card_rule`), or
    of a redemption the hub refused (refused, naming it: `desk_redemption.refuse_card_of_lost`)."""
    if desk_redemption.redeemed_ticket(db, op.order_item_id) is not None:
        return desk_redemption.card_rule(db, node_id, op, sold_at)
    desk_redemption.refuse_card_of_lost(db, node_id, op)  # the ticket of a redemption the hub refused
    sub = _sold_line(db, node_id, op)
    if sub["form"] not in ("single_tickets", "both") or op.product_id not in {
            s.performance_id for s in seats(db, sub["line_id"])}:
        raise Refused(f"card {op.number}: subscription {sub['number']} has no ticket for performance "
                      f"{op.product_id}")
    _same_window(op, cards.default_validity(db, op.product_id, "single", sold_at))
    if _live(db, sub, "single", op.product_id):
        raise Refused(f"card {op.number}: subscription {sub['number']} has a ticket for that performance already")
    return _derived(sub, None)


cards.register_desk_card_rule("subscription", pass_rule,
                              after=lambda db, op: passes.record_pass_dates(db, op.id, op.order_item_id))
cards.register_desk_card_rule("single", single_rule)
