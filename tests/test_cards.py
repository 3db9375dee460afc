"""Signed cards and entry decisions: every reason code, and every way a code can be broken.

A card is issued by the sample hub (signed with its node key), the gate folder is set up
from the hub like a real gate, and `Access` decides exactly as the gate loop does.
"""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.base.clock import LOCAL_TZ, day_end, iso, utcnow
from core.base.storage import transaction
from core.cards import cardcode, cards, keys
from core.cards.access import MESSAGES, REASONS
from core.cards.trust import BadRecord, TrustStore, sign
from core.catalog.annual import add_months
from hub.services import nodes, provisioning
from tests.cardkit import KUNSTHALLE, STADTMUSEUM, make_kit, prepared_kits


@pytest.fixture
def kit(request, tmp_path, backend):
    return prepared_kits(request, tmp_path, backend, "gate-1")[0]


def test_code_is_100_bytes_in_32_symbols_without_IOYZ(kit):
    code = kit.issue()["code"]
    assert len(cardcode.decode_text(code)) == cardcode.LENGTH == 100
    assert len(code) == 160
    assert set(code) <= set(cardcode.ALPHABET)
    assert not set(code) & set("IOYZ")
    assert cardcode.decode(code.lower()).raw == cardcode.decode(code).raw  # case-insensitive


def test_card_code_carries_no_personal_data(kit):
    card = kit.issue(holder="Zacharias Ypsilon-Müller")
    raw = cardcode.decode(card["code"]).raw
    assert b"Zacharias" not in raw and "Müller".encode() not in raw
    assert cardcode.decode(card["code"]).payload.card_id == card["id"]


def test_a_valid_card_is_admitted_with_what_staff_should_see(kit):
    card = kit.issue(0, holder="Erika Mustermann")
    kit.sync()
    result = kit.access().decide(card["code"])
    assert result.admitted and result.reason == "ADMITTED"
    assert result.holder == "Erika Mustermann"
    assert result.product == "Jahreskarte Verbund"
    assert result.card_number == card["number"]
    assert result.valid_until >= iso(utcnow() + dt.timedelta(days=360))
    assert (result.message_de, result.message_en) == MESSAGES["ADMITTED"]


def test_a_card_sold_elsewhere_and_not_synced_yet_is_admitted_without_a_name(kit):
    card = kit.issue(0)  # the gate has not seen this card's record: the signature is enough
    result = kit.access().decide(card["code"])
    assert result.admitted and result.holder is None


def test_every_reason_has_a_german_and_an_english_message():
    for reason in REASONS:
        de, en = MESSAGES[reason]
        assert de and en and de != en


# -- broken codes ------------------------------------------------------------------------------

def expected_reason_for_changed_byte(offset: int) -> set[str]:
    if offset == 0:
        return {"MALFORMED"}  # version
    if 1 <= offset < 5:
        return {"UNKNOWN_SIGNER", "FORGED"}  # key id: no such signer, or by chance another one
    return {"FORGED"}  # any signed field or the signature itself


def test_every_single_byte_change_is_denied_with_the_right_reason(kit):
    card = kit.issue(0)
    access = kit.access()
    raw = cardcode.decode(card["code"]).raw
    for offset in range(len(raw)):
        for flip in (0x01, 0x80, 0xFF):
            changed = bytearray(raw)
            changed[offset] ^= flip
            result = access.decide(cardcode.encode_text(bytes(changed)))
            assert not result.admitted
            assert result.reason in expected_reason_for_changed_byte(offset), (offset, flip, result.reason)


def test_truncated_and_extended_codes_are_malformed(kit):
    code = kit.issue(0)["code"]
    access = kit.access()
    for text in (code[:-1], code[:-8], code[:80], code + "0", code + "00000000", "", code[1:]):
        assert access.decide(text).reason == "MALFORMED", len(text)
    raw = cardcode.decode(code).raw
    for data in (raw[:-5], raw + bytes(5)):
        assert access.decide(cardcode.encode_text(data)).reason == "MALFORMED"


