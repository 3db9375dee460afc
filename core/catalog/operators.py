"""Cash-desk operators: who is at the till (A4). Every sale records its operator.

Operators are managed at the hub and replicate to desks and counters (never to gates), so
a cashier logs in at any desk, also offline. The PIN itself never leaves the hub: it keeps
the slow hash, and each desk gets only a verifier made with its own node key
(`core/catalog/pins.py`), so a copied desk database confirms no PIN. A PIN has few digits,
so the lockout is what protects it where it is typed: after MAX_FAILURES
wrong PINs in a row the operator is locked, per node (the node-local `login_failures`
table) and per *screen* (the address the attempts came from), for a short time that
doubles with every further lockout, up to MAX_LOCK. So whoever can reach a desk can lock
only their own screen out, not the cashier at the till, and guessing slows down fast.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Annotated

from msgspec import Meta

from core.base.clock import LOCAL_TZ, iso, parse_iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import uuid7
from core.base.sql import integrity_problem
from core.base.storage import transaction
from core.catalog import lockouts, pins
from core.catalog.common import Body, Name

MAX_FAILURES, FIRST_LOCK, MAX_LOCK = lockouts.MAX_FAILURES, lockouts.FIRST_LOCK, lockouts.MAX_LOCK
LOCAL_SCREEN = "local"
Pin = Annotated[str, Meta(pattern=r"^\d{4,8}$", description="4 to 8 digits")]


class OperatorIn(Body, kw_only=True):
    name: Name
    pin: Pin
    active: bool = True


class OperatorChange(Body, kw_only=True):
    """A change (PUT): the PIN only if it changes, so an office can deactivate or rename an
    operator without knowing or resetting their PIN."""

    name: Name
    pin: Pin | None = None
    active: bool = True


class LoginRefused(Conflict):
    """Wrong PIN, unknown or inactive operator, or locked out."""

    slug = "login-refused"
    status = 401
    title = "Login refused"


def create(db: sqlite3.Connection, data: OperatorIn, now: dt.datetime) -> dict:
    """A new operator; the PIN's slow hash stays on this (hub) database, desks get verifiers."""
    pin_hash = pins.slow_hash(data.pin)  # scrypt is slow: not while holding the write lock
    with transaction(db):
        if db.execute("SELECT 1 FROM operators WHERE name = ?", (data.name,)).fetchone():
            raise _name_taken(data.name)
        row = db.execute(
            "INSERT INTO operators (id, name, active, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
            "RETURNING *", (uuid7(), data.name, int(data.active), iso(now), iso(now))).fetchone()
        pins.set_pin(db, row["id"], pin_hash, iso(now))
    return public(row)


def update(db: sqlite3.Connection, operator_id: str, data: OperatorIn | OperatorChange, now: dt.datetime) -> dict:
    """A new name, PIN (if given) or active flag. An unknown operator is NotFound; a name another
    operator has is a Conflict, also when another writer took it since the check (the
    database's unique constraint)."""
    # scrypt is slow: not while holding the write lock
    pin_hash = pins.slow_hash(data.pin) if data.pin is not None else None
    try:
        with transaction(db):
            if not db.execute("SELECT 1 FROM operators WHERE id = ?", (operator_id,)).fetchone():
                raise NotFound(f"operator {operator_id} does not exist")
            if db.execute("SELECT 1 FROM operators WHERE name = ? AND id <> ?", (data.name, operator_id)).fetchone():
                raise _name_taken(data.name)
            row = db.execute("UPDATE operators SET name = ?, active = ?, updated_at = ? WHERE id = ? "
                             "RETURNING *", (data.name, int(data.active), iso(now), operator_id)).fetchone()
            if pin_hash is not None:
                pins.set_pin(db, operator_id, pin_hash, iso(now))
    except sqlite3.IntegrityError as exc:
        if integrity_problem(exc).kind == "unique":
            raise _name_taken(data.name) from None
        raise
    return public(row)


def _name_taken(name: str) -> Conflict:
    return Conflict(f"an operator named {name!r} exists already", field="name")


def public(row: dict) -> dict:
    return {k: row[k] for k in ("id", "name", "active", "created_at", "updated_at")}


def listed(db: sqlite3.Connection, *, active_only: bool = False) -> list[dict]:
    where = "WHERE active = 1" if active_only else ""
    return [public(r) for r in db.execute(f"SELECT * FROM operators {where} ORDER BY name COLLATE NOCASE")]


def login(db: sqlite3.Connection, operator_id: str, pin: str, now: dt.datetime, screen: str = LOCAL_SCREEN, *,
          node_key: pins.NodeKey) -> dict:
    """The operator, if *pin* is right and they are not locked out at *screen*; counts failures.
    Only a desk or counter can tell: the PIN is checked against this node's own verifier
    with *node_key* (its signing key, `core.cards.cards.load_signer`)."""
    if not isinstance(pin, str) or not pin.isdigit() or len(pin) > 32:
        raise ValidationError("the PIN is digits only", field="pin")
    row = db.execute("SELECT * FROM operators WHERE id = ?", (operator_id,)).fetchone()
    if row is None or not row["active"]:
        raise LoginRefused("unknown or inactive operator", detail_de="Unbekannte oder deaktivierte Bedienung")
    screen = screen[:64]
    locked = lockouts.locked_until(db, operator_id, screen, now)
    if locked:
        raise LoginRefused(f"too many wrong PINs: locked until {locked}", locked_until=locked,
                           detail_de=f"Zu oft falsche PIN: gesperrt bis {_local(locked)} Uhr")
    matches = pins.check(db, operator_id, pin, node_key)
    if matches is None:
        raise LoginRefused("this node has no PIN for this operator yet: it comes with the next sync from the hub",
                           detail_de="Diese Kasse kennt die PIN noch nicht: sie kommt mit dem nächsten Abgleich")
    if matches:
        lockouts.clear(db, operator_id, screen)
        return public(row)
    failure = lockouts.count_failure(db, operator_id, screen, now)
    if failure.lock:
        wait = _duration(failure.lock)
        raise LoginRefused(f"wrong PIN {MAX_FAILURES} times: locked for {wait[1]}", locked_until=failure.locked_until,
                           detail_de=f"{MAX_FAILURES}-mal falsche PIN: für {wait[0]} gesperrt")
    count = failure.count
    left = MAX_FAILURES - count
    raise LoginRefused(f"wrong PIN ({left} tries left)", tries_left=left,
                       detail_de=f"Falsche PIN (noch {left} {'Versuch' if left == 1 else 'Versuche'})")


def _duration(span: dt.timedelta) -> tuple[str, str]:
    """(German, English) words for a lockout."""
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds} Sekunden", f"{seconds} seconds"
    return f"{seconds // 60} Minuten", f"{seconds // 60} minutes"


def _local(moment: str) -> str:
    return parse_iso(moment).astimezone(LOCAL_TZ).strftime("%H:%M")
