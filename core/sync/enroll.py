"""One-time enrollment codes and the handshake both sides run with them (E7, DESIGN §12).

A code is 39 symbols of the card alphabet, printed in groups of four
(`7KQ2-MX9D-...`); case, spaces and dashes do not matter:

    symbols  what
       2     code id: public, tells the hub which code a handshake is for
      10     secret: 50 random bits, never sent anywhere
      26     root pin: the first 130 bits of SHA-256 over the organizer root public key
       1     check symbol (Luhn mod 32): a typo is caught before any hub is contacted

The secret is the password of a SPAKE2 exchange (the `spake2` package, Ed25519 group): the
device and the hub each send one group element, and each derives the same session key only
if both used the same password. Neither message lets anyone test guesses offline, so a fake
hub that the device talks to learns nothing it can use; each online guess costs the
guesser one of the code's three attempts at the real hub.

Both sides then prove they hold the session key with an HMAC over the transcript: the code
id, the device's node id and public key, both SPAKE2 messages, the hub's certificate, the
root public key and the handshake id. The hub proves first; the device checks the proof,
the root pin (all 26 symbols) and the hub certificate before it sends its own proof. A
machine in the middle that swaps in its own public key changes the transcript, so neither
proof matches and no certificate is issued for its key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from spake2 import SPAKE2_A, SPAKE2_B, SPAKEError

from core.base.errors import ValidationError
from core.cards import cardcode

CODE_ID_SYMBOLS = 2
SECRET_SYMBOLS = 10
FINGERPRINT_SYMBOLS = 26  # 130 bits of the root key's SHA-256
LENGTH = CODE_ID_SYMBOLS + SECRET_SYMBOLS + FINGERPRINT_SYMBOLS + 1
GROUP = 4
DOMAIN = b"tessera-enroll-v1"
EDGE_ID, HUB_ID = b"tessera-edge", b"tessera-hub"
SPAKE_MESSAGE_BYTES = 33  # side byte + Ed25519 group element
_VALUES = {symbol: value for value, symbol in enumerate(cardcode.ALPHABET)}


@dataclass(frozen=True, slots=True)
class EnrollCode:
    code_id: str
    secret: str
    fingerprint: str

    def text(self) -> str:
        """The printed form: all 39 symbols in dash-separated groups of four."""
        body = self.code_id + self.secret + self.fingerprint
        whole = body + check_symbol(body)
        return "-".join(whole[i:i + GROUP] for i in range(0, len(whole), GROUP))

    def password(self) -> bytes:
        return password(self.code_id, self.secret)


def fingerprint(root_public: bytes) -> str:
    """The root pin: the first 26 symbols (130 bits) of SHA-256 over the root public key."""
    return cardcode.encode_text(hashlib.sha256(root_public).digest()[:20])[:FINGERPRINT_SYMBOLS]


def root_key_id(fingerprint_text: str) -> str:
    """The root key id (8 hex digits, as the hub announces it with zeroconf) inside a pin."""
    return cardcode.decode_text(fingerprint_text[:8])[:4].hex()


def check_symbol(symbols: str) -> str:
    """Luhn mod 32 over the symbols: catches every single wrong symbol and most swaps of two
    neighbours."""
    total, factor = 0, 2
    for symbol in reversed(symbols):
        addend = factor * _VALUES[symbol]
        total += addend // 32 + addend % 32
        factor = 3 - factor
    return cardcode.ALPHABET[(32 - total % 32) % 32]


def parse(code: str) -> EnrollCode:
    """A typed or scanned code -> its parts; a clear ValidationError for anything mistyped."""
    text = "".join(ch for ch in code.upper() if ch not in " -\t\n")
    bad = sorted({ch for ch in text if ch not in _VALUES})
    if bad:
        raise ValidationError(f"an enrollment code has digits and letters without I, O, Y and Z; "
                              f"{', '.join(repr(ch) for ch in bad)} cannot be part of one", field="code")
    if len(text) != LENGTH:
        raise ValidationError(f"an enrollment code has {LENGTH} digits and letters (dashes and spaces do not "
                              f"count), this one {len(text)}: check that it was copied whole", field="code")
    if check_symbol(text[:-1]) != text[-1]:
        raise ValidationError("this enrollment code has a typo (its check symbol does not match): compare it with "
                              "the printed code symbol by symbol", field="code")
    secret_end = CODE_ID_SYMBOLS + SECRET_SYMBOLS
    return EnrollCode(code_id=text[:CODE_ID_SYMBOLS], secret=text[CODE_ID_SYMBOLS:secret_end],
                      fingerprint=text[secret_end:-1])


def password(code_id: str, secret: str) -> bytes:
    """The SPAKE2 password of a code. The hub stores this (not the secret): it is worth as much
    as the code itself, for the code's 24 hours and three attempts."""
    return hashlib.sha256(DOMAIN + b"\x00password\x00" + code_id.encode() + b"\x00" + secret.encode()).digest()


# -- the handshake --------------------------------------------------------------------------------

def edge_begin(password_bytes: bytes) -> tuple[SPAKE2_A, bytes]:
    """The device's side: a fresh SPAKE2 state (one per hub tried) and its first message."""
    state = SPAKE2_A(password_bytes, idA=EDGE_ID, idB=HUB_ID)
    return state, state.start()


def edge_key(state: SPAKE2_A, hub_message: bytes) -> bytes:
    """The session key from the hub's message; ValidationError for a message that is no
    group element (a fake hub's noise)."""
    try:
        return state.finish(hub_message)
    except (SPAKEError, ValueError, AssertionError) as exc:
        raise ValidationError(f"not a SPAKE2 message ({type(exc).__name__})", field="spake") from None


def hub_answer(password_bytes: bytes, edge_message: bytes) -> tuple[bytes, bytes]:
    """The hub's side in one step: (its SPAKE2 message, the session key)."""
    state = SPAKE2_B(password_bytes, idA=EDGE_ID, idB=HUB_ID)
    message = state.start()
    try:
        return message, state.finish(edge_message)
    except (SPAKEError, ValueError, AssertionError) as exc:
        raise ValidationError(f"not a SPAKE2 message ({type(exc).__name__})", field="spake") from None


@dataclass(frozen=True, slots=True)
class Transcript:
    """Everything both confirmations are bound to."""

    handshake_id: str
    code_id: str
    node_id: str
    public_key: bytes
    edge_message: bytes
    hub_message: bytes
    hub_certificate: str
    root_public: bytes

    def digest(self) -> bytes:
        parts = (DOMAIN, self.handshake_id.encode(), self.code_id.encode(), self.node_id.encode(), self.public_key,
                 self.edge_message, self.hub_message, self.hub_certificate.encode(), self.root_public)
        h = hashlib.sha256()
        for part in parts:  # length-prefixed: no two transcripts run together into the same bytes
            h.update(len(part).to_bytes(4, "big") + part)
        return h.digest()


def _confirm_key(session_key: bytes, who: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DOMAIN + b" confirm " + who).derive(session_key)


def hub_confirmation(session_key: bytes, transcript: Transcript) -> bytes:
    """The hub's proof that it knows the code (and saw exactly this transcript)."""
    return hmac.new(_confirm_key(session_key, b"hub"), b"hub\x00" + transcript.digest(), hashlib.sha256).digest()


def edge_confirmation(session_key: bytes, transcript: Transcript) -> bytes:
    """The device's proof; a different key from the hub's, so one cannot be echoed as the other."""
    return hmac.new(_confirm_key(session_key, b"edge"), b"edge\x00" + transcript.digest(), hashlib.sha256).digest()


def same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
