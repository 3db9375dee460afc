"""Selling a subscription at the hub (S2 ring, S4 choice, S6 combi; S3 sale windows; S16 agencies).

`sell_subscriptions()` is one transaction: the checks, the order (`store_order`) with one line
of kind `subscription` per member of the party, a `subscriptions` row per line (number from its
own series `ABO`), one seat ticket per performance on each line, and the payment row. A party
(a couple, a family: `members`) buys side by side in ONE order, all or none: each member has its
own seats, discount tier and pass name; product, form, customer (the buyer), delivery and payment
are the order's; the total is the sum of the members' catalog prices. The single sale is the
one-member party (`sell_subscription()` answers its subscription). Seats of the members are
checked together: no seat twice in one performance, and a companion seat only with the
wheelchair place beside it, which may be another member's. Seats are checked here against
the seat logic of `series.py` (free in all, ring groups with variant steps, N of M, a seat
per performance), and finally by the database: `tickets_one_per_seat` and the hold trigger.
Two buyers racing for a seat: the hub's write lock (`BEGIN IMMEDIATE`) lets one check and
write at a time, so the second sees the seat taken and gets a Conflict naming it; a seat
the database still refuses (a desk's sale applied meanwhile) is a Conflict as well, and
nothing of the sale is stored, in no performance.

A cash desk sells the same way offline from its own pool (channel `cashdesk`, pool `node:<id>`),
numbers from its own series (`abo_series`), and records one `subscription.sold` op in the sale's
transaction (`sold_op`; a voucher subscription's choice vouchers, signed with the desk's key, go
in it); the hub sells it again from that pool and stores it through the same `store_sale` under
the desk's ids (`desk_sales.py`).

Prices come from `core.catalog.pricing` only; any price in the request is refused (the
body has no such field). The package price (ring, choice) is spread over the tickets
equally, the remainder on the first, so the revenue per performance adds up to the price.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base import outbox
from core.base.clock import iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.numbering import next_numbers
from core.base.storage import retried, transaction
from core.cards.cards import NodeSigner
from core.catalog import pricing
from core.catalog.common import Body, Cents, Id, Name
from core.catalog.resource import Audience
from core.catalog.subscriptions import sale_phase
from core.sales.contingents import HUB
from core.sales.orders import order_series, store_order
from core.sales.payments import DESK_CHANNELS, Payment, check_payment
from core.subscriptions import choice_vouchers, holds, offers
from core.subscriptions.sale_op import SubscriptionSoldOp
from core.subscriptions.seats import PerformanceSeats, check_selection, is_set
from core.subscriptions.series import GroupSeats, RingGroup, pick_seats, ring_bookings

Form = Literal["pass", "single_tickets", "both"]
SaleChannel = Literal["shop", "phone", "cashdesk", "counter", "agency"]
CATALOG_CHANNEL = {"shop": "online", "phone": "phone", "cashdesk": "cashdesk", "counter": "cashdesk",
                   "agency": "agency"}
SERIES = "ABO"


class ReplacementIn(Body, kw_only=True):
    """The seat chosen in a plan variant that lacks the subscription's seat (a step of the sale)."""

    variant_id: Id
    seat_id: Id


class SeatAtIn(Body, kw_only=True):
    performance_id: Id
    seat_id: Id


MAX_PARTY = 20  # subscriptions in one order (a party side by side); a hold allows 500 seats in all


class MemberIn(Body, kw_only=True):
    """One subscription of a party bought side by side: its seats as a single sale names them
    (ring/choice `seat_ids` + `replacements`, combi `seats`), its tier and the name on its pass."""

    tier_id: Id | None = None
    holder_name: Name | None = None
    seat_ids: Annotated[list[Id], Meta(max_length=20)] = []
    replacements: Annotated[list[ReplacementIn], Meta(max_length=40)] = []
    seats: Annotated[list[SeatAtIn], Meta(max_length=200)] = []


