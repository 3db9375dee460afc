"""Enrollment with one-time codes (E7), the hub's side of the handshake in core/sync/enroll.py.

`tessera hub enroll --node NAME --role ROLE` prints a 39-symbol code: a public code id, a
50-bit secret, 130 bits of the root key's fingerprint and a check symbol. The hub keeps the
code's SPAKE2 password (`verifier`), never sends it, and certifies a device's key only
after the device has proved it knows the code:

1. `start`: the device sends the code id, its node id, its new public key and its SPAKE2
   message. The hub answers with its own SPAKE2 message and its proof (an HMAC over the
   transcript with a key from the SPAKE2 session key), and keeps the handshake in
   `enroll_handshakes` for two minutes. Each start takes one of the code's three attempts:
   the hub's proof would otherwise let a guesser test one secret per start for free.
2. `finish`: the device sends its proof. Right: the key is certified for the code's name,
   role and venues, and the code is used up. Wrong: refused; the attempt stays spent. The
   handshake is gone either way, so a finish cannot be replayed.

Three failed handshakes kill a code; wrong codes are also rate-limited per address and
overall (`rate_limit`, kept in the database: shared by every hub process).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.base.clock import iso, parse_iso
from core.base.errors import Conflict, NotFound, TesseraError, ValidationError
from core.base.storage import transaction
from core.cards import cardcode, keys
from core.sync import enroll
from hub.services.nodes import certify_node, root_public_raw
from hub.services.rate_limits import RateLimit

ROLES = ("cashdesk", "counter", "gate")
TTL = dt.timedelta(hours=24)
HANDSHAKE_TTL = dt.timedelta(minutes=2)
ATTEMPTS = 3
FAILURES_PER_ADDRESS = 5
FAILURES_OVERALL = 30
WINDOW_S = 60.0
RATE_SCOPE = "enroll"
STATES = ("open", "used", "expired", "dead")


class WrongCode(TesseraError):
    """The device's proof did not match: it does not hold the code's secret."""

    slug = "enrollment-refused"
    status = 403
    title = "Enrollment refused"


def _random_symbols(n: int) -> str:
    return "".join(secrets.choice(cardcode.ALPHABET) for _ in range(n))


def _live(row: dict, now: dt.datetime) -> bool:
    return row["used_at"] is None and row["attempts_left"] > 0 and parse_iso(row["expires_at"]) > now


def _free_code_id(db: sqlite3.Connection, now: dt.datetime) -> str:
    """A code id that no live code has (inside the caller's write transaction)."""
    rows = db.execute("SELECT code_id, used_at, attempts_left, expires_at FROM enrollment_codes "
                      "WHERE code_id IS NOT NULL AND used_at IS NULL AND attempts_left > 0").fetchall()
    taken = {row["code_id"] for row in rows if _live(row, now)}
    if len(taken) >= len(cardcode.ALPHABET) ** enroll.CODE_ID_SYMBOLS // 2:
        raise Conflict("too many open enrollment codes; wait until some are used or expire")
    while (code_id := _random_symbols(enroll.CODE_ID_SYMBOLS)) in taken:
        pass
    return code_id


def create_code(db: sqlite3.Connection, *, name: str, role: str, venue_ids: list[str], now: dt.datetime) -> str:
    """A new one-time code, as printed (the secret is in it and nowhere else)."""
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", field="role")
    if not name.strip():
        raise ValidationError("give the node a name", field="name")
    for venue_id in venue_ids:
        if db.execute("SELECT 1 FROM venues WHERE id = ?", (venue_id,)).fetchone() is None:
            raise ValidationError(f"no venue {venue_id}", field="venue_ids")
    secret = _random_symbols(enroll.SECRET_SYMBOLS)
    with transaction(db):
        code_id = _free_code_id(db, now)
        db.execute("INSERT INTO enrollment_codes (code_id, verifier, name, role, venue_ids, created_at, expires_at, "
                   "attempts_left) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (code_id, enroll.password(code_id, secret).hex(), name.strip(), role, json.dumps(venue_ids),
                    iso(now), iso(now + TTL), ATTEMPTS))
    return enroll.EnrollCode(code_id, secret, enroll.fingerprint(root_public_raw(db))).text()


def list_codes(db: sqlite3.Connection, now: dt.datetime) -> list[dict]:
    """Every enrollment code for the office, newest first, without anything secret."""
    rows = db.execute("SELECT id, code_id, name, role, venue_ids, created_at, expires_at, used_at, node_id, "
                      "attempts_left FROM enrollment_codes ORDER BY id DESC").fetchall()
    return [{**row, "venue_ids": json.loads(row["venue_ids"]), "state": _state(row, now)} for row in rows]


def _state(row: dict, now: dt.datetime) -> str:
    if row["used_at"]:
        return "used"
    if parse_iso(row["expires_at"]) <= now:
        return "expired"
    return "open" if row["attempts_left"] > 0 else "dead"


