"""The program simulator: replay a history of orders under a candidate program, and a baseline.

    python -m loyalty.simulate --orders orders.csv --program candidate.json [--baseline current.json]
        [--redemption-rate 0.3] [--csv out.csv] [--chart out.png] [--worse-off-csv members.csv]

Reports month by month, per program: points issued, redeemed and burned, the points outstanding
and their value (the liability), the value issued and redeemed as a share of revenue, and how many
members hold each tier at the month's end; with a baseline, the members who would earn less.

The replay is pure: values in, values out, through ``loyalty.rules`` (no boto3, no clock). Per
order, in date order (ties keep their input order):

1. Time moves to the order's day: points whose burn date has come burn (``rules.burn_date``: they
   are spendable through the day before), and months that ended are closed.
2. A member's first order enrols them: the program's welcome bonus is credited then (usable at
   once, burning like points earned that day).
3. Redemption: the order uses ``min(rate x available, the program's cap on the order's share)``
   points (``rules.max_redeemable``), earliest burn date first.
4. Tier and accrual, as the ledger does them: the order accrues at the tier held before it
   (``rules.accrual_points``), nothing if it is below ``min_order_amount`` (``rules.qualifies``);
   a qualifying order then moves the member along the program's basis and upgrades at once
   (``rules.reached_tier``: lifetime spend or purchase count; an order below the minimum moves
   nothing). For ``spend_window`` the basis is the qualifying spend in the window on the order's
   day (``rules.window_*``: the last ``tier_window_days`` UTC days, that day included; longer
   windows than 366 days count in buckets, and spend leaves when its bucket's last day does).
   With ``tier_downgrade: window`` the ledger reviews tiers nightly, at the start of each UTC day
   (``loyalty.tiers``; a purchase makes a review that is due first): the tier drops to what the
   window's spend reaches that day. So an order accrues at the tier of the window's spend on its
   day before it, and a month's tier distribution is the window's tier at its last day. With
   ``never`` a member keeps the highest tier reached. (Refunds, which the ledger lets lower a
   tier only from the next day's review, are not simulated.)

Months run from the first order's month to the last order's, each closed at its last day (burns
falling after the last order but within its month are counted). Dates are UTC days: a date-time
with an offset is converted, one without an offset is taken as UTC.

Memory: the CSV is read once, row by row, into four compact arrays (20 bytes an order, each
distinct member id kept once); they are sorted by time only if the rows were out of order (the
sort holds about 30 bytes more an order while it runs). A replay adds per member a few list slots,
its open lots (one pair of ints per earning day not yet burned or spent) and, for a windowed basis,
its qualifying orders inside the window (by the day they leave it); all freed when the replay
ends. Order ids name rows in messages and are not kept: each row is one order, repeats are not
detected. A million orders of 97,000 members peak at 160 MB, 190 MB out of order
(docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import io
import json
import re
import sys
from array import array
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loyalty import rules
from loyalty.currency import MINOR_UNITS
from loyalty.models import Program, TierBasis, TierDowngrade

DEFAULT_TENANT = "simulation"
DEFAULT_REDEMPTION_RATE = 0.3
COLUMNS = ("member_id", "order_id", "date", "amount")
RATE_SCALE = 1_000_000  # the redemption rate is applied in parts per million: exact, no float rounding
SECONDS_PER_DAY = 86_400
MAX_AMOUNT = 10**15  # minor units of one order: far above any shop's, far below the 64-bit array's limit

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})?")


class SimulationInputError(ValueError):
    """Input the simulator cannot use; the message is one line that names the row or field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ------------------------------------------------------------------------------------ input


class WhenParser:
    """Dates (YYYY-MM-DD) and RFC 3339 date-times as (UTC day ordinal, second of that day).

    A history repeats its days and its times of day: each part is parsed once and remembered (up
    to ``LIMIT`` of each), so a million rows cost a million dictionary lookups, not a million
    ``fromisoformat`` calls."""

    LIMIT = 200_000

    def __init__(self) -> None:
        self.days: dict[str, int] = {}
        self.times: dict[str, int] = {}

    def __call__(self, text: str) -> tuple[int, int]:
        head = text[:10]
        day = self.days.get(head)
        if day is None:
            if not _DATE.fullmatch(head):
                raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an RFC 3339 date-time")
            day = dt.date.fromisoformat(head).toordinal()
            if len(self.days) < self.LIMIT:
                self.days[head] = day
        if len(text) == 10:
            return day, 0
        tail = text[10:]
        second = self.times.get(tail)
        if second is None:
            if not _TIME.fullmatch(tail):
                raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an RFC 3339 date-time")
            moment = dt.datetime.fromisoformat("2000-01-01" + tail.upper())  # checks the ranges
            offset = moment.utcoffset()
            second = moment.hour * 3600 + moment.minute * 60 + moment.second
            second -= int(offset.total_seconds()) if offset is not None else 0  # no offset: UTC
            if len(self.times) < self.LIMIT:
                self.times[tail] = second
        shift, second = divmod(second, SECONDS_PER_DAY)
        return day + shift, second


