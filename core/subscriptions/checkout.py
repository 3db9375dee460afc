"""Subscriptions sold by the online shop and by agencies (issue 13: S3 sale windows, S16 agencies).

The shop and every agency are API tokens. What they may see and sell follows from the token:

- the **shop** (role `shop`) sells through the `online` sale windows, from the hub's pool, with
  the tiers the shop may offer (active, never complimentary: an Ehrenkarte is the organizer's
  gift, not something a web visitor picks);
- an **agency** (role `agency`) sells products released to agencies (`agency_release`), only
  tiers bookable by all, through the `agency` sale windows, from its own contingent
  `agency:<token id>`.

A checkout is a seat hold for a party of subscriptions bought side by side (one, a couple, a
family: `count`, or each member's seats in `members`): one seat per member in every date (a
ring's eight, a choice's N, a combi's each), held all at once. Each checkout gets a holder of its own
(`token:<token id>-<16 hex>`), so two buyers of the same shop never take over each other's
seats, and only the token that made a hold may release or buy it. The order names the hold and
a tier and pass name per member; the hold's seats are split into the members (`party_fields`:
in every group the seat each member has in all dates whose variant offers it, a replacement of
the same zone where a variant lacks it) and become the sale's `members`, and the sale itself is
`core.subscriptions.sale.sell_subscriptions` (the one sale rule): the order is refused unless
the sale books exactly the held seats.
"""

from __future__ import annotations

import datetime as dt
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from msgspec import Meta

from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.storage import retried, transaction
from core.catalog import pricing, resource
from core.catalog.common import Body, Id, Name
from core.catalog.resource import ListQuery
from core.catalog.subscriptions import Subscriptions, sale_phase
from core.sales.contingents import HUB, booked_seats
from core.subscriptions import holds, offers
from core.subscriptions.sale import (
    CATALOG_CHANNEL,
    MemberIn,
    ReplacementIn,
    SeatAtIn,
    SubscriptionSaleIn,
    resolve,
    sell_subscriptions,
)
from core.subscriptions.seat_loader import load_performances
from core.subscriptions.seats import PerformanceSeats, Plan, is_set
from core.subscriptions.series import RingGroup, best_ring_seats, combi_best, ring_groups

Role = Literal["shop", "agency"]
SHOP_TTL = dt.timedelta(minutes=10)
MAX_SHOP_TTL = dt.timedelta(minutes=30)
MAX_PARTY = 10  # subscriptions side by side in one checkout


@dataclass(frozen=True)
class Seller:
    """The shop or an agency, as its API token names it."""

    token_id: str
    role: Role

    @property
    def channel(self) -> str:
        return "shop" if self.role == "shop" else "agency"

    @property
    def audience(self) -> str:
        return self.role

    @property
    def pool(self) -> str:
        return HUB if self.role == "shop" else f"agency:{self.token_id}"

    @property
    def agency_token(self) -> str | None:
        return self.token_id if self.role == "agency" else None

    def new_holder(self) -> str:
        """A holder of its own for each checkout (see the module's docstring)."""
        return f"token:{self.token_id}-{secrets.token_hex(8)}"

    def owns(self, holder: str) -> bool:
        return holder.startswith(f"token:{self.token_id}-")


class MemberSeatsIn(Body, kw_only=True):
    """One member's seats in a party's checkout, as a sale names them."""

    seat_ids: Annotated[list[Id], Meta(max_length=20)] = []
    replacements: Annotated[list[ReplacementIn], Meta(max_length=40)] = []
    seats: Annotated[list[SeatAtIn], Meta(max_length=200)] = []


class ShopHoldIn(Body, kw_only=True):
    """A checkout: the product and either a zone and `count` (best available there, side by side)
    or the seats, as a sale names them (ring: `seat_ids` + `replacements`; choice:
    `performance_ids` then `seat_ids`; combi: `seats`), for a party one set per member in `members`."""

    product_id: Id
    zone_id: Id | None = None
    count: Annotated[int, Meta(ge=1, le=MAX_PARTY)] = 1
    members: Annotated[list[MemberSeatsIn], Meta(max_length=MAX_PARTY)] = []
    seat_ids: Annotated[list[Id], Meta(max_length=20)] = []
    replacements: Annotated[list[ReplacementIn], Meta(max_length=40)] = []
    performance_ids: Annotated[list[Id], Meta(max_length=200)] = []
    seats: Annotated[list[SeatAtIn], Meta(max_length=200)] = []
    ttl_seconds: Annotated[int, Meta(ge=60, le=int(MAX_SHOP_TTL.total_seconds()))] = int(SHOP_TTL.total_seconds())