class SubscriptionSaleIn(Body, kw_only=True):
    """One subscription, or with `members` a party of them in one order. Ring: `seat_ids` one seat
    per seating plan of its dates (+ `replacements` for variants lacking it). Choice:
    `performance_ids` the N dates (the same for every member), then seats as a ring. Combi:
    `seats`, a seat per performance. No price field: prices come from the catalog."""

    product_id: Id
    customer_id: Id
    tier_id: Id | None = None
    zone_id: Id | None = None
    form: Form | None = None
    seat_ids: Annotated[list[Id], Meta(max_length=20)] = []
    replacements: Annotated[list[ReplacementIn], Meta(max_length=40)] = []
    performance_ids: Annotated[list[Id], Meta(max_length=200)] = []
    seats: Annotated[list[SeatAtIn], Meta(max_length=200)] = []
    holder_name: Name | None = None
    delivery: Literal["mail", "pickup", "counter"] = "pickup"
    payment_method: Payment
    payment_reference: Annotated[str, Meta(max_length=100)] | None = None
    given_cents: Cents | None = None
    operator: Annotated[str, Meta(max_length=100)] | None = None
    members: Annotated[list[MemberIn], Meta(max_length=MAX_PARTY)] = []


def members_of(body: SubscriptionSaleIn) -> list[MemberIn]:
    """The party: `members`, or the one member the body's own seat fields, tier and holder name.
    Both at once is refused (which seats would be whose?)."""
    if not body.members:
        return [MemberIn(tier_id=body.tier_id, holder_name=body.holder_name, seat_ids=body.seat_ids,
                         replacements=body.replacements, seats=body.seats)]
    if body.seat_ids or body.replacements or body.seats or body.tier_id or body.holder_name:
        raise ValidationError("with `members` each member names its seats, tier and holder: leave seat_ids, "
                              "replacements, seats, tier_id and holder_name out", field="members")
    return list(body.members)


@dataclass(frozen=True)
class Booked:
    """A seat of the subscription in one performance."""

    performance_id: str
    seat_id: str
    zone_id: str


# --- rules ---------------------------------------------------------------------------------------------


def check_phase(db: sqlite3.Connection, prod: dict, channel: str, customer_id: str, now: dt.datetime) -> str:
    """S3: the channel's sale window open now; in `renewal` only existing subscribers may buy.
    A product without any sale window is on sale on every channel; one with windows only
    through a channel that has one."""
    if not prod["sale_windows"]:
        return "general"
    phase = sale_phase(prod["sale_windows"], CATALOG_CHANNEL[channel], iso(now))
    if phase is None:
        raise Conflict(f"{prod['name']} is not on sale through the {channel} channel now "
                       "(outside its sale windows)", field="product_id")
    if phase == "renewal" and not is_subscriber(db, customer_id, prod):
        raise Conflict(f"{prod['name']} is in its renewal presale: only subscribers of an earlier season may "
                       "buy now; general sale starts later", field="customer_id")
    return phase


def is_subscriber(db: sqlite3.Connection, customer_id: str, prod: dict) -> bool:
    """An active subscription of the same organizer in a season that began before this product's."""
    return db.execute(
        "SELECT 1 FROM subscriptions s JOIN subscription_products p ON p.id = s.product_id "
        "JOIN seasons se ON se.id = p.season_id WHERE s.customer_id = ? AND s.state = 'active' "
        "AND p.organizer_id = ? AND se.starts_on < (SELECT starts_on FROM seasons WHERE id = ?) LIMIT 1",
        (customer_id, prod["organizer_id"], prod["season_id"])).fetchone() is not None


def form_of(prod: dict, asked: str | None) -> str:
    """The product's print options allow the form (`both` allows any); a transferable product
    defaults to single tickets (a pass is not to be passed on for a whole season)."""
    allowed = ("pass", "single_tickets", "both") if prod["print_options"] == "both" else (prod["print_options"],)
    if asked is None:
        return "single_tickets" if prod["transferable"] and "single_tickets" in allowed else allowed[0]
    if asked not in allowed:
        raise ValidationError(f"{prod['name']} is printed as {prod['print_options']}, not {asked}", field="form")
    return asked


def _variant_for(group: RingGroup, seat_id: str) -> str:
    """The map a seat is picked on: the lead variant if it has it, else the first that does."""
    plan, index = group.plan, group.plan.index[seat_id]
    for variant in (group.lead, *group.variants):
        if is_set(plan.offered(variant), index):
            return variant
    raise ValidationError(f"{plan.seat(seat_id).describe()} exists in none of the variants these dates use",
                          field="seat_ids")


def _group_of(groups: list[RingGroup], seat_id: str, field: str) -> RingGroup:
    for group in groups:
        if seat_id in group.plan.index:
            return group
    raise ValidationError(f"seat {seat_id} is not part of the seating plans of these dates", field=field)


