"""The hub's sync endpoints for edge nodes, under `/sync/v1` (DESIGN §4, §7).

- `POST /sync/v1/enroll/start` and `/finish`: the enrollment handshake (hub/sync/enroll_routes.py).
- `POST /sync/v1/push`: a batch of outbox ops -> one result per op.
- `GET /sync/v1/pull?after=N&limit=M[&wait=S]`: the change feed after the node's cursor, in its
  scope; with `wait` (at most 25 s) the hub holds the pull until a change the node may see
  is committed or the wait ends (the live channel, hub/sync/live.py).

Push and pull requests are signed by the node's key (core/sync/auth.py): a node whose
certificate is revoked, or a request whose body was changed on the way, is refused and
logged; so is a request signed more than 5 minutes from hub time (`stale-request`) or one
whose nonce was accepted before (`replayed-request`, hub/sync/nonces.py). Push bodies and
push and pull answers are sealed between the node's and the hub's keys (core/sync/sealed.py):
an unsealed push is refused with 415. Every response, errors included, is signed by the hub's
node key over the request's nonce, hub time and the protocol versions the hub speaks, so an
edge can tell the real hub from anything else on the LAN; problem answers carry no customer
data and stay plain JSON.
"""

from __future__ import annotations

import logging

import msgspec
from aiohttp import web

from core.base.clock import iso_ms, utcnow
from core.base.storage import retried, transaction
from core.base.streams import read_capped
from core.cards.trust import Signer, TrustStore
from core.sync import auth, sealed
from core.sync.messages import (
    MAX_PAGE,
    PROTOCOL,
    PullResponse,
    PushRequest,
    PushResponse,
    encoder,
)
from core.sync.ops import Pushed
from hub.services import backup as backups
from hub.services import nodes
from hub.settings import HubContext, context
from hub.sync import answers, apply, enroll_routes, feed, live, nonces
from hub.sync.answers import HubKey
from hub.web.api import DB
from hub.web.offload import OFFLOAD

log = logging.getLogger("tessera.sync")
PREFIX = "/sync/v1"
MAX_PUSH_BYTES = 16 * 1024 * 1024
PROTOCOL_HEADER = auth.PROTOCOL
TIME_HEADER = auth.TIME
STATE = web.AppKey("sync_state", object)


class SyncState(HubKey):
    """Per-app caches: the hub's signing key (HubKey) and the trust store (reloaded when
    certificates or revocations change), the sealer and the nonce pruner."""

    def __init__(self, hub: HubContext) -> None:
        super().__init__(hub.db, hub.data_dir)
        self._trust_key: tuple | None = None
        self._trust: TrustStore | None = None
        self._sealer: sealed.Sealer | None = None
        self.pruner = nonces.Pruner()
        self.watch = live.FeedWatch(hub.db)  # wakes held pulls when the feed grows

    def trust(self) -> TrustStore:
        key = nodes.trust_version(self.db)
        if key != self._trust_key:
            self._trust, self._trust_key = TrustStore.load(self.db), key
        return self._trust

    def hub_cert(self, key_id: int) -> str:
        return nodes.certificate(self.db, key_id)

    def sealer(self) -> sealed.Sealer:
        """Boxes under the hub's current key (a rotation makes new ones)."""
        signer = self.signer()
        if self._sealer is None or self._sealer.key_id != signer.key_id:
            self._sealer = sealed.Sealer(signer.private, signer.key_id)
        return self._sealer


def install(app: web.Application) -> None:
    app[STATE] = SyncState(context(app))
    enroll_routes.install(app)
    app.router.add_post(f"{PREFIX}/push", push)
    app.router.add_get(f"{PREFIX}/pull", pull)
    app.on_shutdown.append(_release_held_pulls)


async def _release_held_pulls(app: web.Application) -> None:
    """Held pulls answer at once when the hub stops, instead of holding up its shutdown."""
    app[STATE].watch.close()


# -- responses ---------------------------------------------------------------------------------

