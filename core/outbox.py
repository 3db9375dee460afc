"""The outbox: every state change on a node, as an operation for the hub (DESIGN §4).

`append()` must run inside the transaction of the change it describes, so the change and
its operation are committed together or not at all: after a power cut either both exist
or neither does. The sync client (edge) pushes rows in `node_seq` order and marks them
pushed; whoever prunes pushed rows must keep the newest, because node_seq is max + 1.
"""

from __future__ import annotations

import sqlite3
import time
from functools import cache
from pathlib import Path

import msgspec

from core.clock import iso, utcnow
from core.ids import uuid7


@cache
def boot_id() -> str:
    """Linux's id of this boot: monotonic times are only comparable within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def append(db: sqlite3.Connection, kind: str, body: dict, *, wall_time: str | None = None) -> int:
    """Queue operation *kind* with *body*; returns its node_seq."""
    if not db.in_transaction:
        raise RuntimeError("outbox.append() must run inside the transaction of the change it records")
    row = db.execute(
        "INSERT INTO outbox (id, kind, body, wall_time, mono_ns, boot_id) VALUES (?, ?, ?, ?, ?, ?) "
        "RETURNING node_seq",
        (uuid7(), kind, msgspec.json.encode(body).decode(),
         wall_time or iso(utcnow()), time.monotonic_ns(), boot_id())).fetchone()
    return row["node_seq"]


def pending(db: sqlite3.Connection) -> int:
    return db.execute("SELECT count(*) AS n FROM outbox WHERE pushed_at IS NULL").fetchone()["n"]
