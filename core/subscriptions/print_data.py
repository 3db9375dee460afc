"""What a subscription's cards print (S9): the season pass and the single tickets, as card faces.

A subscription's seats are the seat tickets of its order line (0018), so everything printed is
read from there at print time: a pass lists every performance with its seat; a single ticket
shows its performance, date and time, venue, section/row/seat and the discount label that
carries the subscription's name ("Schüler/Studierende (Abo-Ring A)", the seed's "Ermäßigungsart
um die Abo-Bezeichnung ergänzt"). Reading at print time means a re-issued card (lost, or after
a seat change) prints the seats as they are now.

Which card belongs to which subscription and ticket is kept in existing columns: a card's
`order_item_id` is the subscription's order line; a pass's `product_id` is the subscription
product, a ticket's the performance (one seat per performance and subscription).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass

from core.base.clock import LOCAL_TZ, parse_iso
from core.base.errors import NotFound
from core.printing.card_layout import CardFace, DateLine

LAYOUTS = {"subscription": "subscription-pass", "single": "subscription-ticket"}  # card_layouts/*.toml
FULL_PRICE_LABEL = "Vollpreis"  # the discount label of a subscription sold without a tier


@dataclass(frozen=True, slots=True)
class Seat:
    """One seat of a subscription: a sold ticket with what is printed about it."""

    ticket_id: str
    performance_id: str
    title: str
    starts_at: dt.datetime  # local
    venue: str
    section: str
    row: str
    label: str

    @property
    def long(self) -> str:
        return f"{self.section} · Reihe {self.row} · Platz {self.label}"

    @property
    def short(self) -> str:
        return f"{self.section} R{self.row} P{self.label}"


def subscription_row(db: sqlite3.Connection, subscription_id: str) -> dict:
    """The subscription with its product, tier, organizer, customer and order delivery."""
    row = db.execute(
        "SELECT s.*, p.name AS product_name, p.title AS product_title, p.print_options, p.kind AS product_kind, "
        "o.name AS organizer, "
        "t.name AS tier_name, c.first_name, c.last_name, ord.delivery AS order_delivery "
        "FROM subscriptions s JOIN subscription_products p ON p.id = s.product_id "
        "JOIN organizers o ON o.id = p.organizer_id LEFT JOIN discount_tiers t ON t.id = s.tier_id "
        "JOIN customers c ON c.id = s.customer_id JOIN orders ord ON ord.id = s.order_id WHERE s.id = ?",
        (subscription_id,)).fetchone()
    if row is None:
        raise NotFound(f"subscription {subscription_id} does not exist", field="subscription_id")
    return row


def seats(db: sqlite3.Connection, line_id: str) -> list[Seat]:
    """The subscription's sold seats, in date order."""
    return seats_of(seats_sent(db, line_id))


_SEATS = ("SELECT t.id, t.performance_id, pf.title, pf.starts_at, v.name AS venue, sec.name AS section, "
          "st.row_label, st.label FROM tickets t JOIN performances pf ON pf.id = t.performance_id "
          "JOIN venues v ON v.id = pf.venue_id JOIN seats st ON st.id = t.seat_id "
          "JOIN plan_sections sec ON sec.id = st.section_id "
          "WHERE t.line_id = {line} AND t.status = 'sold' ORDER BY pf.starts_at, pf.id")
LINE_OF_SUBSCRIPTION = "(SELECT line_id FROM subscriptions WHERE id = ?)"


def seats_sent(db: sqlite3.Connection, line_id: str) -> sqlite3.Cursor:
    """`seats`' question, sent and not read yet: a caller that asks something else meanwhile
    gets both answers in one round trip on PostgreSQL (inside a transaction); `seats_of` reads it."""
    return db.execute(_SEATS.format(line="?"), (line_id,))


def subscription_seats_sent(db: sqlite3.Connection, subscription_id: str) -> sqlite3.Cursor:
    """`seats_sent` by the subscription's id: asked before its row is read."""
    return db.execute(_SEATS.format(line=LINE_OF_SUBSCRIPTION), (subscription_id,))


def seats_of(sent: sqlite3.Cursor) -> list[Seat]:
    return [Seat(r["id"], r["performance_id"], r["title"], parse_iso(r["starts_at"]).astimezone(LOCAL_TZ),
                 r["venue"], r["section"], r["row_label"], r["label"]) for r in sent.fetchall()]


