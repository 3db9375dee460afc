"""Annual-ticket orders through every channel (A2-A8): shop, phone, cash desk, counter.

One `place_order()` serves all of them; the channel decides what must be known at once:

- `shop` (hub, A2/A3): items are sold unpersonalized; the hub mails a personalization link
  per item and `personalize_item()` issues the card when the customer fills it in.
- `phone` (hub, A6): staff give a holder for every card; cards are issued at once and go
  by mail or wait for pickup.
- `cashdesk` / `counter` (edge, A4/A5, offline): an annual ticket is personalized on the
  spot and printed at the desk; a *voucher* is a signed card of kind `voucher` printed on
  the receipt, exchanged later at the counter with `redeem_voucher()`.

Every fully personalized card gets a print job in the same transaction (A7) and a
fulfilment state (A8) that `set_fulfilment()` moves forward. On an edge each change also
goes to the outbox: `order.placed`, `card.*`, `voucher.redeemed`, `card.fulfilment`.

A voucher is exchanged exactly once. On one node a second scan is refused at once. A
counter that reaches the hub asks it before printing (`exchange_verdict`; the desk pushes
the exchange at once), so with the network up two counters cannot both print. Two
counters that are both offline cannot know of each other's exchange, so both may print a
card; the hub then applies the redemption that reaches it first, and the second one is a
conflict: its card is revoked (gates refuse it after their next sync) and the office sees
the case in `/api/v1/conflicts`. `voucher_redemptions` replicates, so once a counter has
synced it refuses the used voucher itself.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base import outbox
from core.base.clock import LOCAL_TZ, day_end, day_start, iso, parse_iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.numbering import next_number
from core.base.sql import json_field
from core.base.storage import retried, transaction
from core.cards import cardcode, cards
from core.cards.cards import START_AHEAD_DAYS, Refused, Stamp, check_birth_date
from core.catalog.annual import add_months
from core.catalog.common import Body, Cents, Id, Name, VatCode
from core.printing import print_queue
from core.sales import payments
from core.sales.lines import of_order as lines_of
from core.sales.lines import store as lines_store
from core.sales.payments import Payment, check_payment, desk_channel
from core.sync.ops import DESKS, OpKind, Pushed, register

Delivery = Literal["mail", "pickup", "counter"]
ItemKind = Literal["annual", "voucher"]
Channel = Literal["shop", "phone", "cashdesk", "counter"]
# The product's sales channel (catalog) each order channel needs.
CATALOG_CHANNEL = {"shop": "online", "phone": "phone", "cashdesk": "cashdesk", "counter": "cashdesk"}


class HolderIn(Body, kw_only=True):
    """Who the card is for. `valid_from` only for products valid N months from purchase."""

    name: Name
    birth_date: dt.date | None = None
    valid_from: dt.date | None = None


class LineIn(Body, kw_only=True):
    product_id: Id
    kind: ItemKind = "annual"
    quantity: Annotated[int, Meta(ge=1, le=20)] = 1
    holders: Annotated[list[HolderIn], Meta(max_length=20)] | None = None


class OrderIn(Body, kw_only=True):
    lines: Annotated[list[LineIn], Meta(min_length=1, max_length=20)]
    customer_id: Id | None = None
    delivery: Delivery | None = None
    payment_method: Payment
    payment_reference: Annotated[str, Meta(max_length=100)] | None = None
    given_cents: Cents | None = None
    operator: Annotated[str, Meta(max_length=100)] | None = None


def order_series(node_id: str) -> str:
    """Order numbers are owned by the node that sells: `A` + the node id's last 6 hex digits."""
    return "A" + node_id.replace("-", "")[-6:].upper()


# --- placing orders -------------------------------------------------------------------------------------