def test_symbols_outside_the_alphabet_are_malformed(kit):
    code = kit.issue(0)["code"]
    access = kit.access()
    for bad in ("I", "O", "Y", "Z", "-", "ä", " x"):
        assert access.decide(code[:50] + bad + code[50 + len(bad):]).reason == "MALFORMED", bad


def test_a_valid_card_signed_by_an_unknown_key_is_unknown_signer(kit):
    stranger = cards.NodeSigner("00000000-0000-7000-8000-000000000000", "hub", 12345, keys.generate())
    stranger = cards.NodeSigner(stranger.node_id, "hub", keys.key_id(keys.public_bytes(stranger.private)),
                                stranger.private)
    now = utcnow()
    code = cards.sign_card(stranger, card_id=cards.uuid7(), code=1, kind="annual", valid_from=now,
                           valid_until=now + dt.timedelta(days=30), issue=1)
    assert kit.access().decide(code).reason == "UNKNOWN_SIGNER"


def test_a_card_claiming_a_known_key_id_but_signed_by_another_key_is_forged(kit):
    thief = cards.NodeSigner(kit.signer.node_id, "hub", kit.signer.key_id, keys.generate())
    now = utcnow()
    code = cards.sign_card(thief, card_id=cards.uuid7(), code=1, kind="annual", valid_from=now,
                           valid_until=now + dt.timedelta(days=365), issue=1)
    assert kit.access().decide(code).reason == "FORGED"


def test_a_gate_key_cannot_issue_cards(kit):
    gate_signer = cards.load_signer(kit.access().db, kit.gate_dir)
    now = utcnow()
    code = cards.sign_card(gate_signer, card_id=cards.uuid7(), code=1, kind="annual", valid_from=now,
                           valid_until=now + dt.timedelta(days=365), issue=1)
    result = kit.access().decide(code)
    assert result.reason == "UNKNOWN_SIGNER" and "gate" in result.detail


# -- revocation, re-issue, rotation ---------------------------------------------------------------

def test_revoked_card_is_refused_once_synced(kit):
    card = kit.issue(0)
    cards.revoke_card(kit.hub.db, kit.signer, card["id"], "chargeback", utcnow())
    access = kit.access()
    assert access.decide(card["code"]).admitted  # the gate has not heard yet
    kit.sync()
    access.refresh(force=True)
    result = access.decide(card["code"])
    assert result.reason == "REVOKED" and result.detail == "chargeback"


def test_a_reissued_card_supersedes_the_old_code(kit):
    card = kit.issue(0)
    new = cards.reissue_card(kit.hub.db, kit.signer, card["id"], utcnow())
    assert new["issue"] == 2 and new["number"] == card["number"] and new["code"] != card["code"]
    kit.sync()
    access = kit.access()
    old = access.decide(card["code"])
    assert old.reason == "SUPERSEDED" and "issue 1 replaced by issue 2" in old.detail
    assert access.decide(new["code"]).admitted


def test_a_revoked_signer_keeps_its_earlier_cards_but_not_later_ones(kit, tmp_path):
    desk_dir = tmp_path / "desk"
    provisioning.provision(desk_dir, kit.hub.dir, name="Kasse 1", role="cashdesk")
    from core.base.node import NODE_DB
    from core.base.storage import connect
    desk_db = connect(desk_dir / NODE_DB, edge=True)
    desk = cards.load_signer(desk_db, desk_dir)
    before = utcnow() - dt.timedelta(hours=2)
    after = utcnow() + dt.timedelta(minutes=1)
    early = cards.issue_card(desk_db, desk, product_id=kit.product(0), kind="annual", now=before)
    unsynced = cards.issue_card(desk_db, desk, product_id=kit.product(0), kind="annual", now=before)
    # the desk's sync brought the early card to the hub before the revocation (a push does this)
    with transaction(kit.hub.db):
        cards.apply_issued(kit.hub.db, desk.node_id, TrustStore.load(kit.hub.db), cards.card_op(early), before)
    nodes.revoke_node(kit.hub.db, nodes.root_key(kit.hub.dir), desk.node_id, reason="compromised",
                      revoked_at=utcnow() - dt.timedelta(hours=1))
    late = cards.issue_card(desk_db, desk, product_id=kit.product(0), kind="annual", now=after)
    kit.sync()
    access = kit.access()
    assert access.decide(early["code"]).admitted
    # signed before the revocation by its id, but never on record: the thief's back-dating
    assert access.decide(unsynced["code"]).reason == "SIGNER_REVOKED"
    result = access.decide(late["code"])
    assert result.reason == "SIGNER_REVOKED" and "compromised" in result.detail
    # the desk's entry in the outbox: both sales are queued for the hub
    assert [r["kind"] for r in desk_db.execute("SELECT kind FROM outbox ORDER BY node_seq")] == ["card.issued"] * 3


