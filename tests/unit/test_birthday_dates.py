"""The birthday job's date rules: which dates are "today" somewhere at an instant, whether a member's
local date is their birthday, 29 February, time zones at the date line, and the run's instant."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.birthdays import (
    birthday_today,
    celebrated_on,
    dates_today_somewhere,
    is_birthday,
    is_leap,
    local_date,
    month_days_for,
    run_instant,
)

ZONES = sorted(available_timezones())
# Instants since 1996: Pacific/Kiritimati has been UTC+14 since 1995 (the date line moved), and no
# zone has left UTC-12..UTC+14 since; the future follows today's rules.
INSTANTS = st.datetimes(
    min_value=dt.datetime(1996, 1, 1), max_value=dt.datetime(2099, 12, 31), timezones=st.just(dt.UTC)
)
BIRTHDAYS = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2030, 12, 31))


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


# ------------------------------------------------------------------------- "today" somewhere


@settings(max_examples=300)
@given(at=INSTANTS, name=st.sampled_from(ZONES))
def test_every_zones_local_date_is_among_the_dates_today_somewhere(at: dt.datetime, name: str) -> None:
    dates = dates_today_somewhere(at)
    assert at.astimezone(ZoneInfo(name)).date() in dates


@given(at=INSTANTS)
def test_two_or_three_consecutive_dates_from_utc_minus_12_to_utc_plus_14(at: dt.datetime) -> None:
    dates = dates_today_somewhere(at)
    assert 2 <= len(dates) <= 3
    assert all(b - a == dt.timedelta(days=1) for a, b in itertools.pairwise(dates))
    # Tight: the first is Baker Island's date (UTC-12), the last Kiritimati's (UTC+14).
    assert dates[0] == at.astimezone(ZoneInfo("Etc/GMT+12")).date()
    assert dates[-1] == at.astimezone(ZoneInfo("Pacific/Kiritimati")).date()


def test_dates_today_somewhere_at_known_instants() -> None:
    # 10:30 UTC: already 00:30 tomorrow in Kiritimati, still 22:30 yesterday on Baker Island.
    assert dates_today_somewhere(utc("2027-06-09T10:30")) == [
        dt.date(2027, 6, 8),
        dt.date(2027, 6, 9),
        dt.date(2027, 6, 10),
    ]
    # Three dates from 10:00 UTC (Kiritimati's new day) to 12:00 UTC (Baker Island's new day).
    assert dates_today_somewhere(utc("2027-06-09T09:59")) == [dt.date(2027, 6, 8), dt.date(2027, 6, 9)]
    assert dates_today_somewhere(utc("2027-06-09T10:00")) == [
        dt.date(2027, 6, 8),
        dt.date(2027, 6, 9),
        dt.date(2027, 6, 10),
    ]
    assert dates_today_somewhere(utc("2027-06-09T12:00")) == [dt.date(2027, 6, 9), dt.date(2027, 6, 10)]
    # Across New Year: the old year is still today somewhere.
    assert dates_today_somewhere(utc("2027-01-01T05:00")) == [dt.date(2026, 12, 31), dt.date(2027, 1, 1)]
    with pytest.raises(ValueError, match="time zone"):
        dates_today_somewhere(dt.datetime(2027, 6, 9, 10, 30))  # naive: refused


# ------------------------------------------------------------------------- birthdays and 29 February


@given(birthday=BIRTHDAYS, year=st.integers(min_value=1901, max_value=2200))
def test_a_birthday_is_kept_on_exactly_one_day_of_each_year(birthday: dt.date, year: int) -> None:
    first = dt.date(year, 1, 1)
    kept = [first + dt.timedelta(n) for n in range(366) if (first + dt.timedelta(n)).year == year]
    days = [day for day in kept if is_birthday(birthday, day)]
    assert days == [celebrated_on(birthday, year)]
    assert days[0].month == birthday.month  # never moved into another month


@given(day=st.dates(min_value=dt.date(1901, 1, 1), max_value=dt.date(2200, 12, 31)), birthday=BIRTHDAYS)
def test_the_index_is_queried_for_every_birthday_kept_on_a_day(day: dt.date, birthday: dt.date) -> None:
    if is_birthday(birthday, day):
        assert birthday.strftime("%m-%d") in month_days_for(day)


@given(day=st.dates(min_value=dt.date(1901, 1, 1), max_value=dt.date(2200, 12, 31)))
def test_each_month_day_queried_has_its_birthday_kept_that_day(day: dt.date) -> None:
    for month_day in month_days_for(day):
        born = dt.date.fromisoformat(f"2000-{month_day}")  # 2000 is a leap year: 02-29 exists
        assert is_birthday(born, day)


def test_29_february_is_kept_on_28_february_in_other_years() -> None:
    leapling = dt.date(1996, 2, 29)
    assert [is_leap(y) for y in (2000, 2024, 2027, 2028, 2100)] == [True, True, False, True, False]
    assert celebrated_on(leapling, 2027) == dt.date(2027, 2, 28)
    assert celebrated_on(leapling, 2028) == dt.date(2028, 2, 29)
    assert celebrated_on(leapling, 2100) == dt.date(2100, 2, 28)  # not a leap year
    assert is_birthday(leapling, dt.date(2027, 2, 28)) and not is_birthday(leapling, dt.date(2027, 3, 1))
    assert not is_birthday(leapling, dt.date(2028, 2, 28)) and is_birthday(leapling, dt.date(2028, 2, 29))
    assert month_days_for(dt.date(2027, 2, 28)) == ["02-28", "02-29"]
    assert month_days_for(dt.date(2028, 2, 28)) == ["02-28"]
    assert month_days_for(dt.date(2028, 2, 29)) == ["02-29"]
    # A member born on 28 February shares the day with the leaplings in common years only.
    assert is_birthday(dt.date(1990, 2, 28), dt.date(2027, 2, 28))


# ------------------------------------------------------------------------- time zones


def test_time_zones_at_the_date_line() -> None:
    at = utc("2027-06-09T10:30")  # one instant, three local dates
    born = {day: dt.date(1990, 6, day) for day in (8, 9, 10)}
    assert local_date(at, "Pacific/Kiritimati") == dt.date(2027, 6, 10)  # UTC+14
    assert local_date(at, "Pacific/Pago_Pago") == dt.date(2027, 6, 8)  # UTC-11 (23:30 the day before)
    assert birthday_today(born[10], "Pacific/Kiritimati", at) == dt.date(2027, 6, 10)
    assert birthday_today(born[8], "Pacific/Pago_Pago", at) == dt.date(2027, 6, 8)
    assert birthday_today(born[9], "Pacific/Kiritimati", at) is None  # over, there
    assert birthday_today(born[9], "Pacific/Pago_Pago", at) is None  # not begun, there
    assert birthday_today(born[9], "UTC", at) == dt.date(2027, 6, 9)
    assert birthday_today(None, "UTC", at) is None
    # Half and quarter hours: India (+05:30) and Nepal (+05:45) start their day off the hour.
    assert birthday_today(born[10], "Asia/Kolkata", utc("2027-06-09T18:29")) is None
    assert birthday_today(born[10], "Asia/Kolkata", utc("2027-06-09T18:30")) == dt.date(2027, 6, 10)
    assert birthday_today(born[10], "Asia/Kathmandu", utc("2027-06-09T18:14")) is None
    assert birthday_today(born[10], "Asia/Kathmandu", utc("2027-06-09T18:15")) == dt.date(2027, 6, 10)


def test_an_unknown_time_zone_keeps_the_birthday_in_utc() -> None:
    at = utc("2027-06-09T23:30")
    assert local_date(at, "Mars/Olympus_Mons") == dt.date(2027, 6, 9)
    assert local_date(at, "../etc/passwd") == dt.date(2027, 6, 9)


HOURLY_RUNS = [dt.timedelta(hours=h, minutes=5) for h in range(-30, 54)]


@settings(max_examples=200)
@given(
    name=st.sampled_from(ZONES),
    birthday=BIRTHDAYS,
    year=st.integers(min_value=2020, max_value=2090),
)
def test_the_hourly_runs_find_the_birthday_in_one_block_from_just_after_local_midnight(
    name: str, birthday: dt.date, year: int
) -> None:
    zone = ZoneInfo(name)
    kept = celebrated_on(birthday, year)
    midnight = dt.datetime.combine(kept, dt.time(0), tzinfo=dt.UTC)
    runs = [midnight + delta for delta in HOURLY_RUNS]  # every hh:05 UTC from a day before to a day after
    due = [i for i, at in enumerate(runs) if birthday_today(birthday, name, at) == kept]
    assert due, f"no hourly run finds the birthday of {kept} in {name}"
    assert due == list(range(due[0], due[-1] + 1)), "the birthday is one stretch of runs"
    assert 22 <= len(due) <= 26  # a local day (23 to 25 hours across a DST change, 30-min DST on Lord Howe)
    first = runs[due[0]]
    start_of_day = runs[due[0] - 1]
    assert start_of_day.astimezone(zone).date() < kept <= first.astimezone(zone).date()
    # The first run that pays is less than an hour after the local day began.
    local_start = dt.datetime.combine(kept, dt.time(0), tzinfo=zone).astimezone(dt.UTC)
    assert dt.timedelta(0) < first - local_start <= dt.timedelta(hours=1, minutes=5)


# ------------------------------------------------------------------------- the run's instant


def test_the_run_decides_at_the_scheduled_events_time() -> None:
    now = utc("2027-06-09T11:05:02")
    event = {"detail-type": "Scheduled Event", "source": "aws.events", "time": "2027-06-09T11:05:00Z"}
    assert run_instant(event, now) == utc("2027-06-09T11:05")
    assert run_instant({"time": "2027-06-08T03:05:00+02:00"}, now) == utc("2027-06-08T01:05")  # a replay
    assert run_instant({}, now) == now
    assert run_instant(None, now) == now
    assert run_instant({"time": "2027-06-09T11:09:00Z"}, now) == utc("2027-06-09T11:09")  # clock skew
    for bad in ("2027-06-09T11:05:00", "yesterday"):
        with pytest.raises(ValueError, match="time"):
            run_instant({"time": bad}, now)
    with pytest.raises(ValueError, match="never paid early"):
        run_instant({"time": "2027-06-10T11:05:00Z"}, now)
