"""The hub vacuums the holds a presale churns between autovacuum's rounds (issue 18:
core/base/pg/maintenance.py, the hold sweeper on PostgreSQL)."""

from __future__ import annotations

import itertools

import pytest
from aiohttp import web

from core.base import storage
from core.base.pg import maintenance
from hub.services.hold_sweeper import SWEEP_EVERY_S, VACUUM_EVERY_S, HoldSweeper

pytest_plugins = ("tests.pg",)  # the PostgreSQL fixtures: pg_cluster, pg_url, pg_empty_url, pg


def vacuums(db) -> int:
    return db.execute("SELECT vacuum_count AS n FROM pg_stat_user_tables WHERE relname = 'seat_holds'").fetchone()["n"]


async def test_the_hold_sweeper_vacuums_the_holds_every_few_seconds_on_postgresql(pg):
    """A round on PostgreSQL sweeps the expired holds, vacuums `seat_holds` and comes back after
    VACUUM_EVERY_S (on SQLite after SWEEP_EVERY_S, with nothing to vacuum: tests/test_seat_holds.py)."""
    before = vacuums(pg)
    sweeper = HoldSweeper(web.Application(), pg)  # not served: the round runs inline on pg
    assert await sweeper.round() == VACUUM_EVERY_S < SWEEP_EVERY_S
    assert await sweeper.round() == VACUUM_EVERY_S
    assert vacuums(pg) == before + 2


def test_only_the_churned_tables_are_vacuumed_and_never_inside_a_transaction(pg):
    """The table's name comes from the module's own set, never from elsewhere; VACUUM cannot
    run in a transaction, and is refused with a clear error before it is sent."""
    with pytest.raises(ValueError, match="not a table the hub vacuums"):
        maintenance.vacuum(pg, "tickets; DROP TABLE tickets")
    with pytest.raises(RuntimeError, match="outside a transaction"), storage.transaction(pg):
        maintenance.vacuum(pg, "seat_holds")
    maintenance.vacuum(pg, "seat_holds")
    assert pg.execute("SELECT count(*) AS n FROM tickets").fetchone()["n"] == 0


def analyses(db, table: str) -> int:
    db.execute("SELECT pg_stat_clear_snapshot()")
    return db.execute("SELECT analyze_count AS n FROM pg_stat_user_tables WHERE relname = ?", (table,)).fetchone()["n"]


_operators = itertools.count()


def grow(db, table_rows: int) -> None:
    """*table_rows* new operators, their counts flushed to the server's statistics at once."""
    with storage.transaction(db):
        db.executemany("INSERT INTO operators (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                       [(f"op{k}", f"Op {k}", "2026-12-03T10:00:00Z", "2026-12-03T10:00:00Z")
                        for k in itertools.islice(_operators, table_rows)])
    db.execute("SELECT pg_stat_force_next_flush()")
    db.execute("SELECT 1")  # a transaction's end: the counts go out now


async def test_tables_a_presale_fills_are_analyzed_as_they_grow_and_others_are_left(pg):
    """Every session keeps the plans it made while a table was nearly empty (reading it whole)
    until the table's statistics change, and autovacuum's next ANALYZE may be a minute away: the
    sweeper's round analyzes each table that changed by MIN_CHANGES plus GROWTH times its rows
    since its last ANALYZE, and no other (core/base/pg/maintenance.py)."""
    maintenance.analyze_grown(pg)  # whatever the new schema's own rows left
    before, holds_before = analyses(pg, "operators"), analyses(pg, "seat_holds")
    first = maintenance.MIN_CHANGES - 5
    grow(pg, first)  # not enough
    assert "operators" not in maintenance.analyze_grown(pg) and analyses(pg, "operators") == before
    grow(pg, 10)
    sweeper = HoldSweeper(web.Application(), pg)
    assert await sweeper.round() == VACUUM_EVERY_S  # the round analyzes it
    assert analyses(pg, "operators") == before + 1
    assert maintenance.analyze_grown(pg) == []  # nothing changed since
    rows = first + 10  # what the ANALYZE saw
    needed = maintenance.MIN_CHANGES + int(maintenance.GROWTH * rows)
    grow(pg, needed - 10)  # not yet
    assert "operators" not in maintenance.analyze_grown(pg)
    grow(pg, 10)  # now as many changes since the last ANALYZE as it takes (the change feed grew as much)
    assert maintenance.analyze_grown(pg) == ["changes", "operators"]
    assert analyses(pg, "operators") == before + 2 and analyses(pg, "seat_holds") == holds_before
    with pytest.raises(RuntimeError, match="outside a transaction"), storage.transaction(pg):
        maintenance.analyze_grown(pg)
