"""A stolen key outlives its revocation by nothing (issue 11, DESIGN §5).

Each test is one attack a thief holding a device's key tried against the code before this
change, and what the gate, a peer gate or the hub does with it now. Everything is real: a
sample hub database, gate and desk folders set up from it, key files, Ed25519 signatures,
and the hub's own push path (`hub.sync.apply.apply_push`, what `POST /sync/v1/push` runs
after it has authenticated the node) fed with the ops a desk's outbox holds.
"""

from __future__ import annotations

import datetime as dt
import json

import msgspec
import pytest

from core.base.clock import LOCAL_TZ, day_end, day_start, iso, utcnow
from core.base.errors import ValidationError
from core.base.ids import uuid7
from core.base.node import NODE_DB, this_node
from core.base.storage import connect, transaction
from core.cards import cardcode, cards, keys
from core.cards.cards import NodeSigner
from core.cards.trust import BadRecord, TrustStore, sign
from core.catalog.annual import add_months
from core.sync.messages import Op
from core.sync.ops import Pushed
from edge.sync import enroll as enrolling
from edge.sync.client import SyncClient
from hub.app import make_app
from hub.services import nodes, provisioning
from hub.sync import apply, enrollment
from tests.cardkit import KUNSTHALLE, STADTMUSEUM, Kit, make_kit
from tests.helpers import call

VERBUND, STADTMUSEUM_FIRST_ENTRY = 0, 1  # sample products: all venues / Stadtmuseum only (12 months from first entry)


@pytest.fixture
def kit(sample_hub, tmp_path) -> Kit:
    return make_kit(sample_hub, tmp_path)


class Desk:
    """A cash desk set up from the hub folder: its own database, key and outbox."""

    def __init__(self, kit: Kit, folder) -> None:
        self.kit, self.folder = kit, folder
        self.db = connect(folder / NODE_DB, edge=True)
        self.node = this_node(self.db)

    @property
    def signer(self) -> NodeSigner:
        return cards.load_signer(self.db, self.folder)

    def sell(self, product: int, at: dt.datetime) -> dict:
        """A card as the desk issues it, signed at *at* (a thief picks any time he likes)."""
        return cards.issue_card(self.db, self.signer, product_id=self.kit.product(product), kind="annual", now=at,
                                holder_name="Erika Mustermann")

    def push(self, at: dt.datetime) -> dict[str, str | None]:
        """Everything in the outbox to the hub's push path as at *at*: card id -> refusal (None: applied)."""
        rows = self.db.execute("SELECT * FROM outbox ORDER BY node_seq").fetchall()
        ops = [Op(node_seq=r["node_seq"], id=r["id"], kind=r["kind"], body=msgspec.json.decode(r["body"]),
                  wall_time=r["wall_time"], mono_ns=r["mono_ns"], boot_id=r["boot_id"]) for r in rows]
        pushed = Pushed(db=self.kit.hub.db, node_id=self.node["id"], role=self.node["role"], venue_ids=(),
                        trust=TrustStore.load(self.kit.hub.db), now=at)
        results = apply.apply_push(pushed, ops)
        return {json.loads(r["body"])["id"]: res.reason for r, res in zip(rows, results, strict=True)}


def make_desk(kit: Kit, tmp_path, name: str = "desk") -> Desk:
    provisioning.provision(tmp_path / name, kit.hub.dir, name=name, role="cashdesk")
    return Desk(kit, tmp_path / name)


def revoke(kit: Kit, node_id: str, at: dt.datetime, reason: str = "lost") -> None:
    nodes.revoke_node(kit.hub.db, nodes.root_key(kit.hub.dir), node_id, reason=reason, revoked_at=at)


def hub_card(kit: Kit, card_id: str) -> dict:
    return kit.hub.db.execute("SELECT * FROM cards WHERE id = ?", (card_id,)).fetchone()


# --- cards from a revoked key ---------------------------------------------------------------------------


