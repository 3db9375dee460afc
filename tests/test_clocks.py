"""Clocks that run ahead are caught like clocks that run behind (trusted time, B7), the hub
flags ops stamped ahead of their arrival, and the pinned root never comes through the feed.

Real parts throughout: the hub is the real aiohttp app on a sample database over loopback,
edges are real data folders driven by the real sync client, the gate is the real Gate
object restarted on the same SQLite file. A node's wrong clock is either a `system`
callable given to its TrustedClock or TESSERA_CLOCK_OFFSET_S (core/base/clock.py), which
shifts only the clock trusted time reads, so the hub in the same process keeps the right one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.base.clock import CLOCK_OFFSET_ENV, iso, parse_iso, utcnow
from core.base.node import NODE_DB, init_node
from core.base.storage import connect, transaction
from core.cards import cards, keys, trust
from core.cards.trust import TrustStore
from core.cards.trusted_time import MAX_SKEW, TrustedClock
from core.migrations.feed_triggers import REPLICATED
from core.sales import contingents
from core.sales.tickets import SaleIn, sell
from core.sync import conflicts, replica
from core.sync import scope as node_scope
from core.sync.messages import Change
from devices.profiles import load_relay
from devices.relays.simulated import LogRelay
from devices.scanners.base import QueueScanner
from edge.gate.loop import Gate, GateOptions
from edge.sync import enroll as enrolling
from edge.sync.client import SyncClient
from hub.sync import enrollment, feed

ROOT = Path(__file__).resolve().parent.parent
YEAR = dt.timedelta(days=365)
DAY = dt.timedelta(days=1)


async def enrolled(hub, tmp_path, role: str = "cashdesk", name: str = "Kasse 1",
                   venues: list[str] | None = None) -> tuple[Path, object]:
    folder = tmp_path / name.replace(" ", "-")
    code = enrollment.create_code(hub.db, name=name, role=role, venue_ids=venues or [], now=utcnow())
    await enrolling.enroll(folder, code, [hub.url])
    return folder, connect(folder / NODE_DB, edge=True)


def as_if_rebooted(db) -> None:
    """The hub time this node holds was seen in an earlier boot: monotonic time since then is
    unknown, so trusted time falls back to the floor until the next sync."""
    assert db.execute("SELECT hub_boot FROM time_floor").fetchone()["hub_boot"]
    with transaction(db):
        db.execute("UPDATE time_floor SET hub_boot = 'an-earlier-boot'")


def close_to(moment: dt.datetime, expected: dt.datetime, seconds: float = 60) -> bool:
    return abs((moment - expected).total_seconds()) < seconds


def bare_gate_db(tmp_path: Path):
    db = connect(tmp_path / NODE_DB, edge=True)
    init_node(db, "gate", "Tor")
    return db


# -- the rule, on one database -----------------------------------------------------------------

def test_beyond_the_threshold_hub_time_wins_either_way_within_it_the_system_clock(tmp_path):
    db = bare_gate_db(tmp_path)
    real = utcnow()
    TrustedClock(db, boot=lambda: "boot-1").set_from_hub(real)
    for off, using in ((dt.timedelta(minutes=4), "system"), (-dt.timedelta(minutes=4), "floor+monotonic"),
                       (dt.timedelta(minutes=6), "hub+monotonic"), (-dt.timedelta(minutes=6), "hub+monotonic"),
                       (YEAR, "hub+monotonic"), (-50 * YEAR, "hub+monotonic")):
        clock = TrustedClock(db, system=lambda off=off: utcnow() + off, boot=lambda: "boot-1")
        assert clock.status()["using"] == using, off
        if using == "system":  # a little ahead: believed
            assert close_to(clock.now(), real + off, 5)
        else:  # behind is never believed (the floor); far ahead is not either (the hub's time)
            assert close_to(clock.now(), real, 5), off
            assert close_to(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=clock.offset_seconds()), real + off, 5)
    assert dt.timedelta(minutes=5) == MAX_SKEW
    strict = TrustedClock(db, system=lambda: utcnow() + dt.timedelta(minutes=2), boot=lambda: "boot-1",
                          max_skew=dt.timedelta(minutes=1))
    assert close_to(strict.now(), real, 5) and strict.status()["max_skew_seconds"] == 60
    status = TrustedClock(db, system=lambda: utcnow() + YEAR, boot=lambda: "boot-1").status()
    assert status["hub_time_known"] and abs(status["clock_ahead_seconds"] - YEAR.total_seconds()) < 60
    assert status["clock_behind_seconds"] == 0


def test_after_a_reboot_without_hub_contact_the_floor_logic_holds(tmp_path):
    db = bare_gate_db(tmp_path)
    real = utcnow()
    TrustedClock(db, boot=lambda: "boot-1").set_from_hub(real)
    booted_in_1970 = TrustedClock(db, system=lambda: dt.datetime(1970, 1, 1, tzinfo=dt.UTC), boot=lambda: "boot-2")
    assert booted_in_1970.now() >= real.replace(microsecond=0)
    assert booted_in_1970.status()["using"] == "floor+monotonic"
    assert not booted_in_1970.status()["hub_time_known"]
    # ahead after a reboot: nothing to compare it with until the next sync (docs/sync.md, Clocks)
    ahead = TrustedClock(db, system=lambda: utcnow() + YEAR, boot=lambda: "boot-2")
    assert close_to(ahead.now(), real + YEAR)
    ahead.set_from_hub(utcnow())
    assert close_to(ahead.now(), utcnow())


def test_entries_stamped_ahead_in_the_hubs_boot_do_not_raise_the_floor(tmp_path):
    """An entry recorded after the last sync, in the same boot, counts for the floor only up to
    the hub's time at its monotonic moment: after a reboot the floor is not in the future."""
    from core.base import outbox
    from core.cards.access import EntryOp

    db = bare_gate_db(tmp_path)
    real = utcnow()
    TrustedClock(db).set_from_hub(real)  # this boot, the real monotonic clock (as outbox records)
    with transaction(db):
        outbox.record(db, "entry.recorded", EntryOp(record="x"), wall_time=iso(real + YEAR))
    rebooted = TrustedClock(db, system=lambda: dt.datetime(1970, 1, 1, tzinfo=dt.UTC), boot=lambda: "boot-2")
    assert close_to(rebooted.now(), utcnow()) and rebooted.floor <= utcnow()


