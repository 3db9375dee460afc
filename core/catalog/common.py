"""Field types and checks shared by every catalog entity."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from core.base.errors import ValidationError
from core.base.money import MAX_CENTS

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

Id = Annotated[str, Meta(pattern=UUID_PATTERN, description="UUID of another record")]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"\S")]
ShortText = Annotated[str, Meta(max_length=200)]
LongText = Annotated[str, Meta(max_length=5000)]
Cents = Annotated[int, Meta(ge=0, le=MAX_CENTS, description="amount in euro cents")]
Country = Annotated[str, Meta(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
VatCode = Literal["19", "7", "exempt"]
Channel = Literal["online", "cashdesk", "phone", "agency"]


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every API input: unknown fields are an error, never silently dropped."""


class Address(Body, kw_only=True):
    street: Annotated[str, Meta(min_length=1, max_length=200, pattern=r"\S")]
    postcode: Annotated[str, Meta(min_length=1, max_length=12, pattern=r"^[A-Za-z0-9 -]+$")]
    town: Name
    country: Country = "DE"


ADDRESS_FIELDS = ("street", "postcode", "town", "country")
_POSTCODE = {"DE": r"^\d{5}$", "AT": r"^\d{4}$", "CH": r"^\d{4}$", "NL": r"^\d{4} ?[A-Z]{2}$"}


def check_address(address: Address, field: str = "address") -> None:
    rule = _POSTCODE.get(address.country)
    if rule and not re.match(rule, address.postcode):
        raise ValidationError(
            f"postcode {address.postcode!r} is not valid for country {address.country}",
            field=f"{field}.postcode",
        )


FIRST_YEAR, LAST_YEAR = 1970, 2199


def check_when(value: dt.date | dt.datetime, field: str) -> None:
    """Dates and times must lie in years a box office can mean (and Python can convert)."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValidationError(f"{value.isoformat()} is out of range: use a date between "
                              f"{FIRST_YEAR} and {LAST_YEAR}", field=field)


def check_unique(values: list, field: str, what: str) -> None:
    seen: set = set()
    for value in values:
        if value in seen:
            raise ValidationError(f"{what} {value!r} is listed twice", field=field)
        seen.add(value)


def _iban_digits(text: str) -> int:
    return int("".join(str(int(ch, 36)) for ch in text))


def check_creditor_id(value: str, field: str = "sepa_creditor_id") -> None:
    """SEPA creditor identifier (e.g. DE98ZZZ09999999999): format and ISO 7064 check digits.

    The three characters after the check digits are a business code and are not part of
    the checksum.
    """
    text = value.replace(" ", "").upper()
    if not re.match(r"^[A-Z]{2}\d{2}[A-Z0-9]{3}[A-Z0-9]{1,28}$", text):
        raise ValidationError(f"{value!r} is not a SEPA creditor identifier", field=field)
    national = text[7:]
    if _iban_digits(national + text[:2] + text[2:4]) % 97 != 1:
        raise ValidationError(f"SEPA creditor identifier {value!r} has wrong check digits", field=field)


def check_vat_id(value: str, field: str = "vat_id") -> None:
    text = value.replace(" ", "").upper()
    rule = r"^DE\d{9}$" if text.startswith("DE") else r"^[A-Z]{2}[A-Z0-9]{2,12}$"
    if not re.match(rule, text):
        raise ValidationError(f"{value!r} is not a valid VAT identification number", field=field)