def test_a_back_dated_card_from_a_revoked_key_is_refused_at_the_gate(kit, tmp_path):
    """The desk is stolen at T and revoked as of T. The thief signs a card whose id says
    T - 30 min. Before: every gate admitted it (its id's time lies before the revocation)."""
    desk = make_desk(kit, tmp_path)
    theft = utcnow() - dt.timedelta(hours=2)
    revoke(kit, desk.node["id"], theft)
    forged = desk.sell(VERBUND, theft - dt.timedelta(minutes=30))
    kit.sync()
    result = kit.access().decide(forged["code"])
    assert result.reason == "SIGNER_REVOKED" and "not on record before the revocation" in result.detail


def test_a_card_the_hub_had_before_the_revocation_stays_valid(kit, tmp_path):
    """Cards issued before the revocation stay valid: the hub saw this one before T, and
    the gate knows it from sync."""
    desk = make_desk(kit, tmp_path)
    sold_at = utcnow() - dt.timedelta(hours=3)
    card = desk.sell(VERBUND, sold_at)
    assert desk.push(sold_at + dt.timedelta(seconds=5)) == {card["id"]: None}
    revoke(kit, desk.node["id"], utcnow() - dt.timedelta(hours=2))
    kit.sync()
    access = kit.access()
    assert access.decide(card["code"]).admitted
    # the same card id signed again with a longer validity is not the card on record
    longer = cards.sign_card(desk.signer, card_id=card["id"], code=cardcode.decode(card["code"]).payload.product_code,
                             kind="annual", valid_from=sold_at, valid_until=sold_at + dt.timedelta(days=3000),
                             issue=1)
    assert access.decide(longer).reason == "SIGNER_REVOKED"


def test_the_hub_voids_back_dated_cards_that_reached_it_after_the_revocation_time(kit, tmp_path):
    """The thief's desk syncs a back-dated card before the office hears of the theft; the
    office revokes as of the last moment the desk was in good hands. Before: the hub kept
    the card, sent it to every gate as a known card, and every gate admitted it."""
    desk = make_desk(kit, tmp_path)
    now = utcnow()
    honest = desk.sell(VERBUND, now - dt.timedelta(hours=3))
    assert desk.push(now - dt.timedelta(hours=3) + dt.timedelta(seconds=5)) == {honest["id"]: None}
    theft = now - dt.timedelta(hours=2)
    forged = desk.sell(VERBUND, theft - dt.timedelta(minutes=30))
    assert desk.push(now - dt.timedelta(hours=1))[forged["id"]] is None  # nobody knew yet
    revoke(kit, desk.node["id"], theft)
    assert hub_card(kit, forged["id"])["revoked_at"] is not None and hub_card(kit, honest["id"])["revoked_at"] is None
    kit.sync()
    access = kit.access()
    assert access.decide(honest["code"]).admitted
    assert access.decide(forged["code"]).reason == "REVOKED"


def test_the_hub_refuses_a_revoked_keys_card_later_than_its_last_op(kit, tmp_path):
    """A desk revoked as of the end of its shift still reaches the hub until then; a card it
    pushes claiming a time after the last op the hub saw from it is refused. Before: applied."""
    desk = make_desk(kit, tmp_path)
    now = utcnow()
    first = desk.sell(VERBUND, now - dt.timedelta(hours=1))
    assert desk.push(now - dt.timedelta(hours=1) + dt.timedelta(seconds=2)) == {first["id"]: None}
    mark = kit.hub.db.execute("SELECT * FROM node_op_marks WHERE node_id = ?", (desk.node["id"],)).fetchone()
    assert mark["last_op_at"].startswith(iso(now - dt.timedelta(hours=1))[:19])
    revoke(kit, desk.node["id"], now + dt.timedelta(minutes=30), reason="compromised")
    back_dated = desk.sell(VERBUND, now - dt.timedelta(minutes=20))
    reasons = desk.push(now)
    assert "after the last operation the hub saw" in reasons[back_dated["id"]]
    assert hub_card(kit, back_dated["id"]) is None
    assert kit.hub.db.execute("SELECT count(*) AS n FROM conflicts WHERE node_id = ?",
                              (desk.node["id"],)).fetchone()["n"] == 1


