"""The change feed (DESIGN §4, pull): what changed at the hub, after an edge's cursor.

Triggers (generated from `REPLICATED`, core/migrations/feed_triggers.py) append `(seq, table,
key)` to `changes` for every write to a replicated table. A pull reads a page of those and
sends each key's *current* row (or its deletion), so a key written ten times while an edge
was away travels once. What a node may see is `core.sync.scope`, the same rule the snapshot
copy follows: e.g. a gate gets no customer records, no operators and no customer ids on
cards; recalls go only to the desk they are addressed to.
"""

from __future__ import annotations

import json
import sqlite3

from core.base.sql import rows_by_json_keys
from core.sync import scope as node_scope
from core.sync.messages import Change
from core.sync.replica import BLOB_COLUMNS, REPLICATED


def visible(table: str, row: dict, scope: node_scope.NodeScope | dict) -> dict | None:
    """The row as this node may see it (`core.sync.scope`), ready for JSON (BLOBs as hex),
    or None when it is outside its scope."""
    row = node_scope.view(scope, table, row)
    if row is not None:
        for column in BLOB_COLUMNS.get(table, ()):
            row[column] = row[column].hex()
    return row


def page(db: sqlite3.Connection, scope: node_scope.NodeScope | dict, after: int,
         limit: int) -> tuple[list[Change], int, bool]:
    """Changes after *after*: (changes, the cursor to continue from, more to come?). Keys of
    tables the node may not see at all are left out, deletions included."""
    scope = node_scope.NodeScope.of(scope)
    rows = db.execute("SELECT seq, tbl, key FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                      (after, limit + 1)).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    latest: dict[tuple[str, str], int] = {}
    for r in rows:
        if node_scope.sees_table(scope, r["tbl"]):
            latest[(r["tbl"], r["key"])] = r["seq"]
    current = _current_rows(db, latest)
    changes = []
    for (table, key), seq in sorted(latest.items(), key=lambda item: item[1]):
        row = current.get((table, key))
        if row is not None:
            row = visible(table, row, scope)
            if row is None:
                continue
        changes.append(Change(seq=seq, table=table, key=json.loads(key), row=row))
    next_after = rows[-1]["seq"] if rows else after
    return changes, next_after, more


def _current_rows(db: sqlite3.Connection, latest: dict[tuple[str, str], int]) -> dict[tuple[str, str], dict]:
    """The current row of every changed key, one query per table and chunk (not per key)."""
    by_table: dict[str, list[str]] = {}
    for table, key in latest:
        if table in REPLICATED:
            by_table.setdefault(table, []).append(key)
    found: dict[tuple[str, str], dict] = {}
    for table, keys in by_table.items():
        pk = REPLICATED[table]
        # join on the key's parts, so each lookup uses the primary key index
        sql = rows_by_json_keys(table, pk, db)
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            for row in db.execute(sql, ("[" + ",".join(chunk) + "]",)):
                found[(table, row.pop("_key"))] = row  # minified JSON, as json_array wrote it
    return found


def head(db: sqlite3.Connection) -> int:
    return db.execute("SELECT coalesce(max(seq), 0) AS seq FROM changes").fetchone()["seq"]