def signed(request: web.Request, status: int, body: bytes, content_type: str = "application/json") -> web.Response:
    state: SyncState = request.app[STATE]
    return answers.signed(state, request, status, body, content_type, state.hub_cert(state.signer().key_id))


def problem(request: web.Request, status: int, slug: str, detail: str) -> web.Response:
    state: SyncState = request.app[STATE]
    return answers.problem(state, request, status, slug, detail, hub_cert=state.hub_cert(state.signer().key_id))


def sealed_answer(request: web.Request, node: Signer, body: bytes) -> web.Response:
    """A 200 whose body only *node* can read (holder names, customer records...)."""
    box = request.app[STATE].sealer().seal(body, node.public_raw, node.key_id)
    return signed(request, 200, box, sealed.MEDIA)


def _protocol(request: web.Request, claimed: int | None) -> web.Response | None:
    """A version outside the hub's range gets a signed 426 *before* the signature is checked
    (another version may sign differently); the range is in the answer's signed headers, so
    an edge believes the 426 only if its own version really is outside it."""
    if claimed is None:
        try:
            claimed = int(request.headers.get(PROTOCOL_HEADER, PROTOCOL))
        except ValueError:
            return problem(request, 400, "bad-request", f"{PROTOCOL_HEADER} must be a number")
    low, high = request.app[STATE].supported
    if claimed > high:
        return problem(request, 426, "upgrade-hub", f"this edge speaks sync protocol {claimed}, this hub only "
                                                     f"{low}..{high}: upgrade the hub")
    if claimed < low:
        return problem(request, 426, "upgrade-edge", f"this edge speaks sync protocol {claimed}, the hub needs "
                                                      f"{low}..{high}: upgrade the edge")
    return None


async def _read(request: web.Request) -> bytes | web.Response:
    if request.content_length is not None and request.content_length > MAX_PUSH_BYTES:
        return problem(request, 413, "too-large", f"at most {MAX_PUSH_BYTES} bytes per request")
    body = await read_capped(request.content, MAX_PUSH_BYTES)
    if body is None:
        return problem(request, 413, "too-large", f"at most {MAX_PUSH_BYTES} bytes per request")
    return body


def _authenticate(request: web.Request, body: bytes) -> Signer | web.Response:
    """The node key that signed this request, or a signed problem: 426 for another protocol
    version, 401 for an unknown key, a bad signature or a signed time outside the window,
    403 for a revoked node. Nothing is written here: the nonce is remembered by `_admit`,
    once everything else holds, so a refused request uses nothing up."""
    if (refused := _protocol(request, None)) is not None:
        return refused
    state: SyncState = request.app[STATE]
    node_id = request.headers.get(auth.NODE, "")
    key_id = auth.parse_key_id(request.headers.get(auth.KEY))
    nonce = request.headers.get(auth.NONCE, "")
    signer = state.trust().get(key_id) if key_id is not None else None
    if signer is None or signer.node_id != node_id or not 16 <= len(nonce) <= auth.MAX_NONCE:
        return problem(request, 401, "unauthorized", "unknown node or key; enroll this node first")
    if not auth.request_verifies(signer.public, request.method, request.path_qs, request.headers, body):
        log.warning("sync: bad request signature from node %s (%s) at %s", signer.name, node_id, request.remote)
        return problem(request, 401, "bad-signature", "request signature does not verify")
    now = utcnow()
    if signer.revoked_at_ms is not None and int(now.timestamp() * 1000) >= signer.revoked_at_ms:
        log.warning("sync: refused %s from revoked node %s (%s) at %s", request.path, signer.name, node_id,
                    request.remote)
        return problem(request, 403, "node-revoked", f"node {signer.name} is revoked ({signer.revoke_reason})")
    sent = auth.sent_at(request.headers.get(auth.SENT))
    if sent is None or not auth.within_window(sent, now):
        log.warning("sync: stale request from node %s (%s): signed at %s, hub time %s", signer.name, node_id,
                    request.headers.get(auth.SENT), iso_ms(now))
        return problem(request, 401, "stale-request", f"signed at {request.headers.get(auth.SENT)!r}, more than "
                                                       f"{auth.WINDOW.seconds // 60} minutes from hub time "
                                                       f"{iso_ms(now)}: stamp requests with hub time")
    return signer


