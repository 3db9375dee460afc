"""The hub's enrollment endpoints: the two round trips of the handshake in core/sync/enroll.py.

- `POST /sync/v1/enroll/start`: code id, node id, public key, SPAKE2 message -> the hub's
  SPAKE2 message, its proof of the code, its certificate and the root key (EnrollChallenge).
- `POST /sync/v1/enroll/finish`: handshake id and the device's proof -> node certificate
  (EnrollResponse).

The handshake state lives in the database (hub/sync/enrollment.py), so any hub process can
answer either step. Every answer, errors included, is signed by the hub's node key over the
request's nonce, as the other sync answers are. Refused attempts count against the address
and overall rate limit.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web

from core.base.clock import iso_ms, utcnow
from core.base.errors import TesseraError
from core.base.streams import read_capped
from core.sync.messages import (
    OLDEST_SUPPORTED,
    PROTOCOL,
    EnrollChallenge,
    EnrollFinish,
    EnrollResponse,
    EnrollStart,
    encoder,
)
from hub.services import nodes
from hub.settings import context
from hub.sync import answers, enrollment
from hub.sync.answers import HubKey
from hub.web.api import DB
from hub.web.client_address import client_address
from hub.web.offload import off_loop

log = logging.getLogger("tessera.sync")
PREFIX = "/sync/v1/enroll"
MAX_BODY_BYTES = 16 * 1024  # a start or finish message is well under 8 KiB
STATE = web.AppKey("enroll_state", object)


class EnrollState(HubKey):
    """Per-app: the hub's signing key (reloaded after a rotation) and the rate limit (its
    counts in the database, shared with every hub process on it)."""

    def __init__(self, app: web.Application) -> None:
        hub = context(app)
        super().__init__(hub.db, hub.data_dir)
        self.rate = enrollment.rate_limit()


def install(app: web.Application) -> None:
    app[STATE] = EnrollState(app)
    app.router.add_post(f"{PREFIX}/start", start)
    app.router.add_post(f"{PREFIX}/finish", finish)


def _signed(request: web.Request, status: int, body: bytes) -> web.Response:
    return answers.signed(request.app[STATE], request, status, body)


def _problem(request: web.Request, status: int, slug: str, detail: str) -> web.Response:
    return answers.problem(request.app[STATE], request, status, slug, detail)


async def _message(request: web.Request, kind: type) -> tuple[msgspec.Struct, str | None] | web.Response:
    """The request's message and its rate-limit hit, or a signed problem (too many failures,
    too large, malformed, a protocol this hub does not speak).

    The attempt counts as a failure from the start (`rate.take`, under the write lock) and is
    given back only when it succeeds or turns out not to be an attempt: counted only after a
    refusal, N requests in flight at once (on N hub processes) would all pass the check."""
    rate, db, client = request.app[STATE].rate, request.app[DB], client_address(request)
    verdict = await off_loop(request.app, db, lambda pooled: rate.take(pooled, client))  # a write: off the loop
    if not verdict.allowed:
        return _problem(request, 429, "too-many-attempts", "too many failed enrollment attempts; wait a minute")
    answer = await _parsed(request, kind)
    if isinstance(answer, web.Response):
        await off_loop(request.app, db, lambda pooled: rate.give_back(pooled, verdict.hit))
        return answer
    return answer, verdict.hit


async def _parsed(request: web.Request, kind: type) -> msgspec.Struct | web.Response:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _problem(request, 413, "too-large", f"at most {MAX_BODY_BYTES} bytes")
    body = await read_capped(request.content, MAX_BODY_BYTES)
    if body is None:
        return _problem(request, 413, "too-large", f"at most {MAX_BODY_BYTES} bytes")
    try:
        message = msgspec.json.decode(body, type=kind)
    except msgspec.MsgspecError as exc:
        return _problem(request, 400, "bad-request", f"not an enrollment message: {exc}")
    if not OLDEST_SUPPORTED <= message.protocol <= PROTOCOL:
        side = "hub" if message.protocol > PROTOCOL else "edge"
        return _problem(request, 426, f"upgrade-{side}", f"this edge speaks sync protocol {message.protocol}, this "
                                                         f"hub {OLDEST_SUPPORTED}..{PROTOCOL}: upgrade the {side}")
    return message


def _refused(request: web.Request, exc: TesseraError) -> web.Response:
    """A refused attempt: its rate-limit hit stays counted."""
    address = client_address(request)
    log.warning("sync: enrollment refused for %s: %s", address, exc.detail)
    return _problem(request, exc.status, "enrollment-refused", exc.detail)


async def start(request: web.Request) -> web.Response:
    taken = await _message(request, EnrollStart)
    if isinstance(taken, web.Response):
        return taken
    message, hit = taken
    db, signer = request.app[DB], request.app[STATE].signer()
    hub_cert = nodes.certificate(db, signer.key_id)
    rate, now = request.app[STATE].rate, utcnow()

    def started(pooled: Any) -> dict:  # writes (the handshake, the code's attempts): off the loop
        challenge = enrollment.start(pooled, hub_certificate=hub_cert, code_id=message.code_id,
                                     node_id=message.node_id, public_raw=bytes.fromhex(message.public_key),
                                     edge_message=bytes.fromhex(message.spake), now=now)
        rate.give_back(pooled, hit)
        return challenge

    try:
        challenge = await off_loop(request.app, db, started)
    except TesseraError as exc:
        return _refused(request, exc)
    log.info("sync: enrollment handshake for code %s from %s (%d attempts left)", message.code_id,
             client_address(request),
             challenge["attempts_left"])
    answer = EnrollChallenge(protocol=PROTOCOL, handshake_id=challenge["handshake_id"],
                             spake=challenge["hub_message"].hex(), hub_confirm=challenge["hub_confirm"].hex(),
                             root_public_key=nodes.root_public_raw(db).hex(), hub_certificate=hub_cert,
                             attempts_left=challenge["attempts_left"])
    return _signed(request, 200, encoder.encode(answer))


async def finish(request: web.Request) -> web.Response:
    taken = await _message(request, EnrollFinish)
    if isinstance(taken, web.Response):
        return taken
    message, hit = taken
    db, state = request.app[DB], request.app[STATE]
    now = utcnow()
    root = nodes.root_key(state.data_dir)

    def finished(pooled: Any) -> dict:  # writes (the node, its certificate, the code used): off the loop
        result = enrollment.finish(pooled, root, handshake_id=message.handshake_id,
                                   edge_confirm=bytes.fromhex(message.edge_confirm), now=now)
        state.rate.give_back(pooled, hit)
        return result

    try:
        result = await off_loop(request.app, db, finished)
    except TesseraError as exc:
        return _refused(request, exc)
    log.info("sync: enrolled %s %s (%s) from %s", result["role"], result["name"], result["node_id"],
             client_address(request))
    signer = state.signer()
    response = EnrollResponse(protocol=PROTOCOL, hub_time=iso_ms(now), node_id=result["node_id"], name=result["name"],
                              role=result["role"], venue_ids=result["venue_ids"],
                              root_public_key=nodes.root_public_raw(db).hex(), node_certificate=result["certificate"],
                              hub_certificate=nodes.certificate(db, signer.key_id))
    return _signed(request, 200, encoder.encode(response))
