"""Test kit for cards and gates: a sample hub, a gate folder set up from it, and helpers
to issue cards and ask the gate. Everything is real: key files, SQLite, signatures."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from core.base.clock import utcnow
from core.base.node import NODE_DB
from core.base.storage import connect
from core.cards import cards
from core.cards.access import Access, GateRules
from core.cards.cards import NodeSigner
from core.cards.trusted_time import TrustedClock
from edge.node_data import write_gate_rules
from hub.services import provisioning

STADTMUSEUM, KUNSTHALLE = "Stadtmuseum", "Kunsthalle"


@dataclass
class Kit:
    hub: object  # tests.conftest.Hub
    signer: NodeSigner  # the hub's
    gate_dir: Path

    @property
    def venues(self) -> dict:
        return self.hub.ids["museum_venues"]

    def product(self, index: int) -> str:
        """0 Verbund (12 months from purchase, all venues), 1 Stadtmuseum (12 months from first
        entry), 2 Verbund ermäßigt (3 venues), 3 Kalenderjahr 2027 (fixed)."""
        return self.hub.ids["annual_products"][index]

    def issue(self, index: int = 0, *, kind: str = "annual", holder: str = "Erika Mustermann",
              now: dt.datetime | None = None, **kw) -> dict:
        return cards.issue_card(self.hub.db, self.signer, product_id=self.product(index), kind=kind,
                                now=now or utcnow(), holder_name=holder, **kw)

    def sync(self) -> None:
        """Stand-in for pull sync: the gate receives the hub's current state."""
        provisioning.refresh(self.gate_dir, self.hub.dir)

    def access(self, venue: str = STADTMUSEUM, clock: TrustedClock | None = None, **rules) -> Access:
        db = connect(self.gate_dir / NODE_DB, edge=True)
        gate_rules = GateRules(venue_id=self.venues[venue], **rules)
        return Access(db, gate_rules, clock or TrustedClock(db), signer=cards.load_signer(db, self.gate_dir))


def make_kit(hub, tmp_path: Path, name: str = "gate-1", venue: str = STADTMUSEUM) -> Kit:
    signer = cards.load_signer(hub.db, hub.dir)
    # the gate must know every product's code before it sees cards of it
    for product_id in hub.ids["annual_products"]:
        cards.product_code(hub.db, product_id, "annual")
    gate_dir = tmp_path / name
    provisioning.provision(gate_dir, hub.dir, name=name, role="gate")
    write_gate_rules(gate_dir, GateRules(venue_id=hub.ids["museum_venues"][venue]))
    return Kit(hub, signer, gate_dir)


def prepared_kits(request, tmp_path: Path, backend: str, *names: str) -> list[Kit]:
    """Kits of a private copy of the sample hub with gates *names* set up from it (in this order:
    a gate knows the certificates of those before it), made once per test process and copied per
    test (tests.conftest.prepared_sample_hub): setting up a gate (its database made and migrated,
    a key, a snapshot of the hub) costs ~0.2 s of CPU and ~1 s of fsyncs. The gate folders are in
    the hub's folder (so they are copied with it): `<tmp_path>/hub/<name>`."""
    from tests.conftest import prepared_sample_hub

    def prepare(hub) -> None:
        for name in names:
            make_kit(hub, hub.dir, name)

    hub, _ = prepared_sample_hub(request, tmp_path, backend, "gates-" + "-".join(names), prepare)
    signer = cards.load_signer(hub.db, hub.dir)
    return [Kit(hub, signer, hub.dir / name) for name in names]
