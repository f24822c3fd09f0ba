"""The spend window's pure rules (``loyalty.rules.window_*``, ``next_review``, ``review_window``):
by hand, and Hypothesis properties against the plain definition, day by day."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty import rules
from loyalty.models import Program, Tier

START = dt.date(2026, 1, 1)
TIERS = (
    Tier(name="Bronze", threshold=0, accrual_bp=100),
    Tier(name="Silver", threshold=100_00, accrual_bp=200),
    Tier(name="Gold", threshold=500_00, accrual_bp=300),
)


def program(window_days: int = 30, downgrade: str = "window", tiers: tuple[Tier, ...] = TIERS) -> Program:
    return Program(
        tenant_id="t",
        program_id="p",
        name="P",
        currency="RUB",
        tiers=tiers,
        tier_basis="spend_window",
        tier_window_days=window_days,
        tier_downgrade=downgrade,
    )


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n)


def build(purchases: list[tuple[int, int]], window_days: int, today: dt.date) -> dict[str, int]:
    """The window as the ledger keeps it: each purchase added on its day, pruned as of ``today``."""
    window: dict[str, int] = {}
    for offset, amount in purchases:
        if rules.window_counts(day(offset), window_days, today):
            window = rules.window_add(window, window_days, day(offset), amount)
    return rules.window_of(window, window_days, today)


def counts_on(purchase_day: dt.date, window_days: int, on: dt.date) -> bool:
    """The definition: a purchase counts from its day until its bucket's last day leaves the window."""
    width = rules.window_bucket_days(window_days)
    last_day_of_bucket = rules.window_bucket(purchase_day, window_days) + dt.timedelta(days=width - 1)
    return purchase_day <= on and (on - last_day_of_bucket).days < window_days


def spend_on(purchases: list[tuple[int, int]], window_days: int, on: dt.date) -> int:
    return sum(amount for offset, amount in purchases if counts_on(day(offset), window_days, on))


# ------------------------------------------------------------------------------- by hand


def test_a_30_day_window_counts_a_purchase_on_its_day_and_the_29_after() -> None:
    window = rules.window_add({}, 30, day(0), 200_00)
    assert rules.window_leaves(day(0), 30) == day(30)
    assert [rules.window_spend(window, 30, day(n)) for n in (0, 29, 30)] == [200_00, 200_00, 0]
    assert rules.window_of(window, 30, day(30)) == {}


@pytest.mark.parametrize(("window_days", "width"), [(1, 1), (90, 1), (366, 1), (367, 2), (730, 2), (3_650, 10)])
def test_windows_up_to_366_days_count_by_the_day_longer_ones_by_buckets(window_days: int, width: int) -> None:
    assert rules.window_bucket_days(window_days) == width


def test_a_ten_year_window_keeps_at_most_368_buckets() -> None:
    window: dict[str, int] = {}
    for n in range(4_000):  # a purchase every day for eleven years
        window = rules.window_of(rules.window_add(window, 3_650, day(n), 1_00), 3_650, day(n))
    assert len(window) <= 367
    assert rules.window_spend(window, 3_650, day(3_999)) >= 3_650 * 1_00


def test_a_refund_takes_the_amount_out_of_its_day_never_below_zero() -> None:
    window = rules.window_add(rules.window_add({}, 30, day(0), 300_00), 30, day(1), 100_00)
    assert rules.window_remove(window, 30, day(0), 120_00) == {day(0).isoformat(): 180_00, day(1).isoformat(): 100_00}
    assert rules.window_remove(window, 30, day(0), 999_00) == {day(1).isoformat(): 100_00}
    assert rules.window_remove(window, 30, day(5), 50_00) == window  # a day with nothing in the window


def test_the_next_review_is_when_the_spend_falls_below_the_tier_held() -> None:
    prog = program()
    window = rules.window_add(rules.window_add({}, 30, day(0), 400_00), 30, day(10), 150_00)  # 550.00: Gold
    gold, silver, bronze = TIERS[2], TIERS[1], TIERS[0]
    assert rules.next_review(prog, gold, window, day(1)) == day(30)  # day 0 leaves: 150.00 < 500.00
    assert rules.next_review(prog, silver, window, day(1)) == day(40)  # then day 10 leaves: 0 < 100.00
    assert rules.next_review(prog, bronze, window, day(1)) is None  # nothing is below the first tier
    assert rules.next_review(program(downgrade="never"), gold, window, day(1)) is None


def test_a_review_lowers_to_the_tier_the_window_reaches_and_catches_up_in_order() -> None:
    prog = program()
    window = rules.window_add(rules.window_add({}, 30, day(0), 400_00), 30, day(10), 150_00)
    gold = TIERS[2]
    steps, tier, after = rules.review_window(prog, gold, window, day(30), day(29))
    assert (steps, tier, after) == ([], gold, day(30))  # not due yet
    steps, tier, after = rules.review_window(prog, gold, window, day(30), day(30))
    assert [(s.as_of, s.source.name, s.target.name, s.spend) for s in steps] == [(day(30), "Gold", "Silver", 150_00)]
    assert (tier.name, after) == ("Silver", day(40))
    # Missed nights: one call at day 45 makes both reviews, each on its own day.
    steps, tier, after = rules.review_window(prog, gold, window, day(30), day(45))
    assert [(s.as_of, s.target.name) for s in steps] == [(day(30), "Silver"), (day(40), "Bronze")]
    assert (tier.name, after) == ("Bronze", None)


def test_a_stale_review_day_lowers_nothing_and_moves_on() -> None:
    prog = program()
    window = rules.window_add({}, 30, day(20), 600_00)
    steps, tier, after = rules.review_window(prog, TIERS[2], window, day(25), day(25))
    assert (steps, tier.name, after) == ([], "Gold", day(50))


