"""Welcome and referral bonuses over real HTTP: the welcome bonus lands with enrolment (one
transaction), a referred newcomer and its referrer get their bonuses after the newcomer's first
qualifying purchase (through the ledger's stream and the events function), exactly once, and
every abuse (unknown code, self-referral, loops, late referrers) is refused with nothing written.

Each test runs on a program of its own, created through the admin API, so the amounts are the
test's and not the demo program's.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import CURRENCY, Api, new_id

pytestmark = pytest.mark.e2e

WELCOME, REFERRER, REFEREE = 50, 300, 200
MIN_ORDER = 1_000_00


@pytest.fixture(scope="module")
def admin(api: Api) -> Api:
    return Api(api.stack, api.stack["tenants"]["demo"]["api_keys"]["admin"])


@pytest.fixture(scope="module")
def program_id(admin: Api) -> str:
    program_id = new_id("ref")
    body = {
        "name": "Friends club",
        "currency": CURRENCY,
        "tiers": [{"name": "Base", "threshold": 0, "accrual_bp": 500}],
        "welcome_bonus": WELCOME,
        "referral_bonus_referrer": REFERRER,
        "referral_bonus_referee": REFEREE,
        "min_order_amount": MIN_ORDER,
    }
    answer = admin.call("PUT", f"/v1/programs/{program_id}", json_body=body)
    assert answer.status_code in (200, 201), answer.text
    return program_id


def drain(api: Api) -> None:
    """Wait until the stack's stream consumers have seen every write so far."""
    answer = api.session.post(api.url + "/_local/drain", json={"timeout": 60}, timeout=90)
    assert answer.status_code == 200, answer.text


def enrol(api: Api, program_id: str, **profile: Any) -> dict[str, Any]:
    answer = api.post("/v1/members", {"member_id": new_id("m"), "program_id": program_id, **profile})
    assert answer.status_code == 201, answer.text
    return answer.json()


