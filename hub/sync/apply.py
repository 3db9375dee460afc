"""Applying pushed ops at the hub: each exactly once, each answered (DESIGN §4, push).

`sync_ops` is keyed by `(node_id, node_seq)`: an op seen before is answered `duplicate`
with its first outcome and never applied again, whatever the network did to the request.
Every op goes through the registry in `core/sync/ops.py`: its kind must be known and
allowed for the pushing node's role, its body must decode strictly, and its apply function
re-derives what it may store. Each op runs in its own savepoint inside one transaction per
push; an op that is refused leaves nothing behind and becomes a *conflict* record for the
office (`/api/v1/conflicts`), never a silent drop (one that only follows from an earlier
conflict, `conflicts.Follows`, is recorded resolved, pointing there). An op stamped more
than the allowed skew (5 min) after it arrived is applied at the hub's time and also noted
there (`stamped_ahead`): a future sale time is never stored silently.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3

import msgspec

from core.base.clock import iso, parse_iso
from core.base.errors import TesseraError
from core.base.ids import uuid7
from core.base.storage import retried, transaction
from core.cards.cardcode import Malformed
from core.cards.trust import BadRecord
from core.cards.trusted_time import MAX_SKEW
from core.sales import cash_drawer, contingents, desk_customers, orders, tickets  # noqa: F401 - importing registers op kinds
from core.subscriptions import desk_redemption, desk_sales  # noqa: F401 - importing registers their op kinds
from core.sync.conflicts import Follows
from core.sync.messages import Op, OpResult
from core.sync.ops import REGISTRY, BadOp, OpKind, Pushed, decode
from hub.services import nodes

log = logging.getLogger("tessera.sync")
# What an apply function may raise for a request it refuses (ValueError and OverflowError:
# a date in a body that its pattern let through but the calendar does not know); anything
# else is a bug and fails the push (a 500 the edge retries), not the device's fault.
REFUSALS = (TesseraError, BadRecord, Malformed, sqlite3.IntegrityError, ValueError, OverflowError)
# Unsigned times in op bodies that the hub stores as sent: restamped with the hub's time when
# the op came from a clock ahead (`stamped_ahead`).
TIME_FIELDS = frozenset({"created_at", "redeemed_at"})


@retried  # a deadlock or serialization failure on PostgreSQL: run again
def apply_push(pushed: Pushed, ops: list[Op]) -> list[OpResult]:
    """Apply a batch of ops from one node, in node_seq order, in one transaction."""
    db, node_id = pushed.db, pushed.node_id
    results: list[OpResult] = []
    received = iso(pushed.now)
    ops = sorted(ops, key=lambda o: o.node_seq)
    if not ops:
        return results
    _precheck(pushed, ops)
    with transaction(db):
        seen = {r["node_seq"]: r for r in db.execute(
            "SELECT node_seq, op_id, status, reason FROM sync_ops WHERE node_id = ? AND node_seq BETWEEN ? AND ?",
            (node_id, ops[0].node_seq, ops[-1].node_seq))}
        logged = []
        batch = _Batch(db)
        for op in ops:
            first = seen.get(op.node_seq)
            if first is not None:
                results.append(_duplicate(node_id, op, first))
                continue
            seen[op.node_seq] = {"op_id": op.id, "status": "applied", "reason": None}  # twice in one batch
            sent, (op, ahead) = op, stamped_ahead(op, pushed.now)
            reason, settled = _apply_one(pushed, op, batch)
            status = "rejected" if reason else "applied"
            logged.append((node_id, op.node_seq, op.id, op.kind, op.wall_time, received, status, reason))
            if reason or ahead:  # a clock ahead is the office's to see even when the op applied
                settled = None if ahead else settled  # at once: a later op of this push may follow it
                db.execute("INSERT INTO conflicts (id, node_id, node_seq, kind, body, reason, created_at, resolved_at, "
                           "resolution) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (uuid7(), node_id, op.node_seq, op.kind, msgspec.json.encode(sent.body).decode(),
                            _noted(reason, ahead), received, received if settled else None, settled))
            results.append(OpResult(node_seq=op.node_seq, status=status, reason=reason))
        batch.flush()
        nodes.note_ops(db, node_id, [row[4] for row in logged if row[6] == "applied"], pushed.now)
        db.executemany("INSERT INTO sync_ops (node_id, node_seq, op_id, kind, wall_time, received_at, status, reason) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", logged)
    return results


class _Batch:
    """Rows of batched kinds (entries) waiting for one executemany; flushed before any other
    op, so the push's order holds."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db, self.kind, self.rows = db, None, []

    def add(self, kind: OpKind, row: tuple) -> None:
        if self.kind is not kind:
            self.flush()
            self.kind = kind
        self.rows.append(row)

    def flush(self) -> None:
        if self.rows:
            self.kind.flush(self.db, self.rows)
        self.kind, self.rows = None, []