@retried  # a deadlock or serialization failure on PostgreSQL: run again
def place_order(db: sqlite3.Connection, node: dict, signer: cards.NodeSigner | None, order: OrderIn, *,
                channel: Channel, now: dt.datetime) -> dict:
    """Store an order and, where holders are given, issue its cards; all in one transaction.
    Returns the order with its items (each with its card, if issued)."""
    delivery = _delivery(order, channel)
    _check_payment(order, channel)
    with transaction(db):
        items = _items(db, order, channel, now)
        total = sum(i["price_cents"] for i in items)
        if order.given_cents is not None and (order.payment_method != "cash" or order.given_cents < total):
            raise ValidationError("amount given is for cash and must cover the total", field="given_cents")
        if order.customer_id and not db.execute("SELECT 1 FROM customers WHERE id = ?",
                                                (order.customer_id,)).fetchone():
            raise NotFound(f"customer {order.customer_id} does not exist", field="customer_id")
        record = {"id": uuid7(), "number": next_number(db, order_series(node["id"]), now.year, node["id"]),
                  "node_id": node["id"], "channel": channel, "customer_id": order.customer_id,
                  "delivery": delivery, "payment_method": order.payment_method,
                  "payment_reference": order.payment_reference, "given_cents": order.given_cents,
                  "operator": order.operator, "total_cents": total, "created_at": iso(now)}
        store_order(db, record, items)
        for item in items:
            holder = item.pop("holder")
            if holder is not None or item["kind"] == "voucher":
                if signer is None:
                    raise Conflict("this node cannot sign cards")
                item["card"] = _issue_item(db, signer, record, item, holder, now)
        outbox.record(db, "order.placed", msgspec.convert({**record, "items": [_item_row(i) for i in items]},
                                                          OrderOp), wall_time=record["created_at"])
    return {**record, "items": items}


def _check_payment(order: OrderIn, channel: Channel) -> None:
    check_payment(channel, order.payment_method, order.payment_reference)


def _delivery(order: OrderIn, channel: Channel) -> str:
    if channel in ("cashdesk", "counter"):
        if order.delivery not in (None, "counter"):
            raise ValidationError("cards sold at the desk are handed over at once", field="delivery")
        return "counter"
    if order.delivery not in ("mail", "pickup"):
        raise ValidationError("choose delivery by mail or pickup", field="delivery")
    if not order.customer_id:
        raise ValidationError(f"a {channel} order needs a customer", field="customer_id")
    return order.delivery


def _items(db: sqlite3.Connection, order: OrderIn, channel: Channel, now: dt.datetime) -> list[dict]:
    """One item per card, checked against the catalog and the channel's rules."""
    items = []
    for n, line in enumerate(order.lines):
        field = f"lines[{n}]"
        product = db.execute("SELECT * FROM annual_products WHERE id = ?", (line.product_id,)).fetchone()
        if product is None:
            raise NotFound(f"annual-ticket product {line.product_id} does not exist", field=f"{field}.product_id")
        if not product["active"] or CATALOG_CHANNEL[channel] not in product["channels"]:
            raise Conflict(f"{product['name']} is not on sale through this channel ({channel})",
                           field=f"{field}.product_id")
        holders = _holders(line, channel, field)
        for k in range(line.quantity):
            holder = holders[k] if holders else None
            if holder:
                check_birth_date(holder.birth_date, now.astimezone(LOCAL_TZ).date(),
                                 f"{field}.holders[{k}].birth_date")
            if holder and holder.valid_from:
                _check_start(product, holder.valid_from, f"{field}.holders[{k}].valid_from")
            items.append({"id": uuid7(), "position": len(items) + 1, "product_id": product["id"],
                          "product": product["name"], "kind": line.kind, "price_cents": product["price_cents"],
                          "vat_code": product["vat_code"], "card_id": None, "holder": holder})
    return items


def _holders(line: LineIn, channel: Channel, field: str) -> list[HolderIn] | None:
    if line.kind == "voucher":
        if channel not in ("cashdesk", "counter"):
            raise ValidationError("vouchers are sold at the cash desk", field=f"{field}.kind")
        if line.holders:
            raise ValidationError("a voucher has no holder; it is personalized at the counter",
                                  field=f"{field}.holders")
        return None
    if channel == "shop":
        if line.holders:
            raise ValidationError("shop cards are personalized by the customer through the link",
                                  field=f"{field}.holders")
        return None
    if not line.holders or len(line.holders) != line.quantity:
        raise ValidationError(f"give one holder per card ({line.quantity})", field=f"{field}.holders")
    return line.holders