# -- a desk a year ahead -----------------------------------------------------------------------

async def test_a_desk_a_year_ahead_sells_cards_valid_now_after_one_sync(hub, tmp_path):
    venue = hub.ids["museum_venues"]["Stadtmuseum"]
    folder, db = await enrolled(hub, tmp_path)
    gate_folder, gate_db = await enrolled(hub, tmp_path, role="gate", name="Tor 1", venues=[venue])
    as_if_rebooted(db)  # switched on again with its clock a year ahead, not synced since
    clock = TrustedClock(db, system=lambda: utcnow() + YEAR)
    assert close_to(clock.now(), utcnow() + YEAR)  # the desk cannot know yet
    client = SyncClient(db, folder, clock=clock)
    gate_client = SyncClient(gate_db, gate_folder)
    try:
        await client.round()  # one sync
        signer = cards.load_signer(db, folder)
        with transaction(db):
            card = cards.issue_card(db, signer, product_id=hub.ids["annual_products"][0], kind="annual",
                                    now=clock.now(), holder_name="Vorlaut Vera")
        assert parse_iso(card["valid_from"]) <= utcnow()
        pushed, rejected = await client.push()
        assert (pushed, rejected) == (1, 0)
        await gate_client.round()
        from core.cards.access import Access, GateRules
        verdict = Access(gate_db, GateRules(venue_id=venue), TrustedClock(gate_db)).decide(card["code"])
        assert verdict.admitted, verdict.reason  # before: NOT_YET_VALID for a year
        assert conflicts.listed(hub.db) == []
        assert close_to(clock.now(), utcnow()) and clock.status()["using"] == "hub+monotonic"
        assert clock.status()["clock_ahead_seconds"] > 364 * 86400
    finally:
        await client.close()
        await gate_client.close()


