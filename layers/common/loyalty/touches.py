"""Touches (``functions/touches``, hourly at minute 10): the welcome chain from the first contact,
then the periodic digest with the balance statement.

The sequence. The first contact is enrolment (``Member.enrolled_at``); day ``d`` begins ``d - 1``
days after it (day 1 is the enrolment's own instant). The chain thanks the member on day 1
(``welcome_day1``), then days 3, 7 and 14 (``welcome_day3``, ``welcome_day7``, ``welcome_day14``),
then ``welcome_periodic`` every ``chain_interval_days`` (a tenant setting, 20-30, default 25) while
the day is before 90 (days 39, 64, 89 by default). After day 90, the ``digest`` (balance, next
expiry, the period's entries) every ``digest_interval_days`` (7-30, default 14): days 104, 118...
All are marketing: opting out of marketing stops them (the sender skips them), bonus notices go on.

Which members. Every member has an ``IDX#TOUCH`` marker in gsi1 whose sort key begins with the
instant its next step is due (``store.touches``). A run queries each shard for the markers due
up to its instant, reads those members (BatchGetItem), decides the step (``sending.decide``,
reference ``chain#<day>`` or ``digest#<date>``: deterministic, so a decision is written once) and
moves the marker to the next step's instant. It never scans: the cost follows the members due.

Missed runs. If several steps are due at once (the job was down), only the latest is decided and
the ones it overtook are dropped: a member never gets a burst of stale welcome messages.

Exactly once, resumable. Decide first, then move the marker (conditionally on what was read). A
crash between the two leaves the marker where it was: the next run decides the same step again,
which writes nothing (the record exists), and moves the marker. A rerun finds nothing due.
An erased member's marker is deleted by erasure (and by the job if it meets one).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from loyalty import clock
from loyalty.jobs import JobUnfinished
from loyalty.members import Stores, job_stores
from loyalty.models import TenantSettings
from loyalty.store import dynamo, keys
from loyalty.store.touches import Touchee, TouchStore, parse_gsi1sk

logger = Logger(child=True)

CHAIN_DAYS: tuple[int, ...] = (1, 3, 7, 14)
CHAIN_KINDS: Mapping[int, str] = {1: "welcome_day1", 3: "welcome_day3", 7: "welcome_day7", 14: "welcome_day14"}
CHAIN_UNTIL = 90  # the periodic chain runs while the day is before this; digests come after it
DIGEST_ENTRIES = 20  # the most entries a statement lists
MIN_SECONDS_LEFT = 30.0  # stop starting members when less is left of the invocation (it is retried)
DAY = dt.timedelta(days=1)

# ------------------------------------------------------------------------------- pure day rules


def next_day(after: int, chain_interval: int, digest_interval: int) -> int:
    """The first day of the sequence after day ``after`` (0 gives day 1): 1, 3, 7, 14, then every
    ``chain_interval`` days while before day 90, then 90 + every ``digest_interval`` days."""
    if chain_interval < 1 or digest_interval < 1:
        raise ValueError("the intervals must be positive")
    for day in CHAIN_DAYS:
        if day > after:
            return day
    last = CHAIN_DAYS[-1]
    if after < CHAIN_UNTIL:
        day = last + ((after - last) // chain_interval + 1) * chain_interval
        if day < CHAIN_UNTIL:
            return day
        return CHAIN_UNTIL + digest_interval
    return CHAIN_UNTIL + ((after - CHAIN_UNTIL) // digest_interval + 1) * digest_interval


def kind_of(day: int) -> str:
    """The message kind of a day of the sequence."""
    if day in CHAIN_KINDS:
        return CHAIN_KINDS[day]
    return "welcome_periodic" if day < CHAIN_UNTIL else "digest"


def sequence(chain_interval: int, digest_interval: int, *, until: int) -> list[int]:
    """The days of the sequence up to ``until`` (inclusive)."""
    days: list[int] = []
    day = next_day(0, chain_interval, digest_interval)
    while day <= until:
        days.append(day)
        day = next_day(day, chain_interval, digest_interval)
    return days


def start_of(enrolled_at: dt.datetime) -> dt.datetime:
    """Day 1's instant: the enrolment, in UTC, to the whole second (as the marker says it)."""
    return enrolled_at.astimezone(dt.UTC).replace(microsecond=0)