def test_a_rotated_key_is_no_suspect_but_a_rotated_key_found_stolen_is(kit, tmp_path):
    """Rotation retires a key in good hands: what it signed before stays valid even unseen.
    Revoking that key for cause later keeps the earlier time and makes it a suspect."""
    desk = make_desk(kit, tmp_path)
    old = desk.signer
    before = desk.sell(VERBUND, utcnow() - dt.timedelta(minutes=10))
    provisioning.rotate_key(desk.folder, kit.hub.dir)
    kit.sync()
    assert kit.access().decide(before["code"]).admitted
    nodes.revoke_key(kit.hub.db, nodes.root_key(kit.hub.dir), old.key_id, reason="compromised")
    row = kit.hub.db.execute("SELECT reason FROM node_revocations WHERE key_id = ?", (old.key_id,)).fetchone()
    assert row["reason"] == "compromised"
    kit.sync()
    assert kit.access().decide(before["code"]).reason == "SIGNER_REVOKED"


# --- what a certificate lets a node issue ----------------------------------------------------------------


def kunsthalle_desk(kit: Kit, tmp_path) -> Desk:
    """A desk the office bound to the Kunsthalle: its certificate (made at its key rotation,
    from its scope at the hub) names that venue."""
    desk = make_desk(kit, tmp_path)
    with transaction(kit.hub.db):
        kit.hub.db.execute("INSERT INTO node_scopes (node_id, name, role, venue_ids, enrolled_at) "
                           "VALUES (?, 'desk', 'cashdesk', ?, ?)",
                           (desk.node["id"], json.dumps([kit.venues[KUNSTHALLE]]), iso(utcnow())))
    provisioning.rotate_key(desk.folder, kit.hub.dir)
    return desk


def test_a_certificate_names_the_venues_its_node_may_issue_for(kit, tmp_path):
    desk = kunsthalle_desk(kit, tmp_path)
    record = nodes.certificate(kit.hub.db, desk.signer.key_id)
    assert json.loads(json.loads(record)["b"])["may_issue"] == {"venues": [kit.venues[KUNSTHALLE]]}
    hub_cert = nodes.certificate(kit.hub.db, kit.signer.key_id)
    assert json.loads(json.loads(hub_cert)["b"])["may_issue"] == {"venues": "all"}


def test_a_desk_for_venue_a_cannot_issue_a_product_of_venue_b(kit, tmp_path):
    """Before: a Kunsthalle desk's key signed a Stadtmuseum-only card and the Stadtmuseum
    gate admitted it."""
    desk = kunsthalle_desk(kit, tmp_path)
    now = utcnow()
    foreign = desk.sell(STADTMUSEUM_FIRST_ENTRY, now)
    own = desk.sell(VERBUND, now)  # valid at every venue, the Kunsthalle among them
    kit.sync()
    access = kit.access(STADTMUSEUM)
    result = access.decide(foreign["code"])
    assert result.reason == "SIGNER_SCOPE" and "not sold at its venues" in result.detail
    assert access.decide(own["code"]).admitted
    reasons = desk.push(now + dt.timedelta(seconds=1))
    assert "does not let it issue" in reasons[foreign["id"]] and reasons[own["id"]] is None


async def test_a_desk_enrolled_for_one_venue_pushes_only_its_products(kit, tmp_path, aiohttp_server):
    """Over the network: a desk enrolled for the Kunsthalle gets a certificate that says so,
    and the hub refuses its push of a Stadtmuseum-only card (real HTTP, the real sync client)."""
    server = await aiohttp_server(make_app(kit.hub.db))
    code = enrollment.create_code(kit.hub.db, name="Kasse Kunsthalle", role="cashdesk",
                                  venue_ids=[kit.venues[KUNSTHALLE]], now=utcnow())
    folder = tmp_path / "desk-kunsthalle"
    await enrolling.enroll(folder, code, [str(server.make_url("")).rstrip("/")])
    db = connect(folder / NODE_DB, edge=True)
    client = SyncClient(db, folder)
    try:
        await client.round()
        signer = cards.load_signer(db, folder)
        body = json.loads(json.loads(nodes.certificate(kit.hub.db, signer.key_id))["b"])
        assert body["may_issue"] == {"venues": [kit.venues[KUNSTHALLE]]}
        now = utcnow()
        foreign = cards.issue_card(db, signer, product_id=kit.product(STADTMUSEUM_FIRST_ENTRY), kind="annual",
                                   now=now)
        own = cards.issue_card(db, signer, product_id=kit.product(VERBUND), kind="annual", now=now)
        await client.push()
        assert hub_card(kit, own["id"]) is not None and hub_card(kit, foreign["id"]) is None
        conflict = kit.hub.db.execute("SELECT reason FROM conflicts WHERE node_id = ?", (signer.node_id,)).fetchone()
        assert "does not let it issue" in conflict["reason"]
    finally:
        await client.close()
        db.close()


