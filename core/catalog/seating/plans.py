"""Seating plans: sections, rows, seats, and variants of a plan.

A plan is drawn once (its *base*); a **variant** adds seats (the orchestra pit covered:
extra rows) or removes them (a stage extension). Seats keep their id across variants, so
a ring subscriber keeps *the same seat* in every performance that uses any variant
containing it (S2, S8). Plans are imported whole (JSON or CSV); an import with a duplicate
or overlapping seat is refused with a message naming both seats, and nothing is written.
"""

from __future__ import annotations

import sqlite3

import msgspec

from core.base.clock import now_iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import is_uuid, uuid7
from core.base.storage import transaction
from core.catalog.resource import Resource, children_of, require
from core.catalog.seating.geometry import Place, check_places, check_plan, places_of, removed_keys
from core.catalog.seating.inputs import PlanHeaderIn, PlanIn, SeatPatchIn, SectionIn, VariantIn
from core.catalog.seating.variants import check_all_variants, get_variant, variant_out, variant_seats

# -- storage -----------------------------------------------------------------------

def _zone_codes(db: sqlite3.Connection, venue_id: str, *, existing_plan: bool = False) -> dict[str, str]:
    """Zone code -> id for the venue's organizer. A new plan needs an active venue; an
    existing plan may still be edited after its venue closed."""
    venue = require(db, "venues", venue_id, "venue", "venue_id",
                    {"venue_id": venue_id} if existing_plan else None)
    rows = db.execute(
        "SELECT id, code FROM price_zones WHERE organizer_id = ? AND active = 1",
        (venue["organizer_id"],),
    ).fetchall()
    return {r["code"]: r["id"] for r in rows}


def _zone_id(zones: dict[str, str], code: str, where: str) -> str:
    try:
        return zones[code]
    except KeyError:
        known = ", ".join(sorted(zones)) or "none defined yet"
        raise ValidationError(
            f"{where}: unknown price zone {code!r} (this organizer's zones: {known})", field="zone"
        ) from None


def _section_ids(db: sqlite3.Connection, plan_id: str) -> dict[str, str]:
    rows = db.execute("SELECT id, name FROM plan_sections WHERE plan_id = ?", (plan_id,))
    return {r["name"]: r["id"] for r in rows}


def _insert_sections(
    db: sqlite3.Connection, plan_id: str, sections: list[SectionIn], zones: dict[str, str],
    variant_id: str | None,
) -> None:
    ids = _section_ids(db, plan_id)
    for section in sections:
        if section.name not in ids:
            ids[section.name] = uuid7()
            db.execute(
                "INSERT INTO plan_sections (id, plan_id, name, sort) VALUES (?, ?, ?, ?)",
                (ids[section.name], plan_id, section.name, len(ids)),
            )
        for row in section.rows:
            db.executemany(
                "INSERT INTO seats (id, plan_id, section_id, row_label, label, x, y, zone_id, "
                "wheelchair, companion, variant_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (uuid7(), plan_id, ids[section.name], row.label, seat.label, seat.x, seat.y,
                     _zone_id(zones, seat.zone, f"{section.name} row {row.label} seat {seat.label}"),
                     int(seat.wheelchair), int(seat.companion), variant_id)
                    for seat in row.seats
                ],
            )


def _insert_variant(
    db: sqlite3.Connection, plan_id: str, variant: VariantIn, zones: dict[str, str]
) -> str:
    variant_id = uuid7()
    now = now_iso()
    db.execute(
        "INSERT INTO plan_variants (id, plan_id, name, is_base, active, created_at, updated_at) "
        "VALUES (?, ?, ?, 0, ?, ?, ?)",
        (variant_id, plan_id, variant.name, int(variant.active), now, now),
    )
    _insert_sections(db, plan_id, variant.add, zones, variant_id)
    for item in variant.remove:
        params: list = [plan_id, item.section, item.row]
        only = ""
        if item.seats is not None:
            only = f" AND s.label IN ({', '.join('?' for _ in item.seats)})"
            params.extend(item.seats)
        db.execute(
            "INSERT INTO variant_removed_seats (variant_id, seat_id) "
            f"SELECT ?, s.id FROM seats s JOIN plan_sections c ON c.id = s.section_id "
            f"WHERE s.plan_id = ? AND s.variant_id IS NULL AND c.name = ? AND s.row_label = ?{only} "
            "ON CONFLICT DO NOTHING",
            (variant_id, *params),
        )
    return variant_id


def import_plan(db: sqlite3.Connection, plan: PlanIn) -> dict:
    """Create a plan with its base variant and all declared variants, atomically."""
    check_plan(plan)
    plan_id = uuid7()
    now = now_iso()
    with transaction(db):
        zones = _zone_codes(db, plan.venue_id)
        db.execute(
            "INSERT INTO seating_plans (id, venue_id, name, seat_size, active, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, 1, ?, ?)",
            (plan_id, plan.venue_id, plan.name, plan.seat_size, now, now),
        )
        db.execute(
            "INSERT INTO plan_variants (id, plan_id, name, is_base, active, created_at, updated_at) "
            "VALUES (?, ?, ?, 1, 1, ?, ?)",
            (uuid7(), plan_id, plan.base_variant, now, now),
        )
        _insert_sections(db, plan_id, plan.sections, zones, None)
        for variant in plan.variants:
            _insert_variant(db, plan_id, variant, zones)
    return Plans().to_out(db, db.execute("SELECT * FROM seating_plans WHERE id = ?", (plan_id,)).fetchone())


