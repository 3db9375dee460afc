"""Choice vouchers redeemed at a cash desk, offline (S10, issue 15): `voucher.choice_redeemed`.

The desk redeems with the hub's own rule (`voucher_redemption.redeem`, channel `cashdesk`, from the
desk's pool `node:<id>`): same checks, split and refusals, the rest paid cash or card. In the same
transaction it records the op and issues the ticket's signed single-ticket card (kind `single`,
product = the performance, its entry window), so the gates admit it, with a print job (a slip
with its QR on the receipt printer). The desk redeems only vouchers its replica holds (the hub's
rows reach desks within a sync): a genuine code the desk does not hold yet is refused (`find`),
since the stored row decides value, discount type and state, and without it the desk could only
guess the ticket's discount type and whether the subscription was cancelled.

The hub believes none of the op: `apply_redeemed` takes the vouchers from its own rows (a code
must verify with its signer's key and be the stored code; a number must be the voucher's), checks
them at the redemption's time (capped at the hub's), and quotes the same redemption again with
`voucher_redemption.quote` from the pushing desk's pool; seat, zone, price, discount type and the
split per voucher must equal the op's, or it is refused. Then it stores through
`voucher_redemption.store` under the desk's ids and number.

First to reach the hub wins. Two desks that cannot see each other (no LAN claim, no hub) can redeem
one voucher twice. The one whose op reaches the hub first is stored; the other is refused: a
conflict whose reason names the voucher's customer and number, nothing of it stored (its seat
stays free at the hub), and its ticket card, which arrives next as `card.issued`, is refused naming that
redemption (`refuse_card_of_lost`) and kept as revoked (`cards.void_refused_desk_card`), so gates
refuse it after their next sync; the card's conflict is resolved at once, pointing to the
redemption's (one case for the office, not two). The desk learns the verdict from the push's answer
(`redemption_verdict`) and withdraws its ticket (`settle_lost`): ticket cancelled (the seat is
free in its pool again), card revoked, open print jobs dropped, its own redemption rows gone. The
money it took stays on its order: refunding it is the office's case (the conflict).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base import outbox
from core.base.clock import LOCAL_TZ, iso, parse_iso
from core.base.sql import json_field, json_values
from core.base.storage import transaction
from core.cards import cards
from core.cards.cards import CardOp, Refused, Stamp
from core.catalog.common import Cents, Id
from core.printing import print_queue
from core.sales import contingents
from core.sales.orders import order_series, void_card
from core.sales.payments import desk_channel
from core.subscriptions import voucher_redemption as redemption
from core.subscriptions.choice_vouchers import state_at
from core.sync import conflicts
from core.sync.ops import CASHDESK, OpKind, Pushed, register

KIND = "voucher.choice_redeemed"
Text = Annotated[str, Meta(max_length=100)]
Number = Annotated[str, Meta(min_length=1, max_length=40)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class RedeemedVoucherOp(Strict, kw_only=True):
    """One voucher as the desk used it: scanned (`code`) or typed (only the `number`)."""

    id: Id
    number: Number
    code: Annotated[str, Meta(max_length=200)] | None = None
    value_cents: Cents
    used_cents: Cents
    lapsed_cents: Cents


class VoucherRedeemedOp(Strict, kw_only=True):
    """`voucher.choice_redeemed`: vouchers redeemed for one seat ticket at a cash desk."""

    order_id: Id
    number: Number
    ticket_id: Id
    node_id: Id
    channel: Literal["cashdesk"]
    rule: Literal["value", "payment"]
    performance_id: Id
    seat_id: Id
    zone_id: Id
    price_cents: Cents
    discount_label: Annotated[str, Meta(max_length=300)] | None = None
    paid_cents: Cents
    payment_method: Literal["cash", "card"] | None = None
    payment_reference: Text | None = None
    given_cents: Cents | None = None
    operator: Text | None = None
    created_at: Stamp
    vouchers: Annotated[list[RedeemedVoucherOp], Meta(min_length=1, max_length=redemption.MAX_VOUCHERS)]


# --- at the desk ----------------------------------------------------------------------------------------


def quote_at_desk(db: sqlite3.Connection, node: dict, body: redemption.RedemptionIn,
                  now: dt.datetime) -> redemption.Quote:
    """What the redemption would come to at this desk (its pool), nothing stored."""
    return redemption.quote(db, body, now=now, pool=contingents.node_pool(node["id"]))


def redeem_at_desk(db: sqlite3.Connection, node: dict, signer: cards.NodeSigner,
                   body: redemption.DeskRedemptionIn, now: dt.datetime) -> dict:
    """One transaction: the redemption from this desk's pool, its op, the ticket's signed card with
    its print job, and the receipt job. Returns the redemption with `card`, `card_job`, `receipt_job`."""
    with transaction(db):
        done = redemption.redeem(db, node, body, channel="cashdesk", now=now,
                                 pool=contingents.node_pool(node["id"]))
        ticket = done["ticket"]
        outbox.record(db, "voucher.choice_redeemed", _op(node, body, done, iso(now)), wall_time=iso(now))
        card = cards.issue_card(db, signer, product_id=ticket["performance_id"], kind="single", now=now,
                                details={"order_item_id": ticket["id"], "delivery": "counter",
                                         "fulfilment": "personalized", "fulfilment_at": iso(now)})
        card_job = print_queue.enqueue(db, "card", card["id"], card["issue"], now)
        receipt_job = print_queue.enqueue(db, "receipt", done["order_id"], None, now)
    return {**done, "card": card, "card_job": card_job, "receipt_job": receipt_job}


def _op(node: dict, body: redemption.DeskRedemptionIn, done: dict, stamp: str) -> VoucherRedeemedOp:
    ticket = done["ticket"]
    paid = done["paid_cents"] > 0
    return VoucherRedeemedOp(
        order_id=done["order_id"], number=done["number"], ticket_id=ticket["id"], node_id=node["id"],
        channel="cashdesk", rule=body.rule, performance_id=ticket["performance_id"], seat_id=ticket["seat_id"],
        zone_id=ticket["zone_id"], price_cents=ticket["price_cents"], discount_label=ticket["discount_label"],
        paid_cents=done["paid_cents"], payment_method=body.payment_method if paid else None,
        payment_reference=body.payment_reference if paid else None, given_cents=body.given_cents if paid else None,
        operator=body.operator, created_at=stamp,
        vouchers=[RedeemedVoucherOp(id=v["id"], number=v["number"], code=ref.code.strip() if ref.code else None,
                                    value_cents=v["value_cents"], used_cents=v["used_cents"],
                                    lapsed_cents=v["lapsed_cents"])
                  for v, ref in zip(done["vouchers"], body.vouchers, strict=True)])


def redemption_verdict(db: sqlite3.Connection, order_id: str) -> str | None:
    """What the hub answered to this desk's redemption *order_id*: None while not pushed or when
    applied, else the hub's reason for refusing it (another desk or the office was first)."""
    row = db.execute(f"SELECT result FROM outbox WHERE kind = ? AND {json_field('body', 'order_id')} = ? "
                     "ORDER BY node_seq DESC LIMIT 1", (KIND, order_id)).fetchone()
    if row and (row["result"] or "").startswith("rejected"):
        return row["result"].removeprefix("rejected:").strip()
    return None


