"""Never twice on the LAN (issue 15): desks exchange redemption claims, hub or no hub.

Two real cash desks (enrolled at the sample hub over HTTP, then served on loopback) talk
through the peer door over real HTTP; then the hub goes away. In the slow tests they find each
other with real zeroconf on 127.0.0.1 (about 3 s); the quick ones hand each desk the other's
address, as zeroconf would, so the claim rules run in the quick lane too.
A voucher exchanged at desk 1 is refused at desk 2 naming desk 1, in English and German,
within a second; two desks claiming one voucher at the same moment: exactly one goes on; a
forged claim is dropped; an unreachable peer costs a sale at most the send timeout; a release
frees the voucher; a desk that comes up later pulls the claims it missed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time

import pytest

from core.base.errors import Conflict, ValidationError
from core.base.ids import uuid7
from core.cards import keys
from core.cards.cards import NodeSigner
from core.cards.trust import sign
from core.sales import orders
from core.sales import redemption_claims as rc
from edge.desk import claims
from edge.desk.server import Edge
from edge.peers.announce import root_id
from edge.peers.browse import Peer
from edge.peers.client import signed_headers
from tests.conftest import prepared_sample_hub
from tests.helpers import async_wait_until
from tests.test_desk_api import enrolled_edge, expect, login, sale_body
from tests.test_sync import run_apart, served_for_a_while

LOOPBACK = ("127.0.0.1",)
HOLDER = {"name": "Erika Mustermann", "birth_date": "1980-02-29"}


DESKS = ("Kasse 1", "Kasse 2")


async def _enroll_desks(hub) -> None:
    """Kasse 1, then Kasse 2, enrolled over real HTTP, each with the catalog pulled and two
    operators, into the hub's folder (`<hub>/Kasse-1`, so a copy of the hub copies them): Kasse 1
    pulled before Kasse 2 was enrolled."""
    async with served_for_a_while(hub):
        for name in DESKS:
            edge = await enrolled_edge(hub, hub.dir, name=name)
            edge.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            await edge.close()


def _with_desks(hub) -> None:
    run_apart(_enroll_desks(hub))


@pytest.fixture
def sample_hub(request, tmp_path, backend):
    """A private copy of the sample hub with Kasse 1 and Kasse 2 enrolled (`_enroll_desks`), made
    once per test process (two desks' databases, keys, enrollments and pulls cost seconds)."""
    return prepared_sample_hub(request, tmp_path, backend, "desks-1-2-enrolled", _with_desks)[0]


async def serve_desk(hub, tmp_path, aiohttp_client, name: str, *, announce: bool = True):
    """A cash desk enrolled at the hub (real HTTP: by `_enroll_desks` in this module's prepared
    hub, else now), served on loopback with Anna logged in, announced in the test's own peer
    group (tests running in parallel share one root key)."""
    folder = hub.dir / name.replace(" ", "-")
    if folder.exists():  # enrolled into the prepared copy: its sync client sent to this test's hub
        edge = Edge(folder, hub_url=hub.url)
    else:  # a hub of another module's fixtures (tests.test_desk_voucher_redemption)
        edge = await enrolled_edge(hub, tmp_path, name=name)
    client = await aiohttp_client(edge.app())
    client.edge = edge
    await login(client)
    if announce:
        await announce_desk(client, tmp_path)
    return client


async def announce_desk(desk, tmp_path) -> None:
    await desk.edge.peers.start(desk.server.port, "127.0.0.1", interfaces=LOOPBACK, group=str(tmp_path))


def peer_names(desk) -> list[str]:
    return [p.name for p in desk.edge.peers.claims.peers()]


@pytest.fixture
async def desks_on_zeroconf(hub, tmp_path, aiohttp_client):
    """Kasse 1 and Kasse 2 on one LAN, found by zeroconf; the hub is gone."""
    desk1 = await serve_desk(hub, tmp_path, aiohttp_client, "Kasse 1")
    desk2 = await serve_desk(hub, tmp_path, aiohttp_client, "Kasse 2")
    try:
        await async_wait_until(lambda: peer_names(desk1) and peer_names(desk2), what="the desks finding each other")
        await hub.server.close()
        yield desk1, desk2
    finally:
        await desk1.edge.close()
        await desk2.edge.close()


@pytest.fixture
async def two_desks(hub, tmp_path, aiohttp_client):
    """Kasse 1 and Kasse 2, each given the other's address (what zeroconf finds); the hub is gone."""
    desk1 = await serve_desk(hub, tmp_path, aiohttp_client, "Kasse 1", announce=False)
    desk2 = await serve_desk(hub, tmp_path, aiohttp_client, "Kasse 2", announce=False)
    try:
        know_each_other(desk1, desk2, tmp_path)
        await hub.server.close()
        yield desk1, desk2
    finally:
        await desk1.edge.close()
        await desk2.edge.close()


def know_each_other(desk1, desk2, tmp_path) -> None:
    """Each desk's claim exchange opened and given the other's address, as zeroconf would find it."""
    for desk, other in ((desk1, desk2), (desk2, desk1)):
        desk.edge.peers.claims.open(root_id(desk.edge.db), str(tmp_path))
        node = other.edge.node
        desk.edge.peers.claims.browser.peers[node["id"]] = Peer(
            node["id"], node["name"], str(other.server.make_url("")).rstrip("/"), node["role"])


async def sold_voucher(desk, hub) -> dict:
    """An annual-ticket voucher sold at *desk* (offline is fine: it signs the code itself)."""
    sold = await expect(await desk.post("/api/orders", json=sale_body(hub, vouchers=1)), 201)
    return sold["order"]["items"][1]["card"]


def claim_rows(desk, voucher_id: str) -> list[dict]:
    return desk.edge.db.execute("SELECT node_name, live FROM redemption_claims WHERE voucher_id = ? "
                                "ORDER BY node_name", (voucher_id,)).fetchall()


def live_claimers(desk, voucher_id: str) -> list[str]:
    return [r["node_name"] for r in claim_rows(desk, voucher_id) if r["live"]]


def counts(desk) -> dict[str, int]:
    db = desk.edge.db
    return {t: db.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"]
            for t in ("voucher_redemptions", "cards", "redemption_claims", "print_jobs")}


@pytest.mark.slow  # zeroconf
async def test_a_voucher_exchanged_at_one_desk_is_refused_at_the_next_within_a_second(desks_on_zeroconf, hub):
    await exchange_at_both(*desks_on_zeroconf, hub, "zeroconf")


async def test_a_voucher_exchanged_at_one_desk_is_refused_at_the_next_desk_it_knows(two_desks, hub):
    await exchange_at_both(*two_desks, hub, "wired")


async def exchange_at_both(desk1, desk2, hub, lan: str) -> None:
    """One annual-ticket voucher exchanged at desk 1, then at desk 2 (the time between desk 1's
    answer and desk 2's refusal is printed), then again at desk 1."""
    voucher = await sold_voucher(desk1, hub)
    body = {"code": voucher["code"], "holder": HOLDER}

    made = await expect(await desk1.post("/api/vouchers/redeem", json=body), 201)
    answered = time.monotonic()
    before = counts(desk2)
    refused = await expect(await desk2.post("/api/vouchers/redeem", json=body), 409)
    took = time.monotonic() - answered
    print(f"\n{lan}: desk 1 answered, desk 2 refused {took * 1000:.1f} ms later")
    assert took < 1.0
    assert "Kasse 1" in refused["detail"] and "only once" in refused["detail"]
    assert "Kasse 1" in refused["detail_de"] and refused["detail_de"].startswith("Gutschein wurde bereits an")
    assert refused["claimed_by"] == "Kasse 1" and refused["voucher_id"] == voucher["id"]
    assert counts(desk2) == before  # no card, no exchange, no print job at desk 2
    assert made["card"]["holder_name"] == HOLDER["name"]
    # desk 1 trying again is refused by its own exchange, and that does not free the voucher
    await expect(await desk1.post("/api/vouchers/redeem", json=body), 409)
    assert [r["live"] for r in claim_rows(desk2, voucher["id"])] == [1]
    await expect(await desk2.post("/api/vouchers/redeem", json=body), 409)


async def test_two_desks_claiming_at_the_same_moment_exactly_one_goes_on(two_desks):
    desk1, desk2 = two_desks
    for _ in range(5):
        voucher = uuid7()
        results = await asyncio.gather(claims.claim(desk1.edge, "choice_voucher", [voucher]),
                                       claims.claim(desk2.edge, "choice_voucher", [voucher]), return_exceptions=True)
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "NoneType"], results
        loser = 0 if isinstance(results[0], Conflict) else 1
        assert "Kasse" in results[loser].detail and results[loser].extra["detail_de"]
        winner = (desk1, desk2)[1 - loser].edge.node["name"]
        for desk in (desk1, desk2):  # both desks agree, once the loser's release has arrived
            await async_wait_until(lambda d=desk, v=voucher, w=winner: live_claimers(d, v) == [w],
                                   what="both desks holding only the winner's claim")


