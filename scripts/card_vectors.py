#!/usr/bin/env python3
"""Print the card format v1 test vectors (docs/card-vectors.json) as JSON.

The keys below are TEST KEYS made from fixed seeds, published on purpose so that anyone
can reproduce the vectors; never use them for anything else. Ed25519 signatures are
deterministic, so the output never changes unless the format does; `tests/test_card_vectors.py`
regenerates it and compares it with the committed file, then asks a real gate database for
each verdict.

    .venv/bin/python scripts/card_vectors.py > docs/card-vectors.json
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from core.cards import cardcode, keys  # noqa: E402
from core.cards.trust import certify  # noqa: E402

ROOT_SEED = bytes(range(32))
NODE_SEED = bytes(range(32, 64))
STRANGER_SEED = bytes(range(64, 96))
NODE_ID = "01940000-0000-7000-8000-00000000c0de"
CERT_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CARD_ID = "019d8c3e-a528-7000-8000-000000000001"  # UUIDv7 stamped 2026-04-14T13:46:49.000Z
PASS_ID = "019d8c3e-a528-7000-8000-000000000002"  # a season pass (kind 2), same signing time
TICKET_ID = "019d8c3e-a528-7000-8000-000000000003"  # a subscription's single ticket (kind 3)


def minutes(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()) // 60


def signed(private: Ed25519PrivateKey, payload: cardcode.CardPayload) -> bytes:
    return cardcode.pack(payload, private.sign(cardcode.DOMAIN + payload.signed_bytes()))


def vectors() -> dict:
    root = Ed25519PrivateKey.from_private_bytes(ROOT_SEED)
    node = Ed25519PrivateKey.from_private_bytes(NODE_SEED)
    stranger = Ed25519PrivateKey.from_private_bytes(STRANGER_SEED)
    node_public = keys.public_bytes(node)
    payload = cardcode.CardPayload(key_id=keys.key_id(node_public), card_id=CARD_ID, product_code=7, kind="annual",
                                   valid_from=minutes("2026-04-14T22:00:00Z"),
                                   valid_until=minutes("2027-04-14T21:59:00Z"), issue=1)
    good = signed(node, payload)
    forged = bytearray(good)
    forged[60] ^= 0x01
    version2 = bytearray(good)
    version2[0] = 2
    unknown = signed(stranger, cardcode.CardPayload(**{**_fields(payload),
                                                       "key_id": keys.key_id(keys.public_bytes(stranger))}))
    season_pass = cardcode.CardPayload(key_id=keys.key_id(node_public), card_id=PASS_ID, product_code=12,
                                       kind="subscription", valid_from=minutes("2026-09-18T22:00:00Z"),
                                       valid_until=minutes("2027-05-22T21:59:00Z"), issue=1)
    ticket = cardcode.CardPayload(key_id=keys.key_id(node_public), card_id=TICKET_ID, product_code=13, kind="single",
                                  valid_from=minutes("2026-09-19T15:30:00Z"),
                                  valid_until=minutes("2026-09-19T18:30:00Z"), issue=1)
    cases = [
        ("valid annual ticket", good, "2026-06-01T10:00:00Z", "ADMITTED"),
        ("same code in lower case (scanner with caps lock)", good, "2026-06-01T10:00:00Z", "ADMITTED"),
        ("before its validity window", good, "2026-04-14T21:00:00Z", "NOT_YET_VALID"),
        ("after its validity window", good, "2027-04-14T22:00:00Z", "EXPIRED"),
        ("one bit of the signature flipped", bytes(forged), "2026-06-01T10:00:00Z", "FORGED"),
        ("unknown format version 2", bytes(version2), "2026-06-01T10:00:00Z", "MALFORMED"),
        ("signed by a key without certificate", unknown, "2026-06-01T10:00:00Z", "UNKNOWN_SIGNER"),
        ("truncated to 95 bytes", good[:95], "2026-06-01T10:00:00Z", "MALFORMED"),
        ("subscription pass (kind 2) on a performance day", signed(node, season_pass), "2026-10-24T18:00:00Z",
         "ADMITTED"),
        ("subscription pass after its last performance day", signed(node, season_pass), "2027-05-22T22:00:00Z",
         "EXPIRED"),
        ("single ticket (kind 3) 30 minutes before the start", signed(node, ticket), "2026-09-19T17:00:00Z",
         "ADMITTED"),
        ("single ticket 3 hours before the start", signed(node, ticket), "2026-09-19T14:30:00Z", "NOT_YET_VALID"),
        ("single ticket 1 hour 1 minute after the start", signed(node, ticket), "2026-09-19T18:31:00Z", "EXPIRED"),
    ]
    out = []
    for name, raw, at, verdict in cases:
        text = cardcode.encode_text(raw)
        out.append({"name": name, "payload_hex": raw.hex(), "code": text.lower() if "lower" in name else text,
                    "checked_at": at, "verdict": verdict})
    return {
        "format": "tessera card v1",
        "note": "TEST KEYS from fixed seeds; never use them for anything else",
        "root_seed_hex": ROOT_SEED.hex(),
        "root_public_hex": keys.public_bytes(root).hex(),
        "node_seed_hex": NODE_SEED.hex(),
        "node_public_hex": node_public.hex(),
        "node_key_id": keys.key_id(node_public),
        "node_certificate": certify(root, node_id=NODE_ID, name="test cash desk", role="cashdesk",
                                    public_raw=node_public, now=CERT_TIME),
        "fields_of_the_valid_card": {**_fields(payload), "valid_from_utc": "2026-04-14T22:00:00Z",
                                     "valid_until_utc": "2027-04-14T21:59:59Z"},
        "fields_of_the_subscription_pass": {**_fields(season_pass), "valid_from_utc": "2026-09-18T22:00:00Z",
                                            "valid_until_utc": "2027-05-22T21:59:59Z"},
        "fields_of_the_single_ticket": {**_fields(ticket), "valid_from_utc": "2026-09-19T15:30:00Z",
                                        "valid_until_utc": "2026-09-19T18:30:59Z"},
        "vectors": out,
    }


def _fields(payload: cardcode.CardPayload) -> dict:
    return {"key_id": payload.key_id, "card_id": payload.card_id, "product_code": payload.product_code,
            "kind": payload.kind, "valid_from": payload.valid_from, "valid_until": payload.valid_until,
            "issue": payload.issue}


if __name__ == "__main__":
    print(json.dumps(vectors(), indent=2, ensure_ascii=False))
