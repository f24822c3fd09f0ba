"""A year of a tenant's activity through a private local stack, and the reports read back over HTTP.

Twelve months of 2031 on a stack started at 1 January (``--now``): members in two programs (the
seeded demo program, whose Silver member becomes Gold, and a program of short-lived points, 20 days,
with two tiers), each month enrolments, purchases, redemptions, holds captured and released,
refunds, adjustments and a test card's purchases and redemptions; the nightly burn burns the short
program's points. Each month travels without firing to the 5th (the activity) and to the evening
of the 24th, then fires only the burn scheduler's 21:30 UTC run (00:30 in Moscow, the demo tenant's
default zone), which catches up every night since its checkpoint and burns the lots due on the
25th. Firing hourly schedules through whole months would take far longer than the test needs.

Then, for every month, ``GET /v1/reports/summary`` equals what ``GET /v1/members/{id}/entries``
says for that month (points by column, outstanding, enrolments, orders, active members; per
program too), the year's request equals the months', the CSV says what the JSON says, and
``/_local/reports`` renders its chart. Finally the nightly reconciliation (fired across its 02:45
UTC schedule) finds nothing, then finds one member whose balance was corrupted directly in
DynamoDB: stored in ``RECON`` / ``RUN#<day>``, counted in ``ReconciliationDrift`` and logged.
"""

from __future__ import annotations

import base64
import calendar
import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
import requests

from loyalty.store import keys
from loyalty.store.burn import BurnStore
from loyalty.store.reports import ReportStore
from tests.e2e.conftest import CURRENCY, Api, new_id
from tests.support.aws import dynamodb_client

pytestmark = pytest.mark.e2e

YEAR = 2031
START = f"{YEAR}-01-01T06:00:00Z"
DEMO = "demo"  # the seeded program (welcome bonus, 365-day points, Silver 3 % / Gold 5 % from 50,000.00)
SHORT = {
    "currency": CURRENCY,
    "tiers": [
        {"name": "Base", "threshold": 0, "accrual_bp": 300},
        {"name": "Plus", "threshold": 10_000_00, "accrual_bp": 500},
    ],
    "max_redeem_share_bp": 5_000,
    "lifetime_days": 20,  # bought on the 5th, burned on the 25th of the same month
}
# The report's point columns and the entry types that make them (loyalty.report_rules.CATEGORIES).
COLUMNS = {
    "accrued": {"accrual", "welcome_bonus", "birthday_bonus", "referral_bonus"},
    "redeemed": {"redemption"},
    "burned": {"burn", "manager_leave_burn"},
    "refunded": {"refund_clawback", "refund_return"},
    "adjusted": {"adjustment"},
}
SHOWN_POSITIVE = {"redeemed", "burned"}


@dataclass
class Year:
    stack: dict[str, Any]
    api: Api  # the shop's key (integration)
    senior: Api  # adjustments, a test card
    admin: Api  # reports
    short: str  # the short program's id
    members: dict[str, str] = field(default_factory=dict)  # member id -> program id
    enrolled: dict[str, str] = field(default_factory=dict)  # member id -> YYYY-MM of its enrolment
    entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def year(start_local_stack: Any) -> Iterator[Year]:
    stack = start_local_stack(args=["--now", START])
    keys_ = stack["tenants"]["demo"]["api_keys"]
    api, senior, admin = Api(stack, keys_["integration"]), Api(stack, keys_["senior"]), Api(stack, keys_["admin"])
    short = new_id("short")
    answer = admin.call("PUT", f"/v1/programs/{short}", json_body={"name": "Short-lived points", **SHORT})
    assert answer.status_code == 201, answer.text
    yield Year(stack, api, senior, admin, short)
    for client in (api, senior, admin):
        client.session.close()


# ---------------------------------------------------------------------------- the stack's clock


def travel(year: Year, to: str, *, fire: bool) -> list[dict[str, Any]]:
    answer = requests.post(year.stack["url"] + "/_local/clock", json={"to": to, "fire": fire}, timeout=900)
    assert answer.status_code == 200, answer.text
    fired = answer.json().get("fired", [])
    assert all(run.get("ok") for run in fired), fired
    return fired


