"""Season passes (kind 2) and single tickets (kind 3) at a theatre gate (S9, issue 14).

A real subscription sale on the sample theatre (`sell_subscription`), its cards issued with the
hub's key (`issue_subscription_cards`), a gate folder provisioned from the hub and synced, and the
gate's own `Access` deciding at chosen moments around the ring's performances. Entries are real
signed records in the gate's SQLite; a peer gate's record arrives through the same
`accept_entry_record` the LAN exchange calls."""

from __future__ import annotations

import datetime as dt

import pytest

from core.base.clock import LOCAL_TZ, parse_iso, utcnow
from core.base.node import NODE_DB, this_node
from core.base.storage import connect
from core.cards import cards
from core.cards.access import MESSAGES, Access, GateRules
from core.subscriptions.passes import issue_subscription_cards
from core.subscriptions.sale import sell_subscription
from edge.node_data import gate_rules, write_gate_rules
from tests.cardkit import make_kit
from tests.test_subscription_sale import GENERAL, house, sale, seat

NEW_REASONS = ("WRONG_PERFORMANCE", "TOO_EARLY", "TOO_LATE", "ALREADY_ENTERED")


class Theatre:
    """A sold Abo-Ring A subscription (form both: a pass and a ticket per date), a gate folder
    synced from the hub, and the venues of the sample theatre."""

    def __init__(self, hub, tmp_path):
        self.hub, db = hub, hub.db
        signer = cards.load_signer(db, hub.dir)
        self.signer = signer
        parkett = seat(db, house(hub), "Parkett", "5", "7")
        product = hub.ids["subscriptions"]["Abo-Ring A"]
        sold = sell_subscription(db, this_node(db), sale(product, hub.ids["first_customer"], form="both",
                                                         seat_ids=[parkett["id"]], holder_name="Greta Wolf"),
                                 channel="phone", now=GENERAL)
        issued = issue_subscription_cards(db, signer, sold["id"], utcnow())
        self.the_pass = next(c for c in issued if c["kind"] == "subscription")
        self.tickets = {c["product_id"]: c for c in issued if c["kind"] == "single"}
        later = utcnow() + dt.timedelta(days=2)  # dates after today: entries recorded later than the sale
        self.dates = [p for p in hub.ids["rings"]["A"] if self.starts(p) > later]
        self.house = self.venue_of(self.dates[0])
        self.studio = db.execute("SELECT id FROM venues WHERE name = 'Studio'").fetchone()["id"]
        self.kit = make_kit(hub, tmp_path)
        self.kit.sync()

    def starts(self, performance_id: str) -> dt.datetime:
        return parse_iso(self.hub.db.execute("SELECT starts_at FROM performances WHERE id = ?",
                                             (performance_id,)).fetchone()["starts_at"])

    def venue_of(self, performance_id: str) -> str:
        return self.hub.db.execute("SELECT venue_id FROM performances WHERE id = ?",
                                   (performance_id,)).fetchone()["venue_id"]

    def gate(self, venue: str | None = None, gate_dir=None, **rules) -> Access:
        gate_dir = gate_dir or self.kit.gate_dir
        db = connect(gate_dir / NODE_DB, edge=True)
        return Access(db, GateRules(venue_id=venue or self.house, **rules), signer=cards.load_signer(db, gate_dir))


def enter(gate: Access, code: str, at: dt.datetime) -> tuple[str, str | None]:
    """Decide at *at* and, if admitted, record the entry as the gate loop does."""
    result = gate.decide(code, at)
    return result.reason, gate.record_entry(result, at) if result.admitted else None


@pytest.fixture
def theatre(sample_hub, tmp_path) -> Theatre:
    return Theatre(sample_hub, tmp_path)


def test_a_single_ticket_is_admitted_once_at_its_performance_and_refused_a_second_time(theatre):
    date = theatre.dates[0]
    ticket, begin = theatre.tickets[date]["code"], theatre.starts(date)
    gate = theatre.gate()
    assert enter(gate, ticket, begin - dt.timedelta(minutes=20))[0] == "ADMITTED"
    again = gate.decide(ticket, begin + dt.timedelta(minutes=50))  # after the 30 min lockout
    assert again.reason == "ALREADY_ENTERED" and not again.admitted
    assert (again.message_de, again.message_en) == MESSAGES["ALREADY_ENTERED"]
    assert gate.decide(ticket, begin - dt.timedelta(minutes=19)).reason == "ALREADY_ENTERED"  # inside the lockout too


