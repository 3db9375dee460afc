"""Issuing choice vouchers and finding them again (S5).

A voucher subscription's sale (`core.subscriptions.sale`, kind `voucher`) stores the subscription
without seats; `issue_for_subscription()` then makes its N vouchers in the sale's transaction:
each a row of `choice_vouchers` with its own number (series `WG` at the hub, `W` + the last 6 hex
digits of the node id on an edge, so an offline desk never hands out the hub's numbers), the
value, the buyer's discount tier (kept for the ticket it is redeemed for), valid until the end
of the season, and a signed code in card format v1, kind `choice_voucher`, signed by the
selling node's card key: any node verifies it offline against the organizer's trust records.

A cash desk sells voucher subscriptions offline and issues their vouchers the same way with its
own key and series; they reach the hub inside the sale's `subscription.sold`, where
`store_from_desk()` checks each against what this module would have made and keeps the desk's
ids, numbers and codes.

`find()` resolves a scanned code or a typed number to the voucher, refusing what is not a
genuine voucher of this organizer (malformed, forged, unknown signer).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3

from core.base.clock import day_end, iso, parse_iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7, uuid7_ms
from core.base.numbering import next_number
from core.base.storage import transaction
from core.cards import cardcode, cards
from core.cards.trust import TrustStore

KIND = "choice_voucher"
SERIES = "WG"
CARD_SIGNERS = ("hub", "cashdesk", "counter")


def voucher_series(node_id: str, role: str) -> str:
    return SERIES if role == "hub" else "W" + node_id.replace("-", "")[-6:].upper()


def season_end(db: sqlite3.Connection, product_id: str) -> dt.datetime:
    row = db.execute("SELECT se.ends_on FROM subscription_products p JOIN seasons se ON se.id = p.season_id "
                     "WHERE p.id = ?", (product_id,)).fetchone()
    return day_end(dt.date.fromisoformat(row["ends_on"]))


def issue_for_subscription(db: sqlite3.Connection, signer: cards.NodeSigner, subscription_id: str,
                           now: dt.datetime) -> list[dict]:
    """The subscription's vouchers, issued once (a repeated call issues nothing and answers
    the ones it has). Caller's transaction or its own."""
    with transaction(db):
        sub = _voucher_subscription(db, subscription_id)
        if sub is None or sub["kind"] != "voucher":
            raise ValidationError("only a voucher subscription has choice vouchers", field="subscription_id")
        have = of_subscription(db, subscription_id)
        if have:
            return have
        code = cards.product_code(db, sub["product_id"], "subscription")
        until = season_end(db, sub["product_id"])
        series = voucher_series(signer.node_id, signer.role)
        for position in range(1, sub["voucher_count"] + 1):
            voucher_id = uuid7(int(now.timestamp() * 1000))
            text = cards.sign_card(signer, card_id=voucher_id, code=code, kind=KIND, valid_from=now,
                                   valid_until=until, issue=1)
            _insert(db, sub, voucher_id, next_number(db, series, now.year, signer.node_id), position, until, text,
                    signer.key_id, signer.node_id, now)
        return of_subscription(db, subscription_id)


def _voucher_subscription(db: sqlite3.Connection, subscription_id: str) -> dict | None:
    return db.execute("SELECT s.*, p.voucher_count, p.voucher_value_cents, p.kind, t.name AS tier_name "
                      "FROM subscriptions s JOIN subscription_products p ON p.id = s.product_id "
                      "LEFT JOIN discount_tiers t ON t.id = s.tier_id WHERE s.id = ?", (subscription_id,)).fetchone()


def _insert(db: sqlite3.Connection, sub: dict, voucher_id: str, number: str, position: int, until: dt.datetime,
            code: str, key_id: int, node_id: str, now: dt.datetime) -> None:
    """One voucher row: value and tier always from the subscription and its product."""
    db.execute(
        "INSERT INTO choice_vouchers (id, number, subscription_id, product_id, position, value_cents, tier_id, "
        "tier_name, valid_until, code, key_id, issued_by, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (voucher_id, number, sub["id"], sub["product_id"], position, sub["voucher_value_cents"], sub["tier_id"],
         sub["tier_name"], iso(until), code, key_id, node_id, iso(now), iso(now)))


# --- a cash desk's vouchers at the hub (`subscription.sold`, desk_sales.py) -----------------------------------


