"""The report registry (S14): each report is a fixed query, its typed columns and a default sort.

Why a registry: the API, the CLI and the office app show the same lists, sorted and filtered the
same way, and exported to CSV, XLSX and PDF by one set of writers (`hub/exporters/`). A report
is data here; the lists themselves are in `core/reports/lists.py`.

Why nothing from input reaches SQL: a report's query is written in code and wrapped as
`SELECT ... FROM (<query>) AS r`; a caller names columns to sort and filter by, and only names
from the report's own column list are accepted (an unknown name is a 422, never an
identifier). Filter values are always bound as parameters, converted by the column's type first
(money `12,50` -> 1250 cents, a date `01.10.2026` -> `2026-10-01`).

Personal data (GDPR): columns that name or reach a customer are marked `personal`. A caller
without the right to see customers gets the report without them, and may not sort or filter
by them either (that would reveal them one condition at a time). Reports whose every row is
one person's (`personal_report`) are refused to such callers as a whole (the API's 403).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from core.base import sql
from core.base.clock import day_end, day_start, iso
from core.base.errors import NotFound, ValidationError

Kind = Literal["text", "int", "money", "date", "datetime"]
Op = Literal["=", "~", ">=", "<="]
OPS: tuple[Op, ...] = (">=", "<=", "=", "~")  # longest first: `a>=1` is not `a` `>` `=1`
MAX_CONDITIONS = 10
MAX_VALUE = 200
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Column:
    """One column: its name in the query, its type (how it is filtered, written and aligned),
    its German and English heading, whether it is personal data, and a width in characters."""

    name: str
    kind: Kind
    de: str
    en: str
    personal: bool = False
    width: int = 14

    def title(self, lang: str) -> str:
        return self.de if lang == "de" else self.en


@dataclass(frozen=True)
class Report:
    """A fixed query (selects every column by name), its columns in order, the default sort
    (`col` or `-col`), the columns a caller must filter by with `=` (the customer report needs
    one customer), and a one-line description in both languages."""

    name: str
    title_de: str
    title_en: str
    query: str
    columns: tuple[Column, ...]
    default_sort: str
    about_de: str = ""
    about_en: str = ""
    required: tuple[str, ...] = ()
    personal_report: bool = False

    def title(self, lang: str) -> str:
        return self.title_de if lang == "de" else self.title_en

    def about(self, lang: str) -> str:
        return self.about_de if lang == "de" else self.about_en

    def visible(self, personal: bool) -> tuple[Column, ...]:
        return self.columns if personal else tuple(c for c in self.columns if not c.personal)

    def column(self, name: str, personal: bool) -> Column:
        for col in self.visible(personal):
            if col.name == name:
                return col
        names = ", ".join(c.name for c in self.visible(personal))
        raise ValidationError(f"report {self.name} has no column {name!r}; its columns: {names}", field="column",
                              detail_de=f"Der Bericht hat keine Spalte „{name[:40]}“. Spalten: {names}")


REPORTS: dict[str, Report] = {}


def register(report: Report) -> Report:
    """Add *report*; its names are checked once here, so they may be written into SQL later."""
    names = [c.name for c in report.columns]
    if not _NAME.match(report.name.replace("-", "_")) or any(not _NAME.match(n) for n in names):
        raise ValueError(f"report {report.name}: names must be plain lower-case SQL names")
    if len(set(names)) != len(names) or report.default_sort.removeprefix("-") not in names:
        raise ValueError(f"report {report.name}: duplicate columns or a default sort that is no column")
    if report.name in REPORTS:
        raise ValueError(f"report {report.name} is registered twice")
    REPORTS[report.name] = report
    return report


def get(name: str) -> Report:
    """The report *name* (the S14 lists are registered by importing `core.reports.lists`)."""
    report = REPORTS.get(name)
    if report is None:
        raise NotFound(f"no report {name[:60]!r}; reports: {', '.join(sorted(REPORTS))}",
                       detail_de=f"Einen Bericht „{name[:60]}“ gibt es nicht.")
    return report


def all_reports() -> list[Report]:
    return list(REPORTS.values())


# --- what a caller asks for ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    column: str
    op: Op
    value: str


@dataclass(frozen=True)
class Query:
    """Sort (`col`, `-col` or None for the default), filter conditions, and a page (limit None: all)."""

    sort: str | None = None
    conditions: tuple[Condition, ...] = ()
    limit: int | None = None
    offset: int = 0


def parse_condition(text: str) -> Condition:
    """`col=value` (equals; text ignores case), `col~value` (contains), `col>=value`, `col<=value`."""
    match = re.match(r"^\s*([a-z_][a-z0-9_]*)\s*(>=|<=|=|~)(.*)$", text, re.S)
    if match is None:
        raise ValidationError(f"a filter is column=value, column~text, column>=value or column<=value, not "
                              f"{text[:60]!r}", field="filter",
                              detail_de="Ein Filter lautet Spalte=Wert, Spalte~Text, Spalte>=Wert oder Spalte<=Wert.")
    column, op, value = match.groups()
    if len(value) > MAX_VALUE:
        raise ValidationError(f"a filter value has at most {MAX_VALUE} characters", field="filter",
                              detail_de=f"Ein Filterwert hat höchstens {MAX_VALUE} Zeichen.")
    return Condition(column, op, value.strip())  # type: ignore[arg-type]


def parse_filter(text: str) -> tuple[Condition, ...]:
    """Conditions separated by `;` (a `;` inside a value is written `\\;`)."""
    parts = [p.replace("\\;", ";") for p in re.split(r"(?<!\\);", text) if p.strip()]
    if len(parts) > MAX_CONDITIONS:
        raise ValidationError(f"at most {MAX_CONDITIONS} filter conditions", field="filter",
                              detail_de=f"Höchstens {MAX_CONDITIONS} Filterbedingungen.")
    return tuple(parse_condition(p) for p in parts)


# --- running a report ---------------------------------------------------------------------------------


@dataclass
class Result:
    """The visible columns and the rows (tuples in column order), read lazily from the cursor."""

    report: Report
    columns: tuple[Column, ...]
    rows: Iterator[tuple]
    query: Query = field(default_factory=Query)


def _bad_value(col: Column, value: str, what: str, what_de: str) -> ValidationError:
    return ValidationError(f"filter {col.name}: {value[:40]!r} is not {what}", field="filter",
                           detail_de=f"Filter {col.name}: „{value[:40]}“ ist {what_de}.")


def money_cents(text: str) -> int | None:
    """`12,50` / `12.50` / `1.234,50` / `12` euros as cents; None if it is no amount."""
    text = text.replace("€", "").replace("EUR", "").strip()
    if re.fullmatch(r"-?\d{1,3}(\.\d{3})+(,\d{1,2})?", text):  # German thousands dots
        text = text.replace(".", "")
    text = text.replace(",", ".")
    if not re.fullmatch(r"-?\d{1,9}(\.\d{1,2})?", text):
        return None
    whole, _, part = text.partition(".")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole)) * 100 + int((part + "00")[:2]))


def parse_day(text: str) -> dt.date | None:
    """`2026-10-01` or `01.10.2026`; None if it is no date."""
    for pattern in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return dt.datetime.strptime(text.strip(), pattern).date()
        except ValueError:
            continue
    return None


def _clause(col: Column, cond: Condition) -> tuple[str, list]:
    """SQL text (with the registry's column name) and the bound values of one condition."""
    name = f"r.{col.name}"
    if col.kind == "text":
        if cond.op == "~":
            like = "%" + cond.value.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            return f"casefold({name}) LIKE ? ESCAPE '\\'", [like]
        if cond.op == "=":
            return f"casefold({name}) = ?", [cond.value.casefold()]
        return f"{name} {cond.op} ?", [cond.value]
    if cond.op == "~":
        raise ValidationError(f"filter {col.name}: `~` (contains) is for text columns; use =, >= or <=",
                              field="filter", detail_de=f"Filter {col.name}: „enthält“ gibt es nur für Text.")
    if col.kind in ("int", "money"):
        value = money_cents(cond.value) if col.kind == "money" else (
            int(cond.value) if re.fullmatch(r"-?\d{1,12}", cond.value) else None)
        if value is None:
            raise _bad_value(col, cond.value, "an amount" if col.kind == "money" else "a whole number",
                             "kein Betrag" if col.kind == "money" else "keine ganze Zahl")
        return f"{name} {cond.op} ?", [value]
    day = parse_day(cond.value)
    if day is None:
        raise _bad_value(col, cond.value, "a date (2026-10-01 or 01.10.2026)", "kein Datum (01.10.2026)")
    if col.kind == "date":
        return f"{name} {cond.op} ?", [day.isoformat()]
    first, last = iso(day_start(day)), iso(day_end(day))  # a datetime column: the local calendar day
    if cond.op == "=":
        return f"{name} BETWEEN ? AND ?", [first, last]
    return f"{name} {cond.op} ?", [first if cond.op == ">=" else last]


def _where(report: Report, query: Query, personal: bool) -> tuple[str, list]:
    clauses, args = [], []
    for cond in query.conditions:
        text, values = _clause(report.column(cond.column, personal), cond)
        clauses.append(text)
        args.extend(values)
    for name in report.required:
        if not any(c.column == name and c.op == "=" for c in query.conditions):
            raise ValidationError(f"report {report.name} needs a filter {name}=...", field="filter",
                                  detail_de=f"Dieser Bericht braucht einen Filter {name}=…")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _order(report: Report, query: Query, personal: bool) -> str:
    asked = query.sort or report.default_sort
    visible = report.visible(personal)
    if query.sort is None and asked.removeprefix("-") not in {c.name for c in visible}:
        asked = visible[0].name  # the default sort is a personal column this caller does not see
    col = report.column(asked.removeprefix("-"), personal)
    direction = " DESC" if asked.startswith("-") else ""
    collate = " COLLATE NOCASE" if col.kind == "text" else ""
    tie = ", ".join(f"r.{c.name}" for c in visible if c.name != col.name)  # the same order every time
    return f" ORDER BY r.{col.name}{collate}{direction}" + (f", {tie}" if tie else "")


def check(report: Report, query: Query, *, personal: bool) -> None:
    """Refuse (ValidationError) a sort or filter the report cannot run, before any row is read."""
    _where(report, query, personal)
    _order(report, query, personal)


def _source(report: Report, db: sqlite3.Connection) -> str:
    sql.with_local_day(db)
    return f"({report.query}) AS r"


def count(db: sqlite3.Connection, report: Report, query: Query, *, personal: bool) -> int:
    """Rows of the report under the query's filters (the page left aside)."""
    where, args = _where(report, query, personal)
    return db.execute(f"SELECT count(*) AS n FROM {_source(report, db)}{where}", args).fetchone()["n"]


def run(db: sqlite3.Connection, report: Report, query: Query, *, personal: bool) -> Result:
    """The report's rows under *query*; *personal*: whether the caller may see customer data."""
    columns = report.visible(personal)
    where, args = _where(report, query, personal)
    order = _order(report, query, personal)
    page = ""
    if query.limit is not None:
        page, args = " LIMIT ? OFFSET ?", [*args, query.limit, query.offset]
    select = ", ".join(f"r.{c.name}" for c in columns)
    cursor = db.cursor()
    cursor.row_factory = None  # plain tuples: 100,000 rows of an export need no dicts
    cursor.execute(f"SELECT {select} FROM {_source(report, db)}{where}{order}{page}", args)
    return Result(report, columns, iter(cursor), query)
