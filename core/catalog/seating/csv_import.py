"""Seating plans read from CSV, one seat per line."""

from __future__ import annotations

import csv
import io
import math

import msgspec

from core.base.errors import ValidationError
from core.catalog.seating.inputs import PlanIn

# -- CSV import ---------------------------------------------------------------------

CSV_COLUMNS = ("section", "row", "seat", "x", "y", "zone", "wheelchair", "companion", "variant", "removed_in")
_TRUE = {"1", "true", "yes", "ja", "x", "y", "j"}
_FALSE = {"", "0", "false", "no", "nein", "n"}


def _flag(text: str, line: int, column: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationError(f"line {line}: {column} must be yes/no, not {text!r}", field=column)


def _number(text: str, line: int, column: str) -> float:
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        raise ValidationError(f"line {line}: {column} must be a number, not {text!r}", field=column) from None
    if not math.isfinite(value):
        raise ValidationError(f"line {line}: {column} must be a finite number", field=column)
    return value


def plan_from_csv(text: str, *, venue_id: str, name: str, seat_size: float = 1.0,
                  base_variant: str = "Standard") -> PlanIn:
    """Read a plan from CSV, one seat per line.

    Columns: section,row,seat,x,y,zone[,wheelchair,companion,variant,removed_in]. A seat
    with `variant` set exists only in that variant; `removed_in` lists (separated by `;`)
    the variants that leave a base seat out.
    """
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    try:
        return _plan_from_rows(csv.DictReader(io.StringIO(lines)), venue_id, name, seat_size, base_variant)
    except csv.Error as exc:
        raise ValidationError(f"CSV cannot be read: {exc}", field="csv") from None


def _plan_from_rows(reader: csv.DictReader, venue_id: str, name: str, seat_size: float,
                    base_variant: str) -> PlanIn:
    missing = [c for c in CSV_COLUMNS[:6] if c not in (reader.fieldnames or [])]
    if missing:
        raise ValidationError(f"CSV header lacks column(s): {', '.join(missing)}", field="csv")
    unknown = [c for c in reader.fieldnames or [] if c not in CSV_COLUMNS]
    if unknown:
        raise ValidationError(f"CSV header has unknown column(s): {', '.join(unknown)}", field="csv")
    base: dict[str, dict[str, list]] = {}
    adds: dict[str, dict[str, dict[str, list]]] = {}
    removes: dict[str, list[dict]] = {}
    for line, rec in enumerate(reader, start=2):
        if None in rec or any(rec.get(c) is None for c in CSV_COLUMNS[:6]):
            raise ValidationError(f"line {line}: wrong number of columns", field="csv")
        seat = {
            "label": rec["seat"].strip(),
            "x": _number(rec["x"], line, "x"),
            "y": _number(rec["y"], line, "y"),
            "zone": rec["zone"].strip(),
            "wheelchair": _flag(rec.get("wheelchair") or "", line, "wheelchair"),
            "companion": _flag(rec.get("companion") or "", line, "companion"),
        }
        section, row = rec["section"].strip(), rec["row"].strip()
        variant = (rec.get("variant") or "").strip()
        target = adds.setdefault(variant, {}) if variant else base
        target.setdefault(section, {}).setdefault(row, []).append(seat)
        for other in filter(None, ((rec.get("removed_in") or "").split(";"))):
            removes.setdefault(other.strip(), []).append(
                {"section": section, "row": row, "seats": [seat["label"]]}
            )

    def sections(tree: dict[str, dict[str, list]]) -> list[dict]:
        return [{"name": s, "rows": [{"label": r, "seats": seats} for r, seats in rows.items()]}
                for s, rows in tree.items()]

    variants = [
        {"name": v, "add": sections(adds.get(v, {})), "remove": removes.get(v, [])}
        for v in dict.fromkeys([*adds, *removes])
    ]
    doc = {"venue_id": venue_id, "name": name, "seat_size": seat_size, "base_variant": base_variant,
           "sections": sections(base), "variants": variants}
    try:
        return msgspec.convert(doc, PlanIn)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"CSV content is invalid: {exc}", field="csv") from None
