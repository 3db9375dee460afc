"""Replicas: how a node applies the hub's tables, and the snapshot copy of them.

`REPLICATED` (core/migrations/feed_triggers.py, re-exported here) is the one list of tables the
hub shares with nodes: the hub's change-feed triggers are generated from it, a pull sends
their rows, and `apply_changes` writes them on the node. A node set up locally from a hub
folder (`copy_snapshot`) receives the same tables at once. What a node may see of them, in
the feed and in the snapshot alike, is `core.sync.scope`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping

from core.base.sql import replace_rows
from core.base.storage import transaction
from core.migrations.feed_triggers import NEVER_REPLICATED, REPLICATED
from core.sync import scope as node_scope

__all__ = ["BLOB_COLUMNS", "REPLICATED", "apply_changes", "copy_snapshot", "where_key"]
log = logging.getLogger("tessera.sync")


# BLOB columns travel as hex in JSON and are turned back into bytes by the edge.
BLOB_COLUMNS: dict[str, tuple[str, ...]] = {"node_certs": ("public_key",)}


def where_key(pk: tuple[str, ...]) -> str:
    return " AND ".join(f"{c} = ?" for c in pk)


def apply_changes(db: sqlite3.Connection, changes: list, cursor_sql: str, cursor_args: tuple) -> int:
    """Node: apply one page of the hub's changes and move the cursor, in one transaction.
    References are not checked row by row: a page may carry a child before its parent, and
    the hub, which is authoritative, only holds consistent data. A change of a table that is
    not replicated is ignored; so is one of `trust_roots` (the pinned root), whatever sent it."""
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
                    db.executemany(replace_rows(table, columns), rows)
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
        if change.table not in REPLICATED or change.table in NEVER_REPLICATED:
            if change.table in NEVER_REPLICATED:  # the pinned root is set at enrollment, never by a page
                log.warning("ignored a change of %s in a pulled page: the pinned root never comes through "
                            "the feed", change.table)
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


def copy_snapshot(source: sqlite3.Connection, target: sqlite3.Connection,
                  scope: node_scope.NodeScope | Mapping) -> dict[str, int]:
    """Copy what the node *scope* may see of the replicated tables from *source* (a hub)
    into *target* (replacing rows by key): the same tables and rows, in the same form, as the
    change feed sends it (`core.sync.scope`). Returns the rows copied per table."""
    scope = node_scope.NodeScope.of(scope)
    counts: dict[str, int] = {}
    # Rows arrive in table order, not reference order; the references are checked as a
    # whole before commit instead (REPLACE refuses to run with deferred violations pending).
    target.execute("PRAGMA foreign_keys = OFF")
    # as in apply_changes: REPLACE's delete must reach the node's own triggers (search index)
    target.execute("PRAGMA recursive_triggers = ON")
    try:
        with transaction(target):
            for table in node_scope.tables(scope):
                rows = node_scope.visible_rows(scope, table, source.execute(f"SELECT * FROM {table}"))
                if not rows:
                    continue
                columns = list(rows[0])
                target.executemany(replace_rows(table, columns), [tuple(r.values()) for r in rows])
                counts[table] = len(rows)
            broken = target.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise ValueError(f"snapshot breaks {len(broken)} references, first: {broken[0]}")
    finally:
        target.execute("PRAGMA recursive_triggers = OFF")
        target.execute("PRAGMA foreign_keys = ON")
    return counts
