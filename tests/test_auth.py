"""Bearer tokens and roles; agencies see only what is released to them (S16)."""

from hub.services.tokens import hash_token
from tests.helpers import ADDRESS, call, problem


async def token(api, role):
    return (await call(api, "POST", "/tokens", {"name": f"{role} test", "role": role}, status=201))["token"]


async def test_no_token_or_a_wrong_token_is_401(api):
    await problem(api, "GET", "/venues", status=401, slug="unauthorized", headers={"X": "y"})
    await problem(api, "GET", "/venues", status=401, slug="unauthorized",
                  headers={"Authorization": "Bearer tsr_wrong"})
    await problem(api, "GET", "/venues", status=401, slug="unauthorized", headers={"Authorization": "Basic abc"})


async def test_tokens_are_stored_only_as_hashes(api):
    secret = await token(api, "office")
    stored = [r["token_hash"] for r in api.hub.db.execute("SELECT token_hash FROM api_tokens")]
    assert secret not in stored and hash_token(secret) in stored
    listed = await call(api, "GET", "/tokens", status=200)
    assert all("token" not in t and "token_hash" not in t for t in listed)


async def test_office_manages_the_catalog_but_not_tokens(api):
    office = await token(api, "office")
    await call(api, "POST", "/organizers", {"name": "Neu", "address": ADDRESS}, status=201, token=office)
    await problem(api, "POST", "/tokens", {"name": "x", "role": "admin"}, status=403, slug="forbidden",
                  token=office)


async def test_shop_reads_online_products_and_creates_customers_only(api):
    shop = await token(api, "shop")
    products = await call(api, "GET", "/annual-ticket-products", status=200, token=shop)
    assert {p["name"] for p in products["items"]} == {"Jahreskarte Verbund", "Jahreskarte Stadtmuseum",
                                                      "Kalenderjahreskarte 2027"}
    assert all("online" in p["channels"] for p in products["items"])
    await call(api, "POST", "/customers", {"first_name": "Max", "last_name": "Web", "address": ADDRESS},
               status=201, token=shop)
    await problem(api, "GET", "/customers", status=403, slug="forbidden", token=shop)
    await problem(api, "PATCH", f"/venues/{api.hub.ids['museum_venues']['Kunsthalle']}", {"name": "x"},
                  status=403, slug="forbidden", token=shop)


async def test_an_agency_sees_only_released_products_and_tiers_bookable_by_all(api):
    agency = await token(api, "agency")
    ids = api.hub.ids["subscriptions"]
    listed = await call(api, "GET", "/subscription-products", status=200, token=agency)
    assert {p["name"] for p in listed["items"]} == {"Abo-Ring A", "Wahlgutschein 6er"}
    await problem(api, "GET", f"/subscription-products/{ids['Abo-Ring B']}", status=404, slug="not-found",
                  token=agency)
    tiers = await call(api, "GET", "/discount-tiers?limit=500", status=200, token=agency)
    assert tiers["total"] == 4 and all(t["bookable_by_all"] for t in tiers["items"])
    table = await call(api, "GET", f"/subscription-products/{ids['Abo-Ring A']}/prices", status=200, token=agency)
    assert {t["name"] for t in table["zones"][0]["tiers"]} == {"Schüler/Studierende", "Schwerbehinderte (GdB ab 50)"}
    hidden = (await call(api, "GET", f"/discount-tiers?product_id={ids['Abo-Ring A']}", status=200))["items"]
    honour = next(t for t in hidden if t["name"] == "Ehrenkarte")
    await problem(api, "GET", f"/subscription-products/{ids['Abo-Ring A']}/price?zone_id={api.hub.ids['zones']['1']}"
                              f"&tier_id={honour['id']}", status=422, slug="validation-failed", token=agency)
    annual = await call(api, "GET", "/annual-ticket-products", status=200, token=agency)
    assert [p["name"] for p in annual["items"]] == ["Jahreskarte Verbund"]
    await problem(api, "GET", "/customers", status=403, slug="forbidden", token=agency)
    await problem(api, "POST", "/discount-tiers", {"product_id": ids["Abo-Ring A"], "name": "x", "kind": "fixed",
                                                   "value": 1}, status=403, slug="forbidden", token=agency)


async def test_an_agency_loses_sight_of_a_withdrawn_product(api):
    agency = await token(api, "agency")
    pid = api.hub.ids["subscriptions"]["Abo-Ring A"]
    await call(api, "PATCH", f"/subscription-products/{pid}", {"agency_release": False}, status=200)
    await problem(api, "GET", f"/subscription-products/{pid}", status=404, slug="not-found", token=agency)


async def test_admins_create_and_revoke_tokens(api):
    made = await call(api, "POST", "/tokens", {"name": "Kasse Foyer", "role": "office"}, status=201)
    assert made["token"].startswith("tsr_")
    await call(api, "GET", "/venues", status=200, token=made["token"])
    revoked = await call(api, "DELETE", f"/tokens/{made['id']}", status=200)
    assert revoked["revoked_at"]
    await problem(api, "GET", "/venues", status=401, slug="unauthorized", token=made["token"])


async def test_the_last_admin_token_cannot_be_revoked(api):
    admins = [t for t in await call(api, "GET", "/tokens", status=200) if t["role"] == "admin"]
    assert len(admins) == 1
    await problem(api, "DELETE", f"/tokens/{admins[0]['id']}", status=409, slug="conflict")
    await problem(api, "DELETE", "/tokens/not-an-id", status=404, slug="not-found")
