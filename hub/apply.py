"""Applying pushed ops at the hub: each exactly once, each answered (DESIGN §4, push).

`sync_ops` is keyed by `(node_id, node_seq)`: an op seen before is answered `duplicate`
with its first outcome and never applied again, whatever the network did to the request.
Each op runs in its own savepoint inside one transaction per push, through the same core
rules the edge used; a rule that fails turns the op into a *conflict* record for the office
(`/api/v1/conflicts`), never into a silent drop.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Callable

import msgspec

from core import cardcode, contingents, orders, sales
from core.clock import iso
from core.credentials import BadRecord, TrustStore, open_envelope
from core.errors import TesseraError
from core.ids import uuid7
from core.storage import transaction
from core.sync_messages import Op, OpResult

log = logging.getLogger("tessera.sync")

Handler = Callable[[sqlite3.Connection, str, dict, TrustStore, dt.datetime], None]


class Rejected(Exception):
    """An op that breaks a rule: it becomes a conflict."""


def apply_card(db: sqlite3.Connection, node_id: str, body: dict, trust: TrustStore, now: dt.datetime) -> None:
    """A card issued, re-issued or revoked at a desk. Its code must be signed by a key of the
    pushing node and match the record; a lower issue number never overwrites a higher one."""
    card = cardcode.decode(body["code"])
    signer = trust.get(card.payload.key_id)
    if signer is None or signer.node_id != node_id:
        raise Rejected("card code not signed by a key of this node")
    if not _verifies(signer, card) or card.payload.card_id != body["id"] or card.payload.issue != body["issue"]:
        raise Rejected("card code does not match the card record")
    current = db.execute("SELECT issue, revoked_at FROM cards WHERE id = ?", (body["id"],)).fetchone()
    if current and current["issue"] > body["issue"]:
        return  # an older state arriving late: the newer one stays
    columns = [c for c in body if c not in ("created_at", "updated_at")]
    stamp = body.get("issued_at") or iso(now)
    db.execute(f"INSERT INTO cards ({', '.join(columns)}, created_at, updated_at) "
               f"VALUES ({', '.join('?' * len(columns))}, ?, ?) ON CONFLICT (id) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in columns if c != "id") + ", updated_at = excluded.updated_at",
               (*[body[c] for c in columns], stamp, iso(now)))


def _verifies(signer, card: cardcode.SignedCard) -> bool:
    try:
        signer.public.verify(card.signature, card.message)
    except Exception:
        return False
    return True


def apply_sale(db: sqlite3.Connection, node_id: str, body: dict, trust: TrustStore, now: dt.datetime) -> None:
    sales.apply_sale(db, node_id, body)


def apply_release(db: sqlite3.Connection, node_id: str, body: dict, trust: TrustStore, now: dt.datetime) -> None:
    contingents.apply_release(db, node_id, body, now)


def apply_order(db: sqlite3.Connection, node_id: str, body: dict, trust: TrustStore, now: dt.datetime) -> None:
    orders.apply_order(db, node_id, body)


def apply_redemption(db: sqlite3.Connection, node_id: str, body: dict, trust: TrustStore, now: dt.datetime) -> None:
    orders.apply_redemption(db, node_id, body, trust)


def apply_fulfilment(db: sqlite3.Connection, node_id: str, body: dict, trust: TrustStore, now: dt.datetime) -> None:
    orders.apply_fulfilment(db, body, now)


HANDLERS: dict[str, Handler] = {
    "card.issued": apply_card, "card.reissued": apply_card, "card.revoked": apply_card,
    "card.fulfilment": apply_fulfilment,
    "sale.completed": apply_sale,
    "pool.released": apply_release,
    "order.placed": apply_order,
    "voucher.redeemed": apply_redemption,
}


def void_exchange(db: sqlite3.Connection, body: dict, reason: str, now: dt.datetime) -> None:
    """A voucher exchanged twice while offline: the card of the exchange that lost is revoked."""
    if isinstance(body, dict) and isinstance(body.get("card_id"), str):
        orders.void_card(db, body["card_id"], reason, now)


# What else happens when an op of this kind is rejected (outside its rolled-back savepoint).
ON_REJECT: dict[str, Callable[[sqlite3.Connection, dict, str, dt.datetime], None]] = {
    "voucher.redeemed": void_exchange,
}


def apply_push(db: sqlite3.Connection, node_id: str, ops: list[Op], trust: TrustStore,
               now: dt.datetime) -> list[OpResult]:
    """Apply a batch of ops from one node, in node_seq order, in one transaction.

    Entries, the bulk of what gates push, take a batched path (checked in Python, written
    with executemany); every other op runs its handler in its own savepoint."""
    results: list[OpResult] = []
    received = iso(now)
    ops = sorted(ops, key=lambda o: o.node_seq)
    if not ops:
        return results
    with transaction(db):
        seen = {r["node_seq"]: r for r in db.execute(
            "SELECT node_seq, op_id, status, reason FROM sync_ops WHERE node_id = ? AND node_seq BETWEEN ? AND ?",
            (node_id, ops[0].node_seq, ops[-1].node_seq))}
        logged, conflicts, entries = [], [], []
        for op in ops:
            first = seen.get(op.node_seq)
            if first is not None:
                results.append(_duplicate(node_id, op, first))
                continue
            seen[op.node_seq] = {"op_id": op.id, "status": "applied", "reason": None}  # twice in one batch
            if op.kind == "entry.recorded":
                entry, reason = _entry_row(node_id, op.body, trust, received)
                if entry:
                    entries.append(entry)
            else:
                _flush_entries(db, entries)
                reason = _apply_one(db, node_id, op, trust, now)
            status = "rejected" if reason else "applied"
            logged.append((node_id, op.node_seq, op.id, op.kind, op.wall_time, received, status, reason))
            if reason and op.kind in ON_REJECT:
                ON_REJECT[op.kind](db, op.body, reason, now)
            if reason:
                conflicts.append((uuid7(), node_id, op.node_seq, op.kind, msgspec.json.encode(op.body).decode(),
                                  reason, received))
            results.append(OpResult(node_seq=op.node_seq, status=status, reason=reason))
        _flush_entries(db, entries)
        db.executemany("INSERT INTO sync_ops (node_id, node_seq, op_id, kind, wall_time, received_at, status, reason) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", logged)
        db.executemany("INSERT INTO conflicts (id, node_id, node_seq, kind, body, reason, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", conflicts)
    return results


def _duplicate(node_id: str, op: Op, first: dict) -> OpResult:
    if first["op_id"] != op.id:
        log.warning("node %s reused node_seq %s for another op", node_id, op.node_seq)
        return OpResult(node_seq=op.node_seq, status="rejected", reason="node_seq already used by another op")
    return OpResult(node_seq=op.node_seq, status="duplicate", reason=first["reason"])


ENTRY_COLUMNS = ("id", "card_id", "card_issue", "venue_id", "node_id", "direction", "at")


def _entry_row(node_id: str, body: dict, trust: TrustStore, received: str) -> tuple[tuple | None, str | None]:
    """An entry pushed by the gate that recorded it. The push itself is signed by that gate,
    so the record's own signature is not checked again here (peer gates check it when they
    receive records directly); it must be a well-formed record of this node's key."""
    try:
        env = open_envelope(body["record"], "entry")
        entry = env.body
        signer = trust.get(env.key_id)
        if signer is None or signer.node_id != node_id or entry.get("node_id") != node_id:
            return None, "entry record not signed by a key of this node"
        if entry["direction"] not in ("in", "out") or not isinstance(entry["card_issue"], int):
            return None, "entry record with malformed fields"
        return (*(entry[c] for c in ENTRY_COLUMNS), body["record"], received), None
    except (BadRecord, KeyError, TypeError) as exc:
        return None, f"malformed entry.recorded: {exc}"


def _flush_entries(db: sqlite3.Connection, entries: list[tuple]) -> None:
    if entries:
        db.executemany("INSERT OR IGNORE INTO entries (id, card_id, card_issue, venue_id, node_id, direction, at, "
                       "record, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", entries)
        entries.clear()


def _apply_one(db: sqlite3.Connection, node_id: str, op: Op, trust: TrustStore, now: dt.datetime) -> str | None:
    """None when applied, else the reason it was rejected (its changes rolled back)."""
    handler = HANDLERS.get(op.kind)
    if handler is None:
        return f"unknown operation {op.kind}"
    try:
        with transaction(db):  # a savepoint: a rejected op leaves nothing behind
            handler(db, node_id, op.body, trust, now)
    except (Rejected, BadRecord, TesseraError, cardcode.Malformed) as exc:
        return getattr(exc, "detail", None) or str(exc)
    except (KeyError, TypeError, ValueError, sqlite3.IntegrityError) as exc:
        return f"malformed {op.kind}: {type(exc).__name__}: {exc}"
    return None
