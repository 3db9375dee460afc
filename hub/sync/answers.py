"""Signed answers of the hub's sync doors (push, pull and the enrollment handshake).

Every answer, errors included, is signed by the hub's current node key over the request's
nonce, the status, the hub's time, the protocol versions it answers and the body
(core/sync/auth.py), so an edge can tell the real hub from anything else on the LAN and
believes a 426 only when the signed version range excludes it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aiohttp import web

from core.base.clock import iso_ms, utcnow
from core.base.node import this_node
from core.cards.cards import NodeSigner, load_signer
from core.sync import auth
from core.sync.messages import OLDEST_SUPPORTED, PROTOCOL
from hub.web import problems


class HubKey:
    """The hub's signing key, loaded once and again only after a key rotation."""

    def __init__(self, db: sqlite3.Connection, data_dir: Path) -> None:
        self.db, self.data_dir = db, data_dir
        self._signer: NodeSigner | None = None
        self.supported: tuple[int, int] = (OLDEST_SUPPORTED, PROTOCOL)  # the versions this hub answers

    def signer(self) -> NodeSigner:
        current = this_node(self.db)["key_id"]
        if self._signer is None or self._signer.key_id != current:
            self._signer = load_signer(self.db, self.data_dir)
        return self._signer


def signed(key: HubKey, request: web.Request, status: int, body: bytes, content_type: str = "application/json",
           hub_cert: str | None = None) -> web.Response:
    """*body* as an answer signed over the request's nonce; *hub_cert* lets edges follow a
    hub key rotation."""
    signer = key.signer()
    nonce = request.headers.get(auth.NONCE, "")[:auth.MAX_NONCE]
    low, high = key.supported
    headers = auth.sign_response(signer.private, signer.key_id, nonce, status, body, hub_time=iso_ms(utcnow()),
                                 protocols=f"{low}-{high}")
    if hub_cert is not None:
        headers[auth.HUB_CERT] = hub_cert
    return web.Response(status=status, body=body, headers=headers, content_type=content_type)


def problem(key: HubKey, request: web.Request, status: int, slug: str, detail: str, *,
            hub_cert: str | None = None) -> web.Response:
    body = problems.problem_body(status, slug, slug.replace("-", " "), detail, instance=request.path)
    return signed(key, request, status, body, problems.PROBLEM_MEDIA, hub_cert)