def withdraw(db: sqlite3.Connection, op: dict, reason: str, now: dt.datetime) -> bool:
    """The hub refused this desk's redemption *op* (its body): the ticket is cancelled (its seat free
    in the desk's pool again), its card revoked here and its open print jobs dropped (the hub keeps
    the card revoked too), and this desk's own redemption rows go (the hub's rows, pulled, decide the
    vouchers). False when it was withdrawn already. No op: the hub knows."""
    with transaction(db):
        done = db.execute("UPDATE tickets SET status = 'cancelled' WHERE id = ? AND status = 'sold'",
                          (op["ticket_id"],)).rowcount
        for card_id in _ticket_cards(db, op["ticket_id"]):
            void_card(db, card_id, f"voucher redemption refused at the hub: {reason}", now)
            print_queue.drop_open_jobs(db, card_id)
        db.execute("DELETE FROM choice_voucher_redemptions WHERE order_id = ?", (op["order_id"],))
        ids = [v["id"] for v in op["vouchers"]]
        db.execute("UPDATE choice_vouchers SET state = 'open', updated_at = ? WHERE id IN (" + json_values() + ") "
                   "AND state = 'redeemed' AND id NOT IN (SELECT voucher_id FROM choice_voucher_redemptions)",
                   (iso(now), json.dumps(ids)))
    return done > 0


