"""The API against its own OpenAPI document, over real HTTP: property-based tests (schemathesis)
and explicit attacker cases.

Schemathesis takes the document that ``GET /v1/openapi.json`` serves (made in process at
collection, so that each operation is a test of its own; a test proves the stack serves the same)
and sends every operation a bounded number of generated requests, valid and invalid, derandomized
so that CI sends the same requests every time. Every answer must be no 5xx, a status the document
lists for the operation, with a documented media type and a body matching the documented schema.

The property tests run on a stack of their own: they write random data, API keys and access
policies, which must not leak into the tests that share the per-worker stack. The attacker cases
use that shared stack (the ``api`` fixture) and check that nothing was written.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from loyalty.api.access import OPEN_ROUTES, ROUTE_PERMISSIONS
from tests.support.functions import load_app

from .conftest import CURRENCY, PROBLEM_JSON, TIMEOUT, Api, new_id

pytestmark = pytest.mark.e2e

SEED = 20_251_123
# Random requests per operation; the examples and coverage phases add a bounded set of their own
# (boundary values, each kind of invalid input). Hypothesis' deadline is off (schemathesis' default).
MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The demo tenant's admin key may call every route. PUT /v1/access is fuzzed as the other tenant's
# admin, so that a random policy never takes the demo admin's permissions away mid-run.
OTHER_TENANT_OPERATIONS = {("PUT", "/v1/access")}


def _document() -> dict[str, Any]:
    """``GET /v1/openapi.json`` as the API function answers it, in process: the tests are made at
    collection, before any stack runs (``test_the_served_document_is_this_one`` proves it is the
    document the stack serves)."""
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Loyalty")
    api_function = Path(__file__).resolve().parents[2] / "functions" / "api" / "app.py"
    app = load_app(api_function).app  # the API function's own resolver, not a copy of its routers
    event = {"httpMethod": "GET", "path": "/v1/openapi.json", "resource": "/v1/openapi.json", "headers": {}}
    answer = app.resolve({**event, "requestContext": {"requestId": "collect", "stage": "v1"}}, None)
    assert answer["statusCode"] == 200, answer
    return json.loads(answer["body"])


DOCUMENT = _document()
CONFIG = {
    "seed": SEED,
    "suppress-health-check": ["too_slow"],  # timing: CI machines are slow and busy
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
    "request-timeout": TIMEOUT,
}
schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict(CONFIG))


@pytest.fixture(scope="module")
def fuzzed_stack(start_local_stack: Any) -> dict[str, Any]:
    """A stack of the property tests' own, with a member rich in points, a second member, two open
    holds and two spare API keys, so that valid requests reach more than "not found"."""
    stack = start_local_stack()
    admin = Api(stack, stack["tenants"]["demo"]["api_keys"]["admin"])
    a, b = admin.enrol(new_id("fuzz")), admin.enrol(new_id("fuzz"))
    admin.purchase(a, "fuzz-order", 10**9)  # 10,000,000.00 RUB
    adjusted = admin.post(f"/v1/members/{a}/adjustments", {"adjustment_id": "fuzz", "points": 10**6, "reason": "fuzz"})
    assert adjusted.status_code == 201, adjusted.text

    def made(path: str, body: dict[str, Any], field: str) -> str:
        answer = admin.post(path, body)
        assert answer.status_code == 201, answer.text
        return answer.json()[field]

    spend = {"points": 10, "order_amount": 10**6, "currency": CURRENCY}
    ids = {
        "member_id": a,
        "to_member_id": b,
        "manager_id": b,  # linked to a (once a is made a company) and unlinked
        "hold_id:capture": made(f"/v1/members/{a}/holds", {"order_id": "fuzz-hold-1", **spend}, "hold_id"),
        "hold_id:release": made(f"/v1/members/{a}/holds", {"order_id": "fuzz-hold-2", **spend}, "hold_id"),
        "key_id:rotate": made("/v1/keys", {"role": "integration", "name": "to rotate"}, "key_id"),
        "key_id:DELETE": made("/v1/keys", {"role": "integration", "name": "to revoke"}, "key_id"),
        "number": made("/v1/cards", {"kind": "physical", "member_id": a}, "card_number"),
        "number:replace": made("/v1/cards", {"kind": "virtual", "member_id": a}, "card_number"),
        "program_id": "demo",
    }
    return {**stack, "ids": ids}


def _aim(case: schemathesis.Case, ids: dict[str, str]) -> None:
    """Valid path parameters name the stack's own member, holds and keys (a random valid id would
    only ever be "not found"); invalid ones are sent as generated."""
    if case.meta is None or case.meta.is_negative_at(ParameterLocation.PATH):
        return
    for name in case.path_parameters:
        last = case.path.rsplit("/", 1)[-1]
        for key in (f"{name}:{last}", f"{name}:{case.method.upper()}", name):
            if key in ids:
                case.path_parameters[name] = ids[key]
                break
    if (
        isinstance(case.body, dict)
        and "to_member_id" in case.body
        and not case.meta.is_negative_at(ParameterLocation.BODY)
    ):
        case.body["to_member_id"] = ids["to_member_id"]


@schema.parametrize()
def test_every_answer_is_what_the_document_says(case: schemathesis.Case, fuzzed_stack: dict[str, Any]) -> None:
    tenant = "other" if (case.method.upper(), case.path) in OTHER_TENANT_OPERATIONS else "demo"
    key = fuzzed_stack["tenants"][tenant]["api_keys"]["admin"]
    _aim(case, fuzzed_stack["ids"])
    headers = {"Authorization": f"Bearer {key}"}
    case.call_and_validate(base_url=fuzzed_stack["url"], headers=headers, checks=CHECKS, timeout=TIMEOUT)


def test_the_served_document_is_this_one(api: Api) -> None:
    answer = api.get("/v1/openapi.json", auth=False)
    assert answer.status_code == 200, answer.text
    assert answer.json() == DOCUMENT


def test_the_document_is_valid_openapi_and_errors_are_problems() -> None:
    document = DOCUMENT
    validate(document)  # openapi-spec-validator
    schema.validate()  # schemathesis' own check against the OpenAPI 3.1 schema
    assert "HTTPValidationError" not in json.dumps(document)
    created = {
        ("post", "/v1/members"),
        ("post", "/v1/members/{member_id}/purchases"),
        ("post", "/v1/members/{member_id}/holds"),
        ("post", "/v1/members/{member_id}/redemptions"),
        ("post", "/v1/members/{member_id}/refunds"),
        ("post", "/v1/members/{member_id}/adjustments"),
        ("post", "/v1/members/{member_id}/transfers"),
        ("post", "/v1/keys"),
        ("post", "/v1/cards"),
        ("post", "/v1/cards/{number}/purchases"),
        ("post", "/v1/cards/{number}/redemptions"),
        ("post", "/v1/cards/{number}/replace"),
    }
    operations = [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    public = {(method.lower(), path) for method, path in OPEN_ROUTES}  # the unsubscribe link: no API key
    assert len(operations) == len(ROUTE_PERMISSIONS) + len(public) - 1  # every route but the document itself
    for method, path, operation in operations:
        statuses = set(operation["responses"])
        successes = {status for status in statuses if status < "400"}
        created_or_not = {("post", "/v1/members"), ("put", "/v1/programs/{program_id}")}
        expected = {"201", "200"} if (method, path) in created_or_not else set()
        expected = expected or ({"201"} if (method, path) in created else {"200"})
        if (method, path) == ("post", "/v1/broadcasts"):
            expected = {"202"}  # accepted: the worker goes on after the answer
        assert successes == expected, (method, path, statuses)
        keyed = set() if (method, path) in public else {"401"}
        assert {"400", "403", "413", "415", "429", "503"} | keyed <= statuses, (method, path)
        assert ("security" in operation) == ((method, path) in public), (method, path)
        if "{" in path:
            assert {"404", "422"} <= statuses, (method, path)
        if method == "post" and (method, path) not in public:
            assert {"$ref": "#/components/parameters/IdempotencyKey"} in operation["parameters"], path
            assert "422" in statuses, (method, path)
        for status in statuses - successes:
            assert operation["responses"][status] == {"$ref": "#/components/responses/" + _name(document, status)}
    for response in document["components"]["responses"].values():
        assert list(response["content"]) == [PROBLEM_JSON]
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert problem["additionalProperties"] is True


def _name(document: dict[str, Any], status: str) -> str:
    matches = [
        name
        for name, response in document["components"]["responses"].items()
        if response["content"][PROBLEM_JSON]["schema"]["allOf"][1]["properties"]["status"]["const"] == int(status)
    ]
    assert len(matches) == 1, (status, matches)
    return matches[0]


# ---------------------------------------------------------------------------- attacker cases

ZWSP, RLO, BOM = "\u200b", "\u202e", "\ufeff"
JSON = {"Content-Type": "application/json"}


@dataclass
class Victim:
    """A member of the demo tenant with points, an order and an open hold, whose ids have letters
    with look-alikes in other scripts."""

    api: Api
    member_id: str
    order_id: str
    hold_id: str
    baseline: dict[str, Any] = field(default_factory=dict)

    def assert_untouched(self, what: str) -> None:
        after = self.api.state(self.member_id)
        if after != self.baseline:
            self.baseline = after  # the next cases compare with what is there now
            pytest.fail(f"{what} was refused but changed the member's view or ledger")


@pytest.fixture(scope="module")
def victim(api: Api) -> Victim:
    member_id = api.enrol(new_id("acme"), email="owner@example.com")
    order_id = new_id("order")
    api.purchase(member_id, order_id, 1_000_000)  # 300 points at Silver
    spend = {"order_id": new_id("o"), "points": 10, "order_amount": 1_000_000, "currency": CURRENCY}
    held = api.post(f"/v1/members/{member_id}/holds", spend)
    assert held.status_code == 201, held.text
    victim = Victim(api, member_id, order_id, held.json()["hold_id"])
    victim.baseline = api.state(member_id)
    return victim


def _send_raw_path(api: Api, method: str, path: str, body: Any = None) -> requests.Response:
    """``path`` exactly as given (requests would resolve ``../`` before sending)."""
    request = requests.Request(method, api.url + path, headers=api.headers(), json=body).prepare()
    request.url = api.url + path
    answer = api.session.send(request, timeout=TIMEOUT)
    api.check_envelope(answer)
    return answer


def _refused(answer: requests.Response) -> dict[str, Any]:
    """A 4xx problem, whatever its status."""
    assert 400 <= answer.status_code < 500, f"{answer.status_code}: {answer.text}"
    return Api.problem(answer, answer.status_code)


LOOK_ALIKES = {"a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e"}  # Cyrillic


def _look_alike(real: str) -> str:
    index = next(i for i, char in enumerate(real) if char in LOOK_ALIKES)
    return real[:index] + LOOK_ALIKES[real[index]] + real[index + 1 :]


def _fullwidth(real: str) -> str:
    """The first letter in its fullwidth form, which NFKC normalization turns back into the real id."""
    return chr(ord(real[0]) + 0xFEE0) + real[1:]


# How an attacker twists an id that exists: each must be refused, never resolve to the real one.
TWISTS = {
    "cyrillic-look-alike": _look_alike,
    "fullwidth": _fullwidth,
    "rtl-override": lambda real: RLO + real,
    "zero-width-space": lambda real: real[:4] + ZWSP + real[4:],
    "byte-order-mark": lambda real: BOM + real,
    "nul": lambda real: real + "\x00",
    "encoded-slash": lambda real: real + "%2F..%2F..%2Fkeys",
    "dot-dot-slash": lambda real: "../" + real,
    "dot-dot": lambda _: "..",
}
ENDPOINTS = {
    "read": ("GET", "/v1/members/{id}", None),
    "entries": ("GET", "/v1/members/{id}/entries", None),
    "purchase": ("POST", "/v1/members/{id}/purchases", {"order_id": "twisted", "amount": 100_000, "currency": "RUB"}),
    "redeem": (
        "POST",
        "/v1/members/{id}/redemptions",
        {"order_id": "twisted", "points": 1, "order_amount": 100_000, "currency": "RUB"},
    ),
    "capture": ("POST", "/v1/holds/{hold}/capture", None),
}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("twist", list(TWISTS))
def test_a_twisted_id_in_the_path_is_refused_and_writes_nothing(victim: Victim, twist: str, endpoint: str) -> None:
    method, template, body = ENDPOINTS[endpoint]
    path = template.format(id=TWISTS[twist](victim.member_id), hold=TWISTS[twist](victim.hold_id))
    if "/." in path:
        answer = _send_raw_path(victim.api, method, path, body)
    else:
        answer = victim.api.call(method, path, json_body=body)
    problem = _refused(answer)
    if answer.status_code == 422:  # refused by the id's pattern: the problem names it
        assert Api.fields_named(problem) & {"path:member_id", "path:hold_id"}, problem
    victim.assert_untouched(f"{method} {path!r}")


@pytest.mark.parametrize("twist", [name for name in TWISTS if "/" not in TWISTS[name]("acme")])
def test_a_twisted_id_in_a_body_is_refused_and_writes_nothing(victim: Victim, twist: str) -> None:
    twisted = TWISTS[twist](victim.member_id)
    enrolled = victim.api.post("/v1/members", {"member_id": twisted, "email": "attacker@example.com"})
    assert "member_id" in Api.fields_named(Api.problem(enrolled, 422)), enrolled.text
    order_id = TWISTS[twist](victim.order_id)
    purchase = {"order_id": order_id, "amount": 100_000, "currency": CURRENCY}
    bought = victim.api.post(f"/v1/members/{victim.member_id}/purchases", purchase)
    assert "order_id" in Api.fields_named(Api.problem(bought, 422)), bought.text
    refund = {"refund_id": new_id("r"), "order_id": order_id, "amount": 1_000}
    refunded = victim.api.post(f"/v1/members/{victim.member_id}/refunds", refund)
    assert "order_id" in Api.fields_named(Api.problem(refunded, 422)), refunded.text
    victim.assert_untouched(f"the ids {twisted!r} and {order_id!r}")


@pytest.mark.parametrize(
    "email",
    [
        pytest.param("owner@example.com\r\nBcc: x@evil.example", id="crlf-bcc"),
        pytest.param("owner@example.com\nBcc: x@evil.example", id="lf-bcc"),
        pytest.param("owner@example.com%0D%0ABcc:x@evil.example", id="encoded-crlf-bcc"),
        pytest.param("owner@example.com,x@evil.example", id="second-address"),
        pytest.param("\u043ewner@ex\u0430mple.com", id="cyrillic-homoglyphs"),
        pytest.param("owner@\uff45xample.com", id="fullwidth-homoglyph"),
        pytest.param("owner@example.com" + ZWSP, id="zero-width-space"),
        pytest.param(RLO + "moc.elpmaxe@renwo", id="rtl-override"),
        pytest.param("owner@example.com\x00.evil.example", id="nul"),
    ],
)
def test_an_email_with_injected_headers_or_look_alikes_is_refused(api: Api, email: str) -> None:
    member_id = new_id("m")
    answer = api.post("/v1/members", {"member_id": member_id, "email": email})
    problem = Api.problem(answer, 422, "invalid-request")
    assert Api.fields_named(problem) == {"email"}, problem
    Api.problem(api.get(f"/v1/members/{member_id}"), 404, "not-found")  # nobody was enrolled


def test_an_oversized_body_is_a_413_and_writes_nothing(api: Api, victim: Victim) -> None:
    member_id = new_id("m")
    padding = "y" * 70_000
    enrol = api.post("/v1/members", {"member_id": member_id, "time_zone": padding})
    Api.problem(enrol, 413, "too-large")
    Api.problem(api.get(f"/v1/members/{member_id}"), 404, "not-found")
    body = {"order_id": new_id("o"), "amount": 100_000, "currency": CURRENCY, "note": padding}
    Api.problem(api.post(f"/v1/members/{victim.member_id}/purchases", body), 413, "too-large")
    victim.assert_untouched("a 70 KB purchase")


def test_json_nested_100_levels_is_a_400_and_writes_nothing(api: Api, victim: Victim) -> None:
    deep: Any = True
    for _ in range(100):
        deep = {"marketing": deep}
    member_id = new_id("m")
    Api.problem(api.post("/v1/members", {"member_id": member_id, "consents": deep}), 400, "too-deep")
    Api.problem(api.get(f"/v1/members/{member_id}"), 404, "not-found")
    body = {"order_id": new_id("o"), "amount": 100_000, "currency": CURRENCY, "occurred_at": deep}
    Api.problem(api.post(f"/v1/members/{victim.member_id}/purchases", body), 400, "too-deep")
    raw = "[" * 100 + "]" * 100
    answer = api.call("POST", f"/v1/members/{victim.member_id}/purchases", data=raw, headers=JSON)
    Api.problem(answer, 400, "too-deep")
    victim.assert_untouched("100 levels of JSON")


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k1%0D%0ASet-Cookie: session=evil", id="encoded-crlf"),
        pytest.param("k1 Set-Cookie: session=evil", id="spaces"),
        pytest.param("k1\tx", id="tab"),
        pytest.param("\u043a\u043b\u044e\u0447".encode(), id="utf-8-bytes"),
        pytest.param("k" * 129, id="too-long"),
    ],
)
def test_a_bad_idempotency_key_is_a_400_and_writes_nothing(victim: Victim, key: str | bytes) -> None:
    body = {"order_id": new_id("o"), "amount": 100_000, "currency": CURRENCY}
    answer = victim.api.post(f"/v1/members/{victim.member_id}/purchases", body, headers={"Idempotency-Key": key})
    Api.problem(answer, 400, "bad-idempotency-key")
    assert "Set-Cookie" not in answer.headers
    victim.assert_untouched(f"Idempotency-Key {key!r}")


def test_a_header_folded_into_the_idempotency_key_is_a_400_and_writes_nothing(victim: Victim) -> None:
    """An obsolete line folding (CRLF and a space) keeps the injected text inside the key's value:
    no HTTP client library sends it, so it goes over a raw socket."""
    body = json.dumps({"order_id": new_id("o"), "amount": 100_000, "currency": CURRENCY}).encode()
    url = urlsplit(victim.api.url)
    request = b"\r\n".join(
        [
            f"POST /v1/members/{victim.member_id}/purchases HTTP/1.1".encode(),
            f"Host: {url.netloc}".encode(),
            f"Authorization: Bearer {victim.api.key}".encode(),
            b"Content-Type: application/json",
            b"Idempotency-Key: k1\r\n Bcc: x@evil.example",
            f"Content-Length: {len(body)}".encode(),
            b"Connection: close",
            b"",
            body,
        ]
    )
    with socket.create_connection((url.hostname, url.port), timeout=TIMEOUT) as connection:
        connection.sendall(request)
        received = b"".join(iter(lambda: connection.recv(65_536), b""))
    head, _, payload = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    assert status_line.split()[1] == "400", received
    assert headers["content-type"] == PROBLEM_JSON
    assert json.loads(payload)["type"] == "urn:problem:loyalty:bad-idempotency-key"
    assert "bcc" not in headers
    victim.assert_untouched("a folded Idempotency-Key")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("to=0001-01-01T00:00:00Z", "query:to", id="to-year-1-default-window"),
        pytest.param("to=0001-01-01T00:00:00%2B01:00", "query:to", id="to-before-year-1-in-utc"),
        pytest.param("from=0001-01-01T00:00:00%2B14:00", "query:from", id="from-before-year-1-in-utc"),
        pytest.param("to=9999-12-31T23:59:59-14:00", "query:to", id="to-after-year-9999-in-utc"),
    ],
)
def test_an_instant_at_the_calendars_edge_in_the_audit_query_is_a_422(api: Api, query: str, field: str) -> None:
    """Found by probing beside schemathesis: these were an OverflowError, a 500."""
    admin = Api(api.stack, api.stack["tenants"]["demo"]["api_keys"]["admin"])
    try:
        problem = Api.problem(admin.get(f"/v1/audit?{query}"), 422, "invalid-request")
    finally:
        admin.session.close()
    assert Api.fields_named(problem) == {field}, problem
