"""The hub's change feed, generated: which tables replicate, and the triggers that record them.

`REPLICATED` is the one list of tables the hub shares with nodes (table -> primary key
columns, parents before children). Each of them has three triggers, `changes_<table>_ins`,
`_upd` and `_del`, that append `(tbl, key)` to `changes` with `key = json_array(<key>)`
(an update that moves the key records the old key too). They fire only on the hub
(`WHEN (SELECT role FROM node) = 'hub'`), so hub and edges share one schema.

The triggers are not written by hand. `core.base.storage.apply_migrations` calls `refresh` after
the numbered migrations, each time a database is opened, and `refresh` makes the database's
`changes_*` triggers exactly what `triggers()` generates: missing ones are created, differing
ones replaced, stale ones (a table no longer in REPLICATED) dropped; when nothing differs it
writes nothing. A table that gets triggers for the first time on a hub has each row it holds
recorded as one change, so nodes also receive what it held before. Adding a table to
REPLICATED is all it takes (and `core.sync.scope` must say who may see it). The prefix
`changes_` is reserved for these triggers.

No identifier in the generated SQL comes from anywhere but REPLICATED and the fixed text
below; every name must match `IDENTIFIER`, and a key must be its table's primary key in the
database. This module imports nothing from Tessera: `core.base.storage` imports it.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field

# Never replicated, whatever is added below: the pinned root (`trust_roots`) is set once, at
# hub init or enrollment, and nothing that arrives through the feed may replace it.
NEVER_REPLICATED = frozenset({"trust_roots"})

# Replicated tables and their primary keys, in creation order (parents before children).
REPLICATED: dict[str, tuple[str, ...]] = {
    "organizers": ("id",), "venues": ("id",), "price_zones": ("id",), "seating_plans": ("id",),
    "plan_sections": ("id",), "plan_variants": ("id",), "seats": ("id",),
    "variant_removed_seats": ("variant_id", "seat_id"), "seasons": ("id",), "performances": ("id",),
    "performance_prices": ("performance_id", "zone_id"), "annual_products": ("id",),
    "annual_product_venues": ("product_id", "venue_id"), "subscription_products": ("id",),
    "subscription_performances": ("product_id", "performance_id"),
    "subscription_zone_prices": ("product_id", "zone_id"), "combi_prices": ("product_id", "performance_id", "zone_id"),
    "sale_windows": ("product_id", "channel", "phase"), "discount_tiers": ("id",), "customers": ("id",),
    "node_certs": ("key_id",), "node_revocations": ("key_id",),
    "card_products": ("code",), "cards": ("id",), "entries": ("card_id", "at", "id"),
    "pass_performances": ("card_id", "performance_id"),
    "seat_pools": ("performance_id", "seat_id"), "recalls": ("id",),
    "voucher_redemptions": ("voucher_id",), "operators": ("id",),
    "node_pin_keys": ("key_id",), "pin_verifiers": ("operator_id", "key_id"),
    "choice_vouchers": ("id",), "choice_voucher_redemptions": ("voucher_id",),
    "seat_releases": ("ticket_id",),
}

# Plain lower-case names only: nothing that needs quoting, nothing that could end a literal.
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")
PREFIX = "changes_"
_ON_HUB = "(SELECT role FROM node) = 'hub'"


def identifier(name: object) -> str:
    """*name* if it is a plain lower-case SQL identifier (and not SQLite's own), else ValueError."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name) or name.startswith("sqlite_"):
        raise ValueError(f"not a plain lower-case SQL identifier: {name!r}")
    return name


def _checked(table: object, key: object) -> tuple[str, tuple[str, ...]]:
    table = identifier(table)
    if table in NEVER_REPLICATED:
        raise ValueError(f"{table} is never replicated: the pinned root cannot come through the feed")
    if not isinstance(key, tuple) or not key:
        raise ValueError(f"the key of {table} must be a non-empty tuple of column names, not {key!r}")
    columns = tuple(identifier(c) for c in key)
    if len(set(columns)) != len(columns):
        raise ValueError(f"the key of {table} names a column twice: {columns}")
    return table, columns


def table_triggers(table: str, key: tuple[str, ...]) -> dict[str, str]:
    """The three change-feed triggers of *table* (trigger name -> CREATE TRIGGER statement),
    written as SQLite keeps them in sqlite_master."""
    return dict(_generate(*_checked(table, key)))


@functools.lru_cache(maxsize=256)
def _generate(table: str, key: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    new = f"json_array({', '.join(f'new.{c}' for c in key)})"
    old = f"json_array({', '.join(f'old.{c}' for c in key)})"
    record = "INSERT INTO changes (tbl, key)"

    def create(suffix: str, event: str, body: str) -> tuple[str, str]:
        name = f"{PREFIX}{table}_{suffix}"
        return name, f"CREATE TRIGGER {name} AFTER {event} ON {table} WHEN {_ON_HUB} BEGIN\n    {body} END"

    return (
        create("ins", "INSERT", f"{record} VALUES ('{table}', {new});"),
        create("upd", "UPDATE", f"{record} SELECT '{table}', {old} WHERE {old} <> {new};\n"
                                f"    {record} VALUES ('{table}', {new});"),
        create("del", "DELETE", f"{record} VALUES ('{table}', {old});"),
    )


def triggers(replicated: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, tuple[str, str]]:
    """Every change-feed trigger for *replicated* (default REPLICATED): name -> (table, SQL)."""
    found: dict[str, tuple[str, str]] = {}
    for table, key in (REPLICATED if replicated is None else replicated).items():
        for name, sql in table_triggers(table, key).items():
            found[name] = (table, sql)
    return found


def backfill_sql(table: str, key: tuple[str, ...]) -> str:
    """On a hub: record every row *table* holds as one change (for a table new to the feed)."""
    table, key = _checked(table, key)
    columns = ", ".join(key)
    return (f"INSERT INTO changes (tbl, key) SELECT '{table}', json_array({columns}) FROM {table} "
            f"WHERE {_ON_HUB} ORDER BY {columns}")


@dataclass
class Plan:
    """What `refresh` does to a database: drop these triggers (names), run these CREATE
    TRIGGER statements, record each row of these tables (names) as one change. Empty when
    the database is up to date."""

    drop: list[str] = field(default_factory=list)
    create: list[str] = field(default_factory=list)
    backfill: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.drop or self.create or self.backfill)


def _rows(db: sqlite3.Connection, sql: str, args: tuple = ()) -> list[tuple]:
    return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in db.execute(sql, args).fetchall()]


