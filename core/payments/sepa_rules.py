"""The rules of the SEPA scheme that mandates, debits and the pain.008 export share, in one place:
IBAN and BIC checks (schwifty), the SEPA character set of references and names, the TARGET
calendar of collection dates, and which accounts need the debtor's address.

Why our own checks on top of the XSD: the ISO schema allows any text of 35 characters as a
mandate reference and any date as a collection date; the banks' EPC rules do not, and a file they
refuse comes back days later, after the pre-notification went out. We refuse it here instead.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import warnings

from core.base.errors import ValidationError
from core.catalog.common import check_creditor_id

# The EPC basic Latin character set (SEPA Core rulebook, Implementation Guidelines 1.4).
SEPA_TEXT = re.compile(r"^[A-Za-z0-9/\-?:().,'+ ]*$")
# Identifiers (mandate reference, end-to-end id): the same set without the space, never starting
# with '/' nor holding '//' (EPC rule for references).
SEPA_ID = re.compile(r"^[A-Za-z0-9/\-?:().,'+]{1,35}$")

# EEA: EU 27 and Iceland, Liechtenstein, Norway. A debtor account elsewhere in SEPA (CH, GB, SM,
# VA, MC, AD, GI, AL, ME, MD, MK, ...) needs the debtor's postal address in the debit.
EEA = frozenset({"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
                 "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"})
# Countries whose full official bank list schwifty carries (Germany: the Bundesbank's bank code
# file), so an IBAN with a bank code missing from it reaches no bank and no SEPA debit.
FULL_BANK_REGISTRY = frozenset({"DE"})

_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss",
                         "&": "+", "_": "-"})


def check_reference(value: str, field: str = "reference") -> str:
    """A mandate reference or end-to-end id: 1 to 35 characters of the SEPA set, no spaces, not
    starting with '/' nor holding '//'."""
    if not SEPA_ID.match(value) or value.startswith("/") or "//" in value:
        raise ValidationError(f"{value!r} is not a SEPA reference: 1 to 35 of A-Z a-z 0-9 / - ? : ( ) . , ' + "
                              "without spaces, not starting with '/' and without '//'", field=field,
                              detail_de=f"{value!r} ist keine SEPA-Referenz: 1 bis 35 Zeichen aus A-Z a-z 0-9 "
                              "/ - ? : ( ) . , ' + ohne Leerzeichen, nicht mit '/' beginnend und ohne '//'")
    return value


def sepa_text(value: str, limit: int) -> str:
    """Text a bank accepts in a name or remittance: German umlauts spelt out (Müller -> Mueller),
    other letters without their accents, what the SEPA set lacks dropped, at most *limit* chars."""
    from text_unidecode import unidecode  # sepaxml's own dependency: the same transliteration

    plain = unidecode(value.translate(_GERMAN))
    kept = "".join(ch if SEPA_TEXT.match(ch) else " " for ch in plain)
    return re.sub(r"\s+", " ", kept).strip()[:limit]


def check_iban(value: str, field: str = "iban") -> str:
    """The IBAN in its compact form, if it can take a SEPA core debit: ISO 13616 check digits,
    the national BBAN format and check digits where schwifty knows them, a SEPA country, and a
    known bank where the registry holds the country's full bank list."""
    from schwifty import IBAN
    from schwifty.exceptions import InvalidBBANChecksum, SchwiftyException

    text = re.sub(r"\s+", "", value or "").upper()
    try:
        with warnings.catch_warnings():  # a country without a national checksum: only the ISO check
            warnings.simplefilter("ignore")
            iban = IBAN(text, validate_bban=True)
    except InvalidBBANChecksum:
        raise ValidationError(f"IBAN {value!r}: the account number fails its bank's check digits",
                              field=field, detail_de=f"IBAN {value!r}: die Kontonummer besteht die Prüfziffern "
                              "ihrer Bank nicht") from None
    except SchwiftyException as exc:
        raise ValidationError(f"IBAN {value!r} is not valid: {exc}", field=field,
                              detail_de=f"IBAN {value!r} ist ungültig (Prüfziffern, Länge oder Zeichen)") from None
    if not iban.in_sepa_zone:
        raise ValidationError(f"IBAN {value!r} is from {iban.country_code}, outside the SEPA area: "
                              "it cannot be debited", field=field,
                              detail_de=f"IBAN {value!r} ist aus {iban.country_code}, außerhalb des SEPA-Raums: "
                              "keine Lastschrift möglich")
    if iban.country_code in FULL_BANK_REGISTRY and iban.bank is None:
        raise ValidationError(f"IBAN {value!r}: no bank has the bank code {iban.bank_code}", field=field,
                              detail_de=f"IBAN {value!r}: keine Bank hat die Bankleitzahl {iban.bank_code}")
    return str(iban.compact)


def check_bic(value: str | None, field: str = "bic") -> str | None:
    """An optional BIC (SEPA debits inside the EEA need none): format and a known country."""
    if value is None or not value.strip():
        return None
    from schwifty import BIC
    from schwifty.exceptions import SchwiftyException

    try:
        return str(BIC(value.strip().upper()).compact)
    except SchwiftyException as exc:
        raise ValidationError(f"BIC {value!r} is not valid: {exc}", field=field,
                              detail_de=f"BIC {value!r} ist ungültig") from None


def bank_of(iban: str) -> tuple[str, str]:
    """(country, bank code) of a checked IBAN: two IBANs at one bank share it."""
    from schwifty import IBAN

    parsed = IBAN(iban, allow_invalid=True)
    return parsed.country_code, parsed.bank_code or ""


def needs_address(iban: str) -> bool:
    """A debtor account outside the EEA (still in SEPA) needs the debtor's postal address."""
    return iban[:2] not in EEA


def check_creditor(creditor_id: str | None) -> str:
    if not creditor_id:
        raise ValidationError("the organizer has no SEPA creditor identifier", field="sepa_creditor_id",
                              detail_de="Der Veranstalter hat keine Gläubiger-ID")
    check_creditor_id(creditor_id)
    return creditor_id.replace(" ", "").upper()


# --- TARGET calendar ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _closed(year: int) -> frozenset[dt.date]:
    import holidays

    return frozenset(holidays.financial_holidays("XECB", years=year))


def is_target_day(day: dt.date) -> bool:
    """TARGET2 is open Monday to Friday except 1 January, Good Friday, Easter Monday, 1 May,
    25 and 26 December (the ECB calendar of the `holidays` package)."""
    return day.weekday() < 5 and day not in _closed(day.year)


def next_target_day(day: dt.date) -> dt.date:
    """*day* itself if TARGET is open, else the next day it is."""
    while not is_target_day(day):
        day += dt.timedelta(days=1)
    return day


def add_target_days(day: dt.date, count: int) -> dt.date:
    """The *count*-th TARGET day after *day*."""
    for _ in range(count):
        day = next_target_day(day + dt.timedelta(days=1))
    return day


def earliest_collection(today: dt.date) -> dt.date:
    """CORE debits reach the debtor's bank one TARGET day before collection (D-1): a file handed
    over today collects on the next TARGET day at the earliest (handed over on a closing day, it
    counts from the next TARGET day)."""
    return add_target_days(next_target_day(today), 1)
