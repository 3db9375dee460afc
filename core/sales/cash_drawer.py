"""A desk's cash drawer (S11 "cash: given, change, float"): what must be in it, and what was counted.

The day's takings by method come from the payment rows (`orders.day_summary`); the drawer adds
what only the desk knows: the opening float (Wechselgeld, Anfangsbestand), cash put in (Einlage)
or taken out (Entnahme: to the safe, to the bank) during the day, and the count at closing.
What should be in the drawer is the float plus what went in, less what came out, plus the day's
cash payment rows (sales less cash refunds; the change given back is never in a row, so it needs
no subtraction). The count against it is the day's difference (Kassendifferenz).

Entries are written at the desk, offline too, and never changed: a wrong one is corrected by a
later one (the last float and the last count of a day are the ones that count). Each is pushed to
the hub as a `cash.moved` op, so the office sees every desk's closing; the hub checks that the
entry is the pushing node's own, well-formed and not from the future, and stores it once.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base import outbox
from core.base.clock import day_end, day_start, iso, parse_iso
from core.base.errors import Conflict
from core.base.ids import is_uuid7, uuid7
from core.base.money import MAX_CENTS
from core.base.storage import transaction
from core.cards.cards import Refused, Stamp
from core.cards.trusted_time import MAX_SKEW
from core.catalog.common import Body, Id
from core.sync.ops import DESKS, OpKind, Pushed, register

Kind = Literal["float", "deposit", "withdrawal", "count"]
KIND = "cash.moved"
COLUMNS = ("id", "node_id", "kind", "amount_cents", "operator", "note", "created_at")
Note = Annotated[str, Meta(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]


class CashIn(Body, kw_only=True):
    """One entry of the drawer, as the desk's operator makes it."""

    kind: Kind
    amount_cents: Annotated[int, Meta(ge=0, le=MAX_CENTS)]
    note: Note | None = None


class CashOp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`cash.moved`: a drawer entry a desk made."""

    id: Id
    node_id: Id
    kind: Kind
    amount_cents: Annotated[int, Meta(ge=0, le=MAX_CENTS)]
    operator: Annotated[str, Meta(max_length=100)] | None = None
    note: Note | None = None
    created_at: Stamp


def record_at_desk(db: sqlite3.Connection, node: dict, data: CashIn, operator: str | None,
                   now: dt.datetime) -> dict:
    """Edge: store the entry and queue its op, in one transaction."""
    if node["role"] not in DESKS:
        raise Conflict(f"a {node['role']} has no cash drawer")
    row = {"id": uuid7(), "node_id": node["id"], "kind": data.kind, "amount_cents": data.amount_cents,
           "operator": operator, "note": (data.note or "").strip() or None, "created_at": iso(now)}
    with transaction(db):
        _insert(db, row)
        outbox.record(db, "cash.moved", msgspec.convert(row, CashOp), wall_time=row["created_at"])
    return row


def _insert(db: sqlite3.Connection, row: dict) -> None:
    db.execute(f"INSERT INTO cash_movements ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
               tuple(row[c] for c in COLUMNS))


def drawer(db: sqlite3.Connection, node_id: str, day: dt.date) -> dict:
    """The drawer of *node_id* on *day* (at the venues): float, in, out, cash takings, what
    should be there, the count and the difference (None before a count)."""
    start, end = iso(day_start(day)), iso(day_end(day))
    moves = db.execute("SELECT * FROM cash_movements WHERE node_id = ? AND created_at BETWEEN ? AND ? "
                       "ORDER BY created_at, id", (node_id, start, end)).fetchall()
    takings = db.execute("SELECT coalesce(sum(amount_cents), 0) AS c FROM payments WHERE node_id = ? AND method = "
                         "'cash' AND state = 'paid' AND created_at BETWEEN ? AND ?",
                         (node_id, start, end)).fetchone()["c"]
    last = {m["kind"]: m["amount_cents"] for m in moves}  # in time order: the last of each kind wins
    deposits = sum(m["amount_cents"] for m in moves if m["kind"] == "deposit")
    withdrawals = sum(m["amount_cents"] for m in moves if m["kind"] == "withdrawal")
    expected = last.get("float", 0) + deposits - withdrawals + takings
    counted = last.get("count")
    return {"day": day.isoformat(), "float_cents": last.get("float"), "deposits_cents": deposits,
            "withdrawals_cents": withdrawals, "cash_takings_cents": takings, "expected_cents": expected,
            "counted_cents": counted, "difference_cents": None if counted is None else counted - expected,
            "entries": moves}


def apply_pushed(p: Pushed, op: CashOp) -> None:
    """Hub: a desk's drawer entry arrives; stored once (an identical re-push is a no-op)."""
    if op.node_id != p.node_id:
        raise Refused("cash entry recorded by another node than the one that pushed it")
    if not is_uuid7(op.id):
        raise Refused(f"cash entry id {op.id} is not a UUIDv7")
    made = parse_iso(op.created_at)
    if made - p.now > MAX_SKEW:
        raise Refused(f"cash entry made at {op.created_at}, after the hub's time {iso(p.now)}")
    enrolled = p.db.execute("SELECT min(issued_at) AS at FROM node_certs WHERE node_id = ?", (p.node_id,)).fetchone()
    if enrolled["at"] is None or made < parse_iso(enrolled["at"]) - MAX_SKEW:
        raise Refused(f"cash entry made at {op.created_at}, before this node was enrolled")
    row = {c: getattr(op, c) for c in COLUMNS}
    stored = p.db.execute("SELECT * FROM cash_movements WHERE id = ?", (op.id,)).fetchone()
    if stored is not None:
        if stored == row:
            return
        raise Refused(f"cash entry {op.id} exists already with other data")
    _insert(p.db, row)


register(OpKind(
    KIND, CashOp, DESKS, apply_pushed,
    "node = the pushing node; kind and amount within bounds; id a UUIDv7 stored once (an identical re-push is a "
    "no-op, other content under the same id refused); time not ahead of the hub's and not before the node was "
    "enrolled"))