async def test_claims_of_the_same_millisecond_go_to_the_smaller_node_id(two_desks, monkeypatch):
    """Clocks of two desks can agree to the millisecond: the node id then decides, everywhere."""
    desk1, desk2 = two_desks
    moment = desk1.edge.clock.now()
    for desk in (desk1, desk2):
        monkeypatch.setattr(desk.edge.clock, "now", lambda: moment)
    voucher = uuid7()
    results = await asyncio.gather(claims.claim(desk1.edge, "annual_voucher", [voucher]),
                                   claims.claim(desk2.edge, "annual_voucher", [voucher]), return_exceptions=True)
    first = min((desk1, desk2), key=lambda d: d.edge.node["id"])
    assert [r is None for r in results] == [d is first for d in (desk1, desk2)], results


async def test_a_forged_claim_is_dropped_and_blocks_nothing(two_desks):
    desk1, desk2 = two_desks
    voucher = uuid7()
    node1 = desk1.edge.node
    signer1 = desk1.edge.peers.claims.signer()
    body = {"v": 1, "kind": "choice_voucher", "vouchers": [voucher], "node_id": node1["id"],
            "at": rc.iso_ms(desk1.edge.clock.now()), "live": True}
    forged = [sign(keys.generate(), rc.PURPOSE, body, signer1.key_id),  # desk 1's key id, another key
              sign(keys.generate(), rc.PURPOSE, body),  # a key nobody certified
              sign(signer1.private, rc.PURPOSE, {**body, "node_id": desk2.edge.node["id"]}, signer1.key_id),
              sign(signer1.private, rc.PURPOSE, {**body, "at": rc.iso_ms(desk1.edge.clock.now()
                                                                         + dt.timedelta(hours=1))}, signer1.key_id),
              sign(signer1.private, rc.PURPOSE, {**body, "kind": "ticket"}, signer1.key_id),
              sign(signer1.private, "entry", body, signer1.key_id),  # another purpose
              "junk", 42]
    payload = json.dumps({"records": forged}).encode()
    headers = signed_headers(signer1, "POST", "/peer/v1/claims", payload, desk1.edge.clock.now())
    answer = await expect(await desk2.post("/peer/v1/claims", data=payload, headers=headers), 200)
    assert answer == {"stored": 0, "refused": len(forged), "claims": []}
    assert claim_rows(desk2, voucher) == []
    await claims.claim(desk2.edge, "choice_voucher", [voucher])  # nothing stands in its way

    # a request from a node this organizer never certified does not get past the door
    intruder = NodeSigner(node_id="intruder", role="cashdesk", key_id=0x1234ABCD, private=keys.generate())
    headers = signed_headers(intruder, "POST", "/peer/v1/claims", payload, desk1.edge.clock.now())
    await expect(await desk2.post("/peer/v1/claims", data=payload, headers=headers), 401)
    await expect(await desk2.post("/peer/v1/claims", json={"records": []}), 401)  # unsigned


