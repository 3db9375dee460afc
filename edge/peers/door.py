"""The door of every `/peer/` endpoint: only a certified node of this organizer gets in.

Anyone on the venue LAN can reach a gate's or a desk's port (DESIGN §12), and a gate's scan
loop shares its process with these endpoints. So a request from the LAN must cost the gate
next to nothing unless it comes from a node the organizer's root certified, and the checks
run cheapest first, all before a handler (and any per-record work) sees the request:

1. rate: a token bucket per sending address and one for all of them (429, nothing read);
   a request refused by a later check costs its address REFUSAL_COST tokens, so an address
   that sends only bad requests gets about two a second past this point.
   The 429 is held back for up to HOLD_S (a few per address at a time; beyond that it is
   sent at once and the connection closed): a client that floods one request after the
   other gets about one answer a second per connection, and waiting costs the gate a timer,
   where answering at once would cost it the parsing of the next request;
2. size: a declared body over `MAX_BODY` is refused unread and the connection closed (413);
3. the signature headers are present and well-formed (401 `unsigned`);
4. the signed time is within the replay window of this node's trusted time (401 `stale`);
5. the key is in this node's trust store (certificates checked against the pinned root),
   names the node the request claims, and was neither revoked nor outside its certificate
   now (401 `unknown-signer`, 403 `node-revoked`). A node this one has not heard of yet (a
   gate enrolled after this desk's last sync) sends its root-signed certificate along
   (`X-Tessera-Cert`); it counts only if it verifies against the pinned root (one verify,
   and a genuine certificate is kept, so the next request needs none);
6. the nonce was not seen within the window (409 `replayed`);
7. the body is read, at most `MAX_BODY` bytes, and one Ed25519 verify checks the request
   signature over method, path, nonce, time and body (401 `bad-signature`).

The request signature is core/sync/auth.py's, the same a node uses towards the hub. What a
handler then receives is the signer (`request[PEER]`) and the body (`request[PEER_BODY]`);
the records in it are still verified one by one against their own signers.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from core.base.streams import read_capped
from core.cards.trust import Signer, TrustStore
from core.sync import auth
from edge.problems import problem

PREFIX = "/peer/"
MAX_BODY = 256 * 1024  # an entry broadcast is a few hundred bytes; a full pull request is empty
PER_ADDRESS = (20.0, 40)  # tokens per second, burst: a busy gate sends about one request a second
OVERALL = (100.0, 200)  # all addresses together: a LAN of spoofed addresses is bounded too
MAX_ADDRESSES = 4096  # buckets kept; the least recently used goes first
CLOSE_UNREAD_ABOVE = 64 * 1024  # a refused body larger than this is not drained: the connection closes
HOLD_S = 1.0  # how long a rate-limited request waits for its 429
REFUSAL_COST = 10.0  # tokens a request refused after the rate check costs its address
MAX_HELD = 8  # rate-limited requests held per address at once

CERT = "X-Tessera-Cert"  # the sender's root-signed node certificate, for receivers that lack it
PEER = web.RequestKey("peer", Signer)
PEER_BODY = web.RequestKey("peer_body", bytes)


class TokenBucket:
    """`rate` requests per second on average, `burst` at once."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int, now: float):
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, float(burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def wait_s(self) -> float:
        return max(0.0, (1.0 - self.tokens) / self.rate)


class RateLimits:
    """A bucket per sending address, then one for everybody: one flooding address spends only
    its own tokens, so peers at other addresses keep getting through."""

    def __init__(self, per_address: tuple[float, int] = PER_ADDRESS, overall: tuple[float, int] = OVERALL,
                 max_addresses: int = MAX_ADDRESSES, clock: Callable[[], float] = time.monotonic):
        self.per_address, self.max_addresses, self.clock = per_address, max_addresses, clock
        self.buckets: collections.OrderedDict[str, TokenBucket] = collections.OrderedDict()
        self.overall = TokenBucket(*overall, clock())

    def allowed(self, address: str) -> float | None:
        """None when the request may pass, else the seconds to wait before the next one."""
        now = self.clock()
        bucket = self.buckets.get(address)
        if bucket is None:
            bucket = self.buckets[address] = TokenBucket(*self.per_address, now)
            while len(self.buckets) > self.max_addresses:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(address)
        if not bucket.take(now):
            return bucket.wait_s()
        if not self.overall.take(now):
            return self.overall.wait_s()
        return None

    def penalize(self, address: str, tokens: float) -> None:
        """A refused request costs its address more than one token (at most a burst's worth of
        debt): an address that sends nothing but bad requests soon gets almost only 429s."""
        bucket = self.buckets.get(address)
        if bucket is not None:
            bucket.tokens = max(-bucket.burst, bucket.tokens - tokens)


class NonceCache:
    """Nonces of accepted requests, remembered for the replay window (a request older than the
    window is refused by its signed time, so a nonce needs no longer memory)."""

    def __init__(self, window_s: float, max_size: int = 200_000, clock: Callable[[], float] = time.monotonic):
        self.window_s, self.max_size, self.clock = window_s, max_size, clock
        self.seen: collections.OrderedDict[str, float] = collections.OrderedDict()

    def _prune(self, now: float) -> None:
        while self.seen and (next(iter(self.seen.values())) < now or len(self.seen) > self.max_size):
            self.seen.popitem(last=False)

    def __contains__(self, nonce: str) -> bool:
        self._prune(self.clock())
        return nonce in self.seen

    def add(self, nonce: str) -> None:
        now = self.clock()
        self.seen[nonce] = now + 2 * self.window_s  # the window runs both ways around a signed time
        self._prune(now)


@dataclass
class DoorStats:
    """What the door let in and what it refused, by reason (status page, benchmark)."""

    admitted: int = 0
    refused: collections.Counter = field(default_factory=collections.Counter)


@dataclass
class PeerDoor:
    """The checks above, for one node. *trust* returns the node's current trust store, *now*
    its trusted time (so a gate with a wrong system clock judges signed times like its scans)."""

    trust: Callable[[], TrustStore]
    now: Callable[[], dt.datetime]
    learn: Callable[[str], None] | None = None  # keeps a certificate that verifies against the root
    limits: RateLimits = field(default_factory=RateLimits)
    nonces: NonceCache = field(default_factory=lambda: NonceCache(auth_window_s()))
    max_body: int = MAX_BODY
    stats: DoorStats = field(default_factory=DoorStats)
    held: collections.Counter = field(default_factory=collections.Counter)  # rate-limited requests waiting

    def middleware(self):
        @web.middleware
        async def peer_door(request: web.Request, handler):
            if not request.path.startswith(PREFIX):
                return await handler(request)
            refused = await self.check(request)
            if refused is not None:
                return refused
            return await handler(request)

        return peer_door

    async def check(self, request: web.Request) -> web.Response | None:
        """None when the request may go on (signer and body stored on it), else the refusal."""
        address = request.remote or "?"
        wait = self.limits.allowed(address)
        if wait is not None:
            held = await self._hold(address)
            return await self._refuse(request, 429, "too-many-requests", "too many peer requests; slow down",
                                      {"Retry-After": str(max(1, math.ceil(wait)))}, close=not held)
        if request.content_length is not None and request.content_length > self.max_body:
            return await self._refuse(request, 413, "too-large", self._too_large)
        signer = self._signer(request)
        if isinstance(signer, tuple):
            return await self._refuse(request, *signer)
        body = await self._read(request)
        if body is None:
            return await self._refuse(request, 413, "too-large", self._too_large)
        if not _signature_ok(request, signer, body):
            return await self._refuse(request, 401, "bad-signature", "the request signature does not verify")
        if request.headers[auth.NONCE] in self.nonces:  # a copy sent alongside, admitted while we read this one
            return await self._refuse(request, 409, "replayed", "this request was seen before")
        self.nonces.add(request.headers[auth.NONCE])
        request[PEER], request[PEER_BODY] = signer, body
        self.stats.admitted += 1
        return None

    async def _hold(self, address: str) -> bool:
        """Let a flooding client wait for its 429 (see the module's docstring); False past
        MAX_HELD of its requests at once (then the answer goes now, and the connection closes)."""
        if self.held[address] >= MAX_HELD:
            return False
        self.held[address] += 1
        try:
            await asyncio.sleep(HOLD_S)
        finally:
            self.held[address] -= 1
            if not self.held[address]:
                del self.held[address]
        return True

    @property
    def _too_large(self) -> str:
        return f"a peer request carries at most {self.max_body} bytes"

    def _signer(self, request: web.Request) -> Signer | tuple[int, str, str]:
        """Steps 3-6: everything that needs no body and no signature verify; a refusal is
        (status, slug, detail)."""
        headers = request.headers
        key_id = auth.parse_key_id(headers.get(auth.KEY))
        nonce, signature = headers.get(auth.NONCE, ""), headers.get(auth.SIGNATURE, "")
        if (key_id is None or not headers.get(auth.NODE) or not headers.get(auth.SENT)
                or not _hex(nonce, 16, auth.MAX_NONCE) or not _hex(signature, 128, 128)):
            return 401, "unsigned", "peer requests must be signed by a node of this organizer"
        now = self.now()
        stale = _stale(request, now)
        if stale:
            return 401, "stale", stale
        signer = self.trust().get(key_id)
        if signer is None and self.learn is not None and headers.get(CERT):
            self.learn(headers[CERT])
            signer = self.trust().get(key_id)
        if signer is None or signer.node_id != headers[auth.NODE]:
            return 401, "unknown-signer", f"key {key_id:08x} is not certified by this organizer"
        if not signer.valid_at(int(now.timestamp() * 1000)):
            why = f"revoked ({signer.revoke_reason})" if signer.revoked_at_ms is not None else "outside its certificate"
            return 403, "node-revoked", f"node {signer.name} is {why}"
        if nonce in self.nonces:
            return 409, "replayed", "this request was seen before"
        return signer

    async def _read(self, request: web.Request) -> bytes | None:
        """The body, or None when it grows past the limit (no more of it is read)."""
        return await read_capped(request.content, self.max_body)

    async def _refuse(self, request: web.Request, status: int, slug: str, detail: str,
                      headers: dict[str, str] | None = None, close: bool = False) -> web.Response:
        """The problem answer. A large body left unread is not drained (aiohttp would read it
        to keep the connection): the answer is sent and the connection closed."""
        self.stats.refused[slug] += 1
        if status != 429:
            self.limits.penalize(request.remote or "?", REFUSAL_COST)
        answer = problem(status, slug, detail)
        answer.headers.update(headers or {})
        if close:
            answer.force_close()
        length = request.content_length
        if request.body_exists and (length is None or length > CLOSE_UNREAD_ABOVE) and not request.content.is_eof():
            answer.force_close()
            await answer.prepare(request)
            await answer.write_eof()
            request.protocol.force_close()
        return answer


def _hex(text: str, shortest: int, longest: int) -> bool:
    return shortest <= len(text) <= longest and all(c in "0123456789abcdef" for c in text)


def auth_window_s() -> float:
    """The replay window of signed requests: core/sync/auth.py's, the same as the hub's."""
    return auth.WINDOW.total_seconds()


def _stale(request: web.Request, now: dt.datetime) -> str:
    """Why the request's signed time is outside the window ('' when it is inside). The time is
    only believed after the signature verifies; a forged time costs its sender that verify."""
    sent = auth.sent_at(request.headers.get(auth.SENT))
    if sent is None:
        return f"{auth.SENT} must be an ISO time with zone"
    if not auth.within_window(sent, now):
        return f"signed at {request.headers[auth.SENT]}, more than {auth.WINDOW} from this node's time"
    return ""


def _signature_ok(request: web.Request, signer: Signer, body: bytes) -> bool:
    return auth.request_verifies(signer.public, request.method, request.raw_path, request.headers, body)
