"""Subscriptions sold by the online shop and by agencies (issue 13: S3 sale windows, S16 agencies).

The shop and every agency are API tokens. What they may see and sell follows from the token:

- the **shop** (role `shop`) sells through the `online` sale windows, from the hub's pool, with
  the tiers the shop may offer (active, never complimentary: an Ehrenkarte is the organizer's
  gift, not something a web visitor picks);
- an **agency** (role `agency`) sells products released to agencies (`agency_release`), only
  tiers bookable by all, through the `agency` sale windows, from its own contingent
  `agency:<token id>`.

A checkout is a seat hold for ONE subscription: one seat in every date (a ring's eight, a
choice's N, a combi's each), held all at once. Each checkout gets a holder of its own
(`token:<token id>-<16 hex>`), so two buyers of the same shop never take over each other's
seats, and only the token that made a hold may release or buy it. The order names the hold;
its seats become the sale's `seat_ids` / `replacements` / `seats`, and the sale itself is
`core.subscriptions.sale.sell_subscription` (the one sale rule): the order is refused unless
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
from core.base.storage import transaction
from core.catalog import pricing, resource
from core.catalog.common import Body, Id
from core.catalog.resource import ListQuery
from core.catalog.subscriptions import Subscriptions, sale_phase
from core.sales.contingents import HUB, some_seats
from core.subscriptions import holds, offers
from core.subscriptions.sale import (
    CATALOG_CHANNEL,
    ReplacementIn,
    SeatAtIn,
    SubscriptionSaleIn,
    resolve,
    sell_subscription,
)
from core.subscriptions.seat_loader import load_performances
from core.subscriptions.seats import PerformanceSeats, is_set
from core.subscriptions.series import best_ring_seats, combi_best, ring_groups

Role = Literal["shop", "agency"]
SHOP_TTL = dt.timedelta(minutes=10)
MAX_SHOP_TTL = dt.timedelta(minutes=30)
ALTERNATIVES = 1  # subscribers proposed when a seat is lost: one checkout is one subscription


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


class ShopHoldIn(Body, kw_only=True):
    """A checkout: the product and either a zone (best available there) or the seats, as a sale
    names them (ring: `seat_ids` + `replacements`; choice: `performance_ids` then `seat_ids`;
    combi: `seats`). No `count`: one checkout holds the seats of one subscription."""

    product_id: Id
    zone_id: Id | None = None
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


def on_sale(db: sqlite3.Connection, seller: Seller, now: dt.datetime) -> list[dict]:
    """The seated products the seller may sell right now, each with its phase and price range."""
    found = resource.list_(db, Subscriptions(), ListQuery(limit=500, active=True, sort="name"), seller.audience)
    out = []
    for prod in found["items"]:
        phase = phase_now(prod, seller, now)
        if prod["kind"] in offers.SEATED and phase is not None:
            out.append(_summary(prod, phase, seller))
    return out


def _summary(prod: dict, phase: str, seller: Seller) -> dict:
    prices = [p["price_cents"] for p in prod["zone_prices"] or prod["combi_prices"]]
    return {"id": prod["id"], "name": prod["name"], "title": prod["title"], "subtitle": prod["subtitle"],
            "kind": prod["kind"], "pick_count": prod["pick_count"], "phase": phase,
            "performances": len(prod["performance_ids"]), "print_options": prod["print_options"],
            "transferable": bool(prod["transferable"]),
            "sale_windows": [w for w in prod["sale_windows"] if w["channel"] == CATALOG_CHANNEL[seller.channel]],
            "from_cents": min(prices) if prices and prod["kind"] != "combi" else None}


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
    prod = offers.product(db, product_id, seller.audience)
    table = pricing.price_table(db, product_id, seller.audience)
    tiers = {t["id"]: t for t in db.execute("SELECT id, kind FROM discount_tiers WHERE product_id = ?", (product_id,))}
    zones = _zones(db, [z["zone_id"] for z in table["zones"]])
    priced = [{**zones[z["zone_id"]], "base_cents": z["base_cents"],
               "tiers": [t for t in z["tiers"] if offered_tier(tiers[t["tier_id"]], seller)]} for z in table["zones"]]
    return {**_summary(prod, phase_now(prod, seller, now), seller), "description": prod["description"],
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


def labelled(db: sqlite3.Connection, bookings: Sequence[tuple[str, str]]) -> list[dict]:
    """(performance, seat) pairs with the seat's section, row, label and zone, in the given order."""
    by_perf: dict[str, list[str]] = {}
    for perf, seat in bookings:
        by_perf.setdefault(perf, []).append(seat)
    named = {perf: some_seats(db, perf, seats) for perf, seats in by_perf.items()}
    out = []
    for perf, seat in bookings:
        s = named[perf].get(seat) or {"section": "", "row_label": "", "label": "", "zone_id": None}
        out.append({"performance_id": perf, "seat_id": seat, "section": s["section"], "row_label": s["row_label"],
                    "label": s["label"], "zone_id": s["zone_id"], "text": holds.describe(s) if s["label"] else seat})
    return out


