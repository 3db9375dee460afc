"""Sync that cannot be replayed (issue 11): signed time and nonce, the ±5 minute window, the
hub's nonce memory (shared through its database), the clock-skew rule of edges without a
real-time clock, a protocol header changed on the way, a 426 that never ends the sync loop,
and hub answers signed by a revoked hub key. Real hub app over HTTP on loopback, real edge
folders enrolled with one-time codes, the real SyncClient, and tests/sync_tap.py as the
attacker on the LAN."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import time

import aiohttp
import pytest

from core.base.clock import iso_ms, utcnow
from core.base.storage import connect
from core.cards import cards
from core.cards.trusted_time import TrustedClock
from core.sync import auth
from core.sync.messages import OLDEST_SUPPORTED, PROTOCOL
from edge.sync.client import SyncClient, SyncError, UpgradeNeeded, status
from hub.app import DB_NAME, make_app, open_database
from hub.services import nodes
from hub.sync import nonces, routes
from tests.helpers import async_wait_until
from tests.sync_tap import Tap, replay, send
from tests.test_sync import enrolled

YEAR = dt.timedelta(days=365)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def one(db, sql: str, *args) -> object:
    return next(iter(db.execute(sql, args).fetchone().values()))


def signed_pull(client: SyncClient, *, after: int = 0, sent: dt.datetime | None = None,
                nonce: str | None = None) -> tuple[str, dict]:
    """A pull request signed exactly as the client signs one, with a chosen signed time."""
    path = f"/sync/v1/pull?after={after}&limit=100"
    headers = auth.sign_request(client.signer.private, client.signer.key_id, client.node["id"], "GET", path, b"",
                                sent=sent or utcnow(), protocol=PROTOCOL, clock="", nonce=nonce)
    return path, headers


async def get(base: str, path: str, headers: dict) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as session:
        return await send(session, base, "GET", path, headers, b"")


def slug(data: bytes) -> str:
    return json.loads(data)["type"].rsplit(":", 1)[-1]


@pytest.fixture
async def tapped(hub, tmp_path):
    """An enrolled cash desk whose traffic to the hub goes through a tap."""
    folder, db, client = await enrolled(hub, tmp_path)
    tap = await Tap.start(hub.url)
    client.hub_url = tap.url
    yield folder, db, client, tap
    await client.close()
    await tap.close()


# -- replays ---------------------------------------------------------------------------------------

async def test_a_replayed_push_is_refused_and_does_nothing(hub, tapped, caplog):
    folder, db, client, tap = tapped
    node_id = client.node["id"]
    await client.round()
    cards.issue_card(db, client.signer, product_id=hub.ids["annual_products"][0], kind="annual", now=utcnow(),
                     holder_name="Erika Mustermann")
    assert (await client.round()).pushed == 1
    [push] = [x for x in tap.requests("/push") if x.status == 200]
    before = (one(hub.db, "SELECT count(*) FROM sync_ops"), one(hub.db, "SELECT count(*) FROM conflicts"),
              one(hub.db, "SELECT last_push_at FROM node_scopes WHERE node_id = ?", node_id))
    caplog.clear()
    code, _, data = await replay(hub.url, push)
    assert code == 409 and slug(data) == "replayed-request"
    assert b"Mustermann" not in data
    assert "replayed /sync/v1/push" in caplog.text
    assert (one(hub.db, "SELECT count(*) FROM sync_ops"), one(hub.db, "SELECT count(*) FROM conflicts"),
            one(hub.db, "SELECT last_push_at FROM node_scopes WHERE node_id = ?", node_id)) == before


async def test_a_replayed_pull_is_refused_and_returns_no_changes(hub, tapped):
    folder, db, client, tap = tapped
    node_id = client.node["id"]
    assert (await client.round()).pulled > 100
    first_pull = tap.requests("/pull")[0]
    assert first_pull.status == 200 and len(first_pull.answer) > 10_000
    pulled_seq = one(hub.db, "SELECT pulled_seq FROM node_scopes WHERE node_id = ?", node_id)
    code, headers, data = await replay(hub.url, first_pull)
    assert code == 409 and slug(data) == "replayed-request"
    assert b"changes" not in data and len(data) < 1000
    assert one(hub.db, "SELECT pulled_seq FROM node_scopes WHERE node_id = ?", node_id) == pulled_seq


async def test_a_request_signed_outside_the_window_is_refused(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path)
    try:
        for off in (dt.timedelta(minutes=-6), dt.timedelta(minutes=6), YEAR):
            code, _, data = await get(hub.url, *signed_pull(client, sent=utcnow() + off))
            assert code == 401 and slug(data) == "stale-request", off
        # the signed time cannot be moved: a request signed 6 minutes ago, restamped "now" on the way
        path, old = signed_pull(client, sent=utcnow() - dt.timedelta(minutes=6))
        code, _, data = await get(hub.url, path, {**old, auth.SENT: iso_ms(utcnow())})
        assert code == 401 and slug(data) == "bad-signature"
        # inside the window it is fine, either way
        for off in (dt.timedelta(minutes=-4), dt.timedelta(minutes=4)):
            code, _, _ = await get(hub.url, *signed_pull(client, sent=utcnow() + off))
            assert code == 200, off
        # a refused request used up nothing: its nonce, signed in time, is accepted afterwards
        path, stale = signed_pull(client, sent=utcnow() - dt.timedelta(minutes=7), nonce="ab" * 16)
        assert (await get(hub.url, path, stale))[0] == 401
        assert (await get(hub.url, *signed_pull(client, nonce="ab" * 16)))[0] == 200
        assert (await get(hub.url, *signed_pull(client, nonce="ab" * 16)))[0] == 409
    finally:
        await client.close()


async def test_the_nonce_memory_is_shared_by_hub_processes_and_pruned(hub, tmp_path, aiohttp_server):
    """Two hub apps on one database (as several hub processes would be): a request accepted by
    one is a replay at the other. Nonces whose signed time has left the window are pruned."""
    _, db, client = await enrolled(hub, tmp_path)
    second_db = open_database(hub.dir)  # a second hub process's own connection
    second = await aiohttp_server(make_app(second_db))
    second_url = str(second.make_url("")).rstrip("/")
    try:
        path, headers = signed_pull(client)
        assert (await get(hub.url, path, headers))[0] == 200
        code, _, data = await get(second_url, path, headers)
        assert code == 409 and slug(data) == "replayed-request"
        node_id = client.node["id"]
        now = utcnow()
        assert nonces.remember(hub.db, node_id, "cd" * 16, now - auth.WINDOW - dt.timedelta(seconds=1), now)
        assert not nonces.remember(hub.db, node_id, "cd" * 16, now, now)  # the same nonce again
        assert nonces.prune(hub.db, now) == 1  # the old one only
        assert one(hub.db, "SELECT count(*) FROM sync_nonces WHERE nonce = ?", headers[auth.NONCE]) == 1
        assert nonces.prune(hub.db, now + auth.WINDOW + dt.timedelta(seconds=5)) >= 1
        assert one(hub.db, "SELECT count(*) FROM sync_nonces") == 0
    finally:
        await client.close()
        await second.close()
        second_db.close()


# -- clocks ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("off", [YEAR, -YEAR, None], ids=["a-year-ahead", "a-year-behind", "booted-in-1970"])
async def test_an_edge_with_a_wrong_clock_and_no_floor_resets_its_offset_and_syncs(hub, tmp_path, caplog, off):
    """A Pi without RTC, rebooted with no saved time: its first request is stale; the signed
    hub time in the refusal sets the client's offset, and the request goes again, once."""
    folder, db, _ = await enrolled(hub, tmp_path)
    db.execute("DELETE FROM time_floor")  # nothing saved: the clock is all it has

    def wrong() -> dt.datetime:
        return EPOCH + dt.timedelta(seconds=time.monotonic()) if off is None else utcnow() + off

    client = SyncClient(db, folder, clock=TrustedClock(db, system=wrong))
    try:
        caplog.clear()
        assert abs(client.sent_time() - utcnow()) > dt.timedelta(days=300)
        assert (await client.round()).pulled > 100
        assert caplog.text.count("stale request") == 1
        assert abs(client.sent_time() - utcnow()) < auth.WINDOW
        cards.issue_card(db, client.signer, product_id=hub.ids["annual_products"][0], kind="annual", now=utcnow())
        assert (await client.round()).pushed == 1
        assert caplog.text.count("stale request") == 1  # once learnt, every request is in the window
    finally:
        await client.close()


