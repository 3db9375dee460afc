"""Operator PINs that a stolen desk does not give away (issue 11, DESIGN §12).

A PIN has 4 to 8 digits: whoever holds something that confirms a guess tries them all
offline. Desks used to hold each operator's scrypt hash, so one copied desk database gave
away every PIN, valid at every desk. Now what confirms a guess is split:

- the hub keeps each operator's slow hash (scrypt with the operator's own salt) in
  `operator_pins`, which is never replicated;
- each desk or counter *key* gets its own verifier, HMAC-SHA256(node PIN key, slow hash),
  in `pin_verifiers`, sent to that node only (`core/sync/scope.py`);
- the node PIN key is HKDF-SHA256 over a hub secret (`pin_secret`, never replicated), the
  node id and the key id. It reaches the node only sealed (a libsodium sealed box) to the
  X25519 form of the node's certified Ed25519 key (`node_pin_keys`); the desk opens it with
  its key file (`node.key`, in the data folder, never in the database) at each login.

So a copied desk database confirms no PIN, not even the right one; a verifier taken from
desk A proves nothing at desk B or at the hub (another key); and a thief holding a desk's
database *and* its key file can still search that desk's PINs (10^4 scrypt runs for four
digits), but the PIN found works only at desks, each of which locks out per operator, node
and screen (`core/catalog/operators.py`), and the stolen node is revoked. The hub itself
takes no PIN at all. docs/security.md, "What a stolen desk reveals", says it for operators.

The hub issues verifiers when a PIN is set (`set_pin`), when a desk key is certified and
when it opens (`issue`: every live desk key times every operator, written only where a value
changed, so the feed carries nothing twice).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl import bindings
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from core.base.storage import transaction

SCRYPT = {"n": 2**14, "r": 8, "p": 1}
KEY_INFO = b"tessera node PIN key v1"
DESK_ROLES = ("cashdesk", "counter")


class NodeKey(Protocol):
    """The node's current signing key, as `core.cards.cards.load_signer` returns it."""

    node_id: str
    key_id: int
    private: Ed25519PrivateKey


# --- the slow hash (hub) ------------------------------------------------------------------------


def slow_hash(pin: str, salt: bytes | None = None) -> str:
    """scrypt$n$salt$digest of *pin*, with a fresh salt; slow on purpose (tens of ms)."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${salt.hex()}${digest.hex()}"


def _digest(pin: str, params: str) -> bytes | None:
    """The scrypt digest of *pin* under *params* (scrypt$n$salt), None if they are unusable."""
    try:
        scheme, n, salt = params.split("$")
        if scheme != "scrypt" or int(n) > 2**20:
            return None
        return hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=8, p=1)
    except ValueError:
        return None


# --- keys and verifiers ---------------------------------------------------------------------------


def node_pin_key(secret: bytes, node_id: str, key_id: int) -> bytes:
    """The PIN key of one node key: HKDF-SHA256 over the hub secret, node id and key id."""
    info = KEY_INFO + b"\0" + node_id.encode() + b"\0" + key_id.to_bytes(8, "big")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def verifier(pin_key: bytes, digest: bytes) -> str:
    return hmac.new(pin_key, digest, hashlib.sha256).hexdigest()


def seal(pin_key: bytes, node_public: bytes) -> str:
    """*pin_key* sealed to the X25519 form of a node's Ed25519 public key, hex."""
    x25519 = bindings.crypto_sign_ed25519_pk_to_curve25519(node_public)
    return SealedBox(PublicKey(x25519)).encrypt(pin_key).hex()


def unseal(sealed: str, private: Ed25519PrivateKey) -> bytes | None:
    """The PIN key sealed to this node key, or None (sealed to another key, or damaged)."""
    _, secret_key = bindings.crypto_sign_seed_keypair(private.private_bytes_raw())
    x25519 = bindings.crypto_sign_ed25519_sk_to_curve25519(secret_key)
    try:
        return SealedBox(PrivateKey(x25519)).decrypt(bytes.fromhex(sealed))
    except (CryptoError, ValueError):
        return None


# --- the hub issues ------------------------------------------------------------------------------


