"""The birthday bonus (``functions/birthdays``, hourly at minute 5): each member whose birthday it is
in their own time zone gets their program's ``birthday_bonus`` once a year.

When. A member's birthday runs from local midnight to local midnight in ``profile.time_zone``; the
bonus comes with the first run after local midnight (at most an hour and five minutes late). A
birthday on 29 February is kept on 28 February in other years. The key of the bonus is the local
year of the birthday, so each year pays once.

Which members. At an instant, the dates that are "today" somewhere on Earth are the two or three
between UTC-12 and UTC+14 (:func:`dates_today_somewhere`). For each, the job queries every shard of
gsi1 for the members with that month-day (``store.birthdays``), skipping those whose birthday of
that year is done already, reads their profiles (BatchGetItem) and keeps those whose local date
at the run's instant is their birthday. It never scans: the cost follows the members who have a
birthday around now, and a member paid this year is not read again by later runs.

Exactly once. ``Ledger.grant`` credits the bonus with its guard ``G#birthday_bonus#<year>``: a
rerun, an overlapping run or the next hour's run credits nothing twice. After the grant, the
marker moves to "done for <year>" (a separate write: if it is lost, the next run reads the member
again and the guard answers the first result).

Missed runs. A run that did not happen is caught up by the next one while the birthday is still
"today" locally (a member's birthday lasts 24 local hours). A member whose whole local birthday
passed without a successful run gets nothing by itself; to catch up, invoke the function with an
event ``{"time": "<an instant of that day>"}``: the job decides as at that instant (the dead-letter
queue keeps failed scheduled events, which carry their ``time``, for 14 days).

The greeting. With ``greet`` (``sending.decide``), the run also decides the member's birthday
greeting (kind ``birthday``, reference the local year, marketing), due at 10:00 on the birthday in
the member's zone, with a single-use coupon (``loyalty.coupons``) valid for the tenant's
``birthday_coupon_days`` from then; the coupon is issued once per member and year, so a rerun
decides nothing twice and mints no second code.

Failures. One member failing does not stop the others: it is logged and counted, and when the run
is over :class:`BirthdaysUnfinished` fails the invocation, so Lambda's asynchronous retry runs the
job again (what was done is not redone), and after the retries the event lands in the dead-letter
queue, whose alarm tells.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aws_lambda_powertools import Logger

from loyalty import clock
from loyalty.errors import Conflict
from loyalty.jobs import JobUnfinished
from loyalty.ledger import Grant, Ledger
from loyalty.members import job_stores
from loyalty.models import Actor, Role
from loyalty.store import dynamo, keys
from loyalty.store.birthdays import BirthdayStore, Celebrant

logger = Logger(child=True)

BIRTHDAY_BONUS = "birthday_bonus"
SYSTEM_KEY = "system:birthdays"
# Every civil time zone in use lies between UTC-12 (Etc/GMT+12, Baker Island) and UTC+14
# (Pacific/Kiritimati): at any instant, the local dates on Earth are within this span.
EARLIEST_OFFSET = dt.timedelta(hours=-12)
LATEST_OFFSET = dt.timedelta(hours=14)
MIN_SECONDS_LEFT = 30.0  # stop starting members when less is left of the invocation (it is retried)
GREETING_TIME = dt.time(10, 0)  # the birthday greeting goes at 10:00 local time
FUTURE_SKEW = dt.timedelta(minutes=5)  # an event's "time" may be this far ahead of the clock

# ------------------------------------------------------------------------------- pure date rules


def dates_today_somewhere(at: dt.datetime) -> list[dt.date]:
    """The dates that are "today" in some time zone at the instant ``at`` (two or three)."""
    if at.tzinfo is None:
        raise ValueError("an instant must carry its time zone")
    utc = at.astimezone(dt.UTC)
    first, last = (utc + EARLIEST_OFFSET).date(), (utc + LATEST_OFFSET).date()
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def celebrated_on(birthday: dt.date, year: int) -> dt.date:
    """The day a birthday is kept in ``year``: itself, or 28 February for 29 February in a
    non-leap year (the same month, and the earlier of the two candidate days)."""
    if (birthday.month, birthday.day) == (2, 29) and not is_leap(year):
        return dt.date(year, 2, 28)
    return birthday.replace(year=year)


def is_birthday(birthday: dt.date, day: dt.date) -> bool:
    """Whether a member born on ``birthday`` keeps their birthday on ``day``."""
    return celebrated_on(birthday, day.year) == day


def month_days_for(day: dt.date) -> list[str]:
    """The birthday month-days (``MM-DD``, as the markers are indexed) kept on ``day``."""
    found = [day.strftime("%m-%d")]
    if (day.month, day.day) == (2, 28) and not is_leap(day.year):
        found.append("02-29")
    return found


def zone(name: str) -> dt.tzinfo:
    """The member's time zone; UTC (the profile's default) if this runtime does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("a member's time zone is unknown to this runtime: the birthday is kept in UTC")
        return dt.UTC