def _admit(request: web.Request, signer: Signer, db) -> web.Response | None:
    """Remember the request's nonce (a signed 409 for a replay) and the device's clock.

    Called inside the request's one write transaction, so that with `synchronous=FULL` a
    push waits for the disk once, not once per bookkeeping row; a request refused later in
    that transaction leaves no nonce behind, and repeating it is as harmless as the first."""
    now = utcnow()
    sent = auth.sent_at(request.headers.get(auth.SENT))
    request.app[STATE].pruner.maybe(db, now)
    if not nonces.remember(db, signer.node_id, request.headers[auth.NONCE], sent, now):
        log.warning("sync: replayed %s from node %s (%s) at %s", request.path, signer.name, signer.node_id,
                    request.remote)
        return problem(request, 409, "replayed-request", "this request was accepted before; nothing was done")
    _note_clock(request, signer.node_id, now, db)
    return None


def _note_clock(request: web.Request, node_id: str, now, db) -> None:
    """The device's own system clock (signed, `X-Tessera-Time`), for the office's skew view."""
    clock = auth.sent_at(request.headers.get(TIME_HEADER))
    if clock is not None:
        nodes.note_clock_skew(db, node_id, (clock - now).total_seconds())


# -- handlers ----------------------------------------------------------------------------------

async def push(request: web.Request) -> web.Response:
    body = await _read(request)
    if isinstance(body, web.Response):
        return body
    signer = _authenticate(request, body)
    if isinstance(signer, web.Response):
        return signer
    node_id = signer.node_id
    plain = _unseal(request, signer, body)
    if isinstance(plain, web.Response):
        return plain
    try:
        req = msgspec.json.decode(plain, type=PushRequest)
    except msgspec.MsgspecError as exc:
        return problem(request, 400, "bad-request", f"not a push request: {exc}")
    if str(req.protocol) != request.headers.get(PROTOCOL_HEADER):
        return problem(request, 400, "bad-request", f"protocol {req.protocol} in the body, "
                                                    f"{request.headers.get(PROTOCOL_HEADER)} in the signed header")
    if req.node_id != node_id:
        return problem(request, 403, "wrong-node", "ops of another node")
    offload = request.app.get(OFFLOAD)  # PostgreSQL: in the executor on a pooled session, off the loop
    if offload is None:
        return _push(request.app[DB], request, signer, req)
    return await offload.call(lambda db: _push(db, request, signer, req), request.app[DB])


@retried  # the whole push again after a deadlock or serialization failure (PostgreSQL)
def _push(db, request: web.Request, signer: Signer, req: PushRequest) -> web.Response:
    """The push's one transaction: nonce, device clock, the ops, the push time."""
    node_id, now = signer.node_id, utcnow()
    hub_epoch, durable = backups.epoch(db), backups.durable_through(db, node_id)
    if req.hub_epoch is not None and req.hub_epoch != hub_epoch:  # restored since: nothing applied, the
        return sealed_answer(request, signer, encoder.encode(PushResponse(  # edge first re-pushes what it kept
            protocol=PROTOCOL, hub_time=iso_ms(now), results=[], hub_epoch=hub_epoch, durable_through=durable)))
    trust = request.app[STATE].trust()
    scope = nodes.sync_scope(db, node_id)
    pushed = Pushed(db=db, node_id=node_id, role=signer.role, venue_ids=tuple(scope["venue_ids"]), trust=trust,
                    now=now)
    with transaction(db):  # nonce, clock, ops and push time: one commit, one wait for the disk
        if (replayed := _admit(request, signer, db)) is not None:
            return replayed
        results = apply.apply_push(pushed, req.ops)
        nodes.note_push(db, node_id, now)
    return sealed_answer(request, signer, encoder.encode(PushResponse(protocol=PROTOCOL, hub_time=iso_ms(now),
                                                                      results=results, hub_epoch=hub_epoch,
                                                                      durable_through=durable)))


