"""What the office's choice-voucher screens read (issue 15, S10): the performances of an offer
still ahead, the seat map of one performance from the hub's pool, its zone prices, and a
redemption as the clerk reads it back (ticket, vouchers, payments).

Reads only: checking and booking a redemption go through the API (`POST
/voucher-redemptions/quote` and `POST /voucher-redemptions`, via `api_call`), so the office
follows the one rule in `core.subscriptions.voucher_redemption`. The map is the one renderer's
(`core.catalog.seating.seatmap`) with the states the shop and the single-ticket sale use
(`core.sales.seat_states`, the hub's pool).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Collection, Sequence

from core.base.clock import iso
from core.catalog.seating.seatmap import FREE, SELECTED, seat_map_svg
from core.sales.contingents import HUB
from core.sales.seat_states import performance_map

NUMBER_MAX = 40  # a typed number is short (WG-2026-000001); a scanned signed code is long


def reference(text: str) -> dict[str, str] | None:
    """A scanned or typed line as the API's voucher reference: `number` or `code` (None: empty)."""
    text = text.strip()
    if not text:
        return None
    return {"number": text} if len(text) <= NUMBER_MAX else {"code": text}


def performances_ahead(db: sqlite3.Connection, ids: Collection[str], now: dt.datetime) -> list[dict]:
    """The performances of *ids* that have not begun, by date: title, start, venue."""
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    return db.execute(
        "SELECT f.id, f.title, f.starts_at, ve.name AS venue FROM performances f JOIN venues ve ON ve.id = f.venue_id "
        f"WHERE f.id IN ({marks}) AND f.starts_at > ? ORDER BY f.starts_at, f.id", [*ids, iso(now)]).fetchall()


def common_offer(vouchers: Sequence[dict]) -> list[str]:
    """The performances every voucher may pay (one ticket: all vouchers must allow it)."""
    if not vouchers:
        return []
    shared = set(vouchers[0]["offer"]).intersection(*(v["offer"] for v in vouchers[1:]))
    return [p for p in vouchers[0]["offer"] if p in shared]


def seat_map(db: sqlite3.Connection, performance_id: str, selected: str | None, lang: str,
             now: dt.datetime) -> tuple[str, bool]:
    """The performance's map as the hub's pool sees it (sold, held, other pool not choosable),
    and whether the seat *selected* is free there (then it is marked)."""
    plan, seats, states = performance_map(db, performance_id, HUB, now)
    free = bool(selected) and states.get(selected, FREE) == FREE and any(s.id == selected for s in seats)
    if free:
        states = {**states, selected: SELECTED}
    return seat_map_svg(plan, seats, states, lang), free


def zone_prices(db: sqlite3.Connection, performance_id: str) -> list[dict]:
    """The performance's price per zone (the ticket a voucher pays costs its zone price)."""
    return db.execute(
        "SELECT z.id, z.name, z.color, pp.price_cents FROM performance_prices pp JOIN price_zones z "
        "ON z.id = pp.zone_id WHERE pp.performance_id = ? ORDER BY z.sort, z.name", (performance_id,)).fetchall()


def redemption_of_order(db: sqlite3.Connection, order_id: str) -> dict | None:
    """A redemption's order as the clerk reads it back: order, ticket with seat and performance,
    per voucher the value used and lapsed, and the order's payments. None: no redemption."""
    # In the order the clerk gave them (the split's order): their voucher payments were recorded in
    # that order with time-ordered ids (no rowid on PostgreSQL); a voucher that used nothing has no
    # payment, and is then the only voucher of the order.
    used = db.execute(
        "SELECT r.*, v.number, v.tier_name FROM choice_voucher_redemptions r JOIN choice_vouchers v "
        "ON v.id = r.voucher_id WHERE r.order_id = ? ORDER BY coalesce((SELECT min(p.id) FROM payments p "
        "WHERE p.order_id = r.order_id AND p.method = 'voucher' AND p.reference = v.number), ''), r.voucher_id",
        (order_id,)).fetchall()
    if not used:
        return None
    order = db.execute("SELECT id, number, channel, total_cents, created_at, operator FROM orders WHERE id = ?",
                       (order_id,)).fetchone()
    return {"order": order, "ticket": ticket(db, used[0]["ticket_id"]), "rule": used[0]["rule"],
            "discount_label": used[0]["discount_label"], "vouchers": used,
            "payments": db.execute("SELECT method, amount_cents, reference, state FROM payments WHERE order_id = ? "
                                   "ORDER BY method = 'voucher' DESC, created_at, id", (order_id,)).fetchall()}


def ticket(db: sqlite3.Connection, ticket_id: str) -> dict | None:
    """A ticket with its performance, seat and zone, as printed."""
    return db.execute(
        "SELECT k.id, k.price_cents, k.status, k.order_id, f.title, f.starts_at, pc.name AS section, "
        "st.row_label, st.label, z.name AS zone FROM tickets k JOIN performances f ON f.id = k.performance_id "
        "JOIN seats st ON st.id = k.seat_id JOIN plan_sections pc ON pc.id = st.section_id "
        "JOIN price_zones z ON z.id = k.zone_id WHERE k.id = ?", (ticket_id,)).fetchone()
