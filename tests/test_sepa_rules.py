"""The SEPA scheme's rules that mandates, debits and the pain.008 export share
(core/payments/sepa_rules.py): which IBANs can be debited, the character set of references, the
creditor identifier's check digits, the TARGET calendar with D-1, and which debtor accounts need
an address."""

from __future__ import annotations

import datetime as dt

import pytest

from core.base.errors import ValidationError
from core.payments import sepa_rules

D = dt.date


# --- IBAN ------------------------------------------------------------------------------------------


def test_a_valid_iban_is_kept_compact_and_upper_case():
    assert sepa_rules.check_iban("de02 1203 0000 0000 2020 51") == "DE02120300000000202051"


@pytest.mark.parametrize(("iban", "says"), [
    ("DE02120300000000202052", "check"),  # ISO 13616 check digits wrong
    ("DE45120300001234567890", "bank's check digits"),  # IBAN digits right, DKB's account check fails
    ("DE44999999990532013000", "bank code"),  # no German bank has this code
    ("TR330006100519786457841326", "outside the SEPA area"),  # valid, but Turkey is no SEPA country
    ("DE0212030000000020205", "length"),
    ("DE02-1203-0000-0000-2020-51", "not valid"),
    ("", "not valid"),
])
def test_ibans_that_cannot_be_debited_are_refused_with_a_reason(iban, says):
    with pytest.raises(ValidationError) as err:
        sepa_rules.check_iban(iban)
    assert says in err.value.detail and err.value.field == "iban"


def test_a_bic_is_optional_but_checked_when_given():
    assert sepa_rules.check_bic(None) is None and sepa_rules.check_bic("  ") is None
    assert sepa_rules.check_bic("cobadeffxxx") == "COBADEFFXXX"
    with pytest.raises(ValidationError):
        sepa_rules.check_bic("NOTABIC")


# --- references and text ----------------------------------------------------------------------------


@pytest.mark.parametrize("reference", ["ABO-2026-0001", "K/1", "a?b:c(d).e,f'g+h", "X" * 35])
def test_mandate_references_in_the_sepa_set_are_accepted(reference):
    assert sepa_rules.check_reference(reference) == reference


@pytest.mark.parametrize("reference", ["", "X" * 36, "ABO 2026", "Müller-1", "A_B", "A&B", "/ABC", "AB//C",
                                       "A\nB", "A<B>"])
def test_mandate_references_outside_the_sepa_set_are_refused(reference):
    with pytest.raises(ValidationError) as err:
        sepa_rules.check_reference(reference)
    assert err.value.field == "reference"


def test_names_are_spelt_in_the_sepa_set_with_german_umlauts_written_out():
    assert sepa_rules.sepa_text("Jürgen Müller-Lüdenscheidt", 70) == "Juergen Mueller-Luedenscheidt"
    assert sepa_rules.sepa_text("Straße & Söhne", 70) == "Strasse + Soehne"
    assert sepa_rules.sepa_text("Zoë Łukasz <b>", 70) == "Zoe Lukasz b"
    assert sepa_rules.sepa_text("x" * 100, 70) == "x" * 70


# --- creditor identifier ---------------------------------------------------------------------------


def test_the_creditor_identifier_passes_its_mod_97_check():
    assert sepa_rules.check_creditor("DE98ZZZ09999999999") == "DE98ZZZ09999999999"
    assert sepa_rules.check_creditor("de98 zzz 09999999999") == "DE98ZZZ09999999999"


@pytest.mark.parametrize("creditor_id", ["DE97ZZZ09999999999", "DE98ZZZ09999999998", "98ZZZ09999999999", None, ""])
def test_a_wrong_creditor_identifier_is_refused(creditor_id):
    with pytest.raises(ValidationError):
        sepa_rules.check_creditor(creditor_id)


# --- TARGET calendar -------------------------------------------------------------------------------

# TARGET closing days, from the ECB's calendar (not from the library under test).
CLOSED = [D(2026, 1, 1), D(2026, 4, 3), D(2026, 4, 6), D(2026, 5, 1), D(2026, 12, 25), D(2026, 12, 26),
          D(2027, 1, 1), D(2027, 3, 26), D(2027, 3, 29), D(2027, 12, 25), D(2027, 12, 26),
          D(2028, 4, 14), D(2028, 4, 17), D(2028, 5, 1), D(2028, 12, 25), D(2028, 12, 26)]
OPEN = [D(2026, 1, 2), D(2026, 4, 2), D(2026, 4, 7), D(2026, 5, 4), D(2026, 10, 5), D(2026, 12, 24),
        D(2026, 12, 28), D(2026, 12, 31), D(2027, 5, 3), D(2027, 10, 4)]


@pytest.mark.parametrize("day", CLOSED)
def test_target_is_closed_on_its_holidays(day):
    assert not sepa_rules.is_target_day(day)


@pytest.mark.parametrize("day", OPEN)
def test_target_is_open_on_weekdays_that_are_national_holidays_only(day):
    assert sepa_rules.is_target_day(day)  # 3 October, Whit Monday, Christmas Eve: banks settle


def test_weekends_are_no_target_days():
    assert not sepa_rules.is_target_day(D(2026, 5, 2)) and not sepa_rules.is_target_day(D(2026, 5, 3))


def test_easter_moves_the_next_target_day_past_friday_and_monday():
    assert sepa_rules.next_target_day(D(2026, 4, 3)) == D(2026, 4, 7)
    assert sepa_rules.next_target_day(D(2026, 12, 25)) == D(2026, 12, 28)


@pytest.mark.parametrize(("today", "earliest"), [
    (D(2026, 5, 4), D(2026, 5, 5)),  # Monday: D-1 lets it collect on Tuesday
    (D(2026, 5, 8), D(2026, 5, 11)),  # Friday: next Monday
    (D(2026, 5, 9), D(2026, 5, 12)),  # Saturday: handed over Monday, collected Tuesday
    (D(2026, 4, 2), D(2026, 4, 7)),  # Maundy Thursday: past Good Friday and Easter Monday
    (D(2026, 4, 30), D(2026, 5, 4)),  # before 1 May (a Friday) and the weekend
    (D(2026, 12, 24), D(2026, 12, 28)),
    (D(2026, 12, 31), D(2027, 1, 4)),
])
def test_the_earliest_collection_is_one_target_day_after_the_file_d_minus_1(today, earliest):
    assert sepa_rules.earliest_collection(today) == earliest


# --- debtor address --------------------------------------------------------------------------------


@pytest.mark.parametrize(("iban", "needed"), [
    ("DE02120300000000202051", False), ("AT611904300234573201", False), ("NO9386011117947", False),
    ("CH9300762011623852957", True), ("GB29NWBK60161331926819", True), ("SM86U0322509800000000270100", True),
])
def test_only_debtor_accounts_outside_the_eea_need_an_address(iban, needed):
    assert sepa_rules.needs_address(iban) is needed
