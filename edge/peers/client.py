"""This node's requests to its peers, each signed with the node key (core/sync/auth.py).

The receiving peer checks the signature against its own trust store (edge/peers/door.py), so
the key *is* the credential: nothing else is configured between gates and desks. What comes
back is not trusted for having been asked for: the caller verifies every record in it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from core.base.clock import iso, utcnow
from core.cards.cards import NodeSigner
from core.sync import auth
from edge.peers.door import CERT

TIMEOUT_S = 3.0
PROTOCOL = 1  # the /peer/v1 endpoints


class PeerError(Exception):
    """A peer could not be reached or refused the request."""


class PeerClient:
    """Signed JSON requests to peers; one HTTP session for all of them."""

    def __init__(self, signer: NodeSigner, now: Callable[[], dt.datetime], cert: str | None = None,
                 timeout_s: float = TIMEOUT_S):
        self.signer, self.now = signer, now  # now: the node's trusted time, which signs each request
        self.cert = cert  # this node's root-signed certificate, for peers that do not know it yet
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session:
            await self._session.close()

    async def get(self, base_url: str, path: str, params: dict[str, str] | None = None,
                  timeout_s: float | None = None) -> object:
        path_qs = f"{path}?{urlencode(params)}" if params else path
        return await self.request("GET", base_url, path_qs, b"", timeout_s)

    async def post(self, base_url: str, path: str, payload: dict, timeout_s: float | None = None) -> object:
        return await self.request("POST", base_url, path, json.dumps(payload).encode(), timeout_s)

    async def request(self, method: str, base_url: str, path_qs: str, body: bytes,
                      timeout_s: float | None = None) -> object:
        """The decoded JSON answer; PeerError for anything else (unreachable, refused, not JSON)."""
        headers = signed_headers(self.signer, method, path_qs, body, self.now())
        if self.cert:
            headers[CERT] = self.cert
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s else None
        try:  # encoded=True: the path goes out byte for byte as it was signed
            async with self.session().request(method, URL(base_url + path_qs, encoded=True), data=body,
                                              headers=headers, timeout=timeout) as resp:
                data = await resp.read()
                if resp.status >= 400:
                    raise PeerError(f"{path_qs.split('?')[0]}: {resp.status} {data[:200]!r}")
                return json.loads(data)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise PeerError(f"{type(exc).__name__}: {exc}") from None


def signed_headers(signer: NodeSigner, method: str, path_qs: str, body: bytes, sent: dt.datetime) -> dict[str, str]:
    """auth.sign_request's headers; *sent* is the trusted time the receiver checks against its window."""
    headers = auth.sign_request(signer.private, signer.key_id, signer.node_id, method, path_qs, body, sent=sent,
                                protocol=PROTOCOL, clock=iso(utcnow()))
    headers["Content-Type"] = "application/json"
    return headers