def test_key_rotation_keeps_cards_under_the_old_key_valid(kit):
    old_card = kit.issue(0)
    old_key = kit.signer.key_id
    new_key = nodes.rotate_hub_key(kit.hub.dir, kit.hub.db)
    assert new_key != old_key
    signer = cards.load_signer(kit.hub.db, kit.hub.dir)
    new_card = cards.issue_card(kit.hub.db, signer, product_id=kit.product(0), kind="annual",
                                now=utcnow() + dt.timedelta(seconds=2))
    assert cardcode.decode(new_card["code"]).payload.key_id == new_key
    kit.sync()
    access = kit.access()
    assert access.decide(old_card["code"]).admitted
    assert access.decide(new_card["code"]).admitted
    # the retired key may not sign anything new
    late = cards.issue_card(kit.hub.db, kit.signer, product_id=kit.product(0), kind="annual",
                            now=utcnow() + dt.timedelta(minutes=5))
    assert access.decide(late["code"]).reason == "SIGNER_REVOKED"


def test_a_tampered_certificate_row_is_no_certificate(kit):
    """Someone with write access to a gate's database cannot make it trust a key."""
    card = kit.issue(0)
    access = kit.access()
    assert access.decide(card["code"]).admitted
    row = access.db.execute("SELECT key_id, record FROM node_certs WHERE role = 'hub'").fetchone()
    longer = row["record"].replace("valid_until", "valid_untiI", 1)
    access.db.execute("UPDATE node_certs SET record = ? WHERE key_id = ?", (longer, row["key_id"]))
    access.refresh(force=True)
    assert access.decide(card["code"]).reason == "UNKNOWN_SIGNER"
    access.db.execute("UPDATE node_certs SET record = 'not json' WHERE key_id = ?", (row["key_id"],))
    access.refresh(force=True)
    assert access.decide(card["code"]).reason == "UNKNOWN_SIGNER"


# -- validity, venues, passback -------------------------------------------------------------------

def test_not_yet_valid_and_expired(kit):
    access = kit.access()
    calendar_2027 = kit.issue(3)
    result = access.decide(calendar_2027["code"], now=dt.datetime(2026, 12, 31, 22, 59, tzinfo=dt.UTC))
    assert result.reason == "NOT_YET_VALID"
    assert access.decide(calendar_2027["code"], now=dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC)).admitted
    assert access.decide(calendar_2027["code"], now=dt.datetime(2027, 12, 31, 22, 59, tzinfo=dt.UTC)).admitted
    assert access.decide(calendar_2027["code"], now=dt.datetime(2027, 12, 31, 23, 0, tzinfo=dt.UTC)).reason == "EXPIRED"


def test_only_at_admitted_venues(kit):
    stadtmuseum_only = kit.issue(1)
    assert kit.access(STADTMUSEUM).decide(stadtmuseum_only["code"]).admitted
    result = kit.access(KUNSTHALLE).decide(stadtmuseum_only["code"])
    assert result.reason == "WRONG_VENUE" and "Jahreskarte Stadtmuseum" in result.detail


def test_a_voucher_does_not_open_a_gate(kit):
    voucher = kit.issue(0, kind="voucher")
    result = kit.access().decide(voucher["code"])
    assert result.reason == "WRONG_VENUE" and "counter" in result.detail