def alternatives(db: sqlite3.Connection, product_id: str, seller: Seller, now: dt.datetime, *,
                 zone_id: str | None = None, performance_ids: Sequence[str] | None = None) -> list[dict]:
    """Best available seats for one subscriber of the same product (and zone, and chosen dates),
    held by nobody: what a buyer who lost a race is offered instead. Empty when none are left."""
    try:
        found = offers.best(db, product_id, count=ALTERNATIVES, zone_id=zone_id, audience=seller.audience,
                            pool=seller.pool, holder=None, now=now, performance_ids=performance_ids or None)
    except (ValidationError, NotFound):
        return []
    return labelled(db, [(b["performance_id"], b["seat_id"]) for b in found["bookings"]])


def lost(exc: Conflict, db: sqlite3.Connection, product_id: str, seller: Seller, now: dt.datetime, *,
         zone_id: str | None, performance_ids: Sequence[str] | None) -> Conflict:
    """The Conflict of a lost race, with `alternatives` (seat ids with labels) to try next."""
    return Conflict(exc.detail, field=exc.field, seats=exc.extra.get("seats", []),
                    alternatives=alternatives(db, product_id, seller, now, zone_id=zone_id,
                                              performance_ids=performance_ids))


def sale_fields(prod: dict, perfs: list[PerformanceSeats], bookings: Sequence[tuple[str, str]]) -> dict:
    """The seats of a hold as a sale names them: a combi's `seats`; for a ring or choice, per
    seating plan the seat and a replacement for each variant where it has another one."""
    seat_of = dict(bookings)
    if len(seat_of) != len(bookings):
        raise ValidationError("a hold has two seats in one performance", field="hold_id")
    if prod["kind"] == "combi":
        return {"seats": [SeatAtIn(performance_id=p, seat_id=s) for p, s in bookings]}
    chosen = [p.performance_id for p in perfs if p.performance_id in seat_of]
    fields: dict = {"seat_ids": [], "replacements": [],
                    "performance_ids": chosen if prod["kind"] == "choice" else []}
    for group in offers.groups(prod, perfs, fields["performance_ids"]):
        seat, replacements = _group_seat(group, seat_of)
        fields["seat_ids"].append(seat)
        fields["replacements"] += replacements
    return fields


def _group_seat(group, seat_of: dict[str, str]) -> tuple[str, list[ReplacementIn]]:
    """The group's seat: the one held in every performance whose variant offers it; the
    variants holding another seat get that one as their replacement."""
    held = [seat_of.get(p.performance_id) for p in group.performances]
    if None in held:
        raise ValidationError("the hold lacks a seat in some date of the subscription", field="hold_id")
    plan = group.plan
    for candidate in dict.fromkeys(held):
        if candidate not in plan.index:
            break
        index = plan.index[candidate]
        if all(s == candidate for p, s in zip(group.performances, held, strict=True)
               if is_set(plan.offered(p.variant_id), index)):
            return candidate, [ReplacementIn(variant_id=v, seat_id=seat_of[group.of_variant(v)[0].performance_id])
                               for v in group.variants if seat_of[group.of_variant(v)[0].performance_id] != candidate]
    raise ValidationError("the held seats are not one seat per seating plan", field="hold_id")