def test_a_certificate_from_before_the_field_may_issue_everything(kit, tmp_path):
    """Old certificates carry no `may_issue`: they keep working as 'all venues'."""
    root = nodes.root_key(kit.hub.dir)
    private = keys.generate()
    public = keys.public_bytes(private)
    body = {"v": 1, "key_id": keys.key_id(public), "node_id": uuid7(), "name": "old desk", "role": "cashdesk",
            "public_key": public.hex(), "issued_at": iso(utcnow()), "valid_from": iso(utcnow() - dt.timedelta(days=1)),
            "valid_until": iso(utcnow() + dt.timedelta(days=3650))}
    from core.cards import trust
    trust.store_cert(kit.hub.db, sign(root, "node-cert", body))
    signer = NodeSigner(body["node_id"], "cashdesk", body["key_id"], private)
    now = utcnow()
    code = cards.sign_card(signer, card_id=uuid7(int(now.timestamp() * 1000)),
                           code=cards.product_code(kit.hub.db, kit.product(STADTMUSEUM_FIRST_ENTRY), "annual"),
                           kind="annual", valid_from=now,
                           valid_until=cards.default_validity(kit.hub.db, kit.product(STADTMUSEUM_FIRST_ENTRY),
                                                              "annual", now)[1], issue=1)
    kit.sync()
    assert kit.access(STADTMUSEUM).decide(code).admitted


# --- validity the product does not give ------------------------------------------------------------------


def test_a_card_valid_longer_than_its_product_allows_is_refused(kit, tmp_path):
    """A desk key signs a 12-month product valid for eight years. Before: admitted."""
    desk = make_desk(kit, tmp_path)
    now = utcnow()
    code = cards.product_code(kit.hub.db, kit.product(VERBUND), "annual")
    card_id = uuid7(int(now.timestamp() * 1000))
    too_long = cards.sign_card(desk.signer, card_id=card_id, code=code, kind="annual",
                               valid_from=day_start(now.astimezone(LOCAL_TZ).date()),
                               valid_until=now + dt.timedelta(days=8 * 365), issue=1)
    kit.sync()
    access = kit.access()
    result = access.decide(too_long)
    assert result.reason == "VALIDITY_TOO_LONG" and "longer than the product allows" in result.detail
    shorter = cards.sign_card(desk.signer, card_id=uuid7(int(now.timestamp() * 1000)), code=code, kind="annual",
                              valid_from=now, valid_until=now + dt.timedelta(days=30), issue=1)
    assert access.decide(shorter).admitted  # shorter is the issuer's choice
    assert access.decide(desk.sell(VERBUND, now)["code"]).admitted


def test_issuing_a_card_longer_than_its_product_is_refused(kit):
    """The same rule when a card is issued (the hub's API passes a chosen window through)."""
    now = utcnow()
    before = kit.hub.db.execute("SELECT count(*) AS n FROM cards").fetchone()["n"]
    with pytest.raises(ValidationError, match="longer than the product allows"):
        kit.issue(VERBUND, now=now, valid_until=now + dt.timedelta(days=3000))
    assert kit.hub.db.execute("SELECT count(*) AS n FROM cards").fetchone()["n"] == before


# --- entry records ---------------------------------------------------------------------------------------


