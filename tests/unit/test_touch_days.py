"""The welcome chain's and the digest's day rules (pure), with Hypothesis: the sequence is 1, 3, 7,
14, then every N days while before day 90, then digests every M days after day 90; the step a run
decides; the tenant settings' bounds."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from loyalty import touches
from loyalty.models import TenantSettings

chain_intervals = st.integers(min_value=20, max_value=30)
digest_intervals = st.integers(min_value=7, max_value=30)
instants = st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(dt.UTC))


@given(chain_intervals, digest_intervals)
def test_the_sequence(chain: int, digest: int) -> None:
    days = touches.sequence(chain, digest, until=400)
    assert days[:4] == [1, 3, 7, 14]
    periodic = [d for d in days if 14 < d < 90]
    assert periodic == list(range(14 + chain, 90, chain))
    digests = [d for d in days if d >= 90]
    assert digests[0] == 90 + digest
    assert all(b - a == digest for a, b in itertools.pairwise(digests))
    assert digests[-1] + digest > 400
    assert [touches.kind_of(d) for d in days[:4]] == ["welcome_day1", "welcome_day3", "welcome_day7", "welcome_day14"]
    assert {touches.kind_of(d) for d in periodic} <= {"welcome_periodic"}
    assert {touches.kind_of(d) for d in digests} == {"digest"}


def test_the_defaults_are_the_issue_s_days() -> None:
    defaults = TenantSettings()
    days = touches.sequence(defaults.chain_interval_days, defaults.digest_interval_days, until=120)
    assert days == [1, 3, 7, 14, 39, 64, 89, 104, 118]


@given(chain_intervals, digest_intervals, st.integers(min_value=0, max_value=500))
def test_next_day_is_the_first_day_of_the_sequence_after_any_day(chain: int, digest: int, after: int) -> None:
    days = touches.sequence(chain, digest, until=after + 60)
    assert touches.next_day(after, chain, digest) == min(d for d in days if d > after)


@given(instants, chain_intervals, digest_intervals, st.integers(min_value=0, max_value=200), st.integers(0, 86399))
def test_the_step_due_is_the_latest_begun(
    enrolled: dt.datetime, chain: int, digest: int, days_later: int, seconds: int
) -> None:
    at = touches.start_of(enrolled) + dt.timedelta(days=days_later, seconds=seconds)
    step = touches.step_due(enrolled, 1, at, chain, digest)
    assert step in touches.sequence(chain, digest, until=step)
    assert touches.due_at(enrolled, step) <= at < touches.due_at(enrolled, touches.next_day(step, chain, digest))
    assert touches.day_at(enrolled, touches.due_at(enrolled, step)) == step
    later = touches.first_due_after(enrolled, at, chain, digest)
    assert later == touches.next_day(step, chain, digest)


def test_references_are_deterministic_and_distinct() -> None:
    enrolled = dt.datetime(2026, 1, 31, 22, 30, 15, 123456, tzinfo=dt.UTC)
    days = touches.sequence(25, 14, until=200)
    references = [touches.reference_of(enrolled, d) for d in days]
    assert len(set(references)) == len(references)
    assert references[:2] == ["chain#1", "chain#3"]
    assert touches.reference_of(enrolled, 104) == "digest#2026-05-14"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain_interval_days", 19),
        ("chain_interval_days", 31),
        ("digest_interval_days", 6),
        ("digest_interval_days", 31),
        ("birthday_coupon_days", 0),
    ],
)
def test_settings_out_of_bounds_are_refused(field: str, value: int) -> None:
    with pytest.raises(ValidationError):
        TenantSettings(**{field: value})


@given(chain_intervals, digest_intervals, st.integers(min_value=1, max_value=366))
def test_settings_within_bounds_are_kept(chain: int, digest: int, coupon: int) -> None:
    kept = TenantSettings(chain_interval_days=chain, digest_interval_days=digest, birthday_coupon_days=coupon)
    assert (kept.chain_interval_days, kept.digest_interval_days, kept.birthday_coupon_days) == (chain, digest, coupon)