async def test_an_unreachable_peer_does_not_block_a_sale_beyond_the_timeout(two_desks, hub):
    """A peer that accepts the connection and never answers (a hung desk) costs the claim the
    send timeout once, in parallel with the others; the sale goes on."""
    desk1, desk2 = two_desks

    async def hang(reader, writer):
        await reader.read(1)
        await asyncio.sleep(30)

    hung = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = hung.sockets[0].getsockname()[1]
    try:
        desk1.edge.peers.claims.browser.peers["hung"] = Peer("hung", "Kasse 9", f"http://127.0.0.1:{port}",
                                                             "cashdesk")
        voucher = await sold_voucher(desk1, hub)
        started = time.monotonic()
        await expect(await desk1.post("/api/vouchers/redeem", json={"code": voucher["code"], "holder": HOLDER}), 201)
        took = time.monotonic() - started
        print(f"\nexchange with a hung peer took {took * 1000:.0f} ms (send timeout {claims.SEND_TIMEOUT_S} s)")
        assert claims.SEND_TIMEOUT_S <= took < claims.SEND_TIMEOUT_S + 1.5
        assert [r["node_name"] for r in claim_rows(desk2, voucher["id"])] == ["Kasse 1"]  # the live peer has it
    finally:
        hung.close()


async def test_release_frees_the_voucher_at_every_desk(two_desks):
    desk1, desk2 = two_desks
    voucher = uuid7()
    await claims.claim(desk1.edge, "choice_voucher", [voucher])
    with pytest.raises(Conflict, match="Kasse 1"):
        await claims.claim(desk2.edge, "choice_voucher", [voucher])
    await claims.release(desk1.edge, "choice_voucher", [voucher])
    await async_wait_until(lambda: claim_rows(desk2, voucher) and not claim_rows(desk2, voucher)[0]["live"],
                           what="the release at desk 2")
    await claims.claim(desk2.edge, "choice_voucher", [voucher])
    with pytest.raises(Conflict, match="Kasse 2"):
        await claims.claim(desk1.edge, "choice_voucher", [voucher])


