"""One-time enrollment codes, the part both sides read: `7KQ2M-X9D4A-3GH8PW0T`.

10 secret symbols (50 bits; the hub stores only a hash) and 8 symbols of the organizer
root key's fingerprint (the first 40 bits of SHA-256 over the public key; its first 32 are
the root's key id that the hub announces with zeroconf). Symbols are the card alphabet, so
the code survives any keyboard layout; case, spaces and dashes do not matter.
"""

from __future__ import annotations

import hashlib

from core.base.errors import ValidationError
from core.cards import cardcode

SECRET_SYMBOLS = 10
FINGERPRINT_SYMBOLS = 8


def fingerprint(root_public: bytes) -> str:
    return cardcode.encode_text(hashlib.sha256(root_public).digest()[:5])


def root_key_id(fingerprint_text: str) -> str:
    """The root key id (8 hex digits, as the hub announces it) inside a fingerprint."""
    return cardcode.decode_text(fingerprint_text)[:4].hex()


def split(code: str) -> tuple[str, str]:
    """(secret, root fingerprint) of a typed code."""
    text = "".join(ch for ch in code.upper() if ch not in " -")
    if len(text) != SECRET_SYMBOLS + FINGERPRINT_SYMBOLS or any(ch not in cardcode.ALPHABET for ch in text):
        raise ValidationError(f"an enrollment code has {SECRET_SYMBOLS + FINGERPRINT_SYMBOLS} digits and letters "
                              f"(without I, O, Y, Z), e.g. 7KQ2M-X9D4A-3GH8PW0T", field="code")
    return text[:SECRET_SYMBOLS], text[SECRET_SYMBOLS:]


def join(secret: str, root_fingerprint: str) -> str:
    return f"{secret[:5]}-{secret[5:]}-{root_fingerprint}"