def test_a_window_whose_length_changed_is_regrouped() -> None:
    daily = {day(n).isoformat(): 1_00 for n in range(0, 40)}
    longer = rules.window_of(daily, 3_650, day(39))  # 10-day buckets
    assert sum(longer.values()) == 40_00 and len(longer) <= 5
    shorter = rules.window_of(daily, 7, day(39))  # only the last 7 days count
    assert shorter == {day(n).isoformat(): 1_00 for n in range(33, 40)}


# ------------------------------------------------------------------------------- properties

purchases_strategy = st.lists(st.tuples(st.integers(0, 900), st.integers(1, 400_00)), max_size=25)
window_strategy = st.one_of(st.integers(1, 120), st.integers(300, 800), st.sampled_from([366, 367, 3_650]))


@settings(max_examples=200, deadline=None)
@given(purchases=purchases_strategy, window_days=window_strategy, today=st.integers(0, 900), later=st.integers(0, 60))
def test_the_kept_window_sums_what_the_definition_counts(purchases, window_days, today, later) -> None:
    past = [(offset, amount) for offset, amount in purchases if offset <= today]
    window = build(past, window_days, day(today))
    on = day(today + later)
    assert rules.window_spend(window, window_days, on) == spend_on(past, window_days, on)
    assert len(window) <= rules.WINDOW_MAX_BUCKETS + 1
    if window_days <= rules.WINDOW_MAX_BUCKETS:  # exact: the last N days, today included
        exact = sum(a for o, a in past if today + later - window_days < o <= today + later)
        assert rules.window_spend(window, window_days, on) == exact


@settings(max_examples=200, deadline=None)
@given(purchase=st.integers(0, 900), window_days=window_strategy)
def test_a_purchase_counts_for_at_least_n_days_and_at_most_n_plus_the_bucket_less_one(purchase, window_days) -> None:
    bucket = rules.window_bucket(day(purchase), window_days)
    leaves = rules.window_leaves(bucket, window_days)
    counted = (leaves - day(purchase)).days
    assert window_days <= counted <= window_days + rules.window_bucket_days(window_days) - 1
    assert bucket <= day(purchase) < bucket + dt.timedelta(days=rules.window_bucket_days(window_days))


@settings(max_examples=200, deadline=None)
@given(
    purchases=purchases_strategy,
    window_days=window_strategy,
    threshold=st.integers(0, 2_000_00),
    after=st.integers(0, 900),
)
def test_the_window_falls_below_on_the_first_day_the_definition_says(purchases, window_days, threshold, after) -> None:
    past = [(offset, amount) for offset, amount in purchases if offset <= after]
    window = build(past, window_days, day(after))
    found = rules.window_falls_below(window, window_days, threshold, day(after))
    if threshold == 0:
        assert found is None
        return
    assert found is not None and found >= day(after)
    assert spend_on(past, window_days, found) < threshold
    assert all(spend_on(past, window_days, d) >= threshold for d in _days(day(after), found))


def _days(first: dt.date, end: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((end - first).days)]


@st.composite
def tiered_programs(draw: st.DrawFn) -> Program:
    count = draw(st.integers(1, 4))
    thresholds = [0, *sorted(draw(st.sets(st.integers(1, 1_500_00), min_size=count - 1, max_size=count - 1)))]
    tiers = tuple(Tier(name=f"T{i}", threshold=t, accrual_bp=100) for i, t in enumerate(thresholds))
    return program(window_days=draw(window_strategy), tiers=tiers)


@settings(max_examples=200, deadline=None)
@given(prog=tiered_programs(), purchases=purchases_strategy, gap=st.integers(0, 900))
def test_nightly_reviews_day_by_day_and_one_late_catch_up_agree(prog, purchases, gap) -> None:
    """After the last purchase, no more: reviewing every night, or once after missed nights, gives
    the same downgrades on the same days, and the tier the window reaches."""
    window_days = prog.tier_window_days
    assert window_days is not None
    last = max((offset for offset, _ in purchases), default=0)
    window = build(purchases, window_days, day(last))
    held = rules.tier_for(prog, rules.window_spend(window, window_days, day(last)))  # what upgrades reached
    due = rules.next_review(prog, held, window, day(last + 1))
    end = day(last + gap)
    nightly: list[rules.Downgrade] = []
    tier, review = held, due
    for today in _days(day(last + 1), end + dt.timedelta(days=1)):
        steps, tier, review = rules.review_window(prog, tier, window, review, today)
        nightly += steps
        assert review is None or review > today
    late, late_tier, late_review = rules.review_window(prog, held, window, due, end)
    assert late == nightly and (late_tier, late_review) == (tier, review)
    if gap:
        assert tier == rules.tier_for(prog, spend_on(purchases, window_days, end))
    assert all(a.as_of < b.as_of for a, b in pairwise(nightly))
    assert all(s.target.threshold < s.source.threshold for s in nightly)


@settings(max_examples=100, deadline=None)
@given(purchases=purchases_strategy, window_days=window_strategy, refund=st.integers(1, 400_00))
def test_a_refund_never_adds_spend(purchases, window_days, refund) -> None:
    window = build(purchases, window_days, day(900))
    for offset, _ in purchases:
        after = rules.window_remove(window, window_days, day(offset), refund)
        assert all(v > 0 for v in after.values())
        assert (
            rules.window_spend(after, window_days, day(900))
            >= rules.window_spend(window, window_days, day(900)) - refund
        )
        assert rules.window_spend(after, window_days, day(900)) <= rules.window_spend(window, window_days, day(900))
