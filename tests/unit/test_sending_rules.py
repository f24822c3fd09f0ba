"""Pure rules of sending: quiet hours in a member's zone, the rolling marketing cap, the token bucket."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from loyalty.messaging.quiet import Cap, QuietHours, cap_allows, release_at
from loyalty.messaging.sending import retry_delay, tag_value, untag
from loyalty.messaging.throttle import TokenBucket

NIGHT = QuietHours(time(21, 0), time(9, 0))
ZONES = ["UTC", "Europe/Moscow", "Europe/Kyiv", "America/New_York", "Asia/Kolkata", "Pacific/Kiritimati"]
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))


def test_the_default_quiet_hours_cross_midnight() -> None:
    assert [NIGHT.contains(time(h, 0)) for h in (8, 9, 20, 21, 23, 0)] == [True, False, False, True, True, True]
    assert not QuietHours(time(0, 0), time(0, 0)).contains(time(3, 0))  # start == end: none
    day = QuietHours(time(12, 0), time(14, 0))
    assert day.contains(time(13, 0)) and not day.contains(time(14, 0))


def test_a_message_decided_in_the_evening_waits_for_nine_oclock_local() -> None:
    evening = datetime(2026, 11, 23, 19, 30, tzinfo=UTC)  # 22:30 in Moscow, 14:30 in New York
    assert release_at(evening, "Europe/Moscow", NIGHT) == datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    assert release_at(evening, "America/New_York", NIGHT) is None
    early = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 04:00 in Moscow: the same morning
    assert release_at(early, "Europe/Moscow", NIGHT) == datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    assert release_at(early, "Not/AZone", NIGHT) == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # UTC


def test_across_a_daylight_saving_change_morning_is_nine_on_the_wall_clock() -> None:
    night = datetime(2027, 3, 14, 3, 0, tzinfo=UTC)  # 23:00 EST on 13 March; clocks go forward at 2:00
    assert release_at(night, "America/New_York", NIGHT) == datetime(2027, 3, 14, 13, 0, tzinfo=UTC)  # 09:00 EDT


@given(instants, st.sampled_from(ZONES))
def test_release_is_the_first_instant_outside_the_quiet_hours(now: datetime, zone: str) -> None:
    morning = release_at(now, zone, NIGHT)
    local = now.astimezone(ZoneInfo(zone))
    if morning is None:
        assert not NIGHT.contains(local.time())
        return
    assert NIGHT.contains(local.time())
    assert now < morning <= now + timedelta(hours=12, minutes=1)
    assert morning.astimezone(ZoneInfo(zone)).time() == time(9, 0)
    assert not NIGHT.contains(morning.astimezone(ZoneInfo(zone)).time())


@given(st.lists(st.integers(min_value=0, max_value=30 * 24), max_size=12), st.integers(min_value=0, max_value=5))
def test_the_cap_counts_the_last_seven_days_only(hours_ago: list[int], count: int) -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    sent = [now - timedelta(hours=h) for h in hours_ago]
    recent = sum(1 for h in hours_ago if h < 7 * 24)
    assert cap_allows(sent, now, Cap(count=count)) is (recent < count)


def test_the_bucket_gives_its_rate_and_no_more() -> None:
    ticks = {"t": 0.0}

    def sleep(seconds: float) -> None:
        ticks["t"] += seconds

    bucket = TokenBucket(rate=10, capacity=10, monotonic=lambda: ticks["t"], sleep=sleep)
    assert all(bucket.take(max_wait=0) for _ in range(10))  # a full second's burst
    assert bucket.take(max_wait=0) is False  # the next would need 0.1 s
    assert bucket.take(max_wait=1) is True and ticks["t"] == 0.1
    for _ in range(100):
        bucket.take(max_wait=1)
    assert ticks["t"] == 10.1  # 100 more at 10 a second: 10 seconds


@given(st.integers(min_value=1, max_value=50))
def test_retry_delays_grow_and_stay_within_sqs_limits(receives: int) -> None:
    assert 0 <= retry_delay(receives) <= 900


@given(st.text(min_size=1, max_size=64))
def test_tag_values_round_trip_in_the_characters_ses_allows(text: str) -> None:
    value = tag_value(text)
    assert untag(value) == text
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
