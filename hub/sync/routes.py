"""The hub's sync endpoints for edge nodes, under `/sync/v1` (DESIGN §4, §7).

- `POST /sync/v1/enroll/start` and `/finish`: the enrollment handshake (hub/sync/enroll_routes.py).
- `POST /sync/v1/push`: a batch of outbox ops -> one result per op.
- `GET /sync/v1/pull?after=N&limit=M`: the change feed after the node's cursor, in its scope.

Push and pull requests are signed by the node's key (core/sync/auth.py): a node whose
certificate is revoked, or a request whose body was changed on the way, is refused and
logged. Every response, errors included, is signed by the hub's node key over the request's
nonce, so an edge can tell the real hub from anything else on the LAN.
"""

from __future__ import annotations

import logging

import msgspec
from aiohttp import web

from core.base.clock import iso_ms, parse_iso, utcnow
from core.base.node import this_node
from core.cards.cards import NodeSigner, load_signer
from core.cards.trust import TrustStore
from core.sync import auth
from core.sync.messages import (
    MAX_PAGE,
    OLDEST_SUPPORTED,
    PROTOCOL,
    PullResponse,
    PushRequest,
    PushResponse,
    encoder,
)
from core.sync.ops import Pushed
from hub.services import nodes
from hub.settings import HubContext, context
from hub.sync import apply, enroll_routes, enrollment, feed
from hub.web import problems
from hub.web.api import DB

log = logging.getLogger("tessera.sync")
PREFIX = "/sync/v1"
MAX_PUSH_BYTES = 16 * 1024 * 1024
PROTOCOL_HEADER = "X-Tessera-Protocol"
TIME_HEADER = "X-Tessera-Time"
STATE = web.AppKey("sync_state", object)


class SyncState:
    """Per-app caches: the hub's signing key and the trust store (reloaded when certificates
    or revocations change), and the enrollment rate limit."""

    def __init__(self, hub: HubContext) -> None:
        self.db = hub.db
        self.data_dir = hub.data_dir
        self.rate = enrollment.RateLimit()
        self._trust_key: tuple | None = None
        self._trust: TrustStore | None = None
        self._signer: NodeSigner | None = None

    def trust(self) -> TrustStore:
        key = nodes.trust_version(self.db)
        if key != self._trust_key:
            self._trust, self._trust_key = TrustStore.load(self.db), key
        return self._trust

    def hub_cert(self, key_id: int) -> str:
        return nodes.certificate(self.db, key_id)

    def signer(self) -> NodeSigner:
        current = this_node(self.db)["key_id"]
        if self._signer is None or self._signer.key_id != current:
            self._signer = load_signer(self.db, self.data_dir)
        return self._signer


def install(app: web.Application) -> None:
    app[STATE] = SyncState(context(app))
    enroll_routes.install(app)
    app.router.add_post(f"{PREFIX}/push", push)
    app.router.add_get(f"{PREFIX}/pull", pull)


# -- responses ---------------------------------------------------------------------------------

def signed(request: web.Request, status: int, body: bytes, content_type: str = "application/json") -> web.Response:
    state: SyncState = request.app[STATE]
    signer = state.signer()
    nonce = request.headers.get(auth.NONCE, "")[:64]
    headers = auth.sign_response(signer.private, signer.key_id, nonce, status, body)
    headers[auth.HUB_CERT] = state.hub_cert(signer.key_id)  # lets edges follow a hub key rotation
    return web.Response(status=status, body=body, headers=headers, content_type=content_type)


def problem(request: web.Request, status: int, slug: str, detail: str) -> web.Response:
    body = problems.problem_body(status, slug, slug.replace("-", " "), detail, instance=request.path)
    return signed(request, status, body, problems.PROBLEM_MEDIA)


def _protocol(request: web.Request, claimed: int | None) -> web.Response | None:
    if claimed is None:
        try:
            claimed = int(request.headers.get(PROTOCOL_HEADER, PROTOCOL))
        except ValueError:
            return problem(request, 400, "bad-request", f"{PROTOCOL_HEADER} must be a number")
    if claimed > PROTOCOL:
        return problem(request, 426, "upgrade-hub", f"this edge speaks sync protocol {claimed}, this hub only "
                                                     f"{OLDEST_SUPPORTED}..{PROTOCOL}: upgrade the hub")
    if claimed < OLDEST_SUPPORTED:
        return problem(request, 426, "upgrade-edge", f"this edge speaks sync protocol {claimed}, the hub needs "
                                                      f"{OLDEST_SUPPORTED}..{PROTOCOL}: upgrade the edge")
    return None


