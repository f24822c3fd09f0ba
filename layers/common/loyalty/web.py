"""The API conventions every HTTP function follows.

One resolver factory: Powertools' REST resolver with pydantic validation, errors as RFC 9457
``application/problem+json`` mapped in one place, the correlation id echoed on every response,
and the OpenAPI document served at ``GET /v1/openapi.json``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Collection, Iterable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.router import Router
from pydantic import BaseModel

from loyalty.errors import DomainError, Unauthorized
from loyalty.models import Actor, Role
from loyalty.store.dynamo import is_retryable

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:problem:loyalty:"
UNAVAILABLE_DETAIL = "The ledger is busy; retry the same request (it is idempotent)."
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16

logger = Logger(child=True)
# A request that records no business metric (a read, a refusal) is normal here, not worth a
# warning line in the function's log on every such request.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": PROBLEM_TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    body.update({key: value for key, value in extra.items() if value is not None})
    return Response(status_code=status, content_type=PROBLEM_JSON, body=json.dumps(body, ensure_ascii=False))


def _location(loc: Iterable[Any]) -> str:
    """``("body", "consents", "marketing")`` -> ``consents.marketing``, ``("body", "tiers", 2,
    "threshold")`` -> ``tiers[2].threshold``; where the field lives."""
    parts = [f"[{part}]" if isinstance(part, int) else str(part) for part in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        where, parts = parts[0], parts[1:]
        if where != "body":
            return f"{where}:{'.'.join(parts).replace('.[', '[')}" if parts else where
    return ".".join(parts).replace(".[", "[") or "body"


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field; remove it",
    "json_invalid": "is not valid JSON",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
}


def validation_problem(errors: list[dict[str, Any]]) -> Response:
    """422 with one entry per field: where, and what to fix. Broken JSON is a 400."""
    if any(error.get("type") == "json_invalid" for error in errors):
        error = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (error.get("ctx") or {}).get("error", "malformed")
        return problem(400, "malformed-json", "Malformed JSON", f"The request body is not valid JSON ({reason}).")
    fields = []
    for error in errors:
        message = _MESSAGES.get(error.get("type", ""), error.get("msg", "is invalid"))
        fields.append({"field": _location(error.get("loc", ())), "message": message, "type": error.get("type")})
    summary = "; ".join(f"{f['field']} {f['message']}" for f in fields[:5])
    return problem(422, "invalid-request", "Invalid Request", f"Fix these fields: {summary}.", errors=fields)


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


def build_resolver(
    routers: Iterable[Router],
    *,
    title: str = "Loyalty engine API",
    version: str = "1.0.0",
    documented_elsewhere: Callable[[], Iterable[Router]] = tuple,
    serve_openapi: bool = True,
) -> APIGatewayRestResolver:
    """A resolver for ``routers``. With ``serve_openapi`` it also answers ``GET /v1/openapi.json``
    with ONE document for the whole API: its own routes plus ``documented_elsewhere()`` (routes
    that API Gateway sends to another function), imported only when the document is first asked
    for, so that they cost this function's cold start nothing."""
    routers = list(routers)
    app = APIGatewayRestResolver(enable_validation=True)
    for router in routers:
        app.include_router(router)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response:
        return validation_problem(list(error.errors()))

    @app.exception_handler(DomainError)
    def _domain(error: DomainError) -> Response:
        extra = dict(error.extra)
        if error.status == 422 and "field" in extra and "errors" not in extra:
            # The same shape as a validation error: one entry per field, saying what to fix.
            extra["errors"] = [{"field": extra["field"], "message": error.detail, "type": error.slug}]
        response = problem(error.status, error.slug, error.title, error.detail, **extra)
        if "retry_after" in error.extra:
            response.headers["Retry-After"] = str(error.extra["retry_after"])
        return response

    @app.not_found
    def _not_found(_: NotFoundError) -> Response:
        event = app.current_event
        allowed = sorted(
            route.method
            for route in app._static_routes + app._dynamic_routes
            if route.method != event.http_method and route.rule.match(event.path)
        )
        if allowed:
            response = problem(
                405,
                "method-not-allowed",
                "Method Not Allowed",
                f"{event.http_method} is not supported here; use {', '.join(allowed)}.",
            )
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return problem(404, "not-found", "Not Found", "No such route. The API is described at GET /v1/openapi.json.")

    @app.exception_handler(Exception)
    def _bug(error: Exception) -> Response:
        if is_retryable(error):  # a store that stayed busy where no retry loop was: still a 503
            logger.warning("store busy", exc_info=error)
            response = problem(503, "unavailable", "Service Unavailable", UNAVAILABLE_DETAIL, retry_after=1)
            response.headers["Retry-After"] = "1"
            return response
        logger.exception("unhandled error")
        return problem(500, "internal", "Internal Server Error", "An unexpected error; it was logged.")

    if serve_openapi:
        _serve_openapi(app, lambda: [*routers, *documented_elsewhere()], title=title, version=version)
    return app