def purchase(api: Api, member_id: str, amount: int) -> dict[str, Any]:
    body = {"order_id": new_id("o"), "amount": amount, "currency": CURRENCY}
    answer = api.post(f"/v1/members/{member_id}/purchases", body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def types(state: dict[str, Any]) -> list[str]:
    return [entry["type"] for entry in reversed(state["entries"])]


# ------------------------------------------------------------------------------- welcome


def test_the_welcome_bonus_comes_with_enrolment_once(api: Api, program_id: str) -> None:
    member = enrol(api, program_id, email="welcome@example.com")
    assert (member["balance"], member["available"], member["lifetime_earned"]) == (WELCOME, WELCOME, WELCOME)
    assert member["next_expiry"]["points"] == WELCOME
    again = api.post(
        "/v1/members", {"member_id": member["member_id"], "program_id": program_id, "email": "welcome@example.com"}
    )
    assert again.status_code == 200 and again.json()["balance"] == WELCOME  # no second bonus
    state = api.balanced(member["member_id"])
    [entry] = state["entries"]
    assert (entry["type"], entry["points"], entry["burn_date"]) == (
        "welcome_bonus",
        WELCOME,
        member["next_expiry"]["date"],
    )


# ------------------------------------------------------------------------------- referrals


def test_both_sides_are_paid_after_the_first_qualifying_purchase_only(api: Api, program_id: str) -> None:
    referrer = enrol(api, program_id, email="ann@example.com")
    code = referrer["referral_code"]
    assert len(code) == 10 and code.isalnum() and code.isupper()
    typed = f"{code[:5].lower()}-{code[5:]}"  # as a customer types it
    newcomer = enrol(api, program_id, email="bob@example.com", referral_code=typed)
    assert newcomer["referred_by"] == referrer["member_id"]
    assert newcomer["balance"] == WELCOME  # no referral bonus at enrolment: that invites abuse

    purchase(api, newcomer["member_id"], MIN_ORDER - 1)  # below the minimum: not qualifying
    drain(api)
    assert types(api.balanced(newcomer["member_id"])) == ["welcome_bonus", "accrual"]
    assert types(api.balanced(referrer["member_id"])) == ["welcome_bonus"]

    earned = purchase(api, newcomer["member_id"], MIN_ORDER)["points"]
    drain(api)
    newcomer_state = api.balanced(newcomer["member_id"])
    assert types(newcomer_state) == ["welcome_bonus", "accrual", "accrual", "referral_bonus"]
    assert newcomer_state["member"]["balance"] == WELCOME + earned + REFEREE
    referrer_state = api.balanced(referrer["member_id"])
    assert types(referrer_state) == ["welcome_bonus", "referral_bonus"]
    bonus = referrer_state["entries"][0]
    assert bonus["points"] == REFERRER and bonus["details"]["referee_id"] == newcomer["member_id"]
    assert referrer_state["member"]["balance"] == WELCOME + REFERRER

    purchase(api, newcomer["member_id"], MIN_ORDER * 2)  # later purchases pay no more referral bonuses
    drain(api)
    assert types(api.balanced(referrer["member_id"])) == ["welcome_bonus", "referral_bonus"]
    assert types(api.balanced(newcomer["member_id"])).count("referral_bonus") == 1


def test_a_referrer_may_bring_many_and_each_pays_once(api: Api, program_id: str) -> None:
    referrer = enrol(api, program_id)
    newcomers = [enrol(api, program_id, referral_code=referrer["referral_code"]) for _ in range(3)]
    for newcomer in newcomers:
        purchase(api, newcomer["member_id"], MIN_ORDER)
    drain(api)
    state = api.balanced(referrer["member_id"])
    paid = sorted(e["details"]["referee_id"] for e in state["entries"] if e["type"] == "referral_bonus")
    assert paid == sorted(n["member_id"] for n in newcomers)
    assert state["member"]["balance"] == WELCOME + 3 * REFERRER


# ------------------------------------------------------------------------------- refused


def refused(api: Api, body: dict[str, Any], status: int, slug: str) -> dict[str, Any]:
    answer = api.post("/v1/members", body)
    problem = Api.problem(answer, status, slug)
    if status == 422 and "member_id" in body:  # nothing was written: the member does not exist
        assert api.get(f"/v1/members/{body['member_id']}").status_code == 404
    return problem


def test_unknown_malformed_and_self_referral_codes_are_refused(api: Api, program_id: str) -> None:
    referrer = enrol(api, program_id, email="carol@example.com", phone="+380501234567")
    base = {"program_id": program_id}
    for code in ("0000000000", "not a code!", "ABC"):
        problem = refused(api, {**base, "member_id": new_id("m"), "referral_code": code}, 422, "invalid-request")
        assert "referral_code" in Api.fields_named(problem)
    for wrong in (12345, ["A"], {"code": "x"}, ""):
        problem = refused(api, {**base, "member_id": new_id("m"), "referral_code": wrong}, 422, None)
        assert "referral_code" in Api.fields_named(problem)
    # The same person with a second account: the referrer's e-mail (any case) or phone.
    same_mail = {
        **base,
        "member_id": new_id("m"),
        "email": "Carol@Example.com",
        "referral_code": referrer["referral_code"],
    }
    assert "Self-referral" in refused(api, same_mail, 422, "invalid-request")["detail"]
    same_phone = {
        **base,
        "member_id": new_id("m"),
        "phone": "+380501234567",
        "referral_code": referrer["referral_code"],
    }
    assert "Self-referral" in refused(api, same_phone, 422, "invalid-request")["detail"]
    # An enrolled member naming its own code.
    own = {**base, "member_id": referrer["member_id"], "email": "carol@example.com", "phone": "+380501234567"}
    problem = Api.problem(api.post("/v1/members", {**own, "referral_code": referrer["referral_code"]}), 422)
    assert "own referral code" in problem["detail"]
    assert api.balanced(referrer["member_id"])["member"]["referred_by"] is None


def test_loops_and_late_referrers_are_refused(api: Api, program_id: str) -> None:
    ann = enrol(api, program_id)
    bob = enrol(api, program_id, referral_code=ann["referral_code"])
    cid = enrol(api, program_id, referral_code=bob["referral_code"])
    again = {"member_id": ann["member_id"], "program_id": program_id}
    problem = Api.problem(api.post("/v1/members", {**again, "referral_code": cid["referral_code"]}), 409)
    assert "Referral loop" in problem["detail"]
    late = enrol(api, program_id)
    problem = Api.problem(
        api.post(
            "/v1/members",
            {"member_id": late["member_id"], "program_id": program_id, "referral_code": ann["referral_code"]},
        ),
        409,
    )
    assert "only be given at enrolment" in problem["detail"]
    # The same enrolment with the same code again answers the member as it is.
    repeat = api.post(
        "/v1/members", {"member_id": bob["member_id"], "program_id": program_id, "referral_code": ann["referral_code"]}
    )
    assert repeat.status_code == 200 and repeat.json()["referred_by"] == ann["member_id"]
    for member in (ann, bob, cid, late):
        assert api.balanced(member["member_id"])["member"]["balance"] == WELCOME
