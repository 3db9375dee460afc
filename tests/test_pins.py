"""PINs that a stolen desk does not give away (issue 11, core/catalog/pins.py).

Real hub and desk data folders (provisioned with real key files), the real change feed, the
desk's JSON API over loopback HTTP, real scrypt, HMAC and libsodium sealed boxes. Before this
change every desk held `operators.pin_hash`: scrypt alone confirmed a guess, so a copied
database gave every PIN, valid at every desk."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from core.base.clock import utcnow
from core.base.node import NODE_DB
from core.base.storage import connect, transaction
from core.cards import cards, keys
from core.catalog import operators, pins
from core.migrations.feed_triggers import REPLICATED
from core.sync.scope import NodeScope
from edge.desk.server import Edge
from hub.app import make_app, open_hub
from hub.services import nodes, provisioning
from hub.sync import feed
from tests.conftest import Hub

PIN, OTHER_PIN = "4711", "8520"


def desk_key(hub: Hub, node_id: str, role: str = "cashdesk") -> cards.NodeSigner:
    """A desk key of *node_id*, certified by the hub's root (the hub then issues its PIN
    verifiers): the key a desk would hold in its node.key."""
    private = keys.generate()
    public = keys.public_bytes(private)
    nodes.certify_node(hub.db, nodes.root_key(hub.dir), node_id=node_id, name=f"Kasse {node_id[-4:]}",
                       role=role, public_raw=public)
    return cards.NodeSigner(node_id=node_id, role=role, key_id=keys.key_id(public), private=private)


@pytest.fixture
def anna(sample_hub: Hub) -> dict:
    return operators.create(sample_hub.db, operators.OperatorIn(name="Anna", pin=PIN), utcnow())


def provision(hub: Hub, tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    provisioning.provision(folder, hub.dir, name=name, role="cashdesk")
    return folder


def desk_values(db) -> list[bytes]:
    """Every value in every table of a database, as bytes (text also hex-decoded)."""
    found: list[bytes] = []
    tables = [r["name"] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for row in db.execute(f'SELECT * FROM "{table}"'):
            for value in row.values():
                if isinstance(value, bytes):
                    found.append(value)
                elif isinstance(value, str):
                    found.append(value.encode())
                    try:
                        found.append(bytes.fromhex(value))
                    except ValueError:
                        pass
    return [v for v in found if len(v) >= 16]


def test_a_copied_desk_database_confirms_no_pin_not_even_the_right_one(sample_hub, anna, tmp_path):
    folder = provision(sample_hub, tmp_path, "Kasse-1")
    desk = connect(folder / NODE_DB, edge=True)
    columns = [r["name"] for r in desk.execute("SELECT name FROM pragma_table_info('operators')")]
    assert "pin_hash" not in columns  # the old design's hash is gone from the schema
    assert desk.execute("SELECT count(*) AS n FROM operator_pins").fetchone()["n"] == 0
    assert desk.execute("SELECT count(*) AS n FROM pin_secret").fetchone()["n"] == 0
    (row,) = desk.execute("SELECT * FROM pin_verifiers").fetchall()
    # the thief even knows the right PIN: nothing in the database confirms it
    digest = pins._digest(PIN, row["params"])
    values = desk_values(desk)
    assert digest not in values and hashlib.sha256(digest).digest() not in values
    assert not any(hmac.compare_digest(pins.verifier(value, digest), row["verifier"]) for value in values)
    assert not any(value.startswith(b"scrypt$") and value.count(b"$") == 3 for value in values)
    # with the key file (the whole device) it does, and only this desk's search is open
    signer = cards.load_signer(desk, folder)
    pin_key = pins.unseal(desk.execute("SELECT sealed FROM node_pin_keys").fetchone()["sealed"], signer.private)
    assert pins.verifier(pin_key, digest) == row["verifier"]
    assert pins.check(desk, anna["id"], PIN, signer) is True and pins.check(desk, anna["id"], "0000", signer) is False
    desk.close()


async def desk_login(aiohttp_client, folder: Path, operator_id: str, pin: str) -> int:
    edge = Edge(folder, sync=False)
    client = await aiohttp_client(edge.app())
    try:
        response = await client.post("/api/login", json={"operator_id": operator_id, "pin": pin})
        return response.status
    finally:
        await client.close()
        edge.db.close()


async def test_a_verifier_copied_from_one_desk_logs_in_nowhere_else(sample_hub, anna, tmp_path, aiohttp_client):
    a, b = provision(sample_hub, tmp_path, "Kasse-A"), provision(sample_hub, tmp_path, "Kasse-B")
    assert await desk_login(aiohttp_client, b, anna["id"], PIN) == 200
    a_db, b_db = connect(a / NODE_DB, edge=True), connect(b / NODE_DB, edge=True)
    stolen = a_db.execute("SELECT * FROM pin_verifiers").fetchone()
    stolen_key = a_db.execute("SELECT * FROM node_pin_keys").fetchone()
    own = b_db.execute("SELECT * FROM pin_verifiers").fetchone()
    assert stolen["verifier"] != own["verifier"]  # per node: the same PIN, another verifier
    with transaction(b_db):  # A's verifier under B's key
        b_db.execute("UPDATE pin_verifiers SET verifier = ?, params = ?", (stolen["verifier"], stolen["params"]))
    assert await desk_login(aiohttp_client, b, anna["id"], PIN) == 401
    with transaction(b_db):  # A's verifier and A's sealed PIN key: B's key file cannot open it
        b_db.execute("UPDATE node_pin_keys SET sealed = ?", (stolen_key["sealed"],))
    assert await desk_login(aiohttp_client, b, anna["id"], PIN) == 401
    # nor at the hub, which takes no PIN at all, not even its own operator's
    hub_key = cards.load_signer(sample_hub.db, sample_hub.dir)
    with pytest.raises(operators.LoginRefused, match="no PIN"):
        operators.login(sample_hub.db, anna["id"], PIN, utcnow(), node_key=hub_key)
    a_db.close()
    b_db.close()


def test_the_hub_sends_no_pin_hash_and_each_desk_only_its_own(sample_hub, anna, tmp_path):
    mine, other = desk_key(sample_hub, "desk-mine"), desk_key(sample_hub, "desk-other")
    pin_hash = sample_hub.db.execute("SELECT pin_hash FROM operator_pins").fetchone()["pin_hash"]
    assert "operator_pins" not in REPLICATED and "pin_secret" not in REPLICATED
    seen: dict[str, list] = {}
    for node, role in (("desk-mine", "cashdesk"), ("gate-1", "gate")):
        changes, _, _ = feed.page(sample_hub.db, NodeScope(role, node), 0, 100_000)
        assert pin_hash.rpartition("$")[2] not in repr(changes)  # the digest travels nowhere
        seen[role] = [c for c in changes if c.table in ("pin_verifiers", "node_pin_keys")]
    assert seen["gate"] == []
    assert sorted((c.table, c.row["key_id"]) for c in seen["cashdesk"]) == [
        ("node_pin_keys", mine.key_id), ("pin_verifiers", mine.key_id)]
    assert str(other.key_id) not in repr(seen["cashdesk"])


def test_a_new_pin_reaches_the_desk_and_the_old_one_stops(sample_hub, anna, tmp_path):
    folder = provision(sample_hub, tmp_path, "Kasse-1")
    operators.update(sample_hub.db, anna["id"], operators.OperatorIn(name="Anna", pin=OTHER_PIN), utcnow())
    provisioning.refresh(folder, sample_hub.dir)
    desk = connect(folder / NODE_DB, edge=True)
    signer = cards.load_signer(desk, folder)
    with pytest.raises(operators.LoginRefused, match="4 tries left"):
        operators.login(desk, anna["id"], PIN, utcnow(), node_key=signer)
    assert operators.login(desk, anna["id"], OTHER_PIN, utcnow(), node_key=signer)["name"] == "Anna"
    desk.close()


def test_revoked_desk_keys_lose_their_verifiers_and_a_reopened_hub_issues_missing_ones(sample_hub, anna):
    live, stolen = desk_key(sample_hub, "desk-live"), desk_key(sample_hub, "desk-stolen")
    nodes.revoke_node(sample_hub.db, nodes.root_key(sample_hub.dir), "desk-stolen", reason="lost")
    with transaction(sample_hub.db):  # as after migration 0015: the hashes moved, no verifier yet
        sample_hub.db.execute("DELETE FROM pin_verifiers")
    opened = open_hub(sample_hub.dir)
    issued = [r["key_id"] for r in opened.execute("SELECT key_id FROM pin_verifiers")]
    assert live.key_id in issued and stolen.key_id not in issued
    opened.close()


async def test_office_roles_take_no_pin_at_the_hub(sample_hub, anna, aiohttp_client):
    """The hub's office and admin access is by bearer token (256 random bits, stored hashed,
    never replicated); no hub route takes an operator's PIN."""
    client = await aiohttp_client(make_app(sample_hub.db))
    response = await client.get("/api/v1/operators", headers={"Authorization": f"Bearer {PIN}"})
    assert response.status == 401
    assert "api_tokens" not in REPLICATED
