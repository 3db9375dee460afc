"""A small route registry: each API operation is declared once, with its roles, body type,
query parameters and response type. The same declaration installs the aiohttp route and
writes the operation into the OpenAPI document, so the document cannot drift from the
routes (and `tests/test_openapi.py` checks the router against it).

Handlers are plain functions `handler(ctx) -> payload` or `(status, payload)`: SQLite calls
are short and synchronous, and one event loop per hub keeps writes naturally serialised.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from core.catalog.common import UUID_PATTERN
from hub.services import tokens
from hub.web.offload import OFFLOAD, Offload
from hub.web.problems import MAX_BODY_BYTES, ApiError

PREFIX = "/api/v1"
DB = web.AppKey("db", Any)
API = web.AppKey("api", Any)
OPENAPI = web.AppKey("openapi", dict)
CACHE = web.AppKey("cache", Any)
AUDIENCE = {"admin": "internal", "office": "internal", "shop": "shop", "agency": "agency"}


@dataclass
class Param:
    """A query parameter: kind is int, bool, str or uuid."""

    name: str
    kind: str = "str"
    description: str = ""
    minimum: int | None = None
    maximum: int | None = None
    max_length: int = 200
    required: bool = False

    def schema(self) -> dict:
        if self.kind == "int":
            s: dict = {"type": "integer"}
            if self.minimum is not None:
                s["minimum"] = self.minimum
            if self.maximum is not None:
                s["maximum"] = self.maximum
            return s
        if self.kind == "bool":
            return {"type": "boolean"}
        if self.kind == "uuid":
            return {"type": "string", "pattern": UUID_PATTERN}
        return {"type": "string", "maxLength": self.max_length}

    def parse(self, raw: str) -> Any:
        if self.kind == "int":
            try:
                value = int(raw)
            except ValueError:
                raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                               f"{self.name} must be a whole number, not {raw!r}", field=self.name) from None
            if (self.minimum is not None and value < self.minimum) or (
                    self.maximum is not None and value > self.maximum):
                raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                               f"{self.name} must be between {self.minimum} and {self.maximum}", field=self.name)
            return value
        if self.kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                               f"{self.name} must be true or false, not {raw!r}", field=self.name)
            return raw.lower() in ("true", "1")
        if self.kind == "uuid" and not re.match(UUID_PATTERN, raw):
            raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                           f"{self.name} must be an id (UUID), not {raw!r}", field=self.name)
        if len(raw) > self.max_length:
            raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                           f"{self.name} is longer than {self.max_length} characters", field=self.name)
        return raw


@dataclass(frozen=True)
class Media:
    """An answer that is not JSON (a seat map as SVG by `?format=`, a print batch's PDF): the
    handler returns it instead of a JSON payload; declare the type in `Operation.also_media`
    (and no `response` type if the operation never answers JSON). Never cached."""

    body: bytes
    content_type: str


@dataclass(frozen=True)
class Download:
    """A file answer too big to hold in memory (a report's CSV, XLSX or PDF): *file* is an open
    binary file at its start (a temporary file the handler wrote); it is sent in chunks and
    closed. Declare its type in `Operation.also_media`, like a `Media`. Never cached."""

    file: Any
    content_type: str
    filename: str


@dataclass
class Ctx:
    """What a handler sees: no aiohttp request, so operations also run in-process."""

    app: Any
    db: Any
    token: dict | None
    params: dict[str, str]
    query: dict[str, Any]
    body: Any
    # Request headers (case-insensitive when served over HTTP), the URL the request came
    # in on (scheme://host[:port], for links in mails), and headers to add to the answer.
    headers: Mapping[str, str] = field(default_factory=dict)
    base_url: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def audience(self) -> str:
        return AUDIENCE[self.token["role"]] if self.token else "internal"

    def path(self, name: str) -> str:
        return self.params[name]


@dataclass
class Operation:
    method: str
    path: str
    handler: Callable[[Ctx], Any]
    summary: str
    tag: str
    roles: tuple[str, ...] | None
    body: type | None = None
    body_media: str = "application/json"
    response: Any = None
    also_media: tuple[str, ...] = ()  # further types the handler may answer with, as a Media
    status: int = 200
    query: list[Param] = field(default_factory=list)
    headers: list[Param] = field(default_factory=list)  # documented request headers (checked by the handler)
    description: str = ""
    cacheable: bool = False
    # On PostgreSQL the request's database work (token, read cache, handler) runs in the hub's
    # executor on a pooled session, off the event loop (hub/web/offload.py, `_served_off_loop`):
    # by default every operation whose handler is not `async` (an `async def` handler awaits on
    # the loop, with the process's connection). On SQLite, and in-process, inline as before.
    offload: bool | None = None

    def __post_init__(self) -> None:
        if self.offload is None:
            self.offload = not inspect.iscoroutinefunction(self.handler)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


class Api:
    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def add(self, method: str, path: str, handler: Callable[[Ctx], Any], **kw: Any) -> Operation:
        """Declare an operation. GETs are served from the read cache unless cacheable=False."""
        kw.setdefault("cacheable", method == "GET")
        op = Operation(method=method, path=path, handler=handler, **kw)
        self.operations.append(op)
        return op

    def find(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """The operation serving *method* *path* (relative to the prefix), with path params."""
        for op in self.operations:
            pattern = "^" + re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", op.path) + "$"
            match = re.match(pattern, path)
            if op.method == method and match:
                return op, match.groupdict()
        raise LookupError(f"no operation {method} {path}")

    def install(self, app: web.Application) -> None:
        for op in self.operations:
            app.router.add_route(op.method, PREFIX + op.path, _endpoint(op), name=op.operation_id)


def _authenticate(request: web.Request, op: Operation, db: Any = None) -> dict | None:
    if op.roles is None:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise ApiError(401, "unauthorized", "Authentication required",
                       "send an API token as 'Authorization: Bearer <token>'")
    token = tokens.lookup(request.app[DB] if db is None else db, secret.strip())
    if token is None:
        raise ApiError(401, "unauthorized", "Authentication required", "the API token is unknown or revoked")
    if token["role"] not in op.roles:
        raise ApiError(403, "forbidden", "Not allowed",
                       f"a token with role {token['role']} may not {op.summary.lower()}")
    return token


# U+0000 in a JSON text is written `\u0000` (after an even number of backslashes: an odd one
# would escape the backslash itself); a raw NUL is no JSON at all. PostgreSQL's text refuses
# it (a 500) and SQLite would store it, so the API refuses every body and query parameter
# holding one, the same on both backends, before anything is decoded (as the sync ops are:
# core/sync/ops.py).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_NUL = "a text in the request holds a NUL character (U+0000), which no field may"


async def _read_body(request: web.Request, op: Operation) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "body-too-large", "Body too large",
                       f"the request body exceeds the limit of {MAX_BODY_BYTES} bytes")
    media = request.content_type
    if media != op.body_media:
        raise ApiError(415, "unsupported-media-type", "Unsupported media type",
                       f"send the body as {op.body_media}, not {media or 'nothing'}")
    raw = await request.read()
    if op.body_media != "application/json":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "malformed-body", "Malformed body", "the body is not UTF-8 text") from None
        if "\x00" in text:
            raise ApiError(400, "malformed-body", "Malformed body", _NUL)
        return text
    if not raw.strip():
        raise ApiError(400, "malformed-json", "Malformed JSON", "this request needs a JSON body")
    if _NUL_ESCAPE.search(raw):
        raise ApiError(400, "malformed-json", "Malformed JSON", _NUL)
    try:
        return msgspec.json.decode(raw, type=op.body)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed-json", "Malformed JSON", "the body is not UTF-8 encoded JSON") from None


def _parse_query(request: web.Request, op: Operation) -> dict[str, Any]:
    known = {p.name: p for p in op.query}
    values: dict[str, Any] = {}
    for name, raw in request.query.items():
        param = known.get(name)
        if param is None:
            allowed = ", ".join(known) or "none"
            raise ApiError(400, "unknown-parameter", "Unknown query parameter",
                           f"unknown query parameter {name!r}; allowed: {allowed}", field=name)
        if name in values:
            raise ApiError(400, "invalid-parameter", "Invalid query parameter",
                           f"query parameter {name!r} is given twice", field=name)
        if "\x00" in raw:  # as a search's `q` always was (core/catalog/resource.py): invalid input
            raise ApiError(422, "validation-failed", "Invalid input", f"{name}: {_NUL}", field=name)
        values[name] = param.parse(raw)
    for param in op.query:
        if param.required and param.name not in values:
            raise ApiError(400, "missing-parameter", "Missing query parameter",
                           f"query parameter {param.name!r} is required", field=param.name)
    return values


def _origin(request: web.Request) -> str:
    """scheme://host[:port] the request was sent to ("" if its Host header is unusable)."""
    try:
        return str(request.url.origin())
    except ValueError:
        return ""


CHUNK = 256 * 1024


async def send_file(request: web.Request, status: int, download: Download,
                    headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """Stream *download*'s file in chunks, then close it (a temporary file is gone with it);
    *headers* added (the office app's security headers)."""
    media, _, charset = download.content_type.partition("; charset=")
    response = web.StreamResponse(status=status, headers={
        **(headers or {}), "Content-Disposition": f'attachment; filename="{download.filename}"',
        "Cache-Control": "no-store"})
    response.content_type = media
    if charset:
        response.charset = charset
    try:
        download.file.seek(0, 2)
        response.content_length = download.file.tell()
        download.file.seek(0)
        await response.prepare(request)
        while chunk := download.file.read(CHUNK):
            await response.write(chunk)
        await response.write_eof()
    finally:
        download.file.close()
    return response


def _endpoint(op: Operation) -> Callable:
    async def endpoint(request: web.Request) -> web.Response:
        offload = request.app.get(OFFLOAD) if op.offload else None
        if offload is not None and offload.executor is not None:
            return await _served_off_loop(request, op, offload)
        db = request.app[DB]
        token = _authenticate(request, op)
        query = _parse_query(request, op)
        cache = request.app.get(CACHE) if op.cacheable else None
        if cache is not None:
            key = _cache_key(request, op, token)
            cached = cache.get(db, key)
            if cached is not None:
                return web.Response(status=op.status, body=cached, content_type="application/json")
        body = await _read_body(request, op) if op.body is not None else None
        ctx = Ctx(request.app, db, token, dict(request.match_info), query, body, headers=request.headers,
                  base_url=_origin(request))
        result = op.handler(ctx)
        if inspect.isawaitable(result):  # a handler that waits (e.g. for a print batch rendered in a thread)
            result = await result
        status, payload = result if isinstance(result, tuple) else (op.status, result)
        if isinstance(payload, Download):
            return await send_file(request, status, payload)
        if isinstance(payload, Media):  # SVG, PDF: the bytes as they are (never cached: only JSON is)
            return _media(status, payload, ctx)
        encoded = msgspec.json.encode(payload)
        if cache is not None and status == op.status:
            cache.put(db, key, encoded)
        return web.Response(status=status, body=encoded, content_type="application/json",
                            headers=ctx.response_headers or None)

    endpoint.__name__ = op.operation_id
    return endpoint


def _cache_key(request: web.Request, op: Operation, token: dict | None) -> tuple:
    return op.operation_id, request.path, request.query_string, AUDIENCE[token["role"]] if token else None


def _media(status: int, payload: Media, ctx: Ctx) -> web.Response:
    media, _, charset = payload.content_type.partition("; charset=")  # e.g. a Windows-1252 CSV
    return web.Response(status=status, body=payload.body, content_type=media, charset=charset or None,
                        headers=ctx.response_headers or None)


async def _served_off_loop(request: web.Request, op: Operation, offload: Offload) -> web.StreamResponse:
    """A hub on PostgreSQL (hub/web/offload.py): every round trip of the request to the database
    (the token lookup, the read cache's generation, the handler) in a thread of the executor on
    a pooled session, none on the event loop. Without a body, one hop to the thread does it all;
    with a body, the token is looked up first (a 401 before the body is read), the body is read
    on the loop, then the handler runs in a second hop. The request is only read in the thread."""
    cache = request.app.get(CACHE) if op.cacheable else None

    def prepare(db: Any) -> tuple[dict | None, dict[str, Any]]:
        return _authenticate(request, op, db), _parse_query(request, op)

    def serve(db: Any, prepared: tuple[dict | None, dict[str, Any]] | None, body: Any) -> tuple[Any, Ctx, tuple]:
        token, query = prepared or prepare(db)
        key: tuple = ()
        if cache is not None:
            key = _cache_key(request, op, token)
            cached = cache.get(db, key)
            if cached is not None:
                return cached, None, key  # type: ignore[return-value]
        ctx = Ctx(request.app, db, token, dict(request.match_info), query, body, headers=request.headers,
                  base_url=_origin(request))
        result = op.handler(ctx)
        if inspect.isawaitable(result):  # not an `async def` (those stay on the loop): a coroutine of its own
            return result, ctx, key
        status, payload = result if isinstance(result, tuple) else (op.status, result)
        if isinstance(payload, (Download, Media)):
            return (status, payload), ctx, key
        encoded = msgspec.json.encode(payload)
        if cache is not None and status == op.status:
            cache.put(db, key, encoded)
        return (status, encoded), ctx, key

    prepared = None
    body = None
    if op.body is not None:
        prepared = await offload.call(prepare, request.app[DB])
        body = await _read_body(request, op)
    outcome, ctx, _key = await offload.call(lambda db: serve(db, prepared, body), request.app[DB])
    if isinstance(outcome, bytes):  # from the read cache
        return web.Response(status=op.status, body=outcome, content_type="application/json")
    if inspect.isawaitable(outcome):  # it runs on the loop: with the process's connection, as inline
        ctx.db = request.app[DB]
        outcome = await outcome
        outcome = outcome if isinstance(outcome, tuple) else (op.status, outcome)
        if not isinstance(outcome[1], (Download, Media)):
            outcome = (outcome[0], msgspec.json.encode(outcome[1]))
    status, payload = outcome
    if isinstance(payload, Download):
        return await send_file(request, status, payload)
    if isinstance(payload, Media):
        return _media(status, payload, ctx)
    return web.Response(status=status, body=payload, content_type="application/json",
                        headers=ctx.response_headers or None)