def local_date(at: dt.datetime, time_zone: str) -> dt.date:
    return at.astimezone(zone(time_zone)).date()


def birthday_today(birthday: dt.date | None, time_zone: str, at: dt.datetime) -> dt.date | None:
    """The member's local date at ``at`` if it is their birthday there, else None."""
    if birthday is None:
        return None
    day = local_date(at, time_zone)
    return day if is_birthday(birthday, day) else None


def run_instant(event: Any, now: dt.datetime) -> dt.datetime:
    """The instant a run decides at: the scheduled event's ``time`` (so Lambda's retries and a
    replay from the dead-letter queue decide as the scheduled run would have), else ``now``.
    An instant in the future is refused: it would pay birthdays early."""
    text = event.get("time") if isinstance(event, dict) else None
    if not text:
        return now
    try:
        at = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"the event's time {text!r} is not an RFC 3339 instant") from error
    if at.tzinfo is None:
        raise ValueError(f"the event's time {text!r} has no offset")
    if at > now + FUTURE_SKEW:
        raise ValueError(f"the event's time {text!r} is in the future; birthdays are never paid early")
    return at.astimezone(dt.UTC)


# ------------------------------------------------------------------------------- the job


def system_actor(tenant_id: str) -> Actor:
    """Who the entries name: the engine itself, not an API key."""
    return Actor(tenant_id=tenant_id, key_id=SYSTEM_KEY, role=Role.ADMIN)


class BirthdaysUnfinished(JobUnfinished):
    """Raised at the end of a run that left members; Lambda retries it (``JobUnfinished``)."""

    what = "birthday bonuses"


@dataclass
class Summary:
    at: dt.datetime
    dates: list[dt.date]
    candidates: int = 0  # markers found not done for the year in gsi1
    paid: int = 0  # birthday bonuses granted (or found granted already: a retry)
    points: int = 0
    no_bonus: int = 0  # birthday today, but the program has no birthday bonus (marked done)
    not_today: int = 0  # the member's local date is not their birthday (not begun, or over)
    skipped: int = 0  # erased, no birthday, or no member item (an index not caught up yet)
    greeted: int = 0  # birthday greetings decided (with a coupon)
    failed: list[str] = field(default_factory=list)  # "<tenant>/<member>" of members that failed
    left: bool = False  # stopped for lack of time

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": clock.isoformat(self.at),
            "dates": [day.isoformat() for day in self.dates],
            "candidates": self.candidates,
            "paid": self.paid,
            "points": self.points,
            "no_bonus": self.no_bonus,
            "not_today": self.not_today,
            "skipped": self.skipped,
            "greeted": self.greeted,
            "failed": len(self.failed),
            "left": self.left,
        }


