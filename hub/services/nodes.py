"""The organizer's root of trust, on the hub: root key, node certificates, revocations (B3).

The root private key (`root.key`, mode 0600) is made by `tessera hub init` and never leaves
the hub's data folder; nothing here sends it anywhere. The hub itself is a node like any
other: it has its own node key and certificate, and signs the cards it issues with that.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.base.clock import iso, iso_ms, parse_iso, utcnow
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.files import fsync_dir
from core.base.node import this_node
from core.base.sql import joined
from core.base.storage import transaction
from core.cards import cards, keys, trust
from core.catalog import pins

REASONS = ("compromised", "lost", "retired", "rotated")


def root_key(data_dir: Path) -> Ed25519PrivateKey:
    return keys.read_private(Path(data_dir) / keys.ROOT_KEY_FILE)


def init_trust(data_dir: Path, db: sqlite3.Connection) -> None:
    """Root key, pinned root, and the hub's own node key and certificate. Idempotent, so a
    hub made before credentials existed gets them the next time it starts."""
    data_dir = Path(data_dir)
    root_file = data_dir / keys.ROOT_KEY_FILE
    if not root_file.exists():
        if db.execute("SELECT 1 FROM trust_roots").fetchone():
            raise Conflict(f"{root_file} is missing but this hub already trusts a root key; restore it from backup")
        keys.write_private(root_file, keys.generate())
    root = root_key(data_dir)
    trust.pin_root(db, keys.public_bytes(root))
    finish_hub_rotation(data_dir, db)
    node = this_node(db)
    node_file = data_dir / keys.NODE_KEY_FILE
    if node["key_id"] is None:
        if not node_file.exists():
            keys.write_private(node_file, keys.generate())
        public = keys.public_bytes(keys.read_private(node_file))
        certify_node(db, root, node_id=node["id"], name=node["name"], role="hub", public_raw=public)
        with transaction(db):
            db.execute("UPDATE node SET key_id = ?", (keys.key_id(public),))


def certify_node(db: sqlite3.Connection, root: Ed25519PrivateKey, *, node_id: str, name: str, role: str,
                 public_raw: bytes, now: dt.datetime | None = None, venue_ids: list[str] | None = None) -> str:
    """Sign and keep a certificate for a node's public key. A key id that is already taken
    (by another key) is refused: the node makes a new key and asks again. The certificate
    names the venues whose products the node may issue cards for: *venue_ids*, else the
    venues it was enrolled for (`node_scopes`); none (the hub, a node set up locally): all."""
    kid = keys.key_id(public_raw)
    taken = db.execute("SELECT node_id, public_key FROM node_certs WHERE key_id = ?", (kid,)).fetchone()
    if taken and taken["public_key"] != public_raw:
        raise Conflict(f"key id {kid:08x} is taken; generate a new key")
    if db.execute("SELECT 1 FROM node_revocations WHERE key_id = ?", (kid,)).fetchone():
        raise Conflict(f"key {kid:08x} was revoked and cannot be certified again")
    if venue_ids is None:
        scope = db.execute("SELECT venue_ids FROM node_scopes WHERE node_id = ?", (node_id,)).fetchone()
        venue_ids = json.loads(scope["venue_ids"]) if scope else []
    record = trust.certify(root, node_id=node_id, name=name, role=role, public_raw=public_raw,
                           now=now or utcnow(), venue_ids=[] if role == "hub" else venue_ids)
    if taken:
        return db.execute("SELECT record FROM node_certs WHERE key_id = ?", (kid,)).fetchone()["record"]
    trust.store_cert(db, record)
    if role in pins.DESK_ROLES:
        pins.issue(db)  # the new desk key's sealed PIN key and verifiers (core/catalog/pins.py)
    return record


def revoke_key(db: sqlite3.Connection, root: Ed25519PrivateKey, key_id: int, *, reason: str,
               revoked_at: dt.datetime | None = None) -> str:
    if reason not in REASONS:
        raise ValidationError(f"reason must be one of {', '.join(REASONS)}", field="reason")
    if db.execute("SELECT 1 FROM node_certs WHERE key_id = ?", (key_id,)).fetchone() is None:
        raise NotFound(f"no certificate for key {key_id:08x}")
    now = utcnow()
    revoked_at = revoked_at or now
    earlier = db.execute("SELECT revoked_at FROM node_revocations WHERE key_id = ?", (key_id,)).fetchone()
    if earlier is not None and reason != trust.ROTATED:  # a rotated key found stolen: the earlier time stays
        revoked_at = min(revoked_at, parse_iso(earlier["revoked_at"]))
    record = trust.revocation(root, key_id=key_id, revoked_at=revoked_at, reason=reason, now=now)
    trust.store_revocation(db, record)
    if reason != trust.ROTATED:
        cards.void_cards_after_revocation(db, key_id, trust.ms(revoked_at), now)
    return record


def revoke_node(db: sqlite3.Connection, root: Ed25519PrivateKey, node_id: str, *, reason: str,
                revoked_at: dt.datetime | None = None) -> list[str]:
    """Revoke every key of a node (a stolen cash desk). Cards it signed before *revoked_at*
    stay valid; set *revoked_at* to the last moment the device was known to be in good hands."""
    rows = db.execute("SELECT key_id FROM node_certs WHERE node_id = ?", (node_id,)).fetchall()
    if not rows:
        raise NotFound(f"node {node_id} has no certificate")
    if node_id == this_node(db)["id"]:
        raise Conflict("the hub cannot revoke itself; rotate its key instead")
    return [revoke_key(db, root, r["key_id"], reason=reason, revoked_at=revoked_at) for r in rows]


def rotate_node_key(db: sqlite3.Connection, root: Ed25519PrivateKey, node_id: str, new_public: bytes) -> str:
    """Certify a node's new key and retire its current ones as of now: cards under an old
    key stay valid until they expire, new cards are signed with the new key."""
    current = db.execute("SELECT key_id, name, role FROM node_certs WHERE node_id = ? AND key_id NOT IN "
                         "(SELECT key_id FROM node_revocations)", (node_id,)).fetchall()
    if not current:
        raise NotFound(f"node {node_id} has no valid certificate to rotate")
    record = certify_node(db, root, node_id=node_id, name=current[0]["name"], role=current[0]["role"],
                          public_raw=new_public)
    new_id = keys.key_id(new_public)
    for row in current:
        if row["key_id"] != new_id:
            revoke_key(db, root, row["key_id"], reason="rotated")
    return record


# A hub key rotation in three steps, each durable before the next (`rotate_hub_key`); a crash
# between any two leaves a hub that starts and signs (`finish_hub_rotation`, at every start).
ROTATION_STEPS = ("key-written", "committed", "swapped")
CRASH_ENV = "TESSERA_CRASH_AT"  # tests: "rotate:<step>" kills the process right after that step


def rotate_hub_key(data_dir: Path, db: sqlite3.Connection) -> int:
    """Give the hub itself a new signing key, crash-safe:

    1. the new key goes to node.key.new (temporary file, fsync, rename, fsync of the folder);
    2. one transaction certifies it, retires the old key ("rotated") and makes it the hub's key;
    3. node.key.new replaces node.key (rename, fsync of the folder).

    Before 2 commits, the old key is the hub's and still valid (the new file is dropped at the
    next start); after it, `load_signer` finds the new key in node.key.new until 3 is done, and
    the next start finishes 3. The hub never signs with a retired key or a key it has no
    certificate for."""
    data_dir = Path(data_dir)
    with rotation_lock(data_dir):
        _finish_rotation(data_dir, db)
        node = this_node(db)
        new = keys.generate()
        public = keys.public_bytes(new)
        _write_key_durably(data_dir, new)
        _crash_point("key-written")
        with transaction(db):
            rotate_node_key(db, root_key(data_dir), node["id"], public)
            db.execute("UPDATE node SET key_id = ?", (keys.key_id(public),))
        _crash_point("committed")
        _swap_pending_key(data_dir)
        _crash_point("swapped")
    return keys.key_id(public)


def finish_hub_rotation(data_dir: Path, db: sqlite3.Connection) -> str | None:
    """At start: finish or undo a hub key rotation that was cut short. Returns what it did
    ("finished", "undone") or None when there was nothing to do. Waits for a rotation that is
    under way in another process (a hub started while `tessera hub rotate-key` runs)."""
    with rotation_lock(Path(data_dir)):
        return _finish_rotation(Path(data_dir), db)


@contextlib.contextmanager
def rotation_lock(data_dir: Path) -> Iterator[None]:
    """One rotation or recovery at a time per hub folder; the kernel drops the lock when its
    process dies, so a killed rotation never leaves it held."""
    fd = os.open(data_dir / (keys.NODE_KEY_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _finish_rotation(data_dir: Path, db: sqlite3.Connection) -> str | None:
    tmp, pending = data_dir / (keys.NODE_KEY_FILE + ".tmp"), data_dir / (keys.NODE_KEY_FILE + ".new")
    tmp.unlink(missing_ok=True)  # cut short before step 1 ended: nothing refers to it
    if not pending.exists():
        return None
    current = this_node(db)["key_id"]
    try:
        pending_id = keys.key_id(keys.public_bytes(keys.read_private(pending)))
    except (ValueError, PermissionError):
        pending_id = None
    if current is not None and pending_id == current:
        _swap_pending_key(data_dir)  # step 2 committed: the new key is the hub's
        return "finished"
    pending.unlink()  # step 2 never committed: the old key is still the hub's, and valid
    fsync_dir(data_dir)
    return "undone"


def _write_key_durably(data_dir: Path, key: Ed25519PrivateKey) -> None:
    tmp, pending = data_dir / (keys.NODE_KEY_FILE + ".tmp"), data_dir / (keys.NODE_KEY_FILE + ".new")
    tmp.unlink(missing_ok=True)
    keys.write_private(tmp, key)  # exclusive create, mode 0600, fsync
    os.replace(tmp, pending)
    fsync_dir(data_dir)


def _swap_pending_key(data_dir: Path) -> None:
    os.replace(data_dir / (keys.NODE_KEY_FILE + ".new"), data_dir / keys.NODE_KEY_FILE)
    fsync_dir(data_dir)



def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == f"rotate:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def list_nodes(db: sqlite3.Connection) -> list[dict]:
    """Node certificates with their revocation and the node's last op the hub saw (its time
    and arrival): what the office looks at to name a stolen device's revocation time."""
    rows = db.execute("SELECT c.key_id, c.node_id, c.name, c.role, c.valid_from, c.valid_until, c.issued_at, "
                      "r.revoked_at, r.reason, m.last_op_at, m.last_received_at AS last_op_received_at "
                      "FROM node_certs c LEFT JOIN node_revocations r USING (key_id) "
                      "LEFT JOIN node_op_marks m ON m.node_id = c.node_id "
                      "ORDER BY c.issued_at, c.key_id").fetchall()
    out = []
    for row in rows:
        reason = row.pop("reason")
        out.append({**row, "key_id": f"{row['key_id']:08x}", "revoke_reason": reason})
    return out


