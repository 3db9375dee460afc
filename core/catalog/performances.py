"""Performances: a title on a stage at a start time, on one variant of the stage's
seating plan, with a single-ticket price for every price zone its seats use."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Annotated

from msgspec import Meta

from core.base.errors import ValidationError
from core.catalog.common import Body, Cents, Id, Name, check_unique, check_when
from core.catalog.resource import Resource, children_of, require
from core.catalog.seating.variants import variant_zone_ids

StartTime = Annotated[dt.datetime, Meta(tz=True, description="with timezone, e.g. 2026-10-03T19:30:00+02:00")]


class ZonePriceIn(Body, kw_only=True):
    zone_id: Id
    price_cents: Cents


class PerformanceIn(Body, kw_only=True):
    venue_id: Id
    variant_id: Id
    season_id: Id | None = None
    title: Name
    starts_at: StartTime
    prices: Annotated[list[ZonePriceIn], Meta(min_length=1, max_length=50)]
    active: bool = True


def check_zone_prices(
    db: sqlite3.Connection, prices: list, organizer_id: str, needed: set[str], field: str, what: str
) -> None:
    """Zones priced must be the organizer's, each once, and cover every zone in *needed*."""
    check_unique([p.zone_id for p in prices], field, "price zone")
    for p in prices:
        zone = require(db, "price_zones", p.zone_id, "price zone", field)
        if zone["organizer_id"] != organizer_id:
            raise ValidationError(f"{field}: price zone {zone['code']} belongs to another organizer", field=field)
    missing = needed - {p.zone_id for p in prices}
    if missing:
        codes = sorted(
            r["code"] for r in db.execute(
                f"SELECT code FROM price_zones WHERE id IN ({', '.join('?' for _ in missing)})", tuple(missing)
            )
        )
        raise ValidationError(f"{what} has seats in price zone(s) {', '.join(codes)} but no price for them",
                              field=field)


def performance_organizer(db: sqlite3.Connection, performance_id: str, field: str,
                          current: dict | None = None) -> dict:
    """The performance row joined with its venue's organizer id (used by subscriptions)."""
    perf = require(db, "performances", performance_id, "performance", field, current)
    venue = db.execute("SELECT organizer_id FROM venues WHERE id = ?", (perf["venue_id"],)).fetchone()
    return {**perf, "organizer_id": venue["organizer_id"]}


def check_prices_cover(db: sqlite3.Connection, performance_ids: list[str]) -> None:
    """Every seat a performance offers must have a price: in the performance itself and in
    every active subscription that includes it. Run after a change to seats, variants or
    performances, inside the same transaction, so a gap undoes the change."""
    for perf_id in performance_ids:
        perf = db.execute("SELECT * FROM performances WHERE id = ?", (perf_id,)).fetchone()
        needed = variant_zone_ids(db, perf["variant_id"])
        priced = {r["zone_id"] for r in db.execute(
            "SELECT zone_id FROM performance_prices WHERE performance_id = ?", (perf_id,))}
        _report_gap(db, needed - priced, f"performance {perf['title']!r} on {perf['starts_at']}")
        for product in db.execute(
            "SELECT p.* FROM subscription_products p JOIN subscription_performances s ON s.product_id = p.id "
            "WHERE s.performance_id = ? AND p.active = 1 AND p.kind IN ('ring', 'choice', 'combi')", (perf_id,)
        ).fetchall():
            if product["kind"] == "combi":
                rows = db.execute("SELECT zone_id FROM combi_prices WHERE product_id = ? AND performance_id = ?",
                                  (product["id"], perf_id))
            else:
                rows = db.execute("SELECT zone_id FROM subscription_zone_prices WHERE product_id = ?",
                                  (product["id"],))
            _report_gap(db, needed - {r["zone_id"] for r in rows},
                        f"{product['kind']} {product['name']!r} (with {perf['title']!r} on {perf['starts_at']})")


def _report_gap(db: sqlite3.Connection, missing: set[str], what: str) -> None:
    if not missing:
        return
    codes = sorted(r["code"] for r in db.execute(
        f"SELECT code FROM price_zones WHERE id IN ({', '.join('?' for _ in missing)})", tuple(missing)))
    raise ValidationError(f"{what} would have seats in price zone(s) {', '.join(codes)} without a price; "
                          "add the prices first")


class Performances(Resource):
    name = "performance"
    table = "performances"
    In = PerformanceIn
    children = ("prices",)
    sorts = ("starts_at", "title", "created_at", "updated_at")
    default_sort = "starts_at"
    filters = ("venue_id", "season_id", "variant_id")
    search = ("title",)

    def check(self, db: sqlite3.Connection, data: PerformanceIn, current: dict | None) -> None:
        check_when(data.starts_at, "starts_at")
        venue = require(db, "venues", data.venue_id, "venue", "venue_id", current)
        variant = require(db, "plan_variants", data.variant_id, "plan variant", "variant_id", current)
        plan = db.execute("SELECT * FROM seating_plans WHERE id = ?", (variant["plan_id"],)).fetchone()
        if plan["venue_id"] != venue["id"]:
            raise ValidationError(
                f"plan variant {variant['name']!r} belongs to a plan of another venue", field="variant_id"
            )
        if data.season_id is not None:
            season = require(db, "seasons", data.season_id, "season", "season_id", current)
            if season["organizer_id"] != venue["organizer_id"]:
                raise ValidationError("the season belongs to another organizer", field="season_id")
            day = data.starts_at.date().isoformat()
            if not season["starts_on"] <= day <= season["ends_on"]:
                raise ValidationError(
                    f"performance on {day} lies outside season {season['name']} "
                    f"({season['starts_on']} to {season['ends_on']})",
                    field="starts_at",
                )
        check_zone_prices(db, data.prices, venue["organizer_id"], variant_zone_ids(db, data.variant_id),
                          "prices", f"plan variant {variant['name']!r}")

    def write_children(self, db: sqlite3.Connection, id_: str, data: PerformanceIn) -> None:
        db.execute("DELETE FROM performance_prices WHERE performance_id = ?", (id_,))
        db.executemany(
            "INSERT INTO performance_prices (performance_id, zone_id, price_cents) VALUES (?, ?, ?)",
            [(id_, p.zone_id, p.price_cents) for p in data.prices],
        )

    def after_write(self, db: sqlite3.Connection, id_: str) -> None:
        check_prices_cover(db, [id_])

    def load_children(self, db: sqlite3.Connection, outs: list[dict]) -> None:
        prices = children_of(db, outs, "SELECT p.performance_id, p.zone_id, p.price_cents FROM performance_prices p "
                             "JOIN price_zones z ON z.id = p.zone_id WHERE p.performance_id IN ({ids}) "
                             "ORDER BY z.sort, z.code")
        for out in outs:
            out["prices"] = prices[out["id"]]
