"""One way to answer a list operation that is a plain filtered table read: the page of
rows, the total, and the `limit`/`offset` the caller gave (catalog lists have their own
service in core.catalog.resource, with search and sorting)."""

from __future__ import annotations

from collections.abc import Sequence

from hub.web.api import Ctx


def page(ctx: Ctx, source: str, order: str, filters: Sequence[str] = (), *, select: str = "*",
         where: Sequence[str] = (), column_prefix: str = "") -> dict:
    """Rows of *source* (a table, or a join) where every query parameter named in *filters*
    equals its column, plus the fixed *where* conditions, in *order*."""
    q = ctx.query
    clauses, args = list(where), []
    for name in filters:
        if name in q:
            clauses.append(f"{column_prefix}{name} = ?")
            args.append(q[name])
    sql_where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    limit, offset = q.get("limit", 50), q.get("offset", 0)
    total = ctx.db.execute(f"SELECT count(*) AS n FROM {source}{sql_where}", args).fetchone()["n"]
    items = ctx.db.execute(f"SELECT {select} FROM {source}{sql_where} ORDER BY {order} LIMIT ? OFFSET ?",
                           [*args, limit, offset]).fetchall()
    return {"items": items, "total": total, "limit": limit, "offset": offset}
