"""RFC 9457 problem+json answers of the edge's local HTTP APIs (cash desk, gate), with the
same stable `urn:tessera:problem:<slug>` types the hub uses, so clients branch one way."""

from __future__ import annotations

from aiohttp import web

SLUGS = {"ValidationError": "validation-failed", "NotFound": "not-found", "Conflict": "conflict"}


def problem(status: int, slug: str, detail: str, field: str | None = None) -> web.Response:
    slug = SLUGS.get(slug, slug)
    body = {"type": f"urn:tessera:problem:{slug}", "title": slug.replace("-", " "), "status": status,
            "detail": detail}
    if field:
        body["field"] = field
    return web.json_response(body, status=status, content_type="application/problem+json")