# --- what is on sale ----------------------------------------------------------------------------------


def phase_now(prod: dict, seller: Seller, now: dt.datetime) -> str | None:
    """'renewal', 'general' or None (closed) for the seller's channel; no windows: always general."""
    if not prod["sale_windows"]:
        return "general"
    return sale_phase(prod["sale_windows"], CATALOG_CHANNEL[seller.channel], iso(now))


ON_SALE_KINDS = (*offers.SEATED, "voucher")
NO_VOUCHERS = {"voucher_count": None, "voucher_value_cents": None, "offer": [], "tiers": []}  # a seated product


def on_sale(db: sqlite3.Connection, seller: Seller, now: dt.datetime) -> list[dict]:
    """The products the seller may sell right now (seated, and voucher subscriptions with their
    vouchers, offer and price per tier), each with its phase and price range."""
    found = resource.list_(db, Subscriptions(), ListQuery(limit=500, active=True, sort="name"), seller.audience)
    out = []
    for prod in found["items"]:
        phase = phase_now(prod, seller, now)
        if prod["kind"] in ON_SALE_KINDS and phase is not None:
            out.append(_summary(db, prod, phase, seller))
    return out


def _summary(db: sqlite3.Connection, prod: dict, phase: str | None, seller: Seller) -> dict:
    prices = [p["price_cents"] for p in prod["zone_prices"] or prod["combi_prices"]]
    if prod["kind"] == "voucher":
        prices = [prod["price_cents"]]
    return {"id": prod["id"], "name": prod["name"], "title": prod["title"], "subtitle": prod["subtitle"],
            "kind": prod["kind"], "pick_count": prod["pick_count"], "phase": phase,
            "performances": len(prod["performance_ids"]), "print_options": prod["print_options"],
            "transferable": bool(prod["transferable"]),
            "sale_windows": [w for w in prod["sale_windows"] if w["channel"] == CATALOG_CHANNEL[seller.channel]],
            "from_cents": min(prices) if prices and prod["kind"] != "combi" else None,
            **(_voucher_part(db, prod, seller) if prod["kind"] == "voucher" else NO_VOUCHERS)}


def _voucher_part(db: sqlite3.Connection, prod: dict, seller: Seller) -> dict:
    """What a buyer of a voucher subscription needs to choose: how many vouchers of what value,
    the performances they may be redeemed for (the offer), and the package price per tier the
    seller may offer (the catalog's, `pricing.price_table`)."""
    table = pricing.price_table(db, prod["id"], seller.audience)["zones"][0]
    kinds = {t["id"]: t for t in db.execute("SELECT id, kind FROM discount_tiers WHERE product_id = ?",
                                            (prod["id"],))}
    return {"voucher_count": prod["voucher_count"], "voucher_value_cents": prod["voucher_value_cents"],
            "offer": _performances(db, prod["performance_ids"]),
            "tiers": [t for t in table["tiers"] if offered_tier(kinds[t["tier_id"]], seller)]}


def offered_tier(tier: dict, seller: Seller) -> bool:
    """The shop never offers a complimentary tier; an agency sees only tiers bookable by all
    (the catalog's audience filter does that)."""
    return seller.role == "agency" or tier["kind"] != "complimentary"


def check_tier(db: sqlite3.Connection, product_id: str, tier_id: str | None, seller: Seller) -> None:
    """A tier the seller may sell (an unknown, foreign, inactive or not offered one is refused)."""
    tier = pricing.tier_of(db, product_id, tier_id, seller.audience)
    if tier is not None and not offered_tier(tier, seller):
        raise ValidationError(f"discount tier {tier['name']!r} is not sold online: the organizer gives it",
                              field="tier_id")


