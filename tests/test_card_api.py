"""The office API for cards and node keys: issue, read, re-issue, revoke; revoke a device."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.cards import cardcode
from hub.services import provisioning
from tests.helpers import call, problem, table_counts

ROOT = Path(__file__).resolve().parents[1]


def verify(code: str, folder: Path) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "cli.main", "card", "verify", code, "--data", str(folder)],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    return proc.returncode, proc.stdout


@pytest.mark.slow  # a real tessera card verify process
async def test_issue_a_card_and_check_it_offline(api):
    ids = api.hub.ids
    customer = (await call(api, "GET", "/customers?limit=1", status=200))["items"][0]
    card = await call(api, "POST", "/cards", {"product_id": ids["annual_products"][0], "customer_id": customer["id"],
                                              "holder_name": "Erika Mustermann"}, status=201)
    assert card["issue"] == 1 and card["number"].startswith("C-") and len(card["code"]) == 160
    assert cardcode.decode(card["code"]).payload.card_id == card["id"]
    assert await call(api, "GET", f"/cards/{card['id']}", status=200) == card
    listed = await call(api, "GET", f"/cards?customer_id={customer['id']}", status=200)
    assert [c["id"] for c in listed["items"]] == [card["id"]]
    rc, out = verify(card["code"], api.hub.dir)
    assert rc == 0 and "Erika Mustermann" in out


@pytest.mark.slow  # real tessera card verify processes (about 6 s)
async def test_reissue_and_revoke(api, tmp_path):
    ids = api.hub.ids
    card = await call(api, "POST", "/cards", {"product_id": ids["annual_products"][0]}, status=201)
    new = await call(api, "POST", f"/cards/{card['id']}/reissue", status=200)
    assert new["issue"] == 2 and new["code"] != card["code"]
    gate = tmp_path / "gate"
    provisioning.provision(gate, api.hub.dir, name="g", role="gate")
    assert verify(card["code"], gate)[0] == 3 and '"SUPERSEDED"' in verify(card["code"], gate)[1]
    assert verify(new["code"], gate)[0] == 0
    revoked = await call(api, "POST", f"/cards/{card['id']}/revoke", {"reason": "Rückbuchung"}, status=200)
    assert revoked["revoked_at"] and revoked["revoke_reason"] == "Rückbuchung"
    provisioning.refresh(gate, api.hub.dir)
    assert '"REVOKED"' in verify(new["code"], gate)[1]
    await problem(api, "POST", f"/cards/{card['id']}/reissue", status=409, slug="conflict")


async def test_bad_card_requests_change_nothing(api):
    ids = api.hub.ids
    before = table_counts(api.hub.db)
    await problem(api, "POST", "/cards", {"product_id": ids["performances"][0], "kind": "annual"}, status=422,
                  slug="validation-failed")
    await problem(api, "POST", "/cards", {"product_id": ids["annual_products"][0], "kind": "ticket"}, status=422,
                  slug="validation-failed")
    await problem(api, "POST", "/cards", {"product_id": ids["annual_products"][0], "valid_from": "2026-01-01T00:00"},
                  status=422, slug="validation-failed")
    await problem(api, "POST", "/cards", {"product_id": ids["annual_products"][0],
                                          "valid_from": "2027-01-01T00:00:00Z", "valid_until": "2026-01-01T00:00:00Z"},
                  status=422, slug="validation-failed")
    await problem(api, "POST", "/cards", {"product_id": ids["annual_products"][0], "holder": "x"}, status=400,
                  slug="unknown-field")
    await problem(api, "GET", "/cards/01900000-0000-7000-8000-000000000000", status=404, slug="not-found")
    await problem(api, "POST", "/cards/01900000-0000-7000-8000-000000000000/revoke", {"reason": "x"}, status=404,
                  slug="not-found")
    assert table_counts(api.hub.db) == before


async def test_office_issues_cards_but_only_admins_revoke_devices(api):
    office = (await call(api, "POST", "/tokens", {"name": "office", "role": "office"}, status=201))["token"]
    shop = (await call(api, "POST", "/tokens", {"name": "shop", "role": "shop"}, status=201))["token"]
    await call(api, "POST", "/cards", {"product_id": api.hub.ids["annual_products"][0]}, status=201, token=office)
    await problem(api, "POST", "/cards", {"product_id": api.hub.ids["annual_products"][0]}, status=403,
                  slug="forbidden", token=shop)
    await problem(api, "GET", "/nodes", status=403, slug="forbidden", token=office)


async def test_revoking_a_stolen_desk_keeps_its_earlier_cards(api, tmp_path):
    desk = tmp_path / "desk"
    node = provisioning.provision(desk, api.hub.dir, name="Kasse 2", role="cashdesk")
    nodes = await call(api, "GET", "/nodes", status=200)
    assert {n["role"] for n in nodes} == {"hub", "cashdesk"} and all(n["revoked_at"] is None for n in nodes)
    await problem(api, "POST", f"/nodes/{node['id']}/revoke", {"reason": "stolen"}, status=422,
                  slug="validation-failed")
    hub_id = next(n["node_id"] for n in nodes if n["role"] == "hub")
    await problem(api, "POST", f"/nodes/{hub_id}/revoke", {"reason": "lost"}, status=409, slug="conflict")
    result = await call(api, "POST", f"/nodes/{node['id']}/revoke", {"reason": "lost"}, status=200)
    assert result[0]["revoke_reason"] == "lost" and result[0]["revoked_at"]
