"""The nightly reconciliation: proof that the books balance, member by member, and that the report
counters equal the ledger.

One parallel Scan of the ledger table (``segments`` segments, a thread each; a Scan segment holds
whole partitions, so a member's items all come to the same thread) reads every member item,
entry, lot, report state and counter once, eventually consistent. From it:

* **members**: ``balance == sum(entries) == sum(open lots) - lot_debt``, every entry's
  ``balance_after`` chained, and the reports consumer's copy of the member's lots equal to its
  lots. A Scan is no snapshot (a member written while it runs may look out of balance), so every
  member that fails is checked again with consistent reads (``ledger.check_invariant``): only a
  member that fails again is drift;
* **entry counters**: per tenant, program, UTC day and entry type, the points of the entries equal
  the day counters (``D#...``, every shard and tier), for the days before the run's day (today's
  are still being written);
* **lot counters**: per tenant and burn date, the open lots equal the ``B#...`` counters. A lot
  changed while the Scan ran (read before the change, its counter after, or the other way round)
  differs for a moment: every burn date that fails is checked again after the same wait, its lots
  read consistently (the members the Scan saw with a lot there, and those the burn's due index
  lists for that date) against its counters (a consistent Query per shard), up to
  ``LOT_RECHECKS`` times; only a difference that stays is drift.

What drifts is stored (``RECON`` / ``RUN#<day>``: tenant and member ids, figures; no personal
data), logged and counted by the caller (a metric with an alarm). Read cost: the table once,
eventually consistent (about half a read unit per 4 KB; docs/PERFORMANCE.md).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from loyalty import report_rules as rules
from loyalty.errors import NotFound
from loyalty.ledger import check_invariant
from loyalty.reports import entry_of_item
from loyalty.store import dynamo, keys
from loyalty.store.burn import BurnStore
from loyalty.store.ledger import LedgerStore
from loyalty.store.reports import STATE_SK, ReportStore

# The Scan's own client: a page is up to 1 MB read from the whole table, not a call that answers in
# milliseconds, so dynamo.CLIENT_CONFIG's 2-second read timeout (sized for the API) is too short
# for it on a busy table (it failed the run on a loaded local stack); a nightly job may wait.
SCAN_CLIENT_CONFIG = dynamo.CLIENT_CONFIG.merge(
    Config(read_timeout=60, retries={"mode": "standard", "max_attempts": 5})
)
MAX_LISTED = 1000  # members named in one run's record (the count is always exact)
LOT_RECHECKS = 3  # consistent re-reads of a burn date whose lots and counters differ


@dataclass
class _Member:
    balance: int | None = None
    lot_debt: int = 0
    entries: list[tuple[int, int, int]] = field(default_factory=list)  # seq, points, balance_after
    lots: dict[str, int] = field(default_factory=dict)
    state_lots: dict[str, int] | None = None


@dataclass
class _Segment:
    members: dict[str, _Member] = field(default_factory=lambda: defaultdict(_Member))
    ledger: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    counters: dict[tuple[str, str, str], dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    lots: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    lot_counters: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    lot_members: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    items: int = 0
    pages: int = 0
    read_units: float = 0.0


def _add(into: dict[str, int], attr: str, value: int) -> None:
    into[attr] = into.get(attr, 0) + value


def _read(segment: _Segment, item: dict[str, Any], before_day: str) -> None:
    pk, sk = item["pk"], item["sk"]
    if "#M#" in pk:
        tenant_id, member_id = keys.parse_member_pk(pk)
        member = segment.members[pk]
        if sk == keys.MEMBER_SK:
            member.balance, member.lot_debt = int(item.get("balance", 0)), int(item.get("lot_debt", 0))
        elif sk.startswith("E#"):
            entry = entry_of_item(item)
            member.entries.append((entry.seq, entry.points, int(item["balance_after"])))
            if entry.day < before_day:
                attr = rules.points_attr(entry.type, test=entry.test)
                _add(segment.ledger[(tenant_id, entry.program_id, entry.day)], attr, entry.points)
        elif sk.startswith("L#"):
            member.lots[sk[2:]] = int(item["remaining"])
            segment.lots[(tenant_id, sk[2:])] += int(item["remaining"])
            segment.lot_members[(tenant_id, sk[2:])].add(member_id)
        elif sk == STATE_SK:
            state = rules.MemberState.from_dict(json.loads(item["state"]), int(item["version"]))
            member.state_lots = {day: remaining for day, (remaining, _) in state.lots.items()}
            for day in member.state_lots:
                segment.lot_members[(tenant_id, day)].add(member_id)
    elif "#RPT#" in pk:
        tenant_id = pk[2:].rsplit("#RPT#", 1)[0]
        if sk.startswith("D#"):
            day = sk[2:12]
            if day < before_day:
                row = segment.counters[(tenant_id, item["program_id"], day)]
                for attr, value in item.items():
                    if attr.startswith(("p_", "x_")):
                        _add(row, attr, int(value))
        elif sk.startswith("B#"):
            segment.lot_counters[(tenant_id, sk.split("#")[1])] += int(item.get("points", 0))


def _scan(client: Any, table: str, segment_no: int, total: int, before_day: str) -> _Segment:
    segment = _Segment()
    kwargs: dict[str, Any] = {
        "TableName": table,
        "Segment": segment_no,
        "TotalSegments": total,
        "ReturnConsumedCapacity": "TOTAL",
    }
    while True:
        page = client.scan(**kwargs)
        segment.pages += 1
        segment.read_units += float((page.get("ConsumedCapacity") or {}).get("CapacityUnits", 0))
        for raw in page["Items"]:
            segment.items += 1
            _read(segment, dynamo.unmarshal(raw), before_day)
        if "LastEvaluatedKey" not in page:
            return segment
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@cache
def scan_client() -> Any:
    """This process's client for the Scan (``SCAN_CLIENT_CONFIG``), made on first use."""
    return boto3.client("dynamodb", config=SCAN_CLIENT_CONFIG)


