"""The ``Idempotency-Key`` header: a retry with the same key and body gets the first response,
success or refusal (a 5xx is not kept: its retry runs again); the same key with another body is
a 422."""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from pydantic import BaseModel

from loyalty.api.access import OPEN_ROUTES
from loyalty.errors import DomainError
from loyalty.settings import settings
from loyalty.store import dynamo
from loyalty.store.idempotency import IdempotencyStore, StoredResponse
from loyalty.web import actor_of, problem

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@cache
def _store() -> IdempotencyStore:
    return IdempotencyStore(settings().ledger_table)


def _header(app: APIGatewayRestResolver) -> str | None:
    return app.current_event.headers.get("Idempotency-Key") or app.current_event.headers.get("idempotency-key")


def idempotency_middleware(app: APIGatewayRestResolver, next_middleware: Any) -> Response:
    key = _header(app)
    event = app.current_event
    if event.http_method != "POST" or key is None or (event.http_method, event.resource) in OPEN_ROUTES:
        return next_middleware(app)  # a public route has no tenant to keep answers for (and needs none)
    if not KEY_PATTERN.match(key):
        return problem(
            400,
            "bad-idempotency-key",
            "Bad Idempotency-Key",
            "Idempotency-Key must be 1 to 128 characters of A-Z a-z 0-9 _ . : -.",
        )
    tenant_id = actor_of(app).tenant_id
    event = app.current_event
    digest = hashlib.sha256(f"{event.http_method} {event.path}\n{event.body or ''}".encode()).hexdigest()
    stored = dynamo.with_retries(lambda: _store().get(tenant_id, key))
    if stored is not None:
        if stored.fingerprint != digest:
            return problem(
                422,
                "idempotency-key-reused",
                "Idempotency-Key Reused",
                "This Idempotency-Key was used with another request; use a new key for a new request.",
            )
        response = Response(status_code=stored.status, content_type=stored.content_type, body=stored.body)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    try:
        response = next_middleware(app)
    except DomainError as error:  # a refusal is an answer too: replayed like a success, not re-run
        response = problem(error.status, error.slug, error.title, error.detail, **error.extra)
    if response.status_code < 500:
        body = _serialized(response.body)
        if body is not None:
            content_type = str(response.headers.get("Content-Type", "application/json"))
            record = StoredResponse(digest, response.status_code, body, content_type)
            dynamo.with_retries(lambda: _store().put(tenant_id, key, record))
    return response


def _serialized(body: Any) -> str | None:
    if isinstance(body, str):
        return body
    if isinstance(body, BaseModel):
        return body.model_dump_json()
    if isinstance(body, dict | list):
        return json.dumps(body, separators=(",", ":"))
    return None
