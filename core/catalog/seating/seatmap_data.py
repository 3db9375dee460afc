"""What the seat map draws, read from the database: a plan and one variant's seats with
their section, row and price zone (name, colour, order). The renderer itself
(`seatmap.py`) stays pure; states (taken, other pool, ...) come from the sales side."""

from __future__ import annotations

import sqlite3

from core.base.errors import NotFound
from core.catalog.seating.seatmap import MapPlan, MapSeat
from core.catalog.seating.variants import variant_seats


def variant_map(db: sqlite3.Connection, variant_id: str) -> tuple[MapPlan, list[MapSeat]]:
    """The plan of *variant_id* and the seats the variant offers, in drawing order."""
    row = db.execute(
        "SELECT p.id, p.name, p.seat_size FROM plan_variants v JOIN seating_plans p ON p.id = v.plan_id "
        "WHERE v.id = ?", (variant_id,)).fetchone()
    if row is None:
        raise NotFound(f"no plan variant with id {variant_id}")
    seats = variant_seats(db, variant_id)
    zones = {z["id"]: z for z in db.execute(
        "SELECT id, name, color, sort FROM price_zones WHERE id IN "
        "(SELECT zone_id FROM seats WHERE plan_id = ?)", (row["id"],))}
    plan = MapPlan(row["id"], row["name"], float(row["seat_size"]))
    return plan, [
        MapSeat(s["id"], s["section"], s["row_label"], s["label"], float(s["x"]), float(s["y"]), s["zone"],
                zones[s["zone_id"]]["name"], zones[s["zone_id"]]["color"], bool(s["wheelchair"]),
                bool(s["companion"]), int(zones[s["zone_id"]]["sort"]))
        for s in seats
    ]