def _per_plan(groups: list[RingGroup], seat_ids: list[str]) -> dict[str, str]:
    """One member's seats: plan id -> seat, one on each seating plan of these dates."""
    if len(set(seat_ids)) != len(seat_ids):
        raise ValidationError("a seat is named twice", field="seat_ids")
    chosen: dict[str, str] = {}
    for seat_id in seat_ids:
        group = _group_of(groups, seat_id, "seat_ids")
        if group.plan.id in chosen:
            raise ValidationError("one seat per seating plan: two seats are on the same plan", field="seat_ids")
        chosen[group.plan.id] = seat_id
    missing = [g for g in groups if g.plan.id not in chosen]
    if missing:
        raise ValidationError(f"choose a seat on each seating plan of these dates ({len(groups)}); "
                              f"{len(missing)} without a seat", field="seat_ids")
    return chosen


def _by_variant(replacements: list[ReplacementIn]) -> dict[str, str]:
    by_variant = {r.variant_id: r.seat_id for r in replacements}
    if len(by_variant) != len(replacements):
        raise ValidationError("a variant has two replacement seats", field="replacements")
    return by_variant


def _pick_party(group: RingGroup, seats: list[str]) -> list[GroupSeats]:
    """The members' seats in one group, picked together on the map each is picked on (so a
    companion seat goes with a wheelchair place of another member), in member order."""
    if len(set(seats)) != len(seats):
        twice = next(s for s in seats if seats.count(s) > 1)
        raise ValidationError(f"{group.plan.seat(twice).describe()} is chosen for two subscriptions",
                              field="seat_ids")
    by_variant: dict[str, list[int]] = {}
    for k, seat_id in enumerate(seats):
        by_variant.setdefault(_variant_for(group, seat_id), []).append(k)
    out: dict[int, GroupSeats] = {}
    for variant, members in by_variant.items():
        out.update(zip(members, pick_seats(group, [seats[k] for k in members], variant), strict=True))
    return [out[k] for k in range(len(seats))]


def _fill_steps(group: RingGroup, parties: list[GroupSeats], given: list[dict[str, str]],
                used: list[set[str]]) -> list[GroupSeats]:
    """Every variant lacking some members' seats gets the replacements they name there, checked
    together (free in all its dates, companion rule); a missing one is a ValidationError naming
    the step and the nearest free seat."""
    plan = group.plan
    for variant in group.variants:
        missing = [k for k, party in enumerate(parties) if party.by_variant[variant] is None]
        picks = []
        for k in missing:
            if variant not in given[k]:
                step = next(st for st in parties[k].steps() if st.variant_id == variant)
                hint = f"; nearest free: {plan.seat(step.suggestion).describe()}" if step.suggestion else ""
                raise ValidationError(f"{plan.seat(parties[k].seat_id).describe()} does not exist in plan variant "
                                      f"{variant} ({len(step.performance_ids)} date(s)): choose a replacement "
                                      f"seat there{hint}", field="replacements", variant_id=variant,
                                      suggestion=step.suggestion)
            picks.append(given[k][variant])
            used[k].add(variant)
        if not picks:
            continue
        free = group.free_in_variant(variant)
        for seat_id in picks:
            _check_replacement(group, variant, free, seat_id)
        places = sum(plan.seat(seat_id).wheelchair for seat_id in picks)
        check_selection(plan, variant, free, picks, wheelchair=places)
        for k, seat_id in zip(missing, picks, strict=True):
            parties[k] = parties[k].replace_in(variant, seat_id)
    return parties


def _check_replacement(group: RingGroup, variant: str, free: int, seat_id: str) -> None:
    """A replacement is a seat of the variant (else a ValidationError) free in all its dates (else a
    Conflict naming it: sold or held meanwhile)."""
    plan = group.plan
    seat = plan.seat(seat_id)
    if not is_set(plan.offered(variant), plan.index[seat_id]):
        raise ValidationError(f"{seat.describe()} is not part of plan variant {variant}", field="replacements")
    if not is_set(free, plan.index[seat_id]):
        raise Conflict(f"{seat.describe()} is not free in every date of plan variant {variant}",
                       field="replacements")