def detail(db: sqlite3.Connection, product_id: str, seller: Seller, now: dt.datetime) -> dict:
    """A product as the seller sees it: phase now, its dates, and prices per zone and offered tier."""
    prod = offers.product(db, product_id, seller.audience, kinds=ON_SALE_KINDS)
    table = pricing.price_table(db, product_id, seller.audience)
    tiers = {t["id"]: t for t in db.execute("SELECT id, kind FROM discount_tiers WHERE product_id = ?", (product_id,))}
    seated = [z for z in table["zones"] if z["zone_id"] is not None]  # a voucher subscription has no zone
    zones = _zones(db, [z["zone_id"] for z in seated])
    priced = [{**zones[z["zone_id"]], "base_cents": z["base_cents"],
               "tiers": [t for t in z["tiers"] if offered_tier(tiers[t["tier_id"]], seller)]} for z in seated]
    return {**_summary(db, prod, phase_now(prod, seller, now), seller), "description": prod["description"],
            "dates": _performances(db, prod["performance_ids"]), "zones": priced,
            "combi_prices": prod["combi_prices"] if prod["kind"] == "combi" else []}


def _zones(db: sqlite3.Connection, zone_ids: Sequence[str]) -> dict[str, dict]:
    return {z["zone_id"]: z for z in (db.execute("SELECT id AS zone_id, code, name, color FROM price_zones "
                                                  "WHERE id = ?", (zone,)).fetchone() for zone in zone_ids)}


def _performances(db: sqlite3.Connection, performance_ids: Sequence[str]) -> list[dict]:
    rows = [db.execute("SELECT p.id, p.title, p.starts_at, p.variant_id, v.plan_id, ve.name AS venue "
                       "FROM performances p JOIN plan_variants v ON v.id = p.variant_id "
                       "JOIN venues ve ON ve.id = p.venue_id WHERE p.id = ?", (perf,)).fetchone()
            for perf in performance_ids]
    return [r for r in rows if r is not None]


# --- seats --------------------------------------------------------------------------------------------


def labelled(db: sqlite3.Connection, bookings: Sequence[tuple[str, str]],
             named: dict[tuple[str, str], dict] | None = None) -> list[dict]:
    """(performance, seat) pairs with the seat's section, row, label and zone, in the given order
    (from *named*, what `contingents.booked_seats` gave for them, if the caller has it)."""
    named = booked_seats(db, bookings) if named is None else named
    out = []
    for perf, seat in bookings:
        s = named.get((perf, seat)) or {"section": "", "row_label": "", "label": "", "zone_id": None}
        out.append({"performance_id": perf, "seat_id": seat, "section": s["section"], "row_label": s["row_label"],
                    "label": s["label"], "zone_id": s["zone_id"], "text": holds.describe(s) if s["label"] else seat})
    return out


def alternatives(db: sqlite3.Connection, product_id: str, seller: Seller, now: dt.datetime, *,
                 zone_id: str | None = None, performance_ids: Sequence[str] | None = None,
                 count: int = 1) -> list[dict]:
    """Best available seats for the party (*count* side by side) of the same product (and zone,
    and chosen dates), held by nobody: what a buyer who lost a race is offered instead. Empty
    when none are left."""
    try:
        found = offers.best(db, product_id, count=count, zone_id=zone_id, audience=seller.audience,
                            pool=seller.pool, holder=None, now=now, performance_ids=performance_ids or None)
    except (ValidationError, NotFound):
        return []
    return labelled(db, [(b["performance_id"], b["seat_id"]) for b in found["bookings"]])


def lost(exc: Conflict, db: sqlite3.Connection, product_id: str, seller: Seller, now: dt.datetime, *,
         zone_id: str | None, performance_ids: Sequence[str] | None, count: int = 1) -> Conflict:
    """The Conflict of a lost race, with `alternatives` (seat ids with labels) to try next."""
    return Conflict(exc.detail, field=exc.field, seats=exc.extra.get("seats", []),
                    alternatives=alternatives(db, product_id, seller, now, zone_id=zone_id,
                                              performance_ids=performance_ids, count=count))