def _nonzero(row: dict[str, int]) -> dict[str, int]:
    return {attr: value for attr, value in row.items() if value}


def member_problem(member: _Member) -> str | None:
    """Why a member's figures (as scanned) do not add up, or None."""
    if member.balance is None:
        return None  # a partition without its member item (a hold, say): nothing to prove
    running, chained = 0, True
    for _, points, balance_after in sorted(member.entries):
        running += points
        chained = chained and balance_after == running
    lots = sum(member.lots.values())
    if not member.balance == running == lots - member.lot_debt:
        return f"balance {member.balance}, entries {running}, lots {lots}, lot_debt {member.lot_debt}"
    if not chained:
        return "entries' balance_after do not chain"
    if member.state_lots is not None and member.state_lots != {d: r for d, r in member.lots.items() if r}:
        return "the reports' copy of the lots differs from the lots"
    return None


class Reconciliation:
    def __init__(self, table: str, client: Any | None = None, *, segments: int = 4) -> None:
        self.table = table
        self._client = client
        self.ledger = LedgerStore(table, client)
        self.reports = ReportStore(table, client)
        self.burns = BurnStore(table, client)
        self.segments = segments

    @property
    def client(self) -> Any:
        return self.ledger.client

    @property
    def scan_client(self) -> Any:
        return self._client or scan_client()

    def run(self, today: dt.date, *, recheck_wait: Callable[[], None] = lambda: None) -> dict[str, Any]:
        before_day = today.isoformat()
        with ThreadPoolExecutor(max_workers=self.segments) as pool:
            parts = list(
                pool.map(
                    lambda n: _scan(self.scan_client, self.table, n, self.segments, before_day), range(self.segments)
                )
            )
        members: dict[str, _Member] = {}
        ledger: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
        counters: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
        lots: dict[tuple[str, str], int] = defaultdict(int)
        lot_counters: dict[tuple[str, str], int] = defaultdict(int)
        lot_members: dict[tuple[str, str], set[str]] = defaultdict(set)
        for part in parts:
            members.update(part.members)
            for target, source in ((ledger, part.ledger), (counters, part.counters)):
                for key, row in source.items():
                    for attr, value in row.items():
                        _add(target[key], attr, value)
            for key, value in part.lots.items():
                lots[key] += value
            for key, value in part.lot_counters.items():
                lot_counters[key] += value
            for key, ids in part.lot_members.items():
                lot_members[key] |= ids
        suspects = {pk: why for pk, member in members.items() if (why := member_problem(member))}
        lot_suspects = sorted(k for k in set(lots) | set(lot_counters) if lots[k] != lot_counters[k])
        if suspects or lot_suspects:
            recheck_wait()  # let the stream catch up with writes made while the Scan ran
        drifting = []
        for pk in sorted(suspects):
            tenant_id, member_id = keys.parse_member_pk(pk)
            still = self._recheck(tenant_id, member_id)
            if still:
                drifting.append({"tenant_id": tenant_id, "member_id": member_id, "why": still})
        counter_drift = [
            {
                "tenant_id": t,
                "program_id": p,
                "day": d,
                "ledger": _nonzero(ledger[k]),
                "counters": _nonzero(counters[k]),
            }
            for k in sorted(set(ledger) | set(counters))
            for t, p, d in [k]
            if _nonzero(ledger[k]) != _nonzero(counters[k])
        ]
        lot_drift = self._recheck_lots(lot_suspects, lot_members, recheck_wait)
        return {
            "day": before_day,
            "members_checked": sum(1 for m in members.values() if m.balance is not None),
            "entries_checked": sum(len(m.entries) for m in members.values()),
            "items_read": sum(p.items for p in parts),
            "scan_pages": sum(p.pages for p in parts),
            "read_units": sum(p.read_units for p in parts),
            "segments": self.segments,
            "suspects": len(suspects),
            "lot_suspects": len(lot_suspects),
            "drifting_members": len(drifting),
            "members": drifting[:MAX_LISTED],
            "counter_drift": counter_drift[:MAX_LISTED],
            "lot_counter_drift": lot_drift[:MAX_LISTED],
            "drift": len(drifting) + len(counter_drift) + len(lot_drift),
        }

    def _recheck(self, tenant_id: str, member_id: str) -> str | None:
        """The member read again, consistently: why it still does not add up, or None."""
        try:
            dynamo.with_retries(lambda: check_invariant(self.ledger, tenant_id, member_id))
        except NotFound:
            return None
        except AssertionError as error:
            return str(error)
        state = dynamo.with_retries(lambda: self.reports.state(tenant_id, member_id))
        if state is not None:
            actual = {lot.burn_date: lot.remaining for lot in self.ledger.lots(tenant_id, member_id)}
            copied = {day: remaining for day, (remaining, _) in state.lots.items()}
            if actual != copied:
                return "the reports' copy of the lots differs from the lots"
        return None

    def _recheck_lots(
        self,
        suspects: list[tuple[str, str]],
        scanned: dict[tuple[str, str], set[str]],
        wait: Callable[[], None],
    ) -> list[dict[str, Any]]:
        """The burn dates whose open lots and counters, read again consistently, still differ after
        ``LOT_RECHECKS`` rounds (``wait`` between rounds), with the last figures read."""
        pending, figures = list(suspects), {}
        for attempt in range(LOT_RECHECKS):
            if attempt:
                wait()
            figures = {key: self._lot_figures(*key, scanned.get(key, set())) for key in pending}
            pending = [key for key in pending if figures[key]["lots"] != figures[key]["counters"]]
            if not pending:
                break
        return [{"tenant_id": t, "burn_date": d, **figures[(t, d)]} for t, d in pending]

    def _lot_figures(self, tenant_id: str, burn_date: str, scanned: set[str]) -> dict[str, int]:
        """A burn date's open lots (of the members the Scan saw there, and of those the due index
        lists for the date: a lot made after the Scan passed its member) and its counters."""
        indexed = dynamo.with_retries(
            lambda: [m for shard in range(keys.DUE_SHARDS) for m in self.burns.due_members(tenant_id, burn_date, shard)]
        )
        lot_points = sum(
            lot.remaining
            for member_id in sorted(scanned | set(indexed))
            for lot in dynamo.with_retries(lambda m=member_id: self.ledger.lot(tenant_id, m, burn_date))
        )
        counted = dynamo.with_retries(lambda: self.reports.lot_counter(tenant_id, burn_date))
        return {"lots": lot_points, "counters": counted}

    def record(self, result: dict[str, Any]) -> None:
        self.reports.put_run(result["day"], result)
