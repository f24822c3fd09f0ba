"""Company customers (B2B) over real HTTP: a company with managers, where a manager's orders
book under each ``company_bonus_owner``, what a leave does under each ``leaving_manager_points``
(entries on both sides, once), refunds of orders booked on the company, erasure of the decision
maker, and every bad input answered 4xx with nothing written.

Each test makes programs of its own through the admin API (``PUT /v1/programs/{id}``): one tier
at 10 %, so 1,000.00 RUB earns 100 points. Balances are compared with the balance right after
enrolment (a program may give a welcome bonus), and the ledger invariant is checked on both
accounts after each step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from .conftest import CURRENCY, Api, new_id

pytestmark = pytest.mark.e2e

ORDER = 100_000  # 1,000.00 RUB: 100 points at 10 %
DM = {"name": "Olena Koval", "email": "olena@acme.example", "phone": "+380441234567", "locale": "uk"}


@pytest.fixture(scope="module")
def admin(api: Api) -> Iterator[Api]:
    client = Api(api.stack, api.stack["tenants"]["demo"]["api_keys"]["admin"])
    yield client
    client.session.close()


def program(admin: Api, owner: str, leaving: str, currency: str = CURRENCY) -> str:
    program_id = new_id("b2b")
    settings = {
        "name": "B2B club",
        "currency": currency,
        "tiers": [{"name": "Base", "threshold": 0, "accrual_bp": 1_000}],
        "company_bonus_owner": owner,
        "leaving_manager_points": leaving,
    }
    answer = admin.call("PUT", f"/v1/programs/{program_id}", json_body=settings)
    assert answer.status_code == 201, answer.text
    return program_id


def put_company(api: Api, member_id: str, body: Any) -> requests.Response:
    return api.call("PUT", f"/v1/members/{member_id}/company", json_body=body)


def link(api: Api, company: str, manager: str) -> requests.Response:
    return api.call("PUT", f"/v1/members/{company}/managers/{manager}")


def leave(api: Api, company: str, manager: str) -> requests.Response:
    return api.call("DELETE", f"/v1/members/{company}/managers/{manager}")


def balance(api: Api, member_id: str) -> int:
    return api.balanced(member_id)["member"]["balance"]


class Firm:
    """A company and one manager on a program of their own, with their balances after enrolment."""

    def __init__(self, api: Api, admin: Api, owner: str, leaving: str) -> None:
        self.api = api
        self.program_id = program(admin, owner, leaving)
        self.company = api.enrol(new_id("co"), program_id=self.program_id, email="office@acme.example")
        self.manager = api.enrol(new_id("mgr"), program_id=self.program_id)
        made = put_company(api, self.company, {"name": "Acme", "decision_maker": DM})
        assert made.status_code == 200, made.text
        linked = link(api, self.company, self.manager)
        assert linked.status_code == 200, linked.text
        self.start = {self.company: balance(api, self.company), self.manager: balance(api, self.manager)}

    def gained(self, member_id: str) -> int:
        return balance(self.api, member_id) - self.start[member_id]

    def buy(self, order_id: str, amount: int = ORDER, buyer: str | None = None) -> dict[str, Any]:
        body = {"order_id": order_id, "amount": amount, "currency": CURRENCY}
        answer = self.api.post(f"/v1/members/{buyer or self.manager}/purchases", body)
        assert answer.status_code == 201, answer.text
        self.api.balanced(self.company)
        self.api.balanced(self.manager)
        return answer.json()

    def refund(self, order_id: str, amount: int, buyer: str | None = None) -> dict[str, Any]:
        body = {"refund_id": new_id("r"), "order_id": order_id, "amount": amount}
        answer = self.api.post(f"/v1/members/{buyer or self.manager}/refunds", body)
        assert answer.status_code == 201, answer.text
        self.api.balanced(self.company)
        self.api.balanced(self.manager)
        return answer.json()


def audit(admin: Api, action: str, member_id: str) -> list[dict[str, Any]]:
    answer = admin.get(f"/v1/audit?action={action}&member_id={member_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["records"]


# ---------------------------------------------------------------------------- companies and managers


def test_a_company_is_made_read_and_changed_with_its_managers(api: Api, admin: Api) -> None:
    program_id = program(admin, "company", "stay_with_company")
    company = api.enrol(new_id("co"), program_id=program_id)
    before = api.state(company)
    made = put_company(api, company, {"name": "Acme", "decision_maker": {"name": "Olena Koval"}})
    assert made.status_code == 200, made.text
    profile = made.json()
    assert profile["member_id"] == company and profile["name"] == "Acme"
    assert profile["decision_maker"] == {"name": "Olena Koval", "email": None, "phone": None, "locale": "en"}
    assert (profile["managers"], profile["next_cursor"], profile["erased_at"]) == ([], None, None)
    again = put_company(api, company, {"name": "Acme", "decision_maker": {"name": "Olena Koval"}})
    assert again.status_code == 200 and again.json() == profile  # idempotent: nothing new written
    changed = put_company(api, company, {"name": "Acme Travel", "decision_maker": DM})
    assert changed.status_code == 200, changed.text
    assert changed.json()["decision_maker"] == DM and changed.json()["created_at"] == profile["created_at"]
    assert api.state(company) == before  # a profile is no ledger entry

    managers = sorted(api.enrol(new_id("mgr"), program_id=program_id) for _ in range(3))
    for manager in managers:
        linked = link(api, company, manager)
        assert linked.status_code == 200, linked.text
        assert (linked.json()["company_id"], linked.json()["member_id"], linked.json()["stint"]) == (
            company,
            manager,
            1,
        )
    assert link(api, company, managers[0]).json()["linked_at"] == link(api, company, managers[0]).json()["linked_at"]
    seen, cursor = [], None
    while True:
        page = api.get(f"/v1/members/{company}/company?limit=2" + (f"&cursor={cursor}" if cursor else "")).json()
        assert len(page["managers"]) <= 2 and page["name"] == "Acme Travel"
        seen += [m["member_id"] for m in page["managers"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == managers
    assert len(audit(admin, "company.put", company)) == 2  # made, changed (not the repeat)
    assert len(audit(admin, "company.manager.link", company)) == 3
    for member_id in (company, *managers):
        api.balanced(member_id)


def test_a_managers_purchase_accrues_to_the_company_when_its_program_says_so(api: Api, admin: Api) -> None:
    firm = Firm(api, admin, "company", "stay_with_company")
    order = new_id("o")
    bought = firm.buy(order, 250_000)
    assert (bought["member_id"], bought["manager_id"], bought["points"]) == (firm.company, firm.manager, 250)
    assert (firm.gained(firm.company), firm.gained(firm.manager)) == (250, 0)
    assert bought["balance"] == balance(api, firm.company)
    [accrual] = [e for e in api.entries(firm.company) if e["type"] == "accrual"]
    assert accrual["details"]["manager_id"] == firm.manager and accrual["order_id"] == order
    assert firm.buy(order, 250_000) == bought  # once per order_id, wherever it booked

    # The manager pays with the holder's points: the company's.
    quote = api.post(f"/v1/members/{firm.manager}/redemption-quote", {"order_amount": ORDER, "currency": CURRENCY})
    assert quote.status_code == 200 and quote.json()["member_id"] == firm.company
    assert quote.json()["available"] == balance(api, firm.company)
    spend = {"order_id": new_id("p"), "points": 15, "order_amount": ORDER, "currency": CURRENCY}
    spent = api.post(f"/v1/members/{firm.manager}/redemptions", spend)
    assert spent.status_code == 201 and spent.json()["member_id"] == firm.company, spent.text
    held = api.post(f"/v1/members/{firm.manager}/holds", {**spend, "order_id": new_id("h")})
    assert held.status_code == 201 and held.json()["member_id"] == firm.company, held.text
    captured = api.post(f"/v1/holds/{held.json()['hold_id']}/capture")
    assert captured.status_code == 200 and captured.json()["member_id"] == firm.company
    assert (firm.gained(firm.company), firm.gained(firm.manager)) == (250 - 30, 0)

    # A refund by the manager finds the order on the company's account.
    refunded = firm.refund(order, 100_000)
    assert (refunded["member_id"], refunded["points_taken_back"]) == (firm.company, 100)
    assert (firm.gained(firm.company), firm.gained(firm.manager)) == (250 - 30 - 100, 0)

    # By card: the same.
    card = admin.post("/v1/cards", {"kind": "virtual", "member_id": firm.manager})
    assert card.status_code == 201, card.text
    number = card.json()["card_number"]
    by_card = api.post(
        f"/v1/cards/{number}/purchases", {"order_id": new_id("o"), "amount": ORDER, "currency": CURRENCY}
    )
    assert by_card.status_code == 201, by_card.text
    assert (by_card.json()["member_id"], by_card.json()["manager_id"]) == (firm.company, firm.manager)
    newest = api.entries(firm.company)[0]
    assert newest["details"]["card_number"] == number and newest["details"]["manager_id"] == firm.manager
    api.balanced(firm.company)
    api.balanced(firm.manager)


def test_a_managers_purchase_accrues_to_the_manager_when_its_program_says_so(api: Api, admin: Api) -> None:
    firm = Firm(api, admin, "manager", "stay_with_company")
    bought = firm.buy(new_id("o"), 300_000)
    assert (bought["member_id"], bought["manager_id"], bought["points"]) == (firm.manager, None, 300)
    assert (firm.gained(firm.company), firm.gained(firm.manager)) == (0, 300)
    # The company's own purchase stays the company's.
    own = firm.buy(new_id("o"), ORDER, buyer=firm.company)
    assert (own["member_id"], own["manager_id"]) == (firm.company, None)
    assert (firm.gained(firm.company), firm.gained(firm.manager)) == (100, 300)


# ---------------------------------------------------------------------------- leaving


@pytest.mark.parametrize(
    ("owner", "rule", "company_delta", "manager_delta", "types"),
    [
        ("company", "stay_with_company", 0, 0, ["manager_left", "manager_left"]),
        ("company", "go_with_manager", -150, 150, ["manager_leave_out", "manager_leave_in"]),
        ("company", "burn", -150, 0, ["manager_leave_burn", "manager_left"]),
        ("manager", "stay_with_company", 150, -150, ["manager_leave_in", "manager_leave_out"]),
        ("manager", "go_with_manager", 0, 0, ["manager_left", "manager_left"]),
        ("manager", "burn", 0, -150, ["manager_left", "manager_leave_burn"]),
    ],
)
def test_a_leaving_managers_points_follow_the_rule_with_entries_on_both_sides(
    api: Api, admin: Api, owner: str, rule: str, company_delta: int, manager_delta: int, types: list[str]
) -> None:
    firm = Firm(api, admin, owner, rule)
    first, second = new_id("o"), new_id("o")
    firm.buy(first, ORDER)  # 100
    firm.buy(second, 80_000)  # 80
    firm.refund(second, 30_000)  # -30: the manager's points are 150
    before = {m: balance(api, m) for m in (firm.company, firm.manager)}
    answer = leave(api, firm.company, firm.manager)
    assert answer.status_code == 200, answer.text
    left = answer.json()
    assert (left["company_id"], left["manager_id"], left["rule"]) == (firm.company, firm.manager, rule)
    assert left["attributed"] == (
        {"company": 150, "manager": 0} if owner == "company" else {"company": 0, "manager": 150}
    )
    assert [e["type"] for e in left["entries"]] == types
    assert [e["member_id"] for e in left["entries"]] == [firm.company, firm.manager]
    assert left["points"] == max(abs(company_delta), abs(manager_delta))
    after = {m: balance(api, m) for m in (firm.company, firm.manager)}
    assert (after[firm.company] - before[firm.company], after[firm.manager] - before[firm.manager]) == (
        company_delta,
        manager_delta,
    )
    for member_id, entry in zip((firm.company, firm.manager), left["entries"], strict=True):
        newest = api.entries(member_id)[0]
        assert (newest["entry_id"], newest["type"], newest["points"]) == (
            entry["entry_id"],
            entry["type"],
            entry["points"],
        )
        assert newest["details"]["company_id"] == firm.company and newest["details"]["manager_id"] == firm.manager
        assert newest["balance_after"] == entry["balance"]

    again = leave(api, firm.company, firm.manager)  # the same leave: the first result, nothing more
    assert again.status_code == 200 and again.json() == left
    assert {m: balance(api, m) for m in (firm.company, firm.manager)} == after
    assert api.get(f"/v1/members/{firm.company}/company").json()["managers"] == []
    assert [r["details"]["rule"] for r in audit(admin, "company.manager.leave", firm.company)] == [rule]

    # After leaving: the manager's orders are its own; a refund of an old one finds where it booked.
    assert firm.buy(new_id("o"))["member_id"] == firm.manager
    refunded = firm.refund(first, 10_000)
    assert refunded["member_id"] == (firm.company if owner == "company" else firm.manager)


def test_a_manager_may_leave_and_come_back_in_a_new_stint(api: Api, admin: Api) -> None:
    firm = Firm(api, admin, "company", "go_with_manager")
    firm.buy(new_id("o"))
    first = leave(api, firm.company, firm.manager).json()
    assert first["points"] == 100
    back = link(api, firm.company, firm.manager)
    assert back.status_code == 200 and back.json()["stint"] == 2
    firm.buy(new_id("o"), 50_000)
    second = leave(api, firm.company, firm.manager)
    assert second.status_code == 200 and second.json()["attributed"] == {"company": 50, "manager": 0}
    assert (firm.gained(firm.company), firm.gained(firm.manager)) == (0, 150)


# ---------------------------------------------------------------------------- erasure


def test_erasing_a_company_erases_its_decision_makers_contact(api: Api, admin: Api) -> None:
    firm = Firm(api, admin, "company", "burn")
    erased = admin.post(f"/v1/members/{firm.company}/erasure", {"reason": "the company asked"})
    assert erased.status_code == 200, erased.text
    profile = api.get(f"/v1/members/{firm.company}/company").json()
    assert profile["decision_maker"] == {"name": None, "email": None, "phone": None, "locale": "en"}
    assert profile["erased_at"] and "olena" not in str(profile).lower() and "1234567" not in str(profile)
    assert [m["member_id"] for m in profile["managers"]] == [firm.manager]
    refused = put_company(api, firm.company, {"name": "Acme", "decision_maker": DM})
    Api.problem(refused, 409, "conflict")
    assert "olena" not in str(api.get(f"/v1/members/{firm.company}/company").json()).lower()


# ---------------------------------------------------------------------------- bad input


@pytest.fixture
def firm(api: Api, admin: Api) -> Firm:
    return Firm(api, admin, "company", "go_with_manager")


def snapshot(api: Api, firm: Firm, *others: str) -> dict[str, Any]:
    company = api.get(f"/v1/members/{firm.company}/company")
    assert company.status_code == 200, company.text
    return {"company": company.json(), **{m: api.state(m) for m in (firm.company, firm.manager, *others)}}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param({"decision_maker": DM}, {"name"}, id="no-name"),
        pytest.param({"name": "Acme"}, {"decision_maker"}, id="no-decision-maker"),
        pytest.param({"name": 42, "decision_maker": DM}, {"name"}, id="name-a-number"),
        pytest.param({"name": "", "decision_maker": DM}, {"name"}, id="name-empty"),
        pytest.param({"name": "Acme\r\nBcc: x@evil.example", "decision_maker": DM}, {"name"}, id="name-crlf"),
        pytest.param({"name": "Acme", "decision_maker": "Olena"}, {"decision_maker"}, id="decision-maker-a-string"),
        pytest.param(
            {"name": "Acme", "decision_maker": {**DM, "email": "olena"}}, {"decision_maker.email"}, id="email"
        ),
        pytest.param(
            {"name": "Acme", "decision_maker": {**DM, "phone": "0441234567"}}, {"decision_maker.phone"}, id="phone"
        ),
        pytest.param(
            {"name": "Acme", "decision_maker": {**DM, "locale": "Ukrainian"}}, {"decision_maker.locale"}, id="locale"
        ),
        pytest.param(
            {"name": "Acme", "decision_maker": {"email": "o@acme.example"}}, {"decision_maker.name"}, id="dm-no-name"
        ),
        pytest.param({"name": "Acme", "decision_maker": DM, "vat": "UA1"}, {"vat"}, id="unknown-field"),
        pytest.param([{"name": "Acme", "decision_maker": DM}], {"body"}, id="an-array"),
    ],
)
def test_a_bad_company_profile_is_a_422_and_writes_nothing(api: Api, firm: Firm, body: Any, fields: set[str]) -> None:
    before = snapshot(api, firm)
    problem = Api.problem(put_company(api, firm.company, body), 422, "invalid-request")
    assert fields <= Api.fields_named(problem), problem
    plain = api.enrol()
    Api.problem(put_company(api, plain, body), 422, "invalid-request")
    Api.problem(api.get(f"/v1/members/{plain}/company"), 404, "not-found")
    assert snapshot(api, firm) == before


def test_broken_json_is_a_400_and_writes_nothing(api: Api, firm: Firm) -> None:
    before = snapshot(api, firm)
    json_header = {"Content-Type": "application/json"}
    for broken in ('{"name": "Acme", ', "{'name': 'Acme'}", '{"name": "Acme", "decision_maker": {}'):
        answer = api.call("PUT", f"/v1/members/{firm.company}/company", data=broken, headers=json_header)
        Api.problem(answer, 400, "malformed-json")
        answer = api.call(
            "PUT", f"/v1/members/{firm.company}/managers/{firm.manager}", data=broken, headers=json_header
        )
        Api.problem(answer, 400, "malformed-json")
    form = api.call(
        "PUT", f"/v1/members/{firm.company}/company", data="name=Acme", headers={"Content-Type": "text/plain"}
    )
    Api.problem(form, 415)
    assert snapshot(api, firm) == before


def test_unknown_ids_are_404s_and_write_nothing(api: Api, firm: Firm) -> None:
    before = snapshot(api, firm)
    ghost = new_id("ghost")
    Api.problem(put_company(api, ghost, {"name": "Ghost", "decision_maker": DM}), 404, "not-found")
    Api.problem(api.get(f"/v1/members/{ghost}/company"), 404, "not-found")
    Api.problem(link(api, ghost, firm.manager), 404, "not-found")
    Api.problem(link(api, firm.company, ghost), 404, "not-found")
    Api.problem(leave(api, ghost, firm.manager), 404, "not-found")
    Api.problem(leave(api, firm.company, ghost), 404, "not-found")
    stranger = api.enrol()
    Api.problem(leave(api, firm.company, stranger), 404, "not-found")  # enrolled, not its manager
    plain = api.enrol()
    problem = Api.problem(link(api, plain, stranger), 404, "not-found")  # not a company
    assert f"/v1/members/{plain}/company" in problem["detail"]
    Api.problem(api.get(f"/v1/members/{ghost}/company?cursor=bm90LWEtY3Vyc29y"), 422)
    Api.problem(api.get(f"/v1/members/{firm.company}/company?cursor=bm90LWEtY3Vyc29y"), 422)
    Api.problem(api.get(f"/v1/members/{firm.company}/company?limit=0"), 422)
    assert snapshot(api, firm) == before
    Api.problem(api.get(f"/v1/members/{stranger}/company"), 404, "not-found")


def test_refused_links_write_nothing(api: Api, admin: Api, firm: Firm) -> None:
    other = Firm(api, admin, "company", "burn")
    euro = api.enrol(program_id=program(admin, "company", "burn", currency="EUR"))
    before = snapshot(api, firm, other.company, other.manager, euro)
    before_other = api.get(f"/v1/members/{other.company}/company").json()

    problem = Api.problem(link(api, other.company, firm.manager), 409, "conflict")  # manager of two
    assert problem["company_id"] == firm.company
    Api.problem(link(api, firm.company, other.company), 409, "conflict")  # a company as manager
    problem = Api.problem(link(api, firm.company, firm.company), 422, "invalid-request")  # itself
    assert "path:manager_id" in Api.fields_named(problem)
    Api.problem(link(api, firm.company, euro), 409, "conflict")  # another currency
    Api.problem(put_company(api, firm.manager, {"name": "Mgr Ltd", "decision_maker": DM}), 409, "conflict")
    Api.problem(leave(api, firm.company, firm.company), 422, "invalid-request")
    for bad in ("bad id", "x" * 65, "-dash-first"):
        Api.problem(link(api, firm.company, bad.replace(" ", "%20")), 422, "invalid-request")
        Api.problem(leave(api, firm.company, bad.replace(" ", "%20")), 422, "invalid-request")
        Api.problem(put_company(api, bad.replace(" ", "%20"), {"name": "X", "decision_maker": DM}), 422)

    assert snapshot(api, firm, other.company, other.manager, euro) == before
    assert api.get(f"/v1/members/{other.company}/company").json() == before_other
    Api.problem(api.get(f"/v1/members/{euro}/company"), 404, "not-found")


def test_another_buyer_of_the_company_cannot_reuse_an_order_id(api: Api, firm: Firm) -> None:
    order = new_id("o")
    firm.buy(order)
    colleague = api.enrol(new_id("mgr"), program_id=firm.program_id)
    assert link(api, firm.company, colleague).status_code == 200
    before = snapshot(api, firm, colleague)
    body = {"order_id": order, "amount": ORDER, "currency": CURRENCY}
    Api.problem(api.post(f"/v1/members/{colleague}/purchases", body), 409, "conflict")
    assert snapshot(api, firm, colleague) == before


def test_company_routes_need_their_permission(api: Api, firm: Firm) -> None:
    manager_key = Api(api.stack, api.stack["tenants"]["demo"]["api_keys"]["manager"])
    try:
        before = snapshot(api, firm)
        Api.problem(put_company(manager_key, firm.company, {"name": "X", "decision_maker": DM}), 403, "forbidden")
        Api.problem(leave(manager_key, firm.company, firm.manager), 403, "forbidden")
        assert manager_key.get(f"/v1/members/{firm.company}/company").status_code == 200  # members:read
        assert snapshot(api, firm) == before
    finally:
        manager_key.session.close()