def party_fields(prod: dict, perfs: list[PerformanceSeats], bookings: Sequence[tuple[str, str]],
                 size: int | None = None) -> tuple[list[MemberSeatsIn], list[str]]:
    """The seats of a hold as a sale names them: per member of the party (as many as the hold
    has seats in each date; *size* if the order names its members) a combi's `seats`, or for a
    ring or choice per seating plan the seat and a replacement for each variant where it has
    another one; and a choice's chosen dates."""
    if len(set(bookings)) != len(bookings):
        raise ValidationError("a hold has a seat twice in one performance", field="hold_id")
    seats_of: dict[str, list[str]] = {}
    for perf, seat in bookings:
        seats_of.setdefault(perf, []).append(seat)
    sizes = {len(seats) for seats in seats_of.values()}
    if len(sizes) != 1:
        raise ValidationError("the hold has not the same number of seats in every date", field="hold_id")
    party = sizes.pop()
    if size is not None and size != party:
        raise ValidationError(f"the hold has seats for {party} subscription(s); name {party} member(s) (tier and "
                              f"holder each), not {size}", field="members")
    if prod["kind"] == "combi":
        return _combi_members(perfs, seats_of, party), []
    chosen = [p.performance_id for p in perfs if p.performance_id in seats_of] if prod["kind"] == "choice" else []
    members = [MemberSeatsIn() for _ in range(party)]
    zones: list[str | None] = [None] * party
    for group in offers.groups(prod, perfs, chosen):
        split = _group_party(group, seats_of, party)
        split = _pair_by_zone(zones, split, lambda item, plan=group.plan: plan.seat(item[0]).zone_id)
        for k, (seat, replacements) in enumerate(split):
            members[k].seat_ids.append(seat)
            members[k].replacements.extend(replacements)
            zones[k] = zones[k] or group.plan.seat(seat).zone_id
    return members, chosen


def _pair_by_zone(zones: list[str | None], items: list, zone_of) -> list:
    """*items* in member order, each to a member whose seats so far are in its zone where it can
    (a member's seats are priced in one zone), else in the order given."""
    left, out = list(items), []
    for zone in zones:
        match = next((i for i in left if zone is not None and zone_of(i) == zone), left[0])
        left.remove(match)
        out.append(match)
    return out


def _group_party(group: RingGroup, seats_of: dict[str, list[str]],
                 party: int) -> list[tuple[str, list[ReplacementIn]]]:
    """Per member of the party, the group's seat (held in every date whose variant offers it;
    the first such seats in date and plan order) and its replacements where a variant lacks it."""
    plan = group.plan
    held: dict[str, set[str]] = {}
    for variant in group.variants:
        found = {frozenset(seats_of.get(p.performance_id, ())) for p in group.of_variant(variant)}
        if len(found) != 1 or len(next(iter(found))) != party:
            raise ValidationError("the hold lacks a seat in some date of the subscription", field="hold_id")
        held[variant] = set(found.pop())
    if any(s not in plan.index for seats in held.values() for s in seats):
        raise ValidationError("the held seats are not one seat per seating plan", field="hold_id")
    order = dict.fromkeys(s for p in group.performances for s in sorted(held[p.variant_id], key=plan.index.get))
    bases = [s for s in order if all(s in held[v] for v in group.variants if _offers(plan, v, s))][:party]
    if len(bases) < party:
        raise ValidationError("the held seats are not one seat per seating plan", field="hold_id")
    spare = {v: sorted(held[v] - set(bases), key=plan.index.get) for v in group.variants}
    out = []
    for base in bases:
        replacements = []
        for variant in (v for v in group.variants if not _offers(plan, v, base)):
            seat = _pair_by_zone([plan.seat(base).zone_id], spare[variant], lambda s: plan.seat(s).zone_id)[0]
            spare[variant].remove(seat)
            replacements.append(ReplacementIn(variant_id=variant, seat_id=seat))
        out.append((base, replacements))
    return out


def _offers(plan: Plan, variant_id: str, seat_id: str) -> bool:
    return is_set(plan.offered(variant_id), plan.index[seat_id])


def _combi_members(perfs: list[PerformanceSeats], seats_of: dict[str, list[str]],
                   party: int) -> list[MemberSeatsIn]:
    """A combi party's seats per member: each keeps its seat from one date to the next where held."""
    members = [MemberSeatsIn() for _ in range(party)]
    last: list[str | None] = [None] * party
    for perf in perfs:
        seats = sorted(seats_of.get(perf.performance_id, []), key=lambda s: perf.plan.index.get(s, -1))
        if len(seats) != party:
            raise ValidationError("the hold lacks a seat in some date of the subscription", field="hold_id")
        free = [s for s in seats if s not in last]
        for k in range(party):
            last[k] = last[k] if last[k] in seats else free.pop(0)
            members[k].seats.append(SeatAtIn(performance_id=perf.performance_id, seat_id=last[k]))
    return members