def _hub_secret(db: sqlite3.Connection) -> bytes:
    db.execute("INSERT INTO pin_secret (id, secret) VALUES (1, ?) ON CONFLICT (id) DO NOTHING", (os.urandom(32),))
    return db.execute("SELECT secret FROM pin_secret WHERE id = 1").fetchone()["secret"]


def _live_desk_keys(db: sqlite3.Connection) -> list[dict]:
    marks = ", ".join("?" for _ in DESK_ROLES)  # the roles as parameters, not a tuple's repr in the SQL
    return db.execute(
        f"SELECT key_id, node_id, public_key FROM node_certs WHERE role IN ({marks}) "
        "AND key_id NOT IN (SELECT key_id FROM node_revocations) ORDER BY key_id", DESK_ROLES).fetchall()


def set_pin(db: sqlite3.Connection, operator_id: str, pin_hash: str, now_iso: str) -> None:
    """Keep the operator's slow hash (from `slow_hash`, made before the write lock) and give
    every live desk key its verifier."""
    with transaction(db):
        db.execute("INSERT INTO operator_pins (operator_id, pin_hash, updated_at) VALUES (?, ?, ?) "
                   "ON CONFLICT (operator_id) DO UPDATE SET pin_hash = excluded.pin_hash, "
                   "updated_at = excluded.updated_at", (operator_id, pin_hash, now_iso))
        issue(db, operator_id)


def issue(db: sqlite3.Connection, operator_id: str | None = None) -> int:
    """Sealed PIN keys and verifiers for every live desk key (of one operator, or all);
    drops those of revoked keys. Writes only what is missing or changed; returns the
    number of verifiers written."""
    written = 0
    with transaction(db):
        db.execute("DELETE FROM pin_verifiers WHERE key_id IN (SELECT key_id FROM node_revocations)")
        db.execute("DELETE FROM node_pin_keys WHERE key_id IN (SELECT key_id FROM node_revocations)")
        keys = _live_desk_keys(db)
        where, args = ("WHERE operator_id = ?", (operator_id,)) if operator_id else ("", ())
        hashes_ = db.execute(f"SELECT operator_id, pin_hash FROM operator_pins {where}", args).fetchall()
        if not keys or not hashes_:
            return 0
        secret = _hub_secret(db)
        for key in keys:
            pin_key = node_pin_key(secret, key["node_id"], key["key_id"])
            db.execute("INSERT INTO node_pin_keys (key_id, node_id, sealed) VALUES (?, ?, ?) "
                       "ON CONFLICT (key_id) DO NOTHING",
                       (key["key_id"], key["node_id"], seal(pin_key, key["public_key"])))
            for row in hashes_:
                written += _write_verifier(db, row, key, pin_key)
    return written


def _write_verifier(db: sqlite3.Connection, row: dict, key: dict, pin_key: bytes) -> int:
    params, _, digest = row["pin_hash"].rpartition("$")
    value = verifier(pin_key, bytes.fromhex(digest))
    return db.execute(
        "INSERT INTO pin_verifiers (operator_id, key_id, node_id, params, verifier) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (operator_id, key_id) DO UPDATE SET node_id = excluded.node_id, params = excluded.params, "
        "verifier = excluded.verifier "
        "WHERE pin_verifiers.verifier <> excluded.verifier OR pin_verifiers.params <> excluded.params",
        (row["operator_id"], key["key_id"], key["node_id"], params, value)).rowcount


# --- the desk checks -----------------------------------------------------------------------------


def check(db: sqlite3.Connection, operator_id: str, pin: str, node_key: NodeKey) -> bool | None:
    """Is *pin* the operator's PIN? Recomputed with this node's key: True or False; None when
    this node holds no verifier (or no PIN key) for its current key yet."""
    row = db.execute("SELECT v.params, v.verifier, k.sealed FROM pin_verifiers v JOIN node_pin_keys k "
                     "ON k.key_id = v.key_id WHERE v.operator_id = ? AND v.key_id = ? AND v.node_id = ?",
                     (operator_id, node_key.key_id, node_key.node_id)).fetchone()
    if row is None:
        return None
    pin_key = unseal(row["sealed"], node_key.private)
    digest = _digest(pin, row["params"])
    if pin_key is None or digest is None:
        return False
    return hmac.compare_digest(verifier(pin_key, digest), row["verifier"])