def _check_start(product: dict, start: dt.date, field: str) -> None:
    if product["validity_mode"] != "from_purchase":
        raise ValidationError(f"{product['name']} has no choosable start date", field=field)


ORDER_COLUMNS = ("id", "number", "node_id", "channel", "customer_id", "delivery", "operator", "total_cents",
                 "created_at")


def store_order(db: sqlite3.Connection, record: dict, lines: list[dict]) -> None:
    """The ledger's one write of a new order: the order, its lines, its payment (the record's
    payment_method, payment_reference, given_cents), in the caller's transaction. Every
    channel stores through here: annual tickets and vouchers (this module), seats
    (core/sales/tickets.py), and the hub applying a desk's operation."""
    db.execute(f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES ({', '.join('?' * len(ORDER_COLUMNS))})",
               tuple(record.get(c) for c in ORDER_COLUMNS))
    lines_store(db, record["id"], lines)
    payments.record(db, record["id"], method=record["payment_method"], amount_cents=record["total_cents"],
                    node_id=record["node_id"], now=record["created_at"], reference=record.get("payment_reference"),
                    given_cents=record.get("given_cents"), operator=record.get("operator"))


def _item_row(item: dict) -> dict:
    return {k: item[k] for k in ("id", "position", "product_id", "kind", "price_cents", "vat_code", "card_id")}


