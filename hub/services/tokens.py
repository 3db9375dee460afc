"""API tokens: bearer secrets stored only as SHA-256 hashes, each with one role.

Roles: `admin` (everything, incl. tokens), `office` (catalog and customers), `shop`
(reads what is on sale online, creates customers), `agency` (reads only what is released
to agencies, S16). Tokens are 256-bit random, so a plain hash is enough: there is nothing
to brute-force that a salt would protect.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from typing import Annotated, Literal

from msgspec import Meta

from core.base.clock import now_iso
from core.base.errors import Conflict, NotFound
from core.base.ids import is_uuid, uuid7
from core.base.storage import transaction
from core.catalog.common import Body, Name

Role = Literal["admin", "office", "shop", "agency"]
ROLES: tuple[str, ...] = ("admin", "office", "shop", "agency")
PREFIX = "tsr_"


class TokenIn(Body, kw_only=True):
    name: Annotated[Name, Meta(description="who or what uses the token, e.g. 'Webshop'")]
    role: Role


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_out(row: dict) -> dict:
    return {k: row[k] for k in ("id", "name", "role", "created_at", "revoked_at")}


def create_token(db: sqlite3.Connection, name: str, role: str) -> tuple[str, dict]:
    """A new token; the secret is returned once and never stored."""
    secret = PREFIX + secrets.token_urlsafe(32)
    row = {"id": uuid7(), "name": name, "role": role, "token_hash": hash_token(secret),
           "created_at": now_iso(), "revoked_at": None}
    with transaction(db):
        db.execute("INSERT INTO api_tokens (id, name, role, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                   (row["id"], name, role, row["token_hash"], row["created_at"]))
    return secret, token_out(row)


def lookup(db: sqlite3.Connection, secret: str) -> dict | None:
    if not secret.startswith(PREFIX) or len(secret) > 100 or not secret.isascii():
        return None
    return db.execute(
        "SELECT id, name, role FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        (hash_token(secret),),
    ).fetchone()


def revoke(db: sqlite3.Connection, token_id: str) -> dict:
    with transaction(db):
        row = db.execute("SELECT * FROM api_tokens WHERE id = ?", (token_id,)).fetchone() if is_uuid(token_id) else None
        if row is None:
            raise NotFound(f"no token with id {token_id}")
        if row["revoked_at"] is None and row["role"] == "admin":
            admins = db.execute(
                "SELECT count(*) AS n FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL"
            ).fetchone()["n"]
            if admins <= 1:
                raise Conflict("this is the last admin token; create another admin token before revoking it")
        if row["revoked_at"] is None:
            db.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (now_iso(), token_id))
    return token_out(db.execute("SELECT * FROM api_tokens WHERE id = ?", (token_id,)).fetchone())


def list_tokens(db: sqlite3.Connection) -> list[dict]:
    return [token_out(r) for r in db.execute("SELECT * FROM api_tokens ORDER BY created_at, id")]