def party_seats(groups: list[RingGroup], members: list[MemberIn]) -> list[list[GroupSeats]]:
    """Per member, its seats per group: one seat per group, the same in every performance of the
    group; where a variant lacks it, the replacement given for that variant. The members' seats
    are checked together: none twice in one performance (`ring_bookings`), companion rule."""
    chosen = [_per_plan(groups, m.seat_ids) for m in members]
    given = [_by_variant(m.replacements) for m in members]
    used: list[set[str]] = [set() for _ in members]
    out: list[list[GroupSeats]] = [[] for _ in members]
    for group in groups:
        parties = _fill_steps(group, _pick_party(group, [c[group.plan.id] for c in chosen]), given, used)
        ring_bookings(parties)
        for k, party in enumerate(parties):
            out[k].append(party)
    for k, replacements in enumerate(given):
        extra = set(replacements) - used[k]
        if extra:
            raise ValidationError(f"a replacement for variant {sorted(extra)[0]} is not needed: the seat exists "
                                  "there", field="replacements")
    return out


def ring_seats(groups: list[RingGroup], seat_ids: list[str], replacements: list[ReplacementIn]) -> list[GroupSeats]:
    """One subscriber's seats per group (`party_seats` for one; a seat change uses it)."""
    return party_seats(groups, [MemberIn(seat_ids=seat_ids, replacements=replacements)])[0]


def variant_steps(groups: list[RingGroup], seat_ids: list[str]) -> list[dict]:
    """The plan variants that lack the seats picked (one per group and member), each with the
    seats free in all its performances and the nearest free one: what the office steps through,
    choosing a replacement in each, before it sells (`party_seats` then takes them as
    `replacements`). A group's seats are picked together, as the party's sale picks them (so a
    companion seat beside a wheelchair place picked with it is fine)."""
    by_plan: dict[str, tuple[RingGroup, list[str]]] = {}
    for seat_id in dict.fromkeys(seat_ids):
        group = _group_of(groups, seat_id, "seat_ids")
        by_plan.setdefault(group.plan.id, (group, []))[1].append(seat_id)
    out = []
    for group, seats in by_plan.values():
        for party in _pick_party(group, seats):
            for step in party.steps():
                out.append({"plan_id": step.plan_id, "variant_id": step.variant_id,
                            "performance_ids": list(step.performance_ids), "missing_seat_id": party.seat_id,
                            "free_seat_ids": group.plan.ids(step.candidates), "suggestion": step.suggestion})
    return out


def _check_combi_member(want: list[str], seats: list[SeatAtIn]) -> dict[str, str]:
    given = [s.performance_id for s in seats]
    if len(set(given)) != len(given):
        raise ValidationError("a performance has two seats", field="seats")
    if sorted(given) != sorted(want):
        raise ValidationError(f"give exactly one seat for each of the {len(want)} performances", field="seats")
    return {s.performance_id: s.seat_id for s in seats}


def _check_combi_seat(perf: PerformanceSeats, seat_id: str) -> None:
    seat, index = perf.plan.seat(seat_id), perf.plan.index[seat_id]
    if not is_set(perf.offered, index):
        raise ValidationError(f"{seat.describe()} is not part of the plan variant of performance "
                              f"{perf.performance_id}", field="seats")
    if is_set(perf.other_pool, index):
        raise Conflict(f"{seat.describe()} is not in this pool at performance {perf.performance_id}", field="seats")
    if not is_set(perf.free, index):
        raise Conflict(f"{seat.describe()} is taken at performance {perf.performance_id}", field="seats",
                       seats=[{"performance_id": perf.performance_id, "seat_id": seat_id}])


def combi_party(perfs: list[PerformanceSeats], members: list[list[SeatAtIn]]) -> list[list[tuple[str, str]]]:
    """A seat per performance for each member, each offered and free there; the party's seats of a
    performance checked together (none twice, a companion seat only with its wheelchair place)."""
    want = [p.performance_id for p in perfs]
    chosen = [_check_combi_member(want, seats) for seats in members]
    out: list[list[tuple[str, str]]] = [[] for _ in members]
    for perf in perfs:
        picks = [c[perf.performance_id] for c in chosen]
        if len(set(picks)) != len(picks):
            raise ValidationError(f"{perf.plan.seat(picks[0]).describe()} is chosen for two subscriptions at "
                                  f"performance {perf.performance_id}", field="seats")
        for seat_id in picks:
            _check_combi_seat(perf, seat_id)
        places = sum(perf.plan.seat(s).wheelchair for s in picks)
        check_selection(perf.plan, perf.variant_id, perf.free, picks, wheelchair=places)
        for k, seat_id in enumerate(picks):
            out[k].append((perf.performance_id, seat_id))
    return out


