"""End-to-end fixtures: a small HTTP client for the local stack of infra/template.yaml.

Every test talks to the API over real HTTP (``requests``) with the demo tenant's key. The stack is
shared by every test of one xdist worker, so each test enrols its own members (uuid ids) and never
moves the shared stack's clock (a test that travels in time starts a private stack).

The client checks what every answer must carry, whatever the test: a request id, and for errors
an RFC 9457 problem. ``Api.problem`` checks one error answer precisely.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from loyalty.admin import DEMO_WELCOME_BONUS

PROBLEM_JSON = "application/problem+json"
PROBLEM_PREFIX = "urn:problem:loyalty:"
TIMEOUT = 60

# The demo program (loyalty.admin.demo_program): RUB, 1 point = 1.00 RUB (100 minor units),
# Silver accrues 3 % below a lifetime spend of 50,000.00 RUB, an order may be paid 15 % in points,
# and every member enrolled in it starts with a welcome bonus of WELCOME points (a ``welcome_bonus``
# entry, in a lot that burns a year later like any accrual).
CURRENCY = "RUB"
POINT_VALUE = 100
SILVER_BP = 300
REDEEM_SHARE_BP = 1_500
WELCOME = DEMO_WELCOME_BONUS


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def silver_points(amount: int) -> int:
    return amount * SILVER_BP // (10_000 * POINT_VALUE)


class Api:
    """The stack's API as one tenant (the demo tenant's integration key) sees it."""

    def __init__(self, stack: dict[str, Any], key: str | None) -> None:
        self.stack = stack
        self.url = stack["url"]
        self.key = key
        self.session = requests.Session()

    # ---------------------------------------------------------------- raw calls
    def headers(self, extra: dict[str, str] | None = None, *, auth: bool = True) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}"} if auth and self.key else {}
        return {**headers, **(extra or {})}

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        session: requests.Session | None = None,
    ) -> requests.Response:
        """One request. ``json_body`` is sent as JSON; ``data`` as is (set Content-Type yourself)."""
        kwargs: dict[str, Any] = {"headers": self.headers(headers, auth=auth), "timeout": TIMEOUT}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        answer = (session or self.session).request(method, self.url + path, **kwargs)
        self.check_envelope(answer)
        return answer

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, json_body=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    @staticmethod
    def check_envelope(answer: requests.Response) -> None:
        """What every answer carries: a request id; the function's answers echo it as X-Request-Id.

        API Gateway's own answers (no route, 401, 5xx; they carry ``x-amzn-ErrorType``) have
        only ``x-amzn-RequestId``: see test_members_http.py for that gap.
        """
        request_id = answer.headers.get("x-amzn-RequestId")
        assert request_id, f"no request id on {answer.status_code} {answer.request.method} {answer.url}"
        if "x-amzn-ErrorType" not in answer.headers:
            assert answer.headers.get("X-Request-Id") == request_id, dict(answer.headers)
        if answer.status_code >= 400:
            assert answer.headers.get("Content-Type") == PROBLEM_JSON, (answer.status_code, answer.text)

    @staticmethod
    def problem(answer: requests.Response, status: int, slug: str | None = None) -> dict[str, Any]:
        """Assert ``answer`` is an RFC 9457 problem with this status (and type slug); return it."""
        assert answer.status_code == status, f"expected {status}, got {answer.status_code}: {answer.text}"
        assert answer.headers["Content-Type"] == PROBLEM_JSON, answer.headers
        body = answer.json()
        assert isinstance(body, dict), body
        assert body["status"] == status, body
        assert isinstance(body["type"], str) and body["type"].startswith(PROBLEM_PREFIX), body
        if slug is not None:
            assert body["type"] == PROBLEM_PREFIX + slug, body
        assert isinstance(body["title"], str) and body["title"], body
        assert isinstance(body["detail"], str) and body["detail"], body
        return body

    @staticmethod
    def fields_named(problem: dict[str, Any]) -> set[str]:
        """The fields a 422 blames: the ``errors`` list of schema errors, or a domain error's ``field``."""
        named = {error["field"] for error in problem.get("errors", [])}
        if "field" in problem:
            named.add(problem["field"])
        return named

    # ---------------------------------------------------------------- the domain, in HTTP
    def enrol(self, member_id: str | None = None, **profile: Any) -> str:
        member_id = member_id or new_id("m")
        answer = self.post("/v1/members", {"member_id": member_id, **profile})
        assert answer.status_code == 201, answer.text
        return member_id

    def purchase(self, member_id: str, order_id: str, amount: int) -> dict[str, Any]:
        body = {"order_id": order_id, "amount": amount, "currency": CURRENCY}
        answer = self.post(f"/v1/members/{member_id}/purchases", body)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def member(self, member_id: str) -> dict[str, Any]:
        answer = self.get(f"/v1/members/{member_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def entries(self, member_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """Every entry of the member, newest first, following ``next_cursor`` to the end."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(1000):
            path = f"/v1/members/{member_id}/entries?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            answer = self.get(path)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            assert len(page["entries"]) <= limit
            found += page["entries"]
            cursor = page["next_cursor"]
            if cursor is None:
                return found
            assert page["entries"], "a page with a next_cursor must not be empty"
        raise AssertionError("entries never ended")

    def state(self, member_id: str) -> dict[str, Any]:
        """What a member looks like from outside: its view and its whole ledger."""
        return {"member": self.member(member_id), "entries": self.entries(member_id)}

    def balanced(self, member_id: str) -> dict[str, Any]:
        """``state``, after checking the ledger invariant as a client sees it: balance == the sum of
        the entries, each entry's ``balance_after`` chaining from the one before, and
        ``available == balance - held >= 0``."""
        state = self.state(member_id)
        running = 0
        for entry in reversed(state["entries"]):
            running += entry["points"]
            assert entry["balance_after"] == running, entry
        member = state["member"]
        assert running == member["balance"], (running, member)
        assert member["available"] == member["balance"] - member["held"] >= 0, member
        return state


def retry_busy(send: Any, *, deadline_seconds: float = 90) -> tuple[requests.Response, int]:
    """Send the same request until it is not "busy"; return the final answer and the retries.

    Busy is the API's 503 (the ledger stayed contended through its own retries) or API
    Gateway's 502/503 (``DEFAULT_5XX``: the function failed or timed out, e.g. under heavy
    contention on a slow machine). Both invite a retry of the same request, which the ledger's
    business keys make safe.
    """
    deadline = time.monotonic() + deadline_seconds
    retries = 0
    while True:
        answer = send()
        if answer.status_code not in (502, 503):
            return answer, retries
        body = json.loads(answer.text)
        assert body["type"] == PROBLEM_PREFIX + "unavailable", answer.text
        assert time.monotonic() < deadline, f"still busy after {retries} retries: {answer.text}"
        retries += 1
        time.sleep(0.05 * min(retries, 10))


@pytest.fixture(scope="session")
def api(local_stack: dict[str, Any]) -> Iterator[Api]:
    client = Api(local_stack, local_stack["tenants"]["demo"]["api_keys"]["integration"])
    yield client
    client.session.close()