def parse_when(text: str) -> tuple[int, int]:
    """A date (YYYY-MM-DD) or an RFC 3339 date-time as (UTC day ordinal, second of that day)."""
    return WhenParser()(text)


def _when_of(value: dt.date) -> tuple[int, int]:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.toordinal(), value.hour * 3600 + value.minute * 60 + value.second
    return value.toordinal(), 0


class Order(_Frozen):
    """One order of the history. ``date`` is a date or a date-time (UTC when it has no offset)."""

    member_id: str = Field(min_length=1)
    order_id: str = Field(min_length=1)
    date: dt.date | dt.datetime
    amount: int = Field(ge=1, le=MAX_AMOUNT, description="Minor units.")

    @field_validator("date", mode="before")
    @classmethod
    def _strict_text(cls, value: object) -> object:
        if isinstance(value, str):
            day, second = parse_when(value)
            return dt.datetime.combine(dt.date.fromordinal(day), dt.time(), dt.UTC) + dt.timedelta(seconds=second)
        return value


class OrderBook:
    """Orders in compact arrays (member index, UTC day, second of day, amount), then in time order."""

    def __init__(self) -> None:
        self.member_ids: list[str] = []
        self.index: dict[str, int] = {}
        self.members = array("i")
        self.days = array("i")
        self.seconds = array("i")
        self.amounts = array("q")
        self._last = (-1, -1)
        self.in_order = True

    def __len__(self) -> int:
        return len(self.amounts)

    def member(self, member_id: str) -> int:
        number = self.index.get(member_id)
        if number is None:
            number = self.index[member_id] = len(self.member_ids)
            self.member_ids.append(member_id)
        return number

    def add(self, member_id: str, day: int, second: int, amount: int) -> None:
        self.members.append(self.member(member_id))
        self.days.append(day)
        self.seconds.append(second)
        self.amounts.append(amount)
        if (day, second) < self._last:
            self.in_order = False
        else:
            self._last = (day, second)

    def add_order(self, order: Order) -> None:
        day, second = _when_of(order.date)
        self.add(order.member_id, day, second, order.amount)

    def sort(self) -> None:
        """Time order, stable (same-second orders keep their input order)."""
        if self.in_order:
            return
        days, seconds = self.days, self.seconds
        order = sorted(range(len(days)), key=lambda k: days[k] * SECONDS_PER_DAY + seconds[k])
        for name, kind in (("members", "i"), ("days", "i"), ("seconds", "i"), ("amounts", "q")):
            column = getattr(self, name)
            setattr(self, name, array(kind, [column[k] for k in order]))
        self.in_order = True


def read_orders_csv(source: IO[str], name: str = "orders") -> OrderBook:
    """Read ``member_id,order_id,date,amount`` rows (a header first; other columns are ignored).

    Raises ``SimulationInputError`` naming the line and field of the first bad row."""
    reader = csv.reader(source)
    try:
        header = next(reader)
    except StopIteration:
        raise SimulationInputError(f"{name}: the file is empty (expected the header {','.join(COLUMNS)})") from None
    except csv.Error as error:
        raise SimulationInputError(f"{name} line 1: {error}") from None
    header = [title.strip() for title in header]
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise SimulationInputError(
            f"{name} line 1: the header lacks {', '.join(missing)} "
            f"(expected {','.join(COLUMNS)}; got {','.join(header)})"
        )
    m_at, o_at, d_at, a_at = (header.index(column) for column in COLUMNS)
    width = len(header)
    book = OrderBook()
    index, member_ids = book.index, book.member_ids
    members, days, seconds, amounts = book.members, book.days, book.seconds, book.amounts
    when_of = WhenParser()
    last = (-1, -1)
    in_order = True
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if len(row) != width:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                raise SimulationInputError(f"{name} line {line}: {len(row)} fields, the header has {width}")
            member_id, order_id, when_text, amount_text = row[m_at], row[o_at], row[d_at], row[a_at]
            if not member_id:
                raise SimulationInputError(f"{name} line {line}: member_id is empty")
            if not order_id:
                raise SimulationInputError(f"{name} line {line}: order_id is empty")
            try:
                when = when_of(when_text)
            except ValueError:
                raise SimulationInputError(
                    f"{name} line {line}: date {when_text!r} is not YYYY-MM-DD or an RFC 3339 date-time"
                ) from None
            if not amount_text.isdecimal() or not amount_text.isascii():
                raise SimulationInputError(
                    f"{name} line {line}: amount {amount_text!r} is not a whole number of minor units"
                )
            amount = int(amount_text)
            if not 1 <= amount <= MAX_AMOUNT:
                raise SimulationInputError(f"{name} line {line}: amount must be from 1 to {MAX_AMOUNT:,} minor units")
            member = index.get(member_id)
            if member is None:
                member = index[member_id] = len(member_ids)
                member_ids.append(member_id)
            members.append(member)
            days.append(when[0])
            seconds.append(when[1])
            amounts.append(amount)
            if when < last:
                in_order = False
            else:
                last = when
    except csv.Error as error:
        raise SimulationInputError(f"{name} line {reader.line_num}: {error}") from None
    book.in_order, book._last = in_order, last
    return book