def due_at(enrolled_at: dt.datetime, day: int) -> dt.datetime:
    """The instant day ``day`` begins for a member enrolled at ``enrolled_at``."""
    return start_of(enrolled_at) + (day - 1) * DAY


def day_at(enrolled_at: dt.datetime, at: dt.datetime) -> int:
    """Which day ``at`` is in for a member enrolled at ``enrolled_at`` (day 1 at the enrolment)."""
    return int((at - start_of(enrolled_at)) // DAY) + 1


def step_due(
    enrolled_at: dt.datetime, marker_day: int, at: dt.datetime, chain_interval: int, digest_interval: int
) -> int:
    """The step to decide at ``at`` for a marker on ``marker_day``: that day, or the latest day of
    the sequence after it already begun (the steps it overtakes are dropped)."""
    day = marker_day
    while True:
        following = next_day(day, chain_interval, digest_interval)
        if due_at(enrolled_at, following) > at:
            return day
        day = following


def reference_of(enrolled_at: dt.datetime, day: int) -> str:
    """The decision's deterministic reference: ``chain#<day>``, or ``digest#<date>`` (UTC)."""
    if kind_of(day) == "digest":
        return f"digest#{due_at(enrolled_at, day).date().isoformat()}"
    return f"chain#{day}"


def first_due_after(enrolled_at: dt.datetime, at: dt.datetime, chain_interval: int, digest_interval: int) -> int:
    """The first day of the sequence that begins after ``at`` (the backfill's start: nothing is
    sent for what an existing member's past would have had)."""
    day = next_day(0, chain_interval, digest_interval)
    while due_at(enrolled_at, day) <= at:
        day = next_day(day, chain_interval, digest_interval)
    return day


# ------------------------------------------------------------------------------- the job


class TouchesUnfinished(JobUnfinished):
    """Raised at the end of a run that left members; Lambda retries it (``JobUnfinished``)."""

    what = "touches"


@dataclass
class Summary:
    at: dt.datetime
    due: int = 0  # markers found due in gsi1
    decided: int = 0  # decisions written
    already: int = 0  # decisions that existed (a rerun after a crash)
    overtaken: int = 0  # steps dropped because a later one was due too (the job was down)
    dropped: int = 0  # markers of erased (or missing) members deleted
    moved_elsewhere: int = 0  # markers another run moved meanwhile
    failed: list[str] = field(default_factory=list)
    left: bool = False
    kinds: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": clock.isoformat(self.at),
            "due": self.due,
            "decided": self.decided,
            "already": self.already,
            "overtaken": self.overtaken,
            "dropped": self.dropped,
            "moved_elsewhere": self.moved_elsewhere,
            "failed": len(self.failed),
            "left": self.left,
            "kinds": dict(sorted(self.kinds.items())),
        }


Decide = Callable[..., bool]


