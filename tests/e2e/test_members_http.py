"""The walking skeleton over real HTTP: OpenAPI, enrolment, reading a member, and the API's
conventions (keys, problem+json, request ids) as a web shop meets them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import requests

from .conftest import PROBLEM_JSON, WELCOME, Api, new_id

pytestmark = pytest.mark.e2e

LEDGER_AND_MEMBER_PATHS = {
    "/v1/members": {"post"},
    "/v1/members/{member_id}": {"get"},
    "/v1/members/{member_id}/purchases": {"post"},
    "/v1/members/{member_id}/redemption-quote": {"post"},
    "/v1/members/{member_id}/holds": {"post"},
    "/v1/holds/{hold_id}/capture": {"post"},
    "/v1/holds/{hold_id}/release": {"post"},
    "/v1/members/{member_id}/redemptions": {"post"},
    "/v1/members/{member_id}/refunds": {"post"},
    "/v1/members/{member_id}/adjustments": {"post"},
    "/v1/members/{member_id}/transfers": {"post"},
    "/v1/members/{member_id}/entries": {"get"},
    "/v1/members/{member_id}/expiring": {"get"},
    "/v1/members/{member_id}/erasure": {"post"},
    "/v1/members/{member_id}/program": {"put"},
    "/v1/cards": {"post"},
    "/v1/cards/{number}": {"get"},
    "/v1/cards/{number}/link": {"post"},
    "/v1/cards/{number}/purchases": {"post"},
    "/v1/cards/{number}/redemptions": {"post"},
    "/v1/cards/{number}/sale": {"post"},
    "/v1/cards/{number}/replace": {"post"},
    "/v1/cards/{number}/handover": {"post"},
    "/v1/members/{member_id}/company": {"get", "put"},
    "/v1/members/{member_id}/managers/{manager_id}": {"put", "delete"},
    "/v1/members/{member_id}/consents": {"get", "put"},
    "/v1/unsubscribe/{token}": {"get", "post"},
    "/v1/coupons/{code}/redeem": {"post"},
    "/v1/events/{event_id}/results": {"post"},
    "/v1/broadcasts": {"post"},
    "/v1/broadcasts/{broadcast_id}": {"get"},
}
# Served by the admin function, described in the same document.
ADMIN_PATHS = {
    "/v1/keys": {"get", "post"},
    "/v1/keys/{key_id}/rotate": {"post"},
    "/v1/keys/{key_id}": {"delete"},
    "/v1/access": {"get", "put"},
    "/v1/audit": {"get"},
    "/v1/settings": {"get", "put"},
    "/v1/reports/summary": {"get"},
    "/v1/programs": {"get"},
    "/v1/programs/{program_id}": {"get", "put"},
    "/v1/programs/{program_id}/versions": {"get"},
    "/v1/simulations": {"post"},
    "/v1/templates/{kind}/{locale}/{channel}": {"get", "put", "delete"},
    "/v1/templates/{kind}/preview": {"post"},
}


def test_openapi_is_public_and_lists_every_route(api: Api) -> None:
    answer = api.get("/v1/openapi.json", auth=False)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    document = answer.json()
    assert document["openapi"].startswith("3.")
    paths = {path: set(operations) for path, operations in document["paths"].items()}
    assert paths == LEDGER_AND_MEMBER_PATHS | ADMIN_PATHS
    assert "/v1/openapi.json" not in document["paths"]
    # Described as it behaves: the bearer key, and the request bodies' schemas.
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"].lower() == "bearer"
    schemas = document["components"]["schemas"]
    assert {"EnrolRequest", "PurchaseRequest", "SpendRequest", "RefundRequest", "TransferRequest"} <= set(schemas)
    assert schemas["PurchaseRequest"]["additionalProperties"] is False


def test_enrol_is_idempotent_and_conflicts_on_other_data(api: Api) -> None:
    member_id = new_id("m")
    body = {
        "member_id": member_id,
        "email": "Anna@Example.com",
        "phone": "+79161234567",
        "locale": "ru-RU",
        "time_zone": "Europe/Moscow",
        "birthday": "1990-05-17",
        "consents": {"marketing": True, "bonus_notices": False},
    }
    first = api.post("/v1/members", body)
    assert first.status_code == 201, first.text
    assert first.headers["Content-Type"] == "application/json"
    created = first.json()
    # The welcome bonus burns after the demo program's bonus lifetime of 365 days.
    welcome_burns = (date.fromisoformat(created["enrolled_at"][:10]) + timedelta(days=365)).isoformat()
    assert created == {
        "member_id": member_id,
        "program_id": "demo",
        "email": "anna@example.com",  # normalized to lower case
        "phone": "+79161234567",
        "locale": "ru-RU",
        "time_zone": "Europe/Moscow",
        "birthday": "1990-05-17",
        "consents": {"marketing": True, "bonus_notices": False, "email": True, "sms": True},
        "enrolled_at": created["enrolled_at"],
        "tier": "Silver",
        "balance": WELCOME,  # the demo program's welcome bonus, booked with the enrolment
        "held": 0,
        "available": WELCOME,
        "lifetime_earned": WELCOME,
        "next_expiry": {"date": welcome_burns, "points": WELCOME},
        "tier_progress": {
            "next_tier": "Gold",
            "basis": "lifetime_spend",
            "remaining": 5_000_000,
            "message": "spend 50 000.00 RUB more to reach Gold",
        },
        "erased_at": None,
        "referral_code": created["referral_code"],
        "referred_by": None,
    }
    assert created["enrolled_at"].endswith("Z")

    again = api.post("/v1/members", body)
    assert again.status_code == 200, again.text
    assert again.json() == created

    other = api.post("/v1/members", {**body, "locale": "en"})
    problem = api.problem(other, 409, "conflict")
    assert problem["member_id"] == member_id
    assert api.member(member_id) == created  # the conflict changed nothing


def test_a_retried_enrolment_is_the_same_after_consents_changed(api: Api) -> None:
    """The shop's retry of an enrolment is compared with what was enrolled, not with the profile as
    a consent change (or a program move) has left it since."""
    body = {"member_id": new_id("retry"), "consents": {"marketing": True, "bonus_notices": True}}
    created = api.post("/v1/members", body)
    assert created.status_code == 201, created.text
    changed = api.call("PUT", f"/v1/members/{body['member_id']}/consents", json_body={"marketing": False})
    assert changed.status_code == 200, changed.text
    again = api.post("/v1/members", body)
    assert again.status_code == 200, again.text
    assert again.json()["consents"]["marketing"] is False  # the member as it is now
    api.problem(api.post("/v1/members", {**body, "locale": "uk"}), 409, "conflict")


def test_read_member_shows_profile_balance_and_tier(api: Api) -> None:
    member_id = api.enrol(email="reader@example.com")
    answer = api.get(f"/v1/members/{member_id}")
    assert answer.status_code == 200, answer.text
    member = answer.json()
    assert member["member_id"] == member_id and member["email"] == "reader@example.com"
    assert (member["balance"], member["held"], member["available"], member["lifetime_earned"]) == (
        WELCOME,  # the welcome bonus, and nothing else yet
        0,
        WELCOME,
        WELCOME,
    )
    assert member["tier"] == "Silver" and member["program_id"] == "demo"
    assert member["locale"] == "en" and member["time_zone"] == "UTC"  # the defaults
    assert member["consents"] == {"marketing": False, "bonus_notices": True, "email": True, "sms": True}

    missing = api.get(f"/v1/members/{new_id('nobody')}")
    api.problem(missing, 404, "not-found")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer lk_this_key_was_never_issued_0000"}, id="unknown-key"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="not-bearer"),
        pytest.param({"Authorization": "Bearer short"}, id="malformed-key"),
    ],
)
def test_without_a_valid_key_401_problem(api: Api, headers: dict[str, str]) -> None:
    member_id = api.enrol()
    for method, path, body in [
        ("GET", f"/v1/members/{member_id}", None),
        ("POST", "/v1/members", {"member_id": new_id("m")}),
        ("POST", f"/v1/members/{member_id}/purchases", {"order_id": "o-1", "amount": 100_000, "currency": "RUB"}),
    ]:
        answer = api.call(method, path, json_body=body, headers=headers, auth=False)
        problem = api.problem(answer, 401, "unauthorized")
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in problem["detail"]
    assert api.member(member_id)["balance"] == WELCOME  # the purchase without a key booked nothing


def test_broken_json_is_400(api: Api) -> None:
    for broken in ['{"member_id": "x"', "{member_id: 'x'}", "not json at all", '{"member_id": "x",}']:
        answer = api.call("POST", "/v1/members", data=broken, headers={"Content-Type": "application/json"})
        problem = api.problem(answer, 400, "malformed-json")
        assert "JSON" in problem["detail"]


@pytest.mark.parametrize(
    ("body", "field", "error_type"),
    [
        pytest.param({}, "member_id", "missing", id="missing-member-id"),
        pytest.param({"email": "a@example.com"}, "member_id", "missing", id="only-other-fields"),
        pytest.param({"member_id": 42}, "member_id", "string_type", id="member-id-number"),
        pytest.param({"member_id": ["a"]}, "member_id", "string_type", id="member-id-list"),
        pytest.param({"member_id": ""}, "member_id", "string_pattern_mismatch", id="member-id-empty"),
        pytest.param({"member_id": "a b"}, "member_id", "string_pattern_mismatch", id="member-id-space"),
        pytest.param({"member_id": "x" * 65}, "member_id", "string_pattern_mismatch", id="member-id-too-long"),
        pytest.param({"member_id": "OK", "nickname": "z"}, "nickname", "extra_forbidden", id="unknown-field"),
        pytest.param(
            {"member_id": "OK", "consents": {"calls": True}}, "consents.calls", "extra_forbidden", id="unknown-consent"
        ),
        pytest.param(
            {"member_id": "OK", "consents": {"marketing": "yes"}},
            "consents.marketing",
            "bool_type",
            id="consent-string",
        ),
        pytest.param(
            {"member_id": "OK", "consents": {"marketing": 1}}, "consents.marketing", "bool_type", id="consent-number"
        ),
        pytest.param(
            {"member_id": "OK", "consents": True}, "consents", "model_attributes_type", id="consents-not-object"
        ),
        pytest.param({"member_id": "OK", "email": "not-an-address"}, "email", "value_error", id="bad-email"),
        pytest.param({"member_id": "OK", "email": 7}, "email", "string_type", id="email-number"),
        pytest.param(
            {"member_id": "OK", "phone": "89161234567"}, "phone", "string_pattern_mismatch", id="phone-no-plus"
        ),
        pytest.param(
            {"member_id": "OK", "phone": "+0123456789"}, "phone", "string_pattern_mismatch", id="phone-zero-country"
        ),
        pytest.param({"member_id": "OK", "phone": "+7 916 123"}, "phone", "string_pattern_mismatch", id="phone-spaces"),
        pytest.param(
            {"member_id": "OK", "phone": "+1234567890123456"}, "phone", "string_pattern_mismatch", id="phone-too-long"
        ),
        pytest.param({"member_id": "OK", "time_zone": "Mars/Olympus"}, "time_zone", "value_error", id="zone-unknown"),
        pytest.param({"member_id": "OK", "time_zone": "+03:00"}, "time_zone", "value_error", id="zone-offset"),
        pytest.param({"member_id": "OK", "time_zone": "../../etc/passwd"}, "time_zone", "value_error", id="zone-path"),
        pytest.param({"member_id": "OK", "time_zone": ""}, "time_zone", "value_error", id="zone-empty"),
        pytest.param({"member_id": "OK", "locale": "english"}, "locale", "string_pattern_mismatch", id="locale-word"),
        pytest.param({"member_id": "OK", "locale": "RU"}, "locale", "string_pattern_mismatch", id="locale-upper"),
        pytest.param(
            {"member_id": "OK", "locale": "ru_RU"}, "locale", "string_pattern_mismatch", id="locale-underscore"
        ),
        pytest.param(
            {"member_id": "OK", "birthday": "1850-01-01"}, "birthday", "value_error", id="birthday-implausible"
        ),
        pytest.param({"member_id": "OK", "birthday": "17.05.1990"}, "birthday", None, id="birthday-format"),
        pytest.param(
            {"member_id": "OK", "program_id": "no such"}, "program_id", "string_pattern_mismatch", id="program-id"
        ),
    ],
)
def test_invalid_enrolment_is_422_naming_the_field(
    api: Api, body: dict[str, Any], field: str, error_type: str | None
) -> None:
    if body.get("member_id") == "OK":
        body = {**body, "member_id": new_id("m")}
    answer = api.post("/v1/members", body)
    problem = api.problem(answer, 422, "invalid-request")
    errors = problem["errors"]
    assert isinstance(errors, list) and errors, problem
    assert field in {error["field"] for error in errors}, problem
    blamed = next(error for error in errors if error["field"] == field)
    assert isinstance(blamed["message"], str) and blamed["message"]
    if error_type is not None:
        assert blamed["type"] == error_type, problem
    assert field.split(".")[0] in problem["detail"]
    if "member_id" in body and isinstance(body["member_id"], str) and field != "member_id":
        missing = api.get(f"/v1/members/{body['member_id']}")
        api.problem(missing, 404, "not-found")  # nothing was enrolled


@pytest.mark.parametrize(
    "body",
    [pytest.param([{"member_id": "x"}], id="array"), pytest.param("x", id="string"), pytest.param(7, id="number")],
)
def test_body_that_is_not_an_object_is_422(api: Api, body: Any) -> None:
    problem = api.problem(api.post("/v1/members", body), 422, "invalid-request")
    assert problem["errors"][0]["field"] == "body"


def test_a_form_body_is_415(api: Api) -> None:
    member_id = new_id("m")
    answer = api.call(
        "POST",
        "/v1/members",
        data=f"member_id={member_id}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    problem = api.problem(answer, 415, "unsupported-media-type")
    assert "application/json" in problem["detail"]
    api.problem(api.get(f"/v1/members/{member_id}"), 404, "not-found")
    # JSON with parameters or a +json media type is JSON.
    charset = api.call(
        "POST",
        "/v1/members",
        data=f'{{"member_id": "{member_id}"}}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 201, charset.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/v1/no-such-route", id="unknown"),
        pytest.param("GET", "/v2/members", id="other-version"),
        pytest.param("POST", "/v1/members/m-1/nothing", id="unknown-sub-resource"),
        pytest.param("GET", "/", id="root"),
    ],
)
def test_unknown_route_is_404_problem(api: Api, method: str, path: str) -> None:
    answer = api.call(method, path, json_body={} if method == "POST" else None)
    api.problem(answer, 404, "not-found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("DELETE", "/v1/members/m-1", id="delete-member"),
        pytest.param("PUT", "/v1/members", id="put-members"),
        pytest.param("GET", "/v1/members", id="list-members"),
        pytest.param("PATCH", "/v1/members/m-1", id="patch-member"),
        pytest.param("GET", "/v1/members/m-1/purchases", id="get-purchases"),
        pytest.param("POST", "/v1/members/m-1/entries", id="post-entries"),
        pytest.param("GET", "/v1/holds/hold_00000000000000000000/capture", id="get-capture"),
        pytest.param("POST", "/v1/openapi.json", id="post-openapi"),
    ],
)
def test_wrong_method_on_a_known_route_is_404_or_405_problem(api: Api, method: str, path: str) -> None:
    answer = api.call(method, path, json_body={} if method in {"POST", "PUT", "PATCH"} else None)
    assert answer.status_code in (404, 405), answer.text
    problem = api.problem(answer, answer.status_code)
    if answer.status_code == 405:
        assert problem["type"].endswith(":method-not-allowed") and answer.headers["Allow"]
    else:
        assert problem["type"].endswith(":not-found")


def test_function_answers_echo_the_request_id(api: Api) -> None:
    """Every answer of the API function, success or error, carries X-Request-Id, unique per request."""
    member_id = api.enrol()
    answers = [
        api.get("/v1/openapi.json", auth=False),
        api.post("/v1/members", {"member_id": member_id}),  # 200
        api.get(f"/v1/members/{member_id}"),
        api.post("/v1/members", {"member_id": 1}),  # 422
        api.call("POST", "/v1/members", data="{", headers={"Content-Type": "application/json"}),  # 400
        api.call("POST", "/v1/members", data="a=b", headers={"Content-Type": "application/x-www-form-urlencoded"}),
        api.get(f"/v1/members/{new_id('nobody')}"),  # 404 from the function
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 422, 400, 415, 404]
    ids = [answer.headers["X-Request-Id"] for answer in answers]
    assert all(ids) and len(set(ids)) == len(ids)
    for answer in answers:
        assert answer.headers["X-Request-Id"] == answer.headers["x-amzn-RequestId"]


def test_gateway_answers_name_their_request_id(api: Api) -> None:
    """API Gateway's own answers (401, no route, 5xx) cannot map a context variable into a header,
    so they carry the id in ``x-amzn-RequestId`` and in the problem's ``request_id``."""
    unauthorized = requests.get(api.url + "/v1/members/m-1", timeout=30)
    no_route = requests.get(api.url + "/v1/no-such-route", timeout=30)
    assert (unauthorized.status_code, no_route.status_code) == (401, 404)
    for answer in (unauthorized, no_route):
        assert answer.headers["Content-Type"] == PROBLEM_JSON
        assert answer.json()["request_id"] == answer.headers["x-amzn-RequestId"]


def test_a_body_that_is_not_utf8_is_a_clear_400(api: Api) -> None:
    member_id = new_id("latin1")
    body = f'{{"member_id": "{member_id}", "email": "caf\xe9@example.com"}}'.encode("latin-1")
    answer = api.call("POST", "/v1/members", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code in (400, 422), answer.text
    Api.problem(answer, answer.status_code)
    assert api.get(f"/v1/members/{member_id}").status_code == 404
