"""RFC 9457 problem+json responses, and the middleware that turns every error into one.

Clients branch on `type`, which is stable: `urn:tessera:problem:<slug>`. `detail` is a
sentence for a person; `field` (when known) names the offending input.
"""

from __future__ import annotations

import logging
import re

import msgspec
from aiohttp import web

from core.base.errors import TesseraError

log = logging.getLogger("tessera.hub")
PROBLEM_TYPE = "urn:tessera:problem:"
PROBLEM_MEDIA = "application/problem+json"
MAX_BODY_BYTES = 1024 * 1024
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
# Extension members (RFC 9457 section 3.2) an error may carry to the client: the seats a lost race
# names, the seats to try instead, a ring sale's variant step, the German sentence of a refusal the
# box office reads out (`detail_de`, e.g. a choice voucher refused). Any other extra of an error (a
# login's pending code) stays on the server.
PUBLIC_MEMBERS = ("seats", "alternatives", "variant_id", "suggestion", "detail_de")


class ApiError(TesseraError):
    """An HTTP-level problem (bad body, auth, size) raised by the hub itself."""

    def __init__(self, status: int, slug: str, title: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail, field=field)
        self.status, self.slug, self.title = status, slug, title


def problem_body(status: int, slug: str, title: str, detail: str, *, field: str | None = None,
                 instance: str | None = None, members: dict | None = None) -> bytes:
    """The encoded problem+json document: the one shape of every hub error (the sync routes sign it)."""
    body: dict = {k: v for k, v in (members or {}).items() if k in PUBLIC_MEMBERS}
    body |= {"type": PROBLEM_TYPE + slug, "title": title, "status": status, "detail": detail}
    if field:
        body["field"] = field
    if instance:
        body["instance"] = instance
    return msgspec.json.encode(body)


def problem(status: int, slug: str, title: str, detail: str, *, field: str | None = None,
            instance: str | None = None, members: dict | None = None) -> web.Response:
    body = problem_body(status, slug, title, detail, field=field, instance=instance, members=members)
    return web.Response(status=status, body=body, content_type=PROBLEM_MEDIA)


def from_msgspec(exc: Exception) -> ApiError:
    """Map a msgspec decode/validation error to a stable problem with a readable detail."""
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return ApiError(400, "malformed-json", "Malformed JSON", f"the body is not valid JSON: {exc}")
    text = str(exc)
    match = _AT.search(text)
    field = match.group("path") if match else None
    message = _AT.sub("", text).replace("`", "")
    where = f"{field}: " if field else ""
    if "unknown field" in message:
        name = message.rsplit(" ", 1)[-1]
        where = f"{field}." if field else ""
        return ApiError(400, "unknown-field", "Unknown field",
                        f"unknown field {where}{name}; check the spelling against the API document",
                        field=f"{where}{name}")
    if "missing required field" in message:
        name = message.rsplit(" ", 1)[-1]
        return ApiError(400, "missing-field", "Missing field", f"{where}required field {name} is missing",
                        field=f"{field + '.' if field else ''}{name}")
    if message.startswith("Expected") and ", got " in message:
        return ApiError(400, "invalid-type", "Wrong type", f"{where}{message}", field=field)
    return ApiError(422, "validation-failed", "Invalid input", f"{where}{message}", field=field)


@web.middleware
async def problem_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TesseraError as exc:
        return problem(exc.status, exc.slug, exc.title, exc.detail, field=exc.field, instance=request.path,
                       members=exc.extra)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        err = from_msgspec(exc)
        return problem(err.status, err.slug, err.title, err.detail, field=err.field, instance=request.path)
    except web.HTTPRequestEntityTooLarge:
        return problem(413, "body-too-large", "Body too large",
                       f"the request body exceeds the limit of {MAX_BODY_BYTES} bytes", instance=request.path)
    except web.HTTPNotFound:
        return problem(404, "not-found", "Not found", f"there is no resource at {request.path}",
                       instance=request.path)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return problem(405, "method-not-allowed", "Method not allowed",
                       f"{request.method} is not allowed here; use {allowed}", instance=request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, "http-error", exc.reason, exc.text or exc.reason, instance=request.path)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "internal-error", "Internal error",
                       "the hub failed to process this request; the error was logged", instance=request.path)
