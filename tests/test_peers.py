"""Gates agree offline (B2): two gates on loopback, no hub, real zeroconf and real HTTP.

A card admitted at gate 1 must be refused with PASSBACK at gate 2 within one second, and
be admitted again after the lockout. Records from a device that was never enrolled are
ignored, whether pushed to a gate or served to it when it pulls.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import socket
import time

import aiohttp
import pytest
from aiohttp import web
from yarl import URL
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from core.base.clock import iso
from core.cards import cards, keys
from core.cards.cards import NodeSigner
from core.cards.trust import sign
from devices.profiles import load_relay
from devices.relays.simulated import LogRelay
from devices.scanners.base import QueueScanner
from edge.gate.loop import Gate, GateOptions
from edge.gate.peers import SERVICE
from edge.gate.web import DOOR
from edge.peers.client import signed_headers
from edge.peers.door import CERT
from hub.app import make_app
from hub.services import nodes, provisioning
from tests.cardkit import make_kit, prepared_kits
from tests.helpers import async_wait_until
from tests.test_desk_api import enrolled_edge, login, sale_body

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
def kits(request, tmp_path, backend):
    """Gate 1 and gate 2 set up from a copy of the sample hub (once per test process, copied per
    test), in that order: gate 1 has never heard of gate 2's key."""
    return prepared_kits(request, tmp_path, backend, "gate-1", "gate-2")


@pytest.fixture
async def two_gates(kits):
    kit1, kit2 = kits
    # side by side: each start waits ~1.2 s on its zeroconf registration
    g1, g2 = started = await asyncio.gather(start(kit1.gate_dir), start(kit2.gate_dir), return_exceptions=True)
    if failed := [g for g in started if isinstance(g, BaseException)]:
        for gate in started:
            if not isinstance(gate, BaseException):
                await gate.close()
        raise failed[0]
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


async def test_a_gate_that_comes_up_later_pulls_what_it_missed(kits):
    kit1, kit2 = kits
    card = kit1.issue(0)
    g1 = await start(kit1.gate_dir)
    try:
        assert (await g1.handle(card["code"])).admitted
        g2 = await start(kit2.gate_dir)
        try:
            await until(lambda: g2.access.decide(card["code"]).reason == "PASSBACK")
        finally:
            await g2.close()
    finally:
        await g1.close()


def entries_count(gate: Gate) -> int:
    return gate.db.execute("SELECT count(*) AS n FROM entries").fetchone()["n"]


def forged_entry(kit, gate: Gate, card: dict, node_id: str, signer=None) -> str:
    """An entry record for *card* at *gate*'s venue, signed by a key nobody certified."""
    return sign(signer or keys.generate(), "entry", {
        "v": 1, "id": cards.uuid7(), "card_id": card["id"], "card_issue": 1, "venue_id": gate.access.rules.venue_id,
        "node_id": node_id, "direction": "in", "at": iso(gate.clock.now())})


def signed_by(gate: Gate, method: str, path_qs: str, body: bytes = b"", *, sent: dt.datetime | None = None,
              signer=None) -> dict[str, str]:
    """The headers *gate* (or *signer*, a NodeSigner) puts on a peer request."""
    return signed_headers(signer or gate.access.signer, method, path_qs, body, sent or gate.clock.now())


