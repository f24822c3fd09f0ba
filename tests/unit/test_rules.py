"""Pure bonus rules, with Hypothesis where the rules have invariants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty import rules
from loyalty.admin import demo_program
from loyalty.models import Program, Tier

PROGRAM = demo_program()


def test_tier_climbs_with_lifetime_spend():
    assert rules.tier_for(PROGRAM, 0).name == "Silver"
    assert rules.tier_for(PROGRAM, 50_000_00 - 1).name == "Silver"
    assert rules.tier_for(PROGRAM, 50_000_00).name == "Gold"
    assert rules.tier_for(PROGRAM, 10**12).name == "Platinum"


def test_accrual_is_percent_of_amount_at_point_value_rounded_down():
    silver = PROGRAM.tiers[0]  # 3 %, 100 minor units a point
    assert rules.accrual_points(PROGRAM, silver, 1000_00) == 30
    assert rules.accrual_points(PROGRAM, silver, 3333) == 0  # 99.99 minor units of bonus: 0 points
    assert rules.accrual_points(PROGRAM, silver, 3334) == 1


@given(amount=st.integers(1, 10**13), bp=st.integers(0, 10_000), point_value=st.integers(1, 10_000))
def test_accrual_never_exceeds_the_exact_share(amount, bp, point_value):
    program = PROGRAM.model_copy(update={"point_value": point_value})
    tier = Tier(name="T", threshold=0, accrual_bp=bp)
    points = rules.accrual_points(program, tier, amount)
    assert 0 <= points * point_value * 10_000 <= amount * bp
    assert (points + 1) * point_value * 10_000 > amount * bp


def test_redeem_cap_is_share_of_order_and_balance():
    assert rules.max_redeemable(PROGRAM, 1000_00, 10_000) == 150  # 15 % of 1000.00 at 1.00 a point
    assert rules.max_redeemable(PROGRAM, 1000_00, 40) == 40
    assert rules.max_redeemable(PROGRAM, 1000_00, 0) == 0


@given(total=st.integers(0, 10**9), whole=st.integers(1, 10**9), data=st.data())
def test_refunds_in_parts_add_up_exactly(total, whole, data):
    cuts = sorted(data.draw(st.lists(st.integers(1, whole), max_size=6)))
    parts, before = [], 0
    for refunded in [*cuts, whole]:
        parts.append(rules.proportional_share(total, refunded, whole) - rules.proportional_share(total, before, whole))
        before = refunded
    assert sum(parts) == total
    assert all(part >= 0 for part in parts)


@given(
    lots=st.dictionaries(st.dates().map(str), st.integers(1, 10_000), max_size=12),
    points=st.integers(0, 200_000),
)
def test_spend_plan_takes_earliest_first_and_never_more_than_held(lots, points):
    plan = rules.spend_plan(list(lots.items()), points)
    taken = sum(take for _, take in plan)
    assert taken == min(points, sum(lots.values()))
    dates = [date for date, _ in plan]
    assert dates == sorted(dates)
    for date, take in plan[:-1]:  # every lot but the last one touched is emptied
        assert take == lots[date]
    untouched = set(lots) - set(dates)
    assert not dates or all(d > dates[-1] for d in untouched)


def test_spend_plan_prefers_the_given_lot():
    plan = rules.spend_plan([("2027-01-01", 5), ("2027-06-01", 5)], 6, prefer="2027-06-01")
    assert plan == [("2027-06-01", 5), ("2027-01-01", 1)]


def test_burn_date_follows_lifetime():
    assert rules.burn_date(PROGRAM, datetime(2026, 2, 28, 23, 0, tzinfo=UTC)).isoformat() == "2027-02-28"


def test_program_tiers_must_rise():
    with pytest.raises(ValueError, match="rise"):
        Program(
            tenant_id="t",
            program_id="p",
            name="n",
            currency="RUB",
            tiers=(Tier(name="a", threshold=0, accrual_bp=1), Tier(name="b", threshold=0, accrual_bp=2)),
        )