def _unseal(request: web.Request, node: Signer, body: bytes) -> bytes | web.Response:
    """The plain push body, or a signed problem: a push must be sealed to the hub's current key."""
    if request.content_type != sealed.MEDIA:
        return problem(request, 415, "sealed-body-required",
                       f"push bodies must be sealed ({sealed.MEDIA}, docs/sync.md), not {request.content_type}")
    box = request.app[STATE].sealer()
    if len(body) >= 4 and sealed.recipient(body) != box.key_id:
        return problem(request, 409, "sealed-to-other-key", f"sealed to key {sealed.recipient(body):08x}; the "
                                                             f"hub's key is {box.key_id:08x} (see its certificate)")
    try:
        return box.open(body, node.public_raw)
    except sealed.BadBox as exc:
        return problem(request, 400, "bad-sealed-body", str(exc))


async def pull(request: web.Request) -> web.Response:
    signer = _authenticate(request, b"")
    if isinstance(signer, web.Response):
        return signer
    try:
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", str(MAX_PAGE)))
        wait = float(request.query.get("wait", "0"))
        if not 0 <= after < 2**63 or not 1 <= limit <= MAX_PAGE or not 0 <= wait <= live.MAX_WAIT_S:
            raise ValueError  # SQLite integers are 64-bit
    except ValueError:
        return problem(request, 400, "bad-request", f"0 <= after < 2^63, 1 <= limit <= {MAX_PAGE} and "
                                                    f"0 <= wait <= {live.MAX_WAIT_S:g}")
    if wait > 0:
        signer = await _hold(request, signer, after, limit, wait)
        if isinstance(signer, web.Response):
            return signer
    offload = request.app.get(OFFLOAD)  # PostgreSQL: it waits for the write lock in the executor, off the loop
    if offload is None:
        return _pull(request.app[DB], request, signer, after, limit)
    return await offload.call(lambda db: _pull(db, request, signer, after, limit), request.app[DB])


@retried
def _pull(db, request: web.Request, signer: Signer, after: int, limit: int) -> web.Response:
    """The pull's one transaction: the page read, the nonce and the node's cursor written."""
    node_id, now = signer.node_id, utcnow()
    with transaction(db):  # the page is read and the nonce and cursor written in one transaction
        if (replayed := _admit(request, signer, db)) is not None:
            return replayed
        changes, next_after, more = feed.page(db, nodes.sync_scope(db, node_id), after, limit)
        nodes.note_pull(db, node_id, now, next_after)
    return sealed_answer(request, signer, encoder.encode(PullResponse(
        protocol=PROTOCOL, hub_time=iso_ms(now), changes=changes, next_after=next_after, more=more,
        hub_epoch=backups.epoch(db), durable_through=backups.durable_through(db, node_id))))


async def _hold(request: web.Request, signer: Signer, after: int, limit: int, wait: float) -> Signer | web.Response:
    """A long-poll: wait for news in the node's scope (hub/sync/live.py), then check the
    request again. A copy whose nonce was accepted before is refused before it waits (so
    replays hold nothing open); the nonce itself is remembered, as for any pull, in the
    answer's transaction. The signed time is checked again after the wait: a pull held
    until past the replay window, or from a node revoked meanwhile, is refused."""
    db = request.app[DB]
    if nonces.seen(db, signer.node_id, request.headers[auth.NONCE]):
        return problem(request, 409, "replayed-request", "this request was accepted before; nothing was done")
    state: SyncState = request.app[STATE]

    def admitted() -> bool:
        current = state.trust().get(signer.key_id)
        return current is not None and current.revoked_at_ms is None

    await live.wait_for_news(db, state.watch, nodes.sync_scope(db, signer.node_id), after, limit, wait, admitted)
    return _authenticate(request, b"")
