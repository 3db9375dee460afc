"""Gates agree offline (B2): two gates on loopback, no hub, real zeroconf and real HTTP.

A card admitted at gate 1 must be refused with PASSBACK at gate 2 within one second, and
be admitted again after the lockout. Records from a device that was never enrolled are
ignored, whether pushed to a gate or served to it when it pulls.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time

import aiohttp
import pytest
from aiohttp import web
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from core.base.clock import iso
from core.cards import cards, keys
from core.cards.trust import sign
from devices.profiles import load_relay
from devices.relays.simulated import LogRelay
from devices.scanners.base import QueueScanner
from edge.gate.loop import Gate, GateOptions
from edge.gate.peers import SERVICE
from tests.cardkit import make_kit

pytestmark = pytest.mark.slow  # two real gates finding each other over zeroconf: about 3 s each

LOOPBACK = ("127.0.0.1",)


async def start(gate_dir) -> Gate:
    """A gate on loopback; its peer group is the test's folder, so tests running in parallel
    (all copies of one sample hub, so one root key) do not pair up with each other."""
    group = str(gate_dir.parent)
    gate = Gate(GateOptions(gate_dir, http_port=0, peers=True, peer_interfaces=LOOPBACK, peer_group=group,
                            quiet=True),
                scanner=QueueScanner(), relay=LogRelay(load_relay("sim-log")))
    await gate.start()
    return gate


async def until(predicate, timeout: float = 8.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture
async def two_gates(sample_hub, tmp_path):
    kit1 = make_kit(sample_hub, tmp_path, "gate-1")
    make_kit(sample_hub, tmp_path, "gate-2")  # gate 1 has never heard of gate 2's key
    g1, g2 = await start(kit1.gate_dir), await start(tmp_path / "gate-2")
    try:
        await until(lambda: g1.peers.peers and g2.peers.peers)
        yield kit1, g1, g2
    finally:
        await g1.close()
        await g2.close()


async def test_passback_reaches_the_other_gate_within_a_second(two_gates):
    kit, g1, g2 = two_gates
    card = kit.issue(0)  # sold after the gates were set up: neither gate has its record
    admitted = await g1.handle(card["code"])
    assert admitted.admitted
    took = await until(lambda: g2.access.decide(card["code"]).reason == "PASSBACK", timeout=1.0)
    assert took < 1.0
    admitted_at = dt.datetime.fromisoformat(admitted.checked_at.replace("Z", "+00:00"))
    after_lockout = admitted_at + dt.timedelta(minutes=g2.access.rules.lockout_minutes, seconds=1)
    assert g2.access.decide(card["code"], after_lockout).admitted
    assert (await g2.handle(card["code"])).reason == "PASSBACK"
    # and back: gate 2 learned gate 1's records, gate 1 learned gate 2's certificate
    assert g2.peers_stats.received == 1 and g1.peers_stats.refused == 0


async def test_a_gate_that_comes_up_later_pulls_what_it_missed(sample_hub, tmp_path):
    kit1 = make_kit(sample_hub, tmp_path, "gate-1")
    make_kit(sample_hub, tmp_path, "gate-2")
    card = kit1.issue(0)
    g1 = await start(kit1.gate_dir)
    try:
        assert (await g1.handle(card["code"])).admitted
        g2 = await start(tmp_path / "gate-2")
        try:
            await until(lambda: g2.access.decide(card["code"]).reason == "PASSBACK")
        finally:
            await g2.close()
    finally:
        await g1.close()


async def test_forged_entry_records_from_a_non_enrolled_peer_are_ignored(two_gates):
    kit, g1, g2 = two_gates
    card = kit.issue(0)
    intruder = keys.generate()
    forged = sign(intruder, "entry", {
        "v": 1, "id": cards.uuid7(), "card_id": card["id"], "card_issue": 1, "venue_id": g2.access.rules.venue_id,
        "node_id": g1.node["id"], "direction": "in", "at": iso(g2.clock.now())})
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{g2.url}/peer/v1/entries", json={"records": [forged, 42, "junk"]}) as resp:
            assert resp.status == 200 and await resp.json() == {"new": 0, "refused": 3}
        async with session.post(f"{g2.url}/peer/v1/entries", data=b"\xff\xfe") as resp:
            assert resp.status == 400
    assert g2.access.decide(card["code"]).admitted
    assert g2.db.execute("SELECT count(*) AS n FROM entries").fetchone()["n"] == 0


async def test_a_rogue_peer_announced_on_the_lan_feeds_nobody(two_gates):
    """A device announces itself like a gate (same root id in its TXT record) and serves a
    forged entry and a forged certificate when the gates pull from it."""
    kit, g1, g2 = two_gates
    card = kit.issue(0)
    intruder = keys.generate()
    forged_entry = sign(intruder, "entry", {
        "v": 1, "id": cards.uuid7(), "card_id": card["id"], "card_issue": 1, "venue_id": g1.access.rules.venue_id,
        "node_id": "rogue", "direction": "in", "at": iso(g1.clock.now())})
    forged_cert = sign(intruder, "node-cert", {"v": 1, "key_id": keys.key_id(keys.public_bytes(intruder))})
    app = web.Application()

    async def trust(request):
        return web.json_response({"certs": [forged_cert], "revocations": []})

    async def entries(request):
        return web.json_response({"records": [forged_entry]})

    app.router.add_get("/peer/v1/trust", trust)
    app.router.add_get("/peer/v1/entries", entries)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    zc = AsyncZeroconf(interfaces=list(LOOPBACK), ip_version=IPVersion.V4Only)
    info = AsyncServiceInfo(SERVICE, f"rogue.{SERVICE}", addresses=[socket.inet_aton("127.0.0.1")], port=port,
                            properties={"node_id": "rogue", "name": "rogue", "role": "gate",
                                        "root": g1.peers.root_id, "group": g1.peers.group})
    await zc.async_register_service(info)
    try:
        await until(lambda: "rogue" in g1.peers.peers and g1.peers_stats.refused >= 1)
        assert g1.access.decide(card["code"]).admitted
        assert g1.db.execute("SELECT count(*) AS n FROM node_certs WHERE node_id = 'rogue'").fetchone()["n"] == 0
    finally:
        await zc.async_unregister_service(info)
        await zc.async_close()
        await runner.cleanup()