def combi_seats(perfs: list[PerformanceSeats], seats: list[SeatAtIn]) -> list[tuple[str, str]]:
    """One subscriber's combi seats (`combi_party` for one; a seat change uses it)."""
    return combi_party(perfs, [seats])[0]


def resolve(prod: dict, perfs: list[PerformanceSeats], members: list[MemberIn],
            performance_ids: list[str]) -> list[list[Booked]]:
    """Per member, its (performance, seat, zone) per performance, by the product's kind."""
    kind = prod["kind"]
    if kind == "combi":
        if performance_ids or any(m.seat_ids or m.replacements for m in members):
            raise ValidationError("a combi ticket takes `seats` (a seat per performance) only", field="seats")
        bookings = combi_party(perfs, [m.seats for m in members])
    else:
        if any(m.seats for m in members):
            raise ValidationError(f"a {kind} subscription takes `seat_ids`, not `seats`", field="seats")
        if kind == "ring" and performance_ids:
            raise ValidationError("a ring has all its dates: leave performance_ids out", field="performance_ids")
        if kind == "choice" and not performance_ids:
            raise ValidationError(f"choose {prod['pick_count']} dates first", field="performance_ids")
        groups = offers.groups(prod, perfs, performance_ids)
        bookings = [[b for party in parties for b in party.bookings()] for parties in party_seats(groups, members)]
    plans = {p.performance_id: p.plan for p in perfs}
    return [[Booked(perf, seat, plans[perf].seat(seat).zone_id) for perf, seat in member] for member in bookings]


def price(db: sqlite3.Connection, prod: dict, booked: list[Booked], tier_id: str | None, zone_id: str | None,
          audience: Audience) -> tuple[int, dict[str, int], str | None]:
    """(price, price per performance, zone): ring/choice the zone's package price, all seats in
    one zone; combi per performance in its seat's zone. The tier applied once; complimentary 0."""
    if prod["kind"] == "combi":
        quote = pricing.combi_seat_prices(db, prod["id"], {b.performance_id: b.zone_id for b in booked},
                                          tier_id, audience, product=prod)
        return quote["price_cents"], quote["per_performance"], None
    zones = {b.zone_id for b in booked}
    if len(zones) != 1:
        raise ValidationError(f"a {prod['kind']} subscription is priced in one zone: all its seats (replacements "
                              "too) must be in the same price zone", field="seat_ids")
    zone = zones.pop()
    if zone_id is not None and zone_id != zone:
        raise ValidationError("the seats are not in the zone asked for", field="zone_id")
    quote = pricing.subscription_price(db, prod["id"], zone, tier_id, audience, product=prod)
    total = quote["price_cents"]
    return total, pricing.spread(total, [(b.performance_id, 1) for b in booked]), zone


# --- the sale ----------------------------------------------------------------------------------------