def drain(year: Year) -> None:
    answer = requests.post(year.stack["url"] + "/_local/drain", json={"timeout": 120}, timeout=180)
    assert answer.status_code == 200, answer.text


# ---------------------------------------------------------------------------- a year of activity


def ok(answer: requests.Response) -> dict[str, Any]:
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def enrol(year: Year, program_id: str, month: int) -> str:
    member_id = year.api.enrol(program_id=program_id)
    year.members[member_id] = program_id
    year.enrolled[member_id] = f"{YEAR}-{month:02d}"
    return member_id


def spend(points: int, order_amount: int) -> dict[str, Any]:
    return {"points": points, "order_amount": order_amount, "currency": CURRENCY}


def one_month(year: Year, month: int, cast: dict[str, str], card: str) -> None:
    """The 5th of the month, 12:00 UTC: everything a shop and its staff do, in both programs."""
    api, senior = year.api, year.senior
    a, b, c, d, t = (cast[name] for name in "abcdt")
    newcomer = enrol(year, DEMO, month)  # the welcome bonus comes with it
    short_newcomer = enrol(year, year.short, month)  # no welcome bonus in this program
    # a: a big order (Gold from the third month), part of it paid in points, then a partial refund
    # that takes back earned points and gives back spent ones.
    order = new_id("o")
    api.purchase(a, order, 20_000_00)
    ok(api.post(f"/v1/members/{a}/redemptions", {"order_id": order, **spend(100, 20_000_00)}))
    refund = ok(api.post(f"/v1/members/{a}/refunds", {"refund_id": new_id("f"), "order_id": order, "amount": 5_000_00}))
    assert refund["points_taken_back"] > 0
    # b: a small order, a hold captured at checkout, a goodwill adjustment.
    api.purchase(b, new_id("o"), 1_500_00 + month * 100)
    hold = ok(api.post(f"/v1/members/{b}/holds", {"order_id": new_id("h"), **spend(20, 1_000_00)}))
    ok(api.post(f"/v1/holds/{hold['hold_id']}/capture"))
    body = {"adjustment_id": new_id("adj"), "points": 25, "reason": "goodwill"}
    ok(senior.post(f"/v1/members/{b}/adjustments", body))
    # c (short program, Plus from the second month): a hold released, a redemption, a correction.
    api.purchase(c, new_id("o"), 6_000_00)
    hold = ok(api.post(f"/v1/members/{c}/holds", {"order_id": new_id("h"), **spend(30, 1_000_00)}))
    ok(api.post(f"/v1/holds/{hold['hold_id']}/release"))
    ok(api.post(f"/v1/members/{c}/redemptions", {"order_id": new_id("r"), **spend(50, 1_000_00)}))
    if month % 2 == 0:
        body = {"adjustment_id": new_id("adj"), "points": -10, "reason": "correction"}
        ok(senior.post(f"/v1/members/{c}/adjustments", body))
    # d (short program): an order, half of it refunded; what is left burns on the 25th.
    order = new_id("o")
    api.purchase(d, order, 2_000_00)
    ok(api.post(f"/v1/members/{d}/refunds", {"refund_id": new_id("f"), "order_id": order, "amount": 1_000_00}))
    # t: the test card's purchase and redemption (left out of every report figure).
    ok(api.post(f"/v1/cards/{card}/purchases", {"order_id": new_id("o"), "amount": 3_000_00, "currency": CURRENCY}))
    ok(api.post(f"/v1/cards/{card}/redemptions", {"order_id": new_id("r"), **spend(10, 1_000_00)}))
    # The month's newcomers convert in turn: the demo one in odd months, the short one in even.
    if month % 2:
        api.purchase(newcomer, new_id("o"), 1_000_00)
    else:
        api.purchase(short_newcomer, new_id("o"), 1_000_00)
    if month == 1:
        api.purchase(t, new_id("o"), 500_00)  # t buys once without its card: that one counts


