"""The fault-injection proxy (tests/faultproxy.py) against a real aiohttp server on loopback:
every fault must really happen, and be counted."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time

import aiohttp
import pytest
from aiohttp import web

from tests.faultproxy import FaultProxy, _HttpFramer

BIG = random.Random(1).randbytes(1024 * 1024)


async def until(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


@pytest.fixture
async def hub(aiohttp_server):
    """POST /echo answers the body and counts it by digest; GET /blob?n= answers n bytes."""
    seen = {"started": 0, "complete": 0, "failed": 0, "bodies": {}}

    async def echo(request: web.Request) -> web.Response:
        seen["started"] += 1
        try:
            body = await request.read()
        except BaseException:  # the test server cancels handlers whose connection is lost
            seen["failed"] += 1
            raise
        seen["complete"] += 1
        digest = hashlib.sha256(body).hexdigest()
        seen["bodies"][digest] = seen["bodies"].get(digest, 0) + 1
        return web.Response(body=body)

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=BIG[: int(request.query.get("n", "200000"))])

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/echo", echo)
    app.router.add_get("/blob", blob)
    server = await aiohttp_server(app)
    server.seen = seen
    return server


@pytest.fixture
async def proxy(hub):
    async with FaultProxy(hub.host, hub.port, seed=7) as p:
        yield p
        assert p.errors == []


def count(hub, body: bytes) -> int:
    return hub.seen["bodies"].get(hashlib.sha256(body).hexdigest(), 0)


def session(**kw) -> aiohttp.ClientSession:
    """One connection per request unless keep_alive: a fresh connection for every fault."""
    keep_alive = kw.pop("keep_alive", False)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=not keep_alive), **kw)


async def test_forwards_a_large_body_intact(proxy, hub):
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"
    async with session() as s, s.post(proxy.url + "/echo", data=BIG) as r:
        assert r.status == 200
        assert await r.read() == BIG
    assert count(hub, BIG) == 1
    st = proxy.stats
    assert st.connections == 1 and st.requests == 1 and st.responses == 1
    assert st.bytes_to_target > len(BIG) and st.bytes_to_client > len(BIG)
    assert st.drops == st.cuts == st.duplicates == st.blackholed == 0


async def test_down_refuses_then_comes_back_on_the_same_port(proxy, hub):
    port = proxy.port
    proxy.down = True
    async with session() as s:
        with pytest.raises(aiohttp.ClientConnectorError):
            await s.post(proxy.url + "/echo", data=b"x")
        proxy.down = False
        assert proxy.port == port
        async with s.post(proxy.url + "/echo", data=b"back") as r:
            assert await r.read() == b"back"
    assert hub.seen["started"] == 1


async def test_down_aborts_open_connections(proxy, hub):
    proxy.response_delay_s = 0.3
    async with session() as s:
        request = asyncio.create_task(s.get(proxy.url + "/blob?n=10"))
        await until(lambda: proxy.stats.bytes_to_target > 0)
        proxy.down = True
        with pytest.raises(aiohttp.ClientError):
            await request


async def test_drop_closes_before_forwarding(proxy, hub):
    proxy.drop_rate = 1.0
    async with session() as s:
        with pytest.raises(aiohttp.ClientError):
            await s.post(proxy.url + "/echo", data=b"x")
    assert proxy.stats.drops == 1 and proxy.stats.bytes_to_target == 0
    assert hub.seen["started"] == 0


async def test_drops_are_deterministic_for_a_seed(hub):
    expected_rng = random.Random(3)
    expected = [expected_rng.random() < 0.5 for _ in range(12)]
    async with FaultProxy(hub.host, hub.port, seed=3, drop_rate=0.5) as proxy, session() as s:
        dropped = []
        for i in range(12):
            try:
                async with s.post(proxy.url + "/echo", data=b"%d" % i) as r:
                    await r.read()
                dropped.append(False)
            except aiohttp.ClientError:
                dropped.append(True)
    assert dropped == expected
    assert proxy.stats.drops == sum(expected) == 12 - hub.seen["complete"]


async def test_delay_is_latency_each_way_not_a_bandwidth_cap(proxy, hub):
    async with session() as s:
        started = time.monotonic()
        async with s.post(proxy.url + "/echo", data=b"ping") as r:
            await r.read()
        baseline = time.monotonic() - started

        proxy.delay_s = 0.2
        started = time.monotonic()
        async with s.post(proxy.url + "/echo", data=b"ping") as r:
            await r.read()
        both = time.monotonic() - started
        assert 0.4 <= both < 0.4 + baseline + 0.5

        proxy.delay_s, proxy.response_delay_s = 0.0, 0.25
        started = time.monotonic()
        async with s.post(proxy.url + "/echo", data=b"ping") as r:
            await r.read()
        one_way = time.monotonic() - started
        assert 0.25 <= one_way < 0.45  # not 0.5: the request went through undelayed

        # 1 MB each way is dozens of chunks; pipelined, it costs about one delay per direction
        proxy.delay_s, proxy.response_delay_s = 0.2, 0.0
        started = time.monotonic()
        async with s.post(proxy.url + "/echo", data=BIG) as r:
            assert await r.read() == BIG
        assert time.monotonic() - started < 2.5  # one chunk after another would take over 6 s


async def test_cut_mid_response_truncates_the_body(proxy, hub):
    proxy.cut_response_after = 50_000
    async with session() as s, s.get(proxy.url + "/blob?n=200000") as r:
        assert r.status == 200  # headers made it
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    assert proxy.stats.cuts == 1 and proxy.stats.bytes_to_client == 50_000


@pytest.mark.parametrize("reset", [False, True])
async def test_cut_mid_request_never_delivers_the_body(proxy, hub, reset):
    body = BIG[:200_000]
    proxy.cut_request_after, proxy.reset = 20_000, reset
    async with session() as s:
        with pytest.raises(aiohttp.ClientError):
            async with s.post(proxy.url + "/echo", data=body) as r:
                await r.read()
    assert proxy.stats.cuts == 1 and proxy.stats.bytes_to_target == 20_000
    await until(lambda: hub.seen["failed"] == 1)  # the server's read of the body failed
    assert hub.seen["started"] == 1 and hub.seen["complete"] == 0 and count(hub, body) == 0


async def test_reset_cut_mid_response(proxy, hub):
    proxy.cut_response_after, proxy.reset = 50_000, True
    async with session() as s, s.post(proxy.url + "/echo", data=BIG[:200_000]) as r:
        with pytest.raises(aiohttp.ClientError):
            await r.read()
    assert proxy.stats.cuts == 1


async def test_cut_rate_cuts_at_drawn_offsets(proxy, hub):
    proxy.cut_rate, proxy.cut_span, proxy.cut_direction = 1.0, 100, "response"
    async with session() as s:
        for _ in range(3):  # POST: aiohttp retries a GET once after a disconnect
            with pytest.raises(aiohttp.ClientError):
                async with s.post(proxy.url + "/echo", data=BIG[:5000]) as r:
                    await r.read()
    assert proxy.stats.connections == proxy.stats.cuts == 3 and proxy.stats.bytes_to_client < 300
    assert hub.seen["complete"] == 3


async def test_duplicate_reaches_the_hub_twice(proxy, hub):
    proxy.duplicate_rate = 1.0
    body = b"sale 42"
    async with session() as s, s.post(proxy.url + "/echo", data=body) as r:
        assert await r.read() == body
    await proxy.wait_idle(timeout=3)
    assert count(hub, body) == 2
    assert proxy.stats.duplicates == 1 and proxy.stats.duplicate_errors == 0
    assert proxy.stats.connections == 1  # the replay is the proxy's own connection


async def test_duplicates_single_requests_on_a_kept_alive_connection(proxy, hub):
    proxy.duplicate_rate = 1.0
    bodies = [b"first", BIG[:300_000], b"third"]

    async def chunked():  # no Content-Length: Transfer-Encoding: chunked
        yield b"chunk"
        yield b"ed"

    async with session(keep_alive=True) as s:
        for body in bodies:
            async with s.post(proxy.url + "/echo", data=body) as r:
                assert await r.read() == body
        async with s.post(proxy.url + "/echo", data=chunked()) as r:
            assert await r.read() == b"chunked"
        async with s.get(proxy.url + "/blob?n=10") as r:
            await r.read()
        await proxy.wait_idle(timeout=3)
        assert proxy.stats.connections == 1
        assert [count(hub, b) for b in bodies] == [2, 2, 2]
        assert count(hub, b"chunked") == 2
        assert proxy.stats.duplicates == 5 and proxy.stats.requests == 5 and proxy.stats.unparsed == 0


async def test_partial_duplicate_rate(proxy, hub):
    proxy.duplicate_rate = 0.5
    async with session() as s:
        for i in range(10):
            async with s.post(proxy.url + "/echo", data=b"n%d" % i) as r:
                await r.read()
    await proxy.wait_idle(timeout=3)
    rng = random.Random(7)
    expected = sum(rng.random() < 0.5 for _ in range(10))
    assert proxy.stats.duplicates == expected == hub.seen["complete"] - 10


async def test_blackhole_times_the_client_out(proxy, hub):
    proxy.blackhole = True
    async with session(timeout=aiohttp.ClientTimeout(total=0.4)) as s:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            async with s.post(proxy.url + "/echo", data=b"hello?") as r:
                await r.read()
        assert time.monotonic() - started < 1.0
    await until(lambda: proxy.stats.blackholed == 1)
    assert hub.seen["started"] == 0 and proxy.stats.bytes_to_target == 0


async def test_blackhole_hangs_a_kept_alive_connection(proxy, hub):
    async with session(keep_alive=True, timeout=aiohttp.ClientTimeout(total=0.4)) as s:
        async with s.post(proxy.url + "/echo", data=b"one") as r:
            await r.read()
        proxy.blackhole = True
        with pytest.raises(asyncio.TimeoutError):
            async with s.post(proxy.url + "/echo", data=b"two") as r:
                await r.read()
    assert proxy.stats.connections == 1 and proxy.stats.blackholed == 1
    assert count(hub, b"two") == 0


async def test_close_ends_open_connections_promptly(hub):
    proxy = FaultProxy(hub.host, hub.port, blackhole=True)
    await proxy.start()
    async with session() as s:
        hung = asyncio.create_task(s.post(proxy.url + "/echo", data=b"x"))
        await until(lambda: proxy.stats.blackholed == 1)
        proxy.blackhole, proxy.delay_s = False, 5.0
        slow = asyncio.create_task(s.post(proxy.url + "/echo", data=b"y"))
        await until(lambda: proxy.stats.connections == 2)
        started = time.monotonic()
        await proxy.close()
        for task in (hung, slow):
            with pytest.raises(aiohttp.ClientError):
                await asyncio.wait_for(task, 1.0)
        assert time.monotonic() - started < 1.0
    with pytest.raises(aiohttp.ClientConnectorError):
        async with session() as s:
            await s.get(proxy.url + "/blob")


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_framer_finds_boundaries_in_any_split(step):
    requests = (
        b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
    )
    got = []
    framer = _HttpFramer(True, got.append, on_head=lambda m: None)
    for i in range(0, len(requests), step):
        framer.feed(requests[i : i + step])
    assert not framer.broken
    assert b"".join(got) == requests and len(got) == 3 and got[1].startswith(b"GET /b")

    methods = iter(["HEAD", "GET", "GET", "GET"])
    current = ["GET"]
    responses = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"  # answer to HEAD: no body
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
    )
    done = []

    def on_response(_):
        done.append(current[0])
        current[0] = next(methods)

    framer = _HttpFramer(False, on_response, method_of=lambda: current[0])
    for i in range(0, len(responses), step):
        framer.feed(responses[i : i + step])
    assert not framer.broken and done == ["GET", "HEAD", "GET", "GET"]