@retried  # a deadlock or serialization failure on PostgreSQL: run again
def sell_subscriptions(db: sqlite3.Connection, node: dict, body: SubscriptionSaleIn, *, channel: SaleChannel,
                       pool: str = HUB, audience: Audience = "internal", holder: str | None = None,
                       agency_token: str | None = None, signer: NodeSigner | None = None,
                       now: dt.datetime, product: dict | None = None) -> dict:
    """Sell the party's subscriptions (one, or `members`) in one order and one transaction, all or
    none; returns the order (`order_id`, `number`, `total_cents`) with its `subscriptions`, each
    with its tickets (a voucher subscription sold at a cash desk: and its `vouchers`).

    *channel*: `phone` (office), `shop`, `agency` (...); *pool*: the contingent it sells from
    (`hub`; an agency its `agency:<token id>`); *audience*: what the caller may see of the
    catalog (`agency`: released products and tiers bookable by all); *holder*: the buyer's
    holds (`token:<id>`/`staff:<id>`) are bought (converted), everybody else's are taken;
    *signer*: a cash desk's card key, which signs the vouchers of a voucher subscription it sells;
    *product*: the product as `offers.product` gave it to *audience* (seated or voucher kinds),
    if the caller read it already in this transaction.
    A seat taken meanwhile is a Conflict naming it; ask `offers.best` for alternatives."""
    check_payment(channel, body.payment_method, body.payment_reference)
    members = members_of(body)
    with transaction(db):
        prod = product if product is not None and product["id"] == body.product_id else offers.product(
            db, body.product_id, audience, kinds=(*offers.SEATED, "voucher"))
        if not db.execute("SELECT 1 FROM customers WHERE id = ?", (body.customer_id,)).fetchone():
            raise NotFound(f"customer {body.customer_id} does not exist", field="customer_id")
        check_phase(db, prod, channel, body.customer_id, now)
        form = form_of(prod, body.form)
        if prod["kind"] == "voucher" and channel == "cashdesk" and signer is None:
            raise RuntimeError("a cash desk's voucher sale needs the desk's signer: it signs the vouchers offline")
        if prod["kind"] == "voucher" and channel == "counter":
            raise ValidationError(f"{prod['name']} is sold by the office, the shop, an agency or a cash desk; "
                                  "a counter does not sell voucher subscriptions", field="product_id",
                                  detail_de=f"{prod['name']} verkaufen Büro, Shop, Vorverkaufsstellen und "
                                            "Theaterkassen; ein Schalter verkauft keine Wahlgutscheine")
        booked, priced = derive_party(db, prod, members, body, pool=pool, holder=holder, now=now, audience=audience)
        if holder is not None:
            holds.release_seats(db, holder, [(b.performance_id, b.seat_id) for seats in booked for b in seats])
        party = list(zip(members, booked, priced, strict=True))
        sold = store_sale(db, node, prod, body, party, fresh_ids(db, node, party, now), form=form, channel=channel,
                          agency_token=agency_token, now=now)
        if channel == "cashdesk":  # a desk's sale goes to the hub (a no-op on the hub itself)
            if prod["kind"] == "voucher":  # issued offline with the desk's key, so they travel with the sale
                for sub in sold["subscriptions"]:
                    sub["vouchers"] = choice_vouchers.issue_for_subscription(db, signer, sub["id"], now)
            outbox.record(db, "subscription.sold", sold_op(node, body, form, sold), wall_time=iso(now))
        return sold


def derive_party(db: sqlite3.Connection, prod: dict, members: list[MemberIn], body: SubscriptionSaleIn, *,
                 pool: str, now: dt.datetime, audience: Audience = "internal", holder: str | None = None,
                 ) -> tuple[list[list[Booked]], list[tuple[int, dict[str, int], str | None]]]:
    """Per member its seats (from *pool*) and its price, by the product's kind: what a sale stores,
    a desk's quote answers and the hub derives again for a desk's sale."""
    if prod["kind"] == "voucher":
        return voucher_party(db, prod, members, body, audience)
    perfs = offers.performances(db, prod, pool=pool, holder=holder, now=now, seats=named_seats(members))
    try:
        booked = resolve(prod, perfs, members, body.performance_ids)
    except (Conflict, ValidationError):  # said again on the whole houses: the same refusal, with its hints
        booked = resolve(prod, offers.performances(db, prod, pool=pool, holder=holder, now=now), members,
                         body.performance_ids)
    return booked, [price(db, prod, seats, m.tier_id, body.zone_id, audience)
                    for m, seats in zip(members, booked, strict=True)]


def named_seats(members: list[MemberIn]) -> set[str]:
    """Every seat the members name (seats, replacements, a combi's seats): all a sale has to look
    at. Their state decides the sale exactly as the whole house's would (`seat_loader`), since the
    rules only ask whether the named seats are offered, free and in the pool."""
    return {seat for m in members for seat in (*m.seat_ids, *(r.seat_id for r in m.replacements),
                                                *(s.seat_id for s in m.seats))}


def voucher_party(db: sqlite3.Connection, prod: dict, members: list[MemberIn], body: SubscriptionSaleIn,
                  audience: Audience) -> tuple[list[list[Booked]], list[tuple[int, dict[str, int], None]]]:
    """A voucher subscription (S5) has no seats: each member pays the package price with its
    tier (S7); its choice vouchers are issued with the subscription's cards
    (`core.subscriptions.choice_vouchers.issue_for_subscription`, called by `passes`)."""
    if body.performance_ids or body.zone_id or any(m.seat_ids or m.replacements or m.seats for m in members):
        raise ValidationError("a voucher subscription has no seats, dates or zone: its vouchers are redeemed "
                              "for tickets later", field="seat_ids")
    priced = [(pricing.subscription_price(db, prod["id"], None, m.tier_id, audience, product=prod)["price_cents"],
               {}, None)
              for m in members]
    return [[] for _ in members], priced


