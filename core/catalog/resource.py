"""One service for every catalog entity: create, read, list, change, deactivate.

An entity is described by a `Resource` subclass: its table, its input struct, its rules
(`check`) and its child tables. The functions at the bottom are the only way the hub (and
later the edge) writes catalog rows, so validation, timestamps, transactions and the
mapping of constraint errors to clear messages happen in one place. Deactivation is a
change of `active` to false: catalog rows are referenced by sales and are never deleted.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec
from msgspec import UNSET, UnsetType

from core.base.clock import iso, now_iso
from core.base.errors import Conflict, NotFound, ValidationError
from core.base.ids import is_uuid, uuid7
from core.base.sql import integrity_problem, word_search
from core.base.storage import transaction
from core.catalog.common import ADDRESS_FIELDS, Address, Body

MAX_PAGE = 500
Audience = typing.Literal["internal", "shop", "agency"]


def patch_of(cls: type[Body]) -> type[Body]:
    """The PATCH body of *cls*: the same fields, each optional (absent = unchanged)."""
    fields = [(f.name, f.type | UnsetType, UNSET) for f in msgspec.structs.fields(cls)]
    return msgspec.defstruct(
        f"{cls.__name__.removesuffix('In')}Patch", fields, bases=(Body,), kw_only=True
    )


def _base_type(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Annotated:
        return typing.get_args(tp)[0]
    return tp


class Resource:
    name: ClassVar[str]
    table: ClassVar[str]
    In: ClassVar[type[Body]]
    Patch: ClassVar[type[Body]]
    children: ClassVar[tuple[str, ...]] = ()
    sorts: ClassVar[tuple[str, ...]] = ("created_at", "updated_at", "name")
    default_sort: ClassVar[str] = "name"
    filters: ClassVar[tuple[str, ...]] = ()
    search: ClassVar[tuple[str, ...]] = ("name",)
    # an FTS5 trigram table over `search` (see migrations), for tables too big to scan
    search_index: ClassVar[str | None] = None
    unique_message: ClassVar[str] = "such a record already exists"
    # (field, table, what): the record this one belongs to; it must exist and never changes
    parent: ClassVar[tuple[str, str, str] | None] = None

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "In" in cls.__dict__:
            cls.Patch = patch_of(cls.In)
            cls._fields = {f.name: _base_type(f.type) for f in msgspec.structs.fields(cls.In)}
            cls._out_plan = [(name, _out_kind(tp)) for name, tp in cls._fields.items() if name not in cls.children]

    def check_parent(self, db: sqlite3.Connection, data: Any, current: dict | None) -> dict | None:
        """The owning record (organizer, product, ...) must exist and stays the same."""
        if self.parent is None:
            return None
        field, table, what = self.parent
        value = getattr(data, field)
        row = require(db, table, value, what, field, current)
        if current and current[field] != value:
            raise ValidationError(f"a {self.name} cannot move to another {what}", field=field)
        return row

    # -- rules and mapping; subclasses override what they need ----------------------
    def check(self, db: sqlite3.Connection, data: Any, current: dict | None) -> None:
        """Raise ValidationError/Conflict if *data* breaks a rule. *current*: on update."""

    def before_insert(self, db: sqlite3.Connection, row: dict) -> None:
        """Fill generated columns (e.g. a customer number) inside the transaction."""

    def write_children(self, db: sqlite3.Connection, id_: str, data: Any) -> None:
        """Replace child rows (prices, performances, ...) from *data*."""

    def load_children(self, db: sqlite3.Connection, outs: list[dict]) -> None:
        """Add child lists to output dicts: one query per child table for a whole page."""

    def after_write(self, db: sqlite3.Connection, id_: str) -> None:
        """Rules about the stored state as a whole (checked before commit; raising undoes)."""

    def audience_sql(self, audience: Audience) -> tuple[str, tuple]:
        """Extra WHERE clause limiting what an audience may see (S16 agencies)."""
        return "", ()

    def to_row(self, data: Any) -> dict:
        row: dict[str, Any] = {}
        for name, tp in self._fields.items():
            if name in self.children:
                continue
            value = getattr(data, name)
            if tp is Address:
                row.update({f: getattr(value, f) for f in ADDRESS_FIELDS})
            elif isinstance(value, bool):
                row[name] = int(value)
            elif isinstance(value, dt.datetime):
                row[name] = iso(value)
            elif isinstance(value, dt.date):
                row[name] = value.isoformat()
            elif isinstance(value, (list, tuple)):
                row[name] = json.dumps(list(value))
            else:
                row[name] = value
        return row

    def to_out(self, db: sqlite3.Connection, row: dict) -> dict:
        return self.to_outs(db, [row])[0]

    def to_outs(self, db: sqlite3.Connection, rows: list[dict]) -> list[dict]:
        """Rows as API records (nested address, booleans, lists), children batch-loaded."""
        outs = []
        for row in rows:
            out: dict[str, Any] = {"id": row["id"]}
            for name, kind in self._out_plan:
                if kind == "plain":
                    out[name] = row[name]
                elif kind == "bool":
                    out[name] = bool(row[name])
                elif kind == "address":
                    out[name] = {f: row[f] for f in ADDRESS_FIELDS}
                else:
                    out[name] = json.loads(row[name])
            out["created_at"] = row["created_at"]
            out["updated_at"] = row["updated_at"]
            outs.append(out)
        if outs:
            self.load_children(db, outs)
        return outs


def _out_kind(tp: Any) -> str:
    if tp is Address:
        return "address"
    if tp is bool:
        return "bool"
    if typing.get_origin(tp) is list:
        return "json"
    return "plain"


def children_of(db: sqlite3.Connection, outs: list[dict], sql: str) -> dict[str, list[dict]]:
    """Run *sql* (with `{ids}` where the parent ids go) once for all *outs*; its first
    column is the parent id, the other columns become the child dicts, grouped by parent
    in the order the query returns them. (Plain tuples here: this is the hot path of
    every list page.)"""
    ids = [out["id"] for out in outs]
    grouped: dict[str, list[dict]] = {i: [] for i in ids}
    cursor = db.cursor()
    cursor.row_factory = None
    cursor.execute(sql.format(ids=", ".join("?" for _ in ids)), ids)
    names = [col[0] for col in cursor.description][1:]
    for row in cursor:
        grouped[row[0]].append(dict(zip(names, row[1:], strict=True)))
    return grouped


@dataclass
class ListQuery:
    limit: int = 50
    offset: int = 0
    sort: str | None = None
    q: str | None = None
    active: bool | None = None
    filters: dict[str, str] = field(default_factory=dict)


def _integrity(res: Resource, exc: sqlite3.IntegrityError) -> Conflict | ValidationError:
    problem = integrity_problem(exc)
    if problem.kind == "unique":
        return Conflict(f"{res.unique_message} ({problem.detail})")
    return ValidationError(f"{res.name} refers to something that does not exist ({problem.kind}: {problem.detail})")


def _fetch(db: sqlite3.Connection, res: Resource, id_: str, audience: Audience) -> dict:
    if not is_uuid(id_):
        raise NotFound(f"no {res.name} with id {id_!r}")
    extra, params = res.audience_sql(audience)
    row = db.execute(
        f"SELECT * FROM {res.table} WHERE id = ?{' AND ' + extra if extra else ''}",
        (id_, *params),
    ).fetchone()
    if row is None:
        raise NotFound(f"no {res.name} with id {id_}")
    return row


def get(db: sqlite3.Connection, res: Resource, id_: str, audience: Audience = "internal") -> dict:
    return res.to_out(db, _fetch(db, res, id_, audience))


def create(db: sqlite3.Connection, res: Resource, data: Any) -> dict:
    id_ = uuid7()
    try:
        with transaction(db):
            res.check_parent(db, data, None)
            res.check(db, data, None)
            row = res.to_row(data)  # only after the rules: they guarantee it can be stored
            row["id"] = id_
            row["created_at"] = row["updated_at"] = now_iso()
            res.before_insert(db, row)
            cols = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            db.execute(f"INSERT INTO {res.table} ({cols}) VALUES ({marks})", tuple(row.values()))
            res.write_children(db, id_, data)
            res.after_write(db, id_)
            # read back inside the block: on PostgreSQL the read goes with the block's writes (one
            # round trip), a refused write is raised here, inside the `try` that maps it, and the
            # block's RELEASE waits for nothing more (core.base.pg.connection)
            return get(db, res, id_)
    except sqlite3.IntegrityError as exc:
        raise _integrity(res, exc) from None


def current_input(db: sqlite3.Connection, res: Resource, id_: str) -> tuple[dict, Any]:
    """The stored record, and the same record as an input struct (for merging changes)."""
    current = get(db, res, id_)
    fields = {name: current[name] for name in res._fields if name in current}
    return current, msgspec.convert(fields, res.In, strict=False)


def update(db: sqlite3.Connection, res: Resource, id_: str, patch: Any) -> dict:
    changes = {f: v for f in patch.__struct_fields__ if (v := getattr(patch, f)) is not UNSET}
    try:
        with transaction(db):
            current, before = current_input(db, res, id_)
            merged = msgspec.structs.replace(before, **changes)
            res.check_parent(db, merged, current)
            res.check(db, merged, current)
            row = res.to_row(merged)
            row["updated_at"] = now_iso()
            sets = ", ".join(f"{col} = ?" for col in row)
            db.execute(f"UPDATE {res.table} SET {sets} WHERE id = ?", (*row.values(), id_))
            if any(name in changes for name in res.children):
                res.write_children(db, id_, merged)
            res.after_write(db, id_)
            return get(db, res, id_)  # inside the block, as in create()
    except sqlite3.IntegrityError as exc:
        raise _integrity(res, exc) from None


def list_(db: sqlite3.Connection, res: Resource, query: ListQuery, audience: Audience = "internal") -> dict:
    where, params = _where(db, res, query, audience)
    order = _order(res, query.sort)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total = db.execute(f"SELECT count(*) AS n FROM {res.table}{clause}", params).fetchone()["n"]
    rows = db.execute(
        f"SELECT * FROM {res.table}{clause} ORDER BY {order} LIMIT ? OFFSET ?",
        (*params, query.limit, query.offset),
    ).fetchall()
    return {
        "items": res.to_outs(db, rows),
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
    }


def _where(db: sqlite3.Connection, res: Resource, query: ListQuery, audience: Audience) -> tuple[list[str], list]:
    where: list[str] = []
    params: list = []
    for name, value in query.filters.items():
        if name not in res.filters:
            raise ValidationError(
                f"cannot filter {res.name}s by {name!r}; filters: {', '.join(res.filters) or 'none'}",
                field=name,
            )
        where.append(f"{name} = ?")
        params.append(value)
    if query.active is not None:
        where.append("active = ?")
        params.append(int(query.active))
    if query.q:
        _search(db, res, query.q, where, params)
    extra, extra_params = res.audience_sql(audience)
    if extra:
        where.append(extra)
        params.extend(extra_params)
    return where, params


def _search(db: sqlite3.Connection, res: Resource, text: str, where: list[str], params: list) -> None:
    """Every word must occur in one of the searched columns (case-insensitive substring),
    through the trigram index where there is one (`core.base.sql.word_search`). A NUL cannot
    be searched for (no stored name holds one) and ends an FTS5 phrase early: refused, not a 500."""
    if "\x00" in text:
        raise ValidationError("q must not contain NUL characters", field="q")
    for word in text.split():
        clause, values = word_search(db, res.search_index, res.search, word)
        where.append(clause)
        params.extend(values)


def _order(res: Resource, sort: str | None) -> str:
    key = sort or res.default_sort
    desc = key.startswith("-")
    column = key.lstrip("-")
    if column not in res.sorts:
        raise ValidationError(
            f"cannot sort {res.name}s by {column!r}; choose one of: {', '.join(res.sorts)}",
            field="sort",
        )
    collate = " COLLATE NOCASE" if column in res.search else ""
    return f"{column}{collate} {'DESC' if desc else 'ASC'}, id"


def require(db: sqlite3.Connection, table: str, id_: str, what: str, field: str,
            current: dict | None = None) -> dict:
    """Load a referenced row or fail with a validation error naming the field.

    A *new* reference to a deactivated record is refused (no new performance at a closed
    venue); a reference the record already had (*current*) stays valid, so deactivating
    something never makes the records that use it unchangeable.
    """
    row = db.execute(f"SELECT * FROM {table} WHERE id = ?", (id_,)).fetchone()
    if row is None:
        raise ValidationError(f"{field}: there is no {what} with id {id_}", field=field)
    if not row.get("active", 1) and not _already_referenced(current, field, id_):
        label = row.get("name") or row.get("title") or id_
        raise ValidationError(f"{field}: {what} {label!r} is deactivated", field=field)
    return row


def _already_referenced(current: dict | None, field: str, id_: str) -> bool:
    if current is None:
        return False
    value = current.get(field)
    return id_ in value if isinstance(value, list) else value == id_
