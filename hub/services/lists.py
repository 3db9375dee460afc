"""One way to answer a list operation that is a plain filtered table read: the page of
rows, the total, and the `limit`/`offset` the caller gave (catalog lists have their own
service in core.catalog.resource, with search and sorting).

Table, column and ordering names come only from the calling code, never from input: a
request chooses which of the named *filters* apply and gives their values, which are
always bound as parameters.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")


class ListRequest(Protocol):
    """What a list read needs from a request: the database and the validated query
    parameters (`limit`, `offset` and the filters); the API's `Ctx` is one."""

    @property
    def db(self) -> sqlite3.Connection: ...

    @property
    def query(self) -> Mapping[str, Any]: ...


def page(request: ListRequest, source: str, order: str, filters: Sequence[str] = (), *, select: str = "*",
         where: Sequence[str] = (), column_prefix: str = "") -> dict:
    """Rows of *source* (a table, or a join) where every query parameter named in *filters*
    equals its column, plus the fixed *where* conditions, in *order*."""
    q = request.query
    clauses, args = list(where), []
    for name in filters:
        if not _COLUMN.match(name):
            raise ValueError(f"not a plain column name: {name!r}")
        if name in q:
            clauses.append(f"{column_prefix}{name} = ?")
            args.append(q[name])
    sql_where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    limit, offset = q.get("limit", 50), q.get("offset", 0)
    db = request.db
    total = db.execute(f"SELECT count(*) AS n FROM {source}{sql_where}", args).fetchone()["n"]
    items = db.execute(f"SELECT {select} FROM {source}{sql_where} ORDER BY {order} LIMIT ? OFFSET ?",
                       [*args, limit, offset]).fetchall()
    return {"items": items, "total": total, "limit": limit, "offset": offset}
