"""Report arithmetic: what one ledger stream record adds to the report counters. Pure rules.

The reports consumer (``loyalty.reports``) keeps, per member, a small state (``MemberState``) and,
per tenant, counters by period, program and tier. Each stream record goes through one of the
``apply_*`` functions here, which answers the new state and the counter deltas to ADD, or None
when the record was applied already. The rules make a redelivered record a no-op:

* an entry (``E#<seq>``, immutable) is applied once by its ``seq``: the state keeps every seq
  applied (``upto`` plus the few above it, ``applied``);
* a member item's INSERT (an enrolment) is counted once (``enrol_counted``);
* a lot (``L#<burn date>``) is applied as its absolute ``remaining``: the state keeps each open
  lot's remaining, and the delta is the difference, so the same image twice adds nothing.

Values in, values out: no clock, no boto3.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# Entry types -> the report's columns; any other type counts as "other", so the columns always
# add up to the net change of the ledger (tier_change entries carry 0 points).
CATEGORIES: dict[str, str] = {
    "accrual": "accrued",
    "welcome_bonus": "accrued",
    "birthday_bonus": "accrued",
    "referral_bonus": "accrued",
    "redemption": "redeemed",
    "burn": "burned",
    "manager_leave_burn": "burned",
    "refund_clawback": "refunded",
    "refund_return": "refunded",
    "adjustment": "adjusted",
    "transfer_in": "transferred",
    "transfer_out": "transferred",
    "manager_leave_in": "transferred",
    "manager_leave_out": "transferred",
}
COLUMNS = ("accrued", "redeemed", "burned", "refunded", "adjusted", "transferred", "other")
# Shown as positive amounts: what left the members' balances that way.
DEBIT_COLUMNS = frozenset({"redeemed", "burned"})
ACTIVITY_TYPES = frozenset({"accrual", "redemption"})  # a member is active in a period it bought or paid
MEMBER_COUNTERS = ("enrolled", "active", "repeat", "converted", "first_purchases", "orders", "order_amount")
AGE_BUCKETS: tuple[tuple[str, int | None], ...] = (("0-30", 30), ("31-90", 90), ("91-180", 180), ("181+", None))
KEEP_DAYS = 7  # days and months of activity remembered per member: far more than a stream's 24 hours
KEEP_MONTHS = 3
KEEP_APPLIED = 1000  # a bound on the seqs kept above ``upto`` (the stream delivers a member in order)


def category(entry_type: str) -> str:
    return CATEGORIES.get(entry_type, "other")


def points_attr(entry_type: str, *, test: bool) -> str:
    """The counter attribute of an entry type's points: ``p_<type>``, or ``x_<type>`` for an entry
    made through a test card (kept apart, so that reports leave it out and the reconciliation can
    still add everything up)."""
    return f"{'x' if test else 'p'}_{entry_type}"


def day_key(day: str) -> str:
    return f"D#{day}"


def month_key(day: str) -> str:
    return f"M#{day[:7]}"


@dataclass(frozen=True)
class EntryRecord:
    """What the reports need of an entry item (from the stream's NewImage, or a Scan)."""

    seq: int
    type: str
    points: int
    created_at: str
    program_id: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def test(self) -> bool:
        return self.details.get("test") is True

    @property
    def day(self) -> str:
        return self.created_at[:10]


@dataclass(frozen=True)
class MemberState:
    """One member as the reports consumer knows it (item ``RPT#STATE`` in the member's partition)."""

    program_id: str
    tier: str
    enrol_day: str | None = None
    enrol_program: str | None = None
    enrol_tier: str | None = None
    enrol_counted: bool = False
    upto: int = 0  # every entry seq <= upto is applied
    applied: frozenset[int] = frozenset()  # and these above it
    purchases: int = 0  # qualifying purchases counted (not through a test card)
    active: frozenset[str] = frozenset()  # period keys (D#..., M#...) the member was counted active in
    repeat: frozenset[str] = frozenset()  # period keys it was counted in with a repeat purchase
    lots: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # burn date -> (remaining, program)
    version: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "program_id": self.program_id,
            "tier": self.tier,
            "enrol_day": self.enrol_day,
            "enrol_program": self.enrol_program,
            "enrol_tier": self.enrol_tier,
            "enrol_counted": self.enrol_counted,
            "upto": self.upto,
            "applied": sorted(self.applied),
            "purchases": self.purchases,
            "active": sorted(self.active),
            "repeat": sorted(self.repeat),
            "lots": {day: [r, p] for day, (r, p) in sorted(self.lots.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], version: int) -> MemberState:
        return cls(
            program_id=data["program_id"],
            tier=data["tier"],
            enrol_day=data.get("enrol_day"),
            enrol_program=data.get("enrol_program"),
            enrol_tier=data.get("enrol_tier"),
            enrol_counted=bool(data.get("enrol_counted")),
            upto=int(data.get("upto", 0)),
            applied=frozenset(int(s) for s in data.get("applied", ())),
            purchases=int(data.get("purchases", 0)),
            active=frozenset(data.get("active", ())),
            repeat=frozenset(data.get("repeat", ())),
            lots={day: (int(r), str(p)) for day, (r, p) in (data.get("lots") or {}).items()},
            version=version,
        )


CounterKey = tuple[str, str, str]  # (period key, program id, tier)
Deltas = dict[CounterKey, dict[str, int]]
LotDeltas = dict[tuple[str, str], int]  # (burn date, program id) -> points


@dataclass
class Change:
    """What one record does: the member's next state and what to ADD to the counters."""

    state: MemberState
    counters: Deltas = field(default_factory=lambda: defaultdict(dict))
    lots: LotDeltas = field(default_factory=dict)

    def add(self, key: CounterKey, attr: str, value: int) -> None:
        if value:
            row = self.counters[key]
            row[attr] = row.get(attr, 0) + value


def _periods(day: str) -> tuple[str, str]:
    return day_key(day), month_key(day)


def _recent(keys: Iterable[str], day: str) -> frozenset[str]:
    """Forget periods long past (a record is processed within hours of its entry)."""
    today = dt.date.fromisoformat(day)
    first_day = (today - dt.timedelta(days=KEEP_DAYS)).isoformat()
    month = today.year * 12 + today.month - 1 - KEEP_MONTHS
    first_month = f"{month // 12:04d}-{month % 12 + 1:02d}"
    return frozenset(k for k in keys if (k[2:] >= first_day if k.startswith("D#") else k[2:] >= first_month))


def apply_entry(state: MemberState, entry: EntryRecord) -> Change | None:
    """Count one entry; None if its seq was counted before."""
    if entry.seq <= state.upto or entry.seq in state.applied:
        return None
    applied = set(state.applied) | {entry.seq}
    upto = state.upto
    while upto + 1 in applied:
        upto += 1
        applied.discard(upto)
    if len(applied) > KEEP_APPLIED:  # never in practice: the stream delivers a member's entries in order
        raise ValueError(f"more than {KEEP_APPLIED} entries of a member above seq {upto} arrived before it")
    details = entry.details
    tier = str(details.get("tier") or state.tier) if entry.type == "accrual" else state.tier
    program = entry.program_id or state.program_id
    next_tier = str(details.get("to") or state.tier) if entry.type == "tier_change" else state.tier
    change = Change(replace(state, upto=upto, applied=frozenset(applied), program_id=program, tier=next_tier))
    periods = _periods(entry.day)
    attr = points_attr(entry.type, test=entry.test)
    for period in periods:
        key = (period, program, tier)
        change.add(key, attr, entry.points)
    if entry.test:
        return change
    active, repeat = set(_recent(state.active, entry.day)), set(_recent(state.repeat, entry.day))
    purchases = state.purchases
    if entry.type in ACTIVITY_TYPES:
        for period in periods:
            if period not in active:
                active.add(period)
                change.add((period, program, tier), "active", 1)
    if entry.type == "accrual":
        for period in periods:
            change.add((period, program, tier), "orders", 1)
            change.add((period, program, tier), "order_amount", int(details.get("amount") or 0))
        if "below_min_order_amount" not in details:  # a qualifying purchase
            purchases += 1
            if purchases == 1:
                for period in periods:
                    change.add((period, program, tier), "first_purchases", 1)
                if state.enrol_day is not None:  # the enrolment cohort converts
                    cohort_program = state.enrol_program or program
                    cohort_tier = state.enrol_tier or tier
                    for period in _periods(state.enrol_day):
                        change.add((period, cohort_program, cohort_tier), "converted", 1)
            else:
                for period in periods:
                    if period not in repeat:
                        repeat.add(period)
                        change.add((period, program, tier), "repeat", 1)
    change.state = replace(change.state, active=frozenset(active), repeat=frozenset(repeat), purchases=purchases)
    return change


def apply_enrolment(state: MemberState, *, enrolled_at: str, program_id: str, tier: str) -> Change | None:
    """Count a member's enrolment (its member item's INSERT); None if counted before."""
    if state.enrol_counted:
        return None
    day = enrolled_at[:10]
    # The cohort is fixed once: a first purchase counted before this record already named it.
    enrol_day = state.enrol_day or day
    enrol_program = state.enrol_program or program_id
    enrol_tier = state.enrol_tier or tier
    change = Change(
        replace(state, enrol_day=enrol_day, enrol_program=enrol_program, enrol_tier=enrol_tier, enrol_counted=True)
    )
    for period in _periods(enrol_day):
        change.add((period, enrol_program, enrol_tier), "enrolled", 1)
    return change


def apply_lot(state: MemberState, burn_date: str, remaining: int) -> Change | None:
    """Follow a lot to its ``remaining`` (0: spent, burned or deleted); None if nothing changes.

    The lot stays with the program it was first counted under (a member moved to another program
    keeps its lots where they were earned), so per program the counters are exact too.
    """
    before, program = state.lots.get(burn_date, (0, state.program_id))
    if remaining == before:
        return None
    lots = dict(state.lots)
    if remaining > 0:
        lots[burn_date] = (remaining, program)
    else:
        lots.pop(burn_date, None)
    change = Change(replace(state, lots=lots))
    change.lots[(burn_date, program)] = remaining - before
    return change


# ------------------------------------------------------------------------------- reading


def age_bucket(burn_date: str, today: dt.date) -> str:
    """Which aging bucket points burning on ``burn_date`` fall in, seen on ``today`` (points already
    due and not burned yet count as 0-30)."""
    days = (dt.date.fromisoformat(burn_date) - today).days
    for name, limit in AGE_BUCKETS:
        if limit is None or days <= limit:
            return name
    raise AssertionError("unreachable")


def aged(lot_points: Mapping[str, int], today: dt.date) -> dict[str, int]:
    """Open lot points by burn date -> points by aging bucket (every bucket present)."""
    buckets = {name: 0 for name, _ in AGE_BUCKETS}
    for burn_date, points in lot_points.items():
        buckets[age_bucket(burn_date, today)] += points
    return buckets


def columns(counter: Mapping[str, int]) -> dict[str, int]:
    """A counter's points by report column (test-card points left out); ``net`` is the change of
    the outstanding balance. Redeemed and burned are shown as positive amounts."""
    sums = dict.fromkeys(COLUMNS, 0)
    for attr, value in counter.items():
        if attr.startswith("p_"):
            sums[category(attr[2:])] += int(value)
    net = sum(sums.values())
    shown = {name: (-value if name in DEBIT_COLUMNS else value) for name, value in sums.items()}
    return {**shown, "net": net}


def net_points(counter: Mapping[str, Any]) -> int:
    return sum(int(v) for attr, v in counter.items() if attr.startswith("p_"))


def add_counters(into: dict[str, int], counter: Mapping[str, Any]) -> None:
    for attr, value in counter.items():
        if attr.startswith(("p_", "x_")) or attr in MEMBER_COUNTERS:
            into[attr] = into.get(attr, 0) + int(value)