def skip_quiet_nights(year: Year, night: str) -> None:
    """Move every tenant's burn checkpoint to ``night``, so that the scheduler's next run burns the
    next night only instead of catching up every night since the last run. The nights skipped burn
    nothing here (every lot of the short program burns on a 25th, the demo program's a year after
    it was earned; the end of the test proves that no lot was left overdue), but in moto each of
    them costs the scheduler 32 Queries of the due index per tenant, each a scan of the whole table:
    a month of them took a minute."""
    store = BurnStore(year.stack["tables"]["LedgerTable"], dynamodb_client(year.stack["aws_endpoint"]))
    for tenant_id in year.stack["tenants"]:
        store.set_checkpoint(tenant_id, night, f"{night}T21:20:00Z")


def live_the_year(year: Year) -> dict[str, str]:
    cast = {name: enrol(year, DEMO if name in "abt" else year.short, 1) for name in "abcdt"}
    issued = year.senior.post("/v1/cards", {"kind": "virtual", "member_id": cast["t"], "test": True})
    assert issued.status_code == 201, issued.text
    card = issued.json()["card_number"]
    burns_fired = 0
    for month in range(1, 13):
        travel(year, f"{YEAR}-{month:02d}-05T12:00:00Z", fire=False)
        one_month(year, month, cast, card)
        travel(year, f"{YEAR}-{month:02d}-24T21:20:00Z", fire=False)
        skip_quiet_nights(year, f"{YEAR}-{month:02d}-24")
        fired = travel(year, f"{YEAR}-{month:02d}-24T21:40:00Z", fire=True)
        burns_fired += sum(1 for run in fired if run["schedule"].startswith("BurnSchedulerFunction"))
    assert burns_fired == 12
    drain(year)
    assert year.api.member(cast["a"])["tier"] == "Gold"
    assert year.api.member(cast["c"])["tier"] == "Plus"
    for member_id, program_id in year.members.items():  # no lot was left overdue by a skipped night
        expiring = ok(year.api.get(f"/v1/members/{member_id}/expiring"))["expiring"]
        assert all(lot["date"] > f"{YEAR}-12-25" for lot in expiring), (member_id, expiring)
        if program_id == year.short:
            assert expiring == [], (member_id, expiring)
    for member_id in year.members:
        year.entries[member_id] = year.api.balanced(member_id)["entries"]
    return cast


# ---------------------------------------------------------------------------- what the entries say


def month_of(instant: str) -> str:
    return instant[:7]


def expected_month(year: Year, month: str, program_id: str | None = None) -> dict[str, Any]:
    """A month's report figures computed from the members' entries (test-card entries left out)."""
    points = dict.fromkeys(COLUMNS, 0)
    net = outstanding = orders = amount = 0
    active: set[str] = set()
    for member_id, entries in year.entries.items():
        if program_id is not None and year.members[member_id] != program_id:
            continue
        for entry in entries:
            if (entry.get("details") or {}).get("test") is True:
                continue
            if month_of(entry["created_at"]) <= month:
                outstanding += entry["points"]
            if month_of(entry["created_at"]) != month:
                continue
            net += entry["points"]
            for column, types in COLUMNS.items():
                if entry["type"] in types:
                    points[column] += -entry["points"] if column in SHOWN_POSITIVE else entry["points"]
            if entry["type"] in ("accrual", "redemption"):
                active.add(member_id)
            if entry["type"] == "accrual":
                orders += 1
                amount += int(entry["details"]["amount"])
    enrolled = sum(
        1
        for member_id, when in year.enrolled.items()
        if when == month and (program_id is None or year.members[member_id] == program_id)
    )
    return {
        "points": {**points, "net": net},
        "outstanding": outstanding,
        "enrolled": enrolled,
        "active": len(active),
        "orders": (orders, amount),
    }


def reported(points: dict[str, int]) -> dict[str, int]:
    return {name: points[name] for name in (*COLUMNS, "net")}


def summary(year: Year, query: str) -> requests.Response:
    return year.admin.get(f"/v1/reports/summary?{query}")


def months() -> list[tuple[str, str, str]]:
    return [
        (f"{YEAR}-{m:02d}", f"{YEAR}-{m:02d}-01", f"{YEAR}-{m:02d}-{calendar.monthrange(YEAR, m)[1]:02d}")
        for m in range(1, 13)
    ]