async def test_unsigned_forged_entries_from_the_lan_are_refused_and_change_nothing(two_gates):
    """Anyone on the LAN can POST to a gate's port. Unsigned, or signed by a key this organizer
    never certified, the request is refused at the door before any record in it is looked at
    (before, every record was opened and checked: a known key id in a forged record cost a verify)."""
    kit, g1, g2 = two_gates
    card = kit.issue(0)
    payload = {"records": [forged_entry(kit, g2, card, g1.node["id"]), 42, "junk"]}
    body = json.dumps(payload).encode()
    intruder = NodeSigner(node_id="intruder", role="gate", key_id=0x1234ABCD, private=keys.generate())
    # the intruder is another machine on the LAN (127.0.0.2): its refusals cost its own address
    intruding = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))
    async with intruding as session:
        async with session.post(f"{g2.url}/peer/v1/entries", json=payload) as resp:
            assert resp.status == 401 and (await resp.json())["type"] == "urn:tessera:problem:unsigned"
        headers = signed_by(g2, "POST", "/peer/v1/entries", body, signer=intruder)
        async with session.post(f"{g2.url}/peer/v1/entries", data=body, headers=headers) as resp:
            assert resp.status == 401 and (await resp.json())["type"] == "urn:tessera:problem:unknown-signer"
        # nor with a certificate for its key that the intruder signed itself, as if it were the root
        headers[CERT] = sign(intruder.private, "node-cert", {
            "v": 1, "key_id": intruder.key_id, "node_id": "intruder", "name": "Eingang 9", "role": "gate",
            "public_key": keys.public_bytes(intruder.private).hex(), "issued_at": "2026-01-01T00:00:00Z",
            "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2036-01-01T00:00:00Z"})
        headers.update(signed_by(g2, "POST", "/peer/v1/entries", body, signer=intruder))  # a fresh nonce
        async with session.post(f"{g2.url}/peer/v1/entries", data=body, headers=headers) as resp:
            assert resp.status == 401 and (await resp.json())["type"] == "urn:tessera:problem:unknown-signer"
        async with session.get(f"{g2.url}/peer/v1/entries", params={"since": "2020-01-01T00:00:00Z"}) as resp:
            assert resp.status == 401  # nor does an unsigned caller read the gate's entries
    async with aiohttp.ClientSession() as session:
        # a certified peer gets in, and the forged records in its request are still checked one by one
        headers = signed_by(g1, "POST", "/peer/v1/entries", body)
        async with session.post(f"{g2.url}/peer/v1/entries", data=body, headers=headers) as resp:
            assert resp.status == 200 and await resp.json() == {"new": 0, "refused": 3}
    door = g2.runner.app[DOOR]
    assert door.stats.refused["unsigned"] == 2 and door.stats.refused["unknown-signer"] == 2
    assert g2.access.decide(card["code"]).admitted
    assert entries_count(g2) == 0
    assert g2.db.execute("SELECT count(*) AS n FROM node_certs WHERE node_id = 'intruder'").fetchone()["n"] == 0


async def test_a_revoked_node_is_refused_at_the_door(two_gates):
    """A stolen gate's key is revoked; with that key the thief can neither push entries to, nor
    read entries and certificates from, a gate that knows the revocation."""
    kit, g1, g2 = two_gates
    card = kit.issue(0)
    nodes.revoke_node(kit.hub.db, nodes.root_key(kit.hub.dir), g1.node["id"], reason="compromised")
    provisioning.refresh(g2.data_dir, kit.hub.dir)  # gate 2 learns the revocation (as by sync)

    def revoked_at_gate_2() -> bool:
        g2.access.refresh()  # what the door does on every request, at most every Access.REFRESH_S
        return g2.access.trust.get(g1.access.signer.key_id).revoked_at_ms is not None

    await async_wait_until(revoked_at_gate_2, what="gate 2 knows the revocation")
    body = json.dumps({"records": [forged_entry(kit, g2, card, g1.node["id"], g1.access.signer.private)]}).encode()
    async with aiohttp.ClientSession() as session:
        for method, path_qs, data in (("POST", "/peer/v1/entries", body), ("GET", "/peer/v1/trust", b""),
                                      ("GET", "/peer/v1/entries?since=2020-01-01T00%3A00%3A00Z", b"")):
            headers = signed_by(g1, method, path_qs, data)
            async with session.request(method, URL(g2.url + path_qs, encoded=True), data=data,
                                       headers=headers) as resp:
                problem = await resp.json()
                assert resp.status == 403 and problem["type"] == "urn:tessera:problem:node-revoked", problem
    assert g2.access.decide(card["code"]).admitted and entries_count(g2) == 0


