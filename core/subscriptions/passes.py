"""Issuing a subscription's signed cards (S9): a season pass and/or a single ticket per performance.

`issue_subscription_cards()` makes the subscription's cards match its form and seats, in one
transaction, and is safe to call again (after a sale, a change of form or seats):

- form `pass` or `both`: one **season pass**, card kind 2 (`subscription`), product = the
  subscription product (its card code), personalized (the holder's name), valid from the start of
  the day of its first performance to the end of the day of its last (local time);
- form `single_tickets` or `both`: one **single ticket** per sold seat, card kind 3 (`single`),
  product = the performance (each performance gets its own card code), valid in the performance's
  entry window (`core.cards.cards.ENTRY_BEFORE` before the start to `ENTRY_AFTER` after it), not
  personalized: a transferable subscription's ticket may be passed on.

Cards missing are issued, each with a print job (and for mail a carrier sheet: the pass glued on
it, or for tickets alone a cover sheet with all dates and seats); cards the subscription no longer
calls for (the form changed, a date given up) are revoked and their open print jobs dropped. A
paused subscription gets no cards. Cards are `personalized` with the order's delivery, so they move
through fulfilment (A8) and the hub's print batches like annual cards.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

from core.base.clock import day_end, day_start, iso
from core.base.errors import Conflict
from core.base.storage import transaction
from core.cards import cards
from core.printing import print_queue
from core.subscriptions import choice_vouchers
from core.subscriptions.print_data import (
    LINE_OF_SUBSCRIPTION,
    Seat,
    holder_name,
    seats,
    seats_of,
    subscription_row,
    subscription_seats_sent,
)

FORMS = {"pass": ("pass",), "single_tickets": ("single_tickets",), "both": ("pass", "single_tickets", "both")}
DEFAULT_DELIVERY = "pickup"  # an order without a delivery (a seat sale) keeps the cards at the box office


def issue_subscription_cards(db: sqlite3.Connection, signer: cards.NodeSigner, subscription_id: str,
                             now: dt.datetime) -> list[dict]:
    """Issue what the subscription's form and seats call for and is not issued yet; revoke what
    it no longer calls for. Returns the cards issued now (none on a repeated call)."""
    with transaction(db):
        # the seats and cards are asked with the subscription's row (one round trip on PostgreSQL)
        held_now = subscription_seats_sent(db, subscription_id)
        cards_now = db.execute(f"SELECT * FROM cards WHERE order_item_id = {LINE_OF_SUBSCRIPTION} "
                               "AND revoked_at IS NULL", (subscription_id,))
        sub = subscription_row(db, subscription_id)
        _check(sub)
        if sub["product_kind"] == "voucher":  # its cards are its choice vouchers (issued once)
            choice_vouchers.issue_for_subscription(db, signer, subscription_id, now)
            return []
        held = seats_of(held_now)
        if not held:
            raise Conflict(f"subscription {sub['number']} holds no seats; there is nothing to print")
        existing = cards_now.fetchall()
        wanted_pass = sub["form"] in ("pass", "both")
        wanted_tickets = {s.performance_id: s for s in held} if sub["form"] in ("single_tickets", "both") else {}
        _revoke_surplus(db, signer, sub, existing, wanted_pass, wanted_tickets, now)
        issued = []
        if wanted_pass and not any(c["kind"] == "subscription" for c in existing):
            issued.append(_issue_pass(db, signer, sub, held, now))
        have = {c["product_id"] for c in existing if c["kind"] == "single"}
        issued += [_issue_ticket(db, signer, sub, seat, now) for pid, seat in wanted_tickets.items() if pid not in have]
        _queue_prints(db, sub, issued, now)
        for card in [*existing, *issued]:
            if card["kind"] == "subscription":
                record_pass_dates(db, card["id"], sub["line_id"])
    return issued


def tickets_now(db: sqlite3.Connection, subscription_id: str) -> dict[str, str]:
    """performance id -> the sold ticket's id: what a seat change is compared against."""
    sub = subscription_row(db, subscription_id)
    return {s.performance_id: s.ticket_id for s in seats(db, sub["line_id"])}


def reissue_moved(db: sqlite3.Connection, signer: cards.NodeSigner, subscription_id: str,
                  before: dict[str, str], now: dt.datetime) -> list[dict]:
    """After a seat change: every card that shows a seat that moved gets a new code and a print job
    (the single ticket of that performance, and the pass, which lists every seat). Why re-issue and
    not just reprint: the paper with the old seat must not stay valid beside the new one; its code
    is SUPERSEDED at the gate. *before* is `tickets_now()` from before the change."""
    with transaction(db):
        sub = subscription_row(db, subscription_id)
        after = {s.performance_id: s.ticket_id for s in seats(db, sub["line_id"])}
        moved = {perf for perf, ticket in after.items() if before.get(perf) not in (None, ticket)}
        if not moved:
            return []
        existing = db.execute("SELECT * FROM cards WHERE order_item_id = ? AND revoked_at IS NULL",
                              (sub["line_id"],)).fetchall()
        shows_moved = [c for c in existing if c["kind"] == "subscription" or
                       (c["kind"] == "single" and c["product_id"] in moved)]
        redone = []
        for card in shows_moved:
            print_queue.drop_open_jobs(db, card["id"])
            redone.append(cards.reissue_card(db, signer, card["id"], now))
            if card["kind"] == "subscription":
                record_pass_dates(db, redone[-1]["id"], sub["line_id"])
        _queue_prints(db, sub, redone, now)
    return redone