def test_passback_within_the_lockout_at_any_gate_of_the_venue(kit):
    card = kit.issue(0)
    access = kit.access(lockout_minutes=30)
    t0 = utcnow()
    first = access.decide(card["code"], t0)
    access.record_entry(first, t0)
    again = access.decide(card["code"], t0 + dt.timedelta(minutes=29))
    assert again.reason == "PASSBACK" and "lockout 30 min" in again.detail
    assert access.decide(card["code"], t0 + dt.timedelta(minutes=31)).admitted
    # another venue is another door
    assert kit.access(KUNSTHALLE, lockout_minutes=30).decide(card["code"], t0 + dt.timedelta(minutes=1)).admitted


def test_an_exit_scan_ends_the_lockout_when_exit_scans_are_on(kit):
    card = kit.issue(0)
    entry = kit.access(exit_scans=True)
    exit_gate = kit.access(exit_scans=True, direction="out")
    t0 = utcnow()
    entry.record_entry(entry.decide(card["code"], t0), t0)
    assert entry.decide(card["code"], t0 + dt.timedelta(minutes=5)).reason == "PASSBACK"
    t1 = t0 + dt.timedelta(minutes=6)
    out = exit_gate.decide(card["code"], t1)
    assert out.admitted and out.detail == "exit"
    exit_gate.record_entry(out, t1)
    assert entry.decide(card["code"], t0 + dt.timedelta(minutes=7)).admitted
    no_exits = kit.access(exit_scans=False)
    assert no_exits.decide(card["code"], t0 + dt.timedelta(minutes=7)).reason == "PASSBACK"


def test_months_from_first_entry_start_at_the_first_entry_anywhere(kit):
    sold = utcnow()
    card = kit.issue(1, now=sold)  # Jahreskarte Stadtmuseum: 12 months from the first entry
    access = kit.access()
    first_scan = sold + dt.timedelta(days=83)
    first = access.decide(card["code"], first_scan)
    assert first.admitted and first.first_entry
    access.record_entry(first, first_scan)
    last_day = add_months(first_scan.astimezone(LOCAL_TZ).date(), 12) - dt.timedelta(days=1)
    later = access.decide(card["code"], day_end(last_day) - dt.timedelta(minutes=1))
    assert later.admitted and not later.first_entry and later.valid_until == iso(day_end(last_day))
    assert access.decide(card["code"], day_end(last_day) + dt.timedelta(seconds=1)).reason == "EXPIRED"


def test_an_unused_first_entry_card_expires_after_the_activation_period(kit):
    sold = utcnow()
    card = kit.issue(1, now=sold)
    assert kit.access().decide(card["code"], sold + dt.timedelta(days=367 * 2)).reason == "EXPIRED"


# -- entry records from peers -------------------------------------------------------------------

def test_entry_records_from_enrolled_gates_only(kit, tmp_path):
    card = kit.issue(0)
    other = make_kit(kit.hub, tmp_path, "gate-2").access()
    gate1 = kit.access()
    gate1.refresh(force=True)
    now = utcnow()
    verdict, record = other.admit(card["code"])
    assert verdict.admitted and record
    kit.sync()  # gate 1 learns gate 2's certificate (LAN peers also relay it)
    gate1.refresh(force=True)
    assert gate1.accept_entry_record(record) is True
    assert gate1.accept_entry_record(record) is False  # a duplicate changes nothing
    assert gate1.decide(card["code"], now + dt.timedelta(seconds=1)).reason == "PASSBACK"
    stranger = keys.generate()  # not enrolled
    body = {"v": 1, "id": cards.uuid7(), "card_id": card["id"], "card_issue": 1,
            "venue_id": kit.venues[STADTMUSEUM], "node_id": "n", "direction": "in", "at": iso(now)}
    with pytest.raises(BadRecord, match="unknown key"):
        gate1.accept_entry_record(sign(stranger, "entry", body))
    with pytest.raises(BadRecord, match="signature"):
        gate1.accept_entry_record(record.replace('\\"in\\"', '\\"out\\"'))
    for junk in ("", "{}", "[]", '{"p":"entry","k":1,"b":"{}","s":"00"}', "\x00" * 10):
        with pytest.raises(BadRecord):
            gate1.accept_entry_record(junk)


