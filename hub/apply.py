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

from core import cardcode, contingents, sales
from core.access import accept_entry
from core.clock import iso
from core.credentials import BadRecord, TrustStore
from core.errors import TesseraError
from core.ids import uuid7
from core.storage import transaction
from core.sync_messages import Op, OpResult

log = logging.getLogger("tessera.sync")

Handler = Callable[[sqlite3.Connection, str, dict, TrustStore, dt.datetime], None]


class Rejected(Exception):
    """An op that breaks a rule: it becomes a conflict."""


def apply_entry(db: sqlite3.Connection, node_id: str, body: dict, trust: TrustStore, now: dt.datetime) -> None:
    accept_entry(db, trust, body["record"], now, node_id=node_id)


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


HANDLERS: dict[str, Handler] = {
    "entry.recorded": apply_entry,
    "card.issued": apply_card, "card.reissued": apply_card, "card.revoked": apply_card,
    "sale.completed": apply_sale,
    "pool.released": apply_release,
}


def apply_push(db: sqlite3.Connection, node_id: str, ops: list[Op], trust: TrustStore,
               now: dt.datetime) -> list[OpResult]:
    """Apply a batch of ops from one node, in node_seq order, in one transaction."""
    results = []
    received = iso(now)
    with transaction(db):
        for op in sorted(ops, key=lambda o: o.node_seq):
            seen = db.execute("SELECT op_id, status, reason FROM sync_ops WHERE node_id = ? AND node_seq = ?",
                              (node_id, op.node_seq)).fetchone()
            if seen is not None:
                if seen["op_id"] != op.id:
                    log.warning("node %s reused node_seq %s for another op", node_id, op.node_seq)
                    results.append(OpResult(node_seq=op.node_seq, status="rejected",
                                            reason="node_seq already used by another op"))
                else:
                    results.append(OpResult(node_seq=op.node_seq, status="duplicate", reason=seen["reason"]))
                continue
            reason = _apply_one(db, node_id, op, trust, now)
            db.execute("INSERT INTO sync_ops (node_id, node_seq, op_id, kind, wall_time, received_at, status, reason) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (node_id, op.node_seq, op.id, op.kind, op.wall_time, received,
                        "rejected" if reason else "applied", reason))
            if reason:
                db.execute("INSERT INTO conflicts (id, node_id, node_seq, kind, body, reason, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (uuid7(), node_id, op.node_seq, op.kind, msgspec.json.encode(op.body).decode(), reason,
                            received))
            results.append(OpResult(node_seq=op.node_seq, status="rejected" if reason else "applied", reason=reason))
    return results


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