def best_of(prod: dict, perfs: list[PerformanceSeats], chosen: Sequence[str],
            zone_id: str | None, count: int = 1) -> list[tuple[str, str]] | None:
    """`offers.best` for *count* subscribers side by side on seats already loaded (a checkout
    reads them once)."""
    if prod["kind"] == "combi":
        seats = combi_best(perfs, count, zone_id=zone_id)
        return None if any(v is None for v in seats.values()) else [(p, s) for p, ids in seats.items() for s in ids]
    dates = [p for p in perfs if p.performance_id in set(chosen)] if chosen else perfs
    bookings: list[tuple[str, str]] = []
    for group in ring_groups(dates):
        parties = best_ring_seats(group, count, zone_id=zone_id)
        if parties is None:
            return None
        bookings += [b for party in parties for b in party.bookings()]
    return bookings


def _named(body: ShopHoldIn) -> list[MemberSeatsIn]:
    """The members' seats named in a checkout (none: best available for `count`)."""
    one = body.seat_ids or body.replacements or body.seats
    if body.members and one:
        raise ValidationError("name the seats either in `members` or for one subscription, not both", field="members")
    members = body.members or ([MemberSeatsIn(seat_ids=body.seat_ids, replacements=body.replacements,
                                              seats=body.seats)] if one else [])
    if members and body.count not in (1, len(members)):
        raise ValidationError(f"count {body.count} but seats for {len(members)} subscription(s)", field="count")
    return members


def _bookings(db: sqlite3.Connection, prod: dict, body: ShopHoldIn, seller: Seller,
              now: dt.datetime) -> list[tuple[str, str]]:
    """The seats a checkout asks for, checked by the sale's rules: named ones as given, or the
    best available for `count` side by side in the zone (on the chosen dates of a choice)."""
    perfs = offers.performances(db, prod, pool=seller.pool, holder=None, now=now)
    members, chosen = _named(body), body.performance_ids
    if not members:
        bookings = best_of(prod, perfs, body.performance_ids, body.zone_id, body.count)
        if bookings is None:
            raise Conflict(f"{prod['name']}: no {body.count} seat(s) side by side are free in every date" +
                           (" in this zone" if body.zone_id else ""), field="zone_id")
        members, chosen = party_fields(prod, perfs, bookings, body.count)
    seats = [MemberIn(seat_ids=m.seat_ids, replacements=m.replacements, seats=m.seats) for m in members]
    booked = [b for member in resolve(prod, perfs, seats, list(chosen)) for b in member]
    if body.zone_id and prod["kind"] != "combi" and any(b.zone_id != body.zone_id for b in booked):
        raise ValidationError("the seats are not in the zone asked for", field="zone_id")
    return [(b.performance_id, b.seat_id) for b in booked]


@retried  # a deadlock or serialization failure on PostgreSQL: run again
def hold_checkout(db: sqlite3.Connection, seller: Seller, body: ShopHoldIn, now: dt.datetime) -> dict:
    """Hold the party's seats in every date at once (one transaction), for a new holder of the
    seller's. A seat sold or held by someone else: a Conflict with `alternatives`."""
    prod = offers.product(db, body.product_id, seller.audience)
    if phase_now(prod, seller, now) is None:
        raise Conflict(f"{prod['name']} is not on sale through the {seller.channel} channel now", field="product_id")
    booked: dict = {}  # the seats' labels, as the hold's check read them
    try:
        with transaction(db):
            bookings = _bookings(db, prod, body, seller, now)
            held = holds.hold(db, seller.new_holder(), bookings, now=now,
                              ttl=dt.timedelta(seconds=body.ttl_seconds), pool=seller.pool,
                              expired=True, booked=booked)  # _bookings read the seats in this transaction
    except Conflict as exc:
        raise lost(exc, db, prod["id"], seller, now, zone_id=body.zone_id, performance_ids=body.performance_ids,
                   count=len(body.members) or body.count) from None
    seats = labelled(db, bookings, booked)
    zones = {s["zone_id"] for s in seats}
    return {"id": held["id"], "product_id": prod["id"], "expires_at": held["expires_at"],
            "zone_id": zones.pop() if len(zones) == 1 else None, "seats": seats}


