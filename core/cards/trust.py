"""Who may sign what: the organizer's root key, node certificates, revocations (B3).

Everything here that travels between nodes is a *signed record*: a small JSON envelope
`{"p": purpose, "k": key id, "b": body, "s": signature}` whose body is canonical JSON.
Certificates and node revocations are signed by the root key, so any node can relay them
(a gate passes a revocation on to its peer) and the receiver still trusts only the root.

- A **node certificate** binds a node id, name, role and public key to a validity period,
  and names what the node may issue (`may_issue`: the venues whose products its cards may
  be for; a certificate without the field, made before it existed, may issue for all).
- A **node revocation** names a key id and a revocation time: what that key signed before
  the time stays valid, what it signed later is refused. The signing time inside a record
  is the signer's word, so a thief holding the key can back-date it: for a key revoked for
  cause (`Signer.compromised`) a gate believes only the cards it already knows from sync.
  Key rotation is a revocation with reason `rotated` plus a certificate for the node's new
  key, so cards under the old key stay valid until they expire.
- The **trust store** is the in-memory view a gate verifies against: certificates checked
  against the root once when loaded, not on every scan.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from core.base.clock import iso, iso_ms
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.storage import transaction
from core.cards import keys

CARD_SIGNERS = frozenset({"hub", "cashdesk", "counter"})
ROLES = ("hub", "cashdesk", "counter", "gate")
CERT_YEARS = 10
ALL = "all"  # `may_issue` venues of a node not bound to any (the hub, a desk enrolled without venues)
ROTATED = "rotated"  # the one revocation reason that is no suspicion of the key


class BadRecord(ValueError):
    """A signed record that is not well-formed, or whose signature does not verify."""


@dataclass(frozen=True, slots=True)
class Envelope:
    purpose: str
    key_id: int
    body: dict
    body_text: str
    signature: bytes

    @property
    def message(self) -> bytes:
        return _message(self.purpose, self.body_text)


def _message(purpose: str, body_text: str) -> bytes:
    return f"tessera:{purpose}\n".encode() + body_text.encode()


def canonical(body: dict) -> str:
    """Sorted keys, no spaces. Only the signer needs this to be deterministic: a verifier
    checks the body text exactly as it was sent."""
    return msgspec.json.encode(body, order="sorted").decode()


def sign(private: Ed25519PrivateKey, purpose: str, body: dict, key_id: int | None = None) -> str:
    """A signed record; pass *key_id* when it is known, to save deriving it on a hot path."""
    body_text = canonical(body)
    signature = private.sign(_message(purpose, body_text))
    if key_id is None:
        key_id = keys.key_id(keys.public_bytes(private))
    return canonical({"p": purpose, "k": key_id, "b": body_text, "s": signature.hex()})


def open_envelope(text: str | bytes, purpose: str) -> Envelope:
    """Parse a signed record of *purpose*; structure only, the signature is checked by the caller."""
    try:
        outer = msgspec.json.decode(text)
        if not isinstance(outer, dict) or set(outer) != {"p", "k", "b", "s"}:
            raise BadRecord("not a signed record")
        if outer["p"] != purpose:
            raise BadRecord(f"expected a {purpose} record, got {outer['p']!r}")
        key_id, body_text, sig = outer["k"], outer["b"], bytes.fromhex(outer["s"])
        body = msgspec.json.decode(body_text)
    except (ValueError, TypeError, KeyError, msgspec.DecodeError) as exc:
        raise BadRecord(f"malformed {purpose} record: {exc}") from None
    if not isinstance(key_id, int) or not isinstance(body, dict) or len(sig) != 64:
        raise BadRecord(f"malformed {purpose} record")
    return Envelope(purpose, key_id, body, body_text, sig)


def verify(envelope: Envelope, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(envelope.signature, envelope.message)
    except InvalidSignature:
        return False
    return True


def ms(moment: str | dt.datetime) -> int:
    """ISO text or aware datetime -> milliseconds since the epoch."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


# -- the root ---------------------------------------------------------------------------------


def pin_root(db: sqlite3.Connection, public_raw: bytes) -> int:
    """Remember the organizer's root public key (hub init, edge enrollment)."""
    kid = keys.key_id(public_raw)
    with transaction(db):
        pinned = db.execute("SELECT key_id FROM trust_roots").fetchall()
        if pinned and kid not in {r["key_id"] for r in pinned}:
            raise Conflict("this data folder already trusts another organizer root key")
        db.execute("INSERT INTO trust_roots (key_id, public_key) VALUES (?, ?) ON CONFLICT DO NOTHING",
                   (kid, public_raw))
    return kid


