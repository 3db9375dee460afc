"""What the office's subscription screens read (issue 13): the subscriber list, a record's cards
and order, the seat maps drawn for a sale, and the prices of each tier.

Reads only: every change (a sale, a hold, a seat change, tier, form, state) goes through the
API (`hub/web/office/api_call.py`). The maps are `core.subscriptions.seat_maps` (the desk draws
the same); prices come from `core.catalog.pricing` only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

from core.base.errors import ValidationError
from core.base.sql import joined
from core.catalog import pricing
from core.subscriptions.seat_maps import subscription_seat_map as seat_map  # noqa: F401 (the desk draws the same)
from hub.services.office_lists import PAGE_SIZE, Page, _bounds, choose_sort

STATES = ("active", "paused", "cancelled")
SORTS = {"number": "s.number", "customer": "c.last_name COLLATE NOCASE, c.first_name COLLATE NOCASE",
         "product": "p.name COLLATE NOCASE", "tier": "t.name COLLATE NOCASE", "seats": "seats",
         "state": "s.state", "price": "s.price_cents", "date": "s.created_at"}
DEFAULT_SORT = "-date"
_TEXT = ("s.number", "s.holder_name", "c.number", "c.last_name", "c.first_name")
_SOURCE = (" FROM subscriptions s JOIN customers c ON c.id = s.customer_id "
           "JOIN subscription_products p ON p.id = s.product_id LEFT JOIN discount_tiers t ON t.id = s.tier_id")
# the distinct seats of a subscription, "Parkett 5/7", for the list's seat column, in the order
# their first tickets were made (time-ordered ids); `joined` (group_concat(DISTINCT x) is
# SQLite's only: PostgreSQL's aggregate takes a separator)
_SEAT = "pc.name || ' ' || st.row_label || '/' || st.label"
_SEATS = ("(SELECT " + joined("x", ",") + f" FROM (SELECT {_SEAT} AS x FROM tickets k JOIN seats st "
          "ON st.id = k.seat_id JOIN plan_sections pc ON pc.id = st.section_id "
          f"WHERE k.line_id = s.line_id AND k.status = 'sold' GROUP BY {_SEAT} ORDER BY min(k.id)) AS seat_names)")


def _where(text: str, product: str | None, performance: str | None, state: str | None,
           customer: str | None) -> tuple[str, list]:
    """Every word of *text* in the number, holder or customer's number or name; the other
    filters only when given (bound as parameters; an unknown state filters nothing)."""
    where, args = [], []
    for word in text.split():
        like = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(" + " OR ".join(f"{col} LIKE ? ESCAPE '\\'" for col in _TEXT) + ")")
        args.extend([like] * len(_TEXT))
    for column, value in (("s.product_id", product), ("s.customer_id", customer)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if state in STATES:
        where.append("s.state = ?")
        args.append(state)
    if performance:
        where.append("EXISTS (SELECT 1 FROM tickets k WHERE k.line_id = s.line_id AND k.performance_id = ? "
                     "AND k.status = 'sold')")
        args.append(performance)
    return (" WHERE " + " AND ".join(where)) if where else "", args


def subscribers(db: sqlite3.Connection, text: str, *, product: str | None = None, performance: str | None = None,
                state: str | None = None, customer: str | None = None, sort: str | None = None, page: int = 1,
                size: int = PAGE_SIZE) -> Page:
    """Subscriptions of the filter: number, customer, product, tier, seats, state, price."""
    key, desc = choose_sort(tuple(SORTS), DEFAULT_SORT, sort)
    page, size = _bounds(page, size)
    where, args = _where(text, product, performance, state, customer)
    direction = " DESC" if desc else " ASC"
    order = ", ".join(part + direction for part in SORTS[key].split(", ")) + ", s.id" + direction
    total = db.execute(f"SELECT count(*) AS n{_SOURCE}{where}", args).fetchone()["n"]
    rows = db.execute(
        "SELECT s.id, s.number, s.state, s.price_cents, s.created_at, p.name AS product, "
        "coalesce(t.name, '') AS tier, c.last_name || ', ' || c.first_name AS customer, "
        f"coalesce({_SEATS}, '') AS seats{_SOURCE}{where} ORDER BY {order} LIMIT ? OFFSET ?",
        [*args, size, (page - 1) * size]).fetchall()
    for row in rows:
        row["seats"] = ", ".join(row["seats"].split(",")) if row["seats"] else ""
    return Page(rows, total, page, size, key, desc)


def filter_choices(db: sqlite3.Connection) -> dict[str, list[dict]]:
    """The list's product and performance filters: seated products, and their performances."""
    products = db.execute("SELECT id, name FROM subscription_products WHERE kind IN ('ring', 'choice', 'combi') "
                          "ORDER BY name COLLATE NOCASE, id").fetchall()
    performances = db.execute(
        "SELECT DISTINCT f.id, f.title, f.starts_at FROM performances f JOIN subscription_performances x "
        "ON x.performance_id = f.id ORDER BY f.starts_at, f.id").fetchall()
    return {"products": products, "performances": performances}


