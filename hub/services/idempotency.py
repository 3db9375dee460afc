"""Idempotent POSTs: a client that retries with the same `Idempotency-Key` gets the first
answer again instead of a second order.

A shop's payment callback or a flaky mobile connection retries requests; without this a
retry after a lost answer would sell twice. The key is scoped to the API token (two shops
may use the same key), and the stored answer is written in the *same transaction* as the
change it answers, so "order stored" and "answer remembered" cannot come apart. Only
successful answers are stored: a refused request changed nothing, so retrying it with the
same key simply runs it again (and a 4xx never writes a row, which the API fuzzer checks).

Usage inside a handler::

    key = idempotency.require_key(ctx.headers)
    digest = idempotency.body_hash(ctx.body)
    with transaction(db):
        earlier = idempotency.replay(db, token_id, key, digest)
        if earlier: ...return it, with the Idempotent-Replayed header...
        ...make the change...
        idempotency.remember(db, token_id, key, digest, status, encoded_answer, now)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from core.base.clock import iso
from hub.web.problems import ApiError

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY = 100
_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY}}}")  # visible ASCII, no spaces


@dataclass(frozen=True, slots=True)
class Stored:
    """An earlier answer to the same key and body."""

    status: int
    response: bytes


def require_key(headers: Mapping[str, str]) -> str:
    """The request's Idempotency-Key, or a 400 problem saying what is wrong with it."""
    key = headers.get(HEADER)
    if key is None:
        raise ApiError(400, "idempotency-key-missing", "Idempotency-Key missing",
                       f"send a unique '{HEADER}' header (1 to {MAX_KEY} visible characters) so a retry "
                       "cannot place the order twice", field=HEADER)
    if not _KEY.fullmatch(key):
        raise ApiError(400, "invalid-idempotency-key", "Invalid Idempotency-Key",
                       f"'{HEADER}' must be 1 to {MAX_KEY} visible ASCII characters without spaces",
                       field=HEADER)
    return key


def body_hash(body: Any) -> str:
    """SHA-256 of the decoded body re-encoded canonically: the same request sent again with
    other whitespace or key order still counts as the same request."""
    return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()


def replay(db: sqlite3.Connection, token_id: str, key: str, request_hash: str) -> Stored | None:
    """The stored answer for (token, key), None if the key is new. The same key with another
    body is refused: answering it with the first order would hide the client's mistake."""
    row = db.execute("SELECT request_hash, status, response FROM idempotency_keys WHERE token_id = ? AND key = ?",
                     (token_id, key)).fetchone()
    if row is None:
        return None
    if row["request_hash"] != request_hash:
        raise ApiError(422, "idempotency-key-reused", "Idempotency-Key reused",
                       f"this '{HEADER}' was already used for a different request; use a new key for a "
                       "new request", field=HEADER)
    return Stored(row["status"], row["response"].encode("utf-8"))


def remember(db: sqlite3.Connection, token_id: str, key: str, request_hash: str, status: int,
             response: bytes, now: dt.datetime) -> None:
    """Store the answer; call inside the transaction of the change it answers."""
    db.execute("INSERT INTO idempotency_keys (token_id, key, request_hash, status, response, created_at) "
               "VALUES (?, ?, ?, ?, ?, ?)", (token_id, key, request_hash, status, response.decode("utf-8"), iso(now)))