async def test_the_desk_status_bar_data_shows_a_clock_a_year_ahead(hub, tmp_path, monkeypatch, aiohttp_client):
    """/api/status, which the desk's status bar polls (its `status-clock` pill), says how far off."""
    from edge.desk.server import Edge

    folder, db = await enrolled(hub, tmp_path)
    db.close()
    monkeypatch.setenv(CLOCK_OFFSET_ENV, str(YEAR.total_seconds()))
    edge = Edge(folder, sync=False)
    try:
        client = await aiohttp_client(edge.app())
        resp = await client.get("/api/status")
        assert resp.status == 200
        clock = (await resp.json())["clock"]
        assert clock["using"] == "hub+monotonic" and clock["clock_offset_seconds"] > 364 * 86400
        assert close_to(parse_iso(clock["trusted"]), utcnow())
    finally:
        await edge.close()


@pytest.mark.slow  # a real `tessera edge status` process (about 2 s)
async def test_edge_status_shows_a_clock_a_year_ahead(hub, tmp_path):
    folder, db = await enrolled(hub, tmp_path)
    env = {**os.environ, CLOCK_OFFSET_ENV: str(YEAR.total_seconds())}
    proc = subprocess.run([sys.executable, "-m", "cli.main", "edge", "status", "--data", str(folder)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    clock = json.loads(proc.stdout)["clock"]
    assert clock["using"] == "hub+monotonic" and abs(clock["clock_ahead_seconds"] - YEAR.total_seconds()) < 120
    assert close_to(parse_iso(clock["trusted"]), utcnow())


# -- a gate that ran ahead, synced, restarted ---------------------------------------------------

async def start_gate(folder: Path) -> Gate:
    gate = Gate(GateOptions(folder, http_port=0, peers=False, quiet=True, sync=False),
                scanner=QueueScanner(), relay=LogRelay(load_relay("sim-log")))
    await gate.start()
    return gate


@pytest.mark.parametrize("clock", ["set-right-by-ntp", "still-ahead"])
async def test_a_gate_ahead_corrected_by_sync_stays_corrected_after_a_restart(hub, tmp_path, monkeypatch, clock):
    venue = hub.ids["museum_venues"]["Stadtmuseum"]
    folder, db = await enrolled(hub, tmp_path, role="gate", name="Tor 1", venues=[venue])
    signer = cards.load_signer(hub.db, hub.dir)
    guests = [cards.issue_card(hub.db, signer, product_id=hub.ids["annual_products"][0], kind="annual",
                               now=utcnow(), holder_name=f"Gast {i}") for i in range(3)]
    first = SyncClient(db, folder)
    try:
        await first.round()
    finally:
        await first.close()
    as_if_rebooted(db)
    db.close()
    ahead = 3 * DAY
    monkeypatch.setenv(CLOCK_OFFSET_ENV, str(ahead.total_seconds()))
    gate = await start_gate(folder)
    try:
        assert close_to(gate.clock.now(), utcnow() + ahead)
        for guest in guests[:2]:
            assert (await gate.handle(guest["code"])).admitted
        stamped = [parse_iso(r["wall_time"]) for r in gate.db.execute(
            "SELECT wall_time FROM outbox WHERE kind = 'entry.recorded'")]
        assert len(stamped) == 2 and all(close_to(t, utcnow() + ahead) for t in stamped)
        if clock == "set-right-by-ntp":
            monkeypatch.delenv(CLOCK_OFFSET_ENV)  # the system clock is right again, its entries are not
        client = SyncClient(connect(folder / NODE_DB, edge=True), folder, clock=gate.clock)
        try:
            await client.round()  # the hub's time corrects it
        finally:
            await client.close()
            client.db.close()
        assert close_to(gate.clock.now(), utcnow())
    finally:
        await gate.close()
    gate = await start_gate(folder)  # the same SQLite file, every object new
    try:
        assert close_to(gate.clock.now(), utcnow()), gate.clock.status()  # before: 3 days ahead again
        verdict = await gate.handle(guests[2]["code"])
        assert verdict.admitted
        at = gate.db.execute("SELECT wall_time FROM outbox WHERE kind = 'entry.recorded' "
                             "ORDER BY node_seq DESC LIMIT 1").fetchone()["wall_time"]
        assert close_to(parse_iso(at), utcnow())
        if clock == "still-ahead":  # the status page says so, either way of wrong
            import aiohttp
            async with aiohttp.ClientSession() as session, session.get(gate.url + "/") as resp:
                page = await resp.text()
            assert "Systemuhr geht" in page and "s vor" in page and "system clock is" in page and "ahead" in page
    finally:
        await gate.close()


# -- the hub flags ops stamped ahead -----------------------------------------------------------

async def test_the_hub_flags_ops_stamped_ahead_of_their_arrival(hub, tmp_path):
    folder, db = await enrolled(hub, tmp_path)
    node = db.execute("SELECT * FROM node").fetchone()
    performance = hub.ids["performances"][0]
    seats = list(contingents.seats_of(hub.db, performance))[:4]
    contingents.move_seats(hub.db, performance, seats, contingents.node_pool(node["id"]), utcnow())
    on_time = SyncClient(db, folder)
    try:
        await on_time.round()  # the seats arrive
    finally:
        await on_time.close()
    as_if_rebooted(db)
    clock = TrustedClock(db, system=lambda: utcnow() + DAY)  # no hub contact since: it cannot tell

    def sale(pair: list[str], now: dt.datetime) -> dict:
        with transaction(db):
            return sell(db, node, SaleIn(performance_id=performance, seat_ids=pair, payment_method="cash"),
                        pool=contingents.node_pool(node["id"]), channel="cashdesk", now=now)

    early = sale(seats[:2], clock.now())
    assert close_to(parse_iso(early["created_at"]), utcnow() + DAY)
    client = SyncClient(db, folder, clock=clock)
    try:
        assert await client.push() == (1, 0)  # applied: the sale happened, only its time is wrong
        stored = hub.db.execute("SELECT created_at FROM orders WHERE id = ?", (early["id"],)).fetchone()
        assert close_to(parse_iso(stored["created_at"]), utcnow())  # before: a day in the future
        logged = hub.db.execute("SELECT wall_time, status FROM sync_ops WHERE node_id = ?", (node["id"],)).fetchone()
        assert logged["status"] == "applied" and close_to(parse_iso(logged["wall_time"]), utcnow())
        flagged = conflicts.listed(hub.db)
        assert len(flagged) == 1 and flagged[0]["reason"].startswith("clock ahead: stamped ")
        assert flagged[0]["body"]["created_at"] == early["created_at"]  # what the desk sent, for the office
        # idempotent: the same op again is a duplicate, flagged once
        with transaction(db):
            db.execute("UPDATE sync_state SET pushed_seq = 0")
        assert await client.push() == (1, 0)
        assert len(conflicts.listed(hub.db)) == 1
        assert db.execute("SELECT result FROM outbox").fetchone()["result"] == "duplicate"
        # after the sync the desk stamps on hub time: its next sale is not flagged
        later = sale(seats[2:], clock.now())
        assert await client.push() == (1, 0)
        assert close_to(parse_iso(later["created_at"]), utcnow()) and len(conflicts.listed(hub.db)) == 1
    finally:
        await client.close()


# -- the pinned root never comes through the feed ----------------------------------------------

def forged_root_page(pinned: int) -> tuple[list[Change], str]:
    """A page that would delete the pinned root and pin an attacker's; and a hub certificate
    that attacker signed, which a node whose root moved would then learn."""
    evil_root, evil_hub = keys.generate(), keys.generate()
    evil_public = keys.public_bytes(evil_root)
    evil_kid = keys.key_id(evil_public)
    record = trust.certify(evil_root, node_id="evil", name="Evil hub", role="hub",
                           public_raw=keys.public_bytes(evil_hub), now=utcnow())
    changes = [Change(seq=10**9, table="trust_roots", key=[pinned], row=None),
               Change(seq=10**9 + 1, table="trust_roots", key=[evil_kid],
                      row={"key_id": evil_kid, "public_key": evil_public.hex()})]
    return changes, record


async def test_a_page_with_a_trust_roots_change_never_replaces_the_pinned_root(hub, tmp_path):
    folder, db = await enrolled(hub, tmp_path)
    pinned = db.execute("SELECT key_id, public_key FROM trust_roots").fetchall()
    assert len(pinned) == 1
    changes, evil_cert = forged_root_page(pinned[0]["key_id"])
    cursor = db.execute("SELECT cursor FROM sync_state").fetchone()["cursor"]
    replica.apply_changes(db, changes, "UPDATE sync_state SET cursor = ?", (cursor + 2,))
    assert db.execute("SELECT key_id, public_key FROM trust_roots").fetchall() == pinned
    with pytest.raises(trust.BadRecord):
        trust.store_cert(db, evil_cert)  # still judged by the real root
    assert db.execute("SELECT cursor FROM sync_state").fetchone()["cursor"] == cursor + 2  # the page counted


async def test_a_hub_that_emits_trust_roots_cannot_move_an_edges_root(hub, tmp_path, monkeypatch):
    """A hub that sends trust_roots in its feed (an old version's feed, or one made to): the
    page is signed by the real hub and arrives over HTTP, and the edge still ignores it."""
    folder, db = await enrolled(hub, tmp_path)
    client = SyncClient(db, folder)
    try:
        await client.round()
        pinned = db.execute("SELECT key_id, public_key FROM trust_roots").fetchall()
        evil = keys.public_bytes(keys.generate())
        monkeypatch.setitem(REPLICATED, "trust_roots", ("key_id",))
        monkeypatch.setitem(node_scope.RULES, "trust_roots", node_scope.EVERYONE)
        monkeypatch.setitem(replica.BLOB_COLUMNS, "trust_roots", ("public_key",))
        with transaction(hub.db):
            hub.db.execute("INSERT INTO trust_roots (key_id, public_key) VALUES (?, ?)", (keys.key_id(evil), evil))
            for key_id in (keys.key_id(evil), pinned[0]["key_id"]):
                hub.db.execute("INSERT INTO changes (tbl, key) VALUES ('trust_roots', ?)", (_feed_key(key_id),))
        scope = node_scope.NodeScope(role="cashdesk", node_id=db.execute("SELECT id FROM node").fetchone()["id"])
        sent, _, _ = feed.page(hub.db, scope, 0, 10**6)
        assert any(c.table == "trust_roots" for c in sent)  # this hub does send it
        await client.round()
        assert db.execute("SELECT key_id, public_key FROM trust_roots").fetchall() == pinned
    finally:
        await client.close()


def _feed_key(*parts: object) -> str:
    """A change row's key as the feed triggers write it (SQLite's `json_array`: no spaces), made
    here so the test's SQL runs on both backends."""
    return json.dumps(list(parts), separators=(",", ":"))


def test_the_hub_never_emits_trust_roots(hub):
    """trust_roots has no feed triggers and no scope rule: a root row added at the hub (or a
    change row an older version left in the feed) never reaches a node."""
    assert "trust_roots" not in REPLICATED and "trust_roots" not in node_scope.RULES
    evil = keys.public_bytes(keys.generate())
    before = feed.head(hub.db)
    with transaction(hub.db):
        hub.db.execute("INSERT INTO trust_roots (key_id, public_key) VALUES (?, ?)", (keys.key_id(evil), evil))
    assert feed.head(hub.db) == before  # no trigger recorded it
    with transaction(hub.db):
        hub.db.execute("INSERT INTO changes (tbl, key) VALUES ('trust_roots', ?)", (_feed_key(keys.key_id(evil)),))
    for role in ("cashdesk", "counter", "gate"):
        sent, _, _ = feed.page(hub.db, node_scope.NodeScope(role=role, node_id="n-1"), 0, 10**6)
        assert not any(c.table == "trust_roots" for c in sent)
    assert "trust_roots" not in node_scope.tables(node_scope.NodeScope(role="gate", node_id="n-1"))
    assert TrustStore.load(hub.db) is not None
