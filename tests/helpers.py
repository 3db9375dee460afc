"""Small helpers for API tests: call, expect a status, get JSON."""

from __future__ import annotations

from typing import Any

ADDRESS = {"street": "Theaterstraße 1", "postcode": "28195", "town": "Bremen", "country": "DE"}


async def call(client, method: str, path: str, body: Any = None, *, status: int | None = None,
               token: str | None = None, **kw) -> Any:
    headers = kw.pop("headers", None) or client.hub.headers(token)
    resp = await client.request(method, "/api/v1" + path, json=body, headers=headers, **kw)
    data = await resp.json(content_type=None)
    if status is not None:
        assert resp.status == status, f"{method} {path}: {resp.status} {data}"
    return data


async def problem(client, method: str, path: str, body: Any = None, *, status: int, slug: str, **kw) -> dict:
    """Expect an RFC 9457 problem with a given status and stable type."""
    headers = kw.pop("headers", None) or client.hub.headers(kw.pop("token", None))
    resp = await client.request(method, "/api/v1" + path, json=body, headers=headers, **kw)
    data = await resp.json(content_type=None)
    assert resp.status == status, f"{method} {path}: {resp.status} {data}"
    assert resp.content_type == "application/problem+json"
    assert data["type"] == f"urn:tessera:problem:{slug}", data
    assert data["status"] == status and data["title"] and data["detail"]
    return data


def table_counts(db) -> dict[str, int]:
    tables = [r["name"] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: db.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in tables}
