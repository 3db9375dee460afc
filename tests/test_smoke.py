async def test_health_needs_no_token(api):
    resp = await api.get("/api/v1/health")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_sample_catalog_is_listed(api):
    resp = await api.get("/api/v1/subscription-products", headers=api.hub.headers())
    body = await resp.json()
    assert resp.status == 200
    assert {p["kind"] for p in body["items"]} == {"ring", "choice", "voucher", "combi"}
