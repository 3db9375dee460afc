"""Edge <-> hub sync over real HTTP on loopback: enrollment, push, pull, contingents, recalls,
revocation, protocol versions, and a rogue hub. The hub is the real aiohttp app on a sample
database; the edge is a real data folder driven by the real sync client."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Coroutine

import pytest
from aiohttp import web

from core.base import sql
from core.base.clock import utcnow
from core.base.node import NODE_DB
from core.base.storage import connect
from core.cards import cards, keys
from core.sales import contingents
from core.sales.tickets import SaleIn, sell
from core.sync.messages import PROTOCOL
from edge.sync import enroll as enrolling
from edge.sync.client import SyncClient, SyncError, status
from hub.app import init_hub, make_app
from hub.services import nodes
from hub.sync import enrollment


def code_for(hub, role: str = "cashdesk", name: str = "Kasse 1", venues: list[str] | None = None) -> str:
    return enrollment.create_code(hub.db, name=name, role=role, venue_ids=venues or [], now=utcnow())


async def enrolled(hub, tmp_path, role: str = "cashdesk", name: str = "Kasse 1", venues: list[str] | None = None):
    folder = tmp_path / name.replace(" ", "-")
    await enrolling.enroll(folder, code_for(hub, role, name, venues), [hub.url])
    db = connect(folder / NODE_DB, edge=True)
    return folder, db, SyncClient(db, folder)


@contextlib.asynccontextmanager
async def served_for_a_while(hub) -> AsyncIterator[None]:
    """The hub's app on a loopback port (`hub.url`) while the block runs: for enrolling desks
    over real HTTP into a hub that a test process prepares once."""
    runner = web.AppRunner(make_app(hub.db), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hub.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield
    finally:
        await runner.cleanup()


def run_apart(work: Coroutine) -> None:
    """Run *work* on an event loop of its own, not the test's: preparing runs once, from a plain fixture."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(work)
    finally:
        loop.close()


async def _enroll_into(hub, name: str) -> None:
    """Cash desk *name* enrolled over real HTTP into the hub's folder (`<hub>/Kasse-1`, so a copy
    of the hub copies it), nothing pulled yet."""
    async with served_for_a_while(hub):
        _, db, client = await enrolled(hub, hub.dir, name=name)
        await client.close()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()


def enroll_into(hub, name: str) -> None:
    """For a `prepare` of tests.conftest.prepared_sample_hub: what `enrolled(hub, ..., name=name)`
    makes, once per test process instead of per test (a desk's migrated database, key and
    enrollment cost about a second); `kasse_1` opens the copy's desk."""
    run_apart(_enroll_into(hub, name))


def with_kasse_1(hub) -> None:
    """A `prepare` (name "kasse-1-enrolled"): Kasse 1 enrolled (`enroll_into`)."""
    enroll_into(hub, "Kasse 1")


def kasse_1(hub, name: str = "Kasse 1"):
    """Desk *name* of a prepared hub (`enroll_into`), as `enrolled` returns it: its folder, database
    and sync client, sent to this test's served hub (`hub.url`), not the one it enrolled at."""
    folder = hub.dir / name.replace(" ", "-")
    db = connect(folder / NODE_DB, edge=True)
    return folder, db, SyncClient(db, folder, hub_url=hub.url)


def first_performance_seats(hub, n: int) -> tuple[str, list[str]]:
    performance = hub.ids["performances"][0]
    return performance, list(contingents.seats_of(hub.db, performance))[:n]


async def test_enroll_then_pull_the_catalog_and_certificates(hub, tmp_path):
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        result = await client.round()
        assert result.pulled > 100
        for table in ("performances", "annual_products", "seats", "node_certs", "customers"):
            hub_n = hub.db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]
            assert db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == hub_n, table
        st = status(db)
        assert st["online"] and st["ops_waiting"] == 0 and st["conflicts"] == 0 and st["cursor"] > 0
        # a second round brings nothing new
        assert (await client.round()).pulled == 0
        assert keys.read_private(folder / keys.NODE_KEY_FILE)
    finally:
        await client.close()


async def test_a_gate_gets_no_customers(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path, role="gate", name="Tor 1")
    try:
        await client.round()
        assert db.execute("SELECT count(*) AS n FROM customers").fetchone()["n"] == 0
        assert db.execute("SELECT count(*) AS n FROM performances").fetchone()["n"] == len(hub.ids["performances"])
    finally:
        await client.close()