async def _read(request: web.Request) -> bytes | web.Response:
    if request.content_length is not None and request.content_length > MAX_PUSH_BYTES:
        return problem(request, 413, "too-large", f"at most {MAX_PUSH_BYTES} bytes per request")
    chunks, size = [], 0
    # read(n) returns what has arrived so far, not the whole body: read to the end
    while chunk := await request.content.read(MAX_PUSH_BYTES + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_PUSH_BYTES:
            return problem(request, 413, "too-large", f"at most {MAX_PUSH_BYTES} bytes per request")
    return b"".join(chunks)


def _authenticate(request: web.Request, body: bytes) -> str | web.Response:
    """The node that signed this request, or a signed 401/403 problem."""
    state: SyncState = request.app[STATE]
    node_id = request.headers.get(auth.NODE, "")
    key_id = auth.parse_key_id(request.headers.get(auth.KEY))
    nonce = request.headers.get(auth.NONCE, "")
    signer = state.trust().get(key_id) if key_id is not None else None
    if signer is None or signer.node_id != node_id or not nonce:
        return problem(request, 401, "unauthorized", "unknown node or key; enroll this node first")
    message = auth.request_message(request.method, request.path_qs, nonce, body)
    if not auth.verify(signer.public, request.headers.get(auth.SIGNATURE), message):
        log.warning("sync: bad request signature from node %s (%s) at %s", signer.name, node_id, request.remote)
        return problem(request, 401, "bad-signature", "request signature does not verify")
    now_ms = int(utcnow().timestamp() * 1000)
    if signer.revoked_at_ms is not None and now_ms >= signer.revoked_at_ms:
        log.warning("sync: refused %s from revoked node %s (%s) at %s", request.path, signer.name, node_id,
                    request.remote)
        return problem(request, 403, "node-revoked", f"node {signer.name} is revoked ({signer.revoke_reason})")
    _note_clock(request, node_id)
    return node_id


def _note_clock(request: web.Request, node_id: str) -> None:
    sent = request.headers.get(TIME_HEADER)
    if not sent:
        return
    try:
        skew = (parse_iso(sent) - utcnow()).total_seconds()
    except ValueError:
        return
    nodes.note_clock_skew(request.app[DB], node_id, skew)


# -- handlers ----------------------------------------------------------------------------------

async def push(request: web.Request) -> web.Response:
    body = await _read(request)
    if isinstance(body, web.Response):
        return body
    node_id = _authenticate(request, body)
    if isinstance(node_id, web.Response):
        return node_id
    try:
        req = msgspec.json.decode(body, type=PushRequest)
    except msgspec.MsgspecError as exc:
        return problem(request, 400, "bad-request", f"not a push request: {exc}")
    if (refused := _protocol(request, req.protocol)) is not None:
        return refused
    if req.node_id != node_id:
        return problem(request, 403, "wrong-node", "ops of another node")
    db, now = request.app[DB], utcnow()
    trust = request.app[STATE].trust()
    signer = trust.get(auth.parse_key_id(request.headers.get(auth.KEY)))
    scope = nodes.sync_scope(db, node_id)
    pushed = Pushed(db=db, node_id=node_id, role=signer.role, venue_ids=tuple(scope["venue_ids"]), trust=trust,
                    now=now)
    results = apply.apply_push(pushed, req.ops)
    nodes.note_push(db, node_id, now)
    return signed(request, 200, encoder.encode(PushResponse(protocol=PROTOCOL, hub_time=iso_ms(now), results=results)))


async def pull(request: web.Request) -> web.Response:
    node_id = _authenticate(request, b"")
    if isinstance(node_id, web.Response):
        return node_id
    if (refused := _protocol(request, None)) is not None:
        return refused
    try:
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", str(MAX_PAGE)))
        if not 0 <= after < 2**63 or not 1 <= limit <= MAX_PAGE:  # SQLite integers are 64-bit
            raise ValueError
    except ValueError:
        return problem(request, 400, "bad-request", f"0 <= after < 2^63 and 1 <= limit <= {MAX_PAGE}")
    db, now = request.app[DB], utcnow()
    changes, next_after, more = feed.page(db, nodes.sync_scope(db, node_id), after, limit)
    nodes.note_pull(db, node_id, now, next_after)
    return signed(request, 200, encoder.encode(PullResponse(protocol=PROTOCOL, hub_time=iso_ms(now), changes=changes,
                                                            next_after=next_after, more=more)))
