"""Signatures on sync requests and responses: who is talking, and is this the real hub?

- An edge signs every request with its node key (headers `X-Tessera-Node`, `-Key`,
  `-Nonce`, `-Signature`): the hub checks it against the node's root-signed certificate and
  its revocations, so a push from a revoked device or a tampered body is refused. The key
  *is* the node's credential; no shared secret travels.
- The hub signs every response with its own node key over the request's nonce, the status
  and the body. The edge accepts a response only if the signing key has a hub certificate
  that chains to the root it pinned at enrollment, and only for the nonce it just sent: a
  rogue hub announced on the LAN, or a replayed old response, feeds nobody.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

NODE, KEY, NONCE, SIGNATURE = "X-Tessera-Node", "X-Tessera-Key", "X-Tessera-Nonce", "X-Tessera-Signature"
HUB_CERT = "X-Tessera-Hub-Cert"  # the signing hub's root-signed certificate, for edges that lack it


def new_nonce() -> str:
    return os.urandom(16).hex()


def request_message(method: str, path_qs: str, nonce: str, body: bytes) -> bytes:
    return "\n".join(("tessera:request", method.upper(), path_qs, nonce, hashlib.sha256(body).hexdigest())).encode()


def response_message(nonce: str, status: int, body: bytes) -> bytes:
    return "\n".join(("tessera:response", nonce, str(status), hashlib.sha256(body).hexdigest())).encode()


def sign_request(private: Ed25519PrivateKey, key_id: int, node_id: str, method: str, path_qs: str,
                 body: bytes, nonce: str | None = None) -> dict[str, str]:
    nonce = nonce or new_nonce()
    signature = private.sign(request_message(method, path_qs, nonce, body))
    return {NODE: node_id, KEY: f"{key_id:08x}", NONCE: nonce, SIGNATURE: signature.hex()}


def sign_response(private: Ed25519PrivateKey, key_id: int, nonce: str, status: int, body: bytes) -> dict[str, str]:
    signature = private.sign(response_message(nonce, status, body))
    return {KEY: f"{key_id:08x}", NONCE: nonce, SIGNATURE: signature.hex()}


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