def holder_name(sub: dict) -> str:
    return sub["holder_name"] or f"{sub['first_name']} {sub['last_name']}".strip()


def discount_label(sub: dict) -> str:
    """The tier's name completed by the subscription's: "Schüler/Studierende (Abo-Ring A)"."""
    return f"{sub['tier_name'] or FULL_PRICE_LABEL} ({sub['product_name']})"


def product_label(sub: dict) -> str:
    name, title = sub["product_name"], sub["product_title"]
    return f"{name} · {title}" if title and title != name else name


def venues(held: list[Seat]) -> str:
    return " · ".join(dict.fromkeys(seat.venue for seat in held))


def _subscription_of(db: sqlite3.Connection, card: dict) -> tuple[dict, list[Seat]]:
    sub = db.execute("SELECT id FROM subscriptions WHERE line_id = ?", (card["order_item_id"],)).fetchone()
    if sub is None:
        redeemed = _redemption_of(db, card)
        if redeemed is not None:
            return redeemed
        raise NotFound(f"card {card['number']} belongs to no subscription")
    sub = subscription_row(db, sub["id"])
    return sub, seats(db, sub["line_id"])


def _redemption_of(db: sqlite3.Connection, card: dict) -> tuple[dict, list[Seat]] | None:
    """The ticket of redeemed choice vouchers (S10), read like a subscription: the voucher product, the
    order's number as reference, the redemption's discount type (the value rule's; the payment rule's
    ticket is an ordinary one); no holder (a voucher is a bearer code)."""
    row = db.execute(
        "SELECT r.discount_label, o.number, p.name AS product_name, p.title AS product_title, org.name AS organizer "
        "FROM choice_voucher_redemptions r JOIN orders o ON o.id = r.order_id "
        "JOIN choice_vouchers v ON v.id = r.voucher_id JOIN subscription_products p ON p.id = v.product_id "
        "JOIN organizers org ON org.id = p.organizer_id WHERE r.ticket_id = ? LIMIT 1",
        (card["order_item_id"],)).fetchone()
    if row is None:
        return None
    sub = {**row, "line_id": card["order_item_id"], "holder_name": "", "first_name": "", "last_name": "",
           "tier_name": None, "discount": row["discount_label"] or FULL_PRICE_LABEL}
    return sub, seats(db, card["order_item_id"])


def redeemed_ticket_vat(db: sqlite3.Connection, line_id: str) -> str | None:
    """The VAT code a receipt shows for the ticket of redeemed choice vouchers: the voucher product's
    (a performance has no VAT code of its own); None for any other line."""
    row = db.execute("SELECT p.vat_code FROM choice_voucher_redemptions r "
                     "JOIN choice_vouchers v ON v.id = r.voucher_id JOIN subscription_products p "
                     "ON p.id = v.product_id WHERE r.ticket_id = ? LIMIT 1",
                     (line_id,)).fetchone()
    return row["vat_code"] if row else None


def face_for_card(db: sqlite3.Connection, card: dict,
                  known: dict[str, tuple[dict, list[Seat]]] | None = None) -> CardFace:
    """The printed face of a subscription's card (kind `subscription` or `single`). *known*: a dict
    the caller keeps while it draws many cards at once (a ring's eight tickets share their
    subscription and seats, read once instead of once per card)."""
    line = card["order_item_id"]
    if known is not None and line in known:
        sub, held = known[line]
    else:
        sub, held = _subscription_of(db, card)
        if known is not None:
            known[line] = (sub, held)
    common = dict(number=str(card["number"]), holder_name=holder_name(sub), product=product_label(sub),
                  valid_from=parse_iso(card["valid_from"]).astimezone(LOCAL_TZ).date(),
                  valid_until=parse_iso(card["valid_until"]).astimezone(LOCAL_TZ).date(),
                  organizer=sub["organizer"], code=card["code"], reference=sub["number"],
                  dates=tuple(DateLine(s.starts_at, s.title, s.short) for s in held))
    if card["kind"] == "subscription":
        return CardFace(**common, venue=venues(held))
    seat = next((s for s in held if s.performance_id == card["product_id"]), None)
    if seat is None:
        raise NotFound(f"card {card['number']}: the subscription holds no seat in its performance any more")
    return CardFace(**common, venue=seat.venue, performance=seat.title, starts_at=seat.starts_at, seat=seat.long,
                    discount=sub.get("discount") or discount_label(sub))
