"""The served OpenAPI document, made true to what the API answers.

Powertools generates the document from the routes: paths, parameters with their constraints,
request bodies and success schemas (a route that answers 201 says so in its decorator's
``responses=``). ``finalize`` corrects, in this one place, what Powertools cannot know:

* every error answer is ``application/problem+json`` (RFC 9457) with the shared ``Problem``
  schema, one reusable response per status in ``components.responses``:

  - on every operation, what any request may get: 400 (broken or too deeply nested JSON, a bad
    ``Idempotency-Key``), 401 (no valid key: API Gateway's answer), 403 (the key's role may not),
    413 (body over 64 KB), 415 (a body that is not JSON), 429 (throttled by API Gateway) and 503
    (busy, or the function failed: retry the same request);
  - 422 where there is something to validate: parameters or a body (invalid fields, an
    ``Idempotency-Key`` reused for another request);
  - 404 where an id may name nothing (an id in the path, or ``CAN_BE_NOT_FOUND``);
  - 409 where the domain may refuse a conflicting write (``CAN_CONFLICT``);

* Powertools' own 422 (``HTTPValidationError`` as ``application/json``) is removed: the API never
  answers that shape;
* every POST documents the optional ``Idempotency-Key`` header it accepts.

405 is not documented: it answers a method that no operation of the path has.
"""

from __future__ import annotations

import copy
import json
from typing import Any

PROBLEM_JSON = "application/problem+json"
REF = "#/components/responses/"

# HTTP status -> (its name in components.responses, its description). The problems' extra members are
# named in the descriptions; the schema allows them (additionalProperties).
ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "BadRequest",
        "The body is not valid JSON or nests deeper than 16 levels, or the Idempotency-Key header is not "
        "1 to 128 characters of A-Z a-z 0-9 _ . : -.",
    ),
    401: ("Unauthorized", "No API key, or not a valid one: send Authorization: Bearer <key>."),
    403: ("Forbidden", "This key's role may not do this: `permission` and `role` say what is missing."),
    404: ("NotFound", "An id names nothing in this tenant (`member_id`, `hold_id`, `order_id`, `key_id`...)."),
    409: (
        "Conflict",
        "Refused by what is recorded: the same business id with other data, too few points (`available`), "
        "more than the order allows (`max_points`, `available`), a hold no longer open (`hold_status`), "
        "more than can be refunded (`refundable`), a revoked key.",
    ),
    410: ("Gone", "It exists but is no longer valid: an expired coupon (`valid_until`)."),
    413: ("ContentTooLarge", "The body is over 64 KB."),
    415: ("UnsupportedMediaType", "The body is not JSON: send it with Content-Type: application/json."),
    422: (
        "InvalidRequest",
        "Fields to fix: `errors` lists each one (`field`, `message`, `type`); also an Idempotency-Key "
        "reused for another request.",
    ),
    429: ("TooManyRequests", "Throttled: slow down and retry with backoff."),
    503: (
        "ServiceUnavailable",
        "Busy, or the function failed: retry the same request (with the same Idempotency-Key), after "
        "`Retry-After` seconds when it is given.",
    ),
}
EVERY_OPERATION = (400, 401, 403, 413, 415, 429, 503)

