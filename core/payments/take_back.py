"""What cancelling an order line takes back, per line kind, and what it is worth (the credit).

The cancellation (core/payments/cancellations.py) is one rule for every channel; what a line
delivered differs by kind (core/sales/lines.py), so each kind says two things here:

- `credit`: what the line is worth back today, from the hub's rows only: the price of a card,
  an annual voucher or a seat ticket; for a subscription the tickets of the performances not yet
  begun (their shares of the price, as the sale spread it) or, for a choice-voucher
  subscription, its vouchers not yet used. Nothing that is used up is credited.
- `take_back`: undo the delivery in the caller's transaction: seats free again in the pool they
  were sold from (a cancelled ticket takes no seat), every live card of the line revoked (the
  gates hear of it with their next pull, also offline), open print jobs dropped, unused choice
  vouchers void (a desk refuses them offline). What cannot be taken back is refused with the
  reason, before anything is written: an annual voucher already exchanged for a card, a seat
  ticket whose performance has begun, a subscription already cancelled with immediate effect.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from core.base.clock import iso
from core.base.errors import Conflict
from core.cards import cards
from core.printing import print_queue
from core.subscriptions import records


@dataclass(frozen=True, slots=True)
class Refusal:
    en: str
    de: str


def _refuse(line: dict, why: Refusal) -> Conflict:
    return Conflict(f"line {line['position']}: {why.en}", field="line_ids",
                    detail_de=f"Position {line['position']}: {why.de}")


def _line_cards(db: sqlite3.Connection, line: dict) -> list[dict]:
    return db.execute("SELECT id, kind, number FROM cards WHERE (order_item_id = ? OR id = ?) AND revoked_at IS NULL",
                      (line["id"], line["card_id"])).fetchall()


def _revoke(db: sqlite3.Connection, signer: cards.NodeSigner, line: dict, reason: str, now: dt.datetime) -> list[str]:
    numbers = []
    for card in _line_cards(db, line):
        cards.revoke_card(db, signer, card["id"], reason, now)
        print_queue.drop_open_jobs(db, card["id"])
        numbers.append(card["number"])
    return numbers


# --- annual card and annual voucher -----------------------------------------------------------------------


def _card_credit(db: sqlite3.Connection, line: dict, now: dt.datetime) -> int:
    if line["kind"] == "voucher" and line["card_id"]:
        used = db.execute("SELECT r.card_id, c.number FROM voucher_redemptions r LEFT JOIN cards c ON c.id = r.card_id "
                          "WHERE r.voucher_id = ?", (line["card_id"],)).fetchone()
        if used is not None:
            card = used["number"] or used["card_id"]
            raise _refuse(line, Refusal(f"the voucher was exchanged for annual card {card}; it cannot be taken back",
                                        f"der Gutschein wurde gegen Jahreskarte {card} eingetauscht und kann nicht "
                                        "zurückgenommen werden"))
    return line["price_cents"]


def _card_back(db: sqlite3.Connection, signer: cards.NodeSigner, line: dict, reason: str, now: dt.datetime) -> dict:
    # an unpersonalized line has no card yet: its link is closed, so it is never personalized
    db.execute("UPDATE personalization_links SET used_at = ? WHERE item_id = ? AND used_at IS NULL",
               (iso(now), line["id"]))
    return {"cards": _revoke(db, signer, line, reason, now)}


# --- seat ticket ------------------------------------------------------------------------------------------


def _ticket_credit(db: sqlite3.Connection, line: dict, now: dt.datetime) -> int:
    begun = db.execute("SELECT p.title, p.starts_at FROM tickets t JOIN performances p ON p.id = t.performance_id "
                       "WHERE t.line_id = ? AND t.status = 'sold' AND p.starts_at <= ?",
                       (line["id"], iso(now))).fetchone()
    if begun is not None:
        raise _refuse(line, Refusal(f"the performance {begun['title']} has begun; its ticket is not taken back",
                                    f"die Vorstellung {begun['title']} hat begonnen; ihr Ticket wird nicht "
                                    "zurückgenommen"))
    return line["price_cents"]


def _ticket_back(db: sqlite3.Connection, signer: cards.NodeSigner, line: dict, reason: str, now: dt.datetime) -> dict:
    seats = db.execute("SELECT t.id FROM tickets t WHERE t.line_id = ? AND t.status = 'sold'", (line["id"],)).fetchall()
    db.execute("UPDATE tickets SET status = 'cancelled' WHERE line_id = ? AND status = 'sold'", (line["id"],))
    return {"tickets": [s["id"] for s in seats], "cards": _revoke(db, signer, line, reason, now)}


# --- subscription -----------------------------------------------------------------------------------------


def _subscription(db: sqlite3.Connection, line: dict) -> dict:
    return db.execute("SELECT id, number, cancelled_at FROM subscriptions WHERE line_id = ?", (line["id"],)).fetchone()


def _subscription_credit(db: sqlite3.Connection, line: dict, now: dt.datetime) -> int:
    sub = _subscription(db, line)
    if sub is None or sub["cancelled_at"] is not None:
        raise _refuse(line, Refusal("the subscription is already cancelled with immediate effect",
                                    "das Abonnement ist bereits mit sofortiger Wirkung storniert"))
    seats = db.execute("SELECT coalesce(sum(t.price_cents), 0) AS c, count(*) AS n FROM tickets t "
                       "JOIN performances p ON p.id = t.performance_id WHERE t.line_id = ? AND t.status = 'sold' "
                       "AND p.starts_at > ?", (line["id"], iso(now))).fetchone()
    vouchers = db.execute("SELECT coalesce(sum(value_cents), 0) AS c FROM choice_vouchers WHERE subscription_id = ? "
                          "AND state = 'open'", (sub["id"],)).fetchone()
    return min(seats["c"] + vouchers["c"], line["price_cents"])


def _subscription_back(db: sqlite3.Connection, signer: cards.NodeSigner, line: dict, reason: str,
                       now: dt.datetime) -> dict:
    sub = _subscription(db, line)
    tickets = [t["id"] for t in db.execute(
        "SELECT t.id FROM tickets t JOIN performances p ON p.id = t.performance_id WHERE t.line_id = ? "
        "AND t.status = 'sold' AND p.starts_at > ?", (line["id"], iso(now)))]
    vouchers = [v["number"] for v in db.execute("SELECT number FROM choice_vouchers WHERE subscription_id = ? AND "
                                                "state = 'open' ORDER BY position", (sub["id"],))]
    revoked = [c["number"] for c in _line_cards(db, line)]
    records.cancel_now(db, signer, sub["id"], now, reason=reason)
    return {"subscription": sub["number"], "tickets": tickets, "vouchers": vouchers, "cards": revoked}


@dataclass(frozen=True, slots=True)
class Kind:
    credit: Callable[[sqlite3.Connection, dict, dt.datetime], int]
    take_back: Callable[[sqlite3.Connection, cards.NodeSigner, dict, str, dt.datetime], dict]


KINDS: dict[str, Kind] = {
    "annual": Kind(_card_credit, _card_back),
    "voucher": Kind(_card_credit, _card_back),
    "ticket": Kind(_ticket_credit, _ticket_back),
    "subscription": Kind(_subscription_credit, _subscription_back),
}


def kind_of(line: dict) -> Kind:
    kind = KINDS.get(line["kind"])
    if kind is None:
        raise _refuse(line, Refusal(f"a {line['kind']} line cannot be cancelled here",
                                    f"eine Position der Art {line['kind']} kann hier nicht storniert werden"))
    return kind
