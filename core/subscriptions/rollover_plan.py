"""Planning a season rollover (S15): for every subscription of the old season, what it becomes.

Pure decisions over data read once (`load`): nothing here writes, so the dry run and the real
run plan the same way, and the run (`rollover_run`) only stores what `plan()` answers.

Per subscription, in order of sale (the longest subscriber first):
- cancelled to the end of the old season (or with immediate effect), by the cancellation deadline
  if there is one: **left out**;
- no successor product: listed **product missing**; its tier has no namesake in the new product:
  listed **tier missing** (the seed: identical discount names matter);
- its seats, date by date (`rollover_map`: dates by position, seats by identity or by section,
  row and number): a seat whose price zone changed is listed **price zone changed** (the office
  decides: the price would change); a wheelchair place or its companion seat that cannot be kept
  is listed **wheelchair place locked** (no automatic move: such a place is not interchangeable).

Two passes, as the best systems do: **pass 1** keeps everyone whose seat is there and free in
every new date; **pass 2** gives the rest, for the dates where the seat is gone or blocked, the
free seat of the same zone nearest to the old one, the same in all those dates of one plan
(the seats pass-2 subscribers keep elsewhere are reserved first, so a replacement never takes a
seat somebody keeps); without one the subscription is listed **seat gone or blocked**. Paused
subscriptions are planned alike and keep their seat as a hold (`paused`). Nothing is skipped
silently: every subscription of the old season gets exactly one item.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.base.clock import iso
from core.base.sql import json_values
from core.sales.contingents import HUB
from core.subscriptions.rollover_map import ProductMap, SeasonPair
from core.subscriptions.seat_loader import load_performances, load_plan
from core.subscriptions.seats import PerformanceSeats, Plan, Seat, indexes_of, is_set

REASONS = ("product_missing", "tier_missing", "seat_gone", "zone_changed", "wheelchair_locked")
LEFT_OUT = ("cancelled",)
Booking = tuple[str, str]  # (performance id, seat id)


@dataclass
class Item:
    """What one subscription becomes: kept (pass 1), moved (pass 2), paused (held, not renewed
    by a confirmation of all), listed (with its reason) or left out (cancelled)."""

    subscription_id: str
    number: str
    customer: str
    customer_id: str
    outcome: str
    reason: str | None = None
    detail: str = ""
    to_product_id: str | None = None
    tier_id: str | None = None
    zone_id: str | None = None
    seats: list[Booking] = field(default_factory=list)

    def as_row(self) -> dict:
        return {"subscription_id": self.subscription_id, "number": self.number, "customer": self.customer,
                "customer_id": self.customer_id, "outcome": self.outcome, "reason": self.reason,
                "detail": self.detail, "to_product_id": self.to_product_id, "tier_id": self.tier_id,
                "zone_id": self.zone_id, "seats": [list(b) for b in self.seats]}


@dataclass
class Slot:
    """One new date of a subscription: the seat it would keep there (None: none on that plan)."""

    performance_id: str
    seat_id: str | None
    source: Seat  # the old seat it comes from
    zone_id: str
    problem: str | None = None  # 'gone' (not offered there), 'taken' (sold, held, blocked), 'zone'


@dataclass
class Want:
    sub: dict
    product: dict
    tier_id: str | None
    zone_id: str | None
    slots: list[Slot]

    def item(self, outcome: str, seats: Iterable[Booking]) -> Item:
        if self.sub["state"] == "paused":
            outcome = "paused"
        return Item(self.sub["id"], self.sub["number"], self.sub["customer"], self.sub["customer_id"], outcome,
                    to_product_id=self.product["id"], tier_id=self.tier_id, zone_id=self.zone_id,
                    seats=list(seats))


def place(seat: Seat) -> str:
    """A seat as the office lists write it, in any language: `Parkett 5/7` (section, row/number)."""
    return f"{seat.section} {seat.row}/{seat.label}"


# --- reading ----------------------------------------------------------------------------------------------


@dataclass
class Source:
    """Everything the planner needs, read once."""

    subs: list[dict]
    tickets: dict[str, list[dict]]  # line id -> its sold tickets
    old_positions: dict[str, int]  # old performance -> position in its product
    old_plans: dict[str, Plan]  # old performance -> its plan
    new_perfs: dict[str, PerformanceSeats]
    tier_names: dict[str, str]


def live_holds(now: dt.datetime):
    """Seats held by anybody (rollover holds too) and not expired: read only (a dry run deletes nothing)."""

    def taken(db: sqlite3.Connection, performance_ids: Sequence[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for row in db.execute(f"SELECT performance_id, seat_id FROM seat_holds WHERE performance_id IN "
                              f"({json_values()}) AND expires_at > ?", (json.dumps(list(performance_ids)), iso(now))):
            out.setdefault(row["performance_id"], set()).add(row["seat_id"])
        return out

    return taken


def load(db: sqlite3.Connection, pair: SeasonPair, pmap: ProductMap, now: dt.datetime,
         skip: set[str] = frozenset()) -> Source:
    """The old season's subscriptions (but *skip*: already planned), their seats, and the new dates' seats."""
    season = pair.from_season["id"]
    subs = [s for s in db.execute(
        "SELECT s.id, s.number, s.line_id, s.order_id, s.customer_id, s.product_id, s.tier_id, s.zone_id, s.form, "
        "s.state, s.ends_season_id, s.cancelled_at, s.updated_at, c.number AS customer_number, "
        "c.last_name || ', ' || c.first_name AS customer, e.starts_on AS ends_starts_on FROM subscriptions s "
        "JOIN subscription_products p ON p.id = s.product_id JOIN customers c ON c.id = s.customer_id "
        "LEFT JOIN seasons e ON e.id = s.ends_season_id WHERE p.season_id = ? ORDER BY s.created_at, s.id",
        (season,)) if s["id"] not in skip]
    tickets: dict[str, list[dict]] = {}
    for t in db.execute("SELECT t.line_id, t.performance_id, t.seat_id, t.zone_id FROM tickets t "
                        "JOIN subscriptions s ON s.line_id = t.line_id JOIN subscription_products p "
                        "ON p.id = s.product_id WHERE p.season_id = ? AND t.status = 'sold'", (season,)):
        tickets.setdefault(t["line_id"], []).append(t)
    old_positions, old_plans = {}, {}
    for r in db.execute("SELECT x.performance_id, x.position, v.plan_id FROM subscription_performances x "
                        "JOIN subscription_products p ON p.id = x.product_id JOIN performances f "
                        "ON f.id = x.performance_id JOIN plan_variants v ON v.id = f.variant_id "
                        "WHERE p.season_id = ?", (season,)):
        old_positions[r["performance_id"]] = r["position"]
        old_plans[r["performance_id"]] = load_plan(db, r["plan_id"])
    new_ids = sorted({p for prod in pmap.pairs.values() if prod for p in prod["performance_ids"]})
    perfs = load_performances(db, new_ids, pool=HUB, holds=live_holds(now)) if new_ids else []
    names = {r["id"]: r["name"] for r in db.execute(
        f"SELECT id, name FROM discount_tiers WHERE id IN ({json_values()})",
        (json.dumps(sorted({s["tier_id"] for s in subs if s["tier_id"]})),))}
    return Source(subs, tickets, old_positions, old_plans, {p.performance_id: p for p in perfs}, names)


# --- deciding -----------------------------------------------------------------------------------------------


class Planner:
    """The two passes over one `Source`; `free` is what is still free per new date as seats are given."""

    def __init__(self, src: Source, pmap: ProductMap, pair: SeasonPair, cancel_deadline: str | None) -> None:
        self.src, self.pmap, self.pair, self.deadline = src, pmap, pair, cancel_deadline
        self.free = {p: ps.free for p, ps in src.new_perfs.items()}
        self._places: dict[str, dict[tuple[str, str, str], str]] = {}
        self._zone_masks: dict[tuple[str, str], int] = {}

    def plan(self) -> list[Item]:
        items: dict[str, Item] = {}
        first, second = [], []
        for sub in self.src.subs:
            want = self._want(sub)
            if isinstance(want, Item):
                items[sub["id"]] = want
            elif any(s.problem for s in want.slots):
                second.append(want)
            else:
                first.append(want)
        for want in first:  # pass 1: everyone who can keep their seat
            if self._claim([(s.performance_id, s.seat_id) for s in want.slots]):
                items[want.sub["id"]] = want.item("kept", [(s.performance_id, s.seat_id) for s in want.slots])
            else:  # lost to an earlier one of this pass (two old products on one seat): pass 2
                for s in want.slots:
                    s.problem = s.problem or ("taken" if not self._is_free(s) else None)
                second.append(want)
        kept = {id(w): self._reserve_kept(w) for w in second}  # pass 2: their kept seats first
        for want in second:
            items[want.sub["id"]] = self._move(want, kept[id(want)])
        return [items[s["id"]] for s in self.src.subs]

    # one subscription's wish ---------------------------------------------------------------------

    def _want(self, sub: dict) -> Want | Item:
        bare = Item(sub["id"], sub["number"], sub["customer"], sub["customer_id"], "listed")
        if self._left_out(sub):
            bare.outcome, bare.reason = "left_out", "cancelled"
            return bare
        prod = self.pmap.product_for(sub["product_id"])
        if prod is None:
            bare.reason = "product_missing"
            return bare
        bare.to_product_id = prod["id"]
        tier_id = None
        if sub["tier_id"]:
            name = self.src.tier_names.get(sub["tier_id"], "")
            tier_id = self.pmap.tiers.get(prod["id"], {}).get(name)
            if tier_id is None:
                bare.reason, bare.detail = "tier_missing", name
                return bare
        bare.tier_id = tier_id
        slots = self._slots(sub, prod)
        if isinstance(slots, str):
            bare.reason, bare.detail = "seat_gone", slots
            return bare
        zone_moved = [s for s in slots if s.problem == "zone"]
        if zone_moved:
            bare.reason, bare.detail = "zone_changed", place(zone_moved[0].source)
            return bare
        locked = [s for s in slots if s.problem and (s.source.wheelchair or s.source.companion)]
        if locked:
            bare.reason, bare.detail = "wheelchair_locked", place(locked[0].source)
            return bare
        return Want(sub, prod, tier_id, sub["zone_id"], slots)

    def _left_out(self, sub: dict) -> bool:
        """Cancelled to the end of the old season or earlier (or at once), by the deadline if one is set."""
        if sub["state"] != "cancelled":
            return False
        if self.deadline is not None and (sub["cancelled_at"] or sub["updated_at"]) > self.deadline:
            return False  # cancelled too late: the subscription renews
        return sub["cancelled_at"] is not None or sub["ends_starts_on"] is None or \
            sub["ends_starts_on"] <= self.pair.from_season["starts_on"]

    def _slots(self, sub: dict, prod: dict) -> list[Slot] | str:
        """A slot per new date (ring, combi: all; choice: the positions chosen), or why there is none."""
        if prod["kind"] == "voucher":
            return []
        tickets = self.src.tickets.get(sub["line_id"], [])
        if not tickets:
            return "no seats in the old season"
        by_pos = {self.src.old_positions.get(t["performance_id"]): t for t in tickets}
        new_ids = prod["performance_ids"]
        if prod["kind"] == "choice":
            wanted = sorted(p for p in by_pos if p is not None)
            if any(p >= len(new_ids) for p in wanted):
                return f"date {max(wanted) + 1} has no counterpart in {prod['name']}"
        else:
            wanted = list(range(len(new_ids)))
        slots = []
        for pos in wanted:
            new_perf = self.src.new_perfs[new_ids[pos]]
            ticket = by_pos.get(pos) or self._same_plan(tickets, new_perf.plan.id) or tickets[0]
            slots.append(self._slot(new_perf, ticket, sub["zone_id"] or ticket["zone_id"]))
        return slots

    def _same_plan(self, tickets: list[dict], plan_id: str) -> dict | None:
        return next((t for t in tickets if self.src.old_plans[t["performance_id"]].id == plan_id), None)

    def _slot(self, perf: PerformanceSeats, ticket: dict, zone_id: str) -> Slot:
        source = self.src.old_plans[ticket["performance_id"]].seat(ticket["seat_id"])
        plan = perf.plan
        seat_id = source.id if source.id in plan.index else self._place(plan).get(
            (source.section, source.row, source.label))
        slot = Slot(perf.performance_id, seat_id, source, zone_id)
        if seat_id is None or not is_set(perf.offered, plan.index[seat_id]):
            slot.problem = "gone"
        elif plan.seat(seat_id).zone_id != zone_id:
            slot.problem = "zone"
        elif not self._is_free(slot):
            slot.problem = "taken"
        return slot

    def _place(self, plan: Plan) -> dict[tuple[str, str, str], str]:
        """The plan's seats by section, row and number (a new plan: the seat found by its place)."""
        if plan.id not in self._places:
            self._places[plan.id] = {(s.section, s.row, s.label): s.id for s in plan.seats}
        return self._places[plan.id]

    # seats ---------------------------------------------------------------------------------------------

    def _is_free(self, slot: Slot) -> bool:
        plan = self.src.new_perfs[slot.performance_id].plan
        return slot.seat_id is not None and is_set(self.free[slot.performance_id], plan.index[slot.seat_id])

    def _claim(self, bookings: list[Booking]) -> bool:
        """Take all these seats, or none if one is not free any more."""
        bits = [(perf, 1 << self.src.new_perfs[perf].plan.index[seat]) for perf, seat in bookings]
        if any(not self.free[perf] & bit for perf, bit in bits):
            return False
        for perf, bit in bits:
            self.free[perf] &= ~bit
        return True

    def _release(self, bookings: list[Booking]) -> None:
        for perf, seat in bookings:
            self.free[perf] |= 1 << self.src.new_perfs[perf].plan.index[seat]

    def _reserve_kept(self, want: Want) -> list[Booking]:
        """A pass-2 subscription's seats where it keeps them, taken before any replacement is chosen."""
        kept = []
        for slot in want.slots:
            if slot.problem is None:
                if self._claim([(slot.performance_id, slot.seat_id)]):
                    kept.append((slot.performance_id, slot.seat_id))
                else:
                    slot.problem = "taken"
        return kept

    def _move(self, want: Want, kept: list[Booking]) -> Item:
        """Pass 2: per plan, one free seat of the zone nearest the old one in all dates lacking it."""
        lacking: dict[str, list[Slot]] = {}
        for slot in want.slots:
            if slot.problem:
                lacking.setdefault(self.src.new_perfs[slot.performance_id].plan.id, []).append(slot)
        moved: list[Booking] = []
        for slots in lacking.values():
            seat_id = self._nearest(slots)
            if seat_id is None or not self._claim([(s.performance_id, seat_id) for s in slots]):
                self._release(kept + moved)
                item = want.item("listed", [])
                item.outcome, item.reason, item.detail = "listed", "seat_gone", place(slots[0].source)
                return item
            moved += [(s.performance_id, seat_id) for s in slots]
        order = {s.performance_id: k for k, s in enumerate(want.slots)}
        return want.item("moved", sorted(kept + moved, key=lambda b: order[b[0]]))

    def _nearest(self, slots: list[Slot]) -> str | None:
        perf = self.src.new_perfs[slots[0].performance_id]
        plan, mask = perf.plan, self._zone_mask(perf.plan, slots[0].zone_id)
        for slot in slots:
            mask &= self.free[slot.performance_id]
        src = slots[0].source  # nearest, a row away counting twice a seat aside (a subscriber keeps the row)
        best = min(indexes_of(mask), default=None, key=lambda i: (
            (plan.seats[i].x - src.x) ** 2 + (2 * (plan.seats[i].y - src.y)) ** 2, plan.seats[i].id))
        return None if best is None else plan.seats[best].id

    def _zone_mask(self, plan: Plan, zone_id: str) -> int:
        """The plan's seats of the zone, neither wheelchair places nor companion seats."""
        key = (plan.id, zone_id)
        if key not in self._zone_masks:
            self._zone_masks[key] = plan.mask([s.id for s in plan.seats if s.zone_id == zone_id
                                               and not s.wheelchair and not s.companion])
        return self._zone_masks[key]


def plan(db: sqlite3.Connection, pair: SeasonPair, pmap: ProductMap, now: dt.datetime, *,
         cancel_deadline: str | None = None, skip: set[str] = frozenset()) -> list[Item]:
    """Every subscription of the old season (but *skip*) with what it becomes; reads only."""
    return Planner(load(db, pair, pmap, now, skip), pmap, pair, cancel_deadline).plan()


def summary(items: Iterable[dict]) -> dict:
    """Counts per outcome and the listed ones grouped by reason (what the CLI and office show)."""
    counts = {k: 0 for k in ("kept", "moved", "paused", "listed", "left_out")}
    listed: dict[str, list[dict]] = {r: [] for r in REASONS}
    for item in items:
        counts[item["outcome"]] += 1
        if item["outcome"] == "listed":
            listed[item["reason"]].append({k: item[k] for k in ("subscription_id", "number", "customer", "detail")})
    return {"counts": counts, "listed": {r: v for r, v in listed.items() if v}}