def gate_signer(kit: Kit, tmp_path, name: str = "gate-2") -> tuple[Kit, NodeSigner]:
    other = make_kit(kit.hub, tmp_path, name)
    return other, cards.load_signer(connect(other.gate_dir / NODE_DB, edge=True), other.gate_dir)


def entry(signer: NodeSigner, card: dict, venue_id: str, at: dt.datetime, id_at: dt.datetime | None = None) -> str:
    """A signed entry record as a gate makes it; *id_at* lets a thief give its id another time."""
    body = {"v": 1, "id": uuid7(int((id_at or at).timestamp() * 1000)), "card_id": card["id"],
            "card_issue": card["issue"], "venue_id": venue_id, "node_id": signer.node_id, "direction": "in",
            "at": iso(at)}
    return sign(signer.private, "entry", body, signer.key_id)


def entries_of(access, card_id: str) -> int:
    return access.db.execute("SELECT count(*) AS n FROM entries WHERE card_id = ?", (card_id,)).fetchone()["n"]


def push_entries(kit: Kit, signer: NodeSigner, records: list[str], now: dt.datetime) -> list[str | None]:
    """Entry records as the gate's outbox would push them: the refusal of each (None: applied)."""
    ops = [Op(node_seq=n, id=uuid7(), kind="entry.recorded", body={"record": r}, wall_time=iso(now), mono_ns=0,
              boot_id="b") for n, r in enumerate(records, 1)]
    pushed = Pushed(db=kit.hub.db, node_id=signer.node_id, role="gate", venue_ids=(kit.venues[STADTMUSEUM],),
                    trust=TrustStore.load(kit.hub.db), now=now)
    return [r.reason for r in apply.apply_push(pushed, ops)]


def test_an_entry_whose_time_is_not_its_ids_is_refused(kit, tmp_path):
    """A gate key signs an entry whose id says one time and `at` another (first entry and
    passback read `at`). Before: a peer gate stored it."""
    other, signer = gate_signer(kit, tmp_path)
    now = utcnow()
    card = kit.issue(VERBUND, now=now - dt.timedelta(hours=5))
    kit.sync()
    access = kit.access()
    record = entry(signer, card, kit.venues[STADTMUSEUM], now - dt.timedelta(hours=1),
                   id_at=now - dt.timedelta(hours=2))
    with pytest.raises(BadRecord, match="does not agree with the time inside its id"):
        access.accept_entry_record(record)
    assert entries_of(access, card["id"]) == 0
    within = entry(signer, card, kit.venues[STADTMUSEUM], now - dt.timedelta(hours=1),
                   id_at=now - dt.timedelta(hours=1, seconds=1))
    assert access.accept_entry_record(within)  # one clock reading, a second apart at most
    assert push_entries(kit, signer, [record], now)[0].endswith("does not agree with the time inside its id")


def test_an_entry_before_the_card_was_issued_is_refused(kit, tmp_path):
    """A card sold 90 minutes ago, valid from midnight: a record of an entry ten minutes
    before the sale. Before: a peer gate stored it, and so did the hub (it only compared
    with the card's validity, which starts at midnight)."""
    other, signer = gate_signer(kit, tmp_path)
    sold = utcnow() - dt.timedelta(minutes=90)
    card = kit.issue(VERBUND, now=sold)
    kit.sync()
    access = kit.access()
    early = entry(signer, card, kit.venues[STADTMUSEUM], sold - dt.timedelta(minutes=10))
    with pytest.raises(BadRecord, match="before the card was issued"):
        access.accept_entry_record(early)
    assert push_entries(kit, signer, [early], utcnow())[0].endswith("before the card was issued")
    assert entries_of(access, card["id"]) == 0 and hub_entries(kit, card["id"]) == 0
    on_time = entry(signer, card, kit.venues[STADTMUSEUM], sold + dt.timedelta(minutes=10))
    assert access.accept_entry_record(on_time)


def hub_entries(kit: Kit, card_id: str) -> int:
    return kit.hub.db.execute("SELECT count(*) AS n FROM entries WHERE card_id = ?", (card_id,)).fetchone()["n"]


