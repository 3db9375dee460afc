"""The outbox: every state change on a node, as an operation for the hub (DESIGN §4).

`record()` is the one way core records an operation. It must run inside the transaction of
the change it describes, so the change and its operation are committed together or not at
all: after a power cut either both exist or neither does. On the hub it records nothing:
the hub is where the change feed starts, so its own changes need no operation. The sync
client (edge) pushes rows in `node_seq` order and marks them pushed; whoever prunes pushed
rows must keep the newest, because node_seq is max + 1.

What an operation's body may hold, who may send it and what the hub re-derives from it is
the registry in `core/sync/ops.py`; bodies are msgspec structs, so what is recorded is
exactly the shape the hub decodes (strict, unknown fields refused).
"""

from __future__ import annotations

import sqlite3
import time
import weakref
from functools import cache
from pathlib import Path

import msgspec

from core.base.clock import iso, utcnow
from core.base.ids import uuid7

_encode = msgspec.json.Encoder().encode
# The role of the node behind each open connection: it never changes (core/base/node.py), and a
# gate records an op per scan, so it is read once per connection, not once per op.
_roles: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@cache
def boot_id() -> str:
    """Linux's id of this boot: monotonic times are only comparable within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def node_role(db: sqlite3.Connection) -> str:
    try:
        return _roles[db]
    except (KeyError, TypeError):
        pass
    row = db.execute("SELECT role FROM node").fetchone()
    if row is None:
        raise RuntimeError("this database has no node identity")
    try:
        _roles[db] = row["role"]
    except TypeError:  # a plain sqlite3.Connection cannot be weakly referenced: ask each time
        pass
    return row["role"]


def record(db: sqlite3.Connection, kind: str, body: msgspec.Struct, *, wall_time: str | None = None) -> int | None:
    """Queue operation *kind* with *body* on an edge; returns its node_seq (None on the hub)."""
    if not db.in_transaction:
        raise RuntimeError("outbox.record() must run inside the transaction of the change it records")
    if node_role(db) == "hub":
        return None
    if not isinstance(body, msgspec.Struct):
        raise TypeError(f"an op body is a msgspec struct from core/sync/ops.py, not {type(body).__name__}")
    row = db.execute(
        "INSERT INTO outbox (id, kind, body, wall_time, mono_ns, boot_id) VALUES (?, ?, ?, ?, ?, ?) "
        "RETURNING node_seq",
        (uuid7(), kind, _encode(body).decode(), wall_time or iso(utcnow()), time.monotonic_ns(), boot_id())).fetchone()
    return row["node_seq"]


def pending(db: sqlite3.Connection) -> int:
    return db.execute("SELECT count(*) AS n FROM outbox WHERE pushed_at IS NULL").fetchone()["n"]