async def test_a_replayed_or_stale_request_is_refused(two_gates):
    kit, g1, g2 = two_gates
    card = kit.issue(0)
    assert (await g1.handle(card["code"])).admitted
    record = g1.access.recent_entry_records(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))[-1]
    body = json.dumps({"records": [record]}).encode()
    headers = signed_by(g1, "POST", "/peer/v1/entries", body)
    old = signed_by(g1, "POST", "/peer/v1/entries", body, sent=g1.clock.now() - dt.timedelta(minutes=6))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{g2.url}/peer/v1/entries", data=body, headers=headers) as resp:
            assert resp.status == 200  # (gate 2 may have the record from the broadcast already)
        async with session.post(f"{g2.url}/peer/v1/entries", data=body, headers=headers) as resp:
            assert resp.status == 409 and (await resp.json())["type"] == "urn:tessera:problem:replayed"
        async with session.post(f"{g2.url}/peer/v1/entries", data=body, headers=old) as resp:
            assert resp.status == 401 and (await resp.json())["type"] == "urn:tessera:problem:stale"
        twice = signed_by(g1, "POST", "/peer/v1/entries", body)  # one capture sent twice at once

        async def send() -> int:
            async with session.post(f"{g2.url}/peer/v1/entries", data=body, headers=twice) as resp:
                return resp.status

        assert sorted(await asyncio.gather(send(), send())) == [200, 409]
        tampered = body.replace(b"records", b"records ")
        async with session.post(f"{g2.url}/peer/v1/entries", data=tampered,
                                headers=signed_by(g1, "POST", "/peer/v1/entries", body)) as resp:
            assert resp.status == 401 and (await resp.json())["type"] == "urn:tessera:problem:bad-signature"


def raw_request(url: str, head: str, body_part: bytes) -> tuple[bytes, bool]:
    """Send a request head and only the start of its body, then read what the gate answers.
    Returns the answer and whether the gate closed the connection (without the rest of the body)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head.encode() + body_part)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
            closed = True
        except ConnectionResetError:  # closed with our unread bytes still in its buffer: a reset
            closed = True
        except TimeoutError:
            closed = False
    return answer, closed


async def test_an_oversized_body_is_refused_without_reading_it(two_gates):
    kit, g1, g2 = two_gates
    head = (f"POST /peer/v1/entries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {64 * 1024 * 1024}\r\n\r\n")
    answer, closed = await asyncio.to_thread(raw_request, g2.url, head, b"")
    assert answer.startswith(b"HTTP/1.1 413") and closed, answer  # 64 MiB announced: refused at once, hung up
    # without a length (chunked), from a certified gate: read up to the limit, then refused
    signed = "".join(f"{k}: {v}\r\n" for k, v in signed_by(g1, "POST", "/peer/v1/entries", b"{}").items())
    head = f"POST /peer/v1/entries HTTP/1.1\r\nHost: 127.0.0.1\r\n{signed}Transfer-Encoding: chunked\r\n\r\n"
    chunk = b"a" * (64 * 1024)
    body = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") * 5  # 320 KiB, and the body never ends
    answer, closed = await asyncio.to_thread(raw_request, g2.url, head, body)
    # hung up with part of our body unread: the kernel may answer with a reset that drops the
    # 413 on its way; the door's own count below says what it refused
    assert closed and (answer.startswith(b"HTTP/1.1 413") or answer == b""), answer
    assert g2.runner.app[DOOR].stats.refused["too-large"] == 2 and entries_count(g2) == 0


async def test_a_flood_is_rate_limited_per_address(two_gates):
    """A flood from one LAN address gets 429s once its bucket is empty; a peer gate at another
    address still gets through (loopback: the flood comes from 127.0.0.2)."""
    kit, g1, g2 = two_gates
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), limit=20)
    async with aiohttp.ClientSession(connector=connector) as flood:
        async def one() -> int:
            async with flood.post(f"{g2.url}/peer/v1/entries", json={"records": ["junk"]}) as resp:
                return resp.status

        statuses = collections.Counter(await asyncio.gather(*(one() for _ in range(300))))
    assert statuses[429] >= 200 and set(statuses) <= {401, 429}, statuses
    assert statuses[401] <= 40 + 20 * 5  # the burst, and what trickled in meanwhile
    card = kit.issue(0)
    assert (await g1.handle(card["code"])).admitted  # gate 1 (127.0.0.1) is not held up by the flood
    await async_wait_until(lambda: g2.access.decide(card["code"]).reason == "PASSBACK", timeout=2.0,
                           what="gate 1's entry at gate 2")
    assert g2.runner.app[DOOR].stats.refused["too-many-requests"] == statuses[429]


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


# -- desks and counters in the certificate exchange ---------------------------------------------------------


async def selling_desk(hub, tmp_path, aiohttp_client, name: str, *, announce: bool = True):
    """A cash desk enrolled at the hub now (real HTTP), served on loopback, announced to the
    gates of the test's peer group, with Anna logged in."""
    edge = await enrolled_edge(hub, tmp_path, name=name)
    client = await aiohttp_client(edge.app())
    client.edge = edge
    await login(client)
    if announce:
        await edge.peers.start(client.server.port, "127.0.0.1", interfaces=LOOPBACK, group=str(tmp_path))
    return client


