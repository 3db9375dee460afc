"""Single-ticket sales with seats: the one path for a cash desk (offline, from its own
pool) and for the hub (online, from the hub's pool), and the hub's check of a desk's sale
when it arrives by sync (E3).

A seat may be sold only by the pool that holds it, and only once: the hub's
`tickets_one_per_seat` index is the last word, and a sale that breaks either rule when it
reaches the hub becomes a conflict for the office, never a silent double booking.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated

import msgspec
from msgspec import Meta

from core.base import outbox
from core.base.clock import iso
from core.base.errors import Conflict, ValidationError
from core.base.ids import uuid7
from core.base.numbering import next_number
from core.base.storage import transaction
from core.catalog import pricing
from core.catalog.common import Body, Cents, Id
from core.sales import contingents
from core.sales.orders import store_order
from core.sales.payments import DESK_CHANNELS, Payment, check_payment, desk_channel
from core.sync.ops import CASHDESK, OpKind, register


class SaleIn(Body, kw_only=True):
    performance_id: Id
    seat_ids: Annotated[list[Id], Meta(min_length=1, max_length=50)]
    payment_method: Payment
    payment_reference: Annotated[str, Meta(max_length=100)] | None = None
    operator: Annotated[str, Meta(max_length=100)] | None = None


def series_prefix(node_id: str) -> str:
    """Sale numbers are owned by the node that sells: `T` + the node id's last 6 hex digits."""
    return "T" + node_id.replace("-", "")[-6:].upper()


def sell(db: sqlite3.Connection, node: dict, sale: SaleIn, *, pool: str, channel: str, now) -> dict:
    """Sell seats from *pool*. On an edge the sale and its `sale.completed` op are one
    transaction; on the hub the sale is simply stored (and reaches edges by the feed)."""
    if len(set(sale.seat_ids)) != len(sale.seat_ids):
        raise ValidationError("a seat is listed twice", field="seat_ids")
    check_payment(channel, sale.payment_method, sale.payment_reference)
    with transaction(db):
        offered = contingents.some_seats(db, sale.performance_id, sale.seat_ids)
        tickets = []
        for seat_id in sale.seat_ids:
            seat = offered.get(seat_id)
            if seat is None:
                raise ValidationError(f"seat {seat_id} is not part of this performance", field="seat_ids")
            where = f"{seat['section']} row {seat['row_label']} seat {seat['label']}"
            holder = contingents.pool_of(db, sale.performance_id, seat_id)
            if holder != pool:
                raise Conflict(f"{where} is not in this desk's contingent ({holder}); it cannot be sold here")
            if db.execute("SELECT 1 FROM tickets WHERE performance_id = ? AND seat_id = ? AND status = 'sold'",
                          (sale.performance_id, seat_id)).fetchone():
                raise Conflict(f"{where} is already sold")
            tickets.append({"id": uuid7(), "seat_id": seat_id, "zone_id": seat["zone_id"],
                            "price_cents": pricing.ticket_price(db, sale.performance_id, seat["zone_id"])})
        record = {"id": uuid7(), "number": next_number(db, series_prefix(node["id"]), now.year, node["id"]),
                  "node_id": node["id"], "channel": channel, "payment_method": sale.payment_method,
                  "payment_reference": sale.payment_reference, "operator": sale.operator,
                  "total_cents": sum(t["price_cents"] for t in tickets), "created_at": iso(now),
                  "performance_id": sale.performance_id, "tickets": tickets}
        _store(db, record)
        outbox.record(db, "sale.completed", msgspec.convert(record, SaleOp), wall_time=record["created_at"])
    return record


