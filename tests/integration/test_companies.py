"""Company customers against moto: company profiles, managers' links, where a manager's orders
book, what a leave does with its points (every rule, both owners), and the races a route must
survive: a link or a leave between the choice of the account and the write."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from loyalty.admin import DEMO_TENANT
from loyalty.companies import Buyers, Companies, LinkChanged, Route, _RoutedStore
from loyalty.errors import Conflict, InvalidRequest, NotFound
from loyalty.ledger import check_invariant
from loyalty.members import enrol, erase
from loyalty.models import Profile
from loyalty.programs import Programs
from loyalty.store.audit import AuditStore
from loyalty.store.companies import CompanyStore, Contact

DM = Contact(name="Olena Koval", email="olena@acme.example", phone="+380441234567", locale="uk")


def program(world, owner: str, leaving: str, currency: str = "RUB") -> str:
    program_id = f"b2b-{uuid.uuid4().hex[:8]}"
    settings = {
        "name": "B2B club",
        "currency": currency,
        "point_value": 100,
        "tiers": [{"name": "Base", "threshold": 0, "accrual_bp": 1_000}],  # 10 %: 1 point per 10.00
        "company_bonus_owner": owner,
        "leaving_manager_points": leaving,
    }
    Programs(world.stores).put(world.actor, program_id, settings, None)
    return program_id


def member(world, program_id: str) -> str:
    member_id = f"m-{uuid.uuid4().hex[:8]}"
    enrol(world.stores, DEMO_TENANT, member_id, Profile(program_id=program_id))
    return member_id


def balance(world, member_id: str) -> int:
    return check_invariant(world.stores.ledger, DEMO_TENANT, member_id)["balance"]


def setup(world, owner: str = "company", leaving: str = "stay_with_company") -> tuple[Companies, Buyers, str, str]:
    program_id = program(world, owner, leaving)
    companies, buyers = Companies(world.stores), Buyers(world.stores)
    company, manager = member(world, program_id), member(world, program_id)
    companies.put(world.actor, company, name="Acme", decision_maker=DM)
    companies.link(world.actor, company, manager)
    return companies, buyers, company, manager


def buy(world, buyers: Buyers, buyer: str, order_id: str, amount: int = 100_000) -> dict[str, Any]:
    return buyers.accrue(world.actor, buyer, order_id=order_id, amount=amount, currency_code="RUB", occurred_at=None)


def audit(world, action: str, member_id: str) -> list:
    records, _ = AuditStore(world.tables["LedgerTable"], world.client).list(
        DEMO_TENANT,
        since="2000-01-01T00:00:00Z",
        until="2100-01-01T00:00:00Z",
        limit=100,
        action=action,
        member_id=member_id,
    )
    return records


def test_a_company_profile_is_written_once_per_change_and_audited(world) -> None:
    program_id = program(world, "company", "stay_with_company")
    companies = Companies(world.stores)
    company = member(world, program_id)
    first = companies.put(world.actor, company, name="Acme", decision_maker=DM)
    again = companies.put(world.actor, company, name="Acme", decision_maker=DM)
    assert again == first and first.version == 0
    changed = companies.put(world.actor, company, name="Acme Travel", decision_maker=DM)
    assert (changed.version, changed.created_at) == (1, first.created_at)
    records = sorted(audit(world, "company.put", company), key=lambda r: r.details["version"])  # one frozen instant
    assert [r.details for r in records] == [{"version": 0, "created": True}, {"version": 1, "created": False}]
    assert world.stores.ledger.snapshot(DEMO_TENANT, company).account.is_company
    with pytest.raises(NotFound):
        companies.put(world.actor, "nobody-here", name="Ghost", decision_maker=DM)


def test_links_one_company_at_a_time_never_a_company_nor_itself(world) -> None:
    companies, _, company, manager = setup(world)
    program_id = world.stores.ledger.snapshot(DEMO_TENANT, company).account.program_id
    other = member(world, program_id)
    companies.put(world.actor, other, name="Other", decision_maker=DM)
    assert companies.link(world.actor, company, manager).seq == 1  # again: the same stint
    with pytest.raises(Conflict):
        companies.link(world.actor, other, manager)  # manages one already
    with pytest.raises(Conflict):
        companies.link(world.actor, company, other)  # a company cannot manage
    with pytest.raises(InvalidRequest):
        companies.link(world.actor, company, company)
    with pytest.raises(Conflict):
        companies.put(world.actor, manager, name="Manager Ltd", decision_maker=DM)  # a manager cannot be one
    plain = member(world, program_id)
    with pytest.raises(NotFound):
        companies.link(world.actor, plain, manager)  # not a company
    euro = member(world, program(world, "company", "burn", currency="EUR"))
    with pytest.raises(Conflict):
        companies.link(world.actor, company, euro)
    _, managers, cursor = companies.get(DEMO_TENANT, company)
    assert ([m.manager_id for m in managers], cursor) == ([manager], None)


def test_managers_page_by_cursor(world) -> None:
    companies, _, company, first = setup(world)
    program_id = world.stores.ledger.snapshot(DEMO_TENANT, company).account.program_id
    others = [member(world, program_id) for _ in range(2)]
    for other in others:
        companies.link(world.actor, company, other)
    seen, cursor = [], None
    while True:
        _, page, cursor = companies.get(DEMO_TENANT, company, limit=1, cursor=cursor)
        seen += [m.manager_id for m in page]
        if cursor is None:
            break
    assert seen == sorted([first, *others])
    with pytest.raises(InvalidRequest):
        companies.get(DEMO_TENANT, company, cursor="bm90LWEtY3Vyc29y")


def test_a_managers_order_books_on_the_company_and_is_refunded_there(world) -> None:
    _, buyers, company, manager = setup(world, owner="company")
    start_c, start_m = balance(world, company), balance(world, manager)
    bought = buy(world, buyers, manager, "o-1", 250_000)
    assert (bought["member_id"], bought["manager_id"], bought["points"]) == (company, manager, 250)
    assert buy(world, buyers, manager, "o-1", 250_000) == bought  # once per order
    assert (balance(world, company) - start_c, balance(world, manager) - start_m) == (250, 0)
    [accrual] = [e for e in world.stores.ledger.all_entries(DEMO_TENANT, company) if e.type == "accrual"]
    assert accrual.details["manager_id"] == manager
    spent = buyers.redeem(world.actor, manager, order_id="o-2", points=10, order_amount=100_000, currency_code="RUB")
    assert spent["member_id"] == company
    quote = buyers.quote(world.actor, manager, order_amount=100_000, currency_code="RUB")
    assert (quote["member_id"], quote["available"]) == (company, balance(world, company))
    refunded = buyers.refund(world.actor, manager, refund_id="r-1", order_id="o-1", amount=50_000)
    assert (refunded["member_id"], refunded["points_taken_back"]) == (company, 50)
    link = CompanyStore.beside(world.stores.ledger).link(DEMO_TENANT, manager)
    assert (link.earned_company, link.earned_self) == (200, 0)
    # Another buyer of the company cannot book under the same order id.
    program_id = world.stores.ledger.snapshot(DEMO_TENANT, company).account.program_id
    colleague = member(world, program_id)
    Companies(world.stores).link(world.actor, company, colleague)
    with pytest.raises(Conflict):
        buy(world, buyers, colleague, "o-1", 250_000)


def test_under_owner_manager_the_manager_keeps_its_points_and_they_are_counted(world) -> None:
    _, buyers, company, manager = setup(world, owner="manager")
    start_c, start_m = balance(world, company), balance(world, manager)
    bought = buy(world, buyers, manager, "o-1", 100_000)
    assert (bought["member_id"], bought.get("manager_id")) == (manager, None)
    assert (balance(world, company) - start_c, balance(world, manager) - start_m) == (0, 100)
    buyers.refund(world.actor, manager, refund_id="r-1", order_id="o-1", amount=30_000)
    link = CompanyStore.beside(world.stores.ledger).link(DEMO_TENANT, manager)
    assert (link.earned_company, link.earned_self) == (0, 70)


@pytest.mark.parametrize(
    ("owner", "rule", "company_delta", "manager_delta", "types"),
    [
        ("company", "stay_with_company", 0, 0, ("manager_left", "manager_left")),
        ("company", "go_with_manager", -150, 150, ("manager_leave_out", "manager_leave_in")),
        ("company", "burn", -150, 0, ("manager_leave_burn", "manager_left")),
        ("manager", "stay_with_company", 150, -150, ("manager_leave_in", "manager_leave_out")),
        ("manager", "go_with_manager", 0, 0, ("manager_left", "manager_left")),
        ("manager", "burn", 0, -150, ("manager_left", "manager_leave_burn")),
    ],
)
def test_a_leave_applies_the_rule_on_both_sides_once(world, owner, rule, company_delta, manager_delta, types) -> None:
    companies, buyers, company, manager = setup(world, owner=owner, leaving=rule)
    buy(world, buyers, manager, "o-1", 100_000)
    buy(world, buyers, manager, "o-2", 80_000)
    buyers.refund(world.actor, manager, refund_id="r-1", order_id="o-2", amount=30_000)  # 100 + 80 - 30 = 150
    before_c, before_m = balance(world, company), balance(world, manager)
    left = companies.leave(world.actor, company, manager)
    assert left["rule"] == rule and tuple(e["type"] for e in left["entries"]) == types
    attributed = {"company": 150, "manager": 0} if owner == "company" else {"company": 0, "manager": 150}
    assert left["attributed"] == attributed and left["points"] == abs(manager_delta or company_delta)
    assert (balance(world, company) - before_c, balance(world, manager) - before_m) == (company_delta, manager_delta)
    assert companies.leave(world.actor, company, manager) == left  # the same leave: the first result
    assert (balance(world, company) - before_c, balance(world, manager) - before_m) == (company_delta, manager_delta)
    assert [r.details["rule"] for r in audit(world, "company.manager.leave", company)] == [rule]
    assert world.stores.ledger.snapshot(DEMO_TENANT, manager).account.company_id is None
    # The manager's next order is its own; a refund of its company order still finds the company.
    assert buy(world, buyers, manager, "o-3")["member_id"] == manager
    refund = buyers.refund(world.actor, manager, refund_id="r-2", order_id="o-1", amount=10_000)
    assert refund["member_id"] == (company if owner == "company" else manager)
    balance(world, company), balance(world, manager)  # the invariant, on both


def test_a_leave_moves_only_what_is_still_available(world) -> None:
    companies, buyers, company, manager = setup(world, owner="company", leaving="go_with_manager")
    buy(world, buyers, manager, "o-1", 1_000_000)  # 1,000 points on the company
    buyers.redeem(world.actor, company, order_id="c-1", points=900, order_amount=10_000_000, currency_code="RUB")
    available = balance(world, company)
    left = companies.leave(world.actor, company, manager)
    assert left["points"] == min(1_000, available) and left["attributed"]["company"] == 1_000
    assert balance(world, company) == available - left["points"]


def test_a_new_stint_starts_from_zero_and_old_orders_stay_where_they_were(world) -> None:
    companies, buyers, company, manager = setup(world, owner="company", leaving="stay_with_company")
    buy(world, buyers, manager, "o-1")
    companies.leave(world.actor, company, manager)
    again = companies.link(world.actor, company, manager)
    assert again.seq == 2 and (again.earned_company, again.earned_self) == (0, 0)
    refund = buyers.refund(world.actor, manager, refund_id="r-1", order_id="o-1", amount=100_000)
    assert refund["member_id"] == company  # counted in the first stint: the second's stays 0
    link = CompanyStore.beside(world.stores.ledger).link(DEMO_TENANT, manager)
    assert (link.seq, link.earned_company) == (2, 0)
    second = companies.leave(world.actor, company, manager)
    assert second["attributed"] == {"company": 0, "manager": 0}


def test_a_link_made_after_the_route_was_chosen_sends_the_order_to_the_company(world, monkeypatch) -> None:
    program_id = program(world, "company", "stay_with_company")
    companies, buyers = Companies(world.stores), Buyers(world.stores)
    company, manager = member(world, program_id), member(world, program_id)
    companies.put(world.actor, company, name="Acme", decision_maker=DM)
    linked = []
    original = _RoutedStore.snapshot

    def link_first(self, tenant_id, member_id, **wanted):
        if not linked:  # between the choice of the account and its read: the member becomes a manager
            linked.append(companies.link(world.actor, company, manager))
        return original(self, tenant_id, member_id, **wanted)

    monkeypatch.setattr(_RoutedStore, "snapshot", link_first)
    assert buy(world, buyers, manager, "o-1")["member_id"] == company


def test_a_leave_between_the_route_and_the_write_sends_the_order_to_the_manager(world, monkeypatch) -> None:
    companies, buyers, company, manager = setup(world, owner="company")
    left = []
    original = _RoutedStore.snapshot

    def leave_first(self, tenant_id, member_id, **wanted):
        if self.route.routed and self.route.redirected and not left:
            left.append(companies.leave(world.actor, company, manager))
        return original(self, tenant_id, member_id, **wanted)

    monkeypatch.setattr(_RoutedStore, "snapshot", leave_first)
    assert buy(world, buyers, manager, "o-1")["member_id"] == manager
    assert left and balance(world, manager) >= 0


def test_a_changed_route_is_caught_when_the_account_is_read(world) -> None:
    _, _, company, manager = setup(world)
    stale = Route(buyer=manager, holder=manager, state=None)
    store = _RoutedStore(world.stores.ledger, CompanyStore.beside(world.stores.ledger), stale, "purchase")
    with pytest.raises(LinkChanged):
        store.snapshot(DEMO_TENANT, manager)
    plain = _RoutedStore(world.stores.ledger, CompanyStore.beside(world.stores.ledger), Route.plain(company), "refund")
    with pytest.raises(LinkChanged):  # a company's refund may count in a manager's stint: route it
        plain.snapshot(DEMO_TENANT, company)


def test_erasing_a_company_erases_its_decision_maker(world) -> None:
    companies, _, company, manager = setup(world)
    erase(world.stores, world.actor, company, reason="asked", audit_table=world.tables["LedgerTable"])
    profile, managers, _ = companies.get(DEMO_TENANT, company)
    assert profile.decision_maker == Contact(name=None, locale="en") and profile.erased_at
    assert profile.name == "Acme" and [m.manager_id for m in managers] == [manager]
    with pytest.raises(Conflict):
        companies.put(world.actor, company, name="Acme", decision_maker=DM)
    erase(world.stores, world.actor, manager, reason="asked", audit_table=world.tables["LedgerTable"])  # no company
    assert CompanyStore.beside(world.stores.ledger).company(DEMO_TENANT, manager) is None
