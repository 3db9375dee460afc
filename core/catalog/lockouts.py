"""Lockouts after repeated failed logins: one rule for desk PINs and office passwords.

After MAX_FAILURES failures in a row, whoever is logging in (an operator at a desk, a staff
member at the office) is locked at that *screen* for FIRST_LOCK, doubling with every further
lockout up to MAX_LOCK; a success clears the count. Kept per node in the node-local
`login_failures` table (migration 0009), so a lockout at one desk or screen never locks the
same person out elsewhere for long. Each failure is read and written in one transaction:
attempts checked at the same time are all counted.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass

from core.base.clock import iso, parse_iso
from core.base.storage import transaction

MAX_FAILURES = 5
FIRST_LOCK = dt.timedelta(seconds=30)
MAX_LOCK = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Failure:
    """What one more failure did: the failures counted so far, and the end of the lock it
    started (None while tries are left)."""

    count: int
    locked_until: str | None
    lock: dt.timedelta | None


def locked_until(db: sqlite3.Connection, who: str, screen: str, now: dt.datetime) -> str | None:
    """The end of the lock on *who* at *screen*, if one holds at *now*."""
    row = db.execute("SELECT locked_until FROM login_failures WHERE operator_id = ? AND screen = ?",
                     (who, screen)).fetchone()
    if row and row["locked_until"] and parse_iso(row["locked_until"]) > now:
        return row["locked_until"]
    return None


def count_failure(db: sqlite3.Connection, who: str, screen: str, now: dt.datetime) -> Failure:
    """Count one failure; lock once MAX_FAILURES are reached (the count starts again)."""
    with transaction(db):
        row = db.execute("SELECT failures, lockouts FROM login_failures WHERE operator_id = ? AND screen = ?",
                         (who, screen)).fetchone()
        count = (row["failures"] if row else 0) + 1
        lockouts = row["lockouts"] if row else 0
        lock = min(FIRST_LOCK * 2 ** lockouts, MAX_LOCK) if count >= MAX_FAILURES else None
        until = iso(now + lock) if lock else None
        db.execute("INSERT INTO login_failures (operator_id, screen, failures, lockouts, locked_until) "
                   "VALUES (?, ?, ?, ?, ?) ON CONFLICT (operator_id, screen) DO UPDATE SET "
                   "failures = excluded.failures, lockouts = excluded.lockouts, locked_until = excluded.locked_until",
                   (who, screen, 0 if lock else count, lockouts + 1 if lock else lockouts, until))
    return Failure(count=count, locked_until=until, lock=lock)


def clear(db: sqlite3.Connection, who: str, screen: str) -> None:
    """A success (or a new password): the count starts from nothing."""
    with transaction(db):
        db.execute("DELETE FROM login_failures WHERE operator_id = ? AND screen = ?", (who, screen))
