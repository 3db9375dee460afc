"""The season rollover over the API (S15): the office starts a dry run, then the run (202, in the
background), polls its progress, reads the result grouped by reason and confirms it; and every
hostile request (wrong role, no token, bad bodies, unknown ids, injection in customer numbers) is
refused and stores nothing. Real HTTP on loopback, the scene of tests/rollover_scene.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.base.ids import uuid7
from hub.services import tokens
from tests.helpers import call, problem
from tests.rollover_scene import scene_hub
from tests.test_subscription_sale import product


@pytest.fixture
def sample_hub(request, tmp_path, backend):
    """The sample hub with the rollover scene, built once per process and copied (tests/rollover_scene.py)."""
    return scene_hub(request, tmp_path, backend)


@pytest.fixture
def scene(sample_hub):
    return sample_hub.scene


def body(scene, **kw) -> dict:
    return {"from_season_id": scene.hub.ids["season"], "to_season_id": scene.new["season"],
            "renewal_until": "2027-05-31T23:59:00+02:00", **kw}


async def settled(api, run_id: str, deadline_s: float = 60) -> dict:
    """Poll the run until its background step is over (a deadline, not a fixed wait)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        out = await call(api, "GET", f"/rollover-runs/{run_id}", status=200)
        if not out["running"] and out["run"]["state"] not in ("planning", "confirming"):
            return out
        await asyncio.sleep(0.02)
    raise AssertionError(f"rollover {run_id} still running after {deadline_s} s")


async def test_the_office_dry_runs_runs_polls_and_confirms(api, scene):
    no_vouchers = [{"from_product_id": product(scene.hub, "Wahlgutschein 6er"), "to_product_id": None}]
    dry = await call(api, "POST", "/rollover-runs", body(scene, dry_run=True, products=no_vouchers), status=200)
    assert dry["dry_run"] and dry["run"] is None
    assert dry["counts"] == {"kept": 5, "moved": 1, "paused": 1, "listed": 4, "left_out": 1}
    assert await call(api, "GET", "/rollover-runs", status=200) == {"items": []}
    started = await call(api, "POST", "/rollover-runs", body(scene, products=no_vouchers), status=202)
    run_id = started["run"]["id"]
    done = await settled(api, run_id)
    assert done["run"]["state"] == "held" and done["run"]["done"] == done["run"]["total"] == 12
    assert done["counts"] == dry["counts"] and done["listed"] == dry["listed"]
    assert set(done["listed"]) == {"product_missing", "tier_missing", "zone_changed", "wheelchair_locked"}
    again = await call(api, "POST", "/rollover-runs", body(scene), status=202)  # continues: nothing doubled
    assert again["run"]["id"] == run_id and (await settled(api, run_id))["counts"] == dry["counts"]
    await call(api, "POST", f"/rollover-runs/{run_id}/confirm", {}, status=202)
    confirmed = await settled(api, run_id)
    assert confirmed["states"] == {"held": 1, "confirmed": 6, "open": 5, "failed": 0}
    assert confirmed["run"]["state"] == "done" and confirmed["run"]["error"] is None  # the paused one stays held
    listed = await call(api, "GET", "/rollover-runs", status=200)
    assert [r["id"] for r in listed["items"]] == [run_id]


async def test_hostile_requests_are_refused_and_store_nothing(api, scene):
    db = scene.hub.db
    ok = body(scene)
    for role in ("shop", "agency"):
        secret, _ = tokens.create_token(db, f"Fremd {role}", role)
        await problem(api, "POST", "/rollover-runs", ok, status=403, slug="forbidden", token=secret)
        await problem(api, "GET", "/rollover-runs", status=403, slug="forbidden", token=secret)
    await problem(api, "POST", "/rollover-runs", ok, status=401, slug="unauthorized", headers={"X": "y"})
    cases = [
        ({**ok, "surprise": 1}, 422), ({**ok, "from_season_id": "1 OR 1=1"}, 422),
        ({**ok, "to_season_id": ok["from_season_id"]}, 422), ({**ok, "renewal_until": "2020-01-01T00:00:00Z"}, 422),
        ({**ok, "renewal_until": "2027-05-31T23:59:00"}, 422),  # no time zone
        ({**ok, "products": [{"from_product_id": uuid7()}] * 501}, 422),
        ({**ok, "products": [{"from_product_id": product(scene.hub, "Abo-Ring A"),
                              "to_product_id": scene.new["products"]["Wahl-Abo Studio 5 aus 8"]}]}, 422),
        ({**ok, "products": [{"from_product_id": scene.new["products"]["Abo-Ring A"]}]}, 422),
        ({**ok, "from_season_id": uuid7()}, 404), ([ok], 422), ("x" * 100, 400)]
    for bad, status in cases:
        resp = await api.post("/api/v1/rollover-runs", json=bad, headers=scene.hub.headers())
        assert resp.status in ((400, 422) if status in (400, 422) else (status,)), (bad, await resp.text())
        assert resp.content_type == "application/problem+json"
    await problem(api, "GET", f"/rollover-runs/{uuid7()}", status=404, slug="not-found")
    await problem(api, "POST", f"/rollover-runs/{uuid7()}/confirm", {}, status=404, slug="not-found")
    assert db.execute("SELECT count(*) AS n FROM rollover_runs").fetchone()["n"] == 0
    started = await call(api, "POST", "/rollover-runs", ok, status=202)
    run_id = started["run"]["id"]
    await settled(api, run_id)
    for numbers in (["1' OR '1'='1"], ["K" * 41], ["x"] * 501, "K-1"):
        resp = await api.post(f"/api/v1/rollover-runs/{run_id}/confirm", json={"customer_numbers": numbers},
                              headers=scene.hub.headers())
        assert resp.status in (400, 422), numbers
    await problem(api, "POST", f"/rollover-runs/{run_id}/confirm", {"customer_numbers": ["K-NOPE"]}, status=404,
                  slug="not-found")
    assert db.execute("SELECT count(*) AS n FROM rollover_items WHERE state = 'confirmed'").fetchone()["n"] == 0