class Plans(Resource):
    name = "seating plan"
    table = "seating_plans"
    In = PlanHeaderIn
    parent = ("venue_id", "venues", "venue")
    filters = ("venue_id",)

    def check(self, db: sqlite3.Connection, data: PlanHeaderIn, current: dict | None) -> None:
        if current is None:
            raise ValidationError("seating plans are created by importing a whole plan")
        if data.seat_size != current["seat_size"]:
            check_all_variants(db, current["id"], data.seat_size)

    def load_children(self, db: sqlite3.Connection, outs: list[dict]) -> None:
        sections = children_of(db, outs, "SELECT plan_id, id, name, sort FROM plan_sections "
                               "WHERE plan_id IN ({ids}) ORDER BY sort")
        variants = children_of(db, outs, "SELECT plan_id AS parent, * FROM plan_variants "
                               "WHERE plan_id IN ({ids}) ORDER BY is_base DESC, created_at")
        for out in outs:
            out["sections"] = sections[out["id"]]
            out["variants"] = [variant_out(db, v) for v in variants[out["id"]]]


def add_variant(db: sqlite3.Connection, plan_id: str, variant: VariantIn) -> dict:
    """A new variant of an existing plan; checked against the stored base seats."""
    with transaction(db):
        plan = Plans().to_out(db, _plan_row(db, plan_id))
        if variant.name in {v["name"] for v in plan["variants"]}:
            raise Conflict(f"plan {plan['name']!r} already has a variant named {variant.name!r}")
        base = [
            Place(s["section"], s["row_label"], s["label"], s["x"], s["y"])
            for s in variant_seats(db, _base_variant_id(db, plan_id))
        ]
        removed = removed_keys(variant, base, {(p.section, p.row, p.label) for p in base})
        kept = [p for p in base if (p.section, p.row, p.label) not in removed]
        check_places(kept + places_of(variant.add), plan["seat_size"], f"variant {variant.name!r}")
        variant_id = _insert_variant(db, plan_id, variant, _zone_codes(db, plan["venue_id"], existing_plan=True))
    return get_variant(db, variant_id)


def _plan_row(db: sqlite3.Connection, plan_id: str) -> dict:
    row = None
    if is_uuid(plan_id):
        row = db.execute("SELECT * FROM seating_plans WHERE id = ?", (plan_id,)).fetchone()
    if row is None:
        raise NotFound(f"no seating plan with id {plan_id}")
    return row


def _base_variant_id(db: sqlite3.Connection, plan_id: str) -> str:
    return db.execute(
        "SELECT id FROM plan_variants WHERE plan_id = ? AND is_base = 1", (plan_id,)
    ).fetchone()["id"]


def seat_out(seat: dict) -> dict:
    return {**seat, "wheelchair": bool(seat["wheelchair"]), "companion": bool(seat["companion"]),
            "active": bool(seat["active"])}


def update_seat(db: sqlite3.Connection, plan_id: str, seat_id: str, patch: SeatPatchIn) -> dict:
    """Change one seat (zone, flags, position, label); every variant is checked again."""
    with transaction(db):
        plan = _plan_row(db, plan_id)
        seat = db.execute("SELECT * FROM seats WHERE id = ? AND plan_id = ?", (seat_id, plan_id)).fetchone()
        if seat is None or not is_uuid(seat_id):
            raise NotFound(f"no seat with id {seat_id} in this plan")
        changes: dict = {}
        for name in ("row_label", "label", "x", "y", "wheelchair", "companion", "active"):
            value = getattr(patch, name)
            if value is not msgspec.UNSET:
                changes[name] = int(value) if isinstance(value, bool) else value
        if patch.zone is not msgspec.UNSET:
            changes["zone_id"] = _zone_id(_zone_codes(db, plan["venue_id"], existing_plan=True), patch.zone, "seat")
        if changes:
            sets = ", ".join(f"{k} = ?" for k in changes)
            db.execute(f"UPDATE seats SET {sets} WHERE id = ?", (*changes.values(), seat_id))
            check_all_variants(db, plan_id, plan["seat_size"])
            _check_priced(db, plan_id)
            db.execute("UPDATE seating_plans SET updated_at = ? WHERE id = ?", (now_iso(), plan_id))
    return seat_out(_seat_view(db, seat_id))


def _check_priced(db: sqlite3.Connection, plan_id: str) -> None:
    """A seat moved to another zone must still be priced wherever it is sold."""
    from core.catalog.performances import check_prices_cover  # performances build on seating

    perfs = db.execute(
        "SELECT p.id FROM performances p JOIN plan_variants v ON v.id = p.variant_id "
        "WHERE v.plan_id = ? AND p.active = 1", (plan_id,)).fetchall()
    check_prices_cover(db, [p["id"] for p in perfs])


def _seat_view(db: sqlite3.Connection, seat_id: str) -> dict:
    return db.execute(
        "SELECT s.id, c.name AS section, s.row_label, s.label, s.x, s.y, s.zone_id, z.code AS zone, "
        "s.wheelchair, s.companion, s.variant_id, s.active FROM seats s "
        "JOIN plan_sections c ON c.id = s.section_id JOIN price_zones z ON z.id = s.zone_id "
        "WHERE s.id = ?",
        (seat_id,),
    ).fetchone()