@dataclass
class Job:
    """One run's job: programs and tenant settings read once per run (make one per run)."""

    stores: Stores
    store: TouchStore
    decide: Decide | None = None  # sending.decide unless given (tests pass a Decider's)
    _settings: dict[str, TenantSettings] = field(default_factory=dict)

    @classmethod
    def for_tables(
        cls, ledger_table: str, config_table: str, client: Any | None = None, decide: Decide | None = None
    ) -> Job:
        return cls(job_stores(ledger_table, config_table, client), TouchStore(ledger_table, client), decide)

    def tenant_settings(self, tenant_id: str) -> TenantSettings:
        if tenant_id not in self._settings:
            found = dynamo.with_retries(lambda: self.stores.config.tenant_settings(tenant_id))
            self._settings[tenant_id] = found or TenantSettings()
        return self._settings[tenant_id]

    def _decide(self) -> Decide:
        if self.decide is None:
            from loyalty.messaging import sending

            self.decide = sending.decide
        return self.decide

    def _due(self, at: dt.datetime) -> Iterator[list[str]]:
        now = clock.isoformat(at)
        for shard in range(keys.DUE_SHARDS):
            found = dynamo.with_retries(lambda s=shard: list(self.store.due(s, now)), budget=30)
            if found:
                yield found

    def run(self, at: dt.datetime, *, seconds_left: Callable[[], float] | None = None) -> Summary:
        """Decide every step due at ``at`` and move the markers on. Raises
        :class:`TouchesUnfinished` after doing what it could, if a member failed or time ran short."""
        summary = Summary(at=at)
        for markers in self._due(at):
            summary.due += len(markers)
            members = [parse_gsi1sk(sk)[1:] for sk in markers]
            found = dynamo.with_retries(lambda m=members: self.store.members(m), budget=30)  # type: ignore[misc]
            for sort_key, member in zip(markers, members, strict=True):
                if seconds_left is not None and seconds_left() < MIN_SECONDS_LEFT:
                    summary.left = True
                    break
                try:
                    self._one(summary, sort_key, found.get(member))
                except Exception:  # one member must not stop the rest; the run fails at the end
                    logger.exception("touch failed", extra={"tenant_id": member[0], "member_id": member[1]})
                    summary.failed.append(f"{member[0]}/{member[1]}")
            if summary.left:
                break
        if summary.left or summary.failed:
            raise TouchesUnfinished(summary)
        return summary

    def _one(self, summary: Summary, sort_key: str, member: Touchee | None) -> None:
        due_text, tenant_id, member_id = parse_gsi1sk(sort_key)
        if member is None or member.erased:
            if dynamo.with_retries(lambda: self.store.drop(tenant_id, member_id, sort_key)):
                summary.dropped += 1
            return
        config = self.tenant_settings(tenant_id)
        chain, digest = config.chain_interval_days, config.digest_interval_days
        due = dt.datetime.fromisoformat(due_text.replace("Z", "+00:00"))
        marker_day = max(1, day_at(member.enrolled_at, due))
        day = step_due(member.enrolled_at, marker_day, summary.at, chain, digest)
        summary.overtaken += len(sequence(chain, digest, until=day)) - len(sequence(chain, digest, until=marker_day))
        kind = kind_of(day)
        data = self._digest_data(member, summary.at, digest) if kind == "digest" else {}
        reference = reference_of(member.enrolled_at, day)
        if self._decide()(tenant_id, member_id, kind, reference, data):
            summary.decided += 1
            summary.kinds[kind] = summary.kinds.get(kind, 0) + 1
        else:
            summary.already += 1
        following = clock.isoformat(due_at(member.enrolled_at, next_day(day, chain, digest)))
        if not dynamo.with_retries(lambda: self.store.move(tenant_id, member_id, sort_key, following)):
            summary.moved_elsewhere += 1

    def _digest_data(self, member: Touchee, at: dt.datetime, digest_interval: int) -> dict[str, Any]:
        """The statement's own variables (the balance is added when it is sent): the next points
        to expire and the entries of the period since the last statement, oldest first."""
        from loyalty import burning
        from loyalty.ledger import Ledger

        tenant_id, member_id = member.tenant_id, member.member_id
        upcoming = dynamo.with_retries(lambda: burning.expiring(Ledger(self.stores), tenant_id, member_id))
        since = clock.isoformat(at - digest_interval * DAY)
        page, _ = dynamo.with_retries(lambda: self.stores.ledger.entries(tenant_id, member_id, limit=DIGEST_ENTRIES))
        entries = [
            {"date": entry.created_at[:10], "type": entry.type, "points": entry.points}
            for entry in reversed(page)
            if entry.created_at >= since
        ]
        first = upcoming[0] if upcoming else None
        return {
            "next_expiry": {"date": str(first["date"]), "points": int(first["points"])} if first else None,
            "entries": entries,
        }


# ------------------------------------------------------------------------------- the backfill


def backfill(store: TouchStore, stores: Stores, segment: int, segments: int, *, at: dt.datetime, dry_run: bool) -> dict:
    """Give every member without a marker (enrolled before touches existed) one, at the first step
    of its sequence that begins after ``at``: nothing is sent for the past. Safe to rerun."""
    counts = {"checked": 0, "added": 0, "erased": 0}
    cache: dict[str, TenantSettings] = {}
    for member in store.scan_members(segment, segments):
        counts["checked"] += 1
        if member.erased:
            counts["erased"] += 1
            continue
        if member.tenant_id not in cache:
            cache[member.tenant_id] = stores.config.tenant_settings(member.tenant_id) or TenantSettings()
        config = cache[member.tenant_id]
        day = first_due_after(member.enrolled_at, at, config.chain_interval_days, config.digest_interval_days)
        due = clock.isoformat(due_at(member.enrolled_at, day))
        if not dry_run and dynamo.with_retries(lambda m=member, d=due: store.add(m.tenant_id, m.member_id, d)):
            counts["added"] += 1
    return counts
