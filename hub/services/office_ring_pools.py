"""What the office's ring pool screen reads and draws (issue 14, S17): per plan group of a
seated subscription product, the seat map coloured by the pool that holds each ring seat.

Reads only: moves and recalls go through the API (`POST /subscription-products/{id}/pools`).
Which pool holds a ring seat is the API's answer (`GET .../pools`, handed in as *pools*); this
module adds what the map needs besides: the seats of the group's variants, the seats the hub
has sold or held in one of the dates (a ring seat the hub cannot give away whole) and the cash
desks' names. The map is the one renderer's (`core.catalog.seating.seatmap`): a *category*
(hub, a desk, mixed, recall pending, sold, other pool) takes the place of the price zone, so
colour, name and legend come from the renderer unchanged, and the category's state
(free / taken / other pool) decides, as everywhere, whether a seat can be chosen.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, replace

from core.catalog.seating.seatmap import FREE, HELD, OTHER_POOL, SELECTED, TAKEN, MapPlan, MapSeat, seat_map_svg
from core.catalog.seating.seatmap_data import variant_map
from core.sales.contingents import HUB
from core.sales.seat_states import seat_states

MIXED, TAKEN_KEY, OTHER, PENDING = "mixed", "taken", "other", "pending:"
HUB_COLOR, MIXED_COLOR, TAKEN_COLOR, OTHER_COLOR = "#8fb8de", "#f2c14e", "#bdbdbd", "#6e6e6e"
DESK_COLORS = ("#e6550d", "#31a354", "#756bb1", "#d6616b", "#8c6d31", "#17becf", "#e377c2", "#7f7f7f")
WORDS = {
    "de": {HUB: "Hub (zentral)", MIXED: "gemischt (je Termin anders)", TAKEN_KEY: "verkauft / reserviert",
           OTHER: "anderes Kontingent", PENDING: "{d}: Rückholung läuft"},
    "en": {HUB: "Hub (central)", MIXED: "mixed (differs per date)", TAKEN_KEY: "sold / held",
           OTHER: "other pool", PENDING: "{d}: recall pending"},
}


@dataclass
class Category:
    """One colour of the map: its key, name, colour, map state and counts (ring seats; seats,
    i.e. ring seat x date, for a pool)."""

    key: str
    name: str
    color: str
    state: str
    sort: int
    ring_seats: int = 0
    seats: int = 0


def cash_desks(db: sqlite3.Connection) -> dict[str, str]:
    """Pool (`node:<id>`) -> name of every enrolled cash desk, by name: the targets of a move."""
    rows = db.execute(
        "SELECT s.node_id, (SELECT c.name FROM node_certs c WHERE c.node_id = s.node_id "
        "ORDER BY c.issued_at DESC LIMIT 1) AS name FROM node_scopes s WHERE s.role = 'cashdesk'").fetchall()
    named = sorted(((r["name"] or r["node_id"], r["node_id"]) for r in rows), key=lambda r: (r[0].lower(), r[1]))
    return {f"node:{node}": name for name, node in named}


def plan_groups(db: sqlite3.Connection, performance_ids: Collection[str]) -> list[dict]:
    """Per seating plan of the dates (in date order): the plan, the seats of all its variants
    (a ring seat is any of them) and per seat the dates that offer it."""
    marks = ", ".join("?" * len(performance_ids))
    rows = db.execute(f"SELECT f.id, f.variant_id, v.plan_id FROM performances f JOIN plan_variants v "
                      f"ON v.id = f.variant_id WHERE f.id IN ({marks}) ORDER BY f.starts_at, f.id",
                      list(performance_ids)).fetchall() if performance_ids else []
    groups: dict[str, dict] = {}
    maps: dict[str, tuple[MapPlan, list[MapSeat]]] = {}
    for row in rows:
        group = groups.setdefault(row["plan_id"], {"plan": None, "seats": {}, "dates": {}, "performances": []})
        if row["variant_id"] not in maps:
            maps[row["variant_id"]] = variant_map(db, row["variant_id"])
        plan, seats = maps[row["variant_id"]]
        group["plan"] = plan
        group["performances"].append(row["id"])
        for seat in seats:
            group["seats"].setdefault(seat.id, seat)
            group["dates"].setdefault(seat.id, []).append(row["id"])
    return list(groups.values())


def hub_taken(db: sqlite3.Connection, performance_ids: Collection[str], now: dt.datetime) -> set[str]:
    """Seats sold or held for a checkout in at least one of the dates."""
    out: set[str] = set()
    for perf in performance_ids:
        out |= {seat for seat, state in seat_states(db, perf, HUB, now).items() if state in (TAKEN, HELD)}
    return out


def _key(seat_pool: dict | None, taken: bool) -> str:
    """The category of one ring seat from the API's entry (None: the hub's in every date)."""
    if seat_pool is None:
        return TAKEN_KEY if taken else HUB
    recalling = [p["pool"] for p in seat_pool["performances"] if p["recalling"]]
    if recalling:
        return PENDING + recalling[0]
    pool = seat_pool["pool"]
    if pool == HUB:
        return TAKEN_KEY if taken else HUB
    return pool if pool == MIXED or pool.startswith("node:") else OTHER


def categories(keys: Collection[str], desks: dict[str, str], lang: str) -> dict[str, Category]:
    """Every category in use plus the hub and every desk (a target always has its legend row)."""
    w = WORDS[lang]
    color = {pool: DESK_COLORS[k % len(DESK_COLORS)] for k, pool in enumerate(desks)}
    out = {HUB: Category(HUB, w[HUB], HUB_COLOR, FREE, 0)}
    for k, (pool, name) in enumerate(desks.items()):
        out[pool] = Category(pool, name, color[pool], FREE, 1 + k)
    for key in sorted(set(keys) - set(out)):
        if key.startswith(PENDING):
            pool = key.removeprefix(PENDING)
            out[key] = Category(key, w[PENDING].format(d=desks.get(pool, pool)), color.get(pool, OTHER_COLOR),
                                OTHER_POOL, 500)
        elif key.startswith("node:"):  # a desk no longer enrolled still holds seats
            out[key] = Category(key, key, OTHER_COLOR, FREE, 400)
        else:
            out[key] = Category(key, w[key], {MIXED: MIXED_COLOR, TAKEN_KEY: TAKEN_COLOR}.get(key, OTHER_COLOR),
                                {MIXED: FREE, TAKEN_KEY: TAKEN}.get(key, OTHER_POOL),
                                {MIXED: 300, TAKEN_KEY: 600}.get(key, 700))
    return out


def pool_view(db: sqlite3.Connection, product: dict, pools: dict, desks: dict[str, str],
              selected: Collection[str], lang: str, now: dt.datetime) -> dict:
    """The maps (one per plan group, SVG) and the legend with counts.

    `maps`: plan id, name, dates, svg, the seats (for the range form); `legend`: categories in
    order with ring seats and seats; `seat_keys`: seat id -> category key."""
    groups = plan_groups(db, product["performance_ids"])
    taken = hub_taken(db, product["performance_ids"], now)
    listed = {s["seat_id"]: s for s in pools["seats"]}
    keys = {seat: _key(listed.get(seat), seat in taken) for g in groups for seat in g["seats"]}
    cats = categories(set(keys.values()), desks, lang)
    rings = Counter(keys.values())
    pairs: Counter[str] = Counter()
    for g in groups:
        for seat, dates in g["dates"].items():
            entry = listed.get(seat)
            by_date = {p["performance_id"]: p["pool"] for p in entry["performances"]} if entry else {}
            pairs.update(_pair_key(by_date.get(d, HUB)) for d in dates)
    for key, cat in cats.items():
        cat.ring_seats, cat.seats = rings.get(key, 0), pairs.get(key, 0) if not key.startswith(PENDING) else 0
    chosen = set(selected)
    maps = []
    for g in groups:
        seats = [replace(s, zone=keys[s.id], zone_name=cats[keys[s.id]].name, color=cats[keys[s.id]].color,
                         zone_sort=cats[keys[s.id]].sort) for s in g["seats"].values()]
        states = {s.id: _state(cats[keys[s.id]].state, s.id in chosen) for s in seats}
        maps.append({"plan_id": g["plan"].id, "name": g["plan"].name, "dates": len(g["performances"]),
                     "seats": list(g["seats"].values()), "selected": [s.id for s in seats if s.id in chosen],
                     "svg": seat_map_svg(g["plan"], seats, states, lang)})
    legend = sorted((c for c in cats.values() if c.ring_seats or c.state == FREE and c.key != MIXED),
                    key=lambda c: (c.sort, c.name))
    return {"maps": maps, "legend": legend, "seat_keys": keys}


def _pair_key(pool: str) -> str:
    return pool if pool == HUB or pool.startswith("node:") else OTHER


def _state(state: str, chosen: bool) -> str:
    return SELECTED if chosen and state == FREE else state
