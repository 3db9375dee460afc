"""Kassenzeichen: the payment reference a municipal treasury (Stadtkasse) books a transfer by.

Each organizer configures a pattern (`organizer_invoicing.kassenzeichen_pattern`): fixed text
and two placeholders, `{year}` (the invoice's year) and `{seq}` (a running number per organizer
and year, optionally zero-padded: `{seq:06d}`). Examples: `{year}-{seq:06d}` -> `2026-000001`;
a treasury's fixed prefix `5.1100.{seq:07d}` -> `5.1100.0000001`.

The pattern is parsed by our own small grammar, never handed to `str.format` (a pattern is
input: `{0.__class__}` must be an error, not an attribute walk). The fixed text keeps to
characters a bank transfer's reference field carries unchanged (letters, digits, `. - / space`),
so the reference a customer types arrives as it was printed and the bank import can match it.
The result is unique (a UNIQUE column on invoices) and taken in the invoice's transaction.
"""

from __future__ import annotations

import re
import sqlite3

from core.base.errors import ValidationError

MAX_LENGTH = 35  # the SEPA remittance reference a customer copies it into is 140, a treasury's field 35
_TOKEN = re.compile(r"\{(year|seq)(?::0?([1-9])d)?\}")
_FIXED = re.compile(r"^[A-Za-z0-9./\- ]*$")
DEFAULT_PATTERN = "{year}-{seq:06d}"


def _parts(pattern: str) -> list[tuple[str, str, int]]:
    """[(kind, text, width)]: kind 'text', 'year' or 'seq'; a bad pattern is a ValidationError."""
    parts, pos = [], 0
    for match in _TOKEN.finditer(pattern):
        parts.append(("text", pattern[pos:match.start()], 0))
        parts.append((match.group(1), "", int(match.group(2) or 0)))
        pos = match.end()
    parts.append(("text", pattern[pos:], 0))
    return parts


def check_pattern(pattern: str) -> str:
    """The pattern if it is one: exactly one `{seq}`, at most one `{year}`, fixed text from the
    transfer-safe characters, and a result of at most MAX_LENGTH characters."""
    parts = _parts(pattern)
    fixed = "".join(text for kind, text, _ in parts if kind == "text")
    kinds = [kind for kind, _, _ in parts if kind != "text"]
    problem = None
    if "{" in fixed or "}" in fixed:
        problem = "placeholders are {year} and {seq} (optionally {seq:06d}); no other braces"
    elif not _FIXED.fullmatch(fixed):
        problem = "fixed text may hold letters, digits, '.', '-', '/' and spaces only"
    elif kinds.count("seq") != 1 or kinds.count("year") > 1:
        problem = "the pattern needs exactly one {seq} and at most one {year}"
    elif len(render(pattern, 9999, 10**9 - 1)) > MAX_LENGTH:
        problem = f"a Kassenzeichen from this pattern could be longer than {MAX_LENGTH} characters"
    if problem:
        raise ValidationError(f"Kassenzeichen pattern {pattern!r}: {problem}", field="kassenzeichen_pattern",
                              detail_de=f"Muster für Kassenzeichen {pattern!r} ungültig: erlaubt sind Text aus "
                                        "Buchstaben, Ziffern, '.', '-', '/', Leerzeichen, genau ein {seq} "
                                        "(z. B. {seq:06d}) und höchstens ein {year}, zusammen höchstens "
                                        f"{MAX_LENGTH} Zeichen")
    return pattern


def render(pattern: str, year: int, seq: int) -> str:
    """The Kassenzeichen of *pattern* for *year* and running number *seq*."""
    out = []
    for kind, text, width in _parts(pattern):
        if kind == "text":
            out.append(text)
        else:
            value = year if kind == "year" else seq
            out.append(str(value).zfill(width))
    return "".join(out)


def next_kassenzeichen(db: sqlite3.Connection, pattern: str, year: int) -> str:
    """The next unused Kassenzeichen of *pattern*, inside the invoice's transaction.

    The running number belongs to the pattern (per year where it has `{year}`, else forever), so
    organizers sharing a pattern never collide; one that was already used (a pattern changed to
    one that makes the same strings) is skipped."""
    if not db.in_transaction:
        raise RuntimeError("next_kassenzeichen() must run inside the transaction of its invoice")
    series_year = year if "{year}" in pattern else 0
    db.execute("INSERT INTO kassenzeichen_series (pattern, year) VALUES (?, ?) ON CONFLICT (pattern, year) DO NOTHING",
               (pattern, series_year))
    for _ in range(10_000):
        seq = db.execute("UPDATE kassenzeichen_series SET last_value = last_value + 1 WHERE pattern = ? AND year = ? "
                         "RETURNING last_value", (pattern, series_year)).fetchone()["last_value"]
        reference = render(pattern, year, seq)
        if db.execute("SELECT 1 FROM invoices WHERE kassenzeichen = ?", (reference,)).fetchone() is None:
            return reference
    raise ValidationError(f"Kassenzeichen pattern {pattern!r} keeps making numbers already used; change it",
                          field="kassenzeichen_pattern",
                          detail_de=f"Das Muster {pattern!r} ergibt nur schon vergebene Kassenzeichen; bitte ändern")
