"""The local stack's time arithmetic: AWS cron/rate/at expressions, ISO 8601 durations, RFC 3339."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest

from local.clock import ClockError, Duration, LocalClock, format_rfc3339, parse_rfc3339
from local.cron import (
    AtSchedule,
    CronSchedule,
    RateSchedule,
    ScheduleExpressionError,
    Window,
    occurrences,
    parse_expression,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def upcoming(expression: str, after: str, count: int, zone: str | None = None) -> list[datetime]:
    schedule = CronSchedule.parse(expression, zone)
    return list(islice(occurrences(schedule, utc(after)), count))


# ---------------------------------------------------------------------------- cron fields


def test_minutes_and_hours_with_steps_ranges_and_lists() -> None:
    assert upcoming("5/15 10 * * ? *", "2026-06-01T10:00", 4) == [
        utc("2026-06-01T10:05"),
        utc("2026-06-01T10:20"),
        utc("2026-06-01T10:35"),
        utc("2026-06-01T10:50"),
    ]
    assert [moment.hour for moment in upcoming("0 8-18/5 * * ? *", "2026-06-01T00:00", 3)] == [8, 13, 18]
    assert [moment.minute for moment in upcoming("1,2,59 * * * ? *", "2026-06-01T00:00", 3)] == [1, 2, 59]


def test_occurrences_are_strictly_after_the_instant() -> None:
    assert upcoming("0 12 * * ? *", "2026-06-01T12:00", 1) == [utc("2026-06-02T12:00")]
    assert upcoming("0 12 * * ? *", "2026-06-01T11:59:59", 1) == [utc("2026-06-01T12:00")]


def test_day_of_week_numbers_are_sunday_first_and_names_work() -> None:
    # 2026-06-05 is a Friday.
    assert upcoming("0 12 ? * MON-FRI *", "2026-06-05T13:00", 1) == [utc("2026-06-08T12:00")]
    assert upcoming("0 0 ? * 1 *", "2026-06-05T00:00", 1)[0].strftime("%A") == "Sunday"
    assert upcoming("0 0 ? * 7 *", "2026-06-05T00:00", 1)[0].strftime("%A") == "Saturday"
    wrapped = [moment.strftime("%a") for moment in upcoming("0 0 ? * FRI-MON *", "2026-06-04T00:00", 4)]
    assert wrapped == ["Fri", "Sat", "Sun", "Mon"]


def test_month_names_and_years() -> None:
    assert upcoming("0 0 1 JAN,JUL ? *", "2026-02-01T00:00", 2) == [utc("2026-07-01T00:00"), utc("2027-01-01T00:00")]
    assert upcoming("0 0 1 1 ? 2030", "2026-06-01T00:00", 2) == [utc("2030-01-01T00:00")]


def test_last_day_of_month_and_offsets() -> None:
    assert upcoming("0 9 L * ? *", "2028-02-01T00:00", 1) == [utc("2028-02-29T09:00")]
    assert upcoming("0 9 L * ? *", "2026-02-01T00:00", 2) == [utc("2026-02-28T09:00"), utc("2026-03-31T09:00")]
    assert upcoming("0 9 L-2 * ? *", "2026-04-01T00:00", 1) == [utc("2026-04-28T09:00")]


def test_last_and_nth_weekday_of_month() -> None:
    assert upcoming("0 9 ? * 6L *", "2026-11-01T00:00", 1) == [utc("2026-11-27T09:00")]  # last Friday
    assert upcoming("0 9 ? * 2#1 *", "2026-11-03T00:00", 1) == [utc("2026-12-07T09:00")]  # first Monday
    assert upcoming("0 9 ? * MON#5 *", "2026-01-01T00:00", 1) == [utc("2026-03-30T09:00")]  # a month with 5


def test_nearest_weekday() -> None:
    # 2026-08-15 is a Saturday, 2026-08-01 too; 2026-05-31 is a Sunday.
    assert upcoming("0 9 15W * ? *", "2026-08-01T00:00", 1) == [utc("2026-08-14T09:00")]
    assert upcoming("0 9 1W * ? *", "2026-07-31T00:00", 1) == [utc("2026-08-03T09:00")]
    assert upcoming("0 9 LW * ? *", "2026-05-01T00:00", 1) == [utc("2026-05-29T09:00")]


def test_an_expression_that_never_matches_ends_quickly() -> None:
    started = time.perf_counter()
    assert upcoming("0 0 30 2 ? *", "2026-01-01T00:00", 1) == []
    assert time.perf_counter() - started < 1.0


def test_finding_a_yearly_occurrence_walks_days_not_minutes() -> None:
    schedule = CronSchedule.parse("0 0 29 2 ? *")  # once every four years (not in 2100)
    started = time.perf_counter()
    found = list(islice(occurrences(schedule, utc("2026-01-01T00:00")), 40))
    assert time.perf_counter() - started < 2.0
    years = [moment.year for moment in found]
    assert years[:2] == [2028, 2032] and 2096 in years and 2100 not in years and 2104 in years
    assert all(moment.month == 2 and moment.day == 29 for moment in found)


@pytest.mark.parametrize(
    "text",
    [
        "0 12 * * *",  # five fields
        "0 12 * * * *",  # neither day field is ?
        "0 12 ? * ? *",  # both are
        "60 12 * * ? *",
        "0 24 * * ? *",
        "0 0 32 * ? *",
        "0 0 ? * 8 *",
        "0 0 * 13 ? *",
        "*/0 * * * ? *",
        "0 0 ? * 9L *",
        "0 0 ? * 2#6 *",
        "0 0 * * ? 2300",
        "x 0 * * ? *",
    ],
)
def test_invalid_cron_expressions_are_rejected(text: str) -> None:
    with pytest.raises(ScheduleExpressionError):
        CronSchedule.parse(text)


def test_unknown_time_zone_is_rejected() -> None:
    with pytest.raises(ScheduleExpressionError):
        CronSchedule.parse("0 2 * * ? *", "Mars/Olympus_Mons")


# ---------------------------------------------------------------------------- time zones and DST


def test_berlin_spring_forward_skips_the_missing_two_oclock() -> None:
    # On 2026-03-29 Berlin jumps from 02:00 CET to 03:00 CEST: 02:00 does not exist that day.
    assert upcoming("0 2 * * ? *", "2026-03-27T00:00", 4, "Europe/Berlin") == [
        utc("2026-03-27T01:00"),  # 02:00 CET
        utc("2026-03-28T01:00"),
        utc("2026-03-30T00:00"),  # 02:00 CEST
        utc("2026-03-31T00:00"),
    ]


def test_berlin_spring_forward_every_half_hour() -> None:
    assert upcoming("0/30 * * * ? *", "2026-03-29T00:00", 3, "Europe/Berlin") == [
        utc("2026-03-29T00:30"),  # 01:30 CET
        utc("2026-03-29T01:00"),  # 03:00 CEST: 02:00 and 02:30 never happened
        utc("2026-03-29T01:30"),
    ]


def test_berlin_fall_back_runs_a_repeated_time_once() -> None:
    # On 2026-10-25 Berlin goes back from 03:00 CEST to 02:00 CET: 02:30 happens twice.
    assert upcoming("30 2 * * ? *", "2026-10-24T12:00", 2, "Europe/Berlin") == [
        utc("2026-10-25T00:30"),  # the first 02:30 (CEST)
        utc("2026-10-26T01:30"),
    ]
    # From inside the repeated hour (02:00 CET, the second pass), the repeat does not fire.
    assert upcoming("30 2 * * ? *", "2026-10-25T01:00", 1, "Europe/Berlin") == [utc("2026-10-26T01:30")]
    assert upcoming("0/30 * * * ? *", "2026-10-25T00:00", 3, "Europe/Berlin") == [
        utc("2026-10-25T00:30"),  # 02:30 CEST
        utc("2026-10-25T02:00"),  # 03:00 CET: the second 02:00 and 02:30 do not repeat
        utc("2026-10-25T02:30"),
    ]


def test_new_york_cron_follows_local_time_across_dst() -> None:
    # 09:00 in New York: 14:00Z in winter, 13:00Z after 2026-03-08.
    assert upcoming("0 9 ? * MON *", "2026-03-01T00:00", 2, "America/New_York") == [
        utc("2026-03-02T14:00"),
        utc("2026-03-09T13:00"),
    ]


# ---------------------------------------------------------------------------- rate, at, windows


def test_rate_is_a_fixed_period_from_its_anchor_on_whole_minutes() -> None:
    schedule = RateSchedule.parse("12 hours", utc("2026-03-26T12:00:07.5"))
    assert schedule.anchor == utc("2026-03-26T12:00")
    assert schedule.next_after(utc("2026-03-26T12:00")) == utc("2026-03-27T00:00")
    assert schedule.next_after(utc("2026-03-25T00:00")) == utc("2026-03-26T12:00")
    # A day is 24 hours, also across Berlin's DST change.
    daily = RateSchedule.parse("1 day", utc("2026-03-28T10:00"))
    assert daily.next_after(utc("2026-03-29T09:00")) == utc("2026-03-29T10:00")
    assert RateSchedule.parse("1 minute", utc("2026-03-28T10:00")).period == timedelta(minutes=1)


@pytest.mark.parametrize("text", ["0 minutes", "5 weeks", "five minutes", "-1 hours", ""])
def test_invalid_rates_are_rejected(text: str) -> None:
    with pytest.raises(ScheduleExpressionError):
        RateSchedule.parse(text, utc("2026-01-01T00:00"))


def test_at_is_once_in_its_time_zone() -> None:
    schedule = AtSchedule.parse("2026-05-01T10:00:00", "Europe/Berlin")
    assert schedule.next_after(utc("2026-01-01T00:00")) == utc("2026-05-01T08:00")
    assert schedule.next_after(utc("2026-05-01T08:00")) is None


def test_window_limits_a_schedule() -> None:
    schedule = Window(CronSchedule.parse("0 0 * * ? *"), start=utc("2026-06-10T00:00"), end=utc("2026-06-12T00:00"))
    assert list(occurrences(schedule, utc("2026-06-01T00:00"))) == [
        utc("2026-06-10T00:00"),
        utc("2026-06-11T00:00"),
        utc("2026-06-12T00:00"),
    ]


def test_parse_expression_dispatches_and_rejects_garbage() -> None:
    anchor = utc("2026-01-01T00:00")
    assert isinstance(parse_expression("cron(0 2 * * ? *)", zone_name="Europe/Berlin", anchor=anchor), CronSchedule)
    assert isinstance(parse_expression("rate(5 minutes)", anchor=anchor), RateSchedule)
    assert isinstance(parse_expression("at(2026-05-01T10:00:00)", anchor=anchor), AtSchedule)
    for text in ("every day", "cron(0 2 * * ?)", "rate(5)", "at(tomorrow)"):
        with pytest.raises(ScheduleExpressionError):
            parse_expression(text, anchor=anchor)


def test_occurrences_until_is_inclusive() -> None:
    schedule = CronSchedule.parse("0 0 * * ? *")
    found = list(occurrences(schedule, utc("2026-06-01T00:00"), until=utc("2026-06-03T00:00")))
    assert found == [utc("2026-06-02T00:00"), utc("2026-06-03T00:00")]


# ---------------------------------------------------------------------------- durations and the clock


@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        ("P30D", "2026-03-01T00:00", "2026-03-31T00:00"),
        ("PT1H30M", "2026-03-01T00:00", "2026-03-01T01:30"),
        ("P1W", "2026-03-01T00:00", "2026-03-08T00:00"),
        ("PT0.5S", "2026-03-01T00:00", "2026-03-01T00:00:00.5"),
        ("P1Y2M", "2026-03-01T00:00", "2027-05-01T00:00"),
        ("P1M", "2026-01-31T10:00", "2026-02-28T10:00"),
        ("P1M", "2028-01-31T10:00", "2028-02-29T10:00"),
        ("P1Y", "2028-02-29T00:00", "2029-02-28T00:00"),
        ("P1DT12H", "2026-03-01T00:00", "2026-03-02T12:00"),
        ("PT0S", "2026-03-01T00:00", "2026-03-01T00:00"),
        ("p2d", "2026-03-01T00:00", "2026-03-03T00:00"),
    ],
)
def test_iso8601_durations(text: str, start: str, expected: str) -> None:
    assert Duration.parse(text).after(utc(start)) == utc(expected)


@pytest.mark.parametrize("text", ["P", "PT", "30D", "P1.5Y", "P1DT", "P-1D", "1 day", "", "PT1H2D"])
def test_invalid_durations_are_rejected(text: str) -> None:
    with pytest.raises(ClockError):
        Duration.parse(text)


def test_rfc3339_round_trip() -> None:
    assert parse_rfc3339("2026-03-29T03:00:00+02:00") == utc("2026-03-29T01:00")
    assert parse_rfc3339("2026-03-29T01:00:00.250Z") == utc("2026-03-29T01:00:00.25")
    assert format_rfc3339(utc("2026-03-29T01:00")) == "2026-03-29T01:00:00Z"
    assert format_rfc3339(utc("2026-03-29T01:00:00.25")) == "2026-03-29T01:00:00.250Z"
    for text in ("2026-03-29T01:00:00", "yesterday", "2026-03-29", "2026-13-29T01:00:00Z"):
        with pytest.raises(ClockError):
            parse_rfc3339(text)


def test_local_clock_starts_where_told_and_never_goes_back() -> None:
    clock = LocalClock(utc("2026-03-26T12:00"))
    assert abs(clock.now() - utc("2026-03-26T12:00")) < timedelta(seconds=1)
    clock.move_to(utc("2026-04-01T00:00"))
    assert clock.now() >= utc("2026-04-01T00:00")
    with pytest.raises(ClockError):
        clock.move_to(utc("2026-03-31T00:00"))
    assert clock.now() >= utc("2026-04-01T00:00")


class _Runtime:
    """A stand-in for the functions: records what was invoked, at which instant."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, datetime]] = []

    def invoke(self, function: str, event: object, now: datetime, source: str = "") -> object:
        self.calls.append((function, now))
        return type("Result", (), {"ok": True, "error": None})()


