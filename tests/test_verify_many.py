"""Many Ed25519 signatures checked at once (core.cards.trust.verify_many): the hub checks
every entry record a gate pushes this way. The answers must be the ones a single verify
gives, in order, on the parallel path (many records) as on the short one."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.cards import keys, trust


@pytest.mark.parametrize("count", [5, trust.PARALLEL_FROM * 3 + 7])
def test_verify_many_agrees_with_a_single_verify(count):
    rng = random.Random(count)
    signers = [Ed25519PrivateKey.generate() for _ in range(3)]
    items, expected = [], []
    for i in range(count):
        private = rng.choice(signers)
        message = f"entry {i}".encode() * rng.randint(1, 20)
        signature = private.sign(message)
        public = keys.public_bytes(private.public_key())
        case = rng.randrange(5)
        if case == 1:  # the message changed on the way
            message += b"!"
        elif case == 2:  # another node's key
            public = keys.public_bytes(rng.choice([s for s in signers if s is not private]).public_key())
        elif case == 3:  # a flipped bit in the signature
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        elif case == 4 and i % 2:  # not a key at all
            public = public[:31]
        items.append((public, message, signature))
        try:
            ok = len(public) == 32 and (keys.load_public(public).verify(signature, message) is None)
        except Exception:
            ok = False
        expected.append(ok)
    assert trust.verify_many(items) == expected
    assert any(expected) and not all(expected)