def check_keys(db: sqlite3.Connection, replicated: Mapping[str, tuple[str, ...]] | None = None) -> None:
    """Every replicated table exists and its key is its primary key (same columns, same order)."""
    replicated = REPLICATED if replicated is None else replicated
    checked = dict(_checked(table, key) for table, key in replicated.items())
    columns: dict[str, list[tuple[int, str]]] = {}
    for table, column, pk in _rows(db, "SELECT j.value, p.name, p.pk FROM json_each(?) j "
                                       "JOIN pragma_table_info(j.value) p", (json.dumps(list(checked)),)):
        columns.setdefault(table, []).append((pk, column))
    for table, key in checked.items():
        if table not in columns:
            raise RuntimeError(f"REPLICATED names table {table}, which this database does not have")
        declared = tuple(c for pk, c in sorted(columns[table]) if pk)
        if declared != key:
            raise RuntimeError(f"REPLICATED gives {table} the key {key}, but its primary key is {declared}")


def plan(db: sqlite3.Connection, replicated: Mapping[str, tuple[str, ...]] | None = None) -> Plan:
    """Compare the database's change-feed triggers with the generated ones (reads only)."""
    replicated = REPLICATED if replicated is None else replicated
    check_keys(db, replicated)
    by_table = {table: table_triggers(table, key) for table, key in replicated.items()}
    wanted = {name: sql for generated in by_table.values() for name, sql in generated.items()}
    have = dict(_rows(db, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name GLOB ? "
                          "ORDER BY name", (f"{PREFIX}*",)))
    return Plan(drop=[name for name, sql in have.items() if wanted.get(name) != sql],
                create=[sql for name, sql in wanted.items() if have.get(name) != sql],
                backfill=[table for table, generated in by_table.items() if not have.keys() & generated.keys()])


def refresh(db: sqlite3.Connection, replicated: Mapping[str, tuple[str, ...]] | None = None) -> Plan:
    """Make the database's change-feed triggers the generated ones; returns what it did.
    The caller holds the write transaction (`core.base.storage.apply_migrations` does)."""
    todo = plan(db, replicated)
    for name in todo.drop:
        db.execute('DROP TRIGGER "{}"'.format(name.replace('"', '""')))
    for sql in todo.create:
        db.execute(sql)
    replicated = REPLICATED if replicated is None else replicated
    for table in todo.backfill:
        db.execute(backfill_sql(table, replicated[table]))
    return todo