def test_time_travel_without_firing_drops_the_occurrences_on_the_way() -> None:
    from local.model import ScheduleSpec
    from local.scheduler import Scheduler

    spec = ScheduleSpec(
        name="Job.Hourly",
        function="Job",
        kind="Schedule",
        expression="cron(5 * * * ? *)",
        timezone=None,
        input=None,
        enabled=True,
        resource_arn="arn:aws:events:us-east-1:123456789012:rule/JobHourly",
    )
    runtime = _Runtime()
    clock = LocalClock(utc("2027-06-09T10:30"))
    scheduler = Scheduler([spec], runtime, clock, drain=lambda: True)  # type: ignore[arg-type]

    quiet = scheduler.travel_to(utc("2028-06-08T10:30"), fire=False)  # a year: 8,784 hours, none fired
    assert quiet == {
        "fired": [],
        "skipped": [{"schedule": "Job.Hourly", "from": "2027-06-09T11:05:00Z"}],
        "drained": True,
    }
    assert runtime.calls == [] and clock.now() >= utc("2028-06-08T10:30")
    assert scheduler.describe()[0]["next"] == "2028-06-08T11:05:00Z"

    loud = scheduler.travel_to(utc("2028-06-08T12:10"))  # firing again from the next occurrence on
    assert [entry["at"] for entry in loud["fired"]] == ["2028-06-08T11:05:00Z", "2028-06-08T12:05:00Z"]
    assert [at for _, at in runtime.calls] == [utc("2028-06-08T11:05"), utc("2028-06-08T12:05")]
    scheduler.stop()
