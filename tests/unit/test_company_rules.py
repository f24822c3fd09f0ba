"""The pure rules of company customers: what a leave does with a manager's points, and whose
account books a manager's order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.companies import LeavePlan, holder_of, leave_plan
from loyalty.models import BonusOwner, LeavingManagerPoints

points = st.integers(min_value=-1_000, max_value=10**9)
available = st.integers(min_value=0, max_value=10**9)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (LeavingManagerPoints.STAY_WITH_COMPANY, LeavePlan(move_to_company=70)),
        (LeavingManagerPoints.GO_WITH_MANAGER, LeavePlan(move_to_manager=120)),
        (LeavingManagerPoints.BURN, LeavePlan(burn_on_company=120, burn_on_manager=70)),
    ],
)
def test_each_rule(rule: LeavingManagerPoints, expected: LeavePlan) -> None:
    plan = leave_plan(rule, earned_company=120, earned_self=70, available_company=500, available_manager=500)
    assert plan == expected


def test_what_was_spent_meanwhile_caps_the_points() -> None:
    plan = leave_plan(
        LeavingManagerPoints.BURN, earned_company=120, earned_self=70, available_company=30, available_manager=0
    )
    assert plan == LeavePlan(burn_on_company=30, burn_on_manager=0)


@given(
    rule=st.sampled_from(list(LeavingManagerPoints)),
    earned_company=points,
    earned_self=points,
    available_company=available,
    available_manager=available,
)
def test_a_leave_never_takes_more_than_was_earned_or_is_there(
    rule: LeavingManagerPoints, earned_company: int, earned_self: int, available_company: int, available_manager: int
) -> None:
    plan = leave_plan(
        rule,
        earned_company=earned_company,
        earned_self=earned_self,
        available_company=available_company,
        available_manager=available_manager,
    )
    assert all(part >= 0 for part in (plan.move_to_company, plan.move_to_manager, plan.burn_on_company))
    taken_from_company = plan.move_to_manager + plan.burn_on_company
    taken_from_manager = plan.move_to_company + plan.burn_on_manager
    assert taken_from_company <= min(max(earned_company, 0), available_company)
    assert taken_from_manager <= min(max(earned_self, 0), available_manager)
    # Points move one way at most, and only a burn destroys any.
    assert not (plan.move_to_company and plan.move_to_manager)
    if rule is not LeavingManagerPoints.BURN:
        assert plan.burn_on_company == plan.burn_on_manager == 0


def test_the_company_books_a_managers_order_when_its_program_says_so() -> None:
    assert holder_of(BonusOwner.COMPANY, "acme", "anna") == "acme"
    assert holder_of(BonusOwner.MANAGER, "acme", "anna") == "anna"
