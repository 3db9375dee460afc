"""Issuing, re-issuing and revoking signed cards (E4).

Whichever node sells a card signs it with its own node key: the hub for online and phone
sales, a cash desk or counter offline. A re-issue (lost card) keeps the card id and number
and raises the issue number, so every gate that knows the new issue refuses the old code
as SUPERSEDED. On an edge each change also goes to the outbox in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core import cardcode, keys, outbox
from core.catalog.annual import add_months, validity_window
from core.clock import LOCAL_TZ, day_end, day_start, iso, parse_iso
from core.errors import Conflict, NotFound, ValidationError
from core.ids import uuid7
from core.node import this_node
from core.numbering import next_number
from core.storage import transaction

# A from-first-entry card must be used for the first time within this many months of the
# sale; its code carries sale .. sale + ACTIVATION + months as the outer validity window.
ACTIVATION_MONTHS = 12
VOUCHER_YEARS = 3
CARD_SERIES = "C"


@dataclass(frozen=True)
class NodeSigner:
    """This node's current signing key."""

    node_id: str
    role: str
    key_id: int
    private: Ed25519PrivateKey


def load_signer(db: sqlite3.Connection, data_dir: Path) -> NodeSigner:
    node = this_node(db)
    if node["key_id"] is None:
        raise Conflict("this node has no signing key yet (enroll it first)")
    for name in (keys.NODE_KEY_FILE, keys.NODE_KEY_FILE + ".new"):  # .new: a key rotation cut short
        path = Path(data_dir) / name
        if path.exists():
            private = keys.read_private(path)
            if keys.key_id(keys.public_bytes(private)) == node["key_id"]:
                break
    else:
        raise Conflict("node.key does not match the key this node is certified for")
    return NodeSigner(node["id"], node["role"], node["key_id"], private)


def product_code(db: sqlite3.Connection, product_id: str, kind: str) -> int:
    """The small number that stands for a product inside card codes. Only the hub gives
    new ones out, so all replicas agree; an edge asks its replica."""
    row = db.execute("SELECT code FROM card_products WHERE product_id = ?", (product_id,)).fetchone()
    if row:
        return row["code"]
    if this_node(db)["role"] != "hub":
        raise Conflict("this product has no card code on this node yet; sync with the hub first")
    with transaction(db):
        row = db.execute("INSERT INTO card_products (code, product_id, kind) "
                         "SELECT coalesce(max(code), 0) + 1, ?, ? FROM card_products RETURNING code",
                         (product_id, kind)).fetchone()
    return row["code"]