def store_from_desk(db: sqlite3.Connection, trust: TrustStore, node: dict, subscription_id: str,
                    sent: list, sold_at: dt.datetime) -> list[dict]:
    """Hub: the vouchers a cash desk issued offline with the voucher subscription *subscription_id*
    (just stored from its `subscription.sold`), each {id, number, position, value_cents,
    valid_until, code}. Stored under the desk's ids, numbers and codes only if each is exactly
    what `issue_for_subscription` on that desk makes: the product's count and value, valid until
    the season's end, numbers in the desk's own series, a code signed by a card key of the
    pushing node for this voucher id, kind and product, valid from the sale's time; none there
    already. Anything else is Refused (a conflict; the caller's savepoint keeps nothing)."""
    sub = _voucher_subscription(db, subscription_id)
    if sub is None or sub["kind"] != "voucher":
        raise cards.Refused(f"subscription {subscription_id} is not a voucher subscription: it has no vouchers")
    if sorted(v.position for v in sent) != list(range(1, sub["voucher_count"] + 1)):
        raise cards.Refused(f"subscription {sub['number']} has {sub['voucher_count']} vouchers (positions 1.."
                            f"{sub['voucher_count']}), the desk sent {len(sent)}")
    if len({v.id for v in sent}) != len(sent) or len({v.number for v in sent}) != len(sent):
        raise cards.Refused(f"subscription {sub['number']}: a voucher id or number is sent twice")
    until = season_end(db, sub["product_id"])
    product = cards.product_code(db, sub["product_id"], "subscription")
    series = voucher_series(node["id"], node["role"])
    for v in sorted(sent, key=lambda v: v.position):
        if v.value_cents != sub["voucher_value_cents"]:
            raise cards.Refused(f"voucher {v.number} is worth {sub['voucher_value_cents']} cents at the hub, not "
                                f"{v.value_cents}")
        if v.valid_until != iso(until):
            raise cards.Refused(f"voucher {v.number} is valid until the season's end {iso(until)}, not "
                                f"{v.valid_until}")
        if not re.fullmatch(re.escape(series) + r"-\d{4}-\d{6}", v.number):
            raise cards.Refused(f"voucher number {v.number} is not from this node's series {series}")
        if db.execute("SELECT 1 FROM choice_vouchers WHERE id = ? OR number = ?", (v.id, v.number)).fetchone():
            raise cards.Refused(f"voucher {v.number} ({v.id}) exists already")
        key_id = _signed_by_pusher(db, trust, node["id"], sub["product_id"], v.id, v.code,
                                   (product, sold_at, until))
        _insert(db, sub, v.id, v.number, v.position, until, v.code, key_id, node["id"], sold_at)
    return of_subscription(db, subscription_id)


