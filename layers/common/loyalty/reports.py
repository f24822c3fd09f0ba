"""Reports: counters kept up from the ledger's stream, and the summary read from them.

``Consumer.record`` applies one DynamoDB stream record of the ledger table (an entry's INSERT, a
member's INSERT, any change of a lot) to the member's report state and the tenant's counters, in
one transaction (``loyalty.store.reports``); the arithmetic is ``loyalty.report_rules``. A record
delivered twice adds nothing the second time.

``Reports.summary`` reads the counters of a range (a Query per shard, never a scan) and answers
per period: points by column, outstanding liability, member counts, orders; by program and by tier;
plus the open liability aged by burn date. ``to_csv`` and ``chart_png`` render the same answer.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loyalty import clock, currency
from loyalty import report_rules as rules
from loyalty.errors import InvalidRequest, NotFound
from loyalty.models import Program
from loyalty.store import dynamo, keys
from loyalty.store.config import ConfigStore
from loyalty.store.reports import ReportStore

MAX_DAYS = 366  # day granularity: a year of days at most per request
MAX_MONTHS = 24  # month granularity: two years of months
AGING_LOOKBACK_DAYS = 400  # lots overdue longer than this cannot exist while the nightly burn runs
GRANULARITIES = ("day", "month")

# ------------------------------------------------------------------------------- the consumer


@dataclass(frozen=True)
class StreamRecord:
    """The parts of a stream record the consumer needs (images unmarshalled)."""

    event_name: str
    keys: Mapping[str, Any]
    new_image: Mapping[str, Any] | None


class Consumer:
    def __init__(self, store: ReportStore, *, attempts: int = 15) -> None:
        self.store = store
        self.attempts = attempts

    def record(self, record: StreamRecord) -> bool:
        """Apply one record; False if it changed nothing (not ours, or applied before)."""
        pk, sk = str(record.keys.get("pk", "")), str(record.keys.get("sk", ""))
        try:
            tenant_id, member_id = keys.parse_member_pk(pk)
        except ValueError:
            return False
        image = record.new_image or {}
        if sk.startswith("E#") and record.event_name == "INSERT":
            entry = _entry(image)
            return self._apply(tenant_id, member_id, lambda state: rules.apply_entry(state, entry))
        if sk == keys.MEMBER_SK and record.event_name == "INSERT":
            return self._apply(
                tenant_id,
                member_id,
                lambda state: rules.apply_enrolment(
                    state,
                    enrolled_at=str(image["enrolled_at"]),
                    program_id=str(image["program_id"]),
                    tier=str(image["tier"]),
                ),
            )
        if sk.startswith("L#"):
            burn_date = sk[2:]
            remaining = int(image.get("remaining", 0)) if record.event_name != "REMOVE" else 0
            return self._apply(tenant_id, member_id, lambda state: rules.apply_lot(state, burn_date, remaining))
        return False

    def _apply(self, tenant_id: str, member_id: str, step: Any) -> bool:
        def attempt() -> bool:
            state = self.store.state(tenant_id, member_id)
            new = state is None
            if state is None:
                state = self._first_state(tenant_id, member_id)
            change = step(state)
            if change is None:
                return False
            self.store.apply(tenant_id, member_id, change, new=new)
            return True

        return dynamo.with_retries(attempt, attempts=self.attempts, max_delay=0.25)

    def _first_state(self, tenant_id: str, member_id: str) -> rules.MemberState:
        facts = self.store.member_facts(tenant_id, member_id) or {}
        program_id, tier = str(facts.get("program_id", "")), str(facts.get("tier", ""))
        enrolled_at = facts.get("enrolled_at")
        return rules.MemberState(
            program_id=program_id,
            tier=tier,
            enrol_day=str(enrolled_at)[:10] if enrolled_at else None,
            enrol_program=program_id or None,
            enrol_tier=tier or None,
        )


def _entry(image: Mapping[str, Any]) -> rules.EntryRecord:
    details = image.get("details")
    return rules.EntryRecord(
        seq=int(image["seq"]),
        type=str(image["type"]),
        points=int(image["points"]),
        created_at=str(image["created_at"]),
        program_id=str(image.get("program_id") or ""),
        details=json.loads(details) if isinstance(details, str) and details else {},
    )


def entry_of_item(item: Mapping[str, Any]) -> rules.EntryRecord:
    """An entry item (a Scan's, unmarshalled) as the report rules see it."""
    return _entry(item)


# ------------------------------------------------------------------------------- the summary


@dataclass(frozen=True)
class Period:
    key: str  # YYYY-MM-DD or YYYY-MM
    first: dt.date
    last: dt.date


def periods(start: dt.date, end: dt.date, granularity: str) -> list[Period]:
    """The periods from ``start`` to ``end``: days, or the whole calendar months that hold them."""
    if granularity == "day":
        return [
            Period(day.isoformat(), day, day)
            for day in (start + dt.timedelta(days=n) for n in range((end - start).days + 1))
        ]
    result, month = [], start.replace(day=1)
    while month <= end:
        following = (month + dt.timedelta(days=32)).replace(day=1)
        result.append(Period(month.isoformat()[:7], month, following - dt.timedelta(days=1)))
        month = following
    return result


def check_range(start: dt.date, end: dt.date, granularity: str) -> None:
    if granularity not in GRANULARITIES:
        raise InvalidRequest("granularity must be day or month.", field="query:granularity")
    if start > end:
        raise InvalidRequest("from must not be after to.", field="query:from")
    if granularity == "day" and (end - start).days + 1 > MAX_DAYS:
        raise InvalidRequest(
            f"A day report covers at most {MAX_DAYS} days; ask for less, or use granularity=month.",
            field="query:to",
        )
    months = (end.year - start.year) * 12 + end.month - start.month + 1
    if granularity == "month" and months > MAX_MONTHS:
        raise InvalidRequest(f"A month report covers at most {MAX_MONTHS} months; ask for less.", field="query:to")


class Reports:
    def __init__(self, store: ReportStore, config: ConfigStore) -> None:
        self.store = store
        self.config = config

    def _retrying(self, read: Any) -> Any:
        return dynamo.with_retries(read, attempts=8, max_delay=0.25)

    def summary(
        self,
        tenant_id: str,
        *,
        start: dt.date,
        end: dt.date,
        granularity: str = "month",
        program_id: str | None = None,
    ) -> dict[str, Any]:
        check_range(start, end, granularity)
        return self._retrying(lambda: self._summary(tenant_id, start, end, granularity, program_id))

    def _program(self, tenant_id: str, program_id: str) -> Program | None:
        return self.config.get_program(tenant_id, program_id)

    def _summary(
        self, tenant_id: str, start: dt.date, end: dt.date, granularity: str, program_id: str | None
    ) -> dict[str, Any]:
        if program_id is not None and self._program(tenant_id, program_id) is None:
            raise NotFound(f"No program {program_id!r} in this tenant.", program_id=program_id)
        spans = periods(start, end, granularity)
        prefix = "D#" if granularity == "day" else "M#"
        first, last = spans[0], spans[-1]

        def wanted(item: Mapping[str, Any]) -> bool:
            return program_id is None or item.get("program_id") == program_id

        # Outstanding before the first period: every month before it, then its month's days before it.
        opening: dict[str, int] = defaultdict(int)
        for item in self.store.counters(tenant_id, "M#", f"M#{first.first.isoformat()[:7]}"):
            if wanted(item) and item["sk"][2:9] < first.first.isoformat()[:7]:
                opening[item["program_id"]] += rules.net_points(item)
        month_start = first.first.replace(day=1)
        if month_start < first.first:
            for item in self.store.counters(tenant_id, f"D#{month_start.isoformat()}", f"D#{first.first.isoformat()}"):
                if wanted(item) and item["sk"][2:12] < first.first.isoformat():
                    opening[item["program_id"]] += rules.net_points(item)
        # The periods' counters: by period, program, tier.
        rows: dict[str, dict[str, dict[str, dict[str, int]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(dict))
        )
        for item in self.store.counters(tenant_id, f"{prefix}{first.key}", f"{prefix}{last.key}~"):
            period = item["sk"][2:].split("#", 1)[0]
            if wanted(item) and first.key <= period <= last.key:
                rules.add_counters(rows[period][item["program_id"]][item.get("tier", "")], item)
        # Open lots by burn date, per program, seen today.
        today = clock.now().date()
        lots: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        since = (today - dt.timedelta(days=AGING_LOOKBACK_DAYS)).isoformat()
        for item in self.store.counters(tenant_id, f"B#{since}", "B#~"):
            if wanted(item) and int(item.get("points", 0)):
                lots[item["program_id"]][item["sk"].split("#")[1]] += int(item["points"])
        program_ids = sorted(
            set(opening) | set(lots) | {p for period in rows.values() for p in period} | set(filter(None, [program_id]))
        )
        programs = {pid: self._program(tenant_id, pid) for pid in program_ids}
        return _assemble(spans, granularity, rows, opening, lots, programs, today, start, end, program_id)


def _money(points: int, program: Program | None) -> dict[str, Any] | None:
    if program is None:
        return None
    return {"amount": points * program.point_value, "currency": program.currency}


def _members(counter: Mapping[str, int]) -> dict[str, Any]:
    enrolled, converted = counter.get("enrolled", 0), counter.get("converted", 0)
    orders, amount = counter.get("orders", 0), counter.get("order_amount", 0)
    return {
        "members": {
            "enrolled": enrolled,
            "active": counter.get("active", 0),
            "repeat_purchase": counter.get("repeat", 0),
            "first_purchase": counter.get("first_purchases", 0),
            "converted": converted,
            "conversion": round(converted / enrolled, 4) if enrolled else None,
        },
        "orders": {"count": orders, "amount": amount, "average": amount // orders if orders else None},
    }


def _assemble(
    spans: list[Period],
    granularity: str,
    rows: Mapping[str, Mapping[str, Mapping[str, dict[str, int]]]],
    opening: Mapping[str, int],
    lots: Mapping[str, Mapping[str, int]],
    programs: Mapping[str, Program | None],
    today: dt.date,
    start: dt.date,
    end: dt.date,
    program_id: str | None,
) -> dict[str, Any]:
    outstanding = dict(opening)
    out_periods = []
    for span in spans:
        by_program = rows.get(span.key, {})
        period_total: dict[str, int] = {}
        program_rows = []
        for pid, program in programs.items():
            tiers = by_program.get(pid, {})
            total: dict[str, int] = {}
            for counter in tiers.values():
                rules.add_counters(total, counter)
            rules.add_counters(period_total, total)
            outstanding[pid] = outstanding.get(pid, 0) + rules.net_points(total)
            program_rows.append(
                {
                    "program_id": pid,
                    "currency": program.currency if program else None,
                    "points": rules.columns(total),
                    "outstanding": {"points": outstanding[pid], "money": _money(outstanding[pid], program)},
                    **_members(total),
                    "tiers": [
                        {"tier": tier, "points": rules.columns(counter), **_members(counter)}
                        for tier, counter in sorted(tiers.items())
                    ],
                }
            )
        out_periods.append(
            {
                "period": span.key,
                "from": span.first.isoformat(),
                "to": span.last.isoformat(),
                "points": rules.columns(period_total),
                "outstanding_points": sum(outstanding.values()),
                "members": _members(period_total)["members"],
                "programs": program_rows,
            }
        )
    liability = []
    for pid, program in programs.items():
        open_lots = lots.get(pid, {})
        points = sum(open_lots.values())
        buckets = rules.aged(open_lots, today)
        liability.append(
            {
                "program_id": pid,
                "currency": program.currency if program else None,
                "points": points,
                "money": _money(points, program),
                "aged": {name: {"points": value, "money": _money(value, program)} for name, value in buckets.items()},
            }
        )
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "granularity": granularity,
        "program_id": program_id,
        "periods": out_periods,
        "liability": {"as_of": today.isoformat(), "programs": liability},
    }


# ------------------------------------------------------------------------------- renderings

CSV_COLUMNS = (
    "period",
    "from",
    "to",
    "program_id",
    "tier",
    "currency",
    *rules.COLUMNS,
    "net",
    "outstanding_points",
    "outstanding_money",
    "enrolled",
    "active",
    "repeat_purchase",
    "first_purchase",
    "converted",
    "conversion",
    "orders",
    "order_amount",
    "average_order",
)


def to_csv(summary: Mapping[str, Any]) -> str:
    """One row per period and program (tier empty) and per period, program and tier; money in
    major units of the program's currency (``1234.50``), points as integers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for period in summary["periods"]:
        for program in period["programs"]:
            code = program["currency"]
            money = program["outstanding"]["money"]
            rows = [(program, "", program["outstanding"]["points"], money)]
            rows += [(tier, tier["tier"], "", None) for tier in program["tiers"]]
            for row, tier, points_out, money_out in rows:
                members, orders = row["members"], row["orders"]
                writer.writerow(
                    [
                        period["period"],
                        period["from"],
                        period["to"],
                        program["program_id"],
                        tier,
                        code or "",
                        *(row["points"][name] for name in rules.COLUMNS),
                        row["points"]["net"],
                        points_out,
                        _major(money_out["amount"], code) if money_out else "",
                        members["enrolled"],
                        members["active"],
                        members["repeat_purchase"],
                        members["first_purchase"],
                        members["converted"],
                        "" if members["conversion"] is None else members["conversion"],
                        orders["count"],
                        _major(orders["amount"], code),
                        "" if orders["average"] is None else _major(orders["average"], code),
                    ]
                )
    return out.getvalue()


def _major(minor: int, code: str | None) -> str:
    digits = currency.MINOR_UNITS.get(code or "", 2)
    if digits == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**digits)
    return f"{sign}{whole}.{part:0{digits}d}"


CHART_COLORS = {
    "issued": (31, 119, 180),
    "redeemed": (44, 160, 44),
    "burned": (214, 39, 40),
    "outstanding": (148, 103, 189),
}


def chart_png(summary: Mapping[str, Any]) -> bytes:
    """Points issued (accrued), redeemed and burned per period (top) and outstanding at each
    period's end (bottom), rendered server-side with ``loyalty.chart``."""
    from loyalty.chart import Panel, Series, line_chart

    spans = summary["periods"]
    labels = [p["period"] for p in spans]
    flows = [
        Series("issued", [p["points"]["accrued"] for p in spans], CHART_COLORS["issued"]),
        Series("redeemed", [p["points"]["redeemed"] for p in spans], CHART_COLORS["redeemed"]),
        Series("burned", [p["points"]["burned"] for p in spans], CHART_COLORS["burned"]),
    ]
    stock = [Series("outstanding", [p["outstanding_points"] for p in spans], CHART_COLORS["outstanding"])]
    legend = [(name, color, False) for name, color in CHART_COLORS.items()]
    return line_chart(
        f"Points, {summary['from']} to {summary['to']}",
        labels,
        [Panel("Issued, redeemed, burned per period (points)", flows), Panel("Outstanding (points)", stock)],
        legend,
    )