def test_a_single_ticket_is_refused_at_another_venue_too_early_and_too_late(theatre):
    date = theatre.dates[0]
    ticket, begin = theatre.tickets[date]["code"], theatre.starts(date)
    studio = theatre.gate(theatre.studio).decide(ticket, begin)
    assert studio.reason == "WRONG_PERFORMANCE"
    assert studio.message_de == "Keine Vorstellung dieser Karte hier und jetzt"
    assert studio.message_en == "No performance of this card here now"
    narrow = theatre.gate(entry_before_minutes=45, entry_after_minutes=15)
    early = narrow.decide(ticket, begin - dt.timedelta(minutes=90))  # inside the signed 2 h, not the gate's 45 min
    assert (early.reason, early.message_de, early.message_en) == ("TOO_EARLY", *MESSAGES["TOO_EARLY"])
    late = narrow.decide(ticket, begin + dt.timedelta(minutes=30))
    assert (late.reason, late.message_de, late.message_en) == ("TOO_LATE", *MESSAGES["TOO_LATE"])
    assert narrow.decide(ticket, begin - dt.timedelta(minutes=44)).admitted
    # the signed validity stays the outer bound: a wider gate window does not stretch a ticket
    wide = theatre.gate(entry_before_minutes=300, entry_after_minutes=300)
    assert wide.decide(ticket, begin - dt.timedelta(hours=3)).reason == "NOT_YET_VALID"
    assert wide.decide(ticket, begin + dt.timedelta(hours=2)).reason == "EXPIRED"
    # another performance's ticket at this one's time: outside its own signed window
    other = theatre.tickets[theatre.dates[1]]["code"]
    assert theatre.gate().decide(other, begin).reason == "NOT_YET_VALID"


def test_a_season_pass_enters_once_per_listed_performance(theatre):
    first, second = theatre.dates[0], theatre.dates[1]
    the_pass, gate = theatre.the_pass["code"], theatre.gate()
    result = gate.decide(the_pass, theatre.starts(first) - dt.timedelta(minutes=30))
    assert result.admitted and result.extra["performance_id"] == first and result.holder == "Greta Wolf"
    gate.record_entry(result, theatre.starts(first) - dt.timedelta(minutes=30))
    assert gate.decide(the_pass, theatre.starts(first) + dt.timedelta(minutes=40)).reason == "ALREADY_ENTERED"
    assert enter(gate, the_pass, theatre.starts(second) - dt.timedelta(minutes=10))[0] == "ADMITTED"
    assert gate.decide(the_pass, theatre.starts(second) + dt.timedelta(minutes=59)).reason == "ALREADY_ENTERED"


def test_a_season_pass_is_refused_at_another_venue_too_early_too_late_and_on_a_day_without_its_performance(
        theatre):
    date = theatre.dates[0]
    the_pass, begin = theatre.the_pass["code"], theatre.starts(date)
    assert theatre.gate(theatre.studio).decide(the_pass, begin).reason == "WRONG_PERFORMANCE"
    gate = theatre.gate()
    morning = dt.datetime.combine(begin.astimezone(LOCAL_TZ).date(), dt.time(10), LOCAL_TZ)
    assert gate.decide(the_pass, morning).reason == "TOO_EARLY"
    night = dt.datetime.combine(begin.astimezone(LOCAL_TZ).date(), dt.time(23, 30), LOCAL_TZ)
    assert gate.decide(the_pass, night).reason == "TOO_LATE"
    assert gate.decide(the_pass, begin + dt.timedelta(days=1)).reason == "WRONG_PERFORMANCE"
    # the gate's window: a pass 100 minutes before the start is early at a 60-minute gate
    narrow = theatre.gate(entry_before_minutes=60)
    assert narrow.decide(the_pass, begin - dt.timedelta(minutes=100)).reason == "TOO_EARLY"
    assert gate.decide(the_pass, begin - dt.timedelta(minutes=100)).admitted