def _store(db: sqlite3.Connection, record: dict) -> None:
    """A seat sale in the ledger: an order with one `ticket` line per seat (the line has its
    ticket's id) and the seat tickets those lines deliver."""
    order = {**record, "customer_id": None,
             "delivery": "counter" if record["channel"] in DESK_CHANNELS else None}
    lines = [{"id": t["id"], "position": n, "kind": "ticket", "product_id": record["performance_id"],
              "price_cents": t["price_cents"], "vat_code": None, "card_id": None}
             for n, t in enumerate(record["tickets"], start=1)]
    store_order(db, order, lines)
    db.executemany("INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, price_cents, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [(t["id"], record["id"], t["id"], record["performance_id"], t["seat_id"], t["zone_id"],
                     t["price_cents"], record["created_at"]) for t in record["tickets"]])


class TicketOp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Id
    seat_id: Id
    zone_id: Id
    price_cents: Cents


class SaleOp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`sale.completed`: seats a desk sold from its own pool."""

    id: Id
    number: Annotated[str, Meta(min_length=1, max_length=40)]
    node_id: Id
    channel: Annotated[str, Meta(max_length=20)]
    payment_method: Annotated[str, Meta(max_length=20)]
    payment_reference: Annotated[str, Meta(max_length=100)] | None = None
    operator: Annotated[str, Meta(max_length=100)] | None = None
    total_cents: Cents
    created_at: Annotated[str, Meta(max_length=24)]
    performance_id: Id
    tickets: Annotated[list[TicketOp], Meta(min_length=1, max_length=50)]


def apply_sale(db: sqlite3.Connection, node_id: str, role: str, op: SaleOp) -> None:
    """Hub: a desk's sale arrives. Channel and payment rule come from the node's role, each
    seat's zone and price from the hub's plan and price list; every seat must (still) be in
    that desk's pool and unsold. A difference is refused, never stored as sent."""
    if op.node_id != node_id:
        raise Conflict("sale recorded by another node than the one that pushed it")
    channel = desk_channel(role)
    if op.channel != channel:
        raise Conflict(f"a {role} sells through the {channel} channel, not {op.channel}")
    check_payment(channel, op.payment_method, op.payment_reference)
    if not op.number.startswith(series_prefix(node_id) + "-"):
        raise Conflict(f"sale number {op.number} is not from this node's series {series_prefix(node_id)}")
    seat_ids = [t.seat_id for t in op.tickets]
    if len(set(seat_ids)) != len(seat_ids):
        raise Conflict("a seat is listed twice")
    offered = contingents.some_seats(db, op.performance_id, seat_ids)
    pool = contingents.node_pool(node_id)
    for ticket in op.tickets:
        seat = offered.get(ticket.seat_id)
        if seat is None:
            raise Conflict(f"seat {ticket.seat_id} is not part of this performance")
        holder = contingents.pool_of(db, op.performance_id, ticket.seat_id)
        if holder != pool:
            raise Conflict(f"seat {ticket.seat_id} was not in this desk's contingent ({holder})")
        price = pricing.ticket_price(db, op.performance_id, seat["zone_id"])
        if (ticket.zone_id, ticket.price_cents) != (seat["zone_id"], price):
            raise Conflict(f"seat {ticket.seat_id} costs {price} cents in its zone at the hub, "
                           f"not {ticket.price_cents} cents")
        if db.execute("SELECT 1 FROM tickets WHERE performance_id = ? AND seat_id = ? AND status = 'sold'",
                      (op.performance_id, ticket.seat_id)).fetchone():
            raise Conflict(f"seat {ticket.seat_id} is already sold")
    if op.total_cents != sum(t.price_cents for t in op.tickets):
        raise Conflict("sale total is not the sum of its tickets")
    _store(db, msgspec.structs.asdict(op) | {"tickets": [msgspec.structs.asdict(t) for t in op.tickets]})


register(OpKind(
    "sale.completed", SaleOp, CASHDESK, lambda p, b: apply_sale(p.db, p.node_id, p.role, b),
    "channel from the node's role; payment rule of a desk; each seat's zone and price from the hub's "
    "plan and price list; seats in this desk's pool and unsold; total; number in the node's series"))

