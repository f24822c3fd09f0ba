"""When a tenant's night burns: ``burning.night_begun`` and the hourly scheduler's checkpoint, as pure
rules, over every kind of zone (daylight saving north and south, half- and quarter-hour offsets,
a zone that skipped a whole day)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from loyalty.burning import night_begun, nights_to_run
from loyalty.models import TenantSettings

ZONES = [
    "Europe/Berlin",  # DST: last Sunday of March (02:00 -> 03:00) and of October (03:00 -> 02:00)
    "Europe/Moscow",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Sydney",  # southern DST
    "Australia/Lord_Howe",  # a half-hour DST shift
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "Pacific/Chatham",  # +12:45 / +13:45
    "Pacific/Kiritimati",  # +14
    "Pacific/Apia",  # skipped 30 December 2011 altogether
    "UTC",
]
BERLIN = ZoneInfo("Europe/Berlin")
burn_times = st.builds(time, st.integers(0, 5), st.sampled_from([0, 15, 30, 45, 59]))
instants = st.datetimes(min_value=datetime(2010, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))


def hourly(start: datetime, hours: int) -> list[datetime]:
    """The scheduler's runs: every hour at :30 UTC from ``start`` on."""
    first = start.replace(minute=30, second=0, microsecond=0)
    return [first + timedelta(hours=h) for h in range(hours)]


def test_a_night_begins_at_the_burn_time_on_the_local_wall_clock():
    at_0030 = time(0, 30)
    assert night_begun(datetime(2026, 12, 31, 23, 29, tzinfo=UTC), BERLIN, at_0030) == date(2026, 12, 31)
    assert night_begun(datetime(2026, 12, 31, 23, 30, tzinfo=UTC), BERLIN, at_0030) == date(2027, 1, 1)  # 00:30 CET
    assert night_begun(datetime(2027, 3, 31, 22, 30, tzinfo=UTC), BERLIN, at_0030) == date(2027, 4, 1)  # 00:30 CEST
    # The night of the change to winter time (31 October 2027, 03:00 CEST -> 02:00 CET).
    assert night_begun(datetime(2027, 10, 30, 22, 29, tzinfo=UTC), BERLIN, at_0030) == date(2027, 10, 30)
    assert night_begun(datetime(2027, 10, 30, 22, 30, tzinfo=UTC), BERLIN, at_0030) == date(2027, 10, 31)
    # A burn time the spring change skips (02:30 on 28 March 2027) begins at the first instant after.
    skipped = time(2, 30)
    assert night_begun(datetime(2027, 3, 28, 0, 59, tzinfo=UTC), BERLIN, skipped) == date(2027, 3, 27)  # 01:59 CET
    assert night_begun(datetime(2027, 3, 28, 1, 0, tzinfo=UTC), BERLIN, skipped) == date(2027, 3, 28)  # 03:00 CEST


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES), burn_time=burn_times, start=instants, checkpoint_lag=st.integers(0, 3))
def test_hourly_runs_burn_every_night_once_in_order_and_never_before_its_time(zone, burn_time, start, checkpoint_lag):
    """Over four days of hourly runs (daylight-saving changes included whenever the dates fall on
    one), the nights each run sends, followed by the checkpoint, are every night from the one after
    the first checkpoint on, each exactly once, in order; each is sent at a run where its local burn
    time has passed, and within the hour (plus the zone's odd minutes) after it."""
    tz = ZoneInfo(zone)
    runs = hourly(start, 96)
    checkpoint = night_begun(runs[0], tz, burn_time) - timedelta(days=checkpoint_lag)
    sent: list[tuple[date, datetime]] = []
    current = checkpoint.isoformat()
    for run in runs:
        for night in nights_to_run(current, night_begun(run, tz, burn_time)):
            sent.append((night, run))
            current = night.isoformat()
    nights = [night for night, _ in sent]
    assert nights == [checkpoint + timedelta(days=n) for n in range(1, len(nights) + 1)]
    assert len(nights) >= 3 + min(checkpoint_lag, 1)  # four days of runs: at least three new nights
    for night, run in sent[checkpoint_lag:]:  # the nights caught up at the first run were missed ones
        local = run.astimezone(tz).replace(tzinfo=None)
        begins = datetime.combine(night, burn_time)
        assert local >= begins
        assert local - begins < timedelta(hours=2, minutes=1)  # an hour, plus a wall clock that jumped


@given(now=instants, zone=st.sampled_from(ZONES), burn_time=burn_times)
def test_the_night_is_the_local_date_or_the_day_before(now, zone, burn_time):
    local = now.astimezone(ZoneInfo(zone))
    night = night_begun(now, ZoneInfo(zone), burn_time)
    assert night in (local.date(), local.date() - timedelta(days=1))
    assert (night == local.date()) == (local.time().replace(tzinfo=None) >= burn_time)


def test_tenant_settings_refuse_what_would_not_be_a_night():
    assert TenantSettings().burn_time == "00:30" and TenantSettings().burn_time_zone is None
    assert TenantSettings(burn_time_zone="Asia/Kolkata", burn_time="05:59").local_burn_time() == time(5, 59)
    for bad in ({"burn_time": "06:00"}, {"burn_time": "23:30"}, {"burn_time": "0:30"}, {"burn_time_zone": "Mars/Base"}):
        with pytest.raises(ValidationError):
            TenantSettings(**bad)
