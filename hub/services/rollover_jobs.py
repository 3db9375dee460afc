"""The season rollover's long steps (plan and hold, confirm) in a thread of their own, so the hub
keeps serving while 20,000 subscriptions roll over; the office polls the run row's progress.

Why a thread with its own connection and not the event loop: a step is minutes of SQLite work
in chunked transactions (`rollover_run`, `rollover_confirm`); each chunk takes the write lock
briefly, so sales and the office go on between chunks. One step per run at a time (a second
start while one runs is a Conflict). A step that fails records why on the run row
(`rollover_run.set_error`); a hub stopped mid-step leaves a run that continues when started again.

"One step at a time" holds across hub processes on one PostgreSQL database too
(docs/hub-processes.md): the step's own session takes a session-level advisory lock on the run
(`pg_try_advisory_lock`) before its thread starts and keeps it until the step ends. A second
process's start is a Conflict. A process killed mid-step loses its session and with it the lock,
so the run continues at once when started again, on any process (a lease with an expiry would
make it wait). On SQLite the hub is one process: this module's registry is the whole rule.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable

from core.base import sql
from core.base.clock import utcnow
from core.base.errors import Conflict
from core.subscriptions import rollover_run
from hub.services import connections

log = logging.getLogger("tessera.rollover")
_JOBS: dict[str, threading.Thread] = {}
_LOCK = threading.Lock()
_LOCK_SPACE = 0x5EA5  # the first key of a rollover step's advisory lock (the write lock's key is one bigint)
_RUN_KEY = "(hashtext(?) & 2147483647)"  # the second: the run id, hashed into a positive int4


def running(run_id: str, db: sqlite3.Connection | None = None) -> bool:
    """A step of *run_id* runs in this process or (given a PostgreSQL *db*) in another hub process."""
    job = _JOBS.get(run_id)
    if job is not None and job.is_alive():
        return True
    if db is None or not sql.is_postgresql(db):
        return False
    return db.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
                      f"AND classid::bigint = ? AND objid::bigint = {_RUN_KEY}",
                      (_LOCK_SPACE, run_id)).fetchone()["n"] > 0


def _claimed(db: sqlite3.Connection, open_db: connections.Opener, run_id: str) -> sqlite3.Connection | None:
    """On PostgreSQL: the step's own session, holding the run's advisory lock (Conflict when
    another process's session holds it). On SQLite: None (the thread opens its connection)."""
    if not sql.is_postgresql(db):
        return None
    session = open_db()
    got = session.execute(f"SELECT pg_try_advisory_lock(?, {_RUN_KEY}) AS got", (_LOCK_SPACE, run_id)).fetchone()
    if not got["got"]:
        session.close()
        raise Conflict("a step of this rollover is running on another hub process; wait for it to finish",
                       detail_de="Ein Schritt dieser Übernahme läuft noch; bitte warten")
    return session


def start(db: sqlite3.Connection, run_id: str, work: Callable[[sqlite3.Connection], object]) -> threading.Thread:
    """Run *work* in a thread for *run_id*, with its own connection to *db*'s database."""
    with _LOCK:
        if running(run_id):
            raise Conflict("a step of this rollover is running; wait for it to finish",
                           detail_de="Ein Schritt dieser Übernahme läuft noch; bitte warten")
        open_db = connections.opener(db)
        claimed = _claimed(db, open_db, run_id)
        job = threading.Thread(target=_job, args=(open_db, run_id, work, claimed), daemon=True,
                               name=f"rollover-{run_id[-8:]}")
        _JOBS[run_id] = job
        job.start()
    return job


def _job(open_db: connections.Opener, run_id: str, work: Callable[[sqlite3.Connection], object],
         claimed: sqlite3.Connection | None = None) -> None:
    db = claimed or open_db()  # closing it ends a PostgreSQL step's session, and so its lock
    try:
        work(db)
    except Exception as exc:  # recorded for the office; the run continues when started again
        log.exception("rollover %s stopped", run_id)
        rollover_run.set_error(db, run_id, getattr(exc, "detail", None) or str(exc) or type(exc).__name__,
                               utcnow())
    finally:
        if claimed is not None:  # give the lock back before the session ends: a close is noticed by the
            with contextlib.suppress(Exception):  # server a moment later, and until then running() says so
                db.execute(f"SELECT pg_advisory_unlock(?, {_RUN_KEY})", (_LOCK_SPACE, run_id))
        db.close()
