"""The print queue of a node (A7, E6): what still has to come out of a printer.

A job is queued in the transaction that makes it necessary (a card personalized, a sale
with its receipt), so a printer that is offline or out of paper never loses a sale or a
card: the job stays `queued` or `failed` with the printer's error, and is retried. The
worker that renders and sends jobs lives with the devices (`edge/desk/printing.py` at a desk,
`hub/services/print_batches.py` at the hub); this module only keeps the book.

A card job that printed moves its card to `printed` (A8), unless the card was re-issued
in the meantime (then the job printed an outdated code and a newer job is waiting).

`unprintable()` is the one rule of whether a card may be printed, for the hub's batches and a
desk's reprint alike.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Mapping
from typing import Any, Literal

from core.base.clock import iso
from core.base.ids import uuid7
from core.base.storage import transaction
from core.cards import fulfilment

JobKind = Literal["card", "carrier", "receipt"]


def enqueue(db: sqlite3.Connection, kind: JobKind, ref_id: str, card_issue: int | None, now: dt.datetime) -> str:
    """Queue a job; runs inside the caller's transaction."""
    if not db.in_transaction:
        raise RuntimeError("print_queue.enqueue() must run inside the transaction of the change it prints")
    job_id = uuid7()
    db.execute("INSERT INTO print_jobs (id, kind, ref_id, card_issue, created_at) VALUES (?, ?, ?, ?, ?)",
               (job_id, kind, ref_id, card_issue, iso(now)))
    return job_id


# What hub print batches and desks print: annual cards, and a subscription's passes and tickets (S9),
# each kind in its own layout (a desk prints single tickets as slips on its receipt printer).
PRINTED_KINDS = ("annual", "subscription", "single")


def unprintable(card: Mapping[str, Any] | None, job: Mapping[str, Any] | None = None,
                kinds: tuple[str, ...] = ("annual",)) -> str | None:
    """Why *card* (a cards row) must not be printed, or None if it may: it must exist, not be
    revoked and be a personalized card of one of *kinds*; for a queued *job* it must still be the issue the
    job was queued for (a re-issued card has a newer job, and the old code is refused at the gates)."""
    if card is None:
        return "the card does not exist"
    if card["revoked_at"]:
        return f"card {card['number']} is revoked"
    if card["kind"] not in kinds or card["fulfilment"] is None:
        return f"card {card['number']} is not a personalized {' or '.join(kinds)} card"
    if job is not None and job["card_issue"] is not None and card["issue"] != job["card_issue"]:
        return f"card {card['number']} was re-issued (issue {card['issue']}) after this job was queued"
    return None


def drop_open_jobs(db: sqlite3.Connection, card_id: str, below_issue: int | None = None) -> int:
    """Forget the jobs of *card_id* not printed yet - only those queued for an issue below
    *below_issue*, when given (they would print a code the gates refuse). Runs inside the
    caller's transaction; returns how many were dropped."""
    if below_issue is None:
        return db.execute("DELETE FROM print_jobs WHERE ref_id = ? AND state <> 'printed'", (card_id,)).rowcount
    return db.execute("DELETE FROM print_jobs WHERE ref_id = ? AND state <> 'printed' AND card_issue < ?",
                      (card_id, below_issue)).rowcount


def open_jobs(db: sqlite3.Connection, kind: JobKind | None = None, limit: int = 1000) -> list[dict]:
    """Jobs not printed yet, oldest first."""
    if kind:
        return db.execute("SELECT * FROM print_jobs WHERE state <> 'printed' AND kind = ? ORDER BY created_at, id "
                          "LIMIT ?", (kind, limit)).fetchall()
    return db.execute("SELECT * FROM print_jobs WHERE state <> 'printed' ORDER BY created_at, id LIMIT ?",
                      (limit,)).fetchall()


def mark_printed(db: sqlite3.Connection, node: dict, job_ids: list[str], now: dt.datetime,
                 batch_id: str | None = None) -> None:
    """The printer took these jobs: card jobs move their (current-issue) card to `printed`."""
    with transaction(db):
        printed_cards = []
        for job_id in job_ids:
            job = db.execute("UPDATE print_jobs SET state = 'printed', printed_at = ?, batch_id = ?, "
                             "attempts = attempts + 1, last_error = NULL WHERE id = ? RETURNING *",
                             (iso(now), batch_id, job_id)).fetchone()
            if job and job["kind"] == "card":
                card = db.execute("SELECT issue, fulfilment FROM cards WHERE id = ?", (job["ref_id"],)).fetchone()
                if card and card["issue"] == job["card_issue"] and card["fulfilment"] == "personalized":
                    printed_cards.append(job["ref_id"])
        if printed_cards:
            fulfilment.set_fulfilment(db, node, printed_cards, "printed", now)


def mark_failed(db: sqlite3.Connection, job_ids: list[str], error: str) -> None:
    """The printer refused: the job waits for a retry, with the printer's own words."""
    with transaction(db):
        db.executemany("UPDATE print_jobs SET state = 'failed', attempts = attempts + 1, last_error = ? WHERE id = ?",
                       [(error[:500], job_id) for job_id in job_ids])


def retry(db: sqlite3.Connection, job_ids: list[str] | None = None) -> int:
    """Put failed jobs (all, or the given ones) back in the queue."""
    with transaction(db):
        if job_ids is None:
            return db.execute("UPDATE print_jobs SET state = 'queued' WHERE state = 'failed'").rowcount
        return sum(db.execute("UPDATE print_jobs SET state = 'queued' WHERE state = 'failed' AND id = ?",
                              (job_id,)).rowcount for job_id in job_ids)


def counts(db: sqlite3.Connection) -> dict[str, int]:
    rows = db.execute("SELECT state, count(*) AS n FROM print_jobs WHERE state <> 'printed' GROUP BY state").fetchall()
    return {"queued": 0, "failed": 0, **{r["state"]: r["n"] for r in rows}}
