"""Signatures on sync requests and responses: who is talking, when, and is this the real hub?

- An edge signs every request with its node key (headers `X-Tessera-Node`, `-Key`, `-Nonce`,
  `-Sent`, `-Protocol`, `-Time`, `-Signature`) over the method, path, nonce, the time it was
  sent, the protocol version, its system clock and the SHA-256 of the bytes on the wire (the
  sealed body, core/sync/sealed.py). The hub checks it against the node's root-signed
  certificate and its revocations, refuses a request whose signed time is more than `WINDOW`
  from hub time, and remembers each accepted nonce for that long (hub/sync/nonces.py): a
  captured request sent again is refused, and nothing in it can be changed. The key *is* the
  node's credential; no shared secret travels.
- The hub signs every response with its own node key over the request's nonce, the status,
  its own time, the protocol versions it speaks and the body. The edge accepts a response
  only if the signing key has a hub certificate that chains to the root it pinned at
  enrollment and no revocation it knows of, and only for the nonce it just sent: a rogue or
  revoked hub, or a replayed old response, feeds nobody; a 426 "upgrade" is believed only
  when the signed version range really excludes the edge.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.base.clock import iso_ms, parse_iso

NODE, KEY, NONCE, SIGNATURE = "X-Tessera-Node", "X-Tessera-Key", "X-Tessera-Nonce", "X-Tessera-Signature"
SENT = "X-Tessera-Sent"  # request: the signed moment it was sent (the edge's trusted clock, see docs/sync.md)
TIME = "X-Tessera-Time"  # request: the device's system clock (for the office); response: hub time
PROTOCOL = "X-Tessera-Protocol"  # request: the edge's version; response: the versions the hub speaks, "2-2"
HUB_CERT = "X-Tessera-Hub-Cert"  # the signing hub's root-signed certificate, for edges that lack it
WINDOW = dt.timedelta(minutes=5)  # a request signed further than this from hub time is refused
MAX_NONCE = 64


def new_nonce() -> str:
    return os.urandom(16).hex()


def request_message(method: str, path_qs: str, nonce: str, body: bytes, *, sent: str, protocol: str,
                    clock: str) -> bytes:
    return "\n".join(("tessera:request:2", method.upper(), path_qs, nonce, sent, protocol, clock,
                      hashlib.sha256(body).hexdigest())).encode()


def response_message(nonce: str, status: int, body: bytes, hub_time: str = "", protocols: str = "") -> bytes:
    """What the hub signs; enrollment answers (hub/sync/enroll_routes.py) leave time and versions empty."""
    return "\n".join(("tessera:response:2", nonce, str(status), hub_time, protocols,
                      hashlib.sha256(body).hexdigest())).encode()


def sign_request(private: Ed25519PrivateKey, key_id: int, node_id: str, method: str, path_qs: str,
                 body: bytes, *, sent: dt.datetime, protocol: int, clock: str = "",
                 nonce: str | None = None) -> dict[str, str]:
    """The signed headers of one request. *sent*: the edge's trusted time (plus the offset it
    learnt from the hub); *clock*: its raw system clock, shown to the office as skew."""
    nonce = nonce or new_nonce()
    sent_text = iso_ms(sent)
    signature = private.sign(request_message(method, path_qs, nonce, body, sent=sent_text, protocol=str(protocol),
                                             clock=clock))
    return {NODE: node_id, KEY: f"{key_id:08x}", NONCE: nonce, SENT: sent_text, PROTOCOL: str(protocol),
            TIME: clock, SIGNATURE: signature.hex()}


def request_verifies(public: Ed25519PublicKey, method: str, path_qs: str, headers: Mapping[str, str],
                     body: bytes) -> bool:
    """Does the request's signature cover exactly these headers and bytes?"""
    message = request_message(method, path_qs, headers.get(NONCE, ""), body, sent=headers.get(SENT, ""),
                              protocol=headers.get(PROTOCOL, ""), clock=headers.get(TIME, ""))
    return verify(public, headers.get(SIGNATURE), message)


def sign_response(private: Ed25519PrivateKey, key_id: int, nonce: str, status: int, body: bytes, *,
                  hub_time: str = "", protocols: str = "") -> dict[str, str]:
    signature = private.sign(response_message(nonce, status, body, hub_time, protocols))
    return {KEY: f"{key_id:08x}", NONCE: nonce, TIME: hub_time, PROTOCOL: protocols, SIGNATURE: signature.hex()}


def response_verifies(public: Ed25519PublicKey, headers: Mapping[str, str], nonce: str, status: int,
                      body: bytes) -> bool:
    """Is this response signed by *public* for our *nonce*, with its time and version range?"""
    if headers.get(NONCE) != nonce:
        return False
    message = response_message(nonce, status, body, headers.get(TIME, ""), headers.get(PROTOCOL, ""))
    return verify(public, headers.get(SIGNATURE), message)


def protocol_range(text: str | None) -> tuple[int, int] | None:
    """The hub's signed "oldest-newest" versions, or None when garbled."""
    try:
        low, high = (int(part) for part in (text or "").split("-"))
    except ValueError:
        return None
    return (low, high) if 0 <= low <= high else None


def sent_at(text: str | None) -> dt.datetime | None:
    try:
        moment = parse_iso(text or "")
    except (ValueError, TypeError):
        return None
    return moment if moment.tzinfo is not None else None


def within_window(sent: dt.datetime, now: dt.datetime) -> bool:
    return abs(sent - now) <= WINDOW


def parse_key_id(text: str | None) -> int | None:
    try:
        value = int(text or "", 16)
    except ValueError:
        return None
    return value if 0 <= value < 2**32 else None


def verify(public: Ed25519PublicKey, signature_hex: str | None, message: bytes) -> bool:
    try:
        public.verify(bytes.fromhex(signature_hex or ""), message)
    except (InvalidSignature, ValueError):
        return False
    return True
