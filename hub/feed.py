"""The change feed (DESIGN §4, pull): what changed at the hub, after an edge's cursor.

Triggers (migration 0004) append `(seq, table, key)` to `changes` for every write to a
replicated table. A pull reads a page of those and sends each key's *current* row (or its
deletion), so a key written ten times while an edge was away travels once. What a node may
see is its scope: a gate gets no customer records and no customer ids on cards; recalls go
only to the desk they are addressed to.
"""

from __future__ import annotations

import json
import sqlite3

from core.replica import BLOB_COLUMNS, REPLICATED, where_key
from core.sync_messages import Change


def visible(table: str, row: dict, scope: dict) -> dict | None:
    """The row as this node may see it, or None when it is outside its scope."""
    role = scope["role"]
    for column in BLOB_COLUMNS.get(table, ()):
        row = {**row, column: row[column].hex()}
    if table == "customers" and role == "gate":
        return None
    if table == "cards" and role == "gate" and row.get("customer_id"):
        return {**row, "customer_id": None}
    if table == "recalls" and row["node_id"] != scope["node_id"]:
        return None
    return row


def page(db: sqlite3.Connection, scope: dict, after: int, limit: int) -> tuple[list[Change], int, bool]:
    """Changes after *after*: (changes, the cursor to continue from, more to come?)."""
    rows = db.execute("SELECT seq, tbl, key FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                      (after, limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    latest: dict[tuple[str, str], int] = {}
    for r in rows:
        latest[(r["tbl"], r["key"])] = r["seq"]
    changes = []
    for (table, key), seq in sorted(latest.items(), key=lambda item: item[1]):
        pk = REPLICATED.get(table)
        if pk is None:
            continue
        values = json.loads(key)
        row = db.execute(f"SELECT * FROM {table} WHERE {where_key(pk)}", values).fetchone()
        if row is not None:
            row = visible(table, row, scope)
            if row is None:
                continue
        changes.append(Change(seq=seq, table=table, key=values, row=row))
    next_after = rows[-1]["seq"] if rows else after
    return changes, next_after, more


def head(db: sqlite3.Connection) -> int:
    return db.execute("SELECT coalesce(max(seq), 0) AS seq FROM changes").fetchone()["seq"]
