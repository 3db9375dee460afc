"""The API document and the router must describe the same API."""

import re

from hub.web.api import PREFIX


def router_operations(app) -> set[tuple[str, str]]:
    """Routes of the office API; the nodes' /sync/v1 protocol is documented in docs/sync.md."""
    ops = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        # /p/: the customers' HTML pages (test_personalize.py); /office: the staff's (test_office_login.py)
        if not path.startswith(("/sync/", "/p/", "/office")):
            ops.add((route.method.lower(), path))
    return ops


def document_operations(doc) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item}


async def test_every_route_is_documented_and_every_documented_route_exists(api):
    doc = await (await api.get(f"{PREFIX}/openapi.json")).json()
    routes, documented = router_operations(api.app), document_operations(doc)
    assert routes - documented == set(), "routes missing from the API document"
    assert documented - routes == set(), "documented operations that do not exist"
    assert len(routes) > 40


async def test_documented_schemas_resolve(api):
    doc = await (await api.get(f"{PREFIX}/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    text = str(doc)
    for ref in set(re.findall(r"#/components/schemas/([\w]+)", text)):
        assert ref in schemas, ref
    assert doc["openapi"].startswith("3.")
    for item in doc["paths"].values():
        for op in item.values():
            assert op["operationId"] and op["summary"] and "responses" in op