def held_sent(db: sqlite3.Connection, hold_id: str, now: dt.datetime) -> sqlite3.Cursor:
    """The question for a live hold's seats, sent and not read yet (`held_of` reads it)."""
    return db.execute("SELECT performance_id, seat_id, holder FROM seat_holds WHERE hold_id = ? AND expires_at > ?",
                      (hold_id, iso(now)))


def held_of(sent: sqlite3.Cursor, hold_id: str, seller: Seller) -> tuple[str, list]:
    """(holder, bookings) of a live hold of the seller's; NotFound for a hold that is unknown,
    expired or someone else's (the same answer, so hold ids of others tell nothing)."""
    rows = sent.fetchall()
    if not rows or not all(seller.owns(r["holder"]) for r in rows):
        raise NotFound(f"no live hold {hold_id} of yours: it expired or was never yours", field="hold_id")
    return rows[0]["holder"], [(r["performance_id"], r["seat_id"]) for r in rows]


@retried
def release_checkout(db: sqlite3.Connection, hold_id: str, seller: Seller) -> int:
    """Release a hold of the seller's at once (NotFound for anybody else's)."""
    row = db.execute("SELECT holder FROM seat_holds WHERE hold_id = ? LIMIT 1", (hold_id,)).fetchone()
    if row is None or not seller.owns(row["holder"]):
        raise NotFound(f"no hold {hold_id} of yours")
    return holds.release(db, hold_id, row["holder"])


# --- the order ----------------------------------------------------------------------------------------


class OrderMemberIn(Body, kw_only=True):
    """A member of a party's order: its discount tier and the name on its pass (seats: the hold's)."""

    tier_id: Id | None = None
    holder_name: Name | None = None


@dataclass(frozen=True)
class CheckoutOrder:
    """An order of a held checkout, its customer resolved by the caller. *proven_subscriber*:
    the customer was named by customer number and postcode, which the renewal presale needs.
    *members*: a party's tier and holder per member (none: the one member is `tier_id`, `holder_name`)."""

    product_id: str
    hold_id: str | None  # None only for a voucher subscription (no seats to hold)
    customer_id: str
    proven_subscriber: bool
    tier_id: str | None
    form: str | None
    holder_name: str | None
    delivery: str
    payment_reference: str
    operator: str
    zone_id: str | None = None
    members: tuple[OrderMemberIn, ...] = ()

    def party(self) -> tuple[OrderMemberIn, ...]:
        if not self.members:
            return (OrderMemberIn(tier_id=self.tier_id, holder_name=self.holder_name),)
        if self.tier_id or self.holder_name:
            raise ValidationError("with `members` each member names its tier and holder: leave tier_id and "
                                  "holder_name out", field="members")
        return self.members


def subscriber(db: sqlite3.Connection, number: str, postcode: str) -> str:
    """The customer with this customer number and postcode (both must match: the number alone is
    printed on letters and passes). The same NotFound for any mismatch, so it tells nothing."""
    row = db.execute("SELECT id FROM customers WHERE number = ? AND replace(postcode, ' ', '') = ? AND active = 1",
                     (number.strip().upper(), postcode.replace(" ", ""))).fetchone()
    if row is None:
        raise NotFound("no customer with this customer number and postcode", field="subscriber")
    return row["id"]


def check_renewal(prod: dict, seller: Seller, order: CheckoutOrder, now: dt.datetime) -> None:
    """In the renewal presale a shop or agency sells only to a subscriber who proves it with
    customer number and postcode; the sale then checks the earlier season's subscription."""
    if phase_now(prod, seller, now) == "renewal" and not order.proven_subscriber:
        raise Conflict(f"{prod['name']} is in its renewal presale: name the subscriber by customer number and "
                       "postcode (`subscriber`); general sale starts later", field="subscriber")


