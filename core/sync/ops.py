"""The typed operation registry (DESIGN §4): what a node may ask the hub to do.

An operation from an edge is a *request*, not a row. For every op kind this one table says
the strict body type (msgspec, unknown fields refused), the node roles that may send it,
the hub's apply function, and what a rejection does besides becoming a conflict. The hub
(`hub/sync/apply.py`) applies ops generically through it: an op kind not listed here, sent by a
role not listed for it, or with a body that does not decode, is a conflict; so is an op
whose apply function refuses it. Apply functions re-derive everything the hub can work out
itself (prices, totals, VAT, channel, payment rule, card validity, who signed what) from its
own catalog and the node's certificate, and compare: a difference is refused, never stored
as sent. No SQL identifier anywhere comes from a body.

The registry sits on top of the domains it dispatches to (cards, access, orders, sales,
contingents); nothing in those imports it. Edges record ops with `core.base.outbox.record()`
and the body types named here.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from core.cards import cards, fulfilment
from core.cards.access import EntryOp, check_entry_signatures, verify_pushed_entry
from core.cards.cards import CardOp
from core.cards.fulfilment import FulfilmentOp
from core.cards.trust import TrustStore

# What the card rooms' hub functions do with a pushed op (cards.apply_* raise Refused).
DESKS = frozenset({"cashdesk", "counter"})
CASHDESK = frozenset({"cashdesk"})
GATES = frozenset({"gate"})


@dataclass(frozen=True)
class Pushed:
    """Who pushed, as the hub knows it: the node id its key is certified for, the role in
    that certificate, the venues it was enrolled for; the hub's trust store and time."""

    db: sqlite3.Connection
    node_id: str
    role: str
    venue_ids: tuple[str, ...]
    trust: TrustStore
    now: dt.datetime
    prechecked: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpKind:
    kind: str
    body: type[msgspec.Struct]
    roles: frozenset[str]
    apply: Callable[[Pushed, Any], None] | None
    rederives: str  # what the hub works out itself instead of believing the body (docs, note)
    on_reject: Callable[[Pushed, Any, str], None] | None = None
    # Ops a gate sends by the thousand take a batched path: `row` checks one and returns the
    # row to insert, `flush` writes a batch (one executemany, in the push's transaction).
    row: Callable[[Pushed, Any], tuple] | None = None
    flush: Callable[[sqlite3.Connection, list[tuple]], None] | None = None
    # Work on all undecoded bodies of this kind in a push before any is applied (verifying many
    # signatures at once); its result is handed to `row`/`apply` as `pushed.prechecked[kind]`.
    precheck: Callable[[Pushed, list[object]], Any] | None = None


def _flush_entries(db: sqlite3.Connection, rows: list[tuple]) -> None:
    db.executemany("INSERT INTO entries (id, card_id, card_issue, venue_id, node_id, direction, at, record, "
                   "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)


REGISTRY: dict[str, OpKind] = {}


def register(kind: OpKind) -> OpKind:
    """Add an op kind; a kind is registered once (a second registration is a programming error)."""
    if kind.kind in REGISTRY and REGISTRY[kind.kind] is not kind:
        raise RuntimeError(f"op kind {kind.kind} is registered twice")
    if (kind.apply is None) == (kind.row is None):
        raise RuntimeError(f"op kind {kind.kind} needs either an apply function or a batched row")
    REGISTRY[kind.kind] = kind
    return kind


register(OpKind(
    "card.issued", CardOp, DESKS, lambda p, b: cards.apply_issued(p.db, p.node_id, p.trust, b, p.now),
    "product, kind, validity, issue and key from the signed code (signed by a card key of the pushing "
    "node, valid at the card id's time; a key revoked for cause: not later than the last op the hub saw from "
    "the node before the revocation); product valid at a venue the node's certificate names; validity checked "
    "against the product at the time of sale; "
    "issued_by = the pushing node; issued_at = the card id's time; number in the node's series; "
    "delivery, fulfilment and photo flag set by the hub; holder birth date in the past; a subscription's pass or "
    "single ticket by the rule its room registered (cards.DESK_CARD_RULES); refused, such a card genuinely "
    "signed by the node is kept as revoked",
    on_reject=lambda p, b, reason: cards.void_refused_desk_card(p.db, p.node_id, p.trust, b, reason, p.now)))
register(OpKind(
    "card.revoked", CardOp, DESKS, lambda p, b: cards.apply_revoked(p.db, p.node_id, p.trust, b, p.now),
    "only a card the pushing node issued; only ever sets a revocation, at the latest at the hub's time"))
register(OpKind(
    "card.fulfilment", FulfilmentOp, DESKS, lambda p, b: fulfilment.apply_fulfilment(p.db, b, p.now),
    "only forward moves allowed by the card's delivery; stale moves ignored; time capped at the hub's"))
register(OpKind(
    "entry.recorded", EntryOp, GATES, None,
    "the record's signature by a gate key of the pushing node, valid at the entry's time; venue in the "
    "gate's scope; time equal to the one in its id (2 s), not ahead of the push, not before the card's "
    "issue or validity or the gate's certificate",
    row=lambda p, b: verify_pushed_entry(p.db, p.trust, p.node_id, list(p.venue_ids), b.record, p.now,
                                         p.prechecked.get("entry.recorded")),
    flush=_flush_entries,
    precheck=lambda p, bodies: check_entry_signatures(
        p.trust, [b.get("record") for b in bodies if isinstance(b, dict)])))


class BadOp(Exception):
    """An op the registry refuses before any rule runs: unknown kind, wrong role, bad body."""


def decode(kind: str, role: str, body: object) -> tuple[OpKind, msgspec.Struct]:
    """The registered kind and the strictly decoded body, or BadOp saying why not."""
    entry = REGISTRY.get(kind)
    if entry is None:
        raise BadOp(f"unknown operation {kind}")
    if role not in entry.roles:
        raise BadOp(f"a {role} node may not send {kind}")
    if _holds_nul(body):  # before the decoder, whose message would quote it
        raise BadOp(f"malformed {kind}: a text holds a NUL character")
    try:
        return entry, msgspec.convert(body, entry.body, strict=True)
    except msgspec.ValidationError as exc:
        raise BadOp(f"malformed {kind}: {exc}") from None


def _holds_nul(value: object) -> bool:
    """Whether a text in *value* (a key or a value, at any depth) holds U+0000. No field of any
    op may: PostgreSQL's text refuses it (SQLite would store it), so both backends refuse the op
    the same way, as malformed, and the reason does not quote it."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False