# --- what the sync endpoints need (hub/sync/routes.py) -------------------------------------------------


def trust_version(db: sqlite3.Connection) -> tuple:
    """Changes whenever a node certificate or a revocation is added or changed (also its
    reason: a rotated key found stolen is a suspect from then on): the sync's cached trust
    store is reloaded then."""
    return tuple(db.execute(
        "SELECT (SELECT count(*) FROM node_certs) AS c, (SELECT count(*) FROM node_revocations) AS r, "
        f"(SELECT {joined('revoked_at || reason', ',')} FROM node_revocations) AS t").fetchone().values())


def certificate(db: sqlite3.Connection, key_id: int) -> str:
    """The signed certificate record of a key (the hub's own, sent with every sync answer)."""
    return db.execute("SELECT record FROM node_certs WHERE key_id = ?", (key_id,)).fetchone()["record"]


def root_public_raw(db: sqlite3.Connection) -> bytes:
    """The pinned root public key, as raw bytes (sent to a node at enrollment)."""
    return db.execute("SELECT public_key FROM trust_roots ORDER BY key_id LIMIT 1").fetchone()["public_key"]


def sync_scope(db: sqlite3.Connection, node_id: str) -> dict:
    """What a node syncs as: its role and venues. A node set up locally (provisioned, not
    enrolled) has no scope row: its role comes from its certificate, with no venues."""
    row = db.execute("SELECT role, venue_ids FROM node_scopes WHERE node_id = ?", (node_id,)).fetchone()
    if row is None:
        cert = db.execute("SELECT role FROM node_certs WHERE node_id = ? LIMIT 1", (node_id,)).fetchone()
        row = {"role": cert["role"], "venue_ids": "[]"}
    return {"node_id": node_id, "role": row["role"], "venue_ids": json.loads(row["venue_ids"])}