class _Seats:
    """What `sale.resolve` reads of a request: its seat fields."""

    def __init__(self, fields: dict) -> None:
        self.seat_ids = fields.get("seat_ids", [])
        self.replacements = fields.get("replacements", [])
        self.performance_ids = fields.get("performance_ids", [])
        self.seats = fields.get("seats", [])


def best_of(prod: dict, perfs: list[PerformanceSeats], chosen: Sequence[str],
            zone_id: str | None) -> list[tuple[str, str]] | None:
    """`offers.best` for one subscriber on seats already loaded (a checkout reads them once)."""
    if prod["kind"] == "combi":
        seats = combi_best(perfs, 1, zone_id=zone_id)
        return None if any(v is None for v in seats.values()) else [(p, s[0]) for p, s in seats.items()]
    dates = [p for p in perfs if p.performance_id in set(chosen)] if chosen else perfs
    bookings: list[tuple[str, str]] = []
    for group in ring_groups(dates):
        parties = best_ring_seats(group, 1, zone_id=zone_id)
        if parties is None:
            return None
        bookings += parties[0].bookings()
    return bookings


def _bookings(db: sqlite3.Connection, prod: dict, body: ShopHoldIn, seller: Seller,
              now: dt.datetime) -> list[tuple[str, str]]:
    """The seats a checkout asks for, checked by the sale's rules: named ones as given, or the
    best available in the zone (on the chosen dates of a choice)."""
    perfs = offers.performances(db, prod, pool=seller.pool, holder=None, now=now)
    if not (body.seat_ids or body.seats):
        bookings = best_of(prod, perfs, body.performance_ids, body.zone_id)
        if bookings is None:
            raise Conflict(f"{prod['name']}: no seat is free in every date" +
                           (" in this zone" if body.zone_id else ""), field="zone_id")
        fields = sale_fields(prod, perfs, bookings)
    else:
        fields = {"seat_ids": body.seat_ids, "replacements": body.replacements,
                  "performance_ids": body.performance_ids, "seats": body.seats}
    booked = resolve(prod, perfs, _Seats(fields))
    if body.zone_id and prod["kind"] != "combi" and any(b.zone_id != body.zone_id for b in booked):
        raise ValidationError("the seats are not in the zone asked for", field="zone_id")
    return [(b.performance_id, b.seat_id) for b in booked]


def hold_checkout(db: sqlite3.Connection, seller: Seller, body: ShopHoldIn, now: dt.datetime) -> dict:
    """Hold one subscription's seats in every date at once (one transaction), for a new holder of
    the seller's. A seat sold or held by someone else: a Conflict with `alternatives`."""
    prod = offers.product(db, body.product_id, seller.audience)
    if phase_now(prod, seller, now) is None:
        raise Conflict(f"{prod['name']} is not on sale through the {seller.channel} channel now", field="product_id")
    try:
        with transaction(db):
            bookings = _bookings(db, prod, body, seller, now)
            held = holds.hold(db, seller.new_holder(), bookings, now=now,
                              ttl=dt.timedelta(seconds=body.ttl_seconds), pool=seller.pool)
    except Conflict as exc:
        raise lost(exc, db, prod["id"], seller, now, zone_id=body.zone_id,
                   performance_ids=body.performance_ids) from None
    seats = labelled(db, bookings)
    zones = {s["zone_id"] for s in seats}
    return {"id": held["id"], "product_id": prod["id"], "expires_at": held["expires_at"],
            "zone_id": zones.pop() if len(zones) == 1 else None, "seats": seats}


