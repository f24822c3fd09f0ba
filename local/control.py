"""The ``/_local`` endpoints: the local stack's own controls, which AWS does not have.

``GET /_local/health``, ``GET|POST /_local/clock`` (time travel), ``POST /_local/drain``,
``GET /_local/schedules``, and pages added with ``add_page`` (``GET /_local/reports``). Errors are
RFC 9457 problem documents (application/problem+json).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from local.clock import ClockError, Duration, LocalClock, format_rfc3339, parse_rfc3339
from local.scheduler import DEFAULT_MAX_FIRES, Scheduler, TooManyOccurrencesError


def problem(status: int, title: str, detail: str) -> Response:
    body = {
        "type": f"urn:problem:local:{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    return Response(json.dumps(body), status=status, content_type="application/problem+json")


def ok(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=200, content_type="application/json")


class BadRequestError(ValueError):
    pass


class ControlPlane:
    def __init__(
        self,
        clock: LocalClock,
        scheduler: Scheduler,
        drain: Callable[[float], bool],
        drain_timeout: float,
        health: Callable[[], dict[str, Any]],
    ) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.drain = drain
        self.drain_timeout = drain_timeout
        self.health = health
        self._routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "/_local/health"): lambda _request: ok({"status": "ok", **self.health()}),
            ("GET", "/_local/clock"): lambda _request: ok(self._clock_state()),
            ("POST", "/_local/clock"): self._travel,
            ("POST", "/_local/drain"): self._drain,
            ("GET", "/_local/schedules"): lambda _request: ok({"schedules": self.scheduler.describe()}),
        }

    def add_page(self, method: str, path: str, handler: Callable[[Request], Response]) -> None:
        """Serve another ``/_local`` endpoint (e.g. a page that needs the gateway made after this)."""
        self._routes[(method, path)] = handler

    def __call__(self, request: Request) -> Response:
        path = "/" + request.path.strip("/")
        handler = self._routes.get((request.method, path))
        if handler is None:
            if any(known == path for _, known in self._routes):
                return problem(405, "Method Not Allowed", f"{request.method} is not supported on {path}")
            known_paths = ", ".join(sorted({known for _, known in self._routes}))
            return problem(404, "Not Found", f"no local endpoint {path}; there are {known_paths}")
        try:
            return handler(request)
        except (BadRequestError, ClockError, TooManyOccurrencesError) as exc:
            return problem(400, "Bad Request", str(exc))

    def _clock_state(self) -> dict[str, Any]:
        return {"now": format_rfc3339(self.clock.now()), "offset_seconds": self.clock.offset.total_seconds()}

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        raw = request.get_data(cache=False)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BadRequestError(f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequestError("the body must be a JSON object")
        return body

    def _travel(self, request: Request) -> Response:
        body = self._body(request)
        unknown = set(body) - {"advance", "to", "max_fires", "fire"}
        if unknown:
            raise BadRequestError(f"unknown field(s): {', '.join(sorted(unknown))}")
        if ("advance" in body) == ("to" in body):
            raise BadRequestError(
                'give exactly one of "advance" (ISO 8601 duration, e.g. "P30D") or "to" (RFC 3339 date-time)'
            )
        max_fires = body.get("max_fires", DEFAULT_MAX_FIRES)
        if not isinstance(max_fires, int) or isinstance(max_fires, bool) or max_fires < 0:
            raise BadRequestError('"max_fires" must be a non-negative integer')
        fire = body.get("fire", True)
        if not isinstance(fire, bool):
            raise BadRequestError('"fire" must be true or false')
        if "advance" in body:
            target = Duration.parse(body["advance"]).after(self.clock.now())
        else:
            target = parse_rfc3339(body["to"])
        outcome = self.scheduler.travel_to(target, max_fires=max_fires, fire=fire)
        return ok({**self._clock_state(), **outcome})

    def _drain(self, request: Request) -> Response:
        body = self._body(request)
        timeout = body.get("timeout", self.drain_timeout)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise BadRequestError('"timeout" must be a positive number of seconds')
        drained = self.drain(float(timeout))
        if not drained:
            return problem(
                503,
                "Not Drained",
                f"queues and streams were still busy after {timeout} s "
                "(a failing consumer retries until its messages reach a DLQ)",
            )
        return ok({"drained": True})