async def test_an_expired_code_is_refused(hub, tmp_path):
    code = enrollment.create_code(hub.db, name="alt", role="gate", venue_ids=[],
                                  now=utcnow() - dt.timedelta(hours=25))
    with pytest.raises(enrolling.EnrollError, match="expired"):
        await enrolling.enroll(tmp_path / "x", code, [hub.url])


async def test_a_rogue_hub_cannot_enroll_or_feed_an_edge(hub, tmp_path, aiohttp_server):
    rogue_db, _ = init_hub(tmp_path / "rogue")
    rogue = await aiohttp_server(make_app(rogue_db))
    rogue_url = str(rogue.make_url("")).rstrip("/")
    code = code_for(hub)
    # the rogue accepts nothing: the code's secret is unknown there, and its root is another
    with pytest.raises(enrolling.EnrollError):
        await enrolling.enroll(tmp_path / "e", code, [rogue_url])
    # the real hub is tried next and wins
    node = await enrolling.enroll(tmp_path / "e", code, [rogue_url, hub.url])
    assert node["hub_url"] == hub.url
    db = connect(tmp_path / "e" / NODE_DB, edge=True)
    client = SyncClient(db, tmp_path / "e", hub_url=rogue_url)
    try:
        with pytest.raises(SyncError):
            await client.round()
        assert db.execute("SELECT count(*) AS n FROM performances").fetchone()["n"] == 0
    finally:
        await client.close()


async def test_offline_sales_reach_the_hub_exactly_once(hub, tmp_path):
    folder, db, client = await enrolled(hub, tmp_path)
    node = db.execute("SELECT * FROM node").fetchone()
    performance, seats = first_performance_seats(hub, 6)
    contingents.move_seats(hub.db, performance, seats, contingents.node_pool(node["id"]), utcnow())
    try:
        await client.round()
        sale = sell(db, node, SaleIn(performance_id=performance, seat_ids=seats[:2], payment_method="cash"),
                    pool=contingents.node_pool(node["id"]), channel="cashdesk", now=utcnow())
        signer = cards.load_signer(db, folder)
        card = cards.issue_card(db, signer, product_id=hub.ids["annual_products"][0], kind="annual", now=utcnow(),
                                holder_name="Offline Käuferin")
        result = await client.round()
        assert result.pushed == 2 and result.rejected == 0, hub.db.execute("SELECT reason FROM conflicts").fetchall()
        assert hub.db.execute("SELECT count(*) AS n FROM tickets WHERE order_id = ?",
                              (sale["id"],)).fetchone()["n"] == 2
        assert hub.db.execute("SELECT holder_name FROM cards WHERE id = ?", (card["id"],)).fetchone()["holder_name"] \
            == "Offline Käuferin"
        # the same ops again (a lost answer, a retried request): duplicates, nothing twice
        db.execute("UPDATE sync_state SET pushed_seq = 0")
        again = await client.round()
        assert again.pushed == 2 and again.rejected == 0
        assert hub.db.execute("SELECT count(*) AS n FROM tickets").fetchone()["n"] == 2
        assert hub.db.execute("SELECT count(*) AS n FROM sync_ops").fetchone()["n"] == 2
        assert [r["result"] for r in db.execute("SELECT result FROM outbox ORDER BY node_seq")] == ["duplicate"] * 2
    finally:
        await client.close()


async def test_a_desk_sells_only_its_own_contingent(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path)
    node = db.execute("SELECT * FROM node").fetchone()
    performance, seats = first_performance_seats(hub, 3)
    try:
        await client.round()
        with pytest.raises(Exception, match="not in this desk's contingent"):
            sell(db, node, SaleIn(performance_id=performance, seat_ids=seats[:1], payment_method="cash"),
                 pool=contingents.node_pool(node["id"]), channel="cashdesk", now=utcnow())
        assert db.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"] == 0
    finally:
        await client.close()


async def test_a_sale_the_hub_cannot_accept_becomes_a_conflict(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path)
    node = db.execute("SELECT * FROM node").fetchone()
    performance, seats = first_performance_seats(hub, 2)
    contingents.move_seats(hub.db, performance, seats, contingents.node_pool(node["id"]), utcnow())
    try:
        await client.round()
        # behind the desk's back the hub database is changed (as a bug or an operator might):
        hub.db.execute("DELETE FROM seat_pools WHERE seat_id = ?", (seats[0],))
        sell(db, node, SaleIn(performance_id=performance, seat_ids=seats[:1], payment_method="card",
                              payment_reference="TID 4711"), pool=contingents.node_pool(node["id"]),
             channel="cashdesk", now=utcnow())
        result = await client.round()
        assert result.rejected == 1
        conflict = hub.db.execute("SELECT * FROM conflicts").fetchone()
        assert conflict["kind"] == "sale.completed" and "contingent" in conflict["reason"]
        assert status(db)["conflicts"] == 1
        assert hub.db.execute("SELECT count(*) AS n FROM tickets").fetchone()["n"] == 0
    finally:
        await client.close()