VOUCHER_FIELDS = ("id", "number", "position", "value_cents", "valid_until", "code")


def sold_op(node: dict, body: SubscriptionSaleIn, form: str, sold: dict) -> SubscriptionSoldOp:
    """The `subscription.sold` op of a desk's sale: the request, so the hub can sell it again from this
    desk's pool, and what was stored, so it can compare and keep the same ids and numbers."""
    members = members_of(body)
    return msgspec.convert({
        "order_id": sold["order_id"], "number": sold["number"], "node_id": node["id"], "channel": "cashdesk",
        "product_id": body.product_id, "customer_id": body.customer_id, "form": form, "zone_id": body.zone_id,
        "performance_ids": body.performance_ids, "payment_method": body.payment_method,
        "payment_reference": body.payment_reference, "given_cents": body.given_cents, "operator": body.operator,
        "total_cents": sold["total_cents"], "created_at": sold["subscriptions"][0]["created_at"],
        "members": [{"line_id": sub["line_id"], "subscription_id": sub["id"], "number": sub["number"],
                     "tier_id": m.tier_id, "holder_name": m.holder_name, "seat_ids": m.seat_ids,
                     "replacements": [msgspec.structs.asdict(r) for r in m.replacements],
                     "seats": [msgspec.structs.asdict(x) for x in m.seats], "zone_id": sub["zone_id"],
                     "price_cents": sub["price_cents"], "tickets": sub["tickets"],
                     "vouchers": [{k: v[k] for k in VOUCHER_FIELDS} for v in sub.get("vouchers", [])]}
                    for m, sub in zip(members, sold["subscriptions"], strict=True)]}, SubscriptionSoldOp)


def sell_subscription(db: sqlite3.Connection, node: dict, body: SubscriptionSaleIn, *, channel: SaleChannel,
                      pool: str = HUB, audience: Audience = "internal", holder: str | None = None,
                      agency_token: str | None = None, now: dt.datetime) -> dict:
    """`sell_subscriptions` answering its first subscription (for a single sale: the one)."""
    return sell_subscriptions(db, node, body, channel=channel, pool=pool, audience=audience, holder=holder,
                              agency_token=agency_token, now=now)["subscriptions"][0]


Sold = tuple[MemberIn, list[Booked], tuple[int, dict[str, int], str | None]]


@dataclass(frozen=True)
class MemberIds:
    """The ids and number one member's rows are stored under."""

    line_id: str
    subscription_id: str
    number: str
    ticket_ids: dict[str, str]  # performance id -> ticket id


@dataclass(frozen=True)
class SaleIds:
    """The ids and numbers a sale is stored under: fresh ones from this node's series where it is
    sold, or the ones a desk gave them when the hub stores the desk's sale (`desk_sales`)."""

    order_id: str
    number: str
    members: list[MemberIds]


def abo_series(node: dict) -> str:
    """Subscription numbers: `ABO` at the hub; an edge owns `AB` + the node id's last 6 hex digits,
    so an offline desk never hands out a number the hub or another desk hands out."""
    return SERIES if node["role"] == "hub" else "AB" + node["id"].replace("-", "")[-6:].upper()


def fresh_ids(db: sqlite3.Connection, node: dict, party: list[Sold], now: dt.datetime) -> SaleIds:
    """New ids, the order number from the node's order series and one subscription number per member
    from its own series (caller's transaction: a rolled-back sale takes no number)."""
    number, *subscriptions = next_numbers(db, [order_series(node["id"]), *[abo_series(node)] * len(party)],
                                          now.year, node["id"])
    return SaleIds(uuid7(), number, [
        MemberIds(uuid7(), uuid7(), sub_number, {b.performance_id: uuid7() for b in booked})
        for (_, booked, _), sub_number in zip(party, subscriptions, strict=True)])


