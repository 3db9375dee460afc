"""Personalization links (A3): one per card of a shop order, sent in the order mail.

The token in a link is 256 random bits and only its SHA-256 is stored, so a leaked database
does not hand out cards. A link is open until it expires or is used; it is closed in the
same transaction as its card is issued, so a link issues at most one card. The customer's
pages for a link (`/p/<token>`) are in hub/web/personalize.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import sqlite3

from core.base.clock import iso, parse_iso
from core.base.storage import transaction
from core.cards.cards import NodeSigner
from core.sales import orders

LINK_DAYS = 60
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,100}")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def create_links(db: sqlite3.Connection, item_ids: list[str], now: dt.datetime,
                 days: int = LINK_DAYS) -> dict[str, str]:
    """One new link per item (inside the caller's transaction); returns item id -> token.
    The token is returned once, for the mail, and never stored."""
    tokens = {}
    expires = iso(now + dt.timedelta(days=days))
    for item_id in item_ids:
        token = secrets.token_urlsafe(32)
        db.execute("INSERT INTO personalization_links (token_hash, item_id, expires_at, created_at) "
                   "VALUES (?, ?, ?, ?)", (token_hash(token), item_id, expires, iso(now)))
        tokens[item_id] = token
    return tokens


def link_state(link: dict, now: dt.datetime) -> str:
    """open, used or expired (a used link stays `used` after its expiry)."""
    if link["used_at"]:
        return "used"
    return "expired" if parse_iso(link["expires_at"]) <= now else "open"


def links_of_order(db: sqlite3.Connection, order_id: str) -> dict[str, dict]:
    """item id -> its link row (without the hash: nobody needs it outside this module)."""
    rows = db.execute("SELECT l.item_id, l.expires_at, l.used_at FROM personalization_links l "
                      "JOIN order_lines i ON i.id = l.item_id WHERE i.order_id = ?", (order_id,)).fetchall()
    return {row["item_id"]: row for row in rows}


def find_link(db: sqlite3.Connection, token: str) -> dict | None:
    """The link of *token* with what its page shows (product, validity, order number), or
    None for a token that is malformed or unknown."""
    if not TOKEN_RE.fullmatch(token):
        return None
    return db.execute(
        "SELECT l.*, i.product_id, i.card_id, i.kind, p.name AS product, p.validity_mode, p.months, "
        "p.valid_from AS product_from, p.valid_until AS product_until, o.number AS order_number "
        "FROM personalization_links l JOIN order_lines i ON i.id = l.item_id "
        "JOIN orders o ON o.id = i.order_id JOIN annual_products p ON p.id = i.product_id "
        "WHERE l.token_hash = ?", (token_hash(token),)).fetchone()


def card_number(db: sqlite3.Connection, link: dict) -> str | None:
    """The number of the card a used link issued (None if it has none)."""
    row = db.execute("SELECT number FROM cards WHERE id = ?", (link["card_id"],)).fetchone()
    return row["number"] if row else None


def personalize(db: sqlite3.Connection, signer: NodeSigner, link: dict, holder: orders.HolderIn,
                now: dt.datetime, *, photo: tuple[str, bytes] | None = None) -> dict | None:
    """Close the link and issue its item's card, together or not at all. None if the link
    was closed already (by a request that got here first)."""
    with transaction(db):
        closed = db.execute("UPDATE personalization_links SET used_at = ? WHERE token_hash = ? "
                            "AND used_at IS NULL", (iso(now), link["token_hash"])).rowcount
        if not closed:
            return None
        return orders.personalize_item(db, signer, link["item_id"], holder, now, photo=photo)