# -- protocol versions and 426 ---------------------------------------------------------------------

async def test_a_protocol_header_changed_on_the_way_gets_a_426_the_edge_does_not_believe(hub, tapped):
    folder, db, client, tap = tapped
    tap.mode = "protocol-99"
    with pytest.raises(SyncError) as refused:
        await client.round()
    assert not isinstance(refused.value, UpgradeNeeded)
    assert tap.seen[-1].status == 426 and "although it speaks protocol" in str(refused.value)
    client.note_error(refused.value)
    assert status(db)["upgrade_needed"] is None
    tap.mode = "pass"
    assert (await client.round()).pulled > 100


async def test_a_forged_or_replayed_426_changes_nothing(hub, tapped):
    folder, db, client, tap = tapped
    await client.round()
    state = db.execute("SELECT * FROM sync_state").fetchone()
    hub.server.app[routes.STATE].supported = (PROTOCOL + 1, PROTOCOL + 1)  # a real, signed 426 to capture
    with pytest.raises(UpgradeNeeded):
        await client.round()
    hub.server.app[routes.STATE].supported = (OLDEST_SUPPORTED, PROTOCOL)
    cards.issue_card(db, client.signer, product_id=hub.ids["annual_products"][0], kind="annual", now=utcnow())
    for mode in ("forge-426", "replay-426"):
        tap.mode = mode
        with pytest.raises(SyncError) as refused:
            await client.round()
        assert not isinstance(refused.value, UpgradeNeeded), mode
        assert db.execute("SELECT * FROM sync_state").fetchone() == state, mode
    assert status(db)["upgrade_needed"] is None and status(db)["ops_waiting"] == 1


