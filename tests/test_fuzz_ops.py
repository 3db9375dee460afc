"""Fuzzing the hub's push endpoint with every op kind, from a node of every role, over real
signed HTTP (DESIGN §4, §12): the hub never answers 5xx; every op with a body it cannot take,
or of a kind outside the node's role, or of no known kind, is a conflict; and a rejected op
changes no hub table but the op log and the conflict list.

Bodies come from a seeded generator: random JSON of any shape, and bodies shaped like each
kind's struct (every field of the right type) with random contents, real catalog ids mixed
in so that the rules behind the decoder are reached, and 0-2 mutations (a field dropped, of
the wrong type, oversized, an unknown or SQL-looking key). None of them can be a sound op:
no random text carries a node's signature, and no random id is a recall or card this node
may touch (real card ids are never used for fulfilment moves, which any desk may make)."""

from __future__ import annotations

import json
import os
import random
import uuid

import msgspec
import msgspec.inspect as mi
import pytest

from core.base.clock import utcnow
from core.sync import auth, sealed
from core.sync.messages import PROTOCOL
from core.sync.ops import REGISTRY
from tests.test_sync import enrolled
from tests.test_trust_no_device import digest, inject, results

SEEDS = [int(s) for s in os.environ.get("TESSERA_FUZZ_SEEDS", "1,2").split(",")]
OPS_PER_NODE = 150
UNKNOWN_KINDS = ("order.cancelled", "card.deleted", "node.promoted", "entry.deleted", "sale.refunded")
# Sound values for the text patterns of a customer (`customer.created`: core/catalog/customers.py and
# common.Address), so shaped bodies get past the decoder to the hub's rules behind it.
PATTERN_SAMPLES = {
    r"^[^@\s]+@[^@\s]+\.[^@\s]+$": ("kundin@example.org", "x@y.zz"),
    r"^\+?[0-9][0-9 ()/-]{4,29}$": ("+49 351 123456", "0351/47110"),
    r"^[A-Za-z0-9 -]+$": ("01067", "1010", "1234 AB", "99999"),
    r"^[A-Z]{2}$": ("DE", "AT", "CH", "NL", "FR"),
}
HOSTILE_KEYS = ("revoked_at = NULL, holder_name", "id; DROP TABLE cards; --", "__proto__", "", "x" * 300, "ä")


