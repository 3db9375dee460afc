"""The season rollover's long steps (plan and hold, confirm) in a thread of their own, so the hub
keeps serving while 20,000 subscriptions roll over; the office polls the run row's progress.

Why a thread with its own connection and not the event loop: a step is minutes of SQLite work
in chunked transactions (`rollover_run`, `rollover_confirm`); each chunk takes the write lock
briefly, so sales and the office go on between chunks. One step per run at a time (a second
start while one runs is a Conflict). A step that fails records why on the run row
(`rollover_run.set_error`); a hub stopped mid-step leaves a run that continues when started again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

from core.base.clock import utcnow
from core.base.errors import Conflict
from core.subscriptions import rollover_run
from hub.services import connections

log = logging.getLogger("tessera.rollover")
_JOBS: dict[str, threading.Thread] = {}
_LOCK = threading.Lock()


def running(run_id: str) -> bool:
    job = _JOBS.get(run_id)
    return job is not None and job.is_alive()


def start(db: sqlite3.Connection, run_id: str, work: Callable[[sqlite3.Connection], object]) -> threading.Thread:
    """Run *work* in a thread for *run_id*, with its own connection to *db*'s database."""
    with _LOCK:
        if running(run_id):
            raise Conflict("a step of this rollover is running; wait for it to finish",
                           detail_de="Ein Schritt dieser Übernahme läuft noch; bitte warten")
        job = threading.Thread(target=_job, args=(connections.opener(db), run_id, work), daemon=True,
                               name=f"rollover-{run_id[-8:]}")
        _JOBS[run_id] = job
        job.start()
    return job


def _job(open_db: connections.Opener, run_id: str, work: Callable[[sqlite3.Connection], object]) -> None:
    db = open_db()
    try:
        work(db)
    except Exception as exc:  # recorded for the office; the run continues when started again
        log.exception("rollover %s stopped", run_id)
        rollover_run.set_error(db, run_id, getattr(exc, "detail", None) or str(exc) or type(exc).__name__,
                               utcnow())
    finally:
        db.close()