async def test_recall_is_two_steps_and_sold_seats_stay_sold(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path)
    node = db.execute("SELECT * FROM node").fetchone()
    pool = contingents.node_pool(node["id"])
    performance, seats = first_performance_seats(hub, 4)
    contingents.move_seats(hub.db, performance, seats, pool, utcnow())
    try:
        await client.round()
        sell(db, node, SaleIn(performance_id=performance, seat_ids=seats[:1], payment_method="cash"), pool=pool,
             channel="cashdesk", now=utcnow())  # offline: the hub does not know yet
        moved = contingents.move_seats(hub.db, performance, seats, "hub", utcnow())
        assert moved["moved"] == [] and len(moved["recalls"]) == 1
        # until the desk answers, the seats are still the desk's
        assert {contingents.pool_of(hub.db, performance, s) for s in seats} == {pool}
        result = await client.round()
        assert result.recalls_answered == 1
        assert [contingents.pool_of(hub.db, performance, s) for s in seats] == [pool, "hub", "hub", "hub"]
        recall = hub.db.execute("SELECT * FROM recalls").fetchone()
        assert recall["state"] == "done" and json.loads(recall["kept_sold"]) == [seats[0]]
        summary = contingents.summary(hub.db, performance)
        assert sum(p["seats"] for p in summary["pools"]) == summary["seats"]
        assert sum(p["sold"] for p in summary["pools"]) == 1
    finally:
        await client.close()


async def test_a_revoked_node_is_refused(hub, tmp_path, caplog):
    folder, db, client = await enrolled(hub, tmp_path)
    node = db.execute("SELECT * FROM node").fetchone()
    try:
        await client.round()
        cards.issue_card(db, cards.load_signer(db, folder), product_id=hub.ids["annual_products"][0], kind="annual",
                         now=utcnow())
        nodes.revoke_node(hub.db, nodes.root_key(hub.dir), node["id"], reason="lost")
        with pytest.raises(SyncError, match="403"):
            await client.round()
        assert "revoked node" in caplog.text
        assert hub.db.execute("SELECT count(*) AS n FROM sync_ops").fetchone()["n"] == 0
    finally:
        await client.close()


async def test_tampered_requests_are_refused(hub, tmp_path):
    folder, db, client = await enrolled(hub, tmp_path)
    try:
        session = client.session()
        headers = {"X-Tessera-Node": db.execute("SELECT id FROM node").fetchone()["id"], "X-Tessera-Key": "00000000",
                   "X-Tessera-Nonce": "n", "X-Tessera-Signature": "00"}
        async with session.get(f"{hub.url}/sync/v1/pull?after=0", headers=headers) as resp:
            assert resp.status == 401
        from core.sync import auth
        good = auth.sign_request(client.signer.private, client.signer.key_id, client.node["id"], "GET",
                                 "/sync/v1/pull?after=0", b"", sent=utcnow(), protocol=PROTOCOL)
        async with session.get(f"{hub.url}/sync/v1/pull?after=5", headers=good) as resp:
            assert resp.status == 401 and (await resp.json())["type"].endswith("bad-signature")
    finally:
        await client.close()


async def test_protocol_versions(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path)
    try:
        from core.sync import auth
        for version, slug in (("99", "upgrade-hub"), ("0", "upgrade-edge")):
            headers = auth.sign_request(client.signer.private, client.signer.key_id, client.node["id"], "GET",
                                        "/sync/v1/pull?after=0", b"", sent=utcnow(), protocol=PROTOCOL)
            headers["X-Tessera-Protocol"] = version
            async with client.session().get(f"{hub.url}/sync/v1/pull?after=0", headers=headers) as resp:
                assert resp.status == 426 and (await resp.json())["type"].endswith(slug)
    finally:
        await client.close()


async def test_edge_status_while_the_hub_is_away(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path)
    await hub.server.close()
    try:
        with pytest.raises(SyncError, match="unreachable"):
            await client.round()
        client.note_error(SyncError("hub unreachable"))
        st = status(db)
        assert not st["online"] and "unreachable" in st["last_error"]
    finally:
        await client.close()


