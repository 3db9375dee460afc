"""Replica snapshots: copy what a node needs from one database into another.

The stand-in for pull sync until the sync issue lands: a node set up from a hub folder on
the same machine receives trust records, catalog, cards and entries in one transaction.
"""

from __future__ import annotations

import sqlite3

from core.storage import transaction

# Never copied to a node: its own identity, counters, tokens and queue, and search indexes.
LOCAL_ONLY = {"node", "number_series", "api_tokens", "outbox", "time_floor", "sqlite_sequence"}


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
        if table in LOCAL_ONLY or (table == "customers" and not with_customers):
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