def test_no_record_starts_the_months_of_a_first_entry_card_before_its_sale(kit, tmp_path):
    """A gate certified long ago signs an entry 400 days in the past for a card sold
    yesterday. Refused at every gate and at the hub now; and even where such a record got
    into a database anyway (the replica copies the hub's entries as they are), it cannot
    start the 12 months before the card was sold. Before: the card was EXPIRED."""
    private = keys.generate()
    old_gate = NodeSigner(uuid7(), "gate", keys.key_id(keys.public_bytes(private)), private)
    nodes.certify_node(kit.hub.db, nodes.root_key(kit.hub.dir), node_id=old_gate.node_id, name="old gate",
                       role="gate", public_raw=keys.public_bytes(private), now=utcnow() - dt.timedelta(days=500))
    sold = utcnow() - dt.timedelta(hours=20)  # inside the hub key's certificate
    card = kit.issue(STADTMUSEUM_FIRST_ENTRY, now=sold)
    record = entry(old_gate, card, kit.venues[STADTMUSEUM], utcnow() - dt.timedelta(days=400))
    kit.sync()
    access = kit.access()
    with pytest.raises(BadRecord, match="before the card was issued"):
        access.accept_entry_record(record)
    body = json.loads(json.loads(record)["b"])
    with transaction(kit.hub.db):
        kit.hub.db.execute("INSERT INTO entries (id, card_id, card_issue, venue_id, node_id, direction, at, record, "
                           "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (body["id"], card["id"], 1, body["venue_id"], body["node_id"], "in", body["at"], record,
                            iso(utcnow())))
    kit.sync()
    access.refresh(force=True)
    assert entries_of(access, card["id"]) == 1
    result = access.decide(card["code"])
    assert result.admitted
    last_day = add_months(sold.astimezone(LOCAL_TZ).date(), 12) - dt.timedelta(days=1)
    assert result.valid_until == iso(day_end(last_day))
    assert access.first_entry(card["id"]) >= sold.replace(microsecond=0)


def test_a_revoked_gate_keys_entries_after_the_revocation_have_no_effect(kit, tmp_path):
    """A gate stolen at T keeps signing entries; one reached the other gates before the
    revocation did. Before: it held the card out as PASSBACK at every gate."""
    other, signer = gate_signer(kit, tmp_path)
    now = utcnow()
    card = kit.issue(VERBUND, now=now - dt.timedelta(days=1))
    kit.sync()
    access = kit.access()
    assert access.accept_entry_record(entry(signer, card, kit.venues[STADTMUSEUM], now - dt.timedelta(minutes=5)))
    assert access.decide(card["code"]).reason == "PASSBACK"
    revoke(kit, signer.node_id, now - dt.timedelta(minutes=20), reason="compromised")
    kit.sync()
    access.refresh(force=True)
    assert access.decide(card["code"]).admitted
    with pytest.raises(BadRecord, match="not valid when it signed"):
        access.accept_entry_record(entry(signer, card, kit.venues[STADTMUSEUM], now - dt.timedelta(minutes=2)))
    # its id before the revocation, its time after: refused all the same
    with pytest.raises(BadRecord):
        access.accept_entry_record(entry(signer, card, kit.venues[STADTMUSEUM], now - dt.timedelta(minutes=19),
                                         id_at=now - dt.timedelta(minutes=21)))


async def test_the_node_list_shows_when_the_hub_last_heard_of_each_node(api, tmp_path):
    """What the office looks at to name a stolen desk's revocation time (GET /api/v1/nodes)."""
    kit = make_kit(api.hub, tmp_path)
    desk = make_desk(kit, tmp_path)
    sold = utcnow() - dt.timedelta(minutes=30)
    desk.sell(VERBUND, sold)
    desk.push(sold + dt.timedelta(seconds=5))
    listed = await call(api, "GET", "/nodes", status=200)
    row = next(n for n in listed if n["node_id"] == desk.node["id"])
    assert row["last_op_at"].startswith(iso(sold)[:19])
    assert row["last_op_received_at"].startswith(iso(sold + dt.timedelta(seconds=5))[:19])
    assert next(n for n in listed if n["role"] == "hub")["last_op_at"] is None
