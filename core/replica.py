"""Replicas: which tables the hub shares with nodes, and how a node applies them.

`REPLICATED` is the one list: the hub's change-feed triggers (migration 0004) cover exactly
these tables, a pull sends their rows, and `apply_changes` writes them on the node. A node
set up locally from a hub folder (`copy_snapshot`) receives the same tables at once.
"""

from __future__ import annotations

import sqlite3

from core.storage import transaction

# Replicated tables and their primary keys, in creation order (parents before children).
# Migrations 0004 and 0006 hold one trigger set per table listed here; tests/test_sync_feed.py checks.
REPLICATED: dict[str, tuple[str, ...]] = {
    "organizers": ("id",), "venues": ("id",), "price_zones": ("id",), "seating_plans": ("id",),
    "plan_sections": ("id",), "plan_variants": ("id",), "seats": ("id",),
    "variant_removed_seats": ("variant_id", "seat_id"), "seasons": ("id",), "performances": ("id",),
    "performance_prices": ("performance_id", "zone_id"), "annual_products": ("id",),
    "annual_product_venues": ("product_id", "venue_id"), "subscription_products": ("id",),
    "subscription_performances": ("product_id", "performance_id"),
    "subscription_zone_prices": ("product_id", "zone_id"), "combi_prices": ("product_id", "performance_id", "zone_id"),
    "sale_windows": ("product_id", "channel", "phase"), "discount_tiers": ("id",), "customers": ("id",),
    "trust_roots": ("key_id",), "node_certs": ("key_id",), "node_revocations": ("key_id",),
    "card_products": ("code",), "cards": ("id",), "entries": ("card_id", "at", "id"),
    "seat_pools": ("performance_id", "seat_id"), "recalls": ("id",),
    "voucher_redemptions": ("voucher_id",), "operators": ("id",),
}


# BLOB columns travel as hex in JSON and are turned back into bytes by the edge.
BLOB_COLUMNS: dict[str, tuple[str, ...]] = {"trust_roots": ("public_key",), "node_certs": ("public_key",)}


def where_key(pk: tuple[str, ...]) -> str:
    return " AND ".join(f"{c} = ?" for c in pk)


def apply_changes(db: sqlite3.Connection, changes: list, cursor_sql: str, cursor_args: tuple) -> int:
    """Node: apply one page of the hub's changes and move the cursor, in one transaction.
    References are not checked row by row: a page may carry a child before its parent, and
    the hub, which is authoritative, only holds consistent data."""
    db.execute("PRAGMA foreign_keys = OFF")
    # REPLACE deletes the old row; only with recursive triggers does that delete reach the
    # node's own triggers (the customer search index), which would otherwise keep old names
    db.execute("PRAGMA recursive_triggers = ON")
    try:
        with transaction(db):
            for (table, deleted, columns), rows in _runs(changes):
                pk = REPLICATED[table]
                if deleted:
                    db.executemany(f"DELETE FROM {table} WHERE {where_key(pk)}", rows)
                else:
                    db.executemany(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "
                                   f"VALUES ({', '.join('?' * len(columns))})", rows)
            db.execute(cursor_sql, cursor_args)
    finally:
        db.execute("PRAGMA recursive_triggers = OFF")
        db.execute("PRAGMA foreign_keys = ON")
    return len(changes)


def _runs(changes: list):
    """Consecutive changes of one table and one shape, as parameter rows for executemany:
    the order of the feed is kept, the statements are batched."""
    run_key, rows = None, []
    for change in changes:
        if change.table not in REPLICATED:
            continue
        if change.row is None:
            key, values = (change.table, True, None), tuple(change.key)
        else:
            row = dict(change.row)
            for column in BLOB_COLUMNS.get(change.table, ()):
                row[column] = bytes.fromhex(row[column])
            key, values = (change.table, False, tuple(row)), tuple(row.values())
        if key != run_key and rows:
            yield run_key, rows
            rows = []
        run_key = key
        rows.append(values)
    if rows:
        yield run_key, rows


# Never copied to a node: its own identity, counters, tokens and queue, and search indexes.
LOCAL_ONLY = {"node", "number_series", "api_tokens", "outbox", "time_floor", "sqlite_sequence", "mail_queue",
              "orders", "order_items", "idempotency_keys", "personalization_links", "card_photos",
              "login_failures", "print_jobs", "print_batches"}


def copy_snapshot(source: sqlite3.Connection, target: sqlite3.Connection, *, with_customers: bool) -> dict[str, int]:
    """Copy every replicated table from *source* into *target* (replacing rows by key).
    A gate gets no customer records (data minimisation): only card holder names."""
    tables = replicated_tables(source)
    counts: dict[str, int] = {}
    # Rows arrive in table order, not reference order; the references are checked as a
    # whole before commit instead (REPLACE refuses to run with deferred violations pending).
    target.execute("PRAGMA foreign_keys = OFF")
    try:
        with transaction(target):
            _copy(source, target, tables, counts, with_customers)
            broken = target.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise ValueError(f"snapshot breaks {len(broken)} references, first: {broken[0]}")
    finally:
        target.execute("PRAGMA foreign_keys = ON")
    return counts


def replicated_tables(db: sqlite3.Connection) -> list[str]:
    """Tables in creation order, without local-only ones and without full-text indexes
    (virtual tables and their shadow tables, which the target's triggers fill itself)."""
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY rowid").fetchall()
    virtual = [r["name"] for r in rows if (r["sql"] or "").upper().startswith("CREATE VIRTUAL TABLE")]
    return [r["name"] for r in rows if r["name"] not in LOCAL_ONLY
            and not any(r["name"] == v or r["name"].startswith(v + "_") for v in virtual)]


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, tables: list[str], counts: dict[str, int],
          with_customers: bool) -> None:
    for table in tables:
        if table in LOCAL_ONLY or (table in ("customers", "operators") and not with_customers):
            continue
        rows = source.execute(f"SELECT * FROM {table}").fetchall()
        if not rows:
            continue
        if table == "cards" and not with_customers:
            rows = [{**r, "customer_id": None} for r in rows]
        columns = list(rows[0])
        target.executemany(
            f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [tuple(r.values()) for r in rows])
        counts[table] = len(rows)
