"""VACUUM for the tables a presale churns, and ANALYZE for the tables it grows, between
autovacuum's rounds.

Every checkout inserts its seat holds and deletes them at the sale (or they expire): in a rush
`seat_holds` gathers thousands of dead rows within seconds, and every look at the held seats,
every hold and every sale walks their index entries until a VACUUM removes them. Autovacuum
naps a minute between rounds, longer than a presale's first rush; the hold sweeper
(hub/services/hold_sweeper.py) therefore vacuums the table itself every few seconds on
PostgreSQL (a small table: milliseconds). SQLite has nothing to vacuum (a deleted row's space
is reused at once).

ANALYZE, for the tables a presale fills: every session keeps its plans (the wire's prepared
statements, the foreign-key checks' queries, the triggers' queries) until the statistics of a
table they read change. On a hub whose tables were nearly empty when its sessions opened (a new
house's first presale, or `bench rush`), those plans read `tickets`, `orders`, `cards` ... from
end to end, since that was cheapest for an empty table, and go on doing so while the presale
fills them by thousands of rows: measured in a rush, the check that a hold is not on a sold
seat (a trigger) took 0.56 ms per seat instead of a few microseconds, ~5 ms of the server's CPU
per order with the foreign-key checks. Autovacuum analyzes such a table only at its next round
(a minute); the sweeper therefore analyzes every table of the hub's schema that changed by
GROWTH times the rows it had at its last ANALYZE (and at least MIN_CHANGES): a new statistic
makes every session plan its statements on that table afresh, a handful of times as a table
grows from empty to thousands of rows, rarely once it is large.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

CHURNED = frozenset({"seat_holds"})  # the tables worth it (a name from this set only, never from input)
MIN_CHANGES = 50  # a table analyzed again once it changed by this many rows at least (autovacuum's threshold)
GROWTH = 4.0  # ... and by this many times the rows it had at its last ANALYZE (an empty table: at 50, 250,
# 1,250, 6,250 rows; each ANALYZE makes every session plan that table's statements again, and
# once a table is past a few pages its plans no longer change: measured in `bench rush`, 4 cost
# less per order than 1)


def vacuum(db: Any, table: str) -> None:
    """VACUUM *table* now on *db*'s session, outside any transaction (VACUUM cannot run in one).
    SKIP_LOCKED: when another hub process is vacuuming it already, this one does nothing."""
    if table not in CHURNED:
        raise ValueError(f"not a table the hub vacuums: {table!r}")
    if db.in_transaction:
        raise RuntimeError("VACUUM runs outside a transaction")
    db.raw.execute(sql.SQL("VACUUM (SKIP_LOCKED) {}").format(sql.Identifier(table)))


def analyze_grown(db: Any) -> list[str]:
    """ANALYZE each table of the hub's schema that changed by MIN_CHANGES rows plus GROWTH times
    its rows since its last ANALYZE (module docstring), outside any transaction; the tables
    analyzed. Their names come from the server's own catalog (`pg_stat_user_tables` of the
    current schema), quoted as identifiers. SKIP_LOCKED: a table another session is analyzing
    or altering is left to the next round."""
    if db.in_transaction:
        raise RuntimeError("ANALYZE runs outside a transaction")
    grown = [row["relname"] for row in db.raw.execute(
        "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
        "WHERE s.schemaname = current_schema() AND s.n_mod_since_analyze >= %s + %s * greatest(c.reltuples, 0) "
        "ORDER BY s.relname", (MIN_CHANGES, GROWTH))]
    for table in grown:
        db.raw.execute(sql.SQL("ANALYZE (SKIP_LOCKED) {}").format(sql.Identifier(table)))
    return grown
