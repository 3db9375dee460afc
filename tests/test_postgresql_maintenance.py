"""The hub vacuums the holds a presale churns between autovacuum's rounds (issue 18:
core/base/pg/maintenance.py, the hold sweeper on PostgreSQL)."""

from __future__ import annotations

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
