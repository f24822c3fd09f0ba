"""EventBridge schedule expressions: ``cron(...)``, ``rate(...)`` and ``at(...)``.

AWS cron has six fields, ``minutes hours day-of-month month day-of-week year``, with day-of-week
1-7 meaning SUN-SAT, exactly one of the two day fields ``?``, and the specials ``L``, ``W`` and
``#``. Expressions are evaluated in a time zone (EventBridge Scheduler's
``ScheduleExpressionTimezone``; rules always use UTC) with Scheduler's daylight-saving rules:

* a wall-clock time that does not exist (spring forward) is skipped, not moved;
* a wall-clock time that happens twice (fall back) fires once, at its first occurrence.

Finding the next occurrence walks years, then months, then the matching days, hours and minutes,
so a yearly expression costs a handful of steps, not half a million minutes.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTH_NAMES = {
    name: index
    for index, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
    )
}
DAY_NAMES = {name: index for index, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
MIN_YEAR, MAX_YEAR = 1970, 2199


class ScheduleExpressionError(ValueError):
    """The schedule expression is not valid."""


class Schedule(Protocol):
    def next_after(self, instant: datetime) -> datetime | None:
        """The first occurrence strictly after ``instant`` (UTC), or None when there is none."""
        ...


def _aws_weekday(day: date) -> int:
    """AWS numbering: 1 = Sunday ... 7 = Saturday (Python's weekday() is Monday = 0)."""
    return (day.weekday() + 1) % 7 + 1


def _number(token: str, names: dict[str, int] | None) -> int:
    token = token.strip().upper()
    if names and token in names:
        return names[token]
    if not token.isdigit():
        raise ScheduleExpressionError(f"{token!r} is not a number{' or name' if names else ''}")
    return int(token)


def _parse_values(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    """A plain field (no L/W/#): lists, ranges (wrapping, e.g. FRI-MON), ``*`` and steps."""
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleExpressionError(f"bad step in {part!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, names), _number(last, names)
        else:
            start = _number(base, names)
            end = high if slash else start  # "5/10" means from 5 to the end, every 10
        for bound in (start, end):
            if not low <= bound <= high:
                raise ScheduleExpressionError(f"{bound} is out of range {low}-{high} in {part!r}")
        span = list(range(start, end + 1)) if start <= end else [*range(start, high + 1), *range(low, end + 1)]
        values.update(span[::step])
    return values


DayRule = Callable[[int, int, int], set[int]]  # (year, month, last day) -> days of the month


def _day_of_month_rule(text: str) -> DayRule:
    rules: list[DayRule] = []
    for part in text.upper().split(","):
        if part == "L":
            rules.append(lambda _y, _m, last: {last})
        elif re.fullmatch(r"L-\d+", part):
            offset = int(part[2:])
            if offset > 30:
                raise ScheduleExpressionError(f"bad offset in {part!r}")
            rules.append(lambda _y, _m, last, offset=offset: {last - offset} if last - offset >= 1 else set())
        elif part == "LW":
            rules.append(lambda y, m, last: {_nearest_weekday(y, m, last, last)})
        elif re.fullmatch(r"\d+W", part):
            wanted = int(part[:-1])
            if not 1 <= wanted <= 31:
                raise ScheduleExpressionError(f"{part!r}: day out of range")
            rules.append(
                lambda y, m, last, wanted=wanted: {_nearest_weekday(y, m, wanted, last)} if wanted <= last else set()
            )
        else:
            days = _parse_values(part, 1, 31)
            rules.append(lambda _y, _m, last, days=days: {day for day in days if day <= last})
    return lambda y, m, last: set().union(*(rule(y, m, last) for rule in rules))


def _nearest_weekday(year: int, month: int, day: int, last: int) -> int:
    """``W``: the weekday (MON-FRI) nearest to ``day`` without leaving the month."""
    weekday = date(year, month, day).weekday()  # Monday = 0
    if weekday == 5:  # Saturday: Friday before, or Monday after if the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: Monday after, or Friday before if the last day
        return day + 1 if day < last else day - 2
    return day


def _day_of_week_rule(text: str) -> DayRule:
    rules: list[DayRule] = []
    for part in text.upper().split(","):
        last_match = re.fullmatch(r"(\w+)L", part)
        nth_match = re.fullmatch(r"(\w+)#(\d)", part)
        if part == "L":  # "L" alone is the last day of the week: Saturday
            rules.append(_weekdays_rule({7}))
        elif last_match:
            weekday = _number(last_match.group(1), DAY_NAMES)
            _check_weekday(weekday, part)
            rules.append(
                lambda y, m, last, weekday=weekday: {
                    max(day for day in range(last - 6, last + 1) if _aws_weekday(date(y, m, day)) == weekday)
                }
            )
        elif nth_match:
            weekday, nth = _number(nth_match.group(1), DAY_NAMES), int(nth_match.group(2))
            _check_weekday(weekday, part)
            if not 1 <= nth <= 5:
                raise ScheduleExpressionError(f"{part!r}: # takes 1-5")

            def nth_rule(y: int, m: int, last: int, weekday: int = weekday, nth: int = nth) -> set[int]:
                days = [day for day in range(1, last + 1) if _aws_weekday(date(y, m, day)) == weekday]
                return {days[nth - 1]} if len(days) >= nth else set()

            rules.append(nth_rule)
        else:
            rules.append(_weekdays_rule(_parse_values(part, 1, 7, DAY_NAMES)))
    return lambda y, m, last: set().union(*(rule(y, m, last) for rule in rules))


def _check_weekday(weekday: int, part: str) -> None:
    if not 1 <= weekday <= 7:
        raise ScheduleExpressionError(f"{part!r}: day of week out of range 1-7")


def _weekdays_rule(weekdays: set[int]) -> DayRule:
    def rule(y: int, m: int, last: int) -> set[int]:
        first = _aws_weekday(date(y, m, 1))
        return {day for day in range(1, last + 1) if (first + day - 2) % 7 + 1 in weekdays}

    return rule


def to_utc(wall: datetime, zone: tzinfo) -> datetime | None:
    """The UTC instant of a naive wall-clock time in ``zone``; None when DST skips that time.

    ``fold=0`` picks the first of two instants when the wall time happens twice.
    """
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return instant


def zone(name: str | None) -> tzinfo:
    if not name or name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleExpressionError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class CronSchedule:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    day_rule: DayRule
    zone: tzinfo
    text: str

    @classmethod
    def parse(cls, text: str, zone_name: str | None = None) -> CronSchedule:
        fields = text.split()
        if len(fields) != 6:
            raise ScheduleExpressionError(
                f"cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}: {text!r}"
            )
        minute_f, hour_f, dom_f, month_f, dow_f, year_f = fields
        if (dom_f == "?") == (dow_f == "?"):
            raise ScheduleExpressionError(f"exactly one of day-of-month and day-of-week must be '?': {text!r}")
        day_rule = _day_of_week_rule(dow_f) if dom_f == "?" else _day_of_month_rule(dom_f)
        try:
            return cls(
                minutes=tuple(sorted(_parse_values(minute_f, 0, 59))),
                hours=tuple(sorted(_parse_values(hour_f, 0, 23))),
                months=tuple(sorted(_parse_values(month_f, 1, 12, MONTH_NAMES))),
                years=tuple(sorted(_parse_values(year_f, MIN_YEAR, MAX_YEAR))),
                day_rule=day_rule,
                zone=zone(zone_name),
                text=text,
            )
        except ScheduleExpressionError as exc:
            raise ScheduleExpressionError(f"{exc} in cron({text})") from None

    def next_after(self, instant: datetime) -> datetime | None:
        # Start from the wall-clock minute of ``instant``; compare instants, not wall times, so the
        # repeated hour of a fall-back night is handled (its second pass is earlier on the wall).
        start = instant.astimezone(self.zone).replace(tzinfo=None, second=0, microsecond=0)
        for year in self.years:
            if year < start.year:
                continue
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                last = calendar.monthrange(year, month)[1]
                for day in sorted(self.day_rule(year, month, last)):
                    if date(year, month, day) < start.date():
                        continue
                    found = self._first_in_day(year, month, day, start, instant)
                    if found is not None:
                        return found
        return None

    def _first_in_day(self, year: int, month: int, day: int, start: datetime, instant: datetime) -> datetime | None:
        same_day = date(year, month, day) == start.date()
        for hour in self.hours:
            if same_day and hour < start.hour:
                continue
            for minute in self.minutes:
                if same_day and hour == start.hour and minute < start.minute:
                    continue
                utc = to_utc(datetime(year, month, day, hour, minute), self.zone)
                if utc is not None and utc > instant:
                    return utc
        return None


_RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


@dataclass(frozen=True)
class RateSchedule:
    """``rate(n unit)``: every n units after ``anchor`` (a fixed duration: a day is 24 hours, also
    across a DST change, as in EventBridge)."""

    period: timedelta
    anchor: datetime
    text: str

    @classmethod
    def parse(cls, text: str, anchor: datetime) -> RateSchedule:
        match = re.fullmatch(r"\s*(\d+)\s+([a-zA-Z]+)\s*", text)
        if not match or match.group(2).lower() not in _RATE_UNITS or int(match.group(1)) <= 0:
            raise ScheduleExpressionError(f"rate needs 'value unit' (minutes, hours, days): rate({text})")
        seconds = int(match.group(1)) * _RATE_UNITS[match.group(2).lower()]
        # EventBridge fires with one-minute precision: occurrences fall on whole minutes.
        anchor = anchor.astimezone(UTC).replace(second=0, microsecond=0)
        return cls(period=timedelta(seconds=seconds), anchor=anchor, text=text)

    def next_after(self, instant: datetime) -> datetime | None:
        if instant < self.anchor:
            return self.anchor
        steps = (instant - self.anchor) // self.period + 1
        return self.anchor + steps * self.period


@dataclass(frozen=True)
class AtSchedule:
    """``at(yyyy-mm-ddThh:mm:ss)``: once, at a wall-clock time in the schedule's time zone."""

    moment: datetime
    text: str

    @classmethod
    def parse(cls, text: str, zone_name: str | None = None) -> AtSchedule:
        try:
            wall = datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            raise ScheduleExpressionError(f"at needs yyyy-mm-ddThh:mm:ss: at({text})") from None
        tz = zone(zone_name)
        # A time inside a DST gap moves forward, as the wall clock does.
        moment = to_utc(wall, tz) or wall.replace(tzinfo=tz).astimezone(UTC)
        return cls(moment=moment, text=text)

    def next_after(self, instant: datetime) -> datetime | None:
        return self.moment if self.moment > instant else None


@dataclass(frozen=True)
class Window:
    """A schedule limited to [start, end] (Scheduler's StartDate/EndDate)."""

    inner: Schedule
    start: datetime | None = None
    end: datetime | None = None

    def next_after(self, instant: datetime) -> datetime | None:
        if self.start is not None and instant < self.start:
            instant = self.start - timedelta(microseconds=1)
        found = self.inner.next_after(instant)
        if found is None or (self.end is not None and found > self.end):
            return None
        return found


def parse_expression(expression: str, *, zone_name: str | None = None, anchor: datetime) -> Schedule:
    """A schedule from ``cron(...)``, ``rate(...)`` or ``at(...)``; ``anchor`` is when a rate starts."""
    match = re.fullmatch(r"\s*(cron|rate|at)\((.*)\)\s*", expression)
    if not match:
        raise ScheduleExpressionError(f"expected cron(...), rate(...) or at(...): {expression!r}")
    kind, body = match.groups()
    if kind == "cron":
        return CronSchedule.parse(body, zone_name)
    if kind == "rate":
        return RateSchedule.parse(body, anchor)
    return AtSchedule.parse(body, zone_name)


def occurrences(schedule: Schedule, after: datetime, until: datetime | None = None) -> Iterator[datetime]:
    """Occurrences strictly after ``after`` and at or before ``until`` (endless when None)."""
    current = schedule.next_after(after)
    while current is not None and (until is None or current <= until):
        yield current
        current = schedule.next_after(current)
