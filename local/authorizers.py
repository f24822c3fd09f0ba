"""Lambda authorizers, run the way API Gateway (REST) runs them.

TOKEN: the identity header must be present and match ``ValidationExpression``, else 401 without
calling the function. The function's answer is a principal, an IAM policy and a context; the
policy is cached per token for ``ReauthorizeEvery`` seconds and evaluated against each request's
``methodArn`` (so a cached policy must use wildcards to cover other routes, as in AWS). REQUEST:
the identity sources (headers, query strings) form the cache key.

Outcomes: ``Exception("Unauthorized")`` from the function -> 401; no Allow for
``execute-api:Invoke`` on the methodArn, or an explicit Deny -> 403; any other error -> 500.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from local.model import AuthorizerSpec
from local.workers import InvokeResult


class Outcome(Enum):
    ALLOW = "allow"
    UNAUTHORIZED = "UNAUTHORIZED"  # 401
    ACCESS_DENIED = "ACCESS_DENIED"  # 403
    FAILURE = "AUTHORIZER_FAILURE"  # 500: the function failed
    CONFIGURATION_ERROR = "AUTHORIZER_CONFIGURATION_ERROR"  # 500: the answer is malformed / not supported


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    principal_id: str | None = None
    context: dict[str, str] = field(default_factory=dict)
    latency_ms: int = 0
    explicit_deny: bool = False


@dataclass(frozen=True)
class _Grant:
    principal_id: str
    policy: dict[str, Any]
    context: dict[str, str]
    expires: datetime


def _glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """IAM wildcards: ``*`` any run of characters (``/`` and ``:`` included), ``?`` one character."""
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile(regex, re.IGNORECASE if ignore_case else 0)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _statement_applies(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        action_ok = any(_glob(item, ignore_case=True).fullmatch(action) for item in _as_list(statement["Action"]))
    else:
        excluded = _as_list(statement.get("NotAction"))
        action_ok = not any(_glob(item, ignore_case=True).fullmatch(action) for item in excluded)
    if "Resource" in statement:
        resource_ok = any(_glob(item).fullmatch(resource) for item in _as_list(statement["Resource"]))
    else:
        resource_ok = not any(_glob(item).fullmatch(resource) for item in _as_list(statement.get("NotResource")))
    return action_ok and resource_ok


def evaluate_policy(policy: Mapping[str, Any], method_arn: str) -> tuple[bool, bool]:
    """(allowed, explicitly denied) for ``execute-api:Invoke`` on ``method_arn``."""
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        if not isinstance(statement, dict) or not _statement_applies(statement, "execute-api:Invoke", method_arn):
            continue
        effect = str(statement.get("Effect", "")).capitalize()
        if effect == "Deny":
            return False, True
        if effect == "Allow":
            allowed = True
    return allowed, False


def _context_values(context: Any) -> dict[str, str] | None:
    """API Gateway passes context values on as strings (``true``, ``42``); objects and arrays
    are a configuration error."""
    if context is None:
        return {}
    if not isinstance(context, dict):
        return None
    values: dict[str, str] = {}
    for key, value in context.items():
        if isinstance(value, bool):
            values[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            values[key] = str(value)
        elif value is None:
            continue
        else:
            return None
    return values


Invoke = Callable[[str, dict[str, Any]], InvokeResult]


class AuthorizerRunner:
    """Runs authorizer functions and keeps their cache. ``now`` is the stack clock: a time travel
    past ``ReauthorizeEvery`` expires cached answers, as that much time would have passed."""

    def __init__(self, invoke: Invoke, now: Callable[[], datetime]) -> None:
        self._invoke = invoke
        self._now = now
        self._cache: dict[tuple[str, tuple[str, ...]], _Grant] = {}
        self._lock = threading.Lock()

    def authorize(
        self,
        spec: AuthorizerSpec,
        *,
        method_arn: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        request_event: Callable[[], dict[str, Any]],
    ) -> Decision:
        """``headers`` must be case-insensitive; ``request_event`` builds the proxy-style event a
        REQUEST authorizer receives."""
        if spec.kind == "TOKEN":
            token = headers.get(spec.header)
            if not token or (spec.validation is not None and not spec.validation.fullmatch(token)):
                return Decision(Outcome.UNAUTHORIZED)
            identity: tuple[str, ...] = (token,)
            event: dict[str, Any] | None = None
        elif spec.kind == "REQUEST":
            values = [headers.get(name) for name in spec.identity_headers]
            values += [query.get(name) for name in spec.identity_query]
            # Identity sources are required only when results are cached (AWS's rule).
            if spec.ttl_seconds > 0 and any(not value for value in values):
                return Decision(Outcome.UNAUTHORIZED)
            identity = tuple(value or "" for value in values)
            event = request_event()
            event.pop("body", None)
            event.pop("isBase64Encoded", None)
            event = {"type": "REQUEST", "methodArn": method_arn, **event}
        else:
            return Decision(Outcome.CONFIGURATION_ERROR)

        grant = self._cached(spec, identity) if spec.ttl_seconds > 0 else None
        latency = 0
        if grant is None:
            started = time.monotonic()
            if event is None:
                event = {"type": "TOKEN", "authorizationToken": identity[0], "methodArn": method_arn}
            assert spec.function is not None
            result = self._invoke(spec.function, event)
            latency = int((time.monotonic() - started) * 1000)
            if not result.ok:
                unauthorized = result.error_message == "Unauthorized"
                return Decision(Outcome.UNAUTHORIZED if unauthorized else Outcome.FAILURE, latency_ms=latency)
            grant = self._grant(result.payload, spec.ttl_seconds)
            if grant is None:
                return Decision(Outcome.CONFIGURATION_ERROR, latency_ms=latency)
            if spec.ttl_seconds > 0:
                with self._lock:
                    self._cache[(spec.name, identity)] = grant
        allowed, denied = evaluate_policy(grant.policy, method_arn)
        return Decision(
            Outcome.ALLOW if allowed else Outcome.ACCESS_DENIED,
            principal_id=grant.principal_id,
            context=grant.context,
            latency_ms=latency,
            explicit_deny=denied,
        )

    def _cached(self, spec: AuthorizerSpec, identity: tuple[str, ...]) -> _Grant | None:
        with self._lock:
            grant = self._cache.get((spec.name, identity))
            if grant is not None and grant.expires <= self._now():
                del self._cache[(spec.name, identity)]
                return None
            return grant

    def _grant(self, payload: Any, ttl_seconds: int) -> _Grant | None:
        if not isinstance(payload, dict):
            return None
        policy, principal = payload.get("policyDocument"), payload.get("principalId")
        context = _context_values(payload.get("context"))
        if not isinstance(policy, dict) or principal is None or context is None:
            return None
        return _Grant(str(principal), policy, context, self._now() + timedelta(seconds=ttl_seconds))