def _ticket_cards(db: sqlite3.Connection, ticket_id: str) -> set[str]:
    """The cards this desk issued for the ticket: by its own `card.issued` ops, since the hub's copy of
    a refused card (pulled, it replaces the desk's row) carries no order line."""
    issued = db.execute(f"SELECT {json_field('body', 'id')} AS id FROM outbox WHERE kind = 'card.issued' AND "
                        f"{json_field('body', 'order_item_id')} = ?", (ticket_id,)).fetchall()
    held = db.execute("SELECT id FROM cards WHERE order_item_id = ? AND kind = 'single'", (ticket_id,)).fetchall()
    return {r["id"] for r in (*issued, *held)}


def settle_lost(db: sqlite3.Connection, now: dt.datetime) -> list[str]:
    """Withdraw every redemption of this desk the hub refused and that still stands here (after a
    push: the sync round calls it); the order numbers withdrawn."""
    withdrawn = []
    for row in db.execute("SELECT body, result FROM outbox WHERE kind = ? AND result LIKE 'rejected%'",
                          (KIND,)).fetchall():
        op = json.loads(row["body"])
        if withdraw(db, op, row["result"].removeprefix("rejected:").strip(), now):
            withdrawn.append(op["number"])
    return withdrawn


# --- at the hub -----------------------------------------------------------------------------------------


def _check_origin(db: sqlite3.Connection, pushed: Pushed, op: VoucherRedeemedOp) -> None:
    if op.node_id != pushed.node_id:
        raise Refused("voucher redemption recorded by another node than the one that pushed it")
    channel = desk_channel(pushed.role)
    if op.channel != channel:
        raise Refused(f"a {pushed.role} redeems through the {channel} channel, not {op.channel}")
    if not op.number.startswith(order_series(op.node_id) + "-"):
        raise Refused(f"order number {op.number} is not from this node's series {order_series(op.node_id)}")
    if op.order_id == op.ticket_id:
        raise Refused("an id is used twice in the redemption")
    if db.execute("SELECT 1 FROM orders WHERE id = ? OR number = ?", (op.order_id, op.number)).fetchone():
        raise Refused(f"order {op.number} exists already")


def _customer(db: sqlite3.Connection, voucher: dict) -> str:
    row = db.execute("SELECT c.first_name, c.last_name, s.number FROM subscriptions s JOIN customers c "
                     "ON c.id = s.customer_id WHERE s.id = ?", (voucher["subscription_id"],)).fetchone()
    if row is None:
        return "an unknown customer"
    return f"{row['first_name']} {row['last_name']}".strip() + f" (subscription {row['number']})"


def _first_wins(db: sqlite3.Connection, op: VoucherRedeemedOp) -> None:
    """Each voucher on record at the hub and not redeemed there yet; a voucher another desk or the
    office redeemed first refuses the whole redemption, naming the customer and the voucher."""
    for v in op.vouchers:
        voucher = db.execute("SELECT * FROM choice_vouchers WHERE id = ?", (v.id,)).fetchone()
        if voucher is None:
            raise Refused(f"voucher {v.number} is not on record at the hub")
        first = db.execute("SELECT r.*, o.number AS order_number, n.name AS node_name "
                           "FROM choice_voucher_redemptions r LEFT JOIN orders o ON o.id = r.order_id "
                           "LEFT JOIN node_scopes n ON n.node_id = r.node_id "
                           "WHERE r.voucher_id = ?", (v.id,)).fetchone()
        if first is None:
            continue
        when = f"{parse_iso(first['redeemed_at']).astimezone(LOCAL_TZ):%d.%m.%Y %H:%M}"
        where = first["node_name"] or "the box office"
        raise Refused(f"voucher {voucher['number']} of {_customer(db, voucher)} was already redeemed on {when} at "
                      f"{where} (order {first['order_number']}); this desk's ticket (order {op.number}, "
                      f"{_ticket_words(db, op)}) is void and its card revoked; the customer paid "
                      f"{op.paid_cents / 100:.2f} EUR here besides the vouchers")


def _ticket_words(db: sqlite3.Connection, op: VoucherRedeemedOp) -> str:
    """The desk's ticket as the office reads it: performance, date, section, row and seat."""
    perf = db.execute("SELECT title, starts_at FROM performances WHERE id = ?", (op.performance_id,)).fetchone()
    seat = contingents.some_seats(db, op.performance_id, [op.seat_id]).get(op.seat_id) if perf else None
    if seat is None:
        return f"seat {op.seat_id} of performance {op.performance_id}"
    return f"{perf['title']} on {parse_iso(perf['starts_at']).astimezone(LOCAL_TZ):%d.%m.%Y %H:%M}, " \
           f"{redemption.seat_words(seat)}"