def note_clock_skew(db: sqlite3.Connection, node_id: str, skew_s: float) -> None:
    db.execute("UPDATE node_scopes SET clock_skew_s = ? WHERE node_id = ?", (round(skew_s, 3), node_id))


def note_ops(db: sqlite3.Connection, node_id: str, op_times: list[str], received: dt.datetime) -> None:
    """Remember the latest op time the hub has seen from a node (`node_op_marks`), in the
    push's transaction. An op stamped ahead of its arrival counts as arriving: a clock
    running ahead does not move the mark into the future. What it is for:
    `core.cards.cards.last_op_seen_before`."""
    times = [min(t, received) for t in map(_aware_or_none, op_times) if t is not None]
    if not times:
        return
    db.execute("INSERT INTO node_op_marks (node_id, last_op_at, last_received_at) VALUES (?, ?, ?) "
               "ON CONFLICT (node_id) DO UPDATE SET last_op_at = CASE "
               "WHEN excluded.last_op_at > node_op_marks.last_op_at THEN excluded.last_op_at "
               "ELSE node_op_marks.last_op_at END, "
               "last_received_at = excluded.last_received_at", (node_id, iso_ms(max(times)), iso_ms(received)))


def _aware_or_none(text: str) -> dt.datetime | None:
    """An op's wall time as sent; None for one that is no time with a zone (nothing to note)."""
    try:
        moment = parse_iso(text)
    except (ValueError, TypeError):
        return None
    return moment if moment.tzinfo is not None else None


def note_push(db: sqlite3.Connection, node_id: str, now: dt.datetime) -> None:
    db.execute("UPDATE node_scopes SET last_push_at = ? WHERE node_id = ?", (iso(now), node_id))


def note_pull(db: sqlite3.Connection, node_id: str, now: dt.datetime, pulled_seq: int) -> None:
    db.execute("UPDATE node_scopes SET last_pull_at = ?, pulled_seq = ? WHERE node_id = ?",
               (iso(now), pulled_seq, node_id))