def default_validity(db: sqlite3.Connection, product_id: str, kind: str,
                     sold_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The validity window a card of *product_id* gets when sold at *sold_at*."""
    if kind == "annual":
        product = _require(db, "annual_products", product_id, "annual-ticket product")
        window = validity_window(product, sold_at.date(), None)
        if window is None:  # from first entry: the gate narrows it at the first scan
            return sold_at, day_end(add_months(sold_at.date(), ACTIVATION_MONTHS + product["months"]))
        return day_start(window[0]), day_end(window[1])
    if kind == "voucher":
        return sold_at, day_end(sold_at.date().replace(year=sold_at.year + VOUCHER_YEARS))
    if kind == "subscription":
        product = _require(db, "subscription_products", product_id, "subscription product")
        season = db.execute("SELECT starts_on, ends_on FROM seasons WHERE id = ?", (product["season_id"],)).fetchone()
        return (day_start(dt.date.fromisoformat(season["starts_on"])),
                day_end(dt.date.fromisoformat(season["ends_on"])))
    performance = _require(db, "performances", product_id, "performance")
    day = parse_iso(performance["starts_at"]).astimezone(LOCAL_TZ).date()
    return day_start(day), day_end(day)


def _require(db: sqlite3.Connection, table: str, id_: str, what: str) -> dict:
    row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (id_,)).fetchone()
    if row is None:
        raise NotFound(f"{what} {id_} does not exist", field="product_id")
    return row


def _minutes(moment: dt.datetime) -> int:
    value = int(moment.timestamp()) // 60
    if not 0 <= value <= cardcode.MAX_MINUTES:
        raise ValidationError(f"{iso(moment)} cannot be written into a card code")
    return value


def sign_card(signer: NodeSigner, *, card_id: str, code: int, kind: str, valid_from: dt.datetime,
              valid_until: dt.datetime, issue: int) -> str:
    payload = cardcode.CardPayload(key_id=signer.key_id, card_id=card_id, product_code=code, kind=kind,
                                   valid_from=_minutes(valid_from), valid_until=_minutes(valid_until), issue=issue)
    signature = signer.private.sign(cardcode.DOMAIN + payload.signed_bytes())
    return cardcode.encode(payload, signature)


# Columns of a card a caller may set besides the signed ones (orders, fulfilment: core/orders.py).
DETAIL_COLUMNS = ("order_item_id", "holder_birth_date", "has_photo", "delivery", "fulfilment", "fulfilment_at")


def card_series(signer: NodeSigner) -> str:
    """Card numbers are owned by the node that issues: `C` at the hub, `C` + the last 6 hex
    digits of the node id on an edge, so offline desks never hand out the same number."""
    return CARD_SERIES if signer.role == "hub" else CARD_SERIES + signer.node_id.replace("-", "")[-6:].upper()


def issue_card(db: sqlite3.Connection, signer: NodeSigner, *, product_id: str, kind: str, now: dt.datetime,
               customer_id: str | None = None, holder_name: str | None = None,
               valid_from: dt.datetime | None = None, valid_until: dt.datetime | None = None,
               details: dict | None = None) -> dict:
    """Issue a new signed card. *now* is trusted time: the card id carries it as signing time.
    *details* (see DETAIL_COLUMNS) are stored with the card and travel in the same op."""
    details = _details(details)
    if kind not in cardcode.KIND_CODES:
        raise ValidationError(f"kind must be one of {', '.join(cardcode.KIND_CODES)}", field="kind")
    if signer.role not in ("hub", "cashdesk", "counter"):
        raise Conflict(f"a {signer.role} node does not issue cards")
    with transaction(db):  # a refused card leaves nothing behind, not even a product code
        code = product_code(db, product_id, kind)
        default_from, default_until = default_validity(db, product_id, kind, now)
        valid_from, valid_until = valid_from or default_from, valid_until or default_until
        if valid_until < valid_from:
            raise ValidationError("valid_until is before valid_from", field="valid_until")
        card_id = uuid7(int(now.timestamp() * 1000))
        text = sign_card(signer, card_id=card_id, code=code, kind=kind, valid_from=valid_from,
                         valid_until=valid_until, issue=1)
        number = next_number(db, card_series(signer), now.year, signer.node_id)
        extra = "".join(f", {c}" for c in details)
        card = db.execute(
            "INSERT INTO cards (id, number, product_id, kind, customer_id, holder_name, valid_from, valid_until, "
            f"issue, key_id, code, issued_by, issued_at, created_at, updated_at{extra}) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?{', ?' * len(details)}) RETURNING *",
            (card_id, number, product_id, kind, customer_id, holder_name, iso(valid_from), iso(valid_until),
             signer.key_id, text, signer.node_id, iso(now), iso(now), iso(now), *details.values())).fetchone()
        _record(db, signer, "card.issued", card)
    return card


def _details(details: dict | None) -> dict:
    details = dict(details or {})
    unknown = set(details) - set(DETAIL_COLUMNS)
    if unknown:
        raise ValueError(f"not card detail columns: {sorted(unknown)}")
    return details


def reissue_card(db: sqlite3.Connection, signer: NodeSigner, card_id: str, now: dt.datetime,
                 details: dict | None = None) -> dict:
    """A new code for a lost card: issue + 1; the old code becomes SUPERSEDED."""
    details = _details(details)
    with transaction(db):
        card = _card(db, card_id)
        if card["revoked_at"]:
            raise Conflict(f"card {card['number']} is revoked; issue a new card instead")
        issue = card["issue"] + 1
        if issue > 0xFFFF:
            raise Conflict(f"card {card['number']} cannot be re-issued again")
        code = product_code(db, card["product_id"], card["kind"])
        text = sign_card(signer, card_id=card_id, code=code, kind=card["kind"],
                         valid_from=parse_iso(card["valid_from"]), valid_until=parse_iso(card["valid_until"]),
                         issue=issue)
        extra = "".join(f"{c} = ?, " for c in details)
        card = db.execute(f"UPDATE cards SET issue = ?, key_id = ?, code = ?, issued_by = ?, issued_at = ?, {extra}"
                          "updated_at = ? WHERE id = ? RETURNING *",
                          (issue, signer.key_id, text, signer.node_id, iso(now), *details.values(), iso(now),
                           card_id)).fetchone()
        _record(db, signer, "card.reissued", card)
    return card


def revoke_card(db: sqlite3.Connection, signer: NodeSigner, card_id: str, reason: str, now: dt.datetime) -> dict:
    with transaction(db):
        card = _card(db, card_id)
        if card["revoked_at"] is None:
            card = db.execute("UPDATE cards SET revoked_at = ?, revoke_reason = ?, updated_at = ? WHERE id = ? "
                              "RETURNING *", (iso(now), reason, iso(now), card_id)).fetchone()
            _record(db, signer, "card.revoked", card)
    return card


def _card(db: sqlite3.Connection, card_id: str) -> dict:
    card = db.execute("SELECT * FROM cards WHERE id = ?", (card_id,)).fetchone()
    if card is None:
        raise NotFound(f"card {card_id} does not exist")
    return card


def _record(db: sqlite3.Connection, signer: NodeSigner, kind: str, card: dict) -> None:
    """Edges queue the change for the hub; the hub is where the change feed starts."""
    if signer.role != "hub":
        outbox.append(db, kind, {k: card[k] for k in card if k not in ("created_at", "updated_at")},
                      wall_time=card["updated_at"])  # the caller's (trusted) time, like every other op
