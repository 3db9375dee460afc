"""Sealed sync bodies: what travels between an edge and the hub cannot be read on the LAN.

Instead of TLS (which would need a hub certificate, a CA and pinning per transport), every
push body and every push or pull answer is encrypted end to end between the two certified
node keys, with libsodium's `crypto_box` (X25519 + XSalsa20-Poly1305, PyNaCl): each side
turns its Ed25519 signing key into an X25519 key (the standard birational map), so the keys
the root certified at enrollment are the encryption keys too, and the encryption works
through any proxy. The request/response signature (core/sync/auth.py) covers the sealed
bytes, so a sealed body is both secret and bound to its request.

Wire format (media type `application/vnd.tessera.box`):

    recipient key id (4 bytes, big-endian) | nonce (24 random bytes) | ciphertext + MAC (16)

The recipient's key id lets the hub say "not sealed to my current key" after a key rotation.
A box opens only with the recipient's private key *and* the sender's public key: a body
sealed by one node and sent under another node's signature does not open.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

MEDIA = "application/vnd.tessera.box"
OVERHEAD = 4 + Box.NONCE_SIZE + 16


class BadBox(ValueError):
    """A sealed body that is garbled, sealed to another key, or not from the claimed sender."""


class Sealer:
    """One node's side of the boxes: its own key, and a box per peer key (the X25519
    agreement is done once per peer, not per message)."""

    def __init__(self, private: Ed25519PrivateKey, key_id: int):
        seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        self.key_id = key_id
        self._private: PrivateKey = SigningKey(seed).to_curve25519_private_key()
        self._boxes: dict[bytes, Box] = {}

    def _box(self, peer_public_raw: bytes) -> Box:
        box = self._boxes.get(peer_public_raw)
        if box is None:
            try:
                peer: PublicKey = VerifyKey(peer_public_raw).to_curve25519_public_key()
            except (CryptoError, ValueError, TypeError) as exc:
                raise BadBox(f"peer key cannot seal: {exc}") from None
            box = self._boxes[peer_public_raw] = Box(self._private, peer)
        return box

    def seal(self, plain: bytes, peer_public_raw: bytes, peer_key_id: int) -> bytes:
        """*plain* for the holder of *peer_public_raw* (key id *peer_key_id*) only."""
        return peer_key_id.to_bytes(4, "big") + bytes(self._box(peer_public_raw).encrypt(plain))

    def open(self, sealed: bytes, sender_public_raw: bytes) -> bytes:
        """The plain body of a box sealed to this key by *sender_public_raw*, or BadBox."""
        if len(sealed) < OVERHEAD:
            raise BadBox("too short for a sealed body")
        if recipient(sealed) != self.key_id:
            raise BadBox(f"sealed to key {recipient(sealed):08x}, not to {self.key_id:08x}")
        try:
            return self._box(sender_public_raw).decrypt(sealed[4:])
        except CryptoError:
            raise BadBox("sealed body does not open (garbled, or not from this sender)") from None


def recipient(sealed: bytes) -> int:
    """The key id a sealed body is addressed to."""
    return int.from_bytes(sealed[:4], "big")