def _precheck(pushed: Pushed, ops: list[Op]) -> None:
    """Batch work of the kinds that have it (the signatures of a gate's entries), before the
    transaction: over every op of the kind this node may send, applied before or not (a
    duplicate is answered from the log without looking at its result)."""
    by_kind: dict[str, list[object]] = {}
    for op in ops:
        kind = REGISTRY.get(op.kind)
        if kind is not None and kind.precheck is not None and pushed.role in kind.roles:
            by_kind.setdefault(op.kind, []).append(op.body)
    for name, bodies in by_kind.items():
        pushed.prechecked[name] = REGISTRY[name].precheck(pushed, bodies)


def _duplicate(node_id: str, op: Op, first: dict) -> OpResult:
    if first["op_id"] != op.id:
        log.warning("node %s reused node_seq %s for another op", node_id, op.node_seq)
        return OpResult(node_seq=op.node_seq, status="rejected", reason="node_seq already used by another op")
    return OpResult(node_seq=op.node_seq, status="duplicate", reason=first["reason"])


def _apply_one(pushed: Pushed, op: Op, batch: _Batch) -> tuple[str | None, str | None]:
    """(None, None) when applied, else the reason it was refused (its changes rolled back) and, for
    a refusal that follows an earlier conflict, the resolution its conflict is recorded with."""
    try:
        kind, body = decode(op.kind, pushed.role, op.body)
    except BadOp as exc:
        return str(exc), None
    if kind.row is not None:
        try:
            batch.add(kind, kind.row(pushed, body))
        except REFUSALS as exc:
            return _reason(exc), None
        return None, None
    batch.flush()
    try:
        with transaction(pushed.db):  # a savepoint: a refused op leaves nothing behind
            kind.apply(pushed, body)
    except REFUSALS as exc:
        reason = _reason(exc)
        if kind.on_reject is not None:
            with transaction(pushed.db):
                kind.on_reject(pushed, body, reason)
        return reason, exc.resolution() if isinstance(exc, Follows) else None
    return None, None


def stamped_ahead(op: Op, now: dt.datetime) -> tuple[Op, str | None]:
    """An op whose node time is more than MAX_SKEW after its arrival came from a clock running
    ahead: it is kept at the hub's time (the op log's wall time and the unsigned time fields of
    its body, TIME_FIELDS), with a note saying so; an op on time is returned as it is. Signed
    times (a card id's, an entry's `at`) cannot be restamped: their own checks judge them."""
    try:
        stamped = parse_iso(op.wall_time)
    except ValueError:
        return op, None
    if stamped.tzinfo is None or stamped - now <= MAX_SKEW:
        return op, None
    received = iso(now)
    note = (f"clock ahead: stamped {op.wall_time}, {(stamped - now).total_seconds():.0f} s after it arrived; "
            f"kept at the hub's time {received}")
    body = op.body
    if isinstance(body, dict):
        body = {k: received if k in TIME_FIELDS and _later(v, now) else v for k, v in body.items()}
    return msgspec.structs.replace(op, wall_time=received, body=body), note


def _later(value: object, now: dt.datetime) -> bool:
    try:
        return isinstance(value, str) and parse_iso(value) - now > MAX_SKEW
    except (ValueError, TypeError):
        return False


def _noted(reason: str | None, ahead: str | None) -> str:
    return "; ".join(r for r in (reason, ahead) if r)[:500]


def _reason(exc: Exception) -> str:
    return (getattr(exc, "detail", None) or str(exc))[:500]
