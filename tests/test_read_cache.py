"""Catalog reads are cached, but never older than the last commit, whoever made it."""

from hub.app import open_database
from hub.web.api import CACHE
from tests.helpers import call


async def test_repeated_reads_are_served_from_the_cache(api):
    cache = api.app[CACHE]
    first = await call(api, "GET", "/performances?limit=20", status=200)
    hits = cache.hits
    again = await call(api, "GET", "/performances?limit=20", status=200)
    assert again == first and cache.hits == hits + 1


async def test_a_write_through_the_api_is_seen_by_the_next_read(api):
    pid = api.hub.ids["performances"][0]
    await call(api, "GET", f"/performances/{pid}", status=200)
    await call(api, "PATCH", f"/performances/{pid}", {"title": "Neu"}, status=200)
    assert (await call(api, "GET", f"/performances/{pid}", status=200))["title"] == "Neu"


async def test_a_write_by_another_process_is_seen_by_the_next_read(api):
    """Another connection (e.g. a CLI command or a sync worker) commits behind the hub's back."""
    pid = api.hub.ids["performances"][0]
    await call(api, "GET", f"/performances/{pid}", status=200)
    other = open_database(api.hub.dir, migrate=False)  # a connection of its own (autocommit), on either backend
    other.execute("UPDATE performances SET title = 'Von außen' WHERE id = ?", (pid,))
    other.close()
    assert (await call(api, "GET", f"/performances/{pid}", status=200))["title"] == "Von außen"


async def test_the_cache_keeps_audiences_apart(api):
    agency = (await call(api, "POST", "/tokens", {"name": "a", "role": "agency"}, status=201))["token"]
    staff = await call(api, "GET", "/subscription-products", status=200)
    seen = await call(api, "GET", "/subscription-products", status=200, token=agency)
    assert staff["total"] == 6 and seen["total"] == 2


async def test_a_revoked_token_gets_no_cached_answer(api):
    made = await call(api, "POST", "/tokens", {"name": "x", "role": "office"}, status=201)
    await call(api, "GET", "/venues", status=200, token=made["token"])
    await call(api, "DELETE", f"/tokens/{made['id']}", status=200)
    resp = await api.get("/api/v1/venues", headers=api.hub.headers(made["token"]))
    assert resp.status == 401
