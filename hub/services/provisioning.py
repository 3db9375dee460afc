"""Setting up a node folder from a hub folder on the same machine (local enrollment).

Until the sync issue brings enrollment over the network (one-time codes, zeroconf), a
node is set up *locally*: it makes its own key pair, the hub certifies the public key with
the root key, and the node receives a snapshot of what it may see (trust records, catalog,
cards, entries: the replicated tables as the change feed would send them, `core.sync.scope`).
The private key never leaves the node's folder, and the root key never leaves the hub's.
Used by `tessera gate init --hub-data`, the demo and the tests.
"""

from __future__ import annotations

from pathlib import Path

from core.base.node import NODE_DB, init_node, this_node
from core.base.storage import connect, transaction
from core.cards import keys, trust
from core.sync.replica import copy_snapshot
from core.sync.scope import NodeScope
from hub.app import open_hub
from hub.services.nodes import certify_node, root_key, rotate_node_key


def provision(node_dir: Path, hub_dir: Path, *, name: str, role: str) -> dict:
    """Set up a node folder from a hub folder on this machine; returns the node row."""
    node_dir = Path(node_dir)
    if (node_dir / NODE_DB).exists():
        raise FileExistsError(f"{node_dir} already holds a node")
    node_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = connect(node_dir / NODE_DB, edge=True)
    node = init_node(db, role, name)
    private = keys.generate()
    keys.write_private(node_dir / keys.NODE_KEY_FILE, private)
    public = keys.public_bytes(private)
    hub = open_hub(hub_dir)
    try:
        certify_node(hub, root_key(hub_dir), node_id=node["id"], name=name, role=role, public_raw=public)
        trust.pin_root(db, hub.execute("SELECT public_key FROM trust_roots").fetchone()["public_key"])
        copy_snapshot(hub, db, NodeScope(role=role, node_id=node["id"]))
    finally:
        hub.close()
    with transaction(db):
        db.execute("UPDATE node SET key_id = ?", (keys.key_id(public),))
    row = this_node(db)
    db.close()
    return row


def refresh(node_dir: Path, hub_dir: Path) -> dict[str, int]:
    """Copy the hub's current state into an existing node folder again."""
    db = connect(Path(node_dir) / NODE_DB, edge=True)
    hub = open_hub(hub_dir)
    try:
        node = this_node(db)
        return copy_snapshot(hub, db, NodeScope(role=node["role"], node_id=node["id"]))
    finally:
        hub.close()
        db.close()


def rotate_key(node_dir: Path, hub_dir: Path) -> int:
    """Give a node a new signing key: made on the node, certified by the hub; the old key is
    retired as of now (what it signed stays valid). Returns the new key id.

    Order matters for a crash half-way: the new key is on disk (node.key.new) before the hub
    certifies it, and `load_signer` falls back to node.key.new until the swap is done."""
    node_dir = Path(node_dir)
    db = connect(node_dir / NODE_DB, edge=True)
    hub = open_hub(hub_dir)
    try:
        node = this_node(db)
        new = keys.generate()
        pending = node_dir / (keys.NODE_KEY_FILE + ".new")
        if pending.exists():
            pending.unlink()
        keys.write_private(pending, new)
        public = keys.public_bytes(new)
        rotate_node_key(hub, root_key(hub_dir), node["id"], public)
        copy_snapshot(hub, db, NodeScope(role=node["role"], node_id=node["id"]))
        with transaction(db):
            db.execute("UPDATE node SET key_id = ?", (keys.key_id(public),))
        pending.replace(node_dir / keys.NODE_KEY_FILE)
        return keys.key_id(public)
    finally:
        hub.close()
        db.close()