@dataclass
class Job:
    ledger: Ledger
    store: BirthdayStore
    # The birthday greeting: ``sending.decide`` (the function passes it), or None for no greeting.
    greet: Callable[..., bool] | None = None

    @classmethod
    def for_tables(
        cls,
        ledger_table: str,
        config_table: str,
        client: Any | None = None,
        greet: Callable[..., bool] | None = None,
    ) -> Job:
        """The job as a run uses it: programs read once per run (make one per run)."""
        return cls(
            ledger=Ledger(job_stores(ledger_table, config_table, client)),
            store=BirthdayStore(ledger_table, client),
            greet=greet,
        )

    def greeting(self, member: Celebrant, local: dt.date) -> bool:
        """Decide the member's birthday greeting, due at 10:00 on the birthday in the member's
        zone, with a single-use coupon valid for the tenant's ``birthday_coupon_days`` from then
        (issued once: a rerun finds the same code). False if it was decided already."""
        from loyalty.coupons import CouponStore
        from loyalty.models import TenantSettings

        assert self.greet is not None
        config = self.ledger.stores.config.tenant_settings(member.tenant_id) or TenantSettings()
        at_ten = dt.datetime.combine(local, GREETING_TIME, tzinfo=zone(member.time_zone)).astimezone(dt.UTC)
        valid_until = at_ten + dt.timedelta(days=config.birthday_coupon_days)
        coupon = dynamo.with_retries(
            lambda: CouponStore(self.store.table, self.store._client).issue(
                member.tenant_id, member.member_id, f"birthday#{local.year}", valid_until
            )
        )
        data = {"coupon_code": coupon.code, "coupon_valid_until": valid_until.date().isoformat()}
        return self.greet(member.tenant_id, member.member_id, "birthday", str(local.year), data, not_before=at_ten)

    def _candidates(self, day: dt.date) -> Iterator[tuple[str, list[tuple[str, str]]]]:
        """For each month-day kept on ``day`` and each shard: the members not done for the year."""
        for month_day in month_days_for(day):
            for shard in range(keys.DUE_SHARDS):
                found = dynamo.with_retries(
                    lambda md=month_day, s=shard: list(self.store.not_done(md, s, day.year)), budget=30
                )
                if found:
                    yield month_day, found

    def run(self, at: dt.datetime, *, seconds_left: Callable[[], float] | None = None) -> Summary:
        """Pay the birthday bonuses due at the instant ``at``. Raises :class:`BirthdaysUnfinished`
        after doing what it could, if a member failed or time ran short."""
        summary = Summary(at=at, dates=dates_today_somewhere(at))
        for day in summary.dates:
            for month_day, members in self._candidates(day):
                summary.candidates += len(members)
                celebrants = dynamo.with_retries(lambda m=members: self.store.celebrants(m), budget=30)
                for tenant_id, member_id in members:
                    if seconds_left is not None and seconds_left() < MIN_SECONDS_LEFT:
                        summary.left = True
                        break
                    try:
                        self._one(summary, celebrants.get((tenant_id, member_id)), month_day, day)
                    except Exception:  # one member must not stop the rest; the run fails at the end
                        logger.exception(
                            "birthday bonus failed", extra={"tenant_id": tenant_id, "member_id": member_id}
                        )
                        summary.failed.append(f"{tenant_id}/{member_id}")
                if summary.left:
                    break
            if summary.left:
                break
        if summary.left or summary.failed:
            raise BirthdaysUnfinished(summary)
        return summary

    def _one(self, summary: Summary, member: Celebrant | None, month_day: str, day: dt.date) -> None:
        if member is None or member.erased or member.birthday is None:
            summary.skipped += 1
            return
        local = birthday_today(member.birthday, member.time_zone, summary.at)
        if local != day:
            summary.not_today += 1  # not begun yet where the member lives (a later run), or over
            return
        program = self.ledger.stores.config.get_program(member.tenant_id, member.program_id)
        points = program.birthday_bonus if program is not None else 0
        if points > 0:
            grant = Grant(
                member_id=member.member_id,
                kind=BIRTHDAY_BONUS,
                key=str(local.year),
                points=points,
                details={"birthday": local.isoformat()},  # the day kept; never the birth date or zone
            )
            # Conflict: paid already with another amount (the program changed since): paid is paid.
            with contextlib.suppress(Conflict):
                self.ledger.grant(system_actor(member.tenant_id), [grant])
            summary.paid += 1
            summary.points += points
        else:
            summary.no_bonus += 1
        if self.greet is not None and self.greeting(member, local):
            summary.greeted += 1
        dynamo.with_retries(lambda: self.store.mark_done(member.tenant_id, member.member_id, month_day, local.year))
