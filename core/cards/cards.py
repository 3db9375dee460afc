"""Issuing, re-issuing and revoking signed cards (E4).

Whichever node sells a card signs it with its own node key: the hub for online and phone
sales, a cash desk or counter offline. A re-issue (lost card) keeps the card id and number
and raises the issue number, so every gate that knows the new issue refuses the old code
as SUPERSEDED. On an edge each change also goes to the outbox in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from msgspec import Meta

from core.base import outbox
from core.base.clock import LOCAL_TZ, day_end, day_start, iso, parse_iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7, uuid7_ms
from core.base.node import this_node
from core.base.numbering import next_number
from core.base.storage import transaction
from core.cards import cardcode, keys
from core.catalog.annual import add_months, validity_window
from core.catalog.common import Id

# A from-first-entry card must be used for the first time within this many months of the
# sale; its code carries sale .. sale + ACTIVATION + months as the outer validity window.
ACTIVATION_MONTHS = 12
VOUCHER_YEARS = 3
START_AHEAD_DAYS = 92  # how far ahead a buyer may start a from-purchase card
CARD_SERIES = "C"
# A single ticket (kind 3) admits from this long before its performance starts until this long
# after (latecomers); the gate rules for performances follow in issue 14 (docs/card-format.md).
ENTRY_BEFORE = dt.timedelta(hours=2)
ENTRY_AFTER = dt.timedelta(hours=1)


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


def product_code(db: sqlite3.Connection, product_id: str, kind: str, sent: sqlite3.Cursor | None = None) -> int:
    """The small number that stands for a product inside card codes. Only the hub gives
    new ones out, so all replicas agree; an edge asks its replica. (*sent*: `_code_sent`, if
    the caller asked it already.)"""
    row = (sent if sent is not None else _code_sent(db, product_id)).fetchone()
    if row:
        return row["code"]
    if this_node(db)["role"] != "hub":
        raise Conflict("this product has no card code on this node yet; sync with the hub first")
    with transaction(db):
        row = db.execute("INSERT INTO card_products (code, product_id, kind) "
                         "SELECT coalesce(max(code), 0) + 1, ?, ? FROM card_products RETURNING code",
                         (product_id, kind)).fetchone()
    return row["code"]


def _code_sent(db: sqlite3.Connection, product_id: str) -> sqlite3.Cursor:
    return db.execute("SELECT code FROM card_products WHERE product_id = ?", (product_id,))


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
        season = db.execute("SELECT s.starts_on, s.ends_on FROM subscription_products p "
                            "JOIN seasons s ON s.id = p.season_id WHERE p.id = ?", (product_id,)).fetchone()
        if season is None:
            raise NotFound(f"subscription product {product_id} does not exist", field="product_id")
        return (day_start(dt.date.fromisoformat(season["starts_on"])),
                day_end(dt.date.fromisoformat(season["ends_on"])))
    performance = _require(db, "performances", product_id, "performance")
    starts = parse_iso(performance["starts_at"])
    return starts - ENTRY_BEFORE, starts + ENTRY_AFTER  # a single ticket's entry window


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


# Columns of a card a caller may set besides the signed ones (orders, fulfilment: core/sales/orders.py).
DETAIL_COLUMNS = ("order_item_id", "holder_birth_date", "has_photo", "delivery", "fulfilment", "fulfilment_at")


def card_series(signer: NodeSigner) -> str:
    """Card numbers are owned by the node that issues: `C` at the hub, `C` + the last 6 hex
    digits of the node id on an edge, so offline desks never hand out the same number."""
    return CARD_SERIES if signer.role == "hub" else edge_card_series(signer.node_id)


def edge_card_series(node_id: str) -> str:
    return CARD_SERIES + node_id.replace("-", "")[-6:].upper()


def issue_card(db: sqlite3.Connection, signer: NodeSigner, *, product_id: str, kind: str, now: dt.datetime,
               customer_id: str | None = None, holder_name: str | None = None,
               valid_from: dt.datetime | None = None, valid_until: dt.datetime | None = None,
               details: dict | None = None) -> dict:
    """Issue a new signed card. *now* is trusted time: the card id carries it as signing time.
    *details* (see DETAIL_COLUMNS) are stored with the card and travel in the same op. At the
    hub a chosen window longer than the product gives is refused (gates would refuse the
    card); an edge's windows come from its catalog, and the hub checks what it pushes."""
    details = _details(details)
    if kind not in cardcode.KIND_CODES:
        raise ValidationError(f"kind must be one of {', '.join(cardcode.KIND_CODES)}", field="kind")
    if signer.role not in ("hub", "cashdesk", "counter"):
        raise Conflict(f"a {signer.role} node does not issue cards")
    with transaction(db):  # a refused card leaves nothing behind, not even a product code
        asked = _code_sent(db, product_id)  # goes with default_validity's question
        default_from, default_until = default_validity(db, product_id, kind, now)
        code = product_code(db, product_id, kind, asked)
        valid_from, valid_until = valid_from or default_from, valid_until or default_until
        if valid_until < valid_from:
            raise ValidationError("valid_until is before valid_from", field="valid_until")
        if signer.role == "hub" and (problem := validity_beyond_product(
                db, product_id, kind, now, valid_from, valid_until, own=(default_from, default_until))):
            raise ValidationError(problem, field="valid_until")  # staff typed it; every gate would refuse the card
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


