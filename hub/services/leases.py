"""Work that one hub process at a time may do, claimed through the database (`work_leases`,
migration 0031).

Why: several `tessera hub serve` processes may run on one PostgreSQL database, each with the
same background workers. Work whose rows are claimed one by one under the write lock (the
mail queue, `hub/services/mail.py`) needs nothing more; work that reads what is open, spends
seconds outside the database and only then records it (a print batch: render, hand to the
printer, mark printed) would be done twice by two processes looking at once. A lease is a
row naming its holder: taking it is a read and an upsert in one write transaction (the write
lock: one process wins), giving it back deletes it. A holder that dies (kill -9, power) cannot
give it back, so a lease also expires: pick a time far longer than the work takes, since
after it another process may start the same work.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sqlite3
import uuid

from core.base.clock import iso, parse_iso
from core.base.storage import transaction


def holder_id() -> str:
    """This process's name as a lease holder: host, pid and a random part (a pid is reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def take(db: sqlite3.Connection, name: str, holder: str, now: dt.datetime, ttl: dt.timedelta) -> bool:
    """Claim *name* for *holder* until *now* + *ttl*; False while another holder's lease runs.
    Taking a lease one holds already extends it."""
    with transaction(db):
        row = db.execute("SELECT holder, expires_at FROM work_leases WHERE name = ?", (name,)).fetchone()
        if row is not None and row["holder"] != holder and parse_iso(row["expires_at"]) > now:
            return False
        db.execute("INSERT INTO work_leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) "
                   "DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
                   (name, holder, iso(now + ttl)))
    return True


def give_back(db: sqlite3.Connection, name: str, holder: str) -> None:
    """End *holder*'s lease of *name* (nothing if another holder has it by now)."""
    with transaction(db):
        db.execute("DELETE FROM work_leases WHERE name = ? AND holder = ?", (name, holder))


def holder(db: sqlite3.Connection, name: str, now: dt.datetime) -> str | None:
    """Who holds *name* now (None: nobody, or the lease expired)."""
    row = db.execute("SELECT holder, expires_at FROM work_leases WHERE name = ?", (name,)).fetchone()
    return row["holder"] if row is not None and parse_iso(row["expires_at"]) > now else None