def test_every_replicated_table_has_change_triggers(sample_hub):
    from core.sync.replica import REPLICATED
    query = ("SELECT trigger_name AS name FROM information_schema.triggers" if sql.is_postgresql(sample_hub.db)
             else "SELECT name FROM sqlite_master WHERE type = 'trigger'")
    triggers = {r["name"] for r in sample_hub.db.execute(query)}
    for table in REPLICATED:
        assert {f"changes_{table}_ins", f"changes_{table}_upd", f"changes_{table}_del"} <= triggers, table


async def test_office_api_for_contingents_conflicts_and_codes(hub, tmp_path, aiohttp_client):
    from tests.helpers import call, problem
    api = await aiohttp_client(hub.server.app if hasattr(hub.server, "app") else make_app(hub.db))
    api.hub = hub
    created = await call(api, "POST", "/enrollment-codes", {"name": "Kasse 9", "role": "cashdesk"}, status=201)
    await enrolling.enroll(tmp_path / "k9", created["code"], [hub.url])
    db = connect(tmp_path / "k9" / NODE_DB, edge=True)
    node_id = db.execute("SELECT id FROM node").fetchone()["id"]
    performance, seats = first_performance_seats(hub, 5)
    moved = await call(api, "POST", f"/performances/{performance}/pools",
                       {"seat_ids": seats[:3], "to": f"node:{node_id}"}, status=200)
    assert moved["moved"] == seats[:3] and moved["recalls"] == []
    summary = await call(api, "GET", f"/performances/{performance}/pools", status=200)
    assert {p["pool"]: p["seats"] for p in summary["pools"]}[f"node:{node_id}"] == 3
    sale = await call(api, "POST", "/sales", {"performance_id": performance, "seat_ids": seats[3:5],
                                              "payment_method": "card"}, status=201)
    assert len(sale["tickets"]) == 2 and sale["channel"] == "phone"  # staff sell through the phone channel
    await problem(api, "POST", "/sales", {"performance_id": performance, "seat_ids": seats[:1],
                                          "payment_method": "cash"}, status=409, slug="conflict")
    await problem(api, "POST", f"/performances/{performance}/pools", {"seat_ids": seats[3:4], "to": "hub"},
                  status=409, slug="conflict")  # sold seats stay where they are
    await problem(api, "POST", f"/performances/{performance}/pools", {"seat_ids": seats[:1], "to": "node:nope"},
                  status=422, slug="validation-failed")
    back = await call(api, "POST", f"/performances/{performance}/pools", {"seat_ids": seats[:3], "to": "hub"},
                      status=200)
    assert back["moved"] == [] and back["recalls"][0]["node_id"] == node_id
    client = SyncClient(db, tmp_path / "k9")
    try:
        await client.round()
    finally:
        await client.close()
    summary = await call(api, "GET", f"/performances/{performance}/pools", status=200)
    assert summary["open_recalls"] == [] and f"node:{node_id}" not in {p["pool"] for p in summary["pools"]}
    assert await call(api, "GET", "/conflicts", status=200) == []
    synced = await call(api, "GET", "/node-sync", status=200)
    assert synced[0]["name"] == "Kasse 9" and synced[0]["behind"] >= 0 and synced[0]["last_push_at"]


async def test_an_enrolled_gate_syncs_entries_up_and_revocations_down(hub, tmp_path):
    import asyncio

    from devices.profiles import load_relay
    from devices.relays.simulated import LogRelay
    from devices.scanners.base import QueueScanner
    from edge.gate.loop import Gate, GateOptions

    venue = hub.ids["museum_venues"]["Stadtmuseum"]
    folder = tmp_path / "tor"
    await enrolling.enroll(folder, code_for(hub, role="gate", name="Tor 1", venues=[venue]), [hub.url])
    gate = Gate(GateOptions(folder, http_port=0, peers=False, quiet=True, sync_period_s=0.1),
                scanner=QueueScanner(), relay=LogRelay(load_relay("sim-log")))
    await gate.start()

    async def until(predicate, timeout=10.0):
        for _ in range(int(timeout / 0.05)):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("not reached")

    try:
        signer = cards.load_signer(hub.db, hub.dir)
        card = cards.issue_card(hub.db, signer, product_id=hub.ids["annual_products"][0], kind="annual",
                                now=utcnow(), holder_name="Synchron Sabine")
        await until(lambda: gate.access.decide(card["code"]).admitted)
        assert gate.access.decide(card["code"]).holder == "Synchron Sabine"
        admitted = await gate.handle(card["code"])
        assert admitted.admitted
        await until(lambda: hub.db.execute("SELECT count(*) AS n FROM entries WHERE id = ?",
                                           (admitted.entry_id,)).fetchone()["n"] == 1)
        cards.revoke_card(hub.db, signer, card["id"], "lost and found", utcnow())
        await until(lambda: gate.access.decide(card["code"]).reason == "REVOKED")
        other = cards.issue_card(hub.db, signer, product_id=hub.ids["annual_products"][0], kind="annual",
                                 now=utcnow())
        cards.reissue_card(hub.db, signer, other["id"], utcnow())
        await until(lambda: gate.access.decide(other["code"]).reason == "SUPERSEDED")
        assert gate.status()["sync"]["ops_waiting"] == 0
    finally:
        await gate.close()


