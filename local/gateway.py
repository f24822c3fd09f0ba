"""API Gateway (REST, Lambda proxy integration) on a local port.

Every ``Type: Api`` event becomes a route. A request is matched as API Gateway matches resources
(the most specific path wins: literal segments before ``{param}`` before ``{proxy+}``; then the
method, or ANY), authorized (see ``authorizers``), turned into the version 1.0 proxy event and
the function's answer turned back into HTTP. What API Gateway answers itself (no route, 401, 403,
413, 5xx) comes from the API's ``GatewayResponses`` in the template.

Paths are served without the stage prefix (``/v1/members``, like ``sam local``); the event still
says ``requestContext.path = "/<stage>/v1/members"`` as the deployed API would.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from local.authorizers import AuthorizerRunner, Decision, Outcome
from local.clock import LocalClock
from local.model import ApiSpec, GatewayResponseSpec, RouteSpec, StackModel
from local.template import ACCOUNT_ID, REGION
from local.workers import FunctionRuntime, InvokeResult

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit

# What API Gateway answers when the template does not customize a response type.
_DEFAULT_RESPONSES: dict[str, tuple[int, dict[str, Any]]] = {
    "MISSING_AUTHENTICATION_TOKEN": (403, {"message": "Missing Authentication Token"}),
    "UNAUTHORIZED": (401, {"message": "Unauthorized"}),
    "ACCESS_DENIED": (403, {"Message": "User is not authorized to access this resource"}),
    "AUTHORIZER_FAILURE": (500, {"message": None}),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, {"message": None}),
    "REQUEST_TOO_LARGE": (413, {"message": "Request Too Long"}),
    "BAD_GATEWAY": (502, {"message": "Internal server error"}),
}
_TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded|[\w.+-]+\+(json|xml)))")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# --------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class _Resource:
    api: str
    path: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    rank: tuple[int, ...]  # per segment: 2 literal, 1 {param}, 0 {proxy+}
    methods: dict[str, RouteSpec]


@dataclass(frozen=True)
class RouteMatch:
    route: RouteSpec
    resource_path: str
    path_parameters: dict[str, str]


def _compile(path: str) -> tuple[re.Pattern[str], tuple[str, ...], tuple[int, ...]]:
    segments = [segment for segment in path.strip("/").split("/") if segment]
    regex, names, rank = "", [], []
    for index, segment in enumerate(segments):
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        param = re.fullmatch(r"\{(\w+)\}", segment)
        if greedy:
            if index != len(segments) - 1:
                raise ValueError(f"{{proxy+}} must be the last segment: {path}")
            regex += "/(.+)"
            names.append(greedy.group(1))
            rank.append(0)
        elif param:
            regex += "/([^/]+)"
            names.append(param.group(1))
            rank.append(1)
        else:
            regex += "/" + re.escape(segment)
            rank.append(2)
    return re.compile(regex or "/"), tuple(names), tuple(rank)


class Router:
    def __init__(self, routes: list[RouteSpec]) -> None:
        resources: dict[str, _Resource] = {}
        for route in routes:
            key = "/" + route.path.strip("/")
            if key not in resources:
                pattern, names, rank = _compile(key)
                resources[key] = _Resource(route.api, key, pattern, names, rank, {})
            resource = resources[key]
            if resource.api != route.api:
                log.warning(
                    "%s is defined by two APIs (%s, %s); the local stack serves %s's",
                    key,
                    resource.api,
                    route.api,
                    resource.api,
                )
                continue
            if route.method in resource.methods:
                log.warning(
                    "%s %s is defined twice; serving %s.%s",
                    route.method,
                    key,
                    resource.methods[route.method].function,
                    resource.methods[route.method].event,
                )
                continue
            resource.methods[route.method] = route
        # Most specific first: compare segment ranks left to right.
        self._resources = sorted(resources.values(), key=lambda item: item.rank, reverse=True)

    def match(self, raw_path: str, method: str) -> RouteMatch | None:
        path = "/" + raw_path.strip("/")
        for resource in self._resources:
            found = resource.pattern.fullmatch(path)
            if not found:
                continue
            # API Gateway picks the resource first; a method it lacks is no route at all.
            route = resource.methods.get(method) or resource.methods.get("ANY")
            if route is None:
                return None
            return RouteMatch(route, resource.path, dict(zip(resource.names, found.groups(), strict=True)))
        return None


# --------------------------------------------------------------------------- gateway


def _unquote_header_value(value: str, request: Request) -> str:
    """Gateway response header values are quoted literals ("'Bearer'") or request mappings."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if value.startswith("method.request.header."):
        return request.headers.get(value.removeprefix("method.request.header."), "")
    return value


def _discard_body(request: Request, limit: int = 8 * MAX_BODY_BYTES) -> None:
    """Read (and drop) a refused body, so the client, still sending it, gets the answer instead of
    a connection reset. Beyond ``limit`` the connection just closes."""
    remaining = limit
    while remaining > 0 and request.stream.read(min(remaining, 1024 * 1024)):
        remaining -= 1024 * 1024