def _validity(db: sqlite3.Connection, product_id: str, holder: HolderIn | None,
              now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A chosen start day for a from-purchase product; otherwise the product's own window."""
    if holder is None or holder.valid_from is None:
        return None, None
    today = now.astimezone(LOCAL_TZ).date()
    if not today <= holder.valid_from <= today + dt.timedelta(days=START_AHEAD_DAYS):
        raise ValidationError(f"the start day must be between today and {START_AHEAD_DAYS} days ahead",
                              field="valid_from")
    months = db.execute("SELECT months FROM annual_products WHERE id = ?", (product_id,)).fetchone()["months"]
    return day_start(holder.valid_from), day_end(add_months(holder.valid_from, months) - dt.timedelta(days=1))


def _issue_item(db: sqlite3.Connection, signer: cards.NodeSigner, order: dict, item: dict,
                holder: HolderIn | None, now: dt.datetime, *, has_photo: bool = False) -> dict:
    """Issue the card of one item (annual: personalized, with a print job; voucher: bare)."""
    valid_from, valid_until = _validity(db, item["product_id"], holder, now)
    details = {"order_item_id": item["id"]}
    if item["kind"] == "annual":
        details.update(holder_birth_date=holder.birth_date.isoformat() if holder and holder.birth_date else None,
                       has_photo=int(has_photo), delivery=order["delivery"], fulfilment="personalized",
                       fulfilment_at=iso(now))
    card = cards.issue_card(db, signer, product_id=item["product_id"], kind=item["kind"], now=now,
                            customer_id=order["customer_id"], holder_name=holder.name if holder else None,
                            valid_from=valid_from, valid_until=valid_until, details=details)
    if item["id"]:
        db.execute("UPDATE order_lines SET card_id = ? WHERE id = ?", (card["id"], item["id"]))
    item["card_id"] = card["id"]
    if item["kind"] == "annual":
        print_queue.enqueue(db, "card", card["id"], card["issue"], now)
        if order["delivery"] == "mail":
            print_queue.enqueue(db, "carrier", card["id"], card["issue"], now)
    return card


def personalize_item(db: sqlite3.Connection, signer: cards.NodeSigner, item_id: str, holder: HolderIn,
                     now: dt.datetime, *, photo: tuple[str, bytes] | None = None) -> dict:
    """Issue the card of an unpersonalized item (shop link, or staff on the customer's behalf)."""
    with transaction(db):
        item = db.execute("SELECT i.*, p.name AS product FROM order_lines i JOIN annual_products p "
                          "ON p.id = i.product_id WHERE i.id = ?", (item_id,)).fetchone()
        if item is None:
            raise NotFound(f"order item {item_id} does not exist")
        if item["card_id"]:
            raise Conflict("this card has already been personalized")
        if item["kind"] != "annual":
            raise Conflict("a voucher is personalized at the counter")
        order = db.execute("SELECT * FROM orders WHERE id = ?", (item["order_id"],)).fetchone()
        check_birth_date(holder.birth_date, now.astimezone(LOCAL_TZ).date())
        if holder.valid_from:
            product = db.execute("SELECT * FROM annual_products WHERE id = ?", (item["product_id"],)).fetchone()
            _check_start(product, holder.valid_from, "valid_from")
        card = _issue_item(db, signer, order, item, holder, now, has_photo=photo is not None)
        if photo is not None:
            db.execute("INSERT INTO card_photos (card_id, media_type, data, created_at) VALUES (?, ?, ?, ?)",
                       (card["id"], photo[0], photo[1], iso(now)))
    return card


def order_view(db: sqlite3.Connection, order_id: str) -> dict:
    """An order with its lines (`items`, each with its card or seat ticket) and payments, as
    the API and the desk show it. `payment_method`, `payment_reference` and `given_cents`
    are the first payment's, as before payments were rows."""
    # the order's questions are sent before any answer is read: inside a transaction on
    # PostgreSQL one round trip for all (core.base.pg.connection)
    found = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,))
    cancelled = db.execute("SELECT line_id, credit_cents FROM cancelled_lines WHERE order_id = ?", (order_id,))
    paid_rows = payments.of_order_sent(db, order_id)
    items = lines_of(db, order_id)
    order = found.fetchone()
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    credits = {r["line_id"]: r["credit_cents"] for r in cancelled}
    for item in items:
        item["cancelled"] = item["id"] in credits  # core/payments/cancellations.py
        item["credit_cents"] = credits.get(item["id"])
        item["card"] = db.execute("SELECT * FROM cards WHERE id = ?", (item["card_id"],)).fetchone() \
            if item["card_id"] else None
        item["ticket"] = db.execute("SELECT id, performance_id, seat_id, zone_id, status FROM tickets "
                                    "WHERE line_id = ?", (item["id"],)).fetchone() if item["kind"] == "ticket" else None
    paid = paid_rows.fetchall()
    first = paid[0] if paid else {}
    return {**order, "payment_method": first.get("method"), "payment_reference": first.get("reference"),
            "given_cents": first.get("given_cents"), "items": items, "payments": paid}


class OrderItemOp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Id
    position: Annotated[int, Meta(ge=1, le=400)]
    product_id: Id
    kind: ItemKind
    price_cents: Cents
    vat_code: VatCode
    card_id: Id | None = None


