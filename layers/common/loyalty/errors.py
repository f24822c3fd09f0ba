"""Domain errors. The API edge maps each to one HTTP status and an RFC 9457 problem in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a caller can act on. ``slug`` names the problem type."""

    status = 400
    slug = "bad-request"
    title = "Bad Request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidRequest(DomainError):
    status = 422
    slug = "invalid-request"
    title = "Invalid Request"


class NotFound(DomainError):
    status = 404
    slug = "not-found"
    title = "Not Found"


class Conflict(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class InsufficientPoints(Conflict):
    slug = "insufficient-points"
    title = "Insufficient Points"


class IdempotencyKeyReused(DomainError):
    status = 422
    slug = "idempotency-key-reused"
    title = "Idempotency-Key Reused"


class Unauthorized(DomainError):
    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(DomainError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class Unavailable(DomainError):
    """The store stayed busy through every retry; the same request may be retried as is."""

    status = 503
    slug = "unavailable"
    title = "Service Unavailable"