def sell_checkout(db: sqlite3.Connection, node: dict, seller: Seller, order: CheckoutOrder,
                  now: dt.datetime) -> dict:
    """Sell the held seats as the party's subscriptions, one order (in the caller's transaction):
    exactly the seats of the hold, priced by the catalog per member's tier; the hold becomes the
    tickets. A hold that expired or was never the seller's, or a seat lost meanwhile: a Conflict
    with `alternatives`. Returns the order with its `subscriptions` (`sale.sell_subscriptions`)."""
    prod = offers.product(db, order.product_id, seller.audience, kinds=(*offers.SEATED, "voucher"))
    check_renewal(prod, seller, order, now)
    party = order.party()
    for member in party:
        check_tier(db, prod["id"], member.tier_id, seller)
    if prod["kind"] == "voucher":
        return _sell_vouchers(db, node, seller, order, prod, party, now)
    if order.hold_id is None:
        raise ValidationError(f"{prod['name']} is sold with seats: hold them first (POST /shop/seat-holds) and "
                              "give hold_id", field="hold_id")
    held = held_sent(db, order.hold_id, now)  # answered with the plans' questions (one round trip on PostgreSQL)
    # the plans and variants, no seat state (the sale checks the seats)
    perfs = load_performances(db, prod["performance_ids"], seats=())
    try:
        holder, bookings = held_of(held, order.hold_id, seller)
    except NotFound as exc:
        raise lost(Conflict(exc.detail, field="hold_id"), db, prod["id"], seller, now, zone_id=order.zone_id,
                   performance_ids=None, count=len(party)) from None
    seats, chosen = party_fields(prod, perfs, bookings, len(party))
    body = SubscriptionSaleIn(
        product_id=prod["id"], customer_id=order.customer_id, form=order.form, delivery=order.delivery,
        payment_reference=order.payment_reference, performance_ids=chosen,
        payment_method="online" if seller.role == "shop" else "transfer", operator=order.operator,
        members=[MemberIn(tier_id=m.tier_id, holder_name=m.holder_name, seat_ids=s.seat_ids,
                          replacements=s.replacements, seats=s.seats) for m, s in zip(party, seats, strict=True)])
    sold = sell_subscriptions(db, node, body, channel=seller.channel, pool=seller.pool, audience=seller.audience,
                              holder=holder, agency_token=seller.agency_token, now=now, product=prod)
    tickets = [(t["performance_id"], t["seat_id"]) for sub in sold["subscriptions"] for t in sub["tickets"]]
    if sorted(tickets) != sorted(bookings):
        raise ValidationError("the hold's seats do not make the party's subscriptions of this product",
                              field="hold_id")
    return sold


def _sell_vouchers(db: sqlite3.Connection, node: dict, seller: Seller, order: CheckoutOrder, prod: dict,
                   party: tuple[OrderMemberIn, ...], now: dt.datetime) -> dict:
    """A voucher subscription (S5) bought online or by an agency: no seats and so no hold; each
    member's vouchers are issued with the subscription's cards by the caller."""
    if order.hold_id is not None or order.zone_id is not None:
        raise ValidationError(f"{prod['name']} is a voucher subscription: it has no seats, so no hold_id or zone_id",
                              field="hold_id")
    body = SubscriptionSaleIn(
        product_id=prod["id"], customer_id=order.customer_id, form=order.form, delivery=order.delivery,
        payment_reference=order.payment_reference, operator=order.operator,
        payment_method="online" if seller.role == "shop" else "transfer",
        members=[MemberIn(tier_id=m.tier_id, holder_name=m.holder_name) for m in party])
    return sell_subscriptions(db, node, body, channel=seller.channel, pool=seller.pool, audience=seller.audience,
                              holder=None, agency_token=seller.agency_token, now=now)


def sales_per_agency(db: sqlite3.Connection) -> list[dict]:
    """Subscriptions booked by each agency (its token), with revenue; cancelled ones count (they
    run to the end of their season and nothing is refunded)."""
    return db.execute(
        "SELECT s.agency_token AS agency, coalesce(t.name, '') AS name, count(*) AS subscriptions, "
        "sum(CASE WHEN s.state = 'active' THEN 1 ELSE 0 END) AS active, sum(s.price_cents) AS revenue_cents "
        "FROM subscriptions s "
        "LEFT JOIN api_tokens t ON t.id = s.agency_token WHERE s.agency_token IS NOT NULL "
        "GROUP BY s.agency_token, t.name ORDER BY revenue_cents DESC, s.agency_token").fetchall()