async def test_a_failed_exchange_releases_its_claim(two_desks, hub, monkeypatch):
    """The store fails after the claim (a disk error, say): the voucher is not lost for good."""
    desk1, desk2 = two_desks
    voucher = await sold_voucher(desk1, hub)

    def broken(*args, **kwargs):
        raise OSError("disk I/O error")

    monkeypatch.setattr(orders, "redeem_voucher", broken)
    body = {"code": voucher["code"], "holder": HOLDER}
    resp = await desk1.post("/api/vouchers/redeem", json=body)
    assert resp.status == 500
    await async_wait_until(lambda: [r["live"] for r in claim_rows(desk2, voucher["id"])] == [0],
                           what="the release at desk 2")
    monkeypatch.undo()
    await expect(await desk2.post("/api/vouchers/redeem", json=body), 201)


@pytest.mark.slow  # zeroconf
async def test_a_desk_that_comes_up_later_pulls_the_claims_it_missed(hub, tmp_path, aiohttp_client):
    desk1 = await serve_desk(hub, tmp_path, aiohttp_client, "Kasse 1")
    desk2 = await serve_desk(hub, tmp_path, aiohttp_client, "Kasse 2", announce=False)
    try:
        await hub.server.close()
        voucher = uuid7()
        await claims.claim(desk1.edge, "choice_voucher", [voucher])  # desk 2 is not on the LAN yet
        assert claim_rows(desk2, voucher) == []
        await announce_desk(desk2, tmp_path)
        await async_wait_until(lambda: claim_rows(desk2, voucher), what="desk 2 pulling desk 1's claim")
        with pytest.raises(Conflict, match="Kasse 1"):
            await claims.claim(desk2.edge, "choice_voucher", [voucher])
    finally:
        await desk1.edge.close()
        await desk2.edge.close()


async def test_hostile_claim_requests_are_refused(two_desks):
    desk1, _ = two_desks
    for kind, vouchers in (("ticket", ["a"]), ("choice_voucher", []), ("choice_voucher", ["x" * 65]),
                           ("choice_voucher", [str(i) for i in range(51)])):
        with pytest.raises(ValidationError):
            await claims.claim(desk1.edge, kind, vouchers)
    signer = desk1.edge.peers.claims.signer()
    headers = signed_headers(signer, "GET", "/peer/v1/claims?since=yesterday", b"", desk1.edge.clock.now())
    await expect(await desk1.get("/peer/v1/claims", params={"since": "yesterday"}, headers=headers), 422)


def test_the_claims_bench_is_registered():
    from bench import claims as claims_bench
    from bench.__main__ import BENCHMARKS
    assert BENCHMARKS["claims"] is claims_bench and claims_bench.BUDGET_MS == 1000.0