class OrderOp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`order.placed`: an order a desk took. The cards arrive before it, as their own ops."""

    id: Id
    number: Annotated[str, Meta(min_length=1, max_length=40)]
    node_id: Id
    channel: Channel
    customer_id: Id | None = None
    delivery: Delivery
    payment_method: Annotated[str, Meta(max_length=20)]
    payment_reference: Annotated[str, Meta(max_length=100)] | None = None
    given_cents: Cents | None = None
    operator: Annotated[str, Meta(max_length=100)] | None = None
    total_cents: Cents
    created_at: Stamp
    items: Annotated[list[OrderItemOp], Meta(min_length=1, max_length=400)]


def apply_order(db: sqlite3.Connection, node_id: str, role: str, op: OrderOp, now: dt.datetime) -> None:
    """Hub: an order placed at a desk arrives. Channel, delivery, payment rule, prices, VAT
    and total are worked out again from the hub's catalog and the node's role; the cards
    must be the ones this node issued for these items. Any difference is refused (a
    conflict the office sees), never stored as sent."""
    if op.node_id != node_id:
        raise Refused("order recorded by another node than the one that pushed it")
    channel = desk_channel(role)
    if op.channel != channel:
        raise Refused(f"a {role} sells through the {channel} channel, not {op.channel}")
    if op.delivery != "counter":
        raise Refused("cards sold at a desk are handed over at once (delivery counter)")
    check_payment(channel, op.payment_method, op.payment_reference)
    if not op.number.startswith(order_series(node_id) + "-"):
        raise Refused(f"order number {op.number} is not from this node's series {order_series(node_id)}")
    if db.execute("SELECT 1 FROM orders WHERE id = ?", (op.id,)).fetchone():
        raise Refused(f"order {op.id} exists already")
    if op.customer_id and not db.execute("SELECT 1 FROM customers WHERE id = ?", (op.customer_id,)).fetchone():
        raise Refused(f"customer {op.customer_id} does not exist")
    if [i.position for i in op.items] != list(range(1, len(op.items) + 1)):
        raise Refused("order lines must be numbered 1..n")
    total = sum(_derived_line(db, node_id, channel, op, item) for item in op.items)
    if total != op.total_cents:
        raise Refused(f"order total {op.total_cents} is not the sum of its lines at the hub's prices ({total})")
    if op.given_cents is not None and (op.payment_method != "cash" or op.given_cents < total):
        raise Refused("amount given is for cash and must cover the total")
    record = {k: getattr(op, k) for k in ("id", "number", "node_id", "channel", "customer_id", "delivery",
                                          "payment_method", "payment_reference", "given_cents", "operator",
                                          "total_cents", "created_at")}
    store_order(db, record, [msgspec.structs.asdict(i) for i in op.items])


def _derived_line(db: sqlite3.Connection, node_id: str, channel: str, op: OrderOp, item: OrderItemOp) -> int:
    """The hub's price of one line (as of the order's time), after checking it as sent."""
    product = db.execute("SELECT * FROM annual_products WHERE id = ?", (item.product_id,)).fetchone()
    if product is None:
        raise Refused(f"annual-ticket product {item.product_id} does not exist")
    if CATALOG_CHANNEL[channel] not in product["channels"]:
        raise Refused(f"{product['name']} is not on sale through this channel ({channel})")
    price, vat = price_at(db, product, op.created_at)
    if (item.price_cents, item.vat_code) != (price, vat):
        raise Refused(f"{product['name']} costs {price} cents (VAT {vat}) at the hub, "
                      f"not {item.price_cents} cents (VAT {item.vat_code})")
    card = db.execute("SELECT * FROM cards WHERE id = ?", (item.card_id,)).fetchone() if item.card_id else None
    if card is None:
        raise Refused(f"line {item.position}: its card is not known at the hub (issued by this node first)")
    if (card["issued_by"], card["order_item_id"], card["product_id"], card["kind"]) != (
            node_id, item.id, item.product_id, item.kind):
        raise Refused(f"line {item.position}: card {card['number']} is not this line's card")
    return price


def price_at(db: sqlite3.Connection, product: dict, when: str) -> tuple[int, str]:
    """Price and VAT code of an annual-ticket product as they were at *when*: a desk that
    sold offline before the office changed a price sold at the old one."""
    row = db.execute("SELECT price_cents, vat_code FROM annual_price_history WHERE product_id = ? AND until > ? "
                     "ORDER BY until LIMIT 1", (product["id"], when)).fetchone()
    if row:
        return row["price_cents"], row["vat_code"]
    return product["price_cents"], product["vat_code"]


# --- vouchers -------------------------------------------------------------------------------------------


def check_voucher(db: sqlite3.Connection, access, code: str) -> dict:
    """The voucher behind *code*, or a clear refusal. *access* is a `core.cards.access.Access`
    without venue: the signature, revocation and validity checks are the gate's own."""
    result = access.decide(code.strip())
    if result.kind != "voucher":
        if result.reason in ("MALFORMED", "FORGED", "UNKNOWN_SIGNER"):
            raise ValidationError(f"{result.message_en}: {result.detail}".rstrip(": "), field="code",
                                  detail_de=result.message_de)
        raise ValidationError("this is not a voucher (it is a card already)", field="code",
                              detail_de="Das ist kein Gutschein, sondern schon eine Karte")
    if not (result.reason == "WRONG_VENUE"):  # what a sound voucher gets at a venue-less check
        raise Conflict(f"voucher refused: {result.message_en} {result.detail}".strip(),
                       detail_de=f"Gutschein abgelehnt: {result.message_de}")
    used = redemption_of(db, result.card_id)
    if used:
        raise Conflict(used["en"], detail_de=used["de"])
    payload = cardcode.decode(code.strip()).payload
    product = db.execute("SELECT p.* FROM card_products c JOIN annual_products p ON p.id = c.product_id "
                         "WHERE c.code = ?", (payload.product_code,)).fetchone()
    if product is None:
        raise Conflict("the voucher's product is not known on this node yet; sync with the hub first",
                       detail_de="Das Produkt des Gutscheins ist hier noch unbekannt; bitte mit dem Hub abgleichen")
    return {"voucher_id": result.card_id, "product_id": product["id"], "product": product["name"],
            "valid_until": result.valid_until, "signer": result.signer}