# -- never an exception ---------------------------------------------------------------------------

@pytest.mark.slow  # property-based, about 6 s
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=300), st.text(alphabet=cardcode.ALPHABET + "iozy", min_size=150,
                                                     max_size=170)))
def test_random_strings_always_get_a_verdict(kit, text):
    result = kit.access().decide(text)
    assert result.reason in REASONS and not result.admitted


def test_key_files_are_private(kit):
    for path in (kit.hub.dir / keys.ROOT_KEY_FILE, kit.hub.dir / keys.NODE_KEY_FILE, kit.gate_dir / keys.NODE_KEY_FILE):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert not (kit.gate_dir / keys.ROOT_KEY_FILE).exists()
    root_pem = (kit.hub.dir / keys.ROOT_KEY_FILE).read_bytes()
    for file in kit.gate_dir.iterdir():
        assert root_pem not in file.read_bytes()


def test_subscription_passes_and_single_tickets_open_the_theatre_not_the_museum(kit):
    from core.base.node import NODE_DB
    from core.base.storage import connect
    from core.cards.access import Access, GateRules
    ring = kit.hub.ids["subscriptions"][next(iter(kit.hub.ids["subscriptions"]))]
    performance = kit.hub.db.execute("SELECT p.id, p.venue_id, p.starts_at FROM subscription_performances sp "
                                     "JOIN performances p ON p.id = sp.performance_id WHERE sp.product_id = ? "
                                     "ORDER BY p.starts_at LIMIT 1", (ring,)).fetchone()
    now = utcnow()
    season_pass = cards.issue_card(kit.hub.db, kit.signer, product_id=ring, kind="subscription", now=now)
    ticket = cards.issue_card(kit.hub.db, kit.signer, product_id=performance["id"], kind="single", now=now)
    kit.sync()
    db = connect(kit.gate_dir / NODE_DB, edge=True)
    theatre = Access(db, GateRules(venue_id=performance["venue_id"]))
    starts = dt.datetime.fromisoformat(performance["starts_at"].replace("Z", "+00:00"))
    assert theatre.decide(season_pass["code"], starts).admitted
    assert theatre.decide(ticket["code"], starts - dt.timedelta(minutes=30)).admitted
    assert theatre.decide(ticket["code"], starts - dt.timedelta(days=1)).reason == "NOT_YET_VALID"
    assert theatre.decide(ticket["code"], starts + dt.timedelta(days=1)).reason == "EXPIRED"
    museum = kit.access(STADTMUSEUM)
    # issue 14: a pass or ticket at another venue's gate is refused as WRONG_PERFORMANCE (S9 at the gate)
    assert museum.decide(season_pass["code"], starts).reason == "WRONG_PERFORMANCE"


def test_a_rotated_gate_key_keeps_its_old_entry_records_valid(kit, tmp_path):
    """Entry records signed before a gate's key rotation still count at its peers."""
    from core.base.storage import connect
    other = make_kit(kit.hub, tmp_path, "gate-2")
    card = kit.issue(0)
    t0 = utcnow()
    old_record = kit.access().record_entry(kit.access().decide(card["code"], t0), t0)
    old_key = cards.load_signer(connect(kit.gate_dir / "node.sqlite", edge=True), kit.gate_dir).key_id
    new_key = provisioning.rotate_key(kit.gate_dir, kit.hub.dir)
    assert new_key != old_key and not (kit.gate_dir / "node.key.new").exists()
    access = kit.access()
    assert access.signer.key_id == new_key
    second = kit.issue(0)
    new_record = access.record_entry(access.decide(second["code"]), utcnow())
    other.sync()
    peer = other.access()
    assert peer.accept_entry_record(old_record) and peer.accept_entry_record(new_record)