def _request_time(moment: datetime) -> str:
    return f"{moment:%d}/{_MONTHS[moment.month - 1]}/{moment:%Y:%H:%M:%S} +0000"


class Gateway:
    """The WSGI application serving every API of the template, plus ``/_local`` (``control``)."""

    def __init__(
        self,
        model: StackModel,
        runtime: FunctionRuntime,
        clock: LocalClock,
        control: Callable[[Request], Response],
    ) -> None:
        self.model = model
        self.runtime = runtime
        self.clock = clock
        self.control = control
        self.router = Router(model.routes)
        self.authorizers = AuthorizerRunner(self._invoke_authorizer, clock.now)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        started = time.monotonic()
        if request.path == "/_local" or request.path.startswith("/_local/"):
            response = self.control(request)
        else:
            response = self.handle(request)
            log.info(
                "%s %s -> %d (%.0f ms)",
                request.method,
                request.full_path.rstrip("?"),
                response.status_code,
                (time.monotonic() - started) * 1000,
            )
        return response(environ, start_response)

    def _invoke_authorizer(self, function: str, event: dict[str, Any]) -> InvokeResult:
        return self.runtime.invoke(function, event, self.clock.now(), source="authorizer")

    # -- one request

    def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        raw_path = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
        raw_path = raw_path.split("?", 1)[0] or "/"
        match = self.router.match(raw_path, request.method)
        api = self.model.apis[match.route.api] if match else self._fallback_api()
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            _discard_body(request)
            return self.gateway_response(api, "REQUEST_TOO_LARGE", request, request_id)
        if match is None:
            return self.gateway_response(api, "MISSING_AUTHENTICATION_TOKEN", request, request_id)
        body = request.stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return self.gateway_response(api, "REQUEST_TOO_LARGE", request, request_id)
        now = self.clock.now()

        def event(authorizer: dict[str, Any] | None = None) -> dict[str, Any]:
            return self.proxy_event(request, raw_path, match, api, body, request_id, now, authorizer)

        authorizer_context: dict[str, Any] | None = None
        if match.route.authorizer is not None:
            decision = self._authorize(api, match, request, raw_path, event)
            if decision.outcome is not Outcome.ALLOW:
                message = (
                    "User is not authorized to access this resource with an explicit deny"
                    if decision.explicit_deny
                    else None
                )
                return self.gateway_response(api, decision.outcome.value, request, request_id, message)
            authorizer_context = {
                **decision.context,
                "principalId": decision.principal_id,
                "integrationLatency": decision.latency_ms,
            }
        result = self.runtime.invoke(
            match.route.function, event(authorizer_context), now, source=f"{request.method} {match.resource_path}"
        )
        response = self.to_http(result, request_id)
        if response is None:
            return self.gateway_response(api, "BAD_GATEWAY", request, request_id)
        return response

    def _fallback_api(self) -> ApiSpec:
        """For a request that matches no route: the first API of the template answers."""
        if self.model.apis:
            return next(iter(self.model.apis.values()))
        return ApiSpec("None", "local", "local", {}, None, {})

    def _authorize(
        self, api: ApiSpec, match: RouteMatch, request: Request, raw_path: str, event: Callable[[], dict[str, Any]]
    ) -> Decision:
        name = match.route.authorizer
        spec = api.authorizers.get(name or "")
        if spec is None:
            log.error(
                "route %s %s uses authorizer %s, which API %s does not define",
                match.route.method,
                match.resource_path,
                name,
                api.logical_id,
            )
            return Decision(Outcome.CONFIGURATION_ERROR)
        method_arn = (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api.api_id}/{api.stage}/"
            f"{request.method}/{raw_path.lstrip('/')}"
        )
        return self.authorizers.authorize(
            spec,
            method_arn=method_arn,
            headers=request.headers,
            query={key: values[-1] for key, values in request.args.lists()},
            request_event=event,
        )

    def proxy_event(
        self,
        request: Request,
        raw_path: str,
        match: RouteMatch,
        api: ApiSpec,
        body: bytes,
        request_id: str,
        now: datetime,
        authorizer: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The REST API (payload 1.0) Lambda proxy event, field for field."""
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        source_ip = request.remote_addr or "127.0.0.1"
        extra = {
            "X-Forwarded-For": source_ip,
            "X-Forwarded-Port": str(request.environ.get("SERVER_PORT", "")),
            "X-Forwarded-Proto": request.scheme,
        }
        for name, value in [*request.headers.items(), *((k, v) for k, v in extra.items() if k not in request.headers)]:
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        query = {key: values[-1] for key, values in request.args.lists()}
        multi_query = {key: list(values) for key, values in request.args.lists()}
        content_type = request.mimetype or ""
        if not body:
            text, encoded = None, False
        elif self._is_binary(api, content_type, body):
            text, encoded = base64.b64encode(body).decode(), True
        else:  # a text type that is not UTF-8: API Gateway passes it on lossily, never fails on it
            text, encoded = body.decode("utf-8", errors="replace"), False
        host = request.host
        return {
            "resource": match.resource_path,
            "path": raw_path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": match.path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": api.api_id[:6],
                "resourcePath": match.resource_path,
                "httpMethod": request.method,
                "extendedRequestId": base64.b64encode(secrets.token_bytes(12)).decode(),
                "requestTime": _request_time(now),
                "path": f"/{api.stage}{raw_path}",
                "accountId": ACCOUNT_ID,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "stage": api.stage,
                "domainPrefix": host.split(".", 1)[0],
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "requestId": request_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "sourceIp": source_ip,
                    "principalOrgId": None,
                    "accessKey": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": request.headers.get("User-Agent"),
                    "user": None,
                    "apiKey": None,
                    "apiKeyId": None,
                    "clientCert": None,
                },
                "domainName": host,
                "apiId": api.api_id,
                **({"authorizer": authorizer} if authorizer is not None else {}),
            },
            "body": text,
            "isBase64Encoded": encoded,
        }

    @staticmethod
    def _is_binary(api: ApiSpec, content_type: str, body: bytes) -> bool:
        for media in api.binary_media_types:
            if (
                media == "*/*"
                or media == content_type
                or (media.endswith("/*") and content_type.startswith(media[:-1]))
            ):
                return True
        if _TEXT_TYPES.match(content_type):
            return False
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    @staticmethod
    def to_http(result: InvokeResult, request_id: str) -> Response | None:
        """The function's proxy response as HTTP; None when the function failed or answered
        something API Gateway would call a malformed Lambda proxy response."""
        if not result.ok:
            return None
        payload = result.payload
        if not isinstance(payload, dict):
            log.error("malformed Lambda proxy response (not an object): %.200r", payload)
            return None
        try:
            status = int(payload["statusCode"])
        except (KeyError, TypeError, ValueError):
            log.error("malformed Lambda proxy response (statusCode): %.200r", payload)
            return None
        body = payload.get("body")
        if body is not None and not isinstance(body, str):
            log.error("malformed Lambda proxy response (body must be a string): %.200r", payload)
            return None
        data = base64.b64decode(body) if body and payload.get("isBase64Encoded") else (body or "").encode()
        headers = Headers()
        multi = payload.get("multiValueHeaders") or {}
        # Both given: merged, and multiValueHeaders wins for a header present in both.
        for name, value in (payload.get("headers") or {}).items():
            if name not in multi:
                headers.add(name, str(value))
        for name, values in multi.items():
            for value in values if isinstance(values, list) else [values]:
                headers.add(name, str(value))
        if "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        headers["x-amzn-RequestId"] = request_id
        return Response(data, status=status, headers=headers)

    # -- API Gateway's own answers

    def gateway_response(
        self, api: ApiSpec, kind: str, request: Request, request_id: str, message: str | None = None
    ) -> Response:
        default_status, default_body = _DEFAULT_RESPONSES[kind]
        spec: GatewayResponseSpec | None = api.gateway_responses.get(kind)
        status = spec.status if spec is not None and spec.status else default_status
        if spec is None:
            spec = api.gateway_responses.get("DEFAULT_4XX" if default_status < 500 else "DEFAULT_5XX")
        if message is None:
            message = next(iter(default_body.values()))
        headers = Headers()
        body: str
        if spec is not None and spec.body is not None:
            body = self._render(spec.body, kind, message, request_id, api)
        else:
            body = json.dumps(default_body if message is None else {next(iter(default_body)): message})
        for name, value in (spec.headers if spec is not None else {}).items():
            headers[name] = _unquote_header_value(value, request)
        if "Content-Type" not in headers:
            headers["Content-Type"] = "application/json"
        headers["x-amzn-RequestId"] = request_id
        headers["x-amzn-ErrorType"] = {
            "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
            "UNAUTHORIZED": "UnauthorizedException",
            "ACCESS_DENIED": "AccessDeniedException",
            "AUTHORIZER_FAILURE": "AuthorizerFailureException",
            "AUTHORIZER_CONFIGURATION_ERROR": "AuthorizerConfigurationException",
            "REQUEST_TOO_LARGE": "RequestTooLargeException",
            "BAD_GATEWAY": "InternalServerErrorException",
        }[kind]
        return Response(body, status=status, headers=headers)

    @staticmethod
    def _render(template: str, kind: str, message: str | None, request_id: str, api: ApiSpec) -> str:
        """``$context`` variables of a response template; unknown ones render empty, as in AWS."""
        values = {
            "requestId": request_id,
            "extendedRequestId": request_id,
            "stage": api.stage,
            "apiId": api.api_id,
            "accountId": ACCOUNT_ID,
            "error.message": message or "",
            "error.messageString": json.dumps(message or ""),
            "error.responseType": kind,
            "error.validationErrorString": "",
        }

        def replace(found: re.Match[str]) -> str:
            name = found.group(1).rstrip(".")
            return values.get(name, "") + found.group(1)[len(name) :]

        return re.sub(r"\$context\.([A-Za-z0-9_.]+)", replace, template)