class Bodies:
    """Random op bodies, shaped and unshaped."""

    def __init__(self, rng: random.Random, real_ids: list[str], node_id: str):
        self.rng, self.real_ids, self.node_id = rng, real_ids, node_id

    def junk(self, depth: int = 0):
        r = self.rng
        pick = r.randrange(9 if depth < 3 else 6)
        if pick == 0:
            return None
        if pick == 1:
            return r.choice([True, False])
        if pick == 2:
            return r.choice([0, -1, 1, 2**31, 2**63 - 1, -(2**63), r.randint(-10**9, 10**9)])
        if pick == 3:
            return r.choice([0.5, -1e308, 1e308])
        if pick in (4, 5):
            return self.text()
        if pick == 6:
            return [self.junk(depth + 1) for _ in range(r.randrange(4))]
        return {self.key(): self.junk(depth + 1) for _ in range(r.randrange(5))}

    def key(self) -> str:
        return self.rng.choice(HOSTILE_KEYS + ("id", "code", "record", "seat_ids", "price_cents", self.text()))

    def text(self) -> str:
        r = self.rng
        return r.choice([
            "", "x" * r.choice([1, 40, 201, 5000]), str(uuid.UUID(int=r.getrandbits(128))),
            r.choice(self.real_ids), self.node_id, "2026-13-45T99:99:99Z", "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z", "'; DROP TABLE orders; --", "\x00\ud7ff\u202e", "Ölbaum 🎭",
            "".join(r.choice("0123456789ABCDEFGHJKLMNPQRSTUVWX") for _ in range(160)),  # card-code shaped
            json.dumps({"p": "entry", "k": r.getrandbits(32), "b": "{}", "s": "00" * 64}),
        ])

    def shaped(self, info) -> object:
        """A value of the given msgspec type, with random contents."""
        r = self.rng
        if isinstance(info, mi.Metadata):
            info = info.type
        if isinstance(info, mi.UnionType):
            return self.shaped(r.choice(info.types))
        if isinstance(info, mi.NoneType):
            return None
        if isinstance(info, mi.LiteralType):
            return r.choice(info.values)
        if isinstance(info, mi.IntType):
            low = info.ge if info.ge is not None else -(2**31)
            high = info.le if info.le is not None else 2**31
            return r.choice([low, high, r.randint(low, high)])
        if isinstance(info, mi.StrType):
            if info.pattern in PATTERN_SAMPLES:
                return r.choice(PATTERN_SAMPLES[info.pattern])
            if info.pattern and "0-9a-f" in info.pattern:
                return r.choice(self.real_ids + [self.node_id, str(uuid.uuid4())])
            if info.pattern:
                return r.choice(["2026-12-02T10:00:00Z", "2026-01-01T00:00:00.000Z", "2099-12-31T23:59:59Z",
                                 "2026-02-30T25:61:61Z"])
            text = self.text()[: info.max_length or None]
            return text if len(text) >= (info.min_length or 0) else "x" * info.min_length
        if isinstance(info, mi.BoolType):
            return r.choice([True, False])
        if isinstance(info, mi.ListType):
            return [self.shaped(info.item_type) for _ in range(r.randrange(1, 4))]
        if isinstance(info, mi.StructType):
            return {f.name: self.shaped(f.type) for f in info.fields}
        return self.junk()

    def for_kind(self, kind: str) -> object:
        r = self.rng
        entry = REGISTRY.get(kind)
        if entry is None or r.random() < 0.3:
            return self.junk()
        body = self.shaped(mi.type_info(entry.body))
        for _ in range(r.randrange(3)):
            if not body:
                break
            field = r.choice(list(body))
            action = r.randrange(4)
            if action == 0:
                body.pop(field)
            elif action == 1:
                body[field] = self.junk()
            elif action == 2:
                body[self.key()] = self.junk()
            else:
                body[field] = "x" * 100_000
        if kind == "card.fulfilment" and body.get("id") in self.real_ids:
            body["id"] = str(uuid.uuid4())  # a desk may move any real card forward: not a hostile op
        return body


def real_ids(hub) -> list[str]:
    db = hub.db
    ids = [r["id"] for r in db.execute("SELECT id FROM annual_products UNION ALL SELECT id FROM performances "
                                       "UNION ALL SELECT id FROM customers LIMIT 40")]
    ids += [r["id"] for r in db.execute("SELECT id FROM seats LIMIT 20")]
    ids += [r["id"] for r in db.execute("SELECT id FROM cards LIMIT 10")]
    return ids


@pytest.mark.slow  # property-based fuzzing, about 8 s
@pytest.mark.parametrize("seed", SEEDS)
async def test_random_ops_from_every_role_are_conflicts_and_change_nothing(hub, tmp_path, seed):
    from core.base.clock import utcnow
    from core.cards import cards
    signer = cards.load_signer(hub.db, hub.dir)
    for i in range(5):  # some real cards, so card ids in bodies may hit existing rows
        cards.issue_card(hub.db, signer, product_id=hub.ids["annual_products"][0], kind="annual", now=utcnow(),
                         holder_name=f"Fuzz {i}")
    venue = hub.ids["museum_venues"]["Stadtmuseum"]
    nodes = [await enrolled(hub, tmp_path, role="gate", name="Tor 1", venues=[venue]),
             await enrolled(hub, tmp_path, role="cashdesk", name="Kasse 1"),
             await enrolled(hub, tmp_path, role="counter", name="Theke 1")]
    rng = random.Random(seed)
    known = real_ids(hub)
    try:
        for _, _, client in nodes:
            await client.round()
        before = digest(hub.db)
        conflicts_before = hub.db.execute("SELECT count(*) AS n FROM conflicts").fetchone()["n"]
        kinds = list(REGISTRY) + list(UNKNOWN_KINDS)
        sent = 0
        for _, db, client in nodes:
            node_id = db.execute("SELECT id FROM node").fetchone()["id"]
            bodies = Bodies(rng, known, node_id)
            for _ in range(OPS_PER_NODE):
                kind = rng.choice(kinds)
                # mostly a body of the kind's own shape; sometimes one of another kind
                inject(db, kind, bodies.for_kind(kind if rng.random() < 0.9 else rng.choice(kinds)))
            await client.push()  # a 5xx would raise SyncError here
            outcome = results(db)[-OPS_PER_NODE:]
            assert all(r.startswith("rejected: ") for r in outcome), [r for r in outcome if r == "applied"]
            sent += OPS_PER_NODE
        assert digest(hub.db) == before
        assert hub.db.execute("SELECT count(*) AS n FROM conflicts").fetchone()["n"] == conflicts_before + sent
    finally:
        for _, _, client in nodes:
            await client.close()


