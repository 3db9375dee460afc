"""Rate limits behind a reverse proxy (issue 11): `X-Forwarded-For` counts only when the direct
peer is a proxy named in hub.toml `[web] trusted_proxies`. Real hub app, real HTTP on loopback;
the forwarded addresses are documentation addresses (RFC 5737), only ever written in headers."""

from __future__ import annotations

import ipaddress

import pytest

from hub.app import make_app, read_settings
from hub.settings import SETTINGS_FILE
from hub.web import personalize
from hub.web.client_address import WebConfigError, forwarded_client
from hub.web.personalize import RateLimiter
from tests.conftest import Hub

ALICE, BOB = "192.0.2.10", "198.51.100.20"
UNKNOWN_LINK = "/p/" + "x" * 43  # well-formed, unknown: 404 while allowed, 429 when limited


async def personalize_client(aiohttp_client, hub: Hub, toml: str | None):
    if toml is not None:
        (hub.dir / SETTINGS_FILE).write_text(toml)
    app = make_app(hub.db)
    app[personalize.LIMITER] = RateLimiter(limit=3)
    return await aiohttp_client(app)


async def statuses(client, forwarded: str, n: int) -> list[int]:
    found = []
    for _ in range(n):
        async with client.get(UNKNOWN_LINK, headers={"X-Forwarded-For": forwarded}) as resp:
            found.append(resp.status)
    return found


async def test_without_the_setting_a_forged_forwarded_for_changes_nothing(aiohttp_client, empty_hub):
    """Before: the limiter used request.remote only (fine); the rule now lives in one helper and
    must keep ignoring the header unless a proxy is trusted."""
    client = await personalize_client(aiohttp_client, empty_hub, None)
    assert await statuses(client, ALICE, 3) == [404, 404, 404]
    # a fresh forged address per request does not buy a fresh limit: all share the peer's
    assert await statuses(client, BOB, 1) == [429]
    assert await statuses(client, "203.0.113.7", 1) == [429]


async def test_behind_a_trusted_proxy_each_client_has_its_own_limit(aiohttp_client, empty_hub):
    """Fails on the code before: every request via the proxy counted as the proxy's address,
    so one client's guesses locked out every other customer."""
    client = await personalize_client(aiohttp_client, empty_hub, '[web]\ntrusted_proxies = ["127.0.0.1/32", "::1"]\n')
    assert await statuses(client, ALICE, 4) == [404, 404, 404, 429]
    assert await statuses(client, BOB, 3) == [404, 404, 404]
    assert await statuses(client, BOB, 1) == [429]
    # a client that writes its own header cannot pose as another: the proxy appends what it saw
    assert await statuses(client, f"{BOB}, {ALICE}", 1) == [429]  # Alice, still limited
    assert await statuses(client, f"{ALICE}, 203.0.113.9", 1) == [404]  # the rightmost untrusted counts


def test_the_rightmost_untrusted_hop_is_the_client():
    proxies = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.1.0.0/16"))
    assert forwarded_client("127.0.0.1", [f"{BOB}, {ALICE}, 10.1.2.3"], proxies) == ALICE
    assert forwarded_client("127.0.0.1", [BOB, f"{ALICE}"], proxies) == ALICE  # two header lines
    assert forwarded_client("127.0.0.1", [], proxies) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", ["not-an-address, 10.1.2.3"], proxies) == "10.1.2.3"
    assert forwarded_client("::ffff:127.0.0.1", [ALICE], proxies) == ALICE  # v4-mapped peer
    # a peer that is not a trusted proxy: its header is the client's own claim
    assert forwarded_client("203.0.113.5", [ALICE], proxies) == "203.0.113.5"
    assert forwarded_client("127.0.0.1", [ALICE], ()) == "127.0.0.1"


@pytest.mark.parametrize("toml", ['[web]\ntrusted_proxies = ["localhost"]\n', '[web]\ntrusted_proxies = "127.0.0.1"\n',
                                  '[web]\nproxies = []\n'])
def test_a_broken_web_section_stops_the_hub_with_its_key(empty_hub, toml):
    (empty_hub.dir / SETTINGS_FILE).write_text(toml)
    with pytest.raises(WebConfigError, match=r"\[web\]"):
        make_app(empty_hub.db)
    assert read_settings(empty_hub.dir).source.endswith(SETTINGS_FILE)
