"""A hub key rotation killed half-way leaves a hub that starts, signs its answers with a
certified, unrevoked key, and that edges still verify.

The rotation runs as a real `tessera hub rotate-key` process that kills itself with SIGKILL
right after a named step (TESSERA_CRASH_AT=rotate:<step>, hub/services/nodes.py); then the
hub is opened anew on the same folder (as `tessera hub serve` does) and served over
loopback, and an enrolled edge syncs with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import nacl.pwhash
import pytest

from core.base.clock import utcnow
from core.base.node import NODE_DB, this_node
from core.base.storage import connect
from core.cards import cards, keys
from core.cards.trust import TrustStore
from edge.sync import enroll as enrolling
from edge.sync.client import SyncClient
from edge.sync.client import status as sync_status
from hub.app import make_app, open_database, open_hub
from hub.services import backup, nodes
from hub.sync import enrollment

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # real rotation processes, about 2 s each
FAST = backup.Kdf(opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN, memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN)


def rotate_in_a_process(hub_dir: Path, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != nodes.CRASH_ENV}
    if crash_at:
        env[nodes.CRASH_ENV] = f"rotate:{crash_at}"
    return subprocess.run([sys.executable, "-m", "cli.main", "hub", "rotate-key", "--data", str(hub_dir)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def hub_key_state(hub_dir: Path) -> dict:
    """What the hub folder holds right now, read without starting the hub."""
    db = open_database(hub_dir, migrate=False)
    try:
        key_id = this_node(db)["key_id"]
        revoked = {r["key_id"] for r in db.execute("SELECT key_id FROM node_revocations")}
    finally:
        db.close()
    file_id = keys.key_id(keys.public_bytes(keys.read_private(hub_dir / keys.NODE_KEY_FILE)))
    return {"key_id": key_id, "file_id": file_id, "revoked": revoked,
            "pending": (hub_dir / (keys.NODE_KEY_FILE + ".new")).exists()}


async def edge_of(sample_hub, aiohttp_server, tmp_path):
    server = await aiohttp_server(make_app(sample_hub.db))
    url = str(server.make_url("")).rstrip("/")
    folder = tmp_path / "kasse"
    code = enrollment.create_code(sample_hub.db, name="Kasse 1", role="cashdesk", venue_ids=[], now=utcnow())
    await enrolling.enroll(folder, code, [url])
    db = connect(folder / NODE_DB, edge=True)
    client = SyncClient(db, folder)
    try:
        await client.round()
    finally:
        await client.close()
    await server.close()
    return folder, db


@pytest.mark.parametrize("step", nodes.ROTATION_STEPS)
async def test_a_rotation_killed_after_each_step_leaves_a_working_hub(sample_hub, aiohttp_server, tmp_path, step):
    folder, db = await edge_of(sample_hub, aiohttp_server, tmp_path)
    hub_dir = Path(sample_hub.dir)
    old_key = this_node(sample_hub.db)["key_id"]
    proc = rotate_in_a_process(hub_dir, step)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    crashed = hub_key_state(hub_dir)
    committed = crashed["key_id"] != old_key
    assert committed == (step != "key-written")
    # the hub starts on the same folder: the rotation is finished (committed) or undone
    hub_db = open_hub(hub_dir)
    try:
        state = hub_key_state(hub_dir)
        assert not state["pending"] and state["file_id"] == state["key_id"]
        assert state["key_id"] not in state["revoked"]
        assert (state["key_id"] != old_key) == committed
        assert (old_key in state["revoked"]) == committed  # the old key is retired only with the new one in place
        signer = cards.load_signer(hub_db, hub_dir)
        assert signer.key_id == state["key_id"]
        server = await aiohttp_server(make_app(hub_db))
        client = SyncClient(db, folder, hub_url=str(server.make_url("")).rstrip("/"))
        try:
            await client.round()  # every answer signed by the hub and checked by the edge
            learned = client.trust().get(state["key_id"])
            assert learned is not None and learned.role == "hub"
            assert TrustStore.load(db).get(state["key_id"]) is not None
        finally:
            await client.close()
        # and the next rotation goes through whole
        done = rotate_in_a_process(hub_dir)
        assert done.returncode == 0, done.stderr
        after = hub_key_state(hub_dir)
        assert after["key_id"] == after["file_id"] and not after["pending"] and state["key_id"] in after["revoked"]
    finally:
        hub_db.close()


async def test_a_rotation_killed_while_the_new_key_was_being_written_leaves_the_old_key(sample_hub, tmp_path):
    """A partial node.key.tmp (the process died inside step 1) is dropped at start."""
    hub_dir = Path(sample_hub.dir)
    old_key = this_node(sample_hub.db)["key_id"]
    (hub_dir / (keys.NODE_KEY_FILE + ".tmp")).write_bytes(b"-----BEGIN PRIVATE KEY-----\nMC4CAQAw")
    hub_db = open_hub(hub_dir)
    try:
        assert not (hub_dir / (keys.NODE_KEY_FILE + ".tmp")).exists()
        assert cards.load_signer(hub_db, hub_dir).key_id == old_key
    finally:
        hub_db.close()


@pytest.mark.sqlite_only("tessera hub backup refuses a PostgreSQL hub (pg_dump)")
async def test_a_backup_of_a_hub_whose_rotation_was_cut_short_restores_a_working_hub(sample_hub, aiohttp_server,
                                                                                      tmp_path):
    """Killed after its commit, a rotation leaves the new key in node.key.new until the next
    start: a backup taken meanwhile carries it, so the restored hub finishes the rotation and
    signs with the key its database names (before, it held the old node.key only and could
    not sign at all)."""
    folder, db = await edge_of(sample_hub, aiohttp_server, tmp_path)
    hub_dir = Path(sample_hub.dir)
    proc = rotate_in_a_process(hub_dir, "committed")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert hub_key_state(hub_dir)["pending"]
    archive = tmp_path / "hub.backup"
    backup.backup(hub_dir, hub_dir / "hub.sqlite", archive, "correct horse battery", kdf=FAST)
    restored = tmp_path / "restored"
    backup.restore(archive, restored, "correct horse battery")
    hub_db = open_hub(restored)
    try:
        state = hub_key_state(restored)
        assert not state["pending"] and state["file_id"] == state["key_id"] not in state["revoked"]
        server = await aiohttp_server(make_app(hub_db))
        client = SyncClient(db, folder, hub_url=str(server.make_url("")).rstrip("/"))
        try:
            await client.round()  # answers signed by the restored hub's key and verified by the edge
            assert sync_status(db)["last_error"] is None
        finally:
            await client.close()
    finally:
        hub_db.close()


@pytest.mark.sqlite_only("tessera hub backup refuses a PostgreSQL hub (pg_dump)")
def test_a_backup_waits_for_a_key_rotation_under_way(sample_hub, tmp_path):
    """The snapshot and the key files are read under the rotation lock: while another process
    holds it, a backup does not start copying."""
    import threading

    hub_dir = Path(sample_hub.dir)
    started, finished = threading.Event(), threading.Event()

    def run_backup():
        started.set()
        backup.backup(hub_dir, hub_dir / "hub.sqlite", tmp_path / "hub.backup", "correct horse battery", kdf=FAST)
        finished.set()

    with nodes.rotation_lock(hub_dir):
        worker = threading.Thread(target=run_backup)
        worker.start()
        assert started.wait(10)
        assert not finished.wait(0.5)  # held back by the lock (a bounded wait, not a sleep to pass)
    worker.join(60)
    assert finished.is_set() and (tmp_path / "hub.backup").exists()