def load_program(source: str | bytes, name: str = "program") -> Program:
    """A program from its JSON (the Program model's fields; ``tenant_id`` may be left out)."""
    try:
        data = json.loads(source)
    except json.JSONDecodeError as error:
        raise SimulationInputError(
            f"{name}: not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(data, dict):
        raise SimulationInputError(f"{name}: expected a JSON object with the program's fields")
    data.setdefault("tenant_id", DEFAULT_TENANT)
    try:
        return Program.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"]) or "program"
            problems.append(f"{where}: {item['msg']}")
        raise SimulationInputError(f"{name}: {'; '.join(problems)}") from None


# ------------------------------------------------------------------------------------ report


class MonthFigures(_Frozen):
    month: str = Field(description="YYYY-MM")
    orders: int
    revenue: int = Field(description="Minor units.")
    issued: int = Field(description="Points credited: accruals and welcome bonuses.")
    redeemed: int
    burned: int
    outstanding: int = Field(description="Points outstanding at the month's end.")
    liability: int = Field(description="Outstanding points at the point value, minor units.")
    issued_share: float = Field(description="Value of the points issued / revenue.")
    redeemed_share: float = Field(description="Value of the points redeemed / revenue.")
    tiers: list[int] = Field(description="Members in each tier at the month's end, in the order of tier_names.")


class ProgramReport(_Frozen):
    program_id: str
    name: str
    point_value: int
    tier_names: list[str]
    months: list[MonthFigures]
    issued: int
    redeemed: int
    burned: int
    outstanding: int
    liability: int
    issued_share: float
    redeemed_share: float


class WorseOff(_Frozen):
    member_id: str
    candidate_points: int
    baseline_points: int
    candidate_value: int = Field(description="Value of the points issued to the member, minor units.")
    baseline_value: int
    difference: int = Field(description="candidate_value - baseline_value (negative), minor units.")


class Report(_Frozen):
    currency: str
    minor_digits: int
    redemption_rate: float
    orders: int
    members: int
    first_date: dt.date
    last_date: dt.date
    revenue: int
    candidate: ProgramReport
    baseline: ProgramReport | None = None
    worse_off: list[WorseOff] = Field(default_factory=list, description="Most worse off first.")
    notes: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------------------------ replay

Trace = Callable[[int, int, int, int, int], None]  # member, amount, available, redeemed, issued


class Replay:
    """One program over one book of orders. ``run()`` fills ``months`` (one tuple per month) and the
    per-member state (``earned``, ``balance``), which tests compare against hand computations."""

    def __init__(self, book: OrderBook, program: Program, redemption_rate: float, trace: Trace | None = None) -> None:
        if not 0 <= redemption_rate <= 1:
            raise SimulationInputError(f"redemption rate {redemption_rate} is not between 0 and 1")
        if not len(book):
            raise SimulationInputError("no orders to replay")
        book.sort()
        self.book, self.program, self.trace = book, program, trace
        self.rate_ppm = round(redemption_rate * RATE_SCALE)
        self.months: list[tuple[str, int, int, int, int, int, int, tuple[int, ...]]] = []
        members = len(book.member_ids)
        self.earned = [0] * members
        self.balance = [0] * members
        self.outstanding = 0

    def run(self) -> Replay:
        book, program, trace = self.book, self.program, self.trace
        tier_for, reached_tier, qualifies = rules.tier_for, rules.reached_tier, rules.qualifies
        accrual_points, max_redeemable = rules.accrual_points, rules.max_redeemable
        tiers = program.tiers
        position = {id(tier): i for i, tier in enumerate(tiers)}
        upgrade_at = [tier.threshold for tier in tiers[1:]] + [float("inf")]  # by the tier held
        first_day, last_day = book.days[0], book.days[-1]
        last = dt.date.fromordinal(last_day)
        end_day = (dt.date(last.year + last.month // 12, last.month % 12 + 1, 1) - dt.timedelta(days=1)).toordinal()
        pending = [0] * (end_day - first_day + program.lifetime_days + 2)  # points burning each day
        members = len(book.member_ids)
        m_lots: list[list[int] | None] = [None] * members  # flat [burn day, points, ...], burn order
        m_tier = [0] * members
        m_basis = [0] * members  # lifetime spend, qualifying purchases, or spend in the window
        windowed = program.tier_basis is TierBasis.SPEND_WINDOW
        m_window: list[list[int]] = [[] for _ in range(members)] if windowed else []
        window_days = program.tier_window_days or 0
        # the day an order's spend leaves the window: the day after its bucket's last day + N - 1
        width = rules.window_bucket_days(window_days) if windowed else 1
        keep_best = program.tier_downgrade is TierDowngrade.NEVER
        by_count = program.tier_basis is TierBasis.PURCHASE_COUNT
        tier_counts = [0] * len(tiers)
        earned, balance = self.earned, self.balance
        welcome, rate_ppm = program.welcome_bonus, self.rate_ppm
        months = self.months
        orders_m = revenue_m = issued_m = redeemed_m = burned_m = outstanding = 0
        cur_day = first_day - 1
        cur_month = _month_of(first_day)
        burn_day = 0

        for m, day, amount in zip(book.members, book.days, book.amounts, strict=True):
            if day != cur_day:
                while cur_day < day:
                    cur_day += 1
                    month = _month_of(cur_day)
                    if month != cur_month:
                        if windowed and not keep_best:
                            _window_tiers(program, cur_day - 1, m_window, m_basis, m_tier, tier_counts, position)
                        months.append((cur_month, orders_m, revenue_m, issued_m, redeemed_m, burned_m, outstanding,
                                       tuple(tier_counts)))  # fmt: skip
                        orders_m = revenue_m = issued_m = redeemed_m = burned_m = 0
                        cur_month = month
                    burned = pending[cur_day - first_day]
                    if burned:
                        burned_m += burned
                        outstanding -= burned
                earned_at = dt.datetime.combine(dt.date.fromordinal(day), dt.time(), dt.UTC)
                burn_day = rules.burn_date(program, earned_at).toordinal()
            lots = m_lots[m]
            if lots is None:  # the first order enrols the member
                lots = m_lots[m] = []
                tier_counts[0] += 1
                bal = 0
                if welcome:
                    lots += (burn_day, welcome)
                    pending[burn_day - first_day] += welcome
                    bal = welcome
                    issued_m += welcome
                    outstanding += welcome
                    earned[m] += welcome
            else:
                bal = balance[m]
                if lots and lots[0] <= day:  # burned already (counted when the day came)
                    i = 0
                    while i < len(lots) and lots[i] <= day:
                        bal -= lots[i + 1]
                        i += 2
                    del lots[:i]
            available, used = bal, 0
            if rate_ppm and bal > 0:
                want = bal * rate_ppm // RATE_SCALE
                if want:
                    used = max_redeemable(program, amount, want)
                    if used:
                        left, i = used, 0
                        while left:
                            have = lots[i + 1]
                            if have <= left:
                                left -= have
                                pending[lots[i] - first_day] -= have
                                i += 2
                            else:
                                lots[i + 1] = have - left
                                pending[lots[i] - first_day] -= left
                                left = 0
                        if i:
                            del lots[:i]
                        bal -= used
                        redeemed_m += used
                        outstanding -= used
            held = m_tier[m]
            qualifying = qualifies(program, amount)
            if windowed:
                window = m_window[m]  # flat [day it leaves, amount, ...], in leaving order
                if window and window[0] <= day:
                    basis, i = m_basis[m], 0
                    while i < len(window) and window[i] <= day:
                        basis -= window[i + 1]
                        i += 2
                    del window[:i]
                    m_basis[m] = basis
                after = position[id(tier_for(program, m_basis[m]))]  # the window on the order's day
                if keep_best and after < held:
                    after = held
                tier = tiers[after]
                if qualifying:
                    window += (day // width * width + width - 1 + window_days, amount)
                    m_basis[m] += amount
                    after = max(after, position[id(tier_for(program, m_basis[m]))])
            else:
                tier = tiers[held]  # as the ledger: the tier held before the purchase
                after = held
                if qualifying:
                    m_basis[m] += 1 if by_count else amount  # m_basis holds whichever the basis counts
                    value = m_basis[m]
                    if value >= upgrade_at[held]:  # below the next threshold the rule answers `held`
                        reached = reached_tier(program, tier.name, lifetime_spend=value, purchases=value)
                        after = position[id(reached)]
            if after != held:
                tier_counts[held] -= 1
                tier_counts[after] += 1
                m_tier[m] = after
            points = accrual_points(program, tier, amount) if qualifying else 0
            if points:
                if lots and lots[-2] == burn_day:
                    lots[-1] += points
                else:
                    lots += (burn_day, points)
                pending[burn_day - first_day] += points
                bal += points
                issued_m += points
                outstanding += points
                earned[m] += points
            if trace is not None:
                trace(m, amount, available, used, points)
            balance[m] = bal
            orders_m += 1
            revenue_m += amount

        while cur_day < end_day:  # the last month runs to its end
            cur_day += 1
            burned = pending[cur_day - first_day]
            burned_m += burned
            outstanding -= burned
        if windowed and not keep_best:
            _window_tiers(program, end_day, m_window, m_basis, m_tier, tier_counts, position)
        months.append((cur_month, orders_m, revenue_m, issued_m, redeemed_m, burned_m, outstanding, tuple(tier_counts)))
        for m, lots in enumerate(m_lots):  # the balances at the end of the last month
            if lots:
                balance[m] -= sum(lots[i + 1] for i in range(0, len(lots), 2) if lots[i] <= end_day)
        self.outstanding = outstanding
        return self

    def report(self) -> ProgramReport:
        program = self.program
        pv = program.point_value
        rows = []
        for month, orders, revenue, issued, redeemed, burned, outstanding, tiers in self.months:
            rows.append(
                MonthFigures(
                    month=month,
                    orders=orders,
                    revenue=revenue,
                    issued=issued,
                    redeemed=redeemed,
                    burned=burned,
                    outstanding=outstanding,
                    liability=outstanding * pv,
                    issued_share=_share(issued * pv, revenue),
                    redeemed_share=_share(redeemed * pv, revenue),
                    tiers=list(tiers),
                )
            )
        issued, redeemed = sum(r.issued for r in rows), sum(r.redeemed for r in rows)
        revenue = sum(r.revenue for r in rows)
        return ProgramReport(
            program_id=program.program_id,
            name=program.name,
            point_value=pv,
            tier_names=[tier.name for tier in program.tiers],
            months=rows,
            issued=issued,
            redeemed=redeemed,
            burned=sum(r.burned for r in rows),
            outstanding=self.outstanding,
            liability=self.outstanding * pv,
            issued_share=_share(issued * pv, revenue),
            redeemed_share=_share(redeemed * pv, revenue),
        )


@functools.cache
def _month_of(day: int) -> str:
    return dt.date.fromordinal(day).strftime("%Y-%m")


def _window_tiers(
    program: Program,
    day: int,
    m_window: list[list[int]],
    m_basis: list[int],
    m_tier: list[int],
    tier_counts: list[int],
    position: dict[int, int],
) -> None:
    """At the end of ``day``: every member's tier from the spend of the window on that day (the
    nightly review of ``day`` lowered it so; the window holds the day each order's spend leaves)."""
    for m, window in enumerate(m_window):
        if window and window[0] <= day:
            i = 0
            while i < len(window) and window[i] <= day:
                m_basis[m] -= window[i + 1]
                i += 2
            del window[:i]
            now = position[id(rules.tier_for(program, m_basis[m]))]
            if now != m_tier[m]:
                tier_counts[m_tier[m]] -= 1
                tier_counts[now] += 1
                m_tier[m] = now


def _share(value: int, revenue: int) -> float:
    return value / revenue if revenue else 0.0


# ------------------------------------------------------------------------------------ simulate


def simulate(
    orders: Iterable[Order],
    program: Program,
    baseline: Program | None = None,
    redemption_rate: float = DEFAULT_REDEMPTION_RATE,
) -> Report:
    """Replay ``orders`` under ``program`` (and ``baseline``): the report an endpoint can return
    (``Report.model_dump(mode="json")``). Raises ``SimulationInputError`` on unusable input."""
    book = OrderBook()
    for order in orders:
        book.add_order(order)
    return simulate_book(book, program, baseline, redemption_rate)


def simulate_book(
    book: OrderBook, program: Program, baseline: Program | None = None, redemption_rate: float = DEFAULT_REDEMPTION_RATE
) -> Report:
    if baseline is not None and baseline.currency != program.currency:
        raise SimulationInputError(
            f"the candidate counts in {program.currency} and the baseline in {baseline.currency}: "
            "compare programs of one currency"
        )
    candidate = Replay(book, program, redemption_rate).run()
    base = Replay(book, baseline, redemption_rate).run() if baseline is not None else None
    worse: list[WorseOff] = []
    if base is not None:
        assert baseline is not None
        cpv, bpv = program.point_value, baseline.point_value
        for m, (mine, theirs) in enumerate(zip(candidate.earned, base.earned, strict=True)):
            if mine * cpv < theirs * bpv:
                worse.append(
                    WorseOff(
                        member_id=book.member_ids[m],
                        candidate_points=mine,
                        baseline_points=theirs,
                        candidate_value=mine * cpv,
                        baseline_value=theirs * bpv,
                        difference=mine * cpv - theirs * bpv,
                    )
                )
        worse.sort(key=lambda row: (row.difference, row.member_id))
    return Report(
        currency=program.currency,
        minor_digits=MINOR_UNITS.get(program.currency, 2),
        redemption_rate=redemption_rate,
        orders=len(book),
        members=len(book.member_ids),
        first_date=dt.date.fromordinal(book.days[0]),
        last_date=dt.date.fromordinal(book.days[-1]),
        revenue=sum(book.amounts),
        candidate=candidate.report(),
        baseline=base.report() if base is not None else None,
        worse_off=worse,
        notes=_notes(program, "candidate") + (_notes(baseline, "baseline") if baseline is not None else []),
    )


def _notes(program: Program, role: str) -> list[str]:
    """Settings the replay cannot model from orders alone."""
    unmodelled = [
        name
        for name in ("birthday_bonus", "referral_bonus_referrer", "referral_bonus_referee")
        if getattr(program, name)
    ]
    notes = []
    if unmodelled:
        notes.append(f"{role}: {', '.join(unmodelled)} not simulated (the orders carry no birthdays or referrals)")
    if any(tier.discount_bp for tier in program.tiers):
        notes.append(f"{role}: tier discounts are not points and are not part of the cost shown")
    return notes


# ------------------------------------------------------------------------------------ output


def money(minor: int, digits: int) -> str:
    """Minor units as major units with thousands separators: 1234567, 2 -> '12,345.67'."""
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**digits)
    return f"{sign}{whole:,}.{part:0{digits}d}" if digits else f"{sign}{whole:,}"


def _percent(share: float) -> str:
    return f"{share * 100:.2f} %"


def _programs(report: Report) -> list[tuple[str, ProgramReport]]:
    programs = [("cand", report.candidate)]
    if report.baseline is not None:
        programs.append(("base", report.baseline))
    return programs


def format_report(report: Report, worse_off_limit: int = 20) -> str:
    """The terminal view: a summary, three tables with month rows and a column per program, and the
    members worse off."""
    out = io.StringIO()
    cur, digits = report.currency, report.minor_digits
    programs = _programs(report)
    out.write(
        f"{report.orders:,} orders of {report.members:,} members, {report.first_date} to {report.last_date}, "
        f"revenue {money(report.revenue, digits)} {cur}; each order redeems {report.redemption_rate * 100:g} % of "
        "the points available, up to the program's cap\n"
    )
    for label, program in programs:
        out.write(
            f"{label}: {program.name} ({program.program_id or 'no id'}, a point is worth "
            f"{money(program.point_value, digits)} {cur}): issued {program.issued:,} points "
            f"({_percent(program.issued_share)} of revenue), redeemed {program.redeemed:,} "
            f"({_percent(program.redeemed_share)}), burned {program.burned:,}; "
            f"outstanding at the end {program.outstanding:,} = {money(program.liability, digits)} {cur}\n"
        )
    months = [row.month for row in report.candidate.months]
    out.write("\npoints\n")
    columns = ["month"]
    for metric in ("issued", "redeemed", "burned", "outstanding"):
        columns += [f">{metric} {label}" for label, _ in programs]
    rows = []
    for i, month in enumerate(months):
        row: list[str] = [month]
        for metric in ("issued", "redeemed", "burned", "outstanding"):
            row += [f"{getattr(program.months[i], metric):,}" for _, program in programs]
        rows.append(row)
    out.write(_table(columns, rows))
    out.write(f"\nmoney ({cur}) and cost: points issued and redeemed at their value, as a share of revenue\n")
    columns = ["month", ">orders", ">revenue"]
    columns += [f">liability {label}" for label, _ in programs]
    columns += [f">issued % {label}" for label, _ in programs]
    columns += [f">redeemed % {label}" for label, _ in programs]
    rows = []
    for i, month in enumerate(months):
        first = report.candidate.months[i]
        row = [month, f"{first.orders:,}", money(first.revenue, digits)]
        row += [money(program.months[i].liability, digits) for _, program in programs]
        row += [_percent(program.months[i].issued_share) for _, program in programs]
        row += [_percent(program.months[i].redeemed_share) for _, program in programs]
        rows.append(row)
    out.write(_table(columns, rows))
    out.write("\nmembers in each tier at the month's end\n")
    columns = ["month"]
    for label, program in programs:
        columns += [f">{name} {label}" for name in program.tier_names]
    rows = []
    for i, month in enumerate(months):
        row = [month]
        for _, program in programs:
            row += [f"{count:,}" for count in program.months[i].tiers]
        rows.append(row)
    out.write(_table(columns, rows))
    if report.baseline is not None:
        out.write(
            f"\n{len(report.worse_off):,} of {report.members:,} members would earn less under the candidate "
            f"(value of the points issued to them, {cur})"
        )
        if report.worse_off:
            shown = report.worse_off[:worse_off_limit]
            more = len(report.worse_off) - len(shown)
            out.write(f"{f'; the {len(shown)} most affected' if more else ''}:\n")
            out.write(
                _table(
                    ["member", ">cand points", ">base points", ">cand value", ">base value", ">difference"],
                    [
                        [
                            row.member_id,
                            f"{row.candidate_points:,}",
                            f"{row.baseline_points:,}",
                            money(row.candidate_value, digits),
                            money(row.baseline_value, digits),
                            money(row.difference, digits),
                        ]
                        for row in shown
                    ],
                )
            )
        else:
            out.write("\n")
    for note in report.notes:
        out.write(f"note: {note}\n")
    return out.getvalue()


def _table(columns: list[str], rows: list[list[str]]) -> str:
    """A markdown table; a column whose title starts with '>' is right-aligned."""
    titles = [column.lstrip(">") for column in columns]
    right = [column.startswith(">") for column in columns]
    widths = [max(len(text) for text in [title] + [row[i] for row in rows]) for i, title in enumerate(titles)]

    def line(texts: Sequence[str]) -> str:
        padded = (t.rjust(w) if r else t.ljust(w) for t, w, r in zip(texts, widths, right, strict=True))
        return "| " + " | ".join(padded) + " |\n"

    rule = "|" + "|".join("-" * (w + 1) + (":" if r else "-") for w, r in zip(widths, right, strict=True)) + "|\n"
    return line(titles) + rule + "".join(line(row) for row in rows)


def write_csv(report: Report, target: IO[str]) -> None:
    """One row per program and month; money in major units; a column per tier name."""
    names: list[str] = []
    for _, program in _programs(report):
        names += [name for name in program.tier_names if name not in names]
    writer = csv.writer(target, lineterminator="\n")
    writer.writerow(
        ["program", "program_id", "month", "orders", "currency", "revenue", "issued_points", "redeemed_points",
         "burned_points", "outstanding_points", "issued_value", "redeemed_value", "burned_value", "liability",
         "issued_share", "redeemed_share"] + [f"tier:{name}" for name in names]
    )  # fmt: skip
    digits = report.minor_digits
    for role, program in (("candidate", report.candidate), ("baseline", report.baseline)):
        if program is None:
            continue
        pv = program.point_value
        for row in program.months:
            counts = dict(zip(program.tier_names, row.tiers, strict=True))
            writer.writerow(
                [role, program.program_id, row.month, row.orders, report.currency, _plain(row.revenue, digits),
                 row.issued, row.redeemed, row.burned, row.outstanding, _plain(row.issued * pv, digits),
                 _plain(row.redeemed * pv, digits), _plain(row.burned * pv, digits), _plain(row.liability, digits),
                 f"{row.issued_share:.6f}", f"{row.redeemed_share:.6f}"]
                + [counts.get(name, "") for name in names]
            )  # fmt: skip


def write_worse_off_csv(report: Report, target: IO[str]) -> None:
    writer = csv.writer(target, lineterminator="\n")
    writer.writerow(
        ["member_id", "candidate_points", "baseline_points", "currency", "candidate_value", "baseline_value",
         "difference"]
    )  # fmt: skip
    for row in report.worse_off:
        writer.writerow(
            [row.member_id, row.candidate_points, row.baseline_points, report.currency,
             _plain(row.candidate_value, report.minor_digits), _plain(row.baseline_value, report.minor_digits),
             _plain(row.difference, report.minor_digits)]
        )  # fmt: skip


def _plain(minor: int, digits: int) -> str:
    return money(minor, digits).replace(",", "")


MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
SERIES_COLORS = {
    "issued": (31, 119, 180),
    "redeemed": (44, 160, 44),
    "burned": (214, 39, 40),
    "outstanding": (148, 103, 189),
}


def chart_png(report: Report) -> bytes:
    """Issued, redeemed and burned per month (top) and the outstanding liability (bottom), in major
    units; the candidate solid, the baseline dashed."""
    from loyalty.chart import Panel, Series, line_chart

    scale = 10**report.minor_digits
    labels = []
    for i, row in enumerate(report.candidate.months):
        year, month = row.month.split("-")
        name = MONTH_NAMES[int(month) - 1]
        labels.append(f"{name}\n{year}" if i == 0 or month == "01" else name)
    flows, stock = [], []
    for program, dashed in ((report.candidate, False), (report.baseline, True)):
        if program is None:
            continue
        pv = program.point_value
        for metric in ("issued", "redeemed", "burned"):
            values = [getattr(row, metric) * pv / scale for row in program.months]
            flows.append(Series(metric, values, SERIES_COLORS[metric], dashed))
        stock.append(
            Series(
                "outstanding", [row.liability / scale for row in program.months], SERIES_COLORS["outstanding"], dashed
            )
        )
    legend = [(metric, color, False) for metric, color in SERIES_COLORS.items()]
    legend.append((f"candidate: {report.candidate.name}", (90, 90, 90), False))
    if report.baseline is not None:
        legend.append((f"baseline: {report.baseline.name}", (90, 90, 90), True))
    return line_chart(
        f"Program simulation, {report.first_date} to {report.last_date}",
        labels,
        [
            Panel(f"Value of the points issued, redeemed, burned per month ({report.currency})", flows),
            Panel(f"Outstanding at month end: liability ({report.currency})", stock),
        ],
        legend,
    )


# ------------------------------------------------------------------------------------ command line


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= rate <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (0.3 = 30 % of the points available)")
    return rate


def _read_program(path: str) -> Program:
    try:
        text = Path(path).read_bytes()
    except OSError as error:
        raise SimulationInputError(f"{path}: {error.strerror}") from None
    return load_program(text, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loyalty.simulate",
        description="Replay a history of orders under a candidate program (and a baseline) and report its cost.",
    )
    parser.add_argument("--orders", required=True, help="CSV with the header member_id,order_id,date,amount")
    parser.add_argument("--program", required=True, help="the candidate program, JSON (the Program model's fields)")
    parser.add_argument("--baseline", help="the program to compare with, JSON")
    parser.add_argument(
        "--redemption-rate",
        type=_rate,
        default=DEFAULT_REDEMPTION_RATE,
        help="share of the available points each order redeems, up to the program's cap (default %(default)s)",
    )
    parser.add_argument("--csv", help="write the monthly figures to this CSV file")
    parser.add_argument("--chart", help="write a PNG line chart to this file")
    parser.add_argument("--worse-off-csv", help="write every member worse off to this CSV file")
    parser.add_argument("--json", help="write the whole report as JSON to this file")
    parser.add_argument("--top", type=int, default=20, help="members worse off shown in the terminal (%(default)s)")
    args = parser.parse_args(argv)
    try:
        program = _read_program(args.program)
        baseline = _read_program(args.baseline) if args.baseline else None
        try:
            with open(args.orders, encoding="utf-8-sig", newline="") as source:
                book = read_orders_csv(source, args.orders)
        except OSError as error:
            raise SimulationInputError(f"{args.orders}: {error.strerror}") from None
        except UnicodeDecodeError as error:
            raise SimulationInputError(
                f"{args.orders}: not UTF-8 text ({error.reason} at byte {error.start})"
            ) from None
        report = simulate_book(book, program, baseline, args.redemption_rate)
        outputs = []
        if args.csv:
            with open(args.csv, "w", encoding="utf-8", newline="") as target:
                write_csv(report, target)
            outputs.append(f"monthly figures: {args.csv}")
        if args.worse_off_csv:
            with open(args.worse_off_csv, "w", encoding="utf-8", newline="") as target:
                write_worse_off_csv(report, target)
            outputs.append(f"members worse off: {args.worse_off_csv}")
        if args.json:
            Path(args.json).write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
            outputs.append(f"report: {args.json}")
        if args.chart:
            Path(args.chart).write_bytes(chart_png(report))
            outputs.append(f"chart: {args.chart}")
    except SimulationInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.filename}: {error.strerror}", file=sys.stderr)
        return 2
    sys.stdout.write(format_report(report, args.top))
    for line in outputs:
        print(f"wrote {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
