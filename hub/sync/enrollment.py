"""Enrollment with one-time codes (E7).

`tessera hub enroll --node NAME --role ROLE` prints a code like `7KQ2M-X9D4A-3GH8PW0T`:
10 secret symbols (50 bits, stored only hashed, single use, expiring) and 8 symbols of the
organizer root key's fingerprint. The edge sends the secret and its new public key; the hub
certifies the key for the role and name the code was made for. The edge checks that the
root key in the answer has the fingerprint it was given on paper, so even the very first
contact cannot be answered by a rogue hub: the root is pinned from the code, not from the
network. Wrong codes are rate-limited per address and overall.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import sqlite3
import time
from collections import deque

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.base.clock import iso, parse_iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.storage import transaction
from core.cards import cardcode, keys
from core.sync import enroll
from hub.services.nodes import certify_node

ROLES = ("cashdesk", "counter", "gate")
TTL = dt.timedelta(hours=24)
FAILURES_PER_ADDRESS = 5
FAILURES_OVERALL = 30
WINDOW_S = 60.0


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_code(db: sqlite3.Connection, *, name: str, role: str, venue_ids: list[str], now: dt.datetime) -> str:
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", field="role")
    if not name.strip():
        raise ValidationError("give the node a name", field="name")
    for venue_id in venue_ids:
        if db.execute("SELECT 1 FROM venues WHERE id = ?", (venue_id,)).fetchone() is None:
            raise ValidationError(f"no venue {venue_id}", field="venue_ids")
    secret = "".join(secrets.choice(cardcode.ALPHABET) for _ in range(enroll.SECRET_SYMBOLS))
    root = db.execute("SELECT public_key FROM trust_roots LIMIT 1").fetchone()["public_key"]
    with transaction(db):
        db.execute("INSERT INTO enrollment_codes (code_hash, name, role, venue_ids, created_at, expires_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (_hash(secret), name.strip(), role, json.dumps(venue_ids), iso(now),
                                                 iso(now + TTL)))
    return enroll.join(secret, enroll.fingerprint(root))


def redeem(db: sqlite3.Connection, root: Ed25519PrivateKey, *, code: str, node_id: str, public_raw: bytes,
           now: dt.datetime) -> dict:
    """Use a code: certify the node's key; returns its scope row and certificate."""
    secret, fp = enroll.split(code)
    if fp != enroll.fingerprint(keys.public_bytes(root)):
        raise NotFound("this code was made by another organizer's hub")
    row = db.execute("SELECT * FROM enrollment_codes WHERE code_hash = ?", (_hash(secret),)).fetchone()
    if row is None:
        raise NotFound("unknown enrollment code")
    if row["used_at"]:
        raise Conflict("this enrollment code has been used already; make a new one with `tessera hub enroll`")
    if parse_iso(row["expires_at"]) < now:
        raise Conflict("this enrollment code has expired; make a new one with `tessera hub enroll`")
    if db.execute("SELECT 1 FROM node_certs WHERE node_id = ?", (node_id,)).fetchone():
        raise Conflict("this node id is enrolled already")
    with transaction(db):
        record = certify_node(db, root, node_id=node_id, name=row["name"], role=row["role"], public_raw=public_raw,
                              now=now)
        db.execute("UPDATE enrollment_codes SET used_at = ?, node_id = ? WHERE code_hash = ?",
                   (iso(now), node_id, row["code_hash"]))
        db.execute("INSERT INTO node_scopes (node_id, name, role, venue_ids, enrolled_at) VALUES (?, ?, ?, ?, ?)",
                   (node_id, row["name"], row["role"], row["venue_ids"], iso(now)))
    return {"name": row["name"], "role": row["role"], "venue_ids": json.loads(row["venue_ids"]),
            "certificate": record}


class RateLimit:
    """Failed attempts in the last minute, per address and overall."""

    def __init__(self) -> None:
        self.failures: deque[tuple[float, str]] = deque()

    def _trim(self, now: float) -> None:
        while self.failures and now - self.failures[0][0] > WINDOW_S:
            self.failures.popleft()

    def allowed(self, address: str) -> bool:
        now = time.monotonic()
        self._trim(now)
        mine = sum(1 for _, a in self.failures if a == address)
        return mine < FAILURES_PER_ADDRESS and len(self.failures) < FAILURES_OVERALL

    def failed(self, address: str) -> None:
        self.failures.append((time.monotonic(), address))