def _serve_openapi(
    app: APIGatewayRestResolver, routers: Callable[[], list[Router]], *, title: str, version: str
) -> None:
    """``GET /v1/openapi.json``: Powertools' document of ``routers()``, corrected by
    ``loyalty.openapi`` to say what the API really answers (201s, problem+json errors)."""
    document: list[str] = []  # rendered once per cold start, on first request

    @app.get("/v1/openapi.json", include_in_schema=False)
    def _openapi():  # type: ignore[no-untyped-def]  # unannotated: not part of the schema
        if not document:
            from loyalty import openapi  # only the served document needs it

            whole = APIGatewayRestResolver(enable_validation=True)
            for router in routers():
                whole.include_router(router)
            generated = whole.get_openapi_json_schema(
                title=title,
                version=version,
                description="Errors are RFC 9457 application/problem+json. Every POST accepts Idempotency-Key.",
                security_schemes={"apiKey": HTTPBearer(description="Authorization: Bearer <API key>")},
                security=[{"apiKey": []}],
            )
            document.append(json.dumps(openapi.finalize(json.loads(generated)), ensure_ascii=False))
        return Response(status_code=HTTPStatus.OK, content_type="application/json", body=document[0])


def actor_of(app: APIGatewayRestResolver) -> Actor:
    """The caller, as the authorizer resolved it (tenant, key, role); 401 if it is missing."""
    return actor_from_event(app.current_event.raw_event)


def actor_from_event(event: dict[str, Any]) -> Actor:
    context = (event.get("requestContext") or {}).get("authorizer") or {}
    try:
        return Actor(tenant_id=context["tenant_id"], key_id=context["key_id"], role=Role(context["role"]))
    except (KeyError, ValueError, TypeError) as error:
        raise Unauthorized("Send a valid API key as: Authorization: Bearer <key>.") from error


def json_response(status: int, model: BaseModel) -> Response:
    return Response(status_code=status, content_type="application/json", body=model)


def _content_type(event: dict[str, Any]) -> str:
    headers = event.get("headers") or {}
    return next((str(v) for k, v in headers.items() if k.lower() == "content-type"), "").strip().lower()


def body_problem(body: str | None, content_type: str = "") -> Response | None:
    """Refuse oversized, non-JSON or too deeply nested bodies before anything parses them.

    A body must be JSON: a missing Content-Type is taken as JSON, anything else (curl's default
    ``application/x-www-form-urlencoded`` included) is a 415 that says what to send instead.
    """
    if not body:
        return None
    media_type = content_type.split(";", 1)[0].strip()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        return problem(
            415,
            "unsupported-media-type",
            "Unsupported Media Type",
            f"The body must be JSON sent with Content-Type: application/json, not {media_type}.",
        )
    if len(body.encode()) > MAX_BODY_BYTES:
        return problem(413, "too-large", "Content Too Large", f"The body may be {MAX_BODY_BYTES} bytes at most.")
    too_deep = problem(400, "too-deep", "JSON Too Deep", f"JSON may nest {MAX_JSON_DEPTH} levels at most.")
    try:
        parsed = json.loads(body)
    except RecursionError:
        return too_deep
    except ValueError as error:
        return problem(400, "malformed-json", "Malformed JSON", f"The body is not valid JSON ({error}).")
    return too_deep if _depth(parsed, MAX_JSON_DEPTH) > MAX_JSON_DEPTH else None


Guard = Callable[[dict[str, Any]], Response | None]


def handle(
    app: APIGatewayRestResolver,
    event: dict[str, Any],
    context: Any,
    guards: Iterable[Guard] = (),
    *,
    form_routes: Collection[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Resolve one API Gateway event. Every answer, error or not, carries ``X-Request-Id``.

    ``guards`` run first, in order, on the raw event (e.g. the route's permission); the first
    that answers ends the request before its body is even parsed. ``form_routes`` (method,
    resource) take an HTML form's body (RFC 8058's one-click POST), limited in size only.
    """
    request_id = (event.get("requestContext") or {}).get("requestId") or ""
    refused = next((answer for guard in guards if (answer := guard(event)) is not None), None)
    body = event.get("body") if not event.get("isBase64Encoded") else None
    if refused is None and (event.get("httpMethod", ""), event.get("resource", "")) in form_routes:
        if body and len(body.encode()) > MAX_BODY_BYTES:
            refused = problem(413, "too-large", "Content Too Large", f"The body may be {MAX_BODY_BYTES} bytes at most.")
    elif refused is None:
        refused = body_problem(body, _content_type(event))
    if refused is not None:
        result = {
            "statusCode": refused.status_code,
            "multiValueHeaders": {"Content-Type": [PROBLEM_JSON]},
            "body": refused.body,
            "isBase64Encoded": False,
        }
    else:
        result = app.resolve(event, context)
    if result.get("headers"):
        result["headers"]["X-Request-Id"] = request_id
    else:
        result.setdefault("multiValueHeaders", {})["X-Request-Id"] = [request_id]
    return result