def subscription_cards(db: sqlite3.Connection, subscription_id: str) -> list[dict]:
    """The subscription's cards that are not revoked: the pass first, then the tickets by date."""
    sub = subscription_row(db, subscription_id)
    return db.execute("SELECT c.* FROM cards c LEFT JOIN performances p ON p.id = c.product_id "
                      "WHERE c.order_item_id = ? AND c.revoked_at IS NULL "
                      "ORDER BY c.kind = 'single', p.starts_at, c.number", (sub["line_id"],)).fetchall()


def _check(sub: dict) -> None:
    if sub["state"] == "paused":
        raise Conflict(f"subscription {sub['number']} is paused; it gets no cards until it runs again")
    if sub["form"] not in FORMS[sub["print_options"]]:
        raise Conflict(f"subscription {sub['number']}: form {sub['form']} is not offered by its product "
                       f"(print options: {sub['print_options']})")


def _details(sub: dict, now: dt.datetime) -> dict:
    return {"order_item_id": sub["line_id"], "delivery": sub["order_delivery"] or DEFAULT_DELIVERY,
            "fulfilment": "personalized", "fulfilment_at": iso(now)}


def _issue_pass(db: sqlite3.Connection, signer: cards.NodeSigner, sub: dict, held: list[Seat],
                now: dt.datetime) -> dict:
    """The season pass: valid from the first performance's day to the end of the last one's."""
    first, last = held[0].starts_at.date(), held[-1].starts_at.date()
    return cards.issue_card(db, signer, product_id=sub["product_id"], kind="subscription", now=now,
                            customer_id=sub["customer_id"], holder_name=holder_name(sub),
                            valid_from=day_start(first), valid_until=day_end(last), details=_details(sub, now))


def _issue_ticket(db: sqlite3.Connection, signer: cards.NodeSigner, sub: dict, seat: Seat,
                  now: dt.datetime) -> dict:
    """A single ticket: the performance's own card code and entry window (cards.default_validity)."""
    return cards.issue_card(db, signer, product_id=seat.performance_id, kind="single", now=now,
                            customer_id=sub["customer_id"], details=_details(sub, now))


def _revoke_surplus(db: sqlite3.Connection, signer: cards.NodeSigner, sub: dict, existing: list[dict],
                    wanted_pass: bool, wanted_tickets: dict[str, Seat], now: dt.datetime) -> None:
    for card in existing:
        keep = wanted_pass if card["kind"] == "subscription" else card["product_id"] in wanted_tickets
        if not keep:
            cards.revoke_card(db, signer, card["id"], f"no longer part of subscription {sub['number']}", now)
            print_queue.drop_open_jobs(db, card["id"])


def _queue_prints(db: sqlite3.Connection, sub: dict, issued: list[dict], now: dt.datetime) -> None:
    """A print job per new card; by mail also one carrier: the pass's, else a cover sheet on the
    first new ticket (the sheet lists every date and seat of the subscription)."""
    for card in issued:
        print_queue.enqueue(db, "card", card["id"], card["issue"], now)
    if issued and (sub["order_delivery"] or DEFAULT_DELIVERY) == "mail":
        carrier = next((c for c in issued if c["kind"] == "subscription"), issued[0])
        print_queue.enqueue(db, "carrier", carrier["id"], carrier["issue"], now)


def record_pass_dates(db: sqlite3.Connection, card_id: str, line_id: str) -> list[str]:
    """Write the dates the pass *card_id* admits at the gate (`pass_performances`, replicated):
    the performances of its subscription line that hold a sold seat now. Why per card and not
    the product's dates: a choice subscriber chose N of M dates, and a date given up or cancelled
    admits nobody. A revoked pass gets no dates (the gate refuses it as REVOKED anyway). Called
    whenever a pass is issued or re-issued, the seats change or the subscription is cancelled;
    safe to call again (the rows are replaced, unchanged rows are not rewritten). Returns the
    performance ids recorded."""
    # three questions asked before any answer is read (one round trip on PostgreSQL)
    revoked = db.execute("SELECT revoked_at FROM cards WHERE id = ?", (card_id,))
    sold = db.execute("SELECT performance_id FROM tickets WHERE line_id = ? AND status = 'sold'", (line_id,))
    recorded = db.execute("SELECT performance_id FROM pass_performances WHERE card_id = ?", (card_id,))
    card = revoked.fetchone()
    wanted = set() if card is None or card["revoked_at"] else {r["performance_id"] for r in sold}
    have = {r["performance_id"] for r in recorded}
    db.executemany("DELETE FROM pass_performances WHERE card_id = ? AND performance_id = ?",
                   [(card_id, p) for p in sorted(have - wanted)])
    db.executemany("INSERT INTO pass_performances (card_id, performance_id) VALUES (?, ?)",
                   [(card_id, p) for p in sorted(wanted - have)])
    return sorted(wanted)