def test_an_entry_recorded_at_a_peer_gate_counts_for_already_entered(theatre, tmp_path):
    """Gate 2 admits the pass and the ticket; gate 1 receives gate 2's signed records as the LAN
    exchange delivers them (`accept_entry_record`) and refuses both, whatever its lockout."""
    date = theatre.dates[0]
    begin, ticket, the_pass = theatre.starts(date), theatre.tickets[date]["code"], theatre.the_pass["code"]
    peer_kit = make_kit(theatre.hub, tmp_path, "gate-2")
    peer_kit.sync()
    theatre.kit.sync()  # gate 1 knows gate 2's certificate from the hub
    peer = theatre.gate(gate_dir=peer_kit.gate_dir)
    records = [enter(peer, code, begin - dt.timedelta(minutes=15))[1] for code in (ticket, the_pass)]
    gate = theatre.gate(lockout_minutes=0)
    at = begin + dt.timedelta(minutes=5)
    assert gate.decide(ticket, at).admitted and gate.decide(the_pass, at).admitted  # nothing heard yet
    assert all(gate.accept_entry_record(record) for record in records)
    assert gate.decide(ticket, at).reason == "ALREADY_ENTERED"
    assert gate.decide(the_pass, at).reason == "ALREADY_ENTERED"
    assert enter(gate, the_pass, theatre.starts(theatre.dates[1]))[0] == "ADMITTED"  # the next date is its own


def test_an_exit_scan_lets_a_pass_back_in_to_the_same_performance_only_with_exit_scans_on(theatre):
    """The interval: with `exit_scans` an exit at the door reopens this performance for the pass."""
    date = theatre.dates[0]
    the_pass, begin = theatre.the_pass["code"], theatre.starts(date)
    with_exits, without = theatre.gate(exit_scans=True), theatre.gate()
    assert enter(with_exits, the_pass, begin - dt.timedelta(minutes=10))[0] == "ADMITTED"
    assert with_exits.decide(the_pass, begin + dt.timedelta(minutes=30)).reason == "ALREADY_ENTERED"
    exit_gate = theatre.gate(direction="out")  # an exit gate at the same door, same data folder
    assert enter(exit_gate, the_pass, begin + dt.timedelta(minutes=41))[0] == "ADMITTED"
    assert with_exits.decide(the_pass, begin + dt.timedelta(minutes=45)).admitted
    assert without.decide(the_pass, begin + dt.timedelta(minutes=45)).reason == "ALREADY_ENTERED"


def test_the_entry_window_comes_from_gate_toml_and_a_bad_value_is_refused(theatre):
    gate_dir = theatre.kit.gate_dir
    write_gate_rules(gate_dir, GateRules(venue_id=theatre.house, entry_before_minutes=30, entry_after_minutes=10))
    rules = gate_rules(gate_dir)
    assert (rules.entry_before_minutes, rules.entry_after_minutes) == (30, 10)
    db = connect(gate_dir / NODE_DB, edge=True)
    gate = Access(db, rules)
    date = theatre.dates[0]
    ticket, begin = theatre.tickets[date]["code"], theatre.starts(date)
    assert gate.decide(ticket, begin - dt.timedelta(minutes=31)).reason == "TOO_EARLY"
    assert gate.decide(ticket, begin - dt.timedelta(minutes=29)).admitted
    assert gate.decide(ticket, begin + dt.timedelta(minutes=11)).reason == "TOO_LATE"
    before = (gate_dir / "gate.toml").read_text()
    (gate_dir / "gate.toml").write_text(before.replace("entry_after_minutes = 10", "entry_after_minutes = -5"))
    with pytest.raises(ValueError, match="entry_after_minutes must be between 0 and 1440"):
        gate_rules(gate_dir)
    assert GateRules().entry_before_minutes == 120 and GateRules().entry_after_minutes == 60


def test_a_revoked_pass_and_ticket_are_refused_after_sync(theatre):
    date = theatre.dates[0]
    begin, gate = theatre.starts(date), theatre.gate()
    for card in (theatre.the_pass, theatre.tickets[date]):
        assert gate.decide(card["code"], begin).admitted
        cards.revoke_card(theatre.hub.db, theatre.signer, card["id"], "subscription cancelled", utcnow())
    theatre.kit.sync()
    gate.refresh(force=True)
    for card in (theatre.the_pass, theatre.tickets[date]):
        refused = gate.decide(card["code"], begin)
        assert (refused.reason, refused.message_de, refused.message_en) == ("REVOKED", *MESSAGES["REVOKED"])


def test_each_new_refusal_has_a_german_and_an_english_message_and_is_in_the_docs_table():
    from pathlib import Path
    table = (Path(__file__).resolve().parents[1] / "docs" / "card-format.md").read_text()
    for reason in NEW_REASONS:
        de, en = MESSAGES[reason]
        assert de and en and de != en
        assert f"| `{reason}` |" in table and f"| {de} | {en} |" in table
