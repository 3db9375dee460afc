"""Certificates and revocations passed between peers (gates, desks, counters).

A node serves the root-signed node certificates and revocations it holds; a node that
receives them keeps only what verifies against the root it pinned at enrollment
(core/cards/trust.py `store_cert`, `store_revocation`). So a peer can pass on a desk enrolled
after the gate's last sync, or a revocation, but never introduce a key of its own.
"""

from __future__ import annotations

import logging
import sqlite3
import time

from aiohttp import web

from core.base.errors import TesseraError
from core.cards import trust
from core.cards.trust import BadRecord, TrustStore
from edge.problems import problem

log = logging.getLogger("tessera.peers")
MAX_RECORDS = 1000


def trust_records(db: sqlite3.Connection, key_id: int | None = None) -> dict:
    """Certificates and revocations this node holds (all, or those of one key id)."""
    where, args = ("WHERE key_id = ?", (key_id,)) if key_id is not None else ("", ())
    certs = [r["record"] for r in db.execute(f"SELECT record FROM node_certs {where}", args)]
    revocations = [r["record"] for r in db.execute(f"SELECT record FROM node_revocations {where}", args)]
    return {"certs": certs, "revocations": revocations}


def node_cert(db: sqlite3.Connection, key_id: int) -> str | None:
    """The root-signed certificate of key *key_id* (this node's own, sent along to peers that lack it)."""
    row = db.execute("SELECT record FROM node_certs WHERE key_id = ?", (key_id,)).fetchone()
    return row["record"] if row else None


def trust_answer(request: web.Request, db: sqlite3.Connection) -> web.Response:
    """`GET /peer/v1/trust`: all certificates and revocations, or with `?key=` (8 hex digits)
    those of one key (a gate asking about the signer of a card it cannot place)."""
    key = request.query.get("key")
    if key is None:
        return web.json_response(trust_records(db))
    try:
        key_id = int(key, 16) if len(key) == 8 else -1
    except ValueError:
        key_id = -1
    if not 0 <= key_id < 2**32:
        return problem(422, "validation-failed", "key must be a key id of 8 hex digits")
    return web.json_response(trust_records(db, key_id))


def accept_trust(db: sqlite3.Connection, payload: object, *, quiet: bool = False) -> int:
    """Store the root-signed certificates and revocations in a peer's answer; returns how many
    were new. Anything that does not verify is dropped, and logged unless *quiet* (the peer
    door counts its refusals instead: a flood must not become a flood of log lines)."""
    if not isinstance(payload, dict):
        return 0
    new = 0
    for kind, store in (("certs", trust.store_cert), ("revocations", trust.store_revocation)):
        records = payload.get(kind) or []
        if not isinstance(records, list):
            continue
        for record in records[:MAX_RECORDS]:
            try:
                before = db.total_changes
                store(db, record)
                new += db.total_changes > before
            except (BadRecord, TypeError, ValueError, KeyError, TesseraError) as exc:
                if not quiet:  # TesseraError: e.g. Conflict, a key id already used by another node
                    log.warning("peer sent a %s record we do not keep: %s", kind, exc)
    return new


class CachedTrust:
    """A node's trust store for its peer door, reloaded at most every *max_age_s* (a desk's
    sync writes certificates on the same connection, so no change counter tells us)."""

    def __init__(self, db: sqlite3.Connection, max_age_s: float = 2.0):
        self.db, self.max_age_s = db, max_age_s
        self._store: TrustStore | None = None
        self._loaded = float("-inf")

    def __call__(self) -> TrustStore:
        now = time.monotonic()
        if self._store is None or now - self._loaded > self.max_age_s:
            self._store, self._loaded = TrustStore.load(self.db), now
        return self._store

    def forget(self) -> None:
        self._store = None
