"""Subscriptions as records: find them, read one with its seats, and change it (issue 13).

One function per change, each one transaction:
- `change_tier`: the tier is recorded for the *next* season (renewal prices it); what was
  paid this season stays as it is, nothing is re-priced;
- `change_form`: pass, single tickets or both, as the product's print options allow;
- `change_seats`: one performance, or all performances of a ring group; checked like a sale
  (the seat offered, in the hub's pool, free: not sold, not held by someone else; a variant
  lacking the seat needs its replacement; the zone the subscription is priced in), the old
  tickets cancelled and the new ones sold at the same prices;
- `set_state`: cancel (it runs to the end of `ends_season_id`, the product's season unless
  given; its seats of this season stay sold), pause, resume (a paused one only);
- `cancel_now`: cancel with immediate effect (a Storno): the tickets of performances not yet
  begun are cancelled (their seats free again in the pool they were sold from), every live card
  of the subscription revoked (the gates hear of it with their next pull). Refunds and
  cancellation invoices (issue 16) build on it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Annotated, Literal

from msgspec import Meta

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.storage import transaction
from core.cards import cards
from core.catalog import pricing, resource
from core.catalog.common import Body, Id
from core.catalog.subscriptions import Subscriptions
from core.printing import print_queue
from core.sales.contingents import HUB
from core.subscriptions import holds, passes
from core.subscriptions.sale import Form, ReplacementIn, SeatAtIn, combi_seats, form_of, insert_tickets, ring_seats
from core.subscriptions.seat_loader import load_performances
from core.subscriptions.series import ring_groups

State = Literal["active", "cancelled", "paused"]
FILTERS = ("customer_id", "product_id", "state", "number", "agency_token")


class SeatChangeIn(Body, kw_only=True):
    """`performance_id` given: the seat of that one performance. Left out: all performances of
    the ring group on the seat's plan (with `replacements` where a variant lacks it)."""

    seat_id: Id
    performance_id: Id | None = None
    replacements: Annotated[list[ReplacementIn], Meta(max_length=40)] = []


class SubscriptionChange(Body, kw_only=True):
    """What PATCH changes: each field left out stays as it is. `effective: "now"` with state
    cancelled is the immediate cancellation (`cancel_now`); left out, a cancellation runs to the
    end of a season."""

    tier_id: Id | None = None
    clear_tier: bool = False
    form: Form | None = None
    state: State | None = None
    ends_season_id: Id | None = None
    effective: Literal["season_end", "now"] | None = None


# --- reading ------------------------------------------------------------------------------------------


def _where(filters: dict, performance_id: str | None, q: str | None) -> tuple[str, list]:
    clauses, args = [], []
    for name in FILTERS:
        if filters.get(name) is not None:
            clauses.append(f"s.{name} = ?")
            args.append(filters[name])
    if performance_id:
        clauses.append("EXISTS (SELECT 1 FROM tickets t WHERE t.line_id = s.line_id AND t.performance_id = ? "
                       "AND t.status = 'sold')")
        args.append(performance_id)
    if q:
        folded = "%" + q.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(casefold(c.first_name || ' ' || c.last_name) LIKE ? ESCAPE '\\' "
                       "OR casefold(coalesce(s.holder_name, '')) LIKE ? ESCAPE '\\' OR casefold(s.number) LIKE ? "
                       "ESCAPE '\\')")
        args += [folded, folded, folded]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def search(db: sqlite3.Connection, *, filters: dict | None = None, performance_id: str | None = None,
           q: str | None = None, limit: int = 50, offset: int = 0) -> dict:
    """A page of subscriptions, newest first: by customer, product, state, number, a performance
    they hold a seat in, and *q* in the customer's or holder's name or the number."""
    where, args = _where(filters or {}, performance_id, q)
    source = ("FROM subscriptions s JOIN customers c ON c.id = s.customer_id "
              "JOIN subscription_products p ON p.id = s.product_id")
    total = db.execute(f"SELECT count(*) AS n {source}{where}", args).fetchone()["n"]
    rows = db.execute(f"SELECT s.*, p.name AS product, c.first_name || ' ' || c.last_name AS customer "
                      f"{source}{where} ORDER BY s.created_at DESC, s.id DESC LIMIT ? OFFSET ?",
                      [*args, limit, offset]).fetchall()
    return {"items": rows, "total": total, "limit": limit, "offset": offset}


def row(db: sqlite3.Connection, subscription_id: str) -> dict:
    found = db.execute("SELECT s.*, p.name AS product, c.first_name || ' ' || c.last_name AS customer "
                       "FROM subscriptions s JOIN customers c ON c.id = s.customer_id "
                       "JOIN subscription_products p ON p.id = s.product_id WHERE s.id = ?",
                       (subscription_id,)).fetchone()
    if found is None:
        raise NotFound(f"subscription {subscription_id} does not exist")
    return found