def cards_of(db: sqlite3.Connection, line_id: str) -> list[dict]:
    """The passes and tickets issued for a subscription (its order line), with their fulfilment."""
    return db.execute(
        "SELECT k.id, k.number, k.kind, k.fulfilment, k.fulfilment_at, k.revoked_at, k.delivery, "
        "coalesce(f.title, '') AS performance, f.starts_at FROM cards k "
        "LEFT JOIN performances f ON f.id = k.product_id WHERE k.order_item_id = ? "
        "ORDER BY k.kind, f.starts_at, k.number", (line_id,)).fetchall()


def order_of(db: sqlite3.Connection, order_id: str) -> dict | None:
    return db.execute("SELECT id, number, created_at, total_cents, delivery, channel FROM orders WHERE id = ?",
                      (order_id,)).fetchone()


def others_in_order(db: sqlite3.Connection, order_id: str, subscription_id: str) -> list[dict]:
    """The party's other subscriptions bought in the same order (a couple side by side)."""
    return db.execute("SELECT id, number, holder_name, state FROM subscriptions WHERE order_id = ? AND id <> ? "
                      "ORDER BY number", (order_id, subscription_id)).fetchall()


def seasons_of(db: sqlite3.Connection, product_id: str) -> list[dict]:
    """The seasons a cancellation may end in: the product's organizer's, from the product's on."""
    return db.execute(
        "SELECT se.id, se.name FROM seasons se JOIN subscription_products p ON p.organizer_id = se.organizer_id "
        "JOIN seasons own ON own.id = p.season_id WHERE p.id = ? AND se.starts_on >= own.starts_on "
        "ORDER BY se.starts_on", (product_id,)).fetchall()


def performances(db: sqlite3.Connection, ids: Collection[str]) -> dict[str, dict]:
    """Title, start, variant (and its name) and plan of each performance, by id."""
    marks = ", ".join("?" * len(ids))
    rows = db.execute(
        "SELECT f.id, f.title, f.starts_at, f.variant_id, v.name AS variant, v.plan_id FROM performances f "
        f"JOIN plan_variants v ON v.id = f.variant_id WHERE f.id IN ({marks}) ORDER BY f.starts_at, f.id",
        list(ids)).fetchall()
    return {r["id"]: r for r in rows}


def variant_names(db: sqlite3.Connection, ids: Collection[str]) -> dict[str, str]:
    marks = ", ".join("?" * len(ids))
    return {r["id"]: r["name"] for r in db.execute(
        f"SELECT id, name FROM plan_variants WHERE id IN ({marks})", list(ids))}


def seat_names(db: sqlite3.Connection, ids: Collection[str]) -> dict[str, dict]:
    """Section, row, label and zone of each seat, by id (for the list of seats per date)."""
    marks = ", ".join("?" * len(ids))
    return {r["id"]: r for r in db.execute(
        "SELECT st.id, pc.name AS section, st.row_label, st.label, st.zone_id, z.name AS zone FROM seats st "
        "JOIN plan_sections pc ON pc.id = st.section_id JOIN price_zones z ON z.id = st.zone_id "
        f"WHERE st.id IN ({marks})", list(ids))}


def zones_of_map(db: sqlite3.Connection, variant_id: str) -> list[dict]:
    """The price zones of a variant's seats (for the best-available zone choice)."""
    return db.execute(
        "SELECT DISTINCT z.id, z.name, z.sort FROM seats st JOIN price_zones z ON z.id = st.zone_id "
        "JOIN plan_variants v ON v.plan_id = st.plan_id WHERE v.id = ? ORDER BY z.sort, z.name",
        (variant_id,)).fetchall()


def tier_prices(db: sqlite3.Connection, product: dict, zones: dict[str, str]) -> list[dict]:
    """Full price and every active tier's price for these seats (*zones*: performance -> zone):
    ring and choice the package price of their one zone, a combi per performance (core pricing)."""
    tiers = db.execute("SELECT id, name FROM discount_tiers WHERE product_id = ? AND active = 1 ORDER BY sort, name",
                       (product["id"],)).fetchall()
    out = []
    for tier in [None, *tiers]:
        tier_id = tier["id"] if tier else None
        try:
            if product["kind"] == "combi":
                cents = pricing.combi_seat_prices(db, product["id"], zones, tier_id)["price_cents"]
            else:
                zone = next(iter(set(zones.values()))) if len(set(zones.values())) == 1 else None
                cents = pricing.subscription_price(db, product["id"], zone, tier_id)["price_cents"]
        except ValidationError:
            continue
        out.append({"id": tier_id or "", "name": tier["name"] if tier else "", "price_cents": cents})
    return out