def held_seats(db: sqlite3.Connection, hold_id: str, seller: Seller, now: dt.datetime) -> tuple[str, list]:
    """(holder, bookings) of a live hold of the seller's; NotFound for a hold that is unknown,
    expired or someone else's (the same answer, so hold ids of others tell nothing)."""
    rows = db.execute("SELECT performance_id, seat_id, holder FROM seat_holds WHERE hold_id = ? AND expires_at > ?",
                      (hold_id, iso(now))).fetchall()
    if not rows or not all(seller.owns(r["holder"]) for r in rows):
        raise NotFound(f"no live hold {hold_id} of yours: it expired or was never yours", field="hold_id")
    return rows[0]["holder"], [(r["performance_id"], r["seat_id"]) for r in rows]


def release_checkout(db: sqlite3.Connection, hold_id: str, seller: Seller) -> int:
    """Release a hold of the seller's at once (NotFound for anybody else's)."""
    row = db.execute("SELECT holder FROM seat_holds WHERE hold_id = ? LIMIT 1", (hold_id,)).fetchone()
    if row is None or not seller.owns(row["holder"]):
        raise NotFound(f"no hold {hold_id} of yours")
    return holds.release(db, hold_id, row["holder"])


# --- the order ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutOrder:
    """An order of a held checkout, its customer resolved by the caller. *proven_subscriber*:
    the customer was named by customer number and postcode, which the renewal presale needs."""

    product_id: str
    hold_id: str
    customer_id: str
    proven_subscriber: bool
    tier_id: str | None
    form: str | None
    holder_name: str | None
    delivery: str
    payment_reference: str
    operator: str
    zone_id: str | None = None


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
    """Sell the held seats as one subscription (in the caller's transaction): exactly the seats
    of the hold, priced by the catalog; the hold becomes the tickets. A hold that expired or was
    never the seller's, or a seat lost meanwhile: a Conflict with `alternatives`."""
    prod = offers.product(db, order.product_id, seller.audience)
    check_renewal(prod, seller, order, now)
    check_tier(db, prod["id"], order.tier_id, seller)
    try:
        holder, bookings = held_seats(db, order.hold_id, seller, now)
    except NotFound as exc:
        raise lost(Conflict(exc.detail, field="hold_id"), db, prod["id"], seller, now, zone_id=order.zone_id,
                   performance_ids=None) from None
    perfs = load_performances(db, prod["performance_ids"])  # the plans and variants (the sale checks the seats)
    body = SubscriptionSaleIn(
        product_id=prod["id"], customer_id=order.customer_id, tier_id=order.tier_id, form=order.form,
        holder_name=order.holder_name, delivery=order.delivery, payment_reference=order.payment_reference,
        payment_method="online" if seller.role == "shop" else "transfer", operator=order.operator,
        **sale_fields(prod, perfs, bookings))
    sold = sell_subscription(db, node, body, channel=seller.channel, pool=seller.pool, audience=seller.audience,
                             holder=holder, agency_token=seller.agency_token, now=now)
    if sorted((t["performance_id"], t["seat_id"]) for t in sold["tickets"]) != sorted(bookings):
        raise ValidationError("the hold's seats do not make one subscription of this product", field="hold_id")
    return sold


def sales_per_agency(db: sqlite3.Connection) -> list[dict]:
    """Subscriptions booked by each agency (its token), with revenue; cancelled ones count (they
    run to the end of their season and nothing is refunded)."""
    return db.execute(
        "SELECT s.agency_token AS agency, coalesce(t.name, '') AS name, count(*) AS subscriptions, "
        "sum(s.state = 'active') AS active, sum(s.price_cents) AS revenue_cents FROM subscriptions s "
        "LEFT JOIN api_tokens t ON t.id = s.agency_token WHERE s.agency_token IS NOT NULL "
        "GROUP BY s.agency_token ORDER BY revenue_cents DESC, s.agency_token").fetchall()
