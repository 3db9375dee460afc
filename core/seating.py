"""Seating plans: sections, rows, seats, and variants of a plan.

A plan is drawn once (its *base*); a **variant** adds seats (the orchestra pit covered:
extra rows) or removes them (a stage extension). Seats keep their id across variants, so
a ring subscriber keeps *the same seat* in every performance that uses any variant
containing it (S2, S8). Plans are imported whole (JSON or CSV); an import with a duplicate
or overlapping seat is refused with a message naming both seats, and nothing is written.
"""

from __future__ import annotations

import csv
import io
import math
import sqlite3
from typing import Annotated

import msgspec
from msgspec import Meta

from core.catalog.common import Body, Id, Name
from core.catalog.resource import Resource, children_of, patch_of, require
from core.clock import now_iso
from core.errors import Conflict, NotFound, ValidationError
from core.ids import is_uuid, uuid7
from core.storage import transaction

MAX_SEATS = 20_000
Label = Annotated[str, Meta(min_length=1, max_length=12, pattern=r"^\S(.*\S)?$")]
Coord = Annotated[float, Meta(ge=-100_000, le=100_000)]
ZoneCode = Annotated[str, Meta(min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")]


class SeatIn(Body, kw_only=True):
    label: Label
    x: Coord
    y: Coord
    zone: ZoneCode
    wheelchair: bool = False
    companion: bool = False


class RowIn(Body, kw_only=True):
    label: Label
    seats: Annotated[list[SeatIn], Meta(min_length=1, max_length=1000)]


class SectionIn(Body, kw_only=True):
    name: Name
    rows: Annotated[list[RowIn], Meta(min_length=1, max_length=500)]


class RemoveIn(Body, kw_only=True):
    """Seats a variant leaves out: a whole row, or some seats of it."""

    section: Name
    row: Label
    seats: list[Label] | None = None


class VariantIn(Body, kw_only=True):
    name: Name
    add: list[SectionIn] = []
    remove: list[RemoveIn] = []
    active: bool = True


class PlanIn(Body, kw_only=True):
    venue_id: Id
    name: Name
    seat_size: Annotated[float, Meta(ge=0.01, le=1000)] = 1.0
    base_variant: Name = "Standard"
    sections: Annotated[list[SectionIn], Meta(min_length=1, max_length=100)]
    variants: list[VariantIn] = []


class PlanHeaderIn(Body, kw_only=True):
    """The changeable part of a plan: seats are changed one by one (SeatPatchIn)."""

    venue_id: Id
    name: Name
    seat_size: Annotated[float, Meta(ge=0.01, le=1000)] = 1.0
    active: bool = True


class VariantHeaderIn(Body, kw_only=True):
    name: Name
    active: bool = True


VariantPatch = patch_of(VariantHeaderIn)


class SeatPatchIn(Body, kw_only=True):
    row_label: Label | msgspec.UnsetType = msgspec.UNSET
    label: Label | msgspec.UnsetType = msgspec.UNSET
    x: Coord | msgspec.UnsetType = msgspec.UNSET
    y: Coord | msgspec.UnsetType = msgspec.UNSET
    zone: ZoneCode | msgspec.UnsetType = msgspec.UNSET
    wheelchair: bool | msgspec.UnsetType = msgspec.UNSET
    companion: bool | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


# -- pure checks -----------------------------------------------------------------

class Place(msgspec.Struct):
    """A seat as the checks see it: its key and where it is drawn."""

    section: str
    row: str
    label: str
    x: float
    y: float

    def describe(self) -> str:
        return f"{self.section} row {self.row} seat {self.label}"


def check_places(places: list[Place], seat_size: float, where: str) -> None:
    """Refuse duplicate keys and seats drawn on top of each other (closer than a seat)."""
    keys: dict[tuple[str, str, str], Place] = {}
    for place in places:
        key = (place.section, place.row, place.label)
        if key in keys:
            raise ValidationError(f"{where}: duplicate seat {place.describe()}", field="seats")
        keys[key] = place
    grid: dict[tuple[int, int], list[Place]] = {}
    for place in places:
        gx, gy = math.floor(place.x / seat_size), math.floor(place.y / seat_size)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for other in grid.get((gx + dx, gy + dy), ()):
                    if abs(other.x - place.x) < seat_size and abs(other.y - place.y) < seat_size:
                        raise ValidationError(
                            f"{where}: seats {other.describe()} at ({other.x:g}, {other.y:g}) and "
                            f"{place.describe()} at ({place.x:g}, {place.y:g}) overlap "
                            f"(seats are {seat_size:g} wide)",
                            field="seats",
                        )
        grid.setdefault((gx, gy), []).append(place)


def _places(sections: list[SectionIn]) -> list[Place]:
    return [
        Place(section.name, row.label, seat.label, seat.x, seat.y)
        for section in sections
        for row in section.rows
        for seat in row.seats
    ]


def check_plan(plan: PlanIn) -> None:
    """All structural rules of an import, without touching the database."""
    base = _places(plan.sections)
    check_places(base, plan.seat_size, f"plan {plan.name!r}")
    total = len(base)
    names = {plan.base_variant}
    base_keys = {(p.section, p.row, p.label) for p in base}
    for variant in plan.variants:
        if variant.name in names:
            raise ValidationError(f"variant name {variant.name!r} is used twice", field="variants")
        names.add(variant.name)
        removed = _removed_keys(variant, base, base_keys)
        added = _places(variant.add)
        kept = [p for p in base if (p.section, p.row, p.label) not in removed]
        check_places(kept + added, plan.seat_size, f"variant {variant.name!r}")
        total += len(added)
    if total > MAX_SEATS:
        raise ValidationError(f"a plan may hold at most {MAX_SEATS} seats, this one has {total}")


def _removed_keys(variant: VariantIn, base: list[Place], base_keys: set) -> set:
    removed: set = set()
    for item in variant.remove:
        row_keys = {k for k in base_keys if k[0] == item.section and k[1] == item.row}
        if not row_keys:
            raise ValidationError(
                f"variant {variant.name!r} removes {item.section} row {item.row}, "
                "which the plan does not have",
                field="variants",
            )
        if item.seats is None:
            removed |= row_keys
            continue
        for label in item.seats:
            key = (item.section, item.row, label)
            if key not in row_keys:
                raise ValidationError(
                    f"variant {variant.name!r} removes {item.section} row {item.row} seat {label}, "
                    "which the plan does not have",
                    field="variants",
                )
            removed.add(key)
    return removed


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


def variant_seats(db: sqlite3.Connection, variant_id: str, *, include_inactive: bool = False) -> list[dict]:
    """The seats a performance using *variant_id* offers, in drawing order."""
    variant = db.execute("SELECT * FROM plan_variants WHERE id = ?", (variant_id,)).fetchone()
    if variant is None:
        raise NotFound(f"no plan variant with id {variant_id}")
    active = "" if include_inactive else " AND s.active = 1"
    return db.execute(
        "SELECT s.id, c.name AS section, s.row_label, s.label, s.x, s.y, s.zone_id, z.code AS zone, "
        "s.wheelchair, s.companion, s.variant_id, s.active "
        "FROM seats s JOIN plan_sections c ON c.id = s.section_id JOIN price_zones z ON z.id = s.zone_id "
        f"WHERE s.plan_id = ? AND (s.variant_id IS NULL OR s.variant_id = ?){active} "
        "AND s.id NOT IN (SELECT seat_id FROM variant_removed_seats WHERE variant_id = ?) "
        "ORDER BY c.sort, s.y, s.x",
        (variant["plan_id"], variant_id, variant_id),
    ).fetchall()


def variant_zone_ids(db: sqlite3.Connection, variant_id: str) -> set[str]:
    return {seat["zone_id"] for seat in variant_seats(db, variant_id)}


def _check_stored_variant(db: sqlite3.Connection, variant: dict, seat_size: float) -> None:
    places = [
        Place(s["section"], s["row_label"], s["label"], s["x"], s["y"])
        for s in variant_seats(db, variant["id"])
    ]
    check_places(places, seat_size, f"variant {variant['name']!r}")


def _check_all_variants(db: sqlite3.Connection, plan_id: str, seat_size: float) -> None:
    for variant in db.execute("SELECT * FROM plan_variants WHERE plan_id = ?", (plan_id,)).fetchall():
        _check_stored_variant(db, variant, seat_size)


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
            _check_all_variants(db, current["id"], data.seat_size)

    def load_children(self, db: sqlite3.Connection, outs: list[dict]) -> None:
        sections = children_of(db, outs, "SELECT plan_id, id, name, sort FROM plan_sections "
                               "WHERE plan_id IN ({ids}) ORDER BY sort")
        variants = children_of(db, outs, "SELECT plan_id AS parent, * FROM plan_variants "
                               "WHERE plan_id IN ({ids}) ORDER BY is_base DESC, created_at")
        for out in outs:
            out["sections"] = sections[out["id"]]
            out["variants"] = [variant_out(db, v) for v in variants[out["id"]]]


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
        removed = _removed_keys(variant, base, {(p.section, p.row, p.label) for p in base})
        kept = [p for p in base if (p.section, p.row, p.label) not in removed]
        check_places(kept + _places(variant.add), plan["seat_size"], f"variant {variant.name!r}")
        variant_id = _insert_variant(db, plan_id, variant, _zone_codes(db, plan["venue_id"], existing_plan=True))
    return get_variant(db, variant_id)


def update_variant(db: sqlite3.Connection, variant_id: str, patch: msgspec.Struct) -> dict:
    with transaction(db):
        row = _variant_row(db, variant_id)
        name = row["name"] if patch.name is msgspec.UNSET else patch.name
        active = bool(row["active"]) if patch.active is msgspec.UNSET else patch.active
        if row["is_base"] and not active:
            raise ValidationError("the base variant of a plan cannot be deactivated", field="active")
        try:
            db.execute(
                "UPDATE plan_variants SET name = ?, active = ?, updated_at = ? WHERE id = ?",
                (name, int(active), now_iso(), variant_id),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"this plan already has a variant named {name!r}") from None
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
            _check_all_variants(db, plan_id, plan["seat_size"])
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


# -- CSV import ---------------------------------------------------------------------

CSV_COLUMNS = ("section", "row", "seat", "x", "y", "zone", "wheelchair", "companion", "variant", "removed_in")
_TRUE = {"1", "true", "yes", "ja", "x", "y", "j"}
_FALSE = {"", "0", "false", "no", "nein", "n"}


def _flag(text: str, line: int, column: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationError(f"line {line}: {column} must be yes/no, not {text!r}", field=column)


def _number(text: str, line: int, column: str) -> float:
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        raise ValidationError(f"line {line}: {column} must be a number, not {text!r}", field=column) from None
    if not math.isfinite(value):
        raise ValidationError(f"line {line}: {column} must be a finite number", field=column)
    return value


def plan_from_csv(text: str, *, venue_id: str, name: str, seat_size: float = 1.0,
                  base_variant: str = "Standard") -> PlanIn:
    """Read a plan from CSV, one seat per line.

    Columns: section,row,seat,x,y,zone[,wheelchair,companion,variant,removed_in]. A seat
    with `variant` set exists only in that variant; `removed_in` lists (separated by `;`)
    the variants that leave a base seat out.
    """
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    try:
        return _plan_from_rows(csv.DictReader(io.StringIO(lines)), venue_id, name, seat_size, base_variant)
    except csv.Error as exc:
        raise ValidationError(f"CSV cannot be read: {exc}", field="csv") from None


def _plan_from_rows(reader: csv.DictReader, venue_id: str, name: str, seat_size: float,
                    base_variant: str) -> PlanIn:
    missing = [c for c in CSV_COLUMNS[:6] if c not in (reader.fieldnames or [])]
    if missing:
        raise ValidationError(f"CSV header lacks column(s): {', '.join(missing)}", field="csv")
    unknown = [c for c in reader.fieldnames or [] if c not in CSV_COLUMNS]
    if unknown:
        raise ValidationError(f"CSV header has unknown column(s): {', '.join(unknown)}", field="csv")
    base: dict[str, dict[str, list]] = {}
    adds: dict[str, dict[str, dict[str, list]]] = {}
    removes: dict[str, list[dict]] = {}
    for line, rec in enumerate(reader, start=2):
        if None in rec or any(rec.get(c) is None for c in CSV_COLUMNS[:6]):
            raise ValidationError(f"line {line}: wrong number of columns", field="csv")
        seat = {
            "label": rec["seat"].strip(),
            "x": _number(rec["x"], line, "x"),
            "y": _number(rec["y"], line, "y"),
            "zone": rec["zone"].strip(),
            "wheelchair": _flag(rec.get("wheelchair") or "", line, "wheelchair"),
            "companion": _flag(rec.get("companion") or "", line, "companion"),
        }
        section, row = rec["section"].strip(), rec["row"].strip()
        variant = (rec.get("variant") or "").strip()
        target = adds.setdefault(variant, {}) if variant else base
        target.setdefault(section, {}).setdefault(row, []).append(seat)
        for other in filter(None, ((rec.get("removed_in") or "").split(";"))):
            removes.setdefault(other.strip(), []).append(
                {"section": section, "row": row, "seats": [seat["label"]]}
            )

    def sections(tree: dict[str, dict[str, list]]) -> list[dict]:
        return [{"name": s, "rows": [{"label": r, "seats": seats} for r, seats in rows.items()]}
                for s, rows in tree.items()]

    variants = [
        {"name": v, "add": sections(adds.get(v, {})), "remove": removes.get(v, [])}
        for v in dict.fromkeys([*adds, *removes])
    ]
    doc = {"venue_id": venue_id, "name": name, "seat_size": seat_size, "base_variant": base_variant,
           "sections": sections(base), "variants": variants}
    try:
        return msgspec.convert(doc, PlanIn)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"CSV content is invalid: {exc}", field="csv") from None
