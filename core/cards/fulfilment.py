"""Fulfilment of personalized cards (A8): personalized -> printed -> dispatched (mail) or
deposited (pickup) -> handed over, only forward, only along the card's delivery.

`set_fulfilment()` moves cards at any node (the office in bulk, a desk handing a card over,
the print queue when a card is printed); on an edge each move is a `card.fulfilment`
operation, and `apply_fulfilment()` is the hub's side of it: a stale move arriving late
changes nothing, an impossible one is a conflict.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base import outbox
from core.base.clock import iso, parse_iso
from core.base.errors import Conflict, NotFound
from core.base.storage import transaction
from core.cards.cards import Refused, Stamp
from core.catalog.common import Body, Id

FulfilmentState = Literal["personalized", "printed", "dispatched", "deposited", "handed_over"]
RANK = {"personalized": 0, "printed": 1, "dispatched": 2, "deposited": 2, "handed_over": 3}


class FulfilmentIn(Body, kw_only=True):
    card_ids: Annotated[list[Id], Meta(min_length=1, max_length=1000)]
    state: FulfilmentState




def set_fulfilment(db: sqlite3.Connection, node: dict, card_ids: list[str], state: str,
                   now: dt.datetime) -> list[dict]:
    """Move cards to *state*, all or none. A card already in that state stays as it is."""
    with transaction(db):
        moved = []
        for card_id in dict.fromkeys(card_ids):
            card = db.execute("SELECT * FROM cards WHERE id = ?", (card_id,)).fetchone()
            if card is None:
                raise NotFound(f"card {card_id} does not exist", field="card_ids")
            problem = refusal(card, state)
            if problem:
                raise Conflict(f"card {card['number']}: {problem}", field="card_ids")
            if card["fulfilment"] != state:
                card = _move(db, card, state, now)
                outbox.record(db, "card.fulfilment", FulfilmentOp(id=card["id"], issue=card["issue"],
                                                                  fulfilment=state, at=iso(now)), wall_time=iso(now))
            moved.append(card)
    return moved


def refusal(card: dict, state: str) -> str | None:
    """Why *card* may not move to *state* (None: it may, or it is there already)."""
    current = card["fulfilment"]
    if current == state:
        return None
    if current is None:
        return "is not a personalized card"
    if card["revoked_at"]:
        return "is revoked"
    allowed = {"personalized": {"printed"},
               "printed": {"dispatched", "deposited", "handed_over"},
               "deposited": {"handed_over"}}.get(current, set())
    if state not in allowed:
        return f"cannot go from {current} to {state}"
    need = {"dispatched": "mail", "deposited": "pickup"}.get(state)
    if need and card["delivery"] != need:
        return f"goes by {card['delivery']}, not {need}"
    if current == "printed" and state == "handed_over" and card["delivery"] == "mail":
        return "goes by mail: dispatch it"
    return None


def _move(db: sqlite3.Connection, card: dict, state: str, now: dt.datetime) -> dict:
    return db.execute("UPDATE cards SET fulfilment = ?, fulfilment_at = ?, updated_at = ? WHERE id = ? RETURNING *",
                      (state, iso(now), iso(now), card["id"])).fetchone()


class FulfilmentOp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`card.fulfilment`: a desk moved a card (printed, handed over)."""

    id: Id
    issue: Annotated[int, Meta(ge=1, le=0xFFFF)]
    fulfilment: FulfilmentState
    at: Stamp


def apply_fulfilment(db: sqlite3.Connection, op: FulfilmentOp, now: dt.datetime) -> None:
    """Hub: a desk moved a card. A move that arrives after the card went further (or was
    re-issued) is stale and changes nothing; an impossible move is a conflict. The desk's
    time is capped at the hub's."""
    card = db.execute("SELECT * FROM cards WHERE id = ?", (op.id,)).fetchone()
    if card is None:
        raise Refused(f"card {op.id} does not exist")
    if card["issue"] != op.issue or card["fulfilment"] is None:
        return
    if RANK[op.fulfilment] <= RANK[card["fulfilment"]]:
        return
    problem = refusal(card, op.fulfilment)
    if problem:
        raise Refused(f"card {card['number']}: {problem}")
    _move(db, card, op.fulfilment, min(parse_iso(op.at), now))


