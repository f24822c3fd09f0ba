"""Programs over real HTTP: create, read, list, change with an effective date (the old version stays
in force until then, earned points keep their burn date), validation per field, the advice on
active programs, moving a member between programs, roles, and tenants.

Tests that move the clock, or count the tenant's programs, use a stack of this module's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from loyalty.auth import key_id_of
from tests.e2e.conftest import CURRENCY, Api, new_id

pytestmark = pytest.mark.e2e


def body(accrual_bp: int = 1_000, **changes: Any) -> dict[str, Any]:
    """A valid program: one tier at ``accrual_bp`` basis points, RUB, the defaults for the rest."""
    return {
        "name": "Spring club",
        "currency": CURRENCY,
        "tiers": [{"name": "Base", "threshold": 0, "accrual_bp": accrual_bp}],
        **changes,
    }


def put(client: Api, program_id: str, payload: Any) -> requests.Response:
    return client.call("PUT", f"/v1/programs/{program_id}", json_body=payload)


def move(client: Api, member_id: str, program_id: str) -> requests.Response:
    return client.call("PUT", f"/v1/members/{member_id}/program", json_body={"program_id": program_id})


def audit(admin: Api, action: str, **query: str) -> list[dict[str, Any]]:
    filters = "".join(f"&{name}={value}" for name, value in query.items())
    answer = admin.get(f"/v1/audit?action={action}{filters}")
    assert answer.status_code == 200, answer.text
    return answer.json()["records"]


@pytest.fixture(scope="module")
def admin(api: Api) -> Api:
    return Api(api.stack, api.stack["tenants"]["demo"]["api_keys"]["admin"])


@pytest.fixture(scope="module")
def private(start_local_stack: Any) -> Iterator[dict[str, Api]]:
    """A stack of our own: its clock may move, and its demo tenant has only the demo program."""
    stack = start_local_stack()
    keys = stack["tenants"]["demo"]["api_keys"]
    clients = {role: Api(stack, keys[role]) for role in ("integration", "admin")}
    yield clients
    for client in clients.values():
        client.session.close()


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def stack_now(client: Api) -> datetime:
    answer = requests.get(client.url + "/_local/clock", timeout=60)
    assert answer.status_code == 200, answer.text
    return instant(answer.json()["now"])


# ------------------------------------------------------------------------------ create and read


def test_a_program_is_created_read_and_listed(api: Api, admin: Api) -> None:
    program_id = new_id("club")
    settings = body(
        700,
        point_value=50,
        tiers=[
            {"name": "Silver", "threshold": 0, "accrual_bp": 300},
            {"name": "Gold", "threshold": 5_000_000, "accrual_bp": 550, "discount_bp": 250},
        ],
        tier_basis="spend_window",
        tier_window_days=180,
        tier_downgrade="window",
        max_redeem_share_bp=2_000,
        min_order_amount=10_000,
        hold_minutes=30,
        lifetime_days=180,
        welcome_bonus=100,
        birthday_bonus=200,
        referral_bonus_referrer=300,
        referral_bonus_referee=150,
        allow_transfers=True,
        allow_card_handover=True,
        company_bonus_owner="manager",
        leaving_manager_points="burn",
    )
    since = stack_now(admin).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = put(admin, program_id, settings)
    assert created.status_code == 201, created.text
    program = created.json()
    assert {key: program[key] for key in settings if key != "tiers"} == {
        key: value for key, value in settings.items() if key != "tiers"
    }
    assert program["tiers"] == [
        {"name": "Silver", "threshold": 0, "accrual_bp": 300, "discount_bp": 0},
        {"name": "Gold", "threshold": 5_000_000, "accrual_bp": 550, "discount_bp": 250},
    ]
    assert (program["program_id"], program["version"], program["status"]) == (program_id, 1, "current")
    assert program["active"] is True and program["scheduled"] == [] and isinstance(program["warnings"], list)
    assert program["created_by"] == {"key_id": key_id_of(admin.key), "role": "admin"}

    read = api.get(f"/v1/programs/{program_id}")  # the shop's key may read programs
    assert read.status_code == 200, read.text
    assert read.json() == {key: value for key, value in program.items() if key != "warnings"}
    listed = {p["program_id"]: p for p in api.get("/v1/programs").json()["programs"]}
    assert listed[program_id] == read.json() and "demo" in listed
    versions = api.get(f"/v1/programs/{program_id}/versions").json()
    assert [(v["version"], v["status"]) for v in versions["versions"]] == [(1, "current")]

    [record] = [r for r in audit(admin, "program.put", **{"from": since}) if r["target"] == program_id]
    assert record["actor"] == {"key_id": key_id_of(admin.key), "role": "admin"}
    assert record["details"]["version"] == 1


def test_defaults_fill_what_is_left_out(admin: Api) -> None:
    created = put(admin, new_id("plain"), body())
    assert created.status_code == 201, created.text
    program = created.json()
    assert (program["point_value"], program["max_redeem_share_bp"], program["lifetime_days"]) == (100, 1_500, 365)
    assert (program["tier_basis"], program["tier_window_days"], program["tier_downgrade"]) == (
        "lifetime_spend",
        None,
        "never",
    )
    assert (program["allow_transfers"], program["allow_card_handover"], program["active"]) == (False, False, True)


def test_the_same_settings_again_store_no_new_version(admin: Api) -> None:
    program_id = new_id("again")
    assert put(admin, program_id, body()).status_code == 201
    again = put(admin, program_id, body())
    assert again.status_code == 200 and again.json()["version"] == 1
    changed = put(admin, program_id, body(name="Renamed"))
    assert changed.status_code == 200 and changed.json()["version"] == 2 and changed.json()["status"] == "current"
    versions = admin.get(f"/v1/programs/{program_id}/versions").json()["versions"]
    assert [(v["version"], v["status"], v["name"]) for v in versions] == [
        (1, "past", "Spring club"),
        (2, "current", "Renamed"),
    ]


def test_the_document_says_percents_are_basis_points(api: Api) -> None:
    document = api.get("/v1/openapi.json", auth=False).json()
    schemas = document["components"]["schemas"]
    assert "Basis points" in schemas["TierIn"]["properties"]["accrual_bp"]["description"]
    assert "Basis points" in schemas["ProgramIn"]["properties"]["max_redeem_share_bp"]["description"]
    assert {"put"} <= set(document["paths"]["/v1/programs/{program_id}"])
    assert "/v1/programs/{program_id}/versions" in document["paths"]


# ------------------------------------------------------------------------------ effective dates


def test_a_change_takes_effect_at_its_date_and_earned_points_keep_their_burn_date(private: dict[str, Api]) -> None:
    shop, admin = private["integration"], private["admin"]
    assert put(admin, "seasonal", body(500)).status_code == 201  # 5 %, points last 365 days
    member_id = shop.enrol(program_id="seasonal")
    first = shop.purchase(member_id, new_id("o"), 100_000)
    assert first["points"] == 50

    starts = stack_now(admin) + timedelta(days=1)
    changed = put(admin, "seasonal", body(1_000, lifetime_days=30, effective_from=starts.isoformat()))
    assert changed.status_code == 200, changed.text
    assert (changed.json()["version"], changed.json()["status"]) == (2, "scheduled")
    current = admin.get("/v1/programs/seasonal").json()
    assert current["version"] == 1 and current["tiers"][0]["accrual_bp"] == 500
    [scheduled] = current["scheduled"]
    assert scheduled["version"] == 2 and instant(scheduled["effective_from"]) == starts
    assert shop.purchase(member_id, new_id("o"), 100_000)["points"] == 50  # version 1 still in force

    # Two days fire about 200 scheduled runs (five hourly jobs): minutes on a busy 2-core machine.
    travel = requests.post(admin.url + "/_local/clock", json={"advance": "P2D"}, timeout=600)
    assert travel.status_code == 200, travel.text
    now = stack_now(admin)
    current = admin.get("/v1/programs/seasonal").json()
    assert (current["version"], current["status"], current["scheduled"]) == (2, "current", [])
    later = shop.purchase(member_id, new_id("o"), 100_000)
    assert later["points"] == 100  # 10 % now
    assert later["burn_date"] == (now + timedelta(days=30)).date().isoformat()
    accruals = [e for e in shop.entries(member_id) if e["type"] == "accrual"]
    assert [e["burn_date"] for e in accruals][1:] == [first["burn_date"]] * 2  # earlier points keep theirs
    versions = admin.get("/v1/programs/seasonal/versions").json()["versions"]
    assert [(v["version"], v["status"]) for v in versions] == [(1, "past"), (2, "current")]


def test_more_than_three_active_programs_are_accepted_with_a_warning(private: dict[str, Api]) -> None:
    admin = private["admin"]
    active = sum(p["active"] for p in admin.get("/v1/programs").json()["programs"])
    made = 0
    while active + made < 3:
        answer = put(admin, new_id("few"), body())
        assert answer.status_code == 201 and answer.json()["warnings"] == [], answer.text
        made += 1
    inactive = put(admin, new_id("off"), body(active=False))
    assert inactive.status_code == 201 and inactive.json()["warnings"] == [], inactive.text
    fourth = put(admin, new_id("many"), body())
    assert fourth.status_code == 201, fourth.text
    [warning] = fourth.json()["warnings"]
    assert "4 active programs" in warning and "no more than 3" in warning


# ------------------------------------------------------------------------------ validation

TIERS_NOT_RISING = [
    {"name": "A", "threshold": 0, "accrual_bp": 100},
    {"name": "B", "threshold": 1_000, "accrual_bp": 200},
    {"name": "C", "threshold": 1_000, "accrual_bp": 300},
]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param(body(tiers=TIERS_NOT_RISING), "tiers[2].threshold", id="thresholds-not-rising"),
        pytest.param(
            body(tiers=[{"name": "A", "threshold": 100, "accrual_bp": 100}]), "tiers[0].threshold", id="first-not-0"
        ),
        pytest.param(body(accrual_bp=10_001), "tiers[0].accrual_bp", id="accrual-over-100-percent"),
        pytest.param(body(accrual_bp=-1), "tiers[0].accrual_bp", id="accrual-negative"),
        pytest.param(body(accrual_bp=2.5), "tiers[0].accrual_bp", id="accrual-fraction"),
        pytest.param(
            body(tiers=[{"name": "A", "threshold": 0, "accrual_bp": 1, "discount_bp": 10_001}]),
            "tiers[0].discount_bp",
            id="discount-over-100-percent",
        ),
        pytest.param(body(max_redeem_share_bp=10_001), "max_redeem_share_bp", id="redeem-share-over-100-percent"),
        pytest.param(body(currency="XXX"), "currency", id="currency-unknown"),
        pytest.param(body(currency="rub"), "currency", id="currency-lowercase"),
        pytest.param(body(tier_window_days=30), "tier_window_days", id="window-without-spend-window"),
        pytest.param(body(tier_basis="spend_window"), "tier_window_days", id="spend-window-without-days"),
        pytest.param(body(tier_downgrade="window"), "tier_downgrade", id="downgrade-window-without-window"),
        pytest.param(body(tier_basis="visits"), "tier_basis", id="basis-unknown"),
        pytest.param(body(point_value=0), "point_value", id="point-value-zero"),
        pytest.param(body(min_order_amount=-1), "min_order_amount", id="min-order-negative"),
        pytest.param(body(lifetime_days=0), "lifetime_days", id="lifetime-zero"),
        pytest.param(body(tiers=[]), "tiers", id="no-tiers"),
        pytest.param(body(reminder_days=[30, 30]), "reminder_days", id="reminder-twice"),
        pytest.param(body(reminder_days=[0]), "reminder_days", id="reminder-zero"),
        pytest.param(body(burn_policy="never"), "burn_policy", id="burn-policy-unknown"),
        pytest.param(body(activity_events=["login"]), "activity_events[0]", id="activity-unknown"),
        pytest.param(
            body(burn_policy="inactivity", round_to_month_end=True), "round_to_month_end", id="rounding-inactivity"
        ),
        pytest.param(body(burn_policy="inactivity", activity_events=[]), "activity_events", id="no-activity"),
        pytest.param(body(effective_from="2020-01-01T00:00:00Z"), "effective_from", id="effective-in-the-past"),
        pytest.param(body(effective_from="2030-01-01T00:00:00"), "effective_from", id="effective-without-zone"),
        pytest.param(body(effective_from="2099-01-01T00:00:00Z"), "effective_from", id="effective-too-far"),
        pytest.param({k: v for k, v in body().items() if k != "name"}, "name", id="name-missing"),
        pytest.param(body(colour="red"), "colour", id="unknown-field"),
        pytest.param(body(active="yes"), "active", id="active-string"),
    ],
)
def test_an_invalid_program_is_a_422_naming_the_field_and_writes_nothing(
    admin: Api, payload: dict[str, Any], field: str
) -> None:
    program_id = new_id("bad")
    problem = Api.problem(put(admin, program_id, payload), 422, "invalid-request")
    assert field in Api.fields_named(problem), problem
    assert all(error["message"] for error in problem["errors"])
    Api.problem(admin.get(f"/v1/programs/{program_id}"), 404, "not-found")


def test_every_field_wrong_at_once_is_named(admin: Api) -> None:
    payload = body(currency="ZZZ", tiers=TIERS_NOT_RISING, tier_window_days=7)
    problem = Api.problem(put(admin, new_id("bad"), payload), 422, "invalid-request")
    assert Api.fields_named(problem) == {"currency", "tiers[2].threshold", "tier_window_days"}
    assert "tiers[2].threshold" in problem["detail"] and "rise" in problem["detail"]


@pytest.mark.parametrize("program_id", ["no such", "x" * 41, "-lead", "a%23b", "caf%C3%A9"])
def test_a_bad_program_id_is_a_422(admin: Api, program_id: str) -> None:
    problem = Api.problem(put(admin, program_id, body()), 422)
    assert "path:program_id" in Api.fields_named(problem), problem


def test_a_refused_change_keeps_the_versions(admin: Api) -> None:
    program_id = new_id("keep")
    assert put(admin, program_id, body()).status_code == 201
    before = admin.get(f"/v1/programs/{program_id}/versions").json()
    Api.problem(put(admin, program_id, body(effective_from="2020-01-01T00:00:00Z")), 422)
    refused = Api.problem(put(admin, program_id, body(currency="EUR")), 409, "conflict")
    assert "not converted" in refused["detail"]
    assert admin.get(f"/v1/programs/{program_id}/versions").json() == before


# ------------------------------------------------------------------------------ moving members


def test_a_member_moves_with_points_and_history_and_buys_under_the_new_program(api: Api, admin: Api) -> None:
    program_id = new_id("move")
    assert put(admin, program_id, body(1_000)).status_code == 201  # 10 %
    member_id = api.enrol()
    api.purchase(member_id, new_id("o"), 100_000)  # 3 % at the demo program: 30 points
    before = api.state(member_id)

    moved = move(admin, member_id, program_id)
    assert moved.status_code == 200, moved.text
    assert moved.json()["program_id"] == program_id and moved.json()["tier"] == "Base"
    after = api.state(member_id)
    keep = ("balance", "held", "available", "lifetime_earned", "next_expiry", "enrolled_at")
    assert {k: after["member"][k] for k in keep} == {k: before["member"][k] for k in keep}
    assert after["entries"] == before["entries"]
    assert api.purchase(member_id, new_id("o"), 100_000)["points"] == 100

    [record] = audit(admin, "member.program", member_id=member_id)
    assert record["actor"] == {"key_id": key_id_of(admin.key), "role": "admin"}
    assert record["details"]["from"] == "demo" and record["details"]["to"] == program_id
    again = move(admin, member_id, program_id)  # already there: nothing changes, nothing is recorded
    assert again.status_code == 200 and len(audit(admin, "member.program", member_id=member_id)) == 1


def test_a_move_across_currencies_or_to_nothing_is_refused(api: Api, admin: Api) -> None:
    euro = new_id("euro")
    assert put(admin, euro, body(currency="EUR")).status_code == 201
    member_id = api.enrol()
    before = api.state(member_id)
    refused = Api.problem(move(admin, member_id, euro), 409, "conflict")
    assert "not converted" in refused["detail"] and refused["currency"] == "EUR"
    Api.problem(move(admin, member_id, new_id("nowhere")), 404, "not-found")
    Api.problem(move(admin, new_id("nobody"), euro), 404, "not-found")
    problem = Api.problem(admin.call("PUT", f"/v1/members/{member_id}/program", json_body={}), 422)
    assert "program_id" in Api.fields_named(problem)
    assert api.state(member_id) == before
    assert audit(admin, "member.program", member_id=member_id) == []


# ------------------------------------------------------------------------------ roles and tenants


@pytest.mark.parametrize("role", ["integration", "manager", "senior"])
def test_only_an_admin_changes_programs_or_moves_members(api: Api, admin: Api, role: str) -> None:
    client = Api(api.stack, api.stack["tenants"]["demo"]["api_keys"][role])
    program_id = new_id("staff")
    refused = Api.problem(put(client, program_id, body()), 403, "forbidden")
    assert refused["permission"] == "programs:admin" and "admin" in refused["detail"]
    Api.problem(client.get(f"/v1/programs/{program_id}"), 404, "not-found")  # nothing was written
    member_id = api.enrol()
    Api.problem(move(client, member_id, "demo"), 403, "forbidden")
    assert client.get("/v1/programs").status_code == 200  # reading is allowed


def test_another_tenant_neither_sees_nor_changes_a_program(api: Api, admin: Api) -> None:
    program_id = new_id("mine")
    assert put(admin, program_id, body(name="Demo only")).status_code == 201
    before = admin.get(f"/v1/programs/{program_id}/versions").json()
    other = Api(api.stack, api.stack["tenants"]["other"]["api_keys"]["admin"])
    Api.problem(other.get(f"/v1/programs/{program_id}"), 404, "not-found")
    Api.problem(other.get(f"/v1/programs/{program_id}/versions"), 404, "not-found")
    assert program_id not in {p["program_id"] for p in other.get("/v1/programs").json()["programs"]}
    member_id = api.enrol()
    Api.problem(move(other, member_id, "demo"), 404, "not-found")
    # The same id in the other tenant is a program of its own; this tenant's stays as it was.
    theirs = put(other, program_id, body(name="Other's"))
    assert theirs.status_code == 201 and theirs.json()["version"] == 1, theirs.text
    assert admin.get(f"/v1/programs/{program_id}/versions").json() == before
    assert api.member(member_id)["program_id"] == "demo"
