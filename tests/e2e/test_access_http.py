"""Who may do what, over real HTTP: every route with every role of both tenants, API keys,
the manager's adjustment limit, the audit log and erasure.

The local stack seeds two tenants (``demo`` and ``other``) with a key of every role. A key of one
tenant must never read or change another tenant's data: every member-scoped route is tried with
every key of ``other`` on a member of ``demo``, and the member must be exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from loyalty.access import DEFAULT_PERMISSIONS, Permission
from loyalty.api.access import ROUTE_PERMISSIONS
from loyalty.models import Role
from tests.e2e.conftest import CURRENCY, WELCOME, Api, new_id

pytestmark = pytest.mark.e2e

ROLES = [role.value for role in Role]


@pytest.fixture(scope="module")
def keys(local_stack: dict[str, Any]) -> dict[str, dict[str, str]]:
    tenants = local_stack["tenants"]
    assert set(tenants) >= {"demo", "other"}
    for tenant in ("demo", "other"):
        assert set(tenants[tenant]["api_keys"]) == set(ROLES)
    return {tenant: tenants[tenant]["api_keys"] for tenant in ("demo", "other")}


def as_key(api: Api, key: str) -> Api:
    return Api(api.stack, key)


@pytest.fixture(scope="module")
def victim(api: Api) -> dict[str, Any]:
    """A demo member with points, an order and an open hold."""
    member_id = api.enrol(email="victim@example.com", phone="+380441234567")
    api.purchase(member_id, new_id("o"), 1_000_000)  # 300 points
    hold = api.post(
        f"/v1/members/{member_id}/holds",
        {"order_id": new_id("h"), "points": 10, "order_amount": 100_000, "currency": CURRENCY},
    )
    assert hold.status_code == 201, hold.text
    other = api.enrol()
    # Two cards of the victim: one for every card route, a spare for replace (which blocks it).
    admin = Api(api.stack, api.stack["tenants"]["demo"]["api_keys"]["admin"])
    cards = [admin.post("/v1/cards", {"kind": "virtual", "member_id": member_id}) for _ in range(2)]
    assert [card.status_code for card in cards] == [201, 201], cards[0].text
    card, spare = (card.json()["card_number"] for card in cards)
    victim = {"member_id": member_id, "hold_id": hold.json()["hold_id"], "other_member": other}
    # A company and a member to link to it and unlink, again and again.
    company, manager = api.enrol(), api.enrol()
    made = admin.call("PUT", f"/v1/members/{company}/company", json_body=COMPANY)
    assert made.status_code == 200, made.text
    return {**victim, "card": card, "spare": spare, "company": company, "manager": manager}


COMPANY = {"name": "Access test Ltd", "decision_maker": {"name": "Dee Cision"}}


def requests_for(victim: dict[str, Any]) -> dict[tuple[str, str], Callable[[], tuple[str, str, Any]]]:
    """One well-formed request per route (fresh ids each time), as (method, path, body)."""
    m, h, c = victim["member_id"], victim["hold_id"], victim["card"]
    co, mg = victim["company"], victim["manager"]
    spend = {"points": 1, "order_amount": 100_000, "currency": CURRENCY}
    return {
        ("POST", "/v1/members"): lambda: ("POST", "/v1/members", {"member_id": new_id("n")}),
        ("GET", "/v1/members/{member_id}"): lambda: ("GET", f"/v1/members/{m}", None),
        ("GET", "/v1/members/{member_id}/entries"): lambda: ("GET", f"/v1/members/{m}/entries", None),
        ("GET", "/v1/members/{member_id}/expiring"): lambda: ("GET", f"/v1/members/{m}/expiring", None),
        ("POST", "/v1/members/{member_id}/erasure"): lambda: (
            "POST",
            f"/v1/members/{m}/erasure",
            {"reason": "access test"},
        ),
        ("POST", "/v1/members/{member_id}/purchases"): lambda: (
            "POST",
            f"/v1/members/{m}/purchases",
            {"order_id": new_id("o"), "amount": 10_000, "currency": CURRENCY},
        ),
        ("POST", "/v1/members/{member_id}/redemption-quote"): lambda: (
            "POST",
            f"/v1/members/{m}/redemption-quote",
            {"order_amount": 100_000, "currency": CURRENCY},
        ),
        ("POST", "/v1/members/{member_id}/holds"): lambda: (
            "POST",
            f"/v1/members/{m}/holds",
            {"order_id": new_id("h"), **spend},
        ),
        ("POST", "/v1/holds/{hold_id}/capture"): lambda: ("POST", f"/v1/holds/{h}/capture", None),
        ("POST", "/v1/holds/{hold_id}/release"): lambda: ("POST", f"/v1/holds/{h}/release", None),
        ("POST", "/v1/members/{member_id}/redemptions"): lambda: (
            "POST",
            f"/v1/members/{m}/redemptions",
            {"order_id": new_id("r"), **spend},
        ),
        ("POST", "/v1/members/{member_id}/refunds"): lambda: (
            "POST",
            f"/v1/members/{m}/refunds",
            {"refund_id": new_id("f"), "order_id": new_id("o"), "amount": 100},
        ),
        ("POST", "/v1/members/{member_id}/adjustments"): lambda: (
            "POST",
            f"/v1/members/{m}/adjustments",
            {"adjustment_id": new_id("a"), "points": 1, "reason": "access test"},
        ),
        ("POST", "/v1/members/{member_id}/transfers"): lambda: (
            "POST",
            f"/v1/members/{m}/transfers",
            {"transfer_id": new_id("t"), "to_member_id": victim["other_member"], "points": 1},
        ),
        ("GET", "/v1/keys"): lambda: ("GET", "/v1/keys", None),
        ("POST", "/v1/keys"): lambda: ("POST", "/v1/keys", {"role": "manager", "name": "access test"}),
        ("POST", "/v1/keys/{key_id}/rotate"): lambda: ("POST", "/v1/keys/key_000000000000/rotate", None),
        ("DELETE", "/v1/keys/{key_id}"): lambda: ("DELETE", "/v1/keys/key_000000000000", None),
        ("GET", "/v1/access"): lambda: ("GET", "/v1/access", None),
        ("PUT", "/v1/access"): lambda: ("PUT", "/v1/access", {"manager_adjustment_limit": 1_000}),
        ("GET", "/v1/audit"): lambda: ("GET", "/v1/audit", None),
        ("GET", "/v1/reports/summary"): lambda: ("GET", "/v1/reports/summary?granularity=day", None),
        ("GET", "/v1/settings"): lambda: ("GET", "/v1/settings", None),
        ("PUT", "/v1/settings"): lambda: ("PUT", "/v1/settings", {"burn_time": "00:30"}),
        ("POST", "/v1/cards"): lambda: ("POST", "/v1/cards", {"kind": "virtual"}),
        ("GET", "/v1/cards/{number}"): lambda: ("GET", f"/v1/cards/{c}", None),
        ("POST", "/v1/cards/{number}/link"): lambda: ("POST", f"/v1/cards/{c}/link", {"member_id": m}),
        ("POST", "/v1/cards/{number}/purchases"): lambda: (
            "POST",
            f"/v1/cards/{c}/purchases",
            {"order_id": new_id("o"), "amount": 10_000, "currency": CURRENCY},
        ),
        ("POST", "/v1/cards/{number}/redemptions"): lambda: (
            "POST",
            f"/v1/cards/{c}/redemptions",
            {"order_id": new_id("r"), **spend},
        ),
        ("POST", "/v1/cards/{number}/sale"): lambda: (
            "POST",
            f"/v1/cards/{c}/sale",
            {"price": 50_000, "currency": CURRENCY},
        ),
        ("POST", "/v1/cards/{number}/replace"): lambda: ("POST", f"/v1/cards/{victim['spare']}/replace", None),
        # The demo program does not allow hand-overs: a 409 for the roles that may ask.
        ("POST", "/v1/cards/{number}/handover"): lambda: (
            "POST",
            f"/v1/cards/{c}/handover",
            {"to_member_id": victim["other_member"], "transfer_id": new_id("t")},
        ),
        ("GET", "/v1/programs"): lambda: ("GET", "/v1/programs", None),
        ("GET", "/v1/programs/{program_id}"): lambda: ("GET", "/v1/programs/demo", None),
        ("GET", "/v1/programs/{program_id}/versions"): lambda: ("GET", "/v1/programs/demo/versions", None),
        # An inactive program of its own (the demo program stays as the other tests know it); the
        # same settings again store no new version.
        ("PUT", "/v1/programs/{program_id}"): lambda: (
            "PUT",
            "/v1/programs/access-test",
            {
                "name": "Access test",
                "currency": CURRENCY,
                "tiers": [{"name": "Base", "threshold": 0, "accrual_bp": 100}],
                "active": False,
            },
        ),
        # The member's own program: nothing moves.
        ("PUT", "/v1/members/{member_id}/program"): lambda: ("PUT", f"/v1/members/{m}/program", {"program_id": "demo"}),
        ("GET", "/v1/members/{member_id}/company"): lambda: ("GET", f"/v1/members/{co}/company", None),
        ("PUT", "/v1/members/{member_id}/company"): lambda: ("PUT", f"/v1/members/{co}/company", COMPANY),
        # Linked, then unlinked (a repeat of either answers as the first did).
        ("PUT", "/v1/members/{member_id}/managers/{manager_id}"): lambda: (
            "PUT",
            f"/v1/members/{co}/managers/{mg}",
            None,
        ),
        ("DELETE", "/v1/members/{member_id}/managers/{manager_id}"): lambda: (
            "DELETE",
            f"/v1/members/{co}/managers/{mg}",
            None,
        ),
        ("GET", "/v1/members/{member_id}/consents"): lambda: ("GET", f"/v1/members/{m}/consents", None),
        ("PUT", "/v1/members/{member_id}/consents"): lambda: (
            "PUT",
            f"/v1/members/{m}/consents",
            {"marketing": True, "reason": "access test"},
        ),
        # A language of the tenant's own (de): the other tests' templates stay as they are; put, then deleted.
        ("GET", "/v1/templates/{kind}/{locale}/{channel}"): lambda: ("GET", "/v1/templates/accrual/en/email", None),
        ("PUT", "/v1/templates/{kind}/{locale}/{channel}"): lambda: (
            "PUT",
            "/v1/templates/accrual/de/sms",
            {"text": "{{ program_name }}: +{{ points }} Punkte."},
        ),
        ("DELETE", "/v1/templates/{kind}/{locale}/{channel}"): lambda: ("DELETE", "/v1/templates/accrual/de/sms", None),
        ("POST", "/v1/templates/{kind}/preview"): lambda: (
            "POST",
            "/v1/templates/accrual/preview",
            {"channel": "sms", "locale": "ru"},
        ),
        # No such coupon: a 404 for a key that may collect coupons (tests/e2e/test_touches_http.py collects real ones).
        ("POST", "/v1/coupons/{code}/redeem"): lambda: ("POST", "/v1/coupons/BDAY-0000-0000-0000/redeem", {}),
        ("POST", "/v1/events/{event_id}/results"): lambda: (
            "POST",
            f"/v1/events/{new_id('ev')}/results",
            {"event_name": "Access test", "results_url": "https://example.com/photos", "attendees": [m]},
        ),
        # A segment nobody is in (a tier the demo program does not have is a 422, so: an unknown program, 404).
        ("POST", "/v1/broadcasts"): lambda: (
            "POST",
            "/v1/broadcasts",
            {
                "broadcast_id": new_id("bc"),
                "title": "Access test",
                "message": "Nobody gets this.",
                "segment": {"program_id": new_id("no-program")},
            },
        ),
        ("GET", "/v1/broadcasts/{broadcast_id}"): lambda: ("GET", f"/v1/broadcasts/{new_id('bc')}", None),
        ("POST", "/v1/simulations"): lambda: (
            "POST",
            "/v1/simulations",
            {
                "orders_csv": "member_id,order_id,date,amount\nm1,o1,2025-01-05,100000\n",
                "program": {"name": "Sim", "currency": CURRENCY, "tiers": [{"name": "B", "threshold": 0}]},
            },
        ),
    }


def send(client: Api, request: tuple[str, str, Any]) -> requests.Response:
    method, path, body = request
    return client.call(method, path, json_body=body)


def test_every_route_has_a_request_here(victim: dict[str, Any]) -> None:
    assert set(requests_for(victim)) == set(ROUTE_PERMISSIONS)


# Routes that change the victim are left out of the "allowed" run: erasure would erase the
# shared victim, capture/release would end its hold.
ALLOWED_SKIP = {
    ("POST", "/v1/members/{member_id}/erasure"),
    ("POST", "/v1/holds/{hold_id}/capture"),
    ("POST", "/v1/holds/{hold_id}/release"),
}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_call_exactly_its_routes(api: Api, keys, victim, role: str) -> None:
    client = as_key(api, keys["demo"][role])
    permissions = DEFAULT_PERMISSIONS[Role(role)]
    before = api.state(victim["member_id"])
    for route, build in requests_for(victim).items():
        allowed = ROUTE_PERMISSIONS[route] in permissions
        if allowed and route in ALLOWED_SKIP:
            continue
        answer = send(client, build())
        if allowed:
            assert answer.status_code != 403 and answer.status_code < 500, (role, route, answer.text)
        else:
            problem = Api.problem(answer, 403, "forbidden")
            assert role in problem["detail"] and ROUTE_PERMISSIONS[route].value in problem["detail"]
            assert problem["permission"] == ROUTE_PERMISSIONS[route].value
    if not any(ROUTE_PERMISSIONS[r] in permissions for r in ROUTE_PERMISSIONS if r[0] != "GET"):
        assert api.state(victim["member_id"]) == before


@pytest.mark.parametrize("role", ROLES)
def test_a_key_of_another_tenant_never_reaches_this_tenants_data(api: Api, keys, victim, role: str) -> None:
    intruder = as_key(api, keys["other"][role])
    permissions = DEFAULT_PERMISSIONS[Role(role)]
    before = api.state(victim["member_id"])
    for route, build in requests_for(victim).items():
        if "{member_id}" not in route[1] and "{hold_id}" not in route[1] and "{number}" not in route[1]:
            continue
        answer = send(intruder, build())
        expected = 404 if ROUTE_PERMISSIONS[route] in permissions else 403
        Api.problem(answer, expected)
    assert api.state(victim["member_id"]) == before
    # Its own listings show nothing of the other tenant.
    if Permission.KEYS_ADMIN in permissions:
        listed = {key["key_id"] for key in intruder.get("/v1/keys").json()["keys"]}
        demo_ids = {key["key_id"] for key in as_key(api, keys["demo"]["admin"]).get("/v1/keys").json()["keys"]}
        assert listed and not listed & demo_ids
    if Permission.AUDIT_READ in permissions:
        records = intruder.get(f"/v1/audit?member_id={victim['member_id']}").json()["records"]
        assert records == []


def test_a_key_cannot_revoke_or_rotate_another_tenants_key(api: Api, keys) -> None:
    demo_admin = as_key(api, keys["demo"]["admin"])
    created = demo_admin.post("/v1/keys", {"role": "integration", "name": "shop"})
    assert created.status_code == 201, created.text
    key_id = created.json()["key_id"]
    other_admin = as_key(api, keys["other"]["admin"])
    Api.problem(other_admin.call("DELETE", f"/v1/keys/{key_id}"), 404, "not-found")
    Api.problem(other_admin.post(f"/v1/keys/{key_id}/rotate"), 404, "not-found")
    still = as_key(api, created.json()["api_key"])
    assert still.get("/v1/members/nobody-here").status_code == 404  # authorized, member unknown


def test_keys_are_created_listed_rotated_and_revoked(api: Api, keys) -> None:
    admin = as_key(api, keys["demo"]["admin"])
    created = admin.post("/v1/keys", {"role": "integration", "name": "web shop backend"})
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["role"] == "integration" and new["active"] is True and new["api_key"].startswith("lk_")
    listed = admin.get("/v1/keys").json()["keys"]
    mine = [key for key in listed if key["key_id"] == new["key_id"]]
    assert mine and "api_key" not in mine[0] and mine[0]["name"] == "web shop backend"
    assert all("api_key" not in key and "hash" not in key for key in listed)

    # Rotate before first use (API Gateway caches a key's authorization for 5 minutes once used).
    rotated = admin.post(f"/v1/keys/{new['key_id']}/rotate")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["revoked"]["active"] is False
    successor = rotated.json()["key"]
    assert successor["role"] == "integration" and successor["key_id"] != new["key_id"]
    assert as_key(api, successor["api_key"]).get("/v1/members/nobody-here").status_code == 404
    assert as_key(api, new["api_key"]).get("/v1/members/nobody-here").status_code == 401

    revoked = admin.call("DELETE", f"/v1/keys/{successor['key_id']}")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    again = admin.call("DELETE", f"/v1/keys/{successor['key_id']}")
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    Api.problem(admin.post(f"/v1/keys/{successor['key_id']}/rotate"), 409, "conflict")

    fresh = admin.post("/v1/keys", {"role": "manager"}).json()
    assert admin.call("DELETE", f"/v1/keys/{fresh['key_id']}").status_code == 200
    assert as_key(api, fresh["api_key"]).get("/v1/members/nobody-here").status_code == 401

    actions = [r["action"] for r in admin.get(f"/v1/audit?key_id={keys_id(keys['demo']['admin'])}").json()["records"]]
    assert {"key.create", "key.revoke"} <= set(actions)


def keys_id(secret: str) -> str:
    from loyalty.auth import key_id_of

    return key_id_of(secret)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "root"}, "role"),
        ({}, "role"),
        ({"role": "admin", "name": "x\r\nSet-Cookie: a=b"}, "name"),
        ({"role": "admin", "extra": 1}, "extra"),
    ],
)
def test_bad_key_requests_are_refused(api: Api, keys, body: dict[str, Any], field: str) -> None:
    admin = as_key(api, keys["demo"]["admin"])
    before = admin.get("/v1/keys").json()
    problem = Api.problem(admin.post("/v1/keys", body), 422, "invalid-request")
    assert field in Api.fields_named(problem)
    assert admin.get("/v1/keys").json() == before


def test_an_admin_key_cannot_revoke_itself(api: Api, keys) -> None:
    admin = as_key(api, keys["demo"]["admin"])
    Api.problem(admin.call("DELETE", f"/v1/keys/{keys_id(keys['demo']['admin'])}"), 409, "conflict")


def test_manual_adjustments_follow_the_managers_limit_and_are_audited(api: Api, keys) -> None:
    member_id = api.enrol()
    manager, senior = as_key(api, keys["demo"]["manager"]), as_key(api, keys["demo"]["senior"])
    small = manager.post(
        f"/v1/members/{member_id}/adjustments",
        {"adjustment_id": new_id("a"), "points": 500, "reason": "late delivery"},
    )
    assert small.status_code == 201, small.text
    too_big = {"adjustment_id": new_id("a"), "points": 5_000, "reason": "goodwill"}
    problem = Api.problem(manager.post(f"/v1/members/{member_id}/adjustments", too_big), 403, "forbidden")
    assert "1000" in problem["detail"] and "senior" in problem["detail"] and "admin" in problem["detail"]
    assert api.member(member_id)["balance"] == WELCOME + 500  # the welcome bonus, and the small adjustment
    big = senior.post(f"/v1/members/{member_id}/adjustments", too_big)
    assert big.status_code == 201, big.text
    assert api.member(member_id)["balance"] == WELCOME + 5_500

    audit = as_key(api, keys["demo"]["admin"]).get(f"/v1/audit?member_id={member_id}&action=adjustment")
    assert audit.status_code == 200, audit.text
    records = audit.json()["records"]
    assert [(r["details"]["points"], r["actor"]["role"], r["reason"]) for r in records] == [
        (5_000, "senior", "goodwill"),
        (500, "manager", "late delivery"),
    ]
    entries = api.entries(member_id)
    assert [(e["type"], e["actor"]["role"]) for e in entries] == [
        ("adjustment", "senior"),
        ("adjustment", "manager"),
        ("welcome_bonus", "integration"),  # booked at enrolment, by the shop's key
    ]


def test_the_tenant_sets_the_managers_limit(api: Api, keys, local_stack) -> None:
    admin = as_key(api, keys["other"]["admin"])  # the other tenant: the demo tenant keeps its defaults
    changed = admin.call("PUT", "/v1/access", json_body={"manager_adjustment_limit": 10})
    assert changed.status_code == 200, changed.text
    assert changed.json()["manager_adjustment_limit"] == 10
    try:
        other = Api(local_stack, keys["other"]["integration"])
        member_id = other.enrol()
        manager = as_key(api, keys["other"]["manager"])
        body = {"adjustment_id": new_id("a"), "points": 11, "reason": "test"}
        problem = Api.problem(manager.post(f"/v1/members/{member_id}/adjustments", body), 403, "forbidden")
        assert "at most 10 points" in problem["detail"]
        assert "access.set" in {r["action"] for r in admin.get("/v1/audit?action=access.set").json()["records"]}
        refused = admin.call("PUT", "/v1/access", json_body={"roles": {"admin": ["members:read"]}})
        Api.problem(refused, 422, "invalid-request")
    finally:
        admin.call("PUT", "/v1/access", json_body={"manager_adjustment_limit": 1_000})


def test_erasure_anonymises_the_member_and_keeps_the_ledger(api: Api, keys) -> None:
    member_id = api.enrol(email="erase.me@example.com", phone="+380501234567", birthday="1990-05-17")
    api.purchase(member_id, new_id("o"), 500_000)
    before = api.state(member_id)
    Api.problem(api.post(f"/v1/members/{member_id}/erasure", {"reason": "customer asked"}), 403, "forbidden")

    admin = as_key(api, keys["demo"]["admin"])
    erased = admin.post(f"/v1/members/{member_id}/erasure", {"reason": "customer asked"})
    assert erased.status_code == 200, erased.text
    view = erased.json()
    assert (view["email"], view["phone"], view["birthday"]) == (None, None, None)
    assert view["consents"] == {"marketing": False, "bonus_notices": False, "email": False, "sms": False}
    assert view["erased_at"]
    after = api.state(member_id)
    keep = ("balance", "held", "available", "lifetime_earned", "tier", "next_expiry", "enrolled_at")
    assert {k: after["member"][k] for k in keep} == {k: before["member"][k] for k in keep}
    assert after["entries"] == before["entries"]
    assert "erase.me" not in str(after) and "1234567" not in str(after)
    again = admin.post(f"/v1/members/{member_id}/erasure", {"reason": "customer asked"})
    assert again.status_code == 200 and again.json()["erased_at"] == view["erased_at"]
    records = admin.get(f"/v1/audit?member_id={member_id}&action=member.erase").json()["records"]
    assert len(records) == 1 and records[0]["reason"] == "customer asked"
    Api.problem(admin.post(f"/v1/members/{new_id('ghost')}/erasure", {"reason": "x" * 3}), 404, "not-found")


def test_audit_pages_and_filters(api: Api, keys) -> None:
    member_id = api.enrol()
    senior = as_key(api, keys["demo"]["senior"])
    for index in range(5):
        body = {"adjustment_id": f"page-{index}", "points": index + 1, "reason": f"reason {index}"}
        assert senior.post(f"/v1/members/{member_id}/adjustments", body).status_code == 201
    admin = as_key(api, keys["demo"]["admin"])
    seen, cursor = [], None
    while True:
        query = f"/v1/audit?member_id={member_id}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = admin.get(query).json()
        assert len(page["records"]) <= 2
        seen += [record["details"]["points"] for record in page["records"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [5, 4, 3, 2, 1]
    Api.problem(admin.get("/v1/audit?cursor=bm90LWEtY3Vyc29y"), 422)
    Api.problem(admin.get("/v1/audit?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z"), 422)
    Api.problem(admin.get("/v1/audit?limit=0"), 422)