# Beyond an id in the path: operations whose body or query names something that may not exist.
CAN_BE_NOT_FOUND = {
    ("POST", "/v1/members"),  # program_id
    ("POST", "/v1/cards"),  # member_id
    ("GET", "/v1/reports/summary"),  # ?program_id=
    ("POST", "/v1/broadcasts"),  # segment.program_id
}
# Operations the domain may refuse with a 409 (loyalty.errors.Conflict and InsufficientPoints).
CAN_CONFLICT = {
    ("POST", "/v1/members"),
    ("POST", "/v1/members/{member_id}/purchases"),
    ("POST", "/v1/members/{member_id}/holds"),
    ("POST", "/v1/holds/{hold_id}/capture"),
    ("POST", "/v1/holds/{hold_id}/release"),
    ("POST", "/v1/members/{member_id}/redemptions"),
    ("POST", "/v1/members/{member_id}/refunds"),
    ("POST", "/v1/members/{member_id}/adjustments"),
    ("POST", "/v1/members/{member_id}/transfers"),
    ("POST", "/v1/keys/{key_id}/rotate"),
    ("DELETE", "/v1/keys/{key_id}"),
    ("PUT", "/v1/programs/{program_id}"),
    ("PUT", "/v1/members/{member_id}/program"),
    ("POST", "/v1/cards/{number}/link"),
    ("POST", "/v1/cards/{number}/purchases"),
    ("POST", "/v1/cards/{number}/redemptions"),
    ("POST", "/v1/cards/{number}/sale"),
    ("POST", "/v1/cards/{number}/replace"),
    ("POST", "/v1/cards/{number}/handover"),
    ("PUT", "/v1/members/{member_id}/company"),
    ("PUT", "/v1/members/{member_id}/managers/{manager_id}"),
    ("PUT", "/v1/members/{member_id}/consents"),  # an erased member
    ("POST", "/v1/coupons/{code}/redeem"),  # used already (`used_at`)
    ("POST", "/v1/broadcasts"),  # the same broadcast_id with another body
}
# Operations that may answer 410: the thing exists but is no longer valid (an expired coupon).
CAN_BE_GONE = {("POST", "/v1/coupons/{code}/redeem")}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "An RFC 9457 problem. Further members (available, max_points, retry_after, permission, "
    "limit, role, hold_status, refundable, field, request_id...) say more where they help.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "pattern": "^urn:problem:loyalty:[a-z0-9-]+$", "description": "What kind."},
        "title": {"type": "string", "minLength": 1},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status."},
        "detail": {"type": "string", "minLength": 1, "description": "What happened, and what to do."},
        "errors": {
            "type": "array",
            "description": "One entry per field to fix (422).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": "string", "description": "e.g. amount, consents.marketing, query:limit"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
# Powertools' validation error models, which the API never answers.
UNUSED_SCHEMAS = ("HTTPValidationError", "ValidationError", "ResponseValidationError")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def finalize(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of Powertools' ``document`` that says what the API really answers."""
    from loyalty.api.access import OPEN_ROUTES  # here: loyalty.api imports loyalty.web
    from loyalty.api.idempotency import KEY_PATTERN

    document = copy.deepcopy(document)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    components["responses"] = {name: _error_response(status) for status, (name, _) in ERRORS.items()}
    components.setdefault("parameters", {})["IdempotencyKey"] = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Retrying with the same key and body replays the first answer (kept 7 days); "
        "the same key with another request is a 422.",
        "schema": {"type": "string", "pattern": KEY_PATTERN.pattern},
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            route = (method.upper(), path)
            public = route in OPEN_ROUTES  # no API key: no 401, no Idempotency-Key (no tenant to keep it for)
            if method == "post" and not public:
                operation.setdefault("parameters", []).append({"$ref": "#/components/parameters/IdempotencyKey"})
            statuses = set(EVERY_OPERATION) - ({401} if public else set())
            if public:
                operation["security"] = []
            if operation.get("parameters") or "requestBody" in operation:
                statuses.add(422)
            if "{" in path or route in CAN_BE_NOT_FOUND:
                statuses.add(404)
            if route in CAN_CONFLICT:
                statuses.add(409)
            if route in CAN_BE_GONE:
                statuses.add(410)
            answers = operation.get("responses", {})
            successes = {code: answer for code, answer in answers.items() if str(code)[0] in "123"}
            errors = {str(status): {"$ref": REF + ERRORS[status][0]} for status in sorted(statuses)}
            operation["responses"] = {**dict(sorted(successes.items())), **errors}
    kept = {name: schema for name, schema in schemas.items() if name not in UNUSED_SCHEMAS}
    text = json.dumps({**document, "components": {**components, "schemas": kept}})
    for name in UNUSED_SCHEMAS:
        if f'"#/components/schemas/{name}"' not in text:
            schemas.pop(name, None)
    return document


def _error_response(status: int) -> dict[str, Any]:
    description = ERRORS[status][1]
    schema = {"allOf": [{"$ref": "#/components/schemas/Problem"}, {"properties": {"status": {"const": status}}}]}
    response: dict[str, Any] = {"description": description, "content": {PROBLEM_JSON: {"schema": schema}}}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}}
    if status == 503:
        response["headers"] = {
            "Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait before the retry."}
        }
    return response
