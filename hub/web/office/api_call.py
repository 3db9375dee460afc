"""The office app acts through the API's own operations, in-process.

Why: the issue's rule is that nothing the office app does bypasses the API's rules. So a
screen that sells, moves cards, prints or manages operators does not call core functions
of its own choosing: it names an API operation (`POST /orders`), and this module runs that
operation's handler with the body decoded by the operation's own msgspec type and the
staff member's role checked against the operation's roles, exactly as a bearer token would
be. A rule added to the API later holds for the office at once.

The identity the handler sees is the staff member (`name` = user name, e.g. the seller of a
phone order), never a token. Errors come back as `Refused` with the API's status and detail,
for the screen to show next to the form.
"""

from __future__ import annotations

import inspect
from typing import Any

import msgspec
from aiohttp import web

from core.base.errors import TesseraError
from hub.services import staff
from hub.web.api import API, DB, Ctx
from hub.web.offload import OFFLOAD
from hub.web.problems import from_msgspec


class Refused(Exception):
    """The API refused: *status* and *detail* as its problem document would say, *field* if one,
    and the German *detail_de* where the rule gives one (`in_lang` picks the page's)."""

    def __init__(self, status: int, detail: str, field: str | None = None, detail_de: str | None = None) -> None:
        super().__init__(f"{status} {detail}")
        self.status, self.detail, self.field, self.detail_de = status, detail, field, detail_de

    def in_lang(self, lang: str) -> str:
        return self.detail_de if lang == "de" and self.detail_de else self.detail


def identity(me: staff.Session) -> dict:
    """What `Ctx.token` holds for a staff member: role and name as a token's would be."""
    return {"id": "staff:" + me.staff_id, "name": me.user_name, "role": me.role}


async def call(request: web.Request, me: staff.Session, method: str, path: str, body: Any = None,
               query: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Any:
    """Run the API operation *method* *path* (relative to /api/v1) as *me*; its payload.

    *body* is plain data (dicts, lists, strings) decoded with the operation's body type, so a
    field the API does not know or a value out of range is refused as the API refuses it.
    *query* values are the query strings the API would parse (its `Param` rules apply); *headers*
    what the operation reads of the request (e.g. the `Idempotency-Key` of a subscription sale)."""
    app = request.app
    try:
        op, params = app[API].find(method, path)
    except LookupError:
        raise Refused(404, f"no operation {method} {path}") from None
    if op.roles is not None and me.role not in op.roles:
        raise Refused(403, f"the role {me.role} may not {op.summary.lower()}")
    try:
        parsed = {p.name: p.parse(str(query[p.name])) for p in op.query if query and query.get(p.name) not in
                  (None, "")}
        decoded = None
        if op.body is not None:
            # strict=False: a form posts "2" for a quantity; the type and its limits still decide
            decoded = msgspec.convert(body, type=op.body, strict=False) if op.body_media == "application/json" \
                else body
        ctx = Ctx(app, app[DB], identity(me), params, parsed, decoded, headers=headers or {})
        offload = app.get(OFFLOAD) if op.offload else None  # PostgreSQL: a write off the loop, as over the API
        result = await offload.run(op.handler, ctx) if offload is not None else op.handler(ctx)
        if inspect.isawaitable(result):  # it runs on the loop: with the process's connection
            ctx.db = app[DB]
            result = await result
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        problem = from_msgspec(exc)
        raise Refused(problem.status, problem.detail, problem.field) from None
    except TesseraError as exc:
        raise Refused(exc.status, exc.detail, getattr(exc, "field", None), exc.extra.get("detail_de")) from None
    result = result[1] if isinstance(result, tuple) else result
    # an answer kept as encoded JSON (an idempotent sale's, replayed or new) is read as data
    return msgspec.json.decode(result) if isinstance(result, msgspec.Raw) else result
