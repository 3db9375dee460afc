"""Subscription products (S1-S7, S16): rings, choose-N-of-M, choice vouchers, combi tickets,
their sale windows, and their discount tiers.

One struct describes all four types; `check` enforces what each type needs:
- ring (S2): ordered performances, a package price per price zone;
- choice (S4): a pool of M performances, pick count 1 <= N <= M, a package price per zone;
- voucher (S5): count, value per voucher, package price, and the offer (performances);
- combi (S6): a price per performance and zone.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Annotated, Literal

from msgspec import Meta

from core.base.clock import iso
from core.base.errors import Conflict, ValidationError
from core.catalog.common import (
    Body,
    Cents,
    Channel,
    Id,
    LongText,
    Name,
    ShortText,
    VatCode,
    check_unique,
    check_when,
)
from core.catalog.performances import ZonePriceIn, check_zone_prices, performance_organizer
from core.catalog.resource import Audience, Resource, require
from core.catalog.seating.variants import variant_zone_ids

Kind = Literal["ring", "choice", "voucher", "combi"]
Moment = Annotated[dt.datetime, Meta(tz=True)]


class CombiPriceIn(Body, kw_only=True):
    performance_id: Id
    zone_id: Id
    price_cents: Cents


class SaleWindowIn(Body, kw_only=True):
    """When a channel may sell: `renewal` (existing subscribers, S3) precedes `general`."""

    channel: Channel
    phase: Literal["renewal", "general"]
    starts_at: Moment
    ends_at: Moment


class SubscriptionIn(Body, kw_only=True):
    organizer_id: Id
    season_id: Id
    name: Name
    title: Name
    subtitle: ShortText = ""
    description: LongText = ""
    kind: Kind
    print_options: Literal["pass", "single_tickets", "both"] = "pass"
    transferable: bool = False
    agency_release: bool = False
    vat_code: VatCode = "exempt"
    performance_ids: Annotated[list[Id], Meta(max_length=200)] = []
    zone_prices: Annotated[list[ZonePriceIn], Meta(max_length=50)] = []
    pick_count: Annotated[int, Meta(ge=1, le=200)] | None = None
    voucher_count: Annotated[int, Meta(ge=1, le=100)] | None = None
    voucher_value_cents: Cents | None = None
    price_cents: Cents | None = None
    combi_prices: Annotated[list[CombiPriceIn], Meta(max_length=5000)] = []
    sale_windows: Annotated[list[SaleWindowIn], Meta(max_length=8)] = []
    active: bool = True


def _refuse(value: object, field: str, kind: str) -> None:
    if value not in (None, []):
        raise ValidationError(f"a {kind} subscription has no {field}", field=field)


def _needed_zones(db: sqlite3.Connection, performances: list[dict]) -> set[str]:
    zones: set[str] = set()
    for perf in performances:
        zones |= variant_zone_ids(db, perf["variant_id"])
    return zones


def check_sale_windows(windows: list[SaleWindowIn]) -> None:
    check_unique([(w.channel, w.phase) for w in windows], "sale_windows", "sale window")
    by_channel: dict[str, dict[str, SaleWindowIn]] = {}
    for w in windows:
        check_when(w.starts_at, "sale_windows")
        check_when(w.ends_at, "sale_windows")
        if w.ends_at <= w.starts_at:
            raise ValidationError(
                f"{w.phase} sale window for {w.channel} ends before it starts", field="sale_windows"
            )
        by_channel.setdefault(w.channel, {})[w.phase] = w
    for channel, phases in by_channel.items():
        renewal, general = phases.get("renewal"), phases.get("general")
        if renewal and general and renewal.starts_at >= general.starts_at:
            raise ValidationError(
                f"renewal presale for {channel} must start before general sale "
                f"({iso(renewal.starts_at)} is not before {iso(general.starts_at)})",
                field="sale_windows",
            )


def sale_phase(windows: list[dict], channel: str, at: str) -> str | None:
    """Which phase *channel* is in at ISO time *at*: 'renewal', 'general' or None (closed)."""
    for phase in ("general", "renewal"):
        for w in windows:
            if w["channel"] == channel and w["phase"] == phase and w["starts_at"] <= at < w["ends_at"]:
                return phase
    return None


def has_agency_tier(db: sqlite3.Connection, product_id: str, except_tier: str | None = None) -> bool:
    return db.execute(
        "SELECT 1 FROM discount_tiers WHERE product_id = ? AND active = 1 AND bookable_by_all = 1 "
        "AND id IS NOT ?",
        (product_id, except_tier),
    ).fetchone() is not None


class Subscriptions(Resource):
    name = "subscription product"
    table = "subscription_products"
    In = SubscriptionIn
    parent = ("organizer_id", "organizers", "organizer")
    children = ("performance_ids", "zone_prices", "combi_prices", "sale_windows")
    sorts = ("name", "kind", "created_at", "updated_at")
    filters = ("organizer_id", "season_id", "kind")
    search = ("name", "title")

    def check(self, db: sqlite3.Connection, data: SubscriptionIn, current: dict | None) -> None:
        season = require(db, "seasons", data.season_id, "season", "season_id", current)
        if season["organizer_id"] != data.organizer_id:
            raise ValidationError("the season belongs to another organizer", field="season_id")
        performances = self._performances(db, data, season, current)
        getattr(self, f"_check_{data.kind}")(db, data, performances)
        check_sale_windows(data.sale_windows)
        if data.agency_release and not (current and has_agency_tier(db, current["id"])):
            raise ValidationError(
                "agency release needs at least one active discount tier that is bookable by all; "
                "add one (POST /api/v1/discount-tiers) before releasing the product",
                field="agency_release",
            )

    def _performances(self, db: sqlite3.Connection, data: SubscriptionIn, season: dict,
                      current: dict | None) -> list[dict]:
        check_unique(data.performance_ids, "performance_ids", "performance")
        if not data.performance_ids:
            raise ValidationError(f"a {data.kind} subscription needs performances", field="performance_ids")
        found = []
        for perf_id in data.performance_ids:
            perf = performance_organizer(db, perf_id, "performance_ids", current)
            if perf["organizer_id"] != data.organizer_id:
                raise ValidationError(f"performance {perf['title']!r} belongs to another organizer",
                                      field="performance_ids")
            if perf["season_id"] not in (None, data.season_id):
                raise ValidationError(f"performance {perf['title']!r} on {perf['starts_at']} is in another season",
                                      field="performance_ids")
            found.append(perf)
        return found

    def _check_ring(self, db: sqlite3.Connection, data: SubscriptionIn, perfs: list[dict]) -> None:
        for field in ("pick_count", "voucher_count", "voucher_value_cents", "price_cents", "combi_prices"):
            _refuse(getattr(data, field), field, "ring")
        check_zone_prices(db, data.zone_prices, data.organizer_id, _needed_zones(db, perfs),
                          "zone_prices", "the ring's performances")

    def _check_choice(self, db: sqlite3.Connection, data: SubscriptionIn, perfs: list[dict]) -> None:
        for field in ("voucher_count", "voucher_value_cents", "price_cents", "combi_prices"):
            _refuse(getattr(data, field), field, "choice")
        if data.pick_count is None:
            raise ValidationError("a choice subscription needs pick_count (N of M)", field="pick_count")
        if data.pick_count > len(perfs):
            raise ValidationError(
                f"pick_count N={data.pick_count} is larger than the pool of M={len(perfs)} performances",
                field="pick_count",
            )
        check_zone_prices(db, data.zone_prices, data.organizer_id, _needed_zones(db, perfs),
                          "zone_prices", "the choice pool")

    def _check_voucher(self, db: sqlite3.Connection, data: SubscriptionIn, perfs: list[dict]) -> None:
        for field in ("pick_count", "zone_prices", "combi_prices"):
            _refuse(getattr(data, field), field, "voucher")
        for field in ("voucher_count", "voucher_value_cents", "price_cents"):
            if getattr(data, field) is None:
                raise ValidationError(f"a voucher subscription needs {field}", field=field)

    def _check_combi(self, db: sqlite3.Connection, data: SubscriptionIn, perfs: list[dict]) -> None:
        for field in ("pick_count", "voucher_count", "voucher_value_cents", "price_cents", "zone_prices"):
            _refuse(getattr(data, field), field, "combi")
        check_unique([(p.performance_id, p.zone_id) for p in data.combi_prices], "combi_prices", "price")
        by_perf = {perf["id"]: perf for perf in perfs}
        for price in data.combi_prices:
            if price.performance_id not in by_perf:
                raise ValidationError("combi_prices names a performance that is not in performance_ids",
                                      field="combi_prices")
        for perf in perfs:
            own = [p for p in data.combi_prices if p.performance_id == perf["id"]]
            check_zone_prices(db, own, data.organizer_id, variant_zone_ids(db, perf["variant_id"]),
                              "combi_prices", f"performance {perf['title']!r} on {perf['starts_at']}")

    def write_children(self, db: sqlite3.Connection, id_: str, data: SubscriptionIn) -> None:
        for table in ("subscription_performances", "subscription_zone_prices", "combi_prices", "sale_windows"):
            db.execute(f"DELETE FROM {table} WHERE product_id = ?", (id_,))
        db.executemany(
            "INSERT INTO subscription_performances (product_id, performance_id, position) VALUES (?, ?, ?)",
            [(id_, p, i) for i, p in enumerate(data.performance_ids)],
        )
        db.executemany(
            "INSERT INTO subscription_zone_prices (product_id, zone_id, price_cents) VALUES (?, ?, ?)",
            [(id_, p.zone_id, p.price_cents) for p in data.zone_prices],
        )
        db.executemany(
            "INSERT INTO combi_prices (product_id, performance_id, zone_id, price_cents) VALUES (?, ?, ?, ?)",
            [(id_, p.performance_id, p.zone_id, p.price_cents) for p in data.combi_prices],
        )
        db.executemany(
            "INSERT INTO sale_windows (product_id, channel, phase, starts_at, ends_at) VALUES (?, ?, ?, ?, ?)",
            [(id_, w.channel, w.phase, iso(w.starts_at), iso(w.ends_at)) for w in data.sale_windows],
        )

    def load_children(self, db: sqlite3.Connection, outs: list[dict]) -> None:
        """The four child lists of every product in *outs*, in one statement (a shop checkout reads
        its product twice, and each statement is a round trip on PostgreSQL), ordered here."""
        ids = [out["id"] for out in outs]
        marks = ", ".join("?" for _ in ids)
        cursor = db.cursor()
        cursor.row_factory = None  # plain tuples: (product, part, n, k, a, b, cents, t1, t2)
        rows = cursor.execute(
            "SELECT product_id, 'p', position, NULL, performance_id, NULL, NULL, NULL, NULL "
            f"FROM subscription_performances WHERE product_id IN ({marks}) "
            "UNION ALL SELECT p.product_id, 'z', z.sort, z.code, p.zone_id, NULL, p.price_cents, NULL, NULL "
            f"FROM subscription_zone_prices p JOIN price_zones z ON z.id = p.zone_id WHERE p.product_id IN ({marks}) "
            "UNION ALL SELECT product_id, 'c', NULL, NULL, performance_id, zone_id, price_cents, NULL, NULL "
            f"FROM combi_prices WHERE product_id IN ({marks}) "
            "UNION ALL SELECT product_id, 'w', NULL, channel, phase, NULL, NULL, starts_at, ends_at "
            f"FROM sale_windows WHERE product_id IN ({marks})", ids * 4).fetchall()
        grouped: dict[tuple[str, str], list[tuple]] = {}
        for row in rows:
            grouped.setdefault((row[0], row[1]), []).append(row)
        order = {"p": lambda r: r[2], "z": lambda r: (r[2], r[3]), "c": lambda r: (r[4], r[5]),
                 "w": lambda r: (r[3], r[7])}  # as the lists were always ordered

        def part(pid: str, name: str) -> list[tuple]:
            return sorted(grouped.get((pid, name), ()), key=order[name])

        for out in outs:
            pid = out["id"]
            out["performance_ids"] = [r[4] for r in part(pid, "p")]
            out["zone_prices"] = [{"zone_id": r[4], "price_cents": r[6]} for r in part(pid, "z")]
            out["combi_prices"] = [{"performance_id": r[4], "zone_id": r[5], "price_cents": r[6]}
                                   for r in part(pid, "c")]
            out["sale_windows"] = [{"channel": r[3], "phase": r[4], "starts_at": r[7], "ends_at": r[8]}
                                   for r in part(pid, "w")]

    def audience_sql(self, audience: Audience) -> tuple[str, tuple]:
        if audience == "agency":
            return "active = 1 AND agency_release = 1", ()
        if audience == "shop":
            return "active = 1", ()
        return "", ()


class TierIn(Body, kw_only=True):
    """A discount tier (Rabattstufe). `value` is percent for `percent`, cents for `fixed`,
    and 0 for `complimentary` (Ehrenkarte: price 0)."""

    product_id: Id
    name: Name
    kind: Literal["percent", "fixed", "complimentary"]
    value: Annotated[int, Meta(ge=0, le=100_000_000)] = 0
    bookable_by_all: bool = False
    sort: Annotated[int, Meta(ge=0, le=1000)] = 0
    active: bool = True


class Tiers(Resource):
    name = "discount tier"
    table = "discount_tiers"
    In = TierIn
    parent = ("product_id", "subscription_products", "subscription product")
    sorts = ("sort", "name", "created_at")
    default_sort = "sort"
    filters = ("product_id", "kind")
    unique_message = "this product already has a discount tier with that name"

    def check(self, db: sqlite3.Connection, data: TierIn, current: dict | None) -> None:
        product = db.execute("SELECT * FROM subscription_products WHERE id = ?", (data.product_id,)).fetchone()
        if data.kind == "percent" and not 1 <= data.value <= 100:
            raise ValidationError("a percent discount must be between 1 and 100", field="value")
        if data.kind == "fixed" and data.value < 1:
            raise ValidationError("a fixed discount must be at least 1 cent", field="value")
        if data.kind == "complimentary" and data.value != 0:
            raise ValidationError("a complimentary tier costs nothing; leave value at 0", field="value")
        losing = current and current["active"] and current["bookable_by_all"] and not (
            data.active and data.bookable_by_all)
        if losing and product["agency_release"] and not has_agency_tier(db, product["id"], current["id"]):
            raise Conflict(
                f"{product['name']!r} is released to agencies and this is its last tier bookable by all; "
                "withdraw the agency release first"
            )

    def audience_sql(self, audience: Audience) -> tuple[str, tuple]:
        if audience == "agency":
            return ("active = 1 AND bookable_by_all = 1 AND product_id IN "
                    "(SELECT id FROM subscription_products WHERE active = 1 AND agency_release = 1)"), ()
        if audience == "shop":
            return "active = 1", ()
        return "", ()
