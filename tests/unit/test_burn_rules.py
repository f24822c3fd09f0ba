"""Burn policies and reminders: pure rules (loyalty.rules), with Hypothesis where they have invariants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from loyalty import rules
from loyalty.admin import demo_program
from loyalty.models import ActivityEvent, BurnPolicy, Program

BASE = demo_program()
FIXED = BASE.model_copy(update={"burn_policy": BurnPolicy.FIXED_LIFETIME, "lifetime_days": 365})
INACTIVE = BASE.model_copy(update={"burn_policy": BurnPolicy.INACTIVITY, "inactivity_months": 6})

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))
lots = st.lists(st.tuples(days.map(date.isoformat), st.integers(1, 10**6)), max_size=30, unique_by=lambda lot: lot[0])


def program(**changes) -> Program:
    return Program.model_validate({**BASE.model_dump(), **changes})


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 13, tzinfo=UTC)


def test_defaults_keep_the_fixed_lifetime_in_days():
    assert (BASE.burn_policy, BASE.inactivity_months, BASE.reminder_days) == (BurnPolicy.FIXED_LIFETIME, 6, (30,))
    assert rules.burn_date(BASE, at(date(2026, 3, 1))) == date(2026, 3, 1) + timedelta(days=BASE.lifetime_days)


@pytest.mark.parametrize(
    ("earned", "months", "rounded", "burns"),
    [
        (date(2026, 1, 31), 1, False, date(2026, 2, 28)),  # February has no 31st: its last day
        (date(2028, 1, 31), 1, False, date(2028, 2, 29)),  # leap year
        (date(2026, 1, 31), 1, True, date(2026, 3, 1)),  # spendable through February's end
        (date(2026, 1, 15), 12, True, date(2027, 2, 1)),
        (date(2026, 12, 1), 1, True, date(2027, 1, 1)),  # already at a month's start: unchanged
        (date(2026, 11, 30), 3, False, date(2027, 2, 28)),
    ],
)
def test_fixed_lifetime_in_months(earned, months, rounded, burns):
    assert rules.burn_date(program(lifetime_months=months, round_to_month_end=rounded), at(earned)) == burns


@given(day=days, months=st.integers(0, 120))
def test_add_months_lands_in_the_right_month_on_the_same_day_or_the_last(day, months):
    later = rules.add_months(day, months)
    assert (later.year * 12 + later.month) - (day.year * 12 + day.month) == months
    assert later.day == day.day or (later.day < day.day and (later + timedelta(days=1)).day == 1)


@given(day=days, lifetime=st.integers(1, 3_650))
def test_month_end_rounding_never_shortens_and_burns_on_a_first(day, lifetime):
    plain = rules.burn_date(program(lifetime_days=lifetime), at(day))
    rounded = rules.burn_date(program(lifetime_days=lifetime, round_to_month_end=True), at(day))
    assert rounded.day == 1 and plain <= rounded < plain + timedelta(days=31)


@given(first=days, second=days)
def test_later_activity_never_burns_earlier(first, second):
    assert (first <= second) <= (rules.inactivity_due(INACTIVE, first) <= rules.inactivity_due(INACTIVE, second))


def test_activity_counts_only_under_inactivity_and_for_the_listed_events():
    purchases_only = INACTIVE.model_copy(update={"activity_events": (ActivityEvent.PURCHASE,)})
    assert rules.counts_as_activity(INACTIVE, {ActivityEvent.CARD_PRESENTED})
    assert not rules.counts_as_activity(purchases_only, {ActivityEvent.REDEMPTION})
    assert not rules.counts_as_activity(FIXED, {ActivityEvent.PURCHASE})


@given(lots=lots, night=days)
def test_fixed_lifetime_burns_exactly_the_lots_dated_up_to_the_night(lots, night):
    due = rules.lots_due(FIXED, lots, None, night)
    assert due == sorted(lot for lot in lots if lot[0] <= night.isoformat())


@given(lots=lots, night=days, due_day=days)
def test_inactivity_burns_all_or_nothing(lots, night, due_day):
    due = rules.lots_due(INACTIVE, lots, due_day.isoformat(), night)
    assert due == (sorted(lots) if due_day <= night else [])


@given(lots=lots, available=st.integers(-10, 10**7))
def test_a_burn_never_takes_held_points_and_takes_the_earliest_first(lots, available):
    due = sorted(lots)
    plan = rules.burn_plan(due, available)
    taken = sum(points for _, points in plan)
    assert taken == min(sum(r for _, r in due), max(available, 0))
    whole = [r for (_, r), (_, t) in zip(due, plan, strict=False) if t == r]
    assert len(whole) >= len(plan) - 1  # only the last lot touched may be partly burned


@given(lots=lots, debt=st.integers(0, 10**6))
def test_upcoming_burns_add_up_to_the_points_left(lots, debt):
    upcoming = rules.upcoming_burns(FIXED, lots, None, debt)
    assert sum(u["points"] for u in upcoming) == max(0, sum(r for _, r in lots) - debt)
    assert [u["date"] for u in upcoming] == sorted(u["date"] for u in upcoming)
    inactive = rules.upcoming_burns(INACTIVE, lots, "2030-01-01", debt)
    assert sum(u["points"] for u in inactive) == max(0, sum(r for _, r in lots) - debt)
    assert {u["date"] for u in inactive} <= {"2030-01-01"}


def test_reminders_are_distinct_positive_days():
    assert rules.reminder_targets(program(reminder_days=[7, 30]), date(2026, 1, 1)) == [
        (30, date(2026, 1, 31)),
        (7, date(2026, 1, 8)),
    ]
    assert program(reminder_days=[]).reminder_days == ()
    for bad in ([0], [30, 30], [-1], [400], [1, 2, 3, 4, 5, 6]):
        with pytest.raises(ValidationError, match="reminder_days"):
            program(reminder_days=bad)
    with pytest.raises(ValidationError, match="activity_events"):
        program(activity_events=["purchase", "purchase"])
