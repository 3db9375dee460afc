"""What a season rollover (S15) maps from the old season to the new one, before any seat is looked at.

- **products to products** (rings to rings): what the office names explicitly, else a product of
  the new season with the identical name, else the one of the same kind at the same position
  (products of a kind in creation order), else none ("product missing");
- **discount tiers by identical name** (the seed: "identische Rabattbezeichnungen"): a tier the
  new product lacks under that name is "tier missing", never a silent full price;
- **performances by position** in the product (`subscription_performances.position`): the
  old ring's third date becomes the new ring's third;
- **seats** by identity where the new date uses the same seating plan, else by section, row and
  number on the new plan.

Reads only; the planner (`rollover_plan`) finds the seats (by identity, else section, row, number).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Annotated

from msgspec import Meta

from core.base.errors import NotFound, ValidationError
from core.catalog.common import Body, Id


class ProductPairIn(Body, kw_only=True):
    """The office's choice for one old product: its successor, or none (`to_product_id` null)."""

    from_product_id: Id
    to_product_id: Id | None = None


class MappingIn(Body, kw_only=True):
    products: Annotated[list[ProductPairIn], Meta(max_length=500)] = []


@dataclass(frozen=True)
class SeasonPair:
    from_season: dict
    to_season: dict


@dataclass
class ProductMap:
    """Old product id -> new product (a dict with its performance ids in order), or None."""

    pairs: dict[str, dict | None]
    tiers: dict[str, dict[str, str]] = field(default_factory=dict)  # new product id -> tier name -> id

    def product_for(self, old_product_id: str) -> dict | None:
        return self.pairs.get(old_product_id)

    def as_json(self) -> dict[str, str | None]:
        return {old: (new["id"] if new else None) for old, new in self.pairs.items()}


def seasons(db: sqlite3.Connection, from_season_id: str, to_season_id: str) -> SeasonPair:
    """Both seasons, of one organizer, the new one starting after the old one."""
    found = {}
    for field_name, season_id in (("from_season", from_season_id), ("to_season", to_season_id)):
        row = db.execute("SELECT * FROM seasons WHERE id = ?", (season_id,)).fetchone()
        if row is None:
            raise NotFound(f"season {season_id} does not exist", field=field_name,
                           detail_de=f"Die Spielzeit {season_id} gibt es nicht")
        found[field_name] = row
    old, new = found["from_season"], found["to_season"]
    if old["id"] == new["id"]:
        raise ValidationError("a season is rolled over into another one", field="to_season",
                              detail_de="Eine Spielzeit wird in eine andere übernommen")
    if old["organizer_id"] != new["organizer_id"]:
        raise ValidationError("both seasons must belong to one organizer", field="to_season",
                              detail_de="Beide Spielzeiten müssen zum selben Veranstalter gehören")
    if new["starts_on"] <= old["starts_on"]:
        raise ValidationError(f"season {new['name']} does not start after {old['name']}", field="to_season",
                              detail_de=f"Die Spielzeit {new['name']} beginnt nicht nach {old['name']}")
    return SeasonPair(old, new)


def season_by_name_or_id(db: sqlite3.Connection, text: str, field_name: str) -> str:
    """A season named by id or by name (`2026/27`); a name shared by two organizers is ambiguous."""
    rows = db.execute("SELECT id FROM seasons WHERE id = ? OR name = ?", (text, text)).fetchall()
    if len(rows) != 1:
        raise NotFound(f"no season {text!r}" if not rows else f"season name {text!r} is ambiguous: give its id",
                       field=field_name, detail_de=f"Keine eindeutige Spielzeit {text!r}")
    return rows[0]["id"]


def _products(db: sqlite3.Connection, season_id: str) -> list[dict]:
    rows = db.execute("SELECT id, name, kind, active, season_id, organizer_id, print_options, transferable, "
                      "vat_code, pick_count FROM subscription_products WHERE season_id = ? "
                      "ORDER BY created_at, id", (season_id,)).fetchall()
    for row in rows:
        row["performance_ids"] = [r["performance_id"] for r in db.execute(
            "SELECT performance_id FROM subscription_performances WHERE product_id = ? ORDER BY position",
            (row["id"],))]
    return rows


def product_map(db: sqlite3.Connection, pair: SeasonPair, explicit: MappingIn | None = None) -> ProductMap:
    """Old product -> new product: the office's pairs, then identical name, then same kind and position."""
    old, new = _products(db, pair.from_season["id"]), _products(db, pair.to_season["id"])
    by_id = {p["id"]: p for p in new}
    olds = {p["id"] for p in old}
    pairs: dict[str, dict | None] = {}
    for given in (explicit.products if explicit else []):
        if given.from_product_id not in olds:
            raise ValidationError(f"product {given.from_product_id} is not a product of season "
                                  f"{pair.from_season['name']}", field="products",
                                  detail_de=f"Produkt {given.from_product_id} gehört nicht zur Spielzeit "
                                            f"{pair.from_season['name']}")
        if given.to_product_id is not None and given.to_product_id not in by_id:
            raise ValidationError(f"product {given.to_product_id} is not a product of season "
                                  f"{pair.to_season['name']}", field="products",
                                  detail_de=f"Produkt {given.to_product_id} gehört nicht zur Spielzeit "
                                            f"{pair.to_season['name']}")
        successor = by_id.get(given.to_product_id) if given.to_product_id else None
        kind = next(p["kind"] for p in old if p["id"] == given.from_product_id)
        if successor is not None and successor["kind"] != kind:
            raise ValidationError(f"a {kind} is rolled over into a {kind}, not a {successor['kind']}",
                                  field="products", detail_de="Ein Abo wird nur in ein Abo derselben Art übernommen")
        pairs[given.from_product_id] = successor
    taken = {p["id"] for p in pairs.values() if p}
    by_name = {p["name"]: p for p in new if p["active"]}
    for prod in old:
        if prod["id"] in pairs:
            continue
        match = by_name.get(prod["name"])
        if match and match["id"] not in taken and match["kind"] == prod["kind"]:
            pairs[prod["id"]] = match
            taken.add(match["id"])
    for prod in old:
        if prod["id"] not in pairs:
            pairs[prod["id"]] = _by_position(prod, old, new, taken)
            if pairs[prod["id"]]:
                taken.add(pairs[prod["id"]]["id"])
    return ProductMap(pairs, {p["id"]: _tiers(db, p["id"]) for p in pairs.values() if p})


def _by_position(prod: dict, old: list[dict], new: list[dict], taken: set[str]) -> dict | None:
    """The new product of the same kind at the same position among its kind (creation order), if free."""
    same_old = [p["id"] for p in old if p["kind"] == prod["kind"]]
    same_new = [p for p in new if p["kind"] == prod["kind"] and p["active"]]
    k = same_old.index(prod["id"])
    if k < len(same_new) and same_new[k]["id"] not in taken and same_new[k]["name"] not in {p["name"] for p in old}:
        return same_new[k]
    return None


def _tiers(db: sqlite3.Connection, product_id: str) -> dict[str, str]:
    return {r["name"]: r["id"] for r in db.execute(
        "SELECT id, name FROM discount_tiers WHERE product_id = ? AND active = 1", (product_id,))}