async def test_edges_follow_a_hub_key_rotation(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path)
    try:
        await client.round()
        new_key = nodes.rotate_hub_key(hub.dir, hub.db)
        assert client.trust().get(new_key) is None
        await client.round()  # answered with the new key; its certificate comes along, checked against the root
        assert client.trust().get(new_key).role == "hub"
    finally:
        await client.close()


async def test_a_certificate_not_from_the_root_is_not_learned(hub, tmp_path):
    _, db, client = await enrolled(hub, tmp_path)
    try:
        forged_root = keys.generate()
        from core.cards.trust import certify
        fake = keys.generate()
        record = certify(forged_root, node_id="x", name="evil hub", role="hub", public_raw=keys.public_bytes(fake),
                         now=utcnow())
        assert client._learn_hub_cert(record, keys.key_id(keys.public_bytes(fake))) is None
        assert db.execute("SELECT count(*) AS n FROM node_certs WHERE name = 'evil hub'").fetchone()["n"] == 0
    finally:
        await client.close()


@pytest.mark.slow  # zeroconf browsing, about 7 s
async def test_a_rogue_hub_announced_with_the_right_fingerprint_is_skipped(hub, tmp_path, aiohttp_server):
    """`tessera edge enroll` without --hub: a rogue announces itself on the LAN claiming the
    organizer's root (TXT is anyone's to write); the edge tries it, rejects its answer, and
    enrolls with the real hub."""
    import asyncio
    import sys
    from pathlib import Path

    from hub.sync.advertise import HubAdvertiser, root_fingerprint

    rogue_db, _ = init_hub(tmp_path / "rogue")
    rogue = await aiohttp_server(make_app(rogue_db))
    fingerprint = root_fingerprint(hub.db)
    announced = [HubAdvertiser(port=server.port, node_id=node, name=name, root_fingerprint=fingerprint,
                               interfaces=["127.0.0.1"])
                 for server, node, name in ((rogue, "rogue-node", "Evil"), (hub.server, "real-node", "Real"))]
    for advertiser in announced:
        await advertiser.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli.main", "edge", "enroll", "--data", str(tmp_path / "desk"), "--code",
            code_for(hub), "--zeroconf-interface", "127.0.0.1", "--discover-seconds", "2",
            cwd=Path(__file__).resolve().parents[1], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert hub.url.split("//")[1].split(":")[1] in out.decode()  # the real hub's port
    finally:
        for advertiser in announced:
            await advertiser.close()
    db = connect(tmp_path / "desk" / NODE_DB, edge=True)
    assert db.execute("SELECT hub_url FROM sync_state").fetchone()["hub_url"] == hub.url


def test_a_sale_looks_up_seats_by_the_same_rule_as_the_seat_list(sample_hub):
    """`some_seats` (a few seats, for a sale) and `seats_of` (the whole house) agree for every
    performance, whatever plan variant it uses (pit covered, stage extension)."""
    db = sample_hub.db
    variants_seen = set()
    for performance in sample_hub.ids["performances"]:
        variant = db.execute("SELECT variant_id FROM performances WHERE id = ?", (performance,)).fetchone()
        if variant["variant_id"] in variants_seen:
            continue
        variants_seen.add(variant["variant_id"])
        plan = db.execute("SELECT plan_id FROM plan_variants WHERE id = ?", (variant["variant_id"],)).fetchone()
        every_seat_of_plan = [r["id"] for r in db.execute("SELECT id FROM seats WHERE plan_id = ?", (plan["plan_id"],))]
        some = contingents.some_seats(db, performance, every_seat_of_plan)
        assert set(some) == set(contingents.seats_of(db, performance))
    assert len(variants_seen) >= 2