def _signed_by_pusher(db: sqlite3.Connection, trust: TrustStore, node_id: str, product_id: str, voucher_id: str,
                      text: str, expected: tuple[int, dt.datetime, dt.datetime]) -> int:
    """The key id of a voucher code a card key of *node_id* signed for exactly this voucher
    (`expected`: product code, valid from, valid until); refused otherwise. The key rules of a
    desk's card (`cards.apply_issued`): valid when it signed, not after a revocation for cause."""
    try:
        card = cardcode.decode(text)
    except cardcode.Malformed as exc:
        raise cards.Refused(f"voucher code is malformed: {exc}") from None
    p, key = card.payload, trust.get(card.payload.key_id)
    if key is None or key.node_id != node_id or key.role != "cashdesk":
        raise cards.Refused("voucher code not signed by a card key of this cash desk")
    if not key.verifies(card.signature, card.message):
        raise cards.Refused("voucher code signature does not verify")
    product, valid_from, until = expected
    if (p.card_id, p.kind, p.issue, p.product_code) != (voucher_id, KIND, 1, product):
        raise cards.Refused("voucher code does not match the voucher (id, kind, issue or product)")
    if (p.valid_from, p.valid_until) != (int(valid_from.timestamp()) // 60, int(until.timestamp()) // 60):
        raise cards.Refused("voucher code is signed for another validity than the sale and season give it")
    signed_ms = uuid7_ms(voucher_id)
    if not key.valid_at(signed_ms):
        raise cards.Refused("the node's key was not valid when it signed this voucher")
    if key.compromised:
        seen = cards.last_op_seen_before(db, node_id, key.revoked_at_ms)
        if seen is None or signed_ms > seen:
            raise cards.Refused(f"the key that signed this voucher is revoked ({key.revoke_reason})")
    if not key.may_issue_for(cards.product_venues(db, product_id)):
        raise cards.Refused(f"this node's certificate does not let it issue vouchers of product {product_id}")
    return p.key_id


def get(db: sqlite3.Connection, voucher_id: str) -> dict:
    row = db.execute("SELECT * FROM choice_vouchers WHERE id = ?", (voucher_id,)).fetchone()
    if row is None:
        raise NotFound(f"choice voucher {voucher_id} does not exist")
    return row


def of_subscription(db: sqlite3.Connection, subscription_id: str) -> list[dict]:
    return db.execute("SELECT * FROM choice_vouchers WHERE subscription_id = ? ORDER BY position",
                      (subscription_id,)).fetchall()


def _genuine(db: sqlite3.Connection, text: str) -> str:
    """The voucher id inside a scanned code, after its signature checked out; else a refusal."""
    try:
        card = cardcode.decode(text)
    except cardcode.Malformed as exc:
        raise ValidationError(f"this is not a voucher code: {exc}", field="code",
                              detail_de="Das ist kein Gutschein-Code") from None
    signer = TrustStore.load(db).get(card.payload.key_id)
    if signer is None or not signer.verifies(card.signature, card.message) or signer.role not in CARD_SIGNERS:
        raise ValidationError("forged or foreign voucher: its signature does not verify against this organizer's "
                              "keys", field="code", detail_de="Gefälschter oder fremder Gutschein: die Signatur "
                              "passt zu keinem Schlüssel dieses Veranstalters")
    if card.payload.kind != KIND:
        raise ValidationError(f"this is a {card.payload.kind} card, not a choice voucher", field="code",
                              detail_de="Das ist kein Wahlgutschein")
    if not signer.valid_at(uuid7_ms(card.payload.card_id)):
        raise ValidationError(f"this voucher was signed by {signer.name} outside its key's validity (revoked)",
                              field="code", detail_de="Der Gutschein wurde mit einem gesperrten Schlüssel signiert")
    return card.payload.card_id


def find(db: sqlite3.Connection, *, code: str | None = None, number: str | None = None) -> dict:
    """The voucher of a scanned *code* (signature checked) or a typed *number*, with its
    subscription's state and its redemption (None while unused)."""
    if (code is None) == (number is None):
        raise ValidationError("give the voucher's code or its number", field="code")
    if code is not None:
        voucher_id = _genuine(db, code)
        row = db.execute("SELECT * FROM choice_vouchers WHERE id = ?", (voucher_id,)).fetchone()
        if row is None:
            raise Conflict("this voucher is genuine but not on record here yet (sold at a desk that has not "
                           "synced); try again after the desk's sync", field="code",
                           detail_de="Der Gutschein ist echt, aber hier noch nicht erfasst (an einer Kasse "
                                     "verkauft, die noch nicht abgeglichen hat)")
        if row["code"] is not None and row["code"].upper() != code.strip().upper():  # NULL: a desk's copy
            raise ValidationError("this code is not the voucher's current code", field="code",
                                  detail_de="Dieser Code ist nicht der gültige Code des Gutscheins")
    else:
        row = db.execute("SELECT * FROM choice_vouchers WHERE number = ?", (number.strip().upper(),)).fetchone()
        if row is None:
            raise NotFound(f"no voucher number {number}", field="number",
                           detail_de=f"Kein Gutschein mit der Nummer {number}")
    return with_state(db, row)


def with_state(db: sqlite3.Connection, row: dict) -> dict:
    """The voucher with what a reader needs: its subscription's state, the redemption, the offer."""
    sub = db.execute("SELECT number, state, customer_id FROM subscriptions WHERE id = ?",
                     (row["subscription_id"],)).fetchone()
    used = db.execute("SELECT * FROM choice_voucher_redemptions WHERE voucher_id = ?", (row["id"],)).fetchone()
    offer = [r["performance_id"] for r in db.execute(
        "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position",
        (row["product_id"],))]
    return {**row, "subscription_number": sub["number"] if sub else None,
            "subscription_state": sub["state"] if sub else None, "customer_id": sub["customer_id"] if sub else None,
            "redemption": used, "offer": offer}


def state_at(voucher: dict, now: dt.datetime) -> str:
    """What a reader is told: open, redeemed, expired, or void (its subscription cancelled)."""
    if voucher["redemption"] is not None or voucher["state"] == "redeemed":
        return "redeemed"
    if voucher["state"] == "void" or voucher["subscription_state"] == "cancelled":
        return "void"
    if parse_iso(voucher["valid_until"]) < now:
        return "expired"
    return "open"
