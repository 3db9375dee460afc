"""The OpenAPI 3.1 document, written from the route registry and the msgspec structs."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from hub.web.api import PREFIX, Api
from hub.web.schemas import Problem

REF = "#/components/schemas/{name}"
ERRORS = {
    "400": "Malformed request: bad JSON, unknown field, wrong type, bad query parameter",
    "401": "No or unknown API token",
    "403": "The token's role may not do this",
    "404": "No such record",
    "409": "Conflicts with the current state",
    "413": "Body too large",
    "415": "Wrong content type",
    "422": "Breaks a rule (dates out of order, N > M, negative price, unknown reference...)",
}


def _schema_ref(tp: Any, registry: dict[Any, dict]) -> dict:
    if tp is dict:
        return {"type": "object"}
    return registry[tp]


def _content(op: Any, registry: dict[Any, dict]) -> dict:
    """JSON by the response type (unless the operation answers only other types), and each
    `also_media` type (a `Media` answer: SVG, a PDF download) as a string of bytes."""
    content = {} if op.response is None and op.also_media else {
        "application/json": {"schema": _schema_ref(op.response, registry)}}
    content.update({media: {"schema": {"type": "string", "format": "binary"}} for media in op.also_media})
    return content


def build_document(api: Api, version: str) -> dict:
    types = {op.body for op in api.operations if op.body not in (None, str)}
    types |= {op.response for op in api.operations if op.response not in (None, dict)}
    types.add(Problem)
    ordered = sorted(types, key=repr)
    refs, components = msgspec.json.schema_components(ordered, ref_template=REF)
    registry = dict(zip(ordered, refs, strict=False))
    paths: dict[str, dict] = {}
    for op in api.operations:
        path = PREFIX + op.path
        item = paths.setdefault(path, {})
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"{(\w+)}", op.path)]
        params += [{"name": p.name, "in": "query", "required": p.required, "schema": p.schema(),
                    "description": p.description} for p in op.query]
        params += [{"name": p.name, "in": "header", "required": p.required, "schema": p.schema(),
                    "description": p.description} for p in op.headers]
        entry: dict = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": params,
            "responses": {str(op.status): {"description": "Success", "content": _content(op, registry)}},
        }
        if op.description:
            entry["description"] = op.description
        if op.roles is None:
            entry["security"] = []
        else:
            entry["description"] = (entry.get("description", "") + f" Roles: {', '.join(op.roles)}.").strip()
        if op.body is str:
            entry["requestBody"] = {"required": True, "content": {op.body_media: {"schema": {"type": "string"}}}}
        elif op.body is not None:
            entry["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": _schema_ref(op.body, registry)}}}
        for code, text in ERRORS.items():
            if code in ("401", "403") and op.roles is None:
                continue
            entry["responses"][code] = {"description": text, "content": {
                "application/problem+json": {"schema": registry[Problem]}}}
        item[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tessera hub API", "version": version,
                 "description": "Office, shop and agency API of the Tessera box office hub. "
                                "Errors are RFC 9457 problem+json with a stable `type`."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }
