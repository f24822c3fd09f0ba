"""When a message may go: quiet hours in the member's time zone, the marketing cap, the burst window.

Pure rules: they take the time and the member's values and return values (no clock, no store).
``loyalty.messaging.sending`` applies them when it decides and again when it sends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "UTC"


@dataclass(frozen=True)
class QuietHours:
    """Local wall-clock hours in which nothing is sent: from ``start`` to ``end``, across midnight
    when ``start`` is later than ``end`` (21:00-09:00); ``start == end`` means no quiet hours."""

    start: time = time(21, 0)
    end: time = time(9, 0)

    @classmethod
    def parse(cls, start: str, end: str) -> QuietHours:
        return cls(time.fromisoformat(start), time.fromisoformat(end))

    def contains(self, wall: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end


def zone(name: str | None) -> ZoneInfo:
    """The member's zone; an unknown or missing name is UTC (a message is never lost over it)."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def release_at(now: datetime, time_zone: str | None, quiet: QuietHours) -> datetime | None:
    """When a message held at ``now`` may go: None if ``now`` is outside the quiet hours in
    ``time_zone``, else the first instant (UTC) the local wall clock reads ``quiet.end`` after
    ``now`` (on a daylight-saving day, the first instant at or after that wall time)."""
    tz = zone(time_zone)
    local = now.astimezone(tz)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return None
    day = local.date() if local.time().replace(tzinfo=None) < quiet.end else local.date() + timedelta(days=1)
    wall = datetime.combine(day, quiet.end)
    # A wall time a spring-forward change skips maps to the instant just after the gap (the UTC
    # offset before it applies); of a wall time repeated in autumn, the first (``fold=0``).
    return wall.replace(tzinfo=tz).astimezone(UTC)


def next_allowed(now: datetime, time_zone: str | None, quiet: QuietHours) -> datetime:
    """``now`` outside the quiet hours, else the morning after them."""
    return release_at(now, time_zone, quiet) or now


@dataclass(frozen=True)
class Cap:
    """At most ``count`` marketing messages per member in any ``window`` (rolling)."""

    count: int = 2
    window: timedelta = timedelta(days=7)


def cap_allows(sent_at: Iterable[datetime], now: datetime, cap: Cap) -> bool:
    """Whether one more marketing message may go at ``now`` given when the member's earlier ones
    went (or began to go)."""
    since = now - cap.window
    return sum(1 for moment in sent_at if since < moment <= now) < cap.count


def burst_open(opened_at: datetime, not_before: datetime, now: datetime) -> bool:
    """Whether a notice decided at ``opened_at`` and due at ``not_before`` may still take another
    accrual at ``now`` (it has not been picked up for sending yet)."""
    return opened_at <= now < not_before