def get_card(db: sqlite3.Connection, card_id: str) -> dict:
    """The stored card (its code included); NotFound if there is none with *card_id*."""
    return _card(db, card_id)


def _card(db: sqlite3.Connection, card_id: str) -> dict:
    card = db.execute("SELECT * FROM cards WHERE id = ?", (card_id,)).fetchone()
    if card is None:
        raise NotFound(f"card {card_id} does not exist")
    return card


def _record(db: sqlite3.Connection, signer: NodeSigner, kind: str, card: dict) -> None:
    """Edges queue the change for the hub (outbox.record does nothing on the hub)."""
    outbox.record(db, kind, card_op(card), wall_time=card["updated_at"])  # the caller's (trusted) time


# --- the card operations a desk sends, and how the hub takes them (core/sync/ops.py) ----------------------

Stamp = Annotated[str, Meta(min_length=20, max_length=24, pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")]
Short = Annotated[str, Meta(max_length=200)]


class CardOp(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`card.issued`, `card.reissued`, `card.revoked`: the card as the desk holds it after the
    change. The hub believes none of it that it can work out itself: what the signed code
    says (id, product, kind, validity, issue, key), who issued it (the pushing node), when
    (the card id's time), and what the product allows."""

    id: Id
    number: Annotated[str, Meta(min_length=1, max_length=40)]
    product_id: Id
    kind: Literal["annual", "subscription", "single", "voucher"]
    customer_id: Id | None = None
    holder_name: Short | None = None
    valid_from: Stamp
    valid_until: Stamp
    issue: Annotated[int, Meta(ge=1, le=0xFFFF)]
    key_id: Annotated[int, Meta(ge=0, le=0xFFFFFFFF)]
    code: Annotated[str, Meta(max_length=200)]
    issued_by: Id
    issued_at: Stamp
    revoked_at: Stamp | None = None
    revoke_reason: Short | None = None
    order_item_id: Id | None = None
    holder_birth_date: Annotated[str, Meta(max_length=10)] | None = None
    has_photo: Annotated[int, Meta(ge=0, le=1)] = 0
    delivery: Literal["mail", "pickup", "counter"] | None = None
    fulfilment: Literal["personalized", "printed", "dispatched", "deposited", "handed_over"] | None = None
    fulfilment_at: Stamp | None = None


CARD_OP_FIELDS = tuple(CardOp.__struct_fields__)
DESK_CARD_KINDS = ("annual", "voucher")  # what a desk issues for its own orders (this module's rules)
# Kinds a desk issues for sales of a higher room (a subscription's pass and single tickets): that
# room registers the rule (`register_desk_card_rule`), so this room never imports it. A rule gets
# the hub's db, the pushing node, the pushed card and its sale time; it refuses (Refused) a card
# its sale does not call for and returns the stored columns it derives: holder_name, delivery,
# fulfilment (validity is the rule's to check exactly: the product's own window is not the card's).
# *after* (optional) runs once the card is stored: what the room keeps about its cards besides.
DeskCardRule = Callable[[sqlite3.Connection, str, "CardOp", dt.datetime], dict]
DeskCardAfter = Callable[[sqlite3.Connection, "CardOp"], object]
DESK_CARD_RULES: dict[str, DeskCardRule] = {}
DESK_CARD_AFTER: dict[str, DeskCardAfter] = {}


def register_desk_card_rule(kind: str, rule: DeskCardRule, after: DeskCardAfter | None = None) -> None:
    """Let desks issue cards of *kind* under *rule* (once per kind)."""
    if kind in DESK_CARD_KINDS or DESK_CARD_RULES.get(kind, rule) is not rule:
        raise RuntimeError(f"a desk card rule for {kind} is registered twice")
    DESK_CARD_RULES[kind] = rule
    if after is not None:
        DESK_CARD_AFTER[kind] = after


def card_op(card: dict) -> CardOp:
    return msgspec.convert({k: card[k] for k in CARD_OP_FIELDS}, CardOp)


class Refused(Conflict):
    """A pushed operation the hub will not apply as sent: it becomes a conflict."""


def signed_by_pusher(db: sqlite3.Connection, trust, node_id: str, op: CardOp) -> cardcode.SignedCard:
    """The card's code, if a card-issuing key of the pushing node signed exactly this card."""
    try:
        card = cardcode.decode(op.code)
    except cardcode.Malformed as exc:
        raise Refused(f"card code is malformed: {exc}") from None
    p = card.payload
    signer = trust.get(p.key_id)
    if signer is None or signer.node_id != node_id:
        raise Refused("card code not signed by a key of this node")
    if signer.role not in ("cashdesk", "counter"):
        raise Refused(f"a {signer.role} node does not issue cards")
    if not signer.verifies(card.signature, card.message):
        raise Refused("card code signature does not verify")
    if (p.card_id, p.issue, p.key_id, p.kind) != (op.id, op.issue, op.key_id, op.kind):
        raise Refused("card code does not match the card record (id, issue, key or kind)")
    if (_minutes(parse_iso(op.valid_from)), _minutes(parse_iso(op.valid_until))) != (p.valid_from, p.valid_until):
        raise Refused("card record's validity is not the one its code is signed for")
    product = db.execute("SELECT product_id FROM card_products WHERE code = ?", (p.product_code,)).fetchone()
    if product is None or product["product_id"] != op.product_id:
        raise Refused("card code names another product than the card record")
    return card


def product_windows(db: sqlite3.Connection, product_id: str, kind: str, sold_at: dt.datetime,
                    valid_from: dt.datetime, own: tuple[dt.datetime, dt.datetime] | None = None,
                    ) -> list[tuple[dt.datetime, dt.datetime]]:
    """The validity windows a card of *product_id* sold at *sold_at* may carry: the product's
    own window, and for an N-months-from-purchase product also the N months from a start day
    the buyer chose (the day of *valid_from*, today .. START_AHEAD_DAYS ahead). The one rule
    for what a product allows: the hub checks pushed cards against it exactly, issuing and
    the gates check that a card stays inside it. *own*: the product's own window, when the
    caller has just read it (`default_validity` for the same product and *sold_at*)."""
    windows = [own or default_validity(db, product_id, kind, sold_at)]
    if kind == "annual":
        product = db.execute("SELECT validity_mode, months FROM annual_products WHERE id = ?",
                             (product_id,)).fetchone()
        if product["validity_mode"] == "from_purchase":
            start = valid_from.astimezone(LOCAL_TZ).date()
            today = sold_at.astimezone(LOCAL_TZ).date()
            if today <= start <= today + dt.timedelta(days=START_AHEAD_DAYS):
                windows.append((day_start(start), day_end(add_months(start, product["months"]) - dt.timedelta(days=1))))
    return windows


def expected_validity(db: sqlite3.Connection, product_id: str, kind: str, sold_at: dt.datetime,
                      valid_from: dt.datetime, valid_until: dt.datetime) -> str | None:
    """Why a card sold at *sold_at* may not carry this validity (None: the product allows it):
    the product's own window, or for from-purchase products a start day the buyer chose."""
    wanted = (_minutes(valid_from), _minutes(valid_until))
    if any(wanted == (_minutes(a), _minutes(b)) for a, b in product_windows(db, product_id, kind, sold_at,
                                                                             valid_from)):
        return None
    return f"validity {iso(valid_from)}..{iso(valid_until)} is not what the product gives a card sold at {iso(sold_at)}"


def validity_beyond_product(db: sqlite3.Connection, product_id: str, kind: str, sold_at: dt.datetime,
                            valid_from: dt.datetime, valid_until: dt.datetime,
                            own: tuple[dt.datetime, dt.datetime] | None = None) -> str | None:
    """Why a card sold at *sold_at* with this validity is valid longer (or earlier) than its
    product allows, or None. A shorter window is the issuer's choice; a longer one is what
    a stolen key would sign. NotFound when this database does not know the product. *own*:
    as for `product_windows`."""
    start, end = _minutes(valid_from), _minutes(valid_until)
    if any(_minutes(a) <= start and end <= _minutes(b) for a, b in product_windows(db, product_id, kind, sold_at,
                                                                                    valid_from, own)):
        return None
    return (f"validity {iso(valid_from)}..{iso(valid_until)} is longer than the product allows a card "
            f"sold at {iso(sold_at)}")


def check_birth_date(value: str | dt.date | None, today: dt.date, field: str = "birth_date") -> None:
    """A holder's birth date: a real day in the past, at most 130 years ago (every channel)."""
    if value is None:
        return
    try:
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{value!r} is not a date", field=field) from None
    if not today.replace(year=today.year - 130) <= day <= today:
        raise ValidationError(f"birth date {day.isoformat()} must lie in the past (at most 130 years ago)",
                              field=field, detail_de="Das Geburtsdatum muss in der Vergangenheit liegen")


def apply_issued(db: sqlite3.Connection, node_id: str, trust, op: CardOp, now: dt.datetime) -> None:
    """Hub: a card a desk issued. Stored from what the hub derives, never as sent."""
    card = signed_by_pusher(db, trust, node_id, op)
    p = card.payload
    if p.issue != 1:
        raise Refused("a new card starts at issue 1")
    rule = DESK_CARD_RULES.get(op.kind)
    if op.kind not in DESK_CARD_KINDS and rule is None:
        raise Refused(f"a desk does not issue {op.kind} cards")
    sold_at = dt.datetime.fromtimestamp(uuid7_ms(op.id) / 1000, dt.UTC)
    key = trust.get(p.key_id)
    if not key.valid_at(uuid7_ms(op.id)):
        raise Refused("the node's key was not valid when it signed this card")
    if key.compromised:
        seen = last_op_seen_before(db, node_id, key.revoked_at_ms)
        if seen is None or uuid7_ms(op.id) > seen:
            raise Refused(f"the key that signed this card is revoked ({key.revoke_reason}); the card claims a time "
                          "after the last operation the hub saw from this node before the revocation")
    if not key.may_issue_for(product_venues(db, op.product_id)):
        raise Refused(f"this node's certificate does not let it issue product {op.product_id} "
                      "(not valid at any of the node's venues)")
    if db.execute("SELECT 1 FROM cards WHERE id = ?", (op.id,)).fetchone():
        raise Refused(f"card {op.id} exists already")
    if op.kind == "annual" and db.execute("SELECT 1 FROM annual_products WHERE id = ?",
                                          (op.product_id,)).fetchone() is None:
        raise Refused(f"annual-ticket product {op.product_id} does not exist")
    annual = op.kind == "annual"
    if rule is None:
        problem = expected_validity(db, op.product_id, op.kind, sold_at, parse_iso(op.valid_from),
                                    parse_iso(op.valid_until))
        if problem:
            raise Refused(problem)
        holder = op.holder_name if annual else None
        delivery, fulfilment = ("counter", "personalized") if annual else (None, None)
    else:  # the rule checks validity and derives what is stored
        derived = rule(db, node_id, op, sold_at)
        holder, delivery, fulfilment = derived["holder_name"], derived["delivery"], derived["fulfilment"]
    prefix = edge_card_series(node_id)
    if not op.number.startswith(prefix + "-"):
        raise Refused(f"card number {op.number} is not from this node's series {prefix}")
    if op.customer_id and not db.execute("SELECT 1 FROM customers WHERE id = ?", (op.customer_id,)).fetchone():
        raise Refused(f"customer {op.customer_id} does not exist")
    check_birth_date(op.holder_birth_date, sold_at.date(), "holder_birth_date")
    stamp = iso(sold_at)
    db.execute(
        "INSERT INTO cards (id, number, product_id, kind, customer_id, holder_name, valid_from, valid_until, issue, "
        "key_id, code, issued_by, issued_at, order_item_id, holder_birth_date, has_photo, delivery, fulfilment, "
        "fulfilment_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
        (op.id, op.number, op.product_id, op.kind, op.customer_id, holder,
         op.valid_from, op.valid_until, p.key_id, op.code, node_id, stamp,
         op.order_item_id, op.holder_birth_date if annual else None, delivery,
         fulfilment, stamp if fulfilment else None, iso(now), iso(now)))
    if op.kind in DESK_CARD_AFTER:
        DESK_CARD_AFTER[op.kind](db, op)


def void_refused_desk_card(db: sqlite3.Connection, node_id: str, trust, op: CardOp, reason: str,
                           now: dt.datetime) -> None:
    """A refused `card.issued` of a rule kind (a subscription's pass or single ticket) whose code this
    node really signed: the code verifies offline at every gate, so the hub keeps the card as
    revoked (gates refuse it after their next sync) instead of not knowing it. Only a genuine code
    of the pushing node, only a card id and number the hub has not seen; nothing else is believed
    (no customer, no holder, no order line)."""
    if op.kind not in DESK_CARD_RULES or not op.number.startswith(edge_card_series(node_id) + "-"):
        return
    try:
        card = signed_by_pusher(db, trust, node_id, op)
    except Refused:
        return
    stamp = iso(now)
    db.execute(
        "INSERT INTO cards (id, number, product_id, kind, valid_from, valid_until, issue, key_id, code, issued_by, "
        "issued_at, revoked_at, revoke_reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?) ON CONFLICT DO NOTHING",
        (op.id, op.number, op.product_id, op.kind, op.valid_from, op.valid_until, card.payload.issue,
         card.payload.key_id, op.code, node_id, iso(dt.datetime.fromtimestamp(uuid7_ms(op.id) / 1000, dt.UTC)),
         stamp, f"refused at the hub: {reason}"[:200], stamp, stamp))


def product_venues(db: sqlite3.Connection, product_id: str) -> frozenset[str]:
    """The venues where cards of *product_id* are valid (annual product, subscription,
    performance): what a node certified for some venues may issue (`Signer.may_issue_for`)."""
    rows = db.execute(
        "SELECT venue_id FROM annual_product_venues WHERE product_id = ? UNION "
        "SELECT p.venue_id FROM subscription_performances sp JOIN performances p ON p.id = sp.performance_id "
        "WHERE sp.product_id = ? UNION SELECT venue_id FROM performances WHERE id = ?",
        (product_id, product_id, product_id)).fetchall()
    return frozenset(r["venue_id"] for r in rows)


def last_op_seen_before(db: sqlite3.Connection, node_id: str, before_ms: int) -> int | None:
    """Hub: the latest op time (ms) the hub saw from *node_id* in pushes it received before
    *before_ms* (a revocation time), or None. The node's mark (`node_op_marks`) answers when
    it was last moved before that time; else the op log does. An op time ahead of its
    arrival counts as its arrival."""
    mark = db.execute("SELECT last_op_at, last_received_at FROM node_op_marks WHERE node_id = ?",
                      (node_id,)).fetchone()
    if mark is not None and _ms(mark["last_received_at"]) < before_ms:
        return _ms(mark["last_op_at"])
    rows = db.execute("SELECT wall_time, received_at FROM sync_ops WHERE node_id = ? AND status = 'applied' "
                      "AND received_at <= ?", (node_id, iso(_at(before_ms + 1000)))).fetchall()  # exact below
    times = [min(_ms(r["wall_time"]), _ms(r["received_at"])) for r in rows if _ms(r["received_at"]) < before_ms]
    return max(times, default=None)


def void_cards_after_revocation(db: sqlite3.Connection, key_id: int, revoked_at_ms: int,
                                now: dt.datetime) -> int:
    """Hub: revoke the cards signed by *key_id* that reached the hub at or after its
    revocation time (a revocation named after the fact: the last moment the device was in
    good hands). Whatever times they claim, the hub did not see them before the
    revocation, so no gate may treat them as known. Returns how many."""
    since = iso(_at(revoked_at_ms))
    with transaction(db):
        cursor = db.execute(
            "UPDATE cards SET revoked_at = ?, revoke_reason = ?, updated_at = ? WHERE key_id = ? "
            "AND revoked_at IS NULL AND (created_at >= ? OR (issue > 1 AND issued_at >= ?))",
            (iso(now), "signed by a revoked device; reached the hub after its revocation time", iso(now), key_id,
             since, since))
    return cursor.rowcount


def _ms(text: str) -> int:
    return int(parse_iso(text).timestamp() * 1000)


def _at(ms_: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms_ / 1000, dt.UTC)


def apply_reissued(db: sqlite3.Connection, node_id: str, trust, op: CardOp, now: dt.datetime) -> bool:
    """Hub: a desk replaced a lost card. A revocation made at the hub is sticky: the re-issue
    of a revoked card is refused (a conflict), and the hub's revoked row goes back out.
    True when the card took the new issue (the caller drops print jobs of older issues)."""
    card = signed_by_pusher(db, trust, node_id, op)
    current = db.execute("SELECT * FROM cards WHERE id = ?", (op.id,)).fetchone()
    if current is None:
        raise Refused(f"card {op.id} is not known at the hub")
    if current["revoked_at"]:
        raise Refused(f"card {current['number']} was revoked at the hub on {current['revoked_at']} "
                      f"({current['revoke_reason'] or 'no reason given'}); the re-issue stays void")
    if current["kind"] != "annual":
        raise Refused(f"card {current['number']} is not an annual card")
    if (current["product_id"], current["valid_from"], current["valid_until"]) != (
            op.product_id, op.valid_from, op.valid_until):
        raise Refused("a re-issue keeps the card's product and validity")
    if op.issue < current["issue"]:
        return False  # an older re-issue arriving late: the newer one stays
    if op.issue == current["issue"]:
        if op.code != current["code"]:
            raise Refused(f"card {current['number']} issue {op.issue} was made elsewhere already")
        return False
    signer_key = trust.get(card.payload.key_id)
    if signer_key.revoked_at_ms is not None:
        raise Refused("the key that signed this re-issue is revoked")
    stamp = iso(now)
    db.execute("UPDATE cards SET issue = ?, key_id = ?, code = ?, issued_by = ?, issued_at = ?, "
               "fulfilment = 'personalized', fulfilment_at = ?, updated_at = ? WHERE id = ?",
               (op.issue, card.payload.key_id, op.code, node_id, stamp, stamp, stamp, op.id))
    return True


def apply_revoked(db: sqlite3.Connection, node_id: str, trust, op: CardOp, now: dt.datetime) -> None:
    """Hub: a desk revoked a card it issued itself. A revocation only ever makes a card
    stricter, so it is kept; the desk's time is capped at the hub's."""
    current = db.execute("SELECT issued_by, revoked_at FROM cards WHERE id = ?", (op.id,)).fetchone()
    if current is None:
        raise Refused(f"card {op.id} is not known at the hub")
    if current["issued_by"] != node_id:
        raise Refused("a desk revokes only cards it issued itself")
    if current["revoked_at"] is None:
        at = min(parse_iso(op.revoked_at), now) if op.revoked_at else now
        db.execute("UPDATE cards SET revoked_at = ?, revoke_reason = ?, updated_at = ? WHERE id = ?",
                   (iso(at), (op.revoke_reason or "revoked at a desk")[:200], iso(now), op.id))
