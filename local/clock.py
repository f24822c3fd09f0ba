"""The local stack's clock: real time plus an offset that only ever grows (time travel).

Functions never read this object: every invocation message carries the time the function must
see and the worker replaces ``loyalty.clock.now`` with it (see ``workers``). This module also holds
the time formats the ``/_local`` endpoints speak: RFC 3339 instants and ISO 8601 durations.
"""

from __future__ import annotations

import calendar
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class ClockError(ValueError):
    """A time travel request that cannot be honoured (bad format, or backwards)."""


def real_now() -> datetime:
    return datetime.now(UTC)


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 instant (an offset or ``Z`` is required), as an aware UTC datetime."""
    if not isinstance(text, str) or not re.fullmatch(
        r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", text.strip()
    ):
        raise ClockError(f"not an RFC 3339 date-time with an offset: {text!r}")
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z").replace("t", "T"))
    except ValueError as exc:
        raise ClockError(f"not an RFC 3339 date-time: {text!r} ({exc})") from None
    return moment.astimezone(UTC)


def format_rfc3339(moment: datetime) -> str:
    """UTC with ``Z``; milliseconds only when the instant has a fraction of a second."""
    moment = moment.astimezone(UTC)
    if moment.microsecond // 1000:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


_NUMBER = r"(\d+(?:[.,]\d+)?)"
_DURATION = re.compile(
    rf"P(?:(\d+)Y)?(?:(\d+)M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    rf"(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?"
)


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration. Years and months are calendar units (P1M from 31 January is the last
    day of February); the rest is exact time."""

    years: int = 0
    months: int = 0
    exact: timedelta = timedelta(0)

    @classmethod
    def parse(cls, text: str) -> Duration:
        """``PnYnMnWnDTnHnMnS``; fractions only on weeks and smaller units."""
        if not isinstance(text, str):
            raise ClockError(f"a duration must be a string like 'P30D', got {text!r}")
        match = _DURATION.fullmatch(text.strip().upper())
        if not match or text.strip().upper() in ("P", "PT") or text.strip().upper().endswith("T"):
            raise ClockError(f"not an ISO 8601 duration (PnYnMnWnDTnHnMnS): {text!r}")
        years, months, weeks, days, hours, minutes, seconds = match.groups()

        def number(value: str | None) -> float:
            return float(value.replace(",", ".")) if value else 0.0

        exact = timedelta(
            weeks=number(weeks),
            days=number(days),
            hours=number(hours),
            minutes=number(minutes),
            seconds=number(seconds),
        )
        return cls(years=int(years or 0), months=int(months or 0), exact=exact)

    def after(self, moment: datetime) -> datetime:
        """``moment`` plus this duration (calendar part first, in UTC)."""
        moment = moment.astimezone(UTC)
        total_months = moment.month - 1 + self.months + 12 * self.years
        year, month = moment.year + total_months // 12, total_months % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day) + self.exact


class LocalClock:
    """Real time shifted by an offset. The offset can only grow: the clock never goes backwards,
    because production code (and DynamoDB items written at earlier times) could not cope."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0) if start is None else start.astimezone(UTC) - real_now()

    def now(self) -> datetime:
        return real_now() + self._offset

    @property
    def offset(self) -> timedelta:
        return self._offset

    def move_to(self, target: datetime) -> datetime:
        """Set the clock to ``target`` (forward only); returns the new now."""
        with self._lock:
            current = self.now()
            target = target.astimezone(UTC)
            if target < current:
                raise ClockError(
                    f"the clock only moves forward: {format_rfc3339(target)} is before {format_rfc3339(current)}"
                )
            self._offset += target - current
            return target
