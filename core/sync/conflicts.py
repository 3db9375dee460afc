"""Conflicts: ops the hub could not apply, kept for the office to resolve (DESIGN §4), and
what each enrolled node last synced.

A rejected op is never dropped: `hub/sync/apply.py` records it here as a conflict with its
reason, and the office lists the open ones and marks each resolved (a refund, a rebooking)
with a note. A refusal that only follows from another conflict of the same node (`Follows`:
the ticket card of a voucher redemption the hub refused) is recorded too, but resolved at
once with a note pointing there, so the office has one case to settle, not two.
Pure functions of a database connection.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from core.base.clock import iso
from core.base.errors import Conflict, NotFound
from core.base.sql import json_field
from core.base.storage import transaction

MAX_LISTED = 1000


class Follows(Conflict):
    """A pushed op refused only because an earlier op of the same node was (*conflict_id*): its
    conflict is recorded resolved, pointing to that one, which is the case the office settles."""

    def __init__(self, detail: str, conflict_id: str) -> None:
        super().__init__(detail)
        self.conflict_id = conflict_id

    def resolution(self) -> str:
        return f"follows conflict {self.conflict_id}: settled there"


def of_op(db: sqlite3.Connection, node_id: str, kind: str, field: str, value: str) -> dict | None:
    """The latest conflict of *node_id*'s op of *kind* whose body's *field* is *value*, or None."""
    row = db.execute(f"SELECT * FROM conflicts WHERE node_id = ? AND kind = ? AND {json_field('body', field)} = ? "
                     "ORDER BY node_seq DESC LIMIT 1", (node_id, kind, value)).fetchone()
    return _out(row) if row else None


def _out(row: dict) -> dict:
    return {**row, "body": json.loads(row["body"])}


def listed(db: sqlite3.Connection, *, include_resolved: bool = False) -> list[dict]:
    """The open conflicts (all with *include_resolved*), oldest first, each op body decoded."""
    where = "" if include_resolved else "WHERE resolved_at IS NULL"
    rows = db.execute(f"SELECT * FROM conflicts {where} ORDER BY created_at LIMIT {MAX_LISTED}").fetchall()
    return [_out(r) for r in rows]


def get(db: sqlite3.Connection, conflict_id: str) -> dict:
    row = db.execute("SELECT * FROM conflicts WHERE id = ?", (conflict_id,)).fetchone()
    if row is None:
        raise NotFound(f"conflict {conflict_id} does not exist")
    return _out(row)


def resolve(db: sqlite3.Connection, conflict_id: str, resolution: str, now: dt.datetime) -> dict:
    """Mark an open conflict resolved with the office's note; a resolved one is a Conflict."""
    with transaction(db):
        if get(db, conflict_id)["resolved_at"]:
            raise Conflict("this conflict is resolved already")
        row = db.execute("UPDATE conflicts SET resolved_at = ?, resolution = ? WHERE id = ? RETURNING *",
                         (iso(now), resolution, conflict_id)).fetchone()
    return _out(row)


def node_status(db: sqlite3.Connection) -> list[dict]:
    """Each enrolled node: its scope, last push and pull, clock skew, how many changes of the
    feed it has not pulled yet (`behind`) and its open conflicts."""
    head = db.execute("SELECT coalesce(max(seq), 0) AS seq FROM changes").fetchone()["seq"]
    rows = db.execute("SELECT s.*, (SELECT count(*) FROM conflicts c WHERE c.node_id = s.node_id AND "
                      "c.resolved_at IS NULL) AS open_conflicts FROM node_scopes s ORDER BY enrolled_at").fetchall()
    return [{**r, "venue_ids": json.loads(r["venue_ids"]), "behind": head - r["pulled_seq"]} for r in rows]