async def test_a_hub_that_needs_an_upgrade_never_stops_the_loop(hub, tapped):
    """The hub answers 426 (signed) for a while; the desk goes on selling; once the hub is
    upgraded, the same loop syncs, without a restart. A forged 426 meanwhile is just a failure."""
    folder, db, client, tap = tapped
    await client.round()
    state = hub.server.app[routes.STATE]
    state.supported = (PROTOCOL - 1, PROTOCOL - 1)  # an older hub: the edge is ahead of it
    wake = asyncio.Event()
    loop = asyncio.create_task(client.run(wake, period_s=0.05, max_backoff_s=0.2))
    try:
        await async_wait_until(lambda: status(db)["upgrade_needed"] == "hub", what="upgrade shown")
        assert "hub needs upgrade" in status(db)["last_error"]
        sold = [cards.issue_card(db, client.signer, product_id=hub.ids["annual_products"][0], kind="annual",
                                 now=utcnow(), holder_name=f"Offline {i}")["id"] for i in range(3)]
        wake.set()
        attempts = len(tap.seen)
        await async_wait_until(lambda: len(tap.seen) >= attempts + 3, what="more attempts")
        assert not loop.done() and status(db)["ops_waiting"] == 3
        tap.mode = "forge-426"
        await async_wait_until(lambda: tap.seen[-1].status == 0 and status(db)["upgrade_needed"] is None,
                               what="a forged 426 is only a failed attempt")
        tap.mode = "pass"
        state.supported = (OLDEST_SUPPORTED, PROTOCOL)  # the hub is upgraded
        await async_wait_until(lambda: status(db)["ops_waiting"] == 0, timeout=20, what="synced after the upgrade")
        assert not loop.done()
        assert one(hub.db, f"SELECT count(*) FROM cards WHERE id IN ({','.join('?' * 3)})", *sold) == 3
        await async_wait_until(lambda: status(db)["upgrade_needed"] is None and status(db)["last_error"] is None)
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop


# -- revoked hub keys ------------------------------------------------------------------------------

@pytest.mark.sqlite_only("a copy of the hub folder holds a copy of the database only on SQLite")
async def test_answers_signed_by_a_revoked_hub_key_are_refused(hub, tmp_path, aiohttp_server, caplog):
    """A copy of the hub folder with its old key (a stolen backup, an old disk) poses as the
    hub after the key was rotated: the edge knows the revocation from the feed and refuses it."""
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        hub.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copytree(hub.dir, tmp_path / "stolen")
        old_key = one(hub.db, "SELECT key_id FROM node")
        new_key = nodes.rotate_hub_key(hub.dir, hub.db)
        await client.round()  # from the real hub: its new certificate and the old key's revocation
        assert client.trust().get(old_key).revoked_at_ms is not None
        assert client._hub_key().key_id == new_key  # pushes are never sealed to the revoked key
        stolen_db = connect(tmp_path / "stolen" / DB_NAME)
        with stolen_db:
            stolen_db.execute("UPDATE performances SET title = 'Falsche Vorstellung'")
        stolen = await aiohttp_server(make_app(stolen_db))
        client.hub_url = str(stolen.make_url("")).rstrip("/")
        caplog.clear()
        with pytest.raises(SyncError, match="revoked hub key"):
            await client.round()
        assert "revoked hub key" in caplog.text
        assert one(db, "SELECT count(*) FROM performances WHERE title = 'Falsche Vorstellung'") == 0
        await stolen.close()
        stolen_db.close()
    finally:
        await client.close()
