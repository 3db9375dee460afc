"""VACUUM for the tables a presale churns, between autovacuum's rounds.

Every checkout inserts its seat holds and deletes them at the sale (or they expire): in a rush
`seat_holds` gathers thousands of dead rows within seconds, and every look at the held seats,
every hold and every sale walks their index entries until a VACUUM removes them. Autovacuum
naps a minute between rounds, longer than a presale's first rush; the hold sweeper
(hub/services/hold_sweeper.py) therefore vacuums the table itself every few seconds on
PostgreSQL (a small table: milliseconds). SQLite has nothing to vacuum (a deleted row's space
is reused at once).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

CHURNED = frozenset({"seat_holds"})  # the tables worth it (a name from this set only, never from input)


def vacuum(db: Any, table: str) -> None:
    """VACUUM *table* now on *db*'s session, outside any transaction (VACUUM cannot run in one).
    SKIP_LOCKED: when another hub process is vacuuming it already, this one does nothing."""
    if table not in CHURNED:
        raise ValueError(f"not a table the hub vacuums: {table!r}")
    if db.in_transaction:
        raise RuntimeError("VACUUM runs outside a transaction")
    db.raw.execute(sql.SQL("VACUUM (SKIP_LOCKED) {}").format(sql.Identifier(table)))