async def sell_card(desk, hub) -> dict:
    """An annual card sold at the desk (the hub may be away)."""
    resp = await desk.post("/api/orders", json=sale_body(hub, vouchers=0))
    data = await resp.json()
    assert resp.status == 201, data
    return data["order"]["items"][0]["card"]


@pytest.fixture
async def hub_on_loopback(sample_hub, aiohttp_server):
    server = await aiohttp_server(make_app(sample_hub.db))
    sample_hub.url = str(server.make_url("")).rstrip("/")
    sample_hub.server = server
    return sample_hub


async def test_a_desk_enrolled_after_the_gates_last_sync_sells_cards_the_gate_admits_without_the_hub(
        hub_on_loopback, tmp_path, aiohttp_client):
    hub = hub_on_loopback
    kit = make_kit(hub, tmp_path, "gate-1")  # the gate's last sync with the hub
    desk = await selling_desk(hub, tmp_path, aiohttp_client, "Kasse 1", announce=False)  # enrolled later
    await hub.server.close()  # the hub goes away
    gate = await start(kit.gate_dir)
    try:
        card = await sell_card(desk, hub)
        assert gate.access.decide(card["code"]).reason == "UNKNOWN_SIGNER"  # what the gate did before
        await desk.edge.peers.start(desk.server.port, "127.0.0.1", interfaces=LOOPBACK, group=str(tmp_path))
        await async_wait_until(lambda: gate.peers_stats.certs_learned >= 1, what="the desk's certificate at the gate")
        verdict = await gate.handle(card["code"])
        assert verdict.admitted, verdict.line()
        assert verdict.signer == "Kasse 1"
        assert [p["role"] for p in gate.peers.status()] == ["cashdesk"]
        learned = gate.db.execute("SELECT role FROM node_certs WHERE node_id = ?", (desk.edge.node["id"],)).fetchone()
        assert learned["role"] == "cashdesk"  # stored because the root signed it, not for the desk's word
    finally:
        await gate.close()
        await desk.edge.close()


async def test_a_gate_asks_its_peers_for_the_signer_of_a_card_it_cannot_place(hub_on_loopback, tmp_path,
                                                                               aiohttp_client):
    """Desk 2 is enrolled while the gate runs and is not announced (another VLAN, say); desk 1
    learnt its certificate by sync. The first scan of a desk 2 card makes the gate ask its
    peers for that key, and the card is admitted at once (not at the next resync)."""
    hub = hub_on_loopback
    kit = make_kit(hub, tmp_path, "gate-1")
    gate = await start(kit.gate_dir)
    desk1 = await selling_desk(hub, tmp_path, aiohttp_client, "Kasse 1")
    desk2 = None
    try:
        await async_wait_until(lambda: gate.peers_stats.certs_learned >= 1, what="desk 1 at the gate")
        desk2 = await selling_desk(hub, tmp_path, aiohttp_client, "Kasse 2", announce=False)
        await desk1.edge.client.round()  # desk 1 learns desk 2's certificate from the hub
        await hub.server.close()
        card = await sell_card(desk2, hub)
        assert gate.access.decide(card["code"]).reason == "UNKNOWN_SIGNER"
        verdict = await gate.handle(card["code"])
        assert verdict.admitted and verdict.signer == "Kasse 2", verdict.line()
    finally:
        await gate.close()
        for desk in (desk1, desk2):
            if desk is not None:
                await desk.edge.close()