# ---------------------------------------------------------------------------- the test


def test_a_year_of_reports_equals_the_entries_and_the_reconciliation_finds_a_corrupted_balance(year: Year) -> None:
    cast = live_the_year(year)
    everything = [e for entries in year.entries.values() for e in entries]
    types = {e["type"] for e in everything}
    assert {"accrual", "welcome_bonus", "redemption", "burn", "refund_clawback", "refund_return"} <= types
    assert {"adjustment", "tier_change"} <= types
    assert any((e.get("details") or {}).get("test") is True for e in everything)  # the test card's

    # Every month: the report equals the entries, for the tenant and for each program.
    by_month = {}
    for key, first, last in months():
        answer = summary(year, f"granularity=month&from={first}&to={last}")
        assert answer.status_code == 200, answer.text
        report = answer.json()
        [period] = report["periods"]
        assert (period["period"], period["from"], period["to"]) == (key, first, last)
        want = expected_month(year, key)
        assert reported(period["points"]) == want["points"], key
        assert period["outstanding_points"] == want["outstanding"], key
        assert period["members"]["enrolled"] == want["enrolled"] == (7 if key.endswith("-01") else 2), key
        assert period["members"]["active"] == want["active"], key
        rows = {row["program_id"]: row for row in period["programs"]}
        assert set(rows) == {DEMO, year.short}, key
        for program_id, row in rows.items():
            want = expected_month(year, key, program_id)
            assert reported(row["points"]) == want["points"], (key, program_id)
            assert row["outstanding"]["points"] == want["outstanding"], (key, program_id)
            assert row["outstanding"]["money"] == {"amount": want["outstanding"] * 100, "currency": CURRENCY}
            assert row["members"]["enrolled"] == want["enrolled"], (key, program_id)
            assert row["members"]["active"] == want["active"], (key, program_id)
            assert (row["orders"]["count"], row["orders"]["amount"]) == want["orders"], (key, program_id)
        assert period["points"]["burned"] > 0 and rows[year.short]["points"]["burned"] > 0, key
        by_month[key] = period
    tiers = {(row["program_id"], t["tier"]) for p in by_month.values() for row in p["programs"] for t in row["tiers"]}
    assert {(DEMO, "Silver"), (DEMO, "Gold"), (year.short, "Base"), (year.short, "Plus")} <= tiers

    # The year in one request says what the twelve months say.
    whole = summary(year, f"granularity=month&from={YEAR}-01-01&to={YEAR}-12-31")
    assert whole.status_code == 200, whole.text
    assert {p["period"]: p for p in whole.json()["periods"]} == by_month
    liability = {row["program_id"]: row for row in whole.json()["liability"]["programs"]}
    open_points = defaultdict(int)
    for member_id, program_id in year.members.items():
        open_points[program_id] += sum(
            lot["points"] for lot in ok(year.api.get(f"/v1/members/{member_id}/expiring"))["expiring"]
        )
    assert {pid: row["points"] for pid, row in liability.items()} == dict(open_points)
    assert all(sum(b["points"] for b in row["aged"].values()) == row["points"] for row in liability.values())

    # CSV says what JSON says: one row per period and program (tier empty), its tiers adding up.
    answer = summary(year, f"granularity=month&from={YEAR}-01-01&to={YEAR}-12-31&format=csv")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/csv")
    assert f'filename="loyalty-report-{YEAR}-01-01-{YEAR}-12-31.csv"' in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    program_rows = {(r["period"], r["program_id"]): r for r in rows if not r["tier"]}
    assert len(program_rows) == 24
    for key, period in by_month.items():
        for program in period["programs"]:
            row = program_rows[(key, program["program_id"])]
            assert {name: int(row[name]) for name in (*COLUMNS, "net")} == reported(program["points"])
            assert int(row["outstanding_points"]) == program["outstanding"]["points"]
            assert row["outstanding_money"] == f"{program['outstanding']['points']}.00"
            assert int(row["enrolled"]) == program["members"]["enrolled"]
            assert int(row["orders"]) == program["orders"]["count"]
            tiers = [r for r in rows if r["period"] == key and r["program_id"] == program["program_id"] and r["tier"]]
            assert {r["tier"] for r in tiers} == {t["tier"] for t in program["tiers"]}
            for name in (*COLUMNS, "net"):
                assert sum(int(r[name]) for r in tiers) == int(row[name]), (key, program["program_id"], name)

    # The local page: the same report with its chart, a PNG rendered server-side.
    page = requests.get(
        year.stack["url"] + f"/_local/reports?granularity=month&from={YEAR}-01-01&to={YEAR}-12-31", timeout=60
    )
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    found = re.search(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page.text)
    assert found, page.text[:500]
    assert base64.b64decode(found.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert f"{YEAR}-12" in page.text

    reconcile(year, cast["a"])


# ---------------------------------------------------------------------------- the reconciliation


def reconcile_at(year: Year, day: date) -> dict[str, Any]:
    """Fire the reconciliation's 02:45 UTC run of ``day``; answers what it stored."""
    travel(year, f"{day.isoformat()}T02:40:00Z", fire=False)
    fired = travel(year, f"{day.isoformat()}T02:50:00Z", fire=True)
    assert [run["schedule"].split(".")[0] for run in fired] == ["ReconcileFunction"], fired
    store = ReportStore(year.stack["tables"]["LedgerTable"], dynamodb_client(year.stack["aws_endpoint"]))
    result = store.run(day.isoformat())
    assert result is not None, f"no RECON / RUN#{day}"
    return result


def drift_logged(year: Year) -> list[tuple[int, list[dict[str, Any]]]]:
    """From the stack's console (the functions' stdout): each reconciliation's ReconciliationDrift
    metric (Embedded Metric Format) and, for a run with drift, the members its error log names."""
    runs: list[tuple[int, list[dict[str, Any]]]] = []
    members: list[dict[str, Any]] = []
    with open(year.stack["console_log"], encoding="utf-8", errors="replace") as console:
        for line in console:
            start = line.find("{")
            if start < 0:
                continue
            try:
                record = json.loads(line[start:])
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if record.get("message") == "the books do not balance":
                members = record["members"]
            if "ReconciliationDrift" in record and "_aws" in record:
                value = record["ReconciliationDrift"]  # Powertools writes a list of values
                runs.append((int(sum(value) if isinstance(value, list) else value), members))
                members = []
    return runs


def reconcile(year: Year, corrupted: str) -> None:
    # A clean year: every member adds up, and the counters equal the ledger day by day.
    clean = reconcile_at(year, date(YEAR, 12, 30))
    assert clean["members_checked"] == len(year.members)
    assert clean["entries_checked"] == sum(len(entries) for entries in year.entries.values())
    assert (clean["drift"], clean["members"], clean["counter_drift"], clean["lot_counter_drift"]) == (0, [], [], [])

    # One member's balance, corrupted in DynamoDB behind the ledger's back.
    client = dynamodb_client(year.stack["aws_endpoint"])
    before = year.api.member(corrupted)["balance"]
    client.update_item(
        TableName=year.stack["tables"]["LedgerTable"],
        Key={"pk": {"S": keys.member_pk("demo", corrupted)}, "sk": {"S": keys.MEMBER_SK}},
        UpdateExpression="ADD balance :seven",
        ExpressionAttributeValues={":seven": {"N": "7"}},
    )
    assert year.api.member(corrupted)["balance"] == before + 7
    found = reconcile_at(year, date(YEAR, 12, 31))
    assert found["drift"] == found["drifting_members"] == 1
    [member] = found["members"]
    assert (member["tenant_id"], member["member_id"]) == ("demo", corrupted)
    assert f"'balance': {before + 7}, 'entries': {before}," in member["why"], member
    assert (found["counter_drift"], found["lot_counter_drift"]) == ([], [])  # the counters still equal the ledger

    # The metric of the alarm, and the log naming the member.
    runs = drift_logged(year)
    assert [drift for drift, _ in runs[-2:]] == [0, 1], runs
    assert [(m["tenant_id"], m["member_id"]) for m in runs[-1][1]] == [("demo", corrupted)]