def get(db: sqlite3.Connection, subscription_id: str) -> dict:
    """One subscription with its seats, one per performance in date order."""
    seats = db.execute(  # asked before the subscription's row is read: one round trip for both on PostgreSQL
        "SELECT t.id AS ticket_id, t.performance_id, p.title, p.starts_at, p.variant_id, t.seat_id, "
        "c.name AS section, s.row_label, s.label, t.zone_id, t.price_cents FROM tickets t "
        "JOIN performances p ON p.id = t.performance_id JOIN seats s ON s.id = t.seat_id "
        "JOIN plan_sections c ON c.id = s.section_id WHERE t.line_id = (SELECT line_id FROM subscriptions "
        "WHERE id = ?) AND t.status = 'sold' ORDER BY p.starts_at, p.id", (subscription_id,))
    sub = row(db, subscription_id)
    return {**sub, "seats": seats.fetchall()}


def _current(db: sqlite3.Connection, subscription_id: str) -> dict:
    sub = row(db, subscription_id)
    if sub["state"] == "cancelled":
        raise Conflict(f"subscription {sub['number']} is cancelled; it is not changed any more")
    return sub


# --- changing -----------------------------------------------------------------------------------------


# the only columns _touch may set
CHANGEABLE = frozenset({"tier_id", "form", "state", "ends_season_id", "cancelled_at"})


def _touch(db: sqlite3.Connection, subscription_id: str, now: dt.datetime, **columns: object) -> None:
    if not set(columns) <= CHANGEABLE:  # names reach the SQL text: only this fixed set, never input
        raise ValueError(f"not a changeable subscription column: {sorted(set(columns) - CHANGEABLE)}")
    sets = ", ".join(f"{name} = ?" for name in columns)
    db.execute(f"UPDATE subscriptions SET {sets}{', ' if sets else ''}updated_at = ? WHERE id = ?",
               (*columns.values(), iso(now), subscription_id))


def change_tier(db: sqlite3.Connection, subscription_id: str, tier_id: str | None, now: dt.datetime) -> dict:
    """Record another discount tier (None: full price) for the next season; nothing is re-priced."""
    with transaction(db):
        sub = _current(db, subscription_id)
        pricing.tier_of(db, sub["product_id"], tier_id)
        _touch(db, subscription_id, now, tier_id=tier_id)
    return get(db, subscription_id)


def change_form(db: sqlite3.Connection, subscription_id: str, form: str, now: dt.datetime) -> dict:
    with transaction(db):
        sub = _current(db, subscription_id)
        prod = resource.get(db, Subscriptions(), sub["product_id"])
        _touch(db, subscription_id, now, form=form_of(prod, form))
    return get(db, subscription_id)


def set_state(db: sqlite3.Connection, subscription_id: str, state: str, now: dt.datetime, *,
              ends_season_id: str | None = None) -> dict:
    """Cancel (to the end of *ends_season_id*, by default the product's season), pause or resume."""
    with transaction(db):
        sub = _current(db, subscription_id)
        if state == "cancelled":
            season = ends_season_id or db.execute("SELECT season_id FROM subscription_products WHERE id = ?",
                                                  (sub["product_id"],)).fetchone()["season_id"]
            if not db.execute("SELECT 1 FROM seasons s JOIN subscription_products p ON p.organizer_id = "
                              "s.organizer_id WHERE s.id = ? AND p.id = ?", (season, sub["product_id"])).fetchone():
                raise ValidationError("the season it ends with must be a season of the product's organizer",
                                      field="ends_season_id")
            _touch(db, subscription_id, now, state="cancelled", ends_season_id=season)
        elif ends_season_id is not None:
            raise ValidationError("ends_season_id goes with state cancelled", field="ends_season_id")
        elif state == "paused":
            _touch(db, subscription_id, now, state="paused")
        elif state == "active":
            if sub["state"] != "paused":
                raise Conflict(f"subscription {sub['number']} is {sub['state']}; only a paused one is resumed")
            _touch(db, subscription_id, now, state="active")
        else:
            raise ValidationError(f"no state {state!r}", field="state")
    return get(db, subscription_id)