def redemption_of(db: sqlite3.Connection, voucher_id: str) -> dict | None:
    """The exchange that used voucher *voucher_id*, with a sentence in each language; None if unused."""
    used = db.execute("SELECT r.*, c.number FROM voucher_redemptions r LEFT JOIN cards c ON c.id = r.card_id "
                      "WHERE r.voucher_id = ?", (voucher_id,)).fetchone()
    if used is None:
        return None
    where = used["number"] or used["card_id"]
    when = parse_iso(used["redeemed_at"]).astimezone(LOCAL_TZ)
    return {**used, "en": f"voucher already exchanged on {when:%Y-%m-%d at %H:%M} (card {where})",
            "de": f"Gutschein wurde schon am {when:%d.%m.%Y um %H:%M} eingelöst (Karte {where})"}


def redeem_voucher(db: sqlite3.Connection, signer: cards.NodeSigner, access, code: str, holder: HolderIn,
                   now: dt.datetime, *, operator: str | None = None) -> dict:
    """Exchange a voucher for a personalized annual card, printed at once (A5)."""
    with transaction(db):
        voucher = check_voucher(db, access, code)
        order = {"customer_id": None, "delivery": "counter"}
        item = {"id": None, "product_id": voucher["product_id"], "kind": "annual"}
        card = _issue_item(db, signer, order, item, holder, now)
        redemption = {"voucher_id": voucher["voucher_id"], "card_id": card["id"], "node_id": signer.node_id,
                      "operator": operator, "redeemed_at": iso(now)}
        db.execute("INSERT INTO voucher_redemptions (voucher_id, card_id, node_id, operator, redeemed_at) "
                   "VALUES (:voucher_id, :card_id, :node_id, :operator, :redeemed_at)", redemption)
        outbox.record(db, "voucher.redeemed", RedemptionOp(**redemption, voucher_code=code.strip()),
                      wall_time=redemption["redeemed_at"])
    return card


def exchange_verdict(db: sqlite3.Connection, card_id: str) -> str | None:
    """What the hub answered to the exchange that issued *card_id*: None while not pushed or
    when applied, else the hub's reason for refusing it (another counter was first)."""
    row = db.execute("SELECT result FROM outbox WHERE kind = 'voucher.redeemed' AND "
                     f"{json_field('body', 'card_id')} = ? ORDER BY node_seq DESC LIMIT 1", (card_id,)).fetchone()
    if row and (row["result"] or "").startswith("rejected"):
        return row["result"].removeprefix("rejected:").strip()
    return None