async def test_signed_pushes_that_are_not_push_requests_get_4xx(hub, tmp_path):
    """Garbage that carries a valid node signature: a clear 4xx, never a 5xx, nothing stored."""
    _, db, client = await enrolled(hub, tmp_path)
    rng = random.Random(7)
    node_id = db.execute("SELECT id FROM node").fetchone()["id"]
    bodies = Bodies(rng, [node_id], node_id)
    payloads = [b"", b"{", b"null", b"[]", b'{"protocol": 1}', json.dumps({"protocol": 1, "node_id": node_id,
                                                                            "ops": [{"node_seq": 0}]}).encode(),
                json.dumps({"protocol": 1, "node_id": node_id, "ops": [
                    {"node_seq": 1, "id": "x", "kind": "DROP TABLE", "body": {}, "wall_time": "", "mono_ns": 0,
                     "boot_id": ""}]}).encode()]
    huge = {"node_seq": 2**63, "id": "x", "kind": "card.issued", "body": {}, "wall_time": "", "mono_ns": 2**64,
            "boot_id": ""}
    payloads.append(json.dumps({"protocol": 1, "node_id": node_id, "ops": [huge]}).encode())
    payloads += [json.dumps(bodies.junk()).encode() for _ in range(40)]
    before = digest(hub.db)
    try:
        session = client.session()
        for payload in payloads:
            # sealed to the hub as the client seals (so the garbage reaches the decoder), and once in clear
            for wire, media in ((client.seal(payload), sealed.MEDIA), (payload, "application/json")):
                headers = auth.sign_request(client.signer.private, client.signer.key_id, node_id, "POST",
                                            "/sync/v1/push", wire, sent=utcnow(), protocol=PROTOCOL)
                headers["Content-Type"] = media
                async with session.post(f"{hub.url}/sync/v1/push", data=wire, headers=headers) as resp:
                    assert 400 <= resp.status < 500, (payload[:80], resp.status, await resp.text())
                    assert media == sealed.MEDIA or resp.status == 415
        for query in ("after=-1", "after=x", "limit=0", "limit=999999", "after=99999999999999999999999"):
            path = f"/sync/v1/pull?{query}"
            headers = auth.sign_request(client.signer.private, client.signer.key_id, node_id, "GET", path, b"",
                                        sent=utcnow(), protocol=PROTOCOL)
            async with session.get(f"{hub.url}{path}", headers=headers) as resp:
                assert 400 <= resp.status < 500 or resp.status == 200, (query, resp.status)
        assert digest(hub.db) == before
        assert hub.db.execute("SELECT count(*) AS n FROM sync_ops").fetchone()["n"] == 0
    finally:
        await client.close()


def test_the_generator_makes_bodies_every_kind_decodes_as_its_shape():
    """Sanity of the fuzzer itself: an unmutated shaped body decodes as its kind (so the
    fuzz reaches the rules behind the decoder, not only the decoder)."""
    rng = random.Random(3)
    bodies = Bodies(rng, [str(uuid.uuid4())], str(uuid.uuid4()))
    for entry in REGISTRY.values():
        decoded = 0
        for _ in range(20):
            try:
                msgspec.convert(bodies.shaped(mi.type_info(entry.body)), entry.body, strict=True)
                decoded += 1
            except msgspec.ValidationError:
                pass
        assert decoded >= 5, entry.kind