def _compare(op: VoucherRedeemedOp, q: redemption.Quote) -> None:
    """The hub's quote against the op: the same vouchers, seat, price, discount type and split."""
    if [v["id"] for v in q.vouchers] != [v.id for v in op.vouchers] or \
            [v["number"] for v in q.vouchers] != [v.number for v in op.vouchers]:
        raise Refused("a voucher's code or number is not the voucher the redemption names")
    if (op.zone_id, op.price_cents) != (q.seat["zone_id"], q.price_cents):
        raise Refused(f"the ticket costs {q.price_cents} cents in its zone at the hub, not {op.price_cents} cents")
    if op.discount_label != q.discount_label:
        raise Refused(f"the ticket's discount type is {q.discount_label!r} at the hub, not {op.discount_label!r}")
    derived = [(v["value_cents"], u, lapsed) for v, u, lapsed in zip(q.vouchers, q.split.used, q.split.lapsed,
                                                                      strict=True)]
    if derived != [(v.value_cents, v.used_cents, v.lapsed_cents) for v in op.vouchers] or \
            op.paid_cents != q.split.paid_cents:
        raise Refused(f"the split is not the hub's: vouchers pay {sum(q.split.used)} cents, "
                      f"{q.split.paid_cents} cents to pay")


def apply_redeemed(pushed: Pushed, op: VoucherRedeemedOp) -> None:
    """Hub: a desk's redemption arrives. Quoted again from the desk's pool with the hub's vouchers
    and catalog at the redemption's time and compared; stored under the desk's ids only when equal.
    A voucher redeemed at the hub already: refused (first to reach the hub wins)."""
    db = pushed.db
    _check_origin(db, pushed, op)
    _first_wins(db, op)
    at = min(parse_iso(op.created_at), pushed.now)  # a desk clock ahead does not redeem later
    body = redemption.DeskRedemptionIn(
        vouchers=[redemption.VoucherRef(code=v.code) if v.code else redemption.VoucherRef(number=v.number)
                  for v in op.vouchers],
        performance_id=op.performance_id, seat_id=op.seat_id, rule=op.rule, payment_method=op.payment_method,
        payment_reference=op.payment_reference, operator=op.operator, given_cents=op.given_cents)
    q = redemption.quote(db, body, now=at, pool=contingents.node_pool(pushed.node_id))
    _compare(op, q)
    redemption.check_rest(body, op.channel, q.split.paid_cents)
    redemption.store(db, {"id": pushed.node_id}, body, q,
                     redemption.Ids(op.order_id, op.number, op.ticket_id, iso(at)), channel="cashdesk")


register(OpKind(
    KIND, VoucherRedeemedOp, CASHDESK, apply_redeemed,
    "channel from the node's role (cashdesk); order number in the node's series, ids not stored yet; each "
    "voucher on record at the hub (its stored row decides value, discount type, offer and state), a code "
    "verified with its signer's key and equal to the stored code, a number the voucher's; not redeemed at "
    "the hub yet (first to reach the hub wins: the loser is a conflict naming the customer and the voucher, "
    "its ticket card is refused naming it and kept revoked, that card's conflict resolved pointing to it); "
    "in its offer, not expired and the performance ahead at the redemption's time (capped at the hub's); "
    "the seat in the node's pool and unsold; price from the hub's catalog; discount type and the split per "
    "voucher recomputed and equal to the op's; payment rule of a desk; stored under the op's ids"))


# --- the ticket's card (cards.DESK_CARD_RULES "single", through desk_sales.single_rule) ---------------------


def redeemed_ticket(db: sqlite3.Connection, line_id: str | None) -> dict | None:
    """The redemption behind a ticket line (its order's node and customer), or None."""
    return db.execute("SELECT r.ticket_id, r.performance_id, o.node_id, o.customer_id, o.number, t.status "
                      "FROM choice_voucher_redemptions r JOIN orders o ON o.id = r.order_id "
                      "JOIN tickets t ON t.id = r.ticket_id WHERE r.ticket_id = ? LIMIT 1",
                      (line_id or "",)).fetchone()