def withdraw_exchange(db: sqlite3.Connection, card_id: str, reason: str, now: dt.datetime) -> None:
    """The hub refused this counter's exchange (and revoked its card) before the card was
    printed: the card is revoked here too and its print jobs are dropped, so it never exists
    on plastic. The hub's own records arrive with the next pull."""
    with transaction(db):
        void_card(db, card_id, reason, now)
        print_queue.drop_open_jobs(db, card_id)


class RedemptionOp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`voucher.redeemed`: a voucher exchanged for the card the counter issued."""

    voucher_id: Id
    card_id: Id
    node_id: Id
    operator: Annotated[str, Meta(max_length=100)] | None = None
    redeemed_at: Stamp
    voucher_code: Annotated[str, Meta(max_length=200)]


def apply_redemption(db: sqlite3.Connection, node_id: str, trust, op: RedemptionOp, now: dt.datetime) -> None:
    """Hub: a counter's exchange arrives. The voucher code must be genuine and the new card
    one this node issued for the voucher's product; the first exchange to arrive wins, a
    later one for another card is refused (and its card revoked: `void_lost_exchange`)."""
    try:
        voucher = cardcode.decode(op.voucher_code)
    except cardcode.Malformed as exc:
        raise Refused(f"voucher code is malformed: {exc}") from None
    signer = trust.get(voucher.payload.key_id)
    if signer is None or voucher.payload.kind != "voucher" or voucher.payload.card_id != op.voucher_id:
        raise Refused("voucher code does not match the redemption")
    if not signer.verifies(voucher.signature, voucher.message):
        raise Refused("voucher code signature does not verify")
    if op.node_id != node_id:
        raise Refused("redemption recorded by another node than the one that pushed it")
    card = db.execute("SELECT * FROM cards WHERE id = ?", (op.card_id,)).fetchone()
    product = db.execute("SELECT product_id FROM card_products WHERE code = ?",
                         (voucher.payload.product_code,)).fetchone()
    if card is None or card["issued_by"] != node_id or card["kind"] != "annual" or card["order_item_id"]:
        raise Refused("the exchange's card is not an annual card this node issued for it")
    if product is None or product["product_id"] != card["product_id"]:
        raise Refused("the exchange's card is not of the voucher's product")
    first = db.execute("SELECT * FROM voucher_redemptions WHERE voucher_id = ?", (op.voucher_id,)).fetchone()
    if first is not None:
        if first["card_id"] == op.card_id:
            return
        number = db.execute("SELECT number FROM cards WHERE id = ?", (first["card_id"],)).fetchone()
        raise Refused(f"voucher already exchanged at {first['redeemed_at']} by node {first['node_id']} "
                      f"(card {number['number'] if number else first['card_id']}); this exchange's card is revoked")
    redeemed_at = min(op.redeemed_at, iso(now))
    db.execute("INSERT INTO voucher_redemptions (voucher_id, card_id, node_id, operator, redeemed_at) "
               "VALUES (?, ?, ?, ?, ?)", (op.voucher_id, op.card_id, node_id, op.operator, redeemed_at))


def void_lost_exchange(db: sqlite3.Connection, node_id: str, op: RedemptionOp, reason: str, now: dt.datetime) -> None:
    """A refused exchange: the card this node issued for it is revoked, so exactly one card
    stays valid per voucher. Only a card of the pushing node: a refused op never touches
    another node's card."""
    db.execute("UPDATE cards SET revoked_at = ?, revoke_reason = ?, updated_at = ? "
               "WHERE id = ? AND issued_by = ? AND revoked_at IS NULL",
               (iso(now), reason[:200], iso(now), op.card_id, node_id))


def void_card(db: sqlite3.Connection, card_id: str, reason: str, now: dt.datetime) -> None:
    """Revoke the card of an exchange that lost (gates refuse it after their next sync)."""
    db.execute("UPDATE cards SET revoked_at = ?, revoke_reason = ?, updated_at = ? "
               "WHERE id = ? AND revoked_at IS NULL", (iso(now), reason[:200], iso(now), card_id))


