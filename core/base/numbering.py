"""Human numbers (`K03-2026-000123`) from number series owned by one node.

A series is `(prefix, year)` and belongs to exactly one node, so offline nodes never hand
out the same number. The counter is advanced *inside the caller's transaction*, together
with the row that carries the number: if that transaction rolls back or the process dies,
the number was never taken and the next caller gets it. That is what makes the series
gapless without a separate reservation step; SQLite's write lock (`BEGIN IMMEDIATE`) makes
two concurrent callers queue, so they can never read the same counter value.
"""

from __future__ import annotations

import re
import sqlite3

from core.base.errors import Conflict, ValidationError

PREFIX = re.compile(r"^[A-Z][A-Z0-9]{0,7}$")
WIDTH = 6


def format_number(prefix: str, year: int, value: int) -> str:
    return f"{prefix}-{year}-{value:0{WIDTH}d}"


def next_number(db: sqlite3.Connection, prefix: str, year: int, node_id: str) -> str:
    """Take the next number of series (*prefix*, *year*) for *node_id*.

    Must run inside the transaction that stores the numbered row.
    """
    return next_numbers(db, [prefix], year, node_id)[0]


def next_numbers(db: sqlite3.Connection, prefixes: list[str], year: int, node_id: str) -> list[str]:
    """`next_number` of each of *prefixes* in turn (a prefix may come more than once), all
    asked before any answer is read: one round trip on PostgreSQL (a sale's order number and
    its subscriptions' numbers)."""
    if not db.in_transaction:
        raise RuntimeError("next_number() must run inside the transaction that uses the number")
    for prefix in prefixes:
        if not PREFIX.match(prefix):
            raise ValidationError(f"number prefix {prefix!r} must be 1-8 upper-case letters/digits")
    asked = [db.execute(  # one statement: the series' first number, or the next if the node owns it
        "INSERT INTO number_series (prefix, year, owner_node, last_value) VALUES (?, ?, ?, 1) "
        "ON CONFLICT (prefix, year) DO UPDATE SET last_value = number_series.last_value + 1 "
        "WHERE number_series.owner_node = excluded.owner_node RETURNING last_value",
        (prefix, year, node_id),
    ) for prefix in prefixes]
    return [_taken(db, cursor.fetchone(), prefix, year, node_id)
            for cursor, prefix in zip(asked, prefixes, strict=True)]


def _taken(db: sqlite3.Connection, row: dict | None, prefix: str, year: int, node_id: str) -> str:
    if row is None:
        owner = db.execute(
            "SELECT owner_node FROM number_series WHERE prefix = ? AND year = ?", (prefix, year)
        ).fetchone()["owner_node"]
        raise Conflict(f"number series {prefix}-{year} belongs to node {owner}, not {node_id}")
    if row["last_value"] >= 10**WIDTH:
        raise Conflict(f"number series {prefix}-{year} is exhausted")
    return format_number(prefix, year, row["last_value"])
