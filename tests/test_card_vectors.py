"""The published test vectors (docs/card-vectors.json) are what the code does.

The file is regenerated from scripts/card_vectors.py and must be identical to the committed
one; then each vector is decided by a real gate database that trusts only the vectors'
test root key and its one certificate."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

from core.base.clock import parse_iso
from core.base.node import init_node
from core.base.storage import connect
from core.cards import cardcode, trust
from core.cards.access import Access, GateRules
from core.cards.trusted_time import TrustedClock

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = json.loads((ROOT / "docs" / "card-vectors.json").read_text())


def test_the_committed_vectors_are_what_the_generator_makes():
    generated = runpy.run_path(str(ROOT / "scripts" / "card_vectors.py"), run_name="vectors")["vectors"]()
    assert json.loads(json.dumps(generated)) == COMMITTED


def test_each_vector_gets_its_verdict_from_a_real_gate_database(tmp_path):
    db = connect(tmp_path / "node.sqlite", edge=True)
    init_node(db, "gate", "vector gate")
    trust.pin_root(db, bytes.fromhex(COMMITTED["root_public_hex"]))
    trust.store_cert(db, COMMITTED["node_certificate"])
    access = Access(db, GateRules(), TrustedClock(db))
    for vector in COMMITTED["vectors"]:
        result = access.decide(vector["code"], parse_iso(vector["checked_at"]))
        assert result.reason == vector["verdict"], vector["name"]
        raw = bytes.fromhex(vector["payload_hex"])
        assert cardcode.encode_text(raw) == vector["code"].upper()
        assert len(raw) <= 100


def test_the_valid_vector_decodes_to_the_documented_fields():
    fields = COMMITTED["fields_of_the_valid_card"]
    payload = cardcode.decode(COMMITTED["vectors"][0]["code"]).payload
    for name in ("key_id", "card_id", "product_code", "kind", "valid_from", "valid_until", "issue"):
        assert getattr(payload, name) == fields[name], name