def root_public(db: sqlite3.Connection) -> Ed25519PublicKey:
    row = db.execute("SELECT public_key FROM trust_roots ORDER BY key_id LIMIT 1").fetchone()
    if row is None:
        raise NotFound("this data folder trusts no organizer root key yet (enroll it first)")
    return keys.load_public(row["public_key"])


# -- certificates and revocations -------------------------------------------------------------


def certify(root: Ed25519PrivateKey, *, node_id: str, name: str, role: str, public_raw: bytes,
            now: dt.datetime, years: int = CERT_YEARS, venue_ids: Sequence[str] | None = None) -> str:
    """A node certificate. *venue_ids*: the venues whose products the node may issue cards
    for (`may_issue`); None or empty: every venue."""
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", field="role")
    body = {"v": 1, "key_id": keys.key_id(public_raw), "node_id": node_id, "name": name, "role": role,
            "public_key": public_raw.hex(), "issued_at": iso(now),
            "valid_from": iso(now - dt.timedelta(days=1)),
            "valid_until": iso(now.replace(year=now.year + years)),
            "may_issue": {"venues": sorted(set(venue_ids)) if venue_ids else ALL}}
    return sign(root, "node-cert", body)


def issuing_venues(body: dict) -> frozenset[str] | None:
    """The venues a certificate body lets its node issue for; None: all (also a certificate
    from before the field). A field the root signed but nobody can read allows nothing."""
    scope = body.get("may_issue")
    if scope is None:
        return None
    venues = scope.get("venues") if isinstance(scope, dict) else None
    if venues == ALL:
        return None
    if isinstance(venues, list) and all(isinstance(v, str) for v in venues):
        return frozenset(venues)
    return frozenset()


def store_cert(db: sqlite3.Connection, record: str) -> dict:
    """Verify a certificate against the pinned root and keep it. Idempotent."""
    env = open_envelope(record, "node-cert")
    if not verify(env, root_public(db)):
        raise BadRecord("node certificate is not signed by this organizer's root key")
    b = env.body
    existing = db.execute("SELECT node_id FROM node_certs WHERE key_id = ?", (b["key_id"],)).fetchone()
    if existing and existing["node_id"] != b["node_id"]:
        raise Conflict(f"key id {b['key_id']:08x} already belongs to another node")
    with transaction(db):
        db.execute(
            "INSERT INTO node_certs (key_id, node_id, name, role, public_key, valid_from, valid_until, "
            "issued_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (b["key_id"], b["node_id"], b["name"], b["role"], bytes.fromhex(b["public_key"]), b["valid_from"],
             b["valid_until"], b["issued_at"], record))
    return b


def revocation(root: Ed25519PrivateKey, *, key_id: int, revoked_at: dt.datetime, reason: str,
               now: dt.datetime) -> str:
    return sign(root, "node-revocation", {"v": 1, "key_id": key_id, "revoked_at": iso_ms(revoked_at),
                                          "reason": reason, "issued_at": iso(now)})


def store_revocation(db: sqlite3.Connection, record: str) -> dict:
    """Verify a node revocation against the root and keep it; an earlier revocation time wins,
    and a revocation for cause replaces a rotation at the same time (a rotated key found stolen)."""
    env = open_envelope(record, "node-revocation")
    if not verify(env, root_public(db)):
        raise BadRecord("node revocation is not signed by this organizer's root key")
    b = env.body
    with transaction(db):
        db.execute(
            "INSERT INTO node_revocations (key_id, revoked_at, reason, record) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key_id) DO UPDATE SET revoked_at = excluded.revoked_at, reason = excluded.reason, "
            "record = excluded.record WHERE excluded.revoked_at < node_revocations.revoked_at "
            "OR (excluded.revoked_at <= node_revocations.revoked_at AND node_revocations.reason = ? "
            "AND excluded.reason <> ?)",
            (b["key_id"], b["revoked_at"], b["reason"], record, ROTATED, ROTATED))
    return b