def store_sale(db: sqlite3.Connection, node: dict, prod: dict, body: SubscriptionSaleIn, party: list[Sold],
               ids: SaleIds, *, form: str, channel: str, agency_token: str | None, now: dt.datetime) -> dict:
    """The ledger rows of a sale (caller's transaction): the order with a line, a subscription and
    its tickets per member, and the payment. The one store path of the hub's own sales and of a
    desk's sale the hub re-derived (then *ids* are the desk's)."""
    total, stamp = sum(priced[0] for _, _, priced in party), iso(now)
    if body.given_cents is not None and (body.payment_method != "cash" or body.given_cents < total):
        raise ValidationError("amount given is for cash and must cover the total", field="given_cents")
    order = {"id": ids.order_id, "number": ids.number, "node_id": node["id"],
             "channel": "shop" if channel == "agency" else channel, "customer_id": body.customer_id,
             "delivery": delivery_of(body, channel), "operator": body.operator, "total_cents": total,
             "created_at": stamp, "payment_method": body.payment_method,
             "payment_reference": body.payment_reference, "given_cents": body.given_cents}
    lines = [{"id": m.line_id, "position": k + 1, "kind": "subscription", "product_id": prod["id"],
              "price_cents": priced[0], "vat_code": prod["vat_code"], "card_id": None}
             for k, (m, (_, _, priced)) in enumerate(zip(ids.members, party, strict=True))]
    store_order(db, order, lines)
    subs = [_store_member(db, prod, order, m, sold, form=form, channel=channel, agency_token=agency_token,
                          now=now) for m, sold in zip(ids.members, party, strict=True)]
    return {"order_id": order["id"], "number": order["number"], "total_cents": total, "subscriptions": subs}


def delivery_of(body: SubscriptionSaleIn, channel: str) -> str:
    """A desk hands the subscription over at once (`counter`); elsewhere mail or pickup as asked."""
    if channel in DESK_CHANNELS:
        if body.delivery == "mail":
            raise ValidationError("a subscription sold at the desk is handed over at once", field="delivery")
        return "counter"
    if body.delivery == "counter":
        raise ValidationError("choose delivery by mail or pickup", field="delivery")
    return body.delivery


def _store_member(db: sqlite3.Connection, prod: dict, order: dict, ids: MemberIds, sold: Sold, *,
                  form: str, channel: str, agency_token: str | None, now: dt.datetime) -> dict:
    """One member's subscription row and its seat tickets on its own order line."""
    member, booked, (total, per_perf, zone) = sold
    stamp = iso(now)
    sub = {"id": ids.subscription_id, "number": ids.number, "order_id": order["id"],
           "line_id": ids.line_id, "customer_id": order["customer_id"], "product_id": prod["id"],
           "tier_id": member.tier_id, "zone_id": zone, "form": form, "state": "active",
           "holder_name": member.holder_name, "channel": channel, "agency_token": agency_token,
           "price_cents": total, "created_at": stamp, "updated_at": stamp}
    db.execute(f"INSERT INTO subscriptions ({', '.join(sub)}) VALUES ({', '.join('?' * len(sub))})",
               tuple(sub.values()))
    tickets = [{"id": ids.ticket_ids[b.performance_id], "performance_id": b.performance_id, "seat_id": b.seat_id,
                "zone_id": b.zone_id, "price_cents": per_perf[b.performance_id]} for b in booked]
    insert_tickets(db, order["id"], ids.line_id, tickets, stamp)
    return {**sub, "tickets": tickets}


def insert_tickets(db: sqlite3.Connection, order_id: str, line_id: str, tickets: list[dict], stamp: str) -> None:
    """Seat tickets of a subscription line, in one batch; the database's refusal (sold or held
    meanwhile) is a Conflict naming the seat. The batch runs in a savepoint: the refused one is
    undone and the seats can still be read to say which and why (on PostgreSQL an error aborts
    the transaction otherwise)."""
    if not tickets:  # a voucher subscription's line
        return
    try:
        with transaction(db):
            db.executemany("INSERT INTO tickets (id, order_id, line_id, performance_id, seat_id, zone_id, "
                           "price_cents, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [(t["id"], order_id, line_id, t["performance_id"], t["seat_id"], t["zone_id"],
                             t["price_cents"], stamp) for t in tickets])
    except sqlite3.IntegrityError as exc:
        raise holds.refused(db, [(t["performance_id"], t["seat_id"]) for t in tickets], None, exc) from None