def replace_lost_card(db: sqlite3.Connection, signer: cards.NodeSigner, card_id: str, now: dt.datetime) -> dict:
    """Lost card: a new issue (the old code becomes SUPERSEDED at the gates once synced),
    back to `personalized`, and a new print job."""
    with transaction(db):
        current = db.execute("SELECT * FROM cards WHERE id = ?", (card_id,)).fetchone()
        if current is None:
            raise NotFound(f"card {card_id} does not exist")
        if current["kind"] != "annual":
            raise Conflict(f"card {current['number']} is not an annual card")
        card = cards.reissue_card(db, signer, card_id, now,
                                  details={"fulfilment": "personalized", "fulfilment_at": iso(now)})
        # jobs still open for the old issue would print a code the gates now refuse
        print_queue.drop_open_jobs(db, card_id, below_issue=card["issue"])
        print_queue.enqueue(db, "card", card["id"], card["issue"], now)
        if card["delivery"] == "mail":
            print_queue.enqueue(db, "carrier", card["id"], card["issue"], now)
    return card


# --- what the desk shows --------------------------------------------------------------------------------


def find_cards(db: sqlite3.Connection, query: str, limit: int = 20) -> list[dict]:
    """Card lookup by scanned code, card number or holder name (newest first)."""
    query = query.strip()
    if not query:
        return []
    try:
        card_id = cardcode.decode(query).payload.card_id
        return db.execute("SELECT * FROM cards WHERE id = ?", (card_id,)).fetchall()
    except cardcode.Malformed:
        pass
    rows = db.execute("SELECT * FROM cards WHERE number = ? COLLATE NOCASE", (query,)).fetchall()
    if rows:
        return rows
    folded = query.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return db.execute("SELECT * FROM cards WHERE casefold(holder_name) LIKE ? ESCAPE '\\' "
                      "ORDER BY issued_at DESC LIMIT ?", ("%" + folded + "%", limit)).fetchall()


def day_summary(db: sqlite3.Connection, node_id: str, day: dt.date) -> list[dict]:
    """The day's takings at this node per operator and payment method, from the ledger's
    payment rows: annual tickets, vouchers and seats together."""
    start, end = iso(day_start(day)), iso(day_end(day))
    return db.execute(
        "SELECT coalesce(operator, '-') AS operator, method AS payment_method, count(DISTINCT order_id) AS sales, "
        "sum(amount_cents) AS total_cents FROM payments WHERE node_id = ? AND created_at BETWEEN ? AND ? "
        "GROUP BY 1, 2 ORDER BY 1, 2", (node_id, start, end)).fetchall()


# --- what the hub does with a desk's operations (core/sync/ops.py) ---------------------------------------


def _reissued(p: Pushed, body: cards.CardOp) -> None:
    if cards.apply_reissued(p.db, p.node_id, p.trust, body, p.now):
        # jobs still open at the hub for an older issue would print a code the gates refuse
        print_queue.drop_open_jobs(p.db, body.id, below_issue=body.issue)


register(OpKind(
    "card.reissued", cards.CardOp, DESKS, _reissued,
    "the code must be signed by the pushing node for the same card, product and validity with a higher "
    "issue; a card the hub has revoked stays revoked (the re-issue is a conflict)"))
register(OpKind(
    "order.placed", OrderOp, DESKS, lambda p, b: apply_order(p.db, p.node_id, p.role, b, p.now),
    "channel from the node's role; delivery counter; payment rule of a desk (cash, or card with the "
    "terminal's reference); each line's price and VAT from the product as of the order's time; total; "
    "each line's card issued by this node for that line; number in the node's series"))
register(OpKind(
    "voucher.redeemed", RedemptionOp, DESKS, lambda p, b: apply_redemption(p.db, p.node_id, p.trust, b, p.now),
    "voucher code genuine; the new card an annual card of the voucher's product issued by this node; "
    "first exchange wins",
    on_reject=lambda p, b, reason: void_lost_exchange(p.db, p.node_id, b, reason, p.now)))

