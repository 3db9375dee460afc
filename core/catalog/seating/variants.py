"""Plan variants as stored: the seats a variant offers, reading and changing a variant."""

from __future__ import annotations

import sqlite3

import msgspec

from core.base.clock import now_iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import is_uuid
from core.base.storage import transaction
from core.catalog.seating.geometry import Place, check_places

# The seats a variant offers: of its plan, common or its own, active (unless asked), not removed by it
_OFFERED = ("FROM seats s JOIN plan_sections c ON c.id = s.section_id JOIN price_zones z ON z.id = s.zone_id "
            "WHERE s.plan_id = ? AND (s.variant_id IS NULL OR s.variant_id = ?){active} "
            "AND s.id NOT IN (SELECT seat_id FROM variant_removed_seats WHERE variant_id = ?)")


def _plan_of(db: sqlite3.Connection, variant_id: str) -> str:
    variant = db.execute("SELECT plan_id FROM plan_variants WHERE id = ?", (variant_id,)).fetchone()
    if variant is None:
        raise NotFound(f"no plan variant with id {variant_id}")
    return variant["plan_id"]


def variant_seats(db: sqlite3.Connection, variant_id: str, *, include_inactive: bool = False) -> list[dict]:
    """The seats a performance using *variant_id* offers, in drawing order."""
    active = "" if include_inactive else " AND s.active = 1"
    return db.execute(
        "SELECT s.id, c.name AS section, s.row_label, s.label, s.x, s.y, s.zone_id, z.code AS zone, "
        "s.wheelchair, s.companion, s.variant_id, s.active " + _OFFERED.format(active=active) +
        " ORDER BY c.sort, s.y, s.x",
        (_plan_of(db, variant_id), variant_id, variant_id),
    ).fetchall()


def variant_zone_ids(db: sqlite3.Connection, variant_id: str) -> set[str]:
    """The price zones of the seats *variant_id* offers (those of `variant_seats`): read as distinct
    ids, not seat by seat (a sample hub's build asks ~1,300 times; a large house has thousands of seats)."""
    rows = db.execute("SELECT DISTINCT s.zone_id " + _OFFERED.format(active=" AND s.active = 1"),
                      (_plan_of(db, variant_id), variant_id, variant_id))
    return {row["zone_id"] for row in rows}


def _check_stored_variant(db: sqlite3.Connection, variant: dict, seat_size: float) -> None:
    places = [
        Place(s["section"], s["row_label"], s["label"], s["x"], s["y"])
        for s in variant_seats(db, variant["id"])
    ]
    check_places(places, seat_size, f"variant {variant['name']!r}")


def check_all_variants(db: sqlite3.Connection, plan_id: str, seat_size: float) -> None:
    for variant in db.execute("SELECT * FROM plan_variants WHERE plan_id = ?", (plan_id,)).fetchall():
        _check_stored_variant(db, variant, seat_size)


def variant_out(db: sqlite3.Connection, row: dict) -> dict:
    return {
        "id": row["id"],
        "plan_id": row["plan_id"],
        "name": row["name"],
        "is_base": bool(row["is_base"]),
        "active": bool(row["active"]),
        "seat_count": db.execute(
            "SELECT count(*) AS n FROM seats WHERE plan_id = ? AND active = 1 "
            "AND (variant_id IS NULL OR variant_id = ?) "
            "AND id NOT IN (SELECT seat_id FROM variant_removed_seats WHERE variant_id = ?)",
            (row["plan_id"], row["id"], row["id"])).fetchone()["n"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _variant_row(db: sqlite3.Connection, variant_id: str) -> dict:
    row = None
    if is_uuid(variant_id):
        row = db.execute("SELECT * FROM plan_variants WHERE id = ?", (variant_id,)).fetchone()
    if row is None:
        raise NotFound(f"no plan variant with id {variant_id}")
    return row


def get_variant(db: sqlite3.Connection, variant_id: str) -> dict:
    return variant_out(db, _variant_row(db, variant_id))


def update_variant(db: sqlite3.Connection, variant_id: str, patch: msgspec.Struct) -> dict:
    with transaction(db):
        row = _variant_row(db, variant_id)
        name = row["name"] if patch.name is msgspec.UNSET else patch.name
        active = bool(row["active"]) if patch.active is msgspec.UNSET else patch.active
        if row["is_base"] and not active:
            raise ValidationError("the base variant of a plan cannot be deactivated", field="active")
        try:
            with transaction(db):  # a savepoint: the refusal is reported here on PostgreSQL too (pipelined writes)
                db.execute(
                    "UPDATE plan_variants SET name = ?, active = ?, updated_at = ? WHERE id = ?",
                    (name, int(active), now_iso(), variant_id),
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"this plan already has a variant named {name!r}") from None
    return get_variant(db, variant_id)
