"""Card credential format v1: the bytes inside a card's QR code, and their text encoding.

Pure functions, no database: the gate, `tessera card verify`, the printers and the docs'
test vectors all go through here. The layout (100 bytes, big-endian) is documented with
test vectors in `docs/card-format.md`:

    offset size field
         0    1 version        0x01
         1    4 key id         signer's key id (first 4 bytes of SHA-256 of its public key)
         5   16 card id        UUIDv7 of the card; its time stamp is the signing time
        21    4 product code   small number the hub gives each product (`card_products`)
        25    1 kind           1 annual ticket, 2 subscription pass, 3 single ticket, 4 voucher,
                               5 choice voucher (Wahlgutschein: redeemed for a seat ticket, never at a gate)
        26    4 valid from     minutes since 1970-01-01T00:00Z
        30    4 valid until    minutes since 1970-01-01T00:00Z (last valid minute)
        34    2 issue number   1 for the first card, +1 for each re-issue (lost card)
        36   64 signature      Ed25519 over DOMAIN + bytes 0..35

No personal data is in the code: the holder's name is only on the printed card and in the
local database. The text form uses 32 symbols, digits and upper-case letters without I, O,
Y and Z: Y and Z swap places between US and German keyboards, and I/O look like 1/0, so a
keyboard-wedge scanner on either layout types the same text and a QR code stays in
alphanumeric mode. Decoding is case-insensitive (a scanner with caps lock still works).
"""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass

VERSION = 1
DOMAIN = b"tessera-card-v1\x00"
ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWX"
SIGNED_LENGTH = 36
SIGNATURE_LENGTH = 64
LENGTH = SIGNED_LENGTH + SIGNATURE_LENGTH
TEXT_LENGTH = LENGTH * 8 // 5  # 160 symbols
KINDS = {1: "annual", 2: "subscription", 3: "single", 4: "voucher", 5: "choice_voucher"}
KIND_CODES = {name: code for code, name in KINDS.items()}
MAX_MINUTES = 2**32 - 1

_HEAD = struct.Struct(">BI16sIBIIH")
_VALUES = {symbol: value for value, symbol in enumerate(ALPHABET)}
_VALUES.update({symbol.lower(): value for symbol, value in list(_VALUES.items())})
# Fast path: after a whole-string check against the alphabet, translate to Python's own
# base-32 digits (0-9, a-v) and let int() do the arithmetic in C.
_SYMBOLS = re.compile("[" + ALPHABET + ALPHABET.lower() + "]*")
_TO_BASE32 = str.maketrans({symbol: "0123456789abcdefghijklmnopqrstuv"[value] for symbol, value in _VALUES.items()})


class Malformed(ValueError):
    """The text is not a card of a format we know (wrong symbols, length or version)."""


@dataclass(frozen=True, slots=True)
class CardPayload:
    """The signed fields of a card. Times are minutes since the epoch (UTC)."""

    key_id: int
    card_id: str
    product_code: int
    kind: str
    valid_from: int
    valid_until: int
    issue: int

    def signed_bytes(self) -> bytes:
        return _HEAD.pack(VERSION, self.key_id, uuid.UUID(self.card_id).bytes, self.product_code,
                          KIND_CODES[self.kind], self.valid_from, self.valid_until, self.issue)


@dataclass(frozen=True, slots=True)
class SignedCard:
    payload: CardPayload
    signature: bytes
    raw: bytes  # the 100 bytes as scanned, so verification uses exactly what was read

    @property
    def message(self) -> bytes:
        """What the signature covers."""
        return DOMAIN + self.raw[:SIGNED_LENGTH]


def encode_text(data: bytes) -> str:
    """Bytes -> symbols of ALPHABET, 5 bits each, most significant first."""
    if len(data) * 8 % 5:
        raise ValueError("length must be a multiple of 5 bytes")
    number = int.from_bytes(data, "big")
    symbols = len(data) * 8 // 5
    return "".join(ALPHABET[(number >> (5 * (symbols - 1 - i))) & 31] for i in range(symbols))


def decode_text(text: str) -> bytes:
    """Symbols -> bytes; case-insensitive, surrounding whitespace ignored. Raises Malformed."""
    text = text.strip()
    if len(text) * 5 % 8:
        raise Malformed(f"{len(text)} symbols do not make whole bytes")
    if not _SYMBOLS.fullmatch(text):
        bad = next(symbol for symbol in text if symbol not in _VALUES)
        raise Malformed(f"symbol {bad!r} is not part of a card code")
    number = int(text.translate(_TO_BASE32), 32) if text else 0
    return number.to_bytes(len(text) * 5 // 8, "big")


def pack(payload: CardPayload, signature: bytes) -> bytes:
    if len(signature) != SIGNATURE_LENGTH:
        raise ValueError("an Ed25519 signature has 64 bytes")
    return payload.signed_bytes() + signature


def encode(payload: CardPayload, signature: bytes) -> str:
    return encode_text(pack(payload, signature))


def parse(raw: bytes) -> SignedCard:
    """100 bytes -> SignedCard. Only structure is checked here; the signature is not."""
    if len(raw) != LENGTH:
        raise Malformed(f"a v1 card has {LENGTH} bytes, this one {len(raw)}")
    version, key_id, card_bytes, product, kind, valid_from, valid_until, issue = _HEAD.unpack_from(raw)
    if version != VERSION:
        raise Malformed(f"card format version {version} is unknown (this gate reads version {VERSION})")
    payload = CardPayload(key_id=key_id, card_id=str(uuid.UUID(bytes=card_bytes)), product_code=product,
                          kind=KINDS.get(kind, f"unknown-{kind}"), valid_from=valid_from,
                          valid_until=valid_until, issue=issue)
    return SignedCard(payload=payload, signature=raw[SIGNED_LENGTH:], raw=raw)


def decode(text: str) -> SignedCard:
    """Scanned text -> SignedCard (not yet verified). Raises Malformed."""
    if len(text.strip()) != TEXT_LENGTH:
        raise Malformed(f"a v1 card code has {TEXT_LENGTH} symbols, this one {len(text.strip())}")
    return parse(decode_text(text))


def is_well_formed(card: SignedCard) -> bool:
    """Signed fields that make sense; checked *after* the signature, since a forger's
    garbage is FORGED, not MALFORMED."""
    p = card.payload
    return p.kind in KIND_CODES and p.valid_from <= p.valid_until and p.issue >= 1 and p.product_code >= 1