def _code_for(db: sqlite3.Connection, code_id: str, now: dt.datetime) -> dict:
    """The newest code with this id, if it can still be used; a clear error otherwise."""
    row = db.execute("SELECT * FROM enrollment_codes WHERE code_id = ? ORDER BY id DESC LIMIT 1",
                     (code_id,)).fetchone()
    if row is None:
        raise NotFound("unknown enrollment code")
    state = _state(row, now)
    again = "; make a new one with `tessera hub enroll`"
    if state == "used":
        raise Conflict("this enrollment code has been used already" + again)
    if state == "expired":
        raise Conflict("this enrollment code has expired" + again)
    if state == "dead":
        raise Conflict(f"this enrollment code is void after {ATTEMPTS} failed attempts" + again)
    return row


def start(db: sqlite3.Connection, *, hub_certificate: str, code_id: str, node_id: str, public_raw: bytes,
          edge_message: bytes, now: dt.datetime) -> dict:
    """Step 1: take an attempt, answer the device's SPAKE2 message and prove the code."""
    handshake_id = secrets.token_hex(16)
    with transaction(db):
        db.execute("DELETE FROM enroll_handshakes WHERE expires_at < ?", (iso(now),))
        row = _code_for(db, code_id, now)
        if db.execute("SELECT 1 FROM node_certs WHERE node_id = ?", (node_id,)).fetchone():
            raise Conflict("this node id is enrolled already")
        hub_message, session_key = enroll.hub_answer(bytes.fromhex(row["verifier"]), edge_message)
        transcript = enroll.Transcript(handshake_id=handshake_id, code_id=code_id, node_id=node_id,
                                       public_key=public_raw, edge_message=edge_message, hub_message=hub_message,
                                       hub_certificate=hub_certificate, root_public=root_public_raw(db))
        db.execute("UPDATE enrollment_codes SET attempts_left = attempts_left - 1 WHERE id = ?", (row["id"],))
        db.execute("INSERT INTO enroll_handshakes (id, code, node_id, public_key, edge_confirm, created_at, "
                   "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (handshake_id, row["id"], node_id, public_raw.hex(),
                    enroll.edge_confirmation(session_key, transcript).hex(), iso(now), iso(now + HANDSHAKE_TTL)))
    return {"handshake_id": handshake_id, "hub_message": hub_message, "attempts_left": row["attempts_left"] - 1,
            "hub_confirm": enroll.hub_confirmation(session_key, transcript)}


def finish(db: sqlite3.Connection, root: Ed25519PrivateKey, *, handshake_id: str, edge_confirm: bytes,
           now: dt.datetime) -> dict:
    """Step 2: check the device's proof; certify its key. The handshake is used up either way."""
    with transaction(db):
        shake = db.execute("SELECT * FROM enroll_handshakes WHERE id = ?", (handshake_id,)).fetchone()
        if shake is None:
            raise NotFound("no such enrollment handshake (finished already, or never started)")
        db.execute("DELETE FROM enroll_handshakes WHERE id = ?", (handshake_id,))
    if parse_iso(shake["expires_at"]) < now:
        raise Conflict("this enrollment handshake took too long; start again")
    code = db.execute("SELECT * FROM enrollment_codes WHERE id = ?", (shake["code"],)).fetchone()
    if not enroll.same(bytes.fromhex(shake["edge_confirm"]), edge_confirm):
        left = code["attempts_left"]
        raise WrongCode(f"the device's proof does not match this code ({left} attempt{'s' * (left != 1)} left)")
    return _certify(db, root, code, shake["node_id"], bytes.fromhex(shake["public_key"]), now)


def _certify(db: sqlite3.Connection, root: Ed25519PrivateKey, code: dict, node_id: str, public_raw: bytes,
             now: dt.datetime) -> dict:
    with transaction(db):
        used = db.execute("UPDATE enrollment_codes SET used_at = ?, node_id = ? WHERE id = ? AND used_at IS NULL",
                          (iso(now), node_id, code["id"])).rowcount
        if not used:
            raise Conflict("this enrollment code has been used already; make a new one with `tessera hub enroll`")
        if db.execute("SELECT 1 FROM node_certs WHERE node_id = ?", (node_id,)).fetchone():
            raise Conflict("this node id is enrolled already")
        record = certify_node(db, root, node_id=node_id, name=code["name"], role=code["role"], public_raw=public_raw,
                              now=now, venue_ids=json.loads(code["venue_ids"]))  # what the node may issue for
        db.execute("INSERT INTO node_scopes (node_id, name, role, venue_ids, enrolled_at) VALUES (?, ?, ?, ?, ?)",
                   (node_id, code["name"], code["role"], code["venue_ids"], iso(now)))
    return {"node_id": node_id, "name": code["name"], "role": code["role"],
            "venue_ids": json.loads(code["venue_ids"]), "certificate": record, "key_id": keys.key_id(public_raw)}


def rate_limit(clock: Callable[[], float] = time.time) -> RateLimit:
    """Failed attempts in the last minute, per address and overall, counted in the database
    (`hub/services/rate_limits.py`): every hub process on the database shares them, so N
    processes do not give N times the guesses."""
    return RateLimit(RATE_SCOPE, FAILURES_PER_ADDRESS, WINDOW_S, overall=FAILURES_OVERALL, clock=clock)