# -- the trust store --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signer:
    key_id: int
    node_id: str
    name: str
    role: str
    public: Ed25519PublicKey
    valid_from_ms: int
    valid_until_ms: int
    revoked_at_ms: int | None
    revoke_reason: str | None
    public_raw: bytes = b""  # the 32 key bytes, for verify_many
    venues: frozenset[str] | None = None  # may issue cards for products of these venues; None: all

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """Did this key sign *message*? (A card code, a voucher: the signer's own check.)"""
        try:
            self.public.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def valid_at(self, signed_ms: int) -> bool:
        """Was this key allowed to sign at *signed_ms*? (Cards signed before a revocation stay good.)"""
        if not self.valid_from_ms <= signed_ms <= self.valid_until_ms:
            return False
        return self.revoked_at_ms is None or signed_ms < self.revoked_at_ms

    @property
    def compromised(self) -> bool:
        """Revoked for cause (stolen, lost, retired), not rotated: its own signing times are
        no longer believed, only what others saw it sign before the revocation."""
        return self.revoked_at_ms is not None and self.revoke_reason != ROTATED

    def may_issue_for(self, product_venues: frozenset[str]) -> bool:
        """May this node issue a card of a product valid at *product_venues*? (Its
        certificate's venues; a product valid at one of them is one the node sells.)"""
        return self.venues is None or not self.venues.isdisjoint(product_venues)


def _verified(db: sqlite3.Connection, sql: str, purpose: str, root: Ed25519PublicKey) -> list[Envelope]:
    """Records that verify against the root; a tampered or garbled row is simply no record."""
    out = []
    for row in db.execute(sql):
        try:
            env = open_envelope(row["record"], purpose)
        except BadRecord:
            continue
        if verify(env, root):
            out.append(env)
    return out


class TrustStore:
    """Verified signers by key id, loaded once and reloaded when the database changes."""

    def __init__(self, signers: dict[int, Signer]):
        self.signers = signers

    @classmethod
    def load(cls, db: sqlite3.Connection) -> TrustStore:
        try:
            root = root_public(db)
        except NotFound:
            return cls({})
        revoked = {}
        for env in _verified(db, "SELECT record FROM node_revocations", "node-revocation", root):
            revoked[env.body["key_id"]] = env.body
        signers = {}
        for env in _verified(db, "SELECT record FROM node_certs", "node-cert", root):
            b = env.body
            rev = revoked.get(b["key_id"])
            signers[b["key_id"]] = Signer(
                key_id=b["key_id"], node_id=b["node_id"], name=b["name"], role=b["role"],
                public=keys.load_public(bytes.fromhex(b["public_key"])), valid_from_ms=ms(b["valid_from"]),
                valid_until_ms=ms(b["valid_until"]), revoked_at_ms=ms(rev["revoked_at"]) if rev else None,
                revoke_reason=rev["reason"] if rev else None, public_raw=bytes.fromhex(b["public_key"]),
                venues=issuing_venues(b))
        return cls(signers)

    def get(self, key_id: int) -> Signer | None:
        return self.signers.get(key_id)

    def check_record(self, env: Envelope, roles: frozenset[str] | set[str], signed_ms: int,
                     verified: bool | None = None) -> Signer:
        """The signer of a relayed record (an entry from a peer gate), or BadRecord.
        *verified*: the signature was checked already (`verify_many`), with this result."""
        signer = self.signers.get(env.key_id)
        if signer is None:
            raise BadRecord(f"record signed by unknown key {env.key_id:08x}")
        if signer.role not in roles:
            raise BadRecord(f"a {signer.role} may not sign {env.purpose} records")
        if not (verify(env, signer.public) if verified is None else verified):
            raise BadRecord("record signature does not verify")
        if not signer.valid_at(signed_ms):
            raise BadRecord(f"key {env.key_id:08x} was not valid when it signed this record")
        return signer


# --- many signatures at once ---------------------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
PARALLEL_FROM = 64  # fewer records are checked on the calling thread


def verify_many(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """Check many Ed25519 signatures (public key bytes, message, signature) at once: the hub
    verifies every entry record a gate pushes, up to thousands per request. libsodium (PyNaCl)
    verifies in about half the time OpenSSL takes here and releases the GIL, so the batch is
    spread over every core; cards and single records keep using `verify` (cryptography)."""
    if len(items) < PARALLEL_FROM:
        return _verify_chunk(items)
    global _pool
    workers = os.cpu_count() or 1
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
    size = -(-len(items) // workers)
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    return [ok for part in _pool.map(_verify_chunk, chunks) for ok in part]


def _verify_chunk(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[bool]:
    results = []
    for public, message, signature in items:
        try:
            crypto_sign_open(signature + message, public)
            results.append(True)
        except (BadSignatureError, ValueError, TypeError):
            results.append(False)
    return results
