"""Domain errors with a stable problem type.

Core raises these; the hub turns them into RFC 9457 problem+json responses and the CLI into
one line on stderr. The `type` slug is part of our API contract: clients branch on it.
"""

from __future__ import annotations


class TesseraError(Exception):
    """Base of every error a user may see. `slug` names the stable problem type."""

    slug = "error"
    status = 400
    title = "Request could not be processed"

    def __init__(self, detail: str, *, field: str | None = None, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class ValidationError(TesseraError):
    """Input is well-formed but breaks a rule (dates out of order, N > M, ...)."""

    slug = "validation-failed"
    status = 422
    title = "Invalid input"


class NotFound(TesseraError):
    slug = "not-found"
    status = 404
    title = "Not found"


class Conflict(TesseraError):
    """The request is valid but clashes with the current state (duplicate, in use, ...)."""

    slug = "conflict"
    status = 409
    title = "Conflict with current state"