def cancel_now(db: sqlite3.Connection, signer: cards.NodeSigner, subscription_id: str, now: dt.datetime, *,
               reason: str | None = None) -> dict:
    """Cancel with immediate effect (a Storno), in one transaction: the subscription cancelled
    (`cancelled_at` = *now*; one cancelled to a season's end before may still be cancelled now),
    its tickets of performances not yet begun cancelled (a cancelled ticket takes no seat, and the
    seat's `seat_pools` row is untouched, so it is free again in the pool it was sold from), and
    every live card of its line revoked with *reason*, whoever issued it (hub or desk): the
    revocation is a `cards` change, so gates refuse the cards after their next pull, also offline.
    The pass's dates are cleared. Called again: nothing changes (the first time is kept)."""
    with transaction(db):
        sub = row(db, subscription_id)
        if sub["cancelled_at"] is not None:
            return get(db, subscription_id)
        season = sub["ends_season_id"] or db.execute("SELECT season_id FROM subscription_products WHERE id = ?",
                                                      (sub["product_id"],)).fetchone()["season_id"]
        _touch(db, subscription_id, now, state="cancelled", ends_season_id=season, cancelled_at=iso(now))
        db.execute("UPDATE tickets SET status = 'cancelled' WHERE line_id = ? AND status = 'sold' AND performance_id "
                   "IN (SELECT id FROM performances WHERE starts_at > ?)", (sub["line_id"], iso(now)))
        why = reason or f"subscription {sub['number']} cancelled"
        # its unused choice vouchers die with it; `void` replicates, so a desk refuses them offline
        db.execute("UPDATE choice_vouchers SET state = 'void', updated_at = ? WHERE subscription_id = ? "
                   "AND state = 'open'", (iso(now), subscription_id))
        for card in db.execute("SELECT id, kind FROM cards WHERE order_item_id = ? AND revoked_at IS NULL",
                               (sub["line_id"],)).fetchall():
            cards.revoke_card(db, signer, card["id"], why, now)
            print_queue.drop_open_jobs(db, card["id"])
            if card["kind"] == "subscription":
                passes.record_pass_dates(db, card["id"], sub["line_id"])
    return get(db, subscription_id)


def change(db: sqlite3.Connection, subscription_id: str, body: SubscriptionChange, now: dt.datetime) -> dict:
    """PATCH: tier, form and state, each in its own checked step, in one transaction. (The
    immediate cancellation, `effective: "now"`, needs the hub's signer: see `cancel_now`.)"""
    if body.clear_tier and body.tier_id:
        raise ValidationError("give a tier or clear it, not both", field="tier_id")
    if body.effective == "now":
        raise ValidationError("an immediate cancellation is cancel_now()", field="effective")
    with transaction(db):
        if body.tier_id or body.clear_tier:
            change_tier(db, subscription_id, body.tier_id, now)
        if body.form:
            change_form(db, subscription_id, body.form, now)
        if body.state or body.ends_season_id:
            set_state(db, subscription_id, body.state or "cancelled", now, ends_season_id=body.ends_season_id)
    return get(db, subscription_id)


def change_seats(db: sqlite3.Connection, subscription_id: str, body: SeatChangeIn, *, holder: str | None = None,
                 now: dt.datetime) -> dict:
    """Move the subscription to other seats, checked like a sale, in one transaction: the old
    tickets of the performances concerned are cancelled and new ones sold at their prices."""
    with transaction(db):
        sub = _current(db, subscription_id)
        old = {t["performance_id"]: t for t in db.execute(
            "SELECT * FROM tickets WHERE line_id = ? AND status = 'sold'", (sub["line_id"],))}
        if body.performance_id is not None and body.performance_id not in old:
            raise ValidationError(f"performance {body.performance_id} is not one of this subscription's dates",
                                  field="performance_id")
        holds.expire(db, now, list(old))
        db.execute("UPDATE tickets SET status = 'cancelled' WHERE line_id = ? AND status = 'sold'", (sub["line_id"],))
        perfs = load_performances(db, list(old), pool=HUB, holds=holds.held_by_others(holder))
        if body.performance_id is not None:
            if body.replacements:
                raise ValidationError("one performance's seat has no replacements", field="replacements")
            one = [p for p in perfs if p.performance_id == body.performance_id]
            moved = combi_seats(one, [SeatAtIn(performance_id=body.performance_id, seat_id=body.seat_id)])
        else:
            group = [g for g in ring_groups(perfs) if body.seat_id in g.plan.index]
            if not group:
                raise ValidationError(f"seat {body.seat_id} is not on a seating plan of this subscription's dates",
                                      field="seat_id")
            moved = ring_seats(group, [body.seat_id], body.replacements)[0].bookings()
        plans = {p.performance_id: p.plan for p in perfs}
        tickets = []
        for perf, seat_id in moved:
            zone = plans[perf].seat(seat_id).zone_id
            if zone != (sub["zone_id"] or old[perf]["zone_id"]):
                raise ValidationError(f"{plans[perf].seat(seat_id).describe()} is in another price zone; a seat "
                                      "change keeps the zone it was paid for", field="seat_id")
            tickets.append({"id": uuid7(), "performance_id": perf, "seat_id": seat_id, "zone_id": zone,
                            "price_cents": old[perf]["price_cents"]})
        changed = {t["performance_id"] for t in tickets}
        db.executemany("UPDATE tickets SET status = 'sold' WHERE id = ?",
                       [(t["id"],) for p, t in old.items() if p not in changed])
        if holder is not None:
            holds.release_seats(db, holder, [(t["performance_id"], t["seat_id"]) for t in tickets])
        insert_tickets(db, sub["order_id"], sub["line_id"], tickets, iso(now))
        _touch(db, subscription_id, now)
    return get(db, subscription_id)
