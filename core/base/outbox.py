"""The outbox: every state change on a node, as an operation for the hub (DESIGN §4).

`record()` is the one way core records an operation. It must run inside the transaction of
the change it describes, so the change and its operation are committed together or not at
all: after a power cut either both exist or neither does. On the hub it records nothing:
the hub is where the change feed starts, so its own changes need no operation. The sync
client (edge) pushes rows in `node_seq` order and marks them pushed (acknowledged). An
acknowledged op is kept until the hub says that its latest backup holds it (`durable_through`,
docs/sync.md "Backups and restore"): a hub restored from that backup has it, and a hub restored
from an older one gets it pushed again (`start_over`). `prune` then forgets it, but never the
newest row (node_seq is max + 1: a number is never handed out twice), never a refused op (the
node's record of a conflict) and never what the caller still reads (a gate's recent entries).

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


def prune(db: sqlite3.Connection, durable_through: int, *, keep_newest: int = 1,
          keep_kinds: tuple[str, ...] = ()) -> int:
    """Forget acknowledged ops up to *durable_through* (the hub's latest backup holds them);
    keep the newest *keep_newest* rows (at least 1), refused ops and ops of *keep_kinds*.
    Returns how many rows were deleted."""
    kinds = ", ".join("?" * len(keep_kinds))
    cursor = db.execute(
        "DELETE FROM outbox WHERE node_seq <= ? AND pushed_at IS NOT NULL "
        "AND coalesce(result, '') NOT LIKE 'rejected%' "
        + (f"AND kind NOT IN ({kinds}) " if keep_kinds else "")
        + "AND node_seq < (SELECT coalesce(min(node_seq), 0) FROM "
          "(SELECT node_seq FROM outbox ORDER BY node_seq DESC LIMIT ?))",
        (durable_through, *keep_kinds, max(1, keep_newest)))
    return cursor.rowcount


def start_over(db: sqlite3.Connection) -> tuple[int, int]:
    """The hub was restored from a backup and may lack ops it acknowledged: mark every kept op
    as not pushed yet, so the next push sends them all again in node_seq order (the hub answers
    those it still has as duplicates). Returns (ops kept, first kept node_seq or 0).
    Runs in the caller's transaction, with the cursor reset that goes with it."""
    db.execute("UPDATE sync_state SET pushed_seq = 0")
    row = db.execute("SELECT count(*) AS n, coalesce(min(node_seq), 0) AS first FROM outbox").fetchone()
    return row["n"], row["first"]


def missing_since(db: sqlite3.Connection, durable_through: int, pushed_seq: int) -> int:
    """How many acknowledged ops after *durable_through* (what a restored hub holds of this node)
    up to *pushed_seq* this node no longer has: ops lost for good (the hub was restored from an
    older backup than the one these ops were forgotten for)."""
    if pushed_seq <= durable_through:
        return 0
    kept = db.execute("SELECT count(*) AS n FROM outbox WHERE node_seq > ? AND node_seq <= ?",
                      (durable_through, pushed_seq)).fetchone()["n"]
    return pushed_seq - durable_through - kept