def refuse_card_of_lost(db: sqlite3.Connection, node_id: str, op: CardOp) -> None:
    """The ticket card of a redemption of this node that the hub refused (another desk or the office
    was first): refused, naming the redemption, and kept revoked (`cards.void_refused_desk_card`);
    its conflict is resolved at once pointing to the redemption's (`conflicts.Follows`), which names
    the customer and is the one case the office settles. Nothing when the line is no such ticket."""
    lost = conflicts.of_op(db, node_id, KIND, "ticket_id", op.order_item_id or "")
    if lost is None:
        return
    body = lost["body"] if isinstance(lost["body"], dict) else {}
    vouchers = body.get("vouchers") if isinstance(body.get("vouchers"), list) else []
    numbers = [str(v.get("number")) for v in vouchers if isinstance(v, dict)]
    raise conflicts.Follows(f"card {op.number}: ticket of voucher redemption {body.get('number')} "
                            f"({'voucher' if len(numbers) == 1 else 'vouchers'} {', '.join(numbers)}) that the hub "
                            f"refused; the card stays revoked; see conflict {lost['id']}", lost["id"])


def card_rule(db: sqlite3.Connection, node_id: str, op: CardOp, sold_at: dt.datetime) -> dict:
    """A desk's single ticket for a ticket it redeemed vouchers for: that redemption's node, its
    performance, sold, the performance's entry window (`cards.default_validity`), the first card."""
    line = redeemed_ticket(db, op.order_item_id)
    if line is None or line["node_id"] != node_id:
        raise Refused(f"card {op.number}: order line {op.order_item_id} is not a ticket this node redeemed "
                      "vouchers for")
    if op.product_id != line["performance_id"] or line["status"] != "sold":
        raise Refused(f"card {op.number}: order {line['number']} has no sold ticket for performance {op.product_id}")
    window = cards.default_validity(db, op.product_id, "single", sold_at)
    if (op.valid_from, op.valid_until) != (iso(window[0]), iso(window[1])):
        raise Refused(f"card {op.number}: validity {op.valid_from}..{op.valid_until} is not the performance's entry "
                      f"window ({iso(window[0])}..{iso(window[1])})")
    if db.execute("SELECT 1 FROM cards WHERE order_item_id = ? AND kind = 'single' AND revoked_at IS NULL",
                  (line["ticket_id"],)).fetchone():
        raise Refused(f"card {op.number}: order {line['number']} has a ticket card already")
    if op.customer_id not in (None, line["customer_id"]):
        raise Refused(f"card {op.number}: not the customer of order {line['number']}")
    return {"holder_name": None, "delivery": "counter", "fulfilment": "personalized"}


# --- what the desk's screen shows -------------------------------------------------------------------------


def voucher_view(db: sqlite3.Connection, voucher: dict, now: dt.datetime) -> dict:
    """A voucher as the desk shows it: number, value, discount type, product, valid until, state,
    and its offer: the performances that have not begun, with title and start."""
    product = db.execute("SELECT name FROM subscription_products WHERE id = ?", (voucher["product_id"],)).fetchone()
    offer = db.execute("SELECT id, title, starts_at FROM performances WHERE id IN (" + json_values() + ") "
                       "AND starts_at > ? ORDER BY starts_at", (json.dumps(voucher["offer"]), iso(now))).fetchall()
    return {"id": voucher["id"], "number": voucher["number"], "value_cents": voucher["value_cents"],
            "tier_name": voucher["tier_name"], "product_id": voucher["product_id"],
            "product": product["name"] if product else None, "valid_until": voucher["valid_until"],
            "state": state_at(voucher, now), "offer": offer}


def free_seats(db: sqlite3.Connection, performance_id: str, pool: str) -> list[dict]:
    """The performance's seats in *pool* that are not sold, with section, row, seat, zone (code and
    the name the cashier reads, "Preiskategorie I") and price (what a voucher may be redeemed for at
    this desk)."""
    pools = contingents.pools(db, performance_id)
    sold = {r["seat_id"] for r in db.execute(
        "SELECT seat_id FROM tickets WHERE performance_id = ? AND status = 'sold'", (performance_id,))}
    zones = {r["zone_id"]: r for r in db.execute(
        "SELECT p.zone_id, p.price_cents, z.name FROM performance_prices p JOIN price_zones z ON z.id = p.zone_id "
        "WHERE p.performance_id = ?", (performance_id,))}
    return [{"seat_id": s["id"], "section": s["section"], "row_label": s["row_label"], "label": s["label"],
             "zone_id": s["zone_id"], "zone": s["zone"], "zone_name": zones[s["zone_id"]]["name"],
             "price_cents": zones[s["zone_id"]]["price_cents"]}
            for s in contingents.seats_of(db, performance_id).values()
            if pools.get(s["id"]) == pool and s["id"] not in sold and s["zone_id"] in zones]
