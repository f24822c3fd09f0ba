"""Pure bonus rules, with Hypothesis where the rules have invariants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty import rules
from loyalty.admin import demo_program
from loyalty.models import Program, Tier, TierBasis

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


# ------------------------------------------------------------------ tiers by basis

TIERED = Program(
    tenant_id="t",
    name="tiers",
    currency="RUB",
    tiers=(
        Tier(name="Silver", threshold=0, accrual_bp=300),
        Tier(name="Gold", threshold=5_000_000, accrual_bp=500),
        Tier(name="Platinum", threshold=20_000_000, accrual_bp=700),
    ),
)
BY_COUNT = TIERED.model_copy(
    update={
        "tier_basis": TierBasis.PURCHASE_COUNT,
        "tiers": (
            Tier(name="Silver", threshold=0, accrual_bp=300),
            Tier(name="Gold", threshold=10, accrual_bp=500),
        ),
    }
)


@given(st.lists(st.integers(1, 10_000_000), max_size=30))
def test_a_tier_once_reached_is_kept_and_follows_the_basis(amounts):
    tier, spend, seen = "Silver", 0, []
    for amount in amounts:
        spend += amount
        reached = rules.reached_tier(TIERED, tier, lifetime_spend=spend, purchases=0)
        assert reached.threshold >= rules.tier_named(TIERED, tier).threshold  # never down
        assert reached == max(rules.tier_for(TIERED, spend), rules.tier_named(TIERED, tier), key=lambda t: t.threshold)
        tier = reached.name
        seen.append(reached.threshold)
    assert seen == sorted(seen)
    # Spend going down (a refund) never lowers the tier either.
    assert rules.reached_tier(TIERED, tier, lifetime_spend=0, purchases=0).name == tier


def test_tier_by_purchase_count_and_progress():
    assert rules.reached_tier(BY_COUNT, "Silver", lifetime_spend=10**12, purchases=9).name == "Silver"
    assert rules.reached_tier(BY_COUNT, "Silver", lifetime_spend=0, purchases=10).name == "Gold"
    assert rules.tier_progress(BY_COUNT, "Silver", lifetime_spend=0, purchases=7) == {
        "next_tier": "Gold",
        "basis": "purchase_count",
        "remaining": 3,
    }
    assert rules.tier_progress(BY_COUNT, "Gold", lifetime_spend=0, purchases=12) is None


@given(st.integers(0, 30_000_000))
def test_progress_names_the_next_tier_and_what_it_still_needs(spend):
    tier = rules.tier_for(TIERED, spend).name
    progress = rules.tier_progress(TIERED, tier, lifetime_spend=spend, purchases=0)
    if tier == "Platinum":
        assert progress is None
        return
    following = rules.tier_named(TIERED, progress["next_tier"])
    assert progress["remaining"] == following.threshold - spend > 0
    assert rules.tier_for(TIERED, spend + progress["remaining"]).name == following.name


def test_orders_below_the_minimum_do_not_qualify():
    program = TIERED.model_copy(update={"min_order_amount": 50_000})
    assert not rules.qualifies(program, 49_999) and rules.qualifies(program, 50_000)


def test_a_windowed_basis_is_not_decided_from_running_totals():
    windowed = TIERED.model_copy(update={"tier_basis": TierBasis.SPEND_WINDOW, "tier_window_days": 90})
    assert rules.reached_tier(windowed, "Silver", lifetime_spend=10**12, purchases=100).name == "Silver"
    assert rules.tier_progress(windowed, "Silver", lifetime_spend=10**12, purchases=100) is None
