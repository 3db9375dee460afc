"""This node's identity: every database knows which node it belongs to (hub or an edge).

Number series and (later) signatures and sync ops are owned by a node, so the identity is
written once, when the data folder is initialised, and never changes.
"""

from __future__ import annotations

import sqlite3

from core.base.clock import now_iso
from core.base.ids import uuid7
from core.base.storage import transaction

NODE_DB = "node.sqlite"  # an edge's database; the hub's is hub.sqlite


def this_node(db: sqlite3.Connection) -> dict:
    row = db.execute("SELECT * FROM node").fetchone()
    if row is None:
        raise RuntimeError("this database has no node identity; run `tessera hub init` first")
    return row


def identity(db: sqlite3.Connection) -> dict:
    """This node's id and role, read once per connection: both are written when the folder is
    initialised and never change (its key may: `this_node` reads the whole row each time). A
    restore replaces the folder of a stopped node, never the database under an open connection."""
    session = getattr(db, "raw", db)  # PostgreSQL: the pooled session under the adapter's wrapper
    known = getattr(session, "_tessera_node", None)
    if known is None:
        row = this_node(db)
        known = {"id": row["id"], "role": row["role"]}
        try:
            session._tessera_node = known
        except AttributeError:  # a plain sqlite3 connection (tools, tests): read each time
            pass
    return dict(known)


def node_id(db: sqlite3.Connection) -> str:
    """This node's id (`identity`: read once per connection)."""
    return identity(db)["id"]


def init_node(db: sqlite3.Connection, role: str, name: str, node_id: str | None = None) -> dict:
    """Create the node identity; idempotent for the same role. *node_id* is given when the
    id was chosen before the folder existed (enrollment)."""
    with transaction(db):
        row = db.execute("SELECT * FROM node").fetchone()
        if row is None:
            db.execute("INSERT INTO node (id, role, name, created_at) VALUES (?, ?, ?, ?)",
                       (node_id or uuid7(), role, name, now_iso()))
        elif row["role"] != role:
            raise RuntimeError(f"this data folder belongs to a {row['role']}, not a {role}")
    return this_node(db)
