"""New customers at a desk, offline too, and the hub's check of them (`customer.created`).

A box office sells a subscription to a new subscriber while the network is down, and a
subscription needs a customer. So a cash desk or counter may create one itself, with the
hub's rules (`Customers`: structured address, e-mail, phone) and a number from the desk's own
series (`KD` + the node id's last 6 hex digits: two offline desks never hand out the same
number, and none clashes with the hub's `KD` series). The row and its op are one transaction.

The hub believes none of it: the body decodes strictly as `CustomerIn`, the address rules run
again, the node is the one that pushed, the number is from that node's series, the id is a
UUIDv7 not yet used for other content and the creation time not ahead of the hub's. The stored
row then reaches every desk through the feed like any customer (the creating desk gets its own
row back, unchanged). Editing a customer stays the office's (hub) job.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from typing import Annotated

import msgspec
from msgspec import Meta

from core.base import outbox
from core.base.clock import iso, parse_iso
from core.base.errors import Conflict
from core.base.ids import is_uuid7, uuid7
from core.base.numbering import next_number
from core.base.storage import transaction
from core.cards.cards import Refused, Stamp
from core.cards.trusted_time import MAX_SKEW
from core.catalog.common import Id
from core.catalog.customers import CUSTOMER_SERIES, CustomerIn, Customers
from core.catalog.resource import get
from core.sync.ops import DESKS, OpKind, Pushed, register

KIND = "customer.created"
_NUMBER = re.compile(r"^(?P<prefix>[A-Z0-9]{1,8})-(?P<year>\d{4})-\d{6}$")


def customer_series(node_id: str) -> str:
    """A desk's customer numbers: `KD` + the node id's last 6 hex digits (the hub's own are `KD`)."""
    return CUSTOMER_SERIES + node_id.replace("-", "")[-6:].upper()


class CustomerOp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`customer.created`: a customer a desk created. `customer` is exactly the hub's input type."""

    id: Id
    number: Annotated[str, Meta(min_length=1, max_length=40)]
    node_id: Id
    customer: CustomerIn
    created_at: Stamp


def _row(id_: str, number: str, data: CustomerIn, created_at: str) -> dict:
    """The customers row for *data*; column names come from `CustomerIn`'s fields, never a body."""
    return {"id": id_, "number": number, **Customers().to_row(data), "created_at": created_at,
            "updated_at": created_at}


def _insert(db: sqlite3.Connection, row: dict) -> None:
    db.execute(f"INSERT INTO customers ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
               tuple(row.values()))


def create_at_desk(db: sqlite3.Connection, node: dict, data: CustomerIn, now: dt.datetime) -> dict:
    """Edge: store a new customer numbered from this node's series and queue its op, in one
    transaction (either both exist after a power cut or neither). Returns the customer record."""
    if node["role"] not in DESKS:
        raise Conflict(f"a {node['role']} keeps no customers; create them at a desk or in the office")
    resource = Customers()
    now = now.astimezone(dt.UTC)  # the number's year is the UTC year the hub checks it against
    created_at = iso(now)
    with transaction(db):
        resource.check(db, data, None)
        number = next_number(db, customer_series(node["id"]), now.year, node["id"])
        row = _row(uuid7(), number, data, created_at)
        _insert(db, row)
        op = CustomerOp(id=row["id"], number=number, node_id=node["id"], customer=data, created_at=created_at)
        outbox.record(db, "customer.created", op, wall_time=created_at)
    return get(db, resource, row["id"])


def apply_created(p: Pushed, op: CustomerOp) -> None:
    """Hub: a desk's new customer arrives. Everything is checked again; an identical re-push is
    a no-op, anything else that does not fit is refused (a conflict for the office)."""
    if op.node_id != p.node_id:
        raise Refused("customer recorded by another node than the one that pushed it")
    series = customer_series(p.node_id)
    number = _NUMBER.match(op.number)
    if number is None or number["prefix"] != series:
        raise Refused(f"customer number {op.number} is not from this node's series {series}")
    created = parse_iso(op.created_at)
    if created - p.now > MAX_SKEW:
        raise Refused(f"customer created at {op.created_at}, after the hub's time {iso(p.now)}")
    if int(number["year"]) != created.year:
        raise Refused(f"customer number {op.number} is not from the year it was created ({created.year})")
    if not is_uuid7(op.id):
        raise Refused(f"customer id {op.id} is not a UUIDv7")
    Customers().check(p.db, op.customer, None)  # the address rules (postcode per country)
    row = _row(op.id, op.number, op.customer, op.created_at)
    stored = p.db.execute("SELECT * FROM customers WHERE id = ?", (op.id,)).fetchone()
    if stored is not None:
        if {k: stored[k] for k in row} == row:
            return  # the same customer pushed again: nothing to do
        raise Refused(f"customer {op.id} exists already with other data")
    if p.db.execute("SELECT 1 FROM customers WHERE number = ?", (op.number,)).fetchone():
        raise Refused(f"customer number {op.number} is taken already")
    _insert(p.db, row)


register(OpKind(
    KIND, CustomerOp, DESKS, apply_created,
    "the customer decoded and checked as the hub's own input (address, postcode per country, e-mail, phone); "
    "node = the pushing node; number in the node's series and of the year it was created; id a UUIDv7 not used "
    "for other content (an identical re-push is a no-op); creation time not ahead of the hub's"))
