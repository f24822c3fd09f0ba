"""Reports against moto: ledger operations, their stream records applied by the reports consumer
(each twice, as a redelivery would), the summary read back, and the reconciliation.

The stream is read from moto and handed to the reports function's handler as Lambda would, so
the filter-free path (records the consumer ignores) is exercised too.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import boto3
import pytest

from loyalty import report_rules
from loyalty.admin import DEMO_PROGRAM, DEMO_TENANT
from loyalty.cards import Cards
from loyalty.members import enrol
from loyalty.models import Profile
from loyalty.reconcile import Reconciliation
from loyalty.reports import Reports
from loyalty.store import dynamo, keys
from loyalty.store.cards import CardStore
from loyalty.store.reports import ReportStore
from tests.support.aws import REGION, ROOT
from tests.support.functions import load_app

APP = ROOT / "functions" / "reports" / "app.py"


class Stream:
    """Every record of the ledger table's stream so far, from the last position read."""

    def __init__(self, endpoint: str, client: Any, table: str) -> None:
        self.streams = boto3.client(
            "dynamodbstreams",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self.seen = 0

    def new_records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for shard in self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]:
            iterator = self.streams.get_shard_iterator(
                StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                records += page["Records"]
                if not page["Records"]:
                    break
                iterator = page.get("NextShardIterator")
        fresh, self.seen = records[self.seen :], len(records)
        return fresh


@pytest.fixture
def reporting(world, moto_endpoint, monkeypatch):
    table = world.tables["LedgerTable"]
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Loyalty")
    app = load_app(APP)
    store = ReportStore(table, world.client)
    monkeypatch.setattr(app, "consumer", lambda: app.Consumer(store))
    stream = Stream(moto_endpoint, world.client, table)

    def pump(times: int = 2) -> None:
        records = stream.new_records()
        for _ in range(times):  # every record delivered twice: the second changes nothing
            for start in range(0, len(records), 50):
                answer = app.handler({"Records": records[start : start + 50]}, _Context())
                assert answer == {"batchItemFailures": []}

    return pump, Reports(store, world.stores.config), store


class _Context:
    function_name = "ReportsFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ReportsFunction"
    aws_request_id = "req-1"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def entries_by_type(world, members: list[str]) -> dict[str, int]:
    """What the entries say: points by report column, test-card entries left out."""
    sums: dict[str, int] = defaultdict(int)
    for member_id in members:
        for entry in world.stores.ledger.all_entries(DEMO_TENANT, member_id):
            if not (entry.details or {}).get("test"):
                sums[report_rules.category(entry.type)] += entry.points
    return dict(sums)


def activity(world, fake_clock) -> list[str]:
    ledger, actor = world.ledger, world.actor
    members = ["rep-a", "rep-b", "rep-c"]
    for member_id in members:
        enrol(world.stores, DEMO_TENANT, member_id, Profile(program_id=DEMO_PROGRAM))
    ledger.accrue(actor, "rep-a", order_id="a1", amount=200_000, currency_code="RUB", occurred_at=None)
    ledger.accrue(actor, "rep-a", order_id="a2", amount=100_000, currency_code="RUB", occurred_at=None)
    ledger.accrue(actor, "rep-b", order_id="b1", amount=50_000, currency_code="RUB", occurred_at=None)
    fake_clock.advance(days=1)
    ledger.redeem(actor, "rep-a", order_id="a3", points=30, order_amount=100_000, currency_code="RUB")
    ledger.refund(actor, "rep-a", refund_id="r1", order_id="a1", amount=100_000)
    ledger.adjust(actor, "rep-b", adjustment_id="adj1", points=-5, reason="typo")
    cards = Cards(world.stores, CardStore(world.tables["LedgerTable"], world.client))
    card = cards.issue(actor, kind="virtual", member_id="rep-c", test=True)
    cards.accrue(actor, card.card_number, order_id="t1", amount=300_000, currency_code="RUB", occurred_at=None)
    return members


def test_counters_equal_the_entries_and_redelivery_adds_nothing(world, fake_clock, reporting):
    pump, reports, _ = reporting
    start = fake_clock.now().date()
    members = activity(world, fake_clock)
    pump()
    day = reports.summary(DEMO_TENANT, start=start, end=start + dt.timedelta(days=1), granularity="day")
    want = entries_by_type(world, members)
    got: dict[str, int] = defaultdict(int)
    for period in day["periods"]:
        for column in report_rules.COLUMNS:
            sign = -1 if column in report_rules.DEBIT_COLUMNS else 1
            got[column] += sign * period["points"][column]
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}
    first, second = day["periods"]
    assert (first["members"]["enrolled"], second["members"]["enrolled"]) == (3, 0)
    assert (first["members"]["active"], second["members"]["active"]) == (2, 1)  # rep-c's test purchase: not
    balances = sum(world.stores.ledger.snapshot(DEMO_TENANT, m).account.balance for m in members)
    test_points = sum(
        e.points for e in world.stores.ledger.all_entries(DEMO_TENANT, "rep-c") if (e.details or {}).get("test")
    )
    assert second["outstanding_points"] == balances - test_points > 0
    # A month report says the same as its days.
    month = reports.summary(DEMO_TENANT, start=start, end=start, granularity="month")
    assert month["periods"][0]["points"]["net"] == sum(p["points"]["net"] for p in day["periods"])
    # The open liability is the members' lots, every point of it (test points included, see DECISIONS).
    lots = sum(lot.remaining for m in members for lot in world.stores.ledger.lots(DEMO_TENANT, m))
    assert sum(p["points"] for p in day["liability"]["programs"]) == lots
    assert sum(v["points"] for p in day["liability"]["programs"] for v in p["aged"].values()) == lots


def test_member_counts_by_program_and_tier(world, fake_clock, reporting):
    pump, reports, _ = reporting
    start = fake_clock.now().date()
    activity(world, fake_clock)
    pump()
    month = reports.summary(DEMO_TENANT, start=start, end=start, granularity="month", program_id=DEMO_PROGRAM)
    (period,) = month["periods"]
    members = period["members"]
    assert members["enrolled"] == 3
    assert members["first_purchase"] == 2  # rep-a and rep-b; rep-c bought through a test card only
    assert members["converted"] == 2 and members["conversion"] == round(2 / 3, 4)
    assert members["repeat_purchase"] == 1  # rep-a's second order
    assert members["active"] == 2
    (program,) = period["programs"]
    assert program["orders"] == {"count": 3, "amount": 350_000, "average": 350_000 // 3}
    assert sum(t["members"]["enrolled"] for t in program["tiers"]) == 3


def test_bad_ranges_and_unknown_programs_are_refused(world, reporting):
    _, reports, _ = reporting
    from loyalty.errors import InvalidRequest, NotFound

    today = dt.date(2026, 11, 23)
    with pytest.raises(InvalidRequest, match="after"):
        reports.summary(DEMO_TENANT, start=today, end=today - dt.timedelta(days=1))
    with pytest.raises(InvalidRequest, match="366"):
        reports.summary(DEMO_TENANT, start=today - dt.timedelta(days=400), end=today, granularity="day")
    with pytest.raises(InvalidRequest, match="24 months"):
        reports.summary(DEMO_TENANT, start=dt.date(2020, 1, 1), end=today, granularity="month")
    with pytest.raises(NotFound):
        reports.summary(DEMO_TENANT, start=today, end=today, program_id="nope")


def test_reconciliation_finds_a_corrupted_balance_and_a_corrupted_counter(world, fake_clock, reporting):
    pump, _, store = reporting
    activity(world, fake_clock)
    pump()
    job = Reconciliation(world.tables["LedgerTable"], world.client, segments=3)
    today = fake_clock.now().date() + dt.timedelta(days=1)
    clean = job.run(today)
    assert clean["drift"] == 0, clean
    assert clean["members_checked"] == 3 and clean["items_read"] > 0
    table = world.tables["LedgerTable"]
    world.client.update_item(
        TableName=table,
        Key=dynamo.marshal({"pk": keys.member_pk(DEMO_TENANT, "rep-b"), "sk": keys.MEMBER_SK}),
        UpdateExpression="ADD balance :one",
        ExpressionAttributeValues=dynamo.values({":one": 1}),
    )
    counter = next(store.counters(DEMO_TENANT, "D#", "D#~"))
    world.client.update_item(
        TableName=table,
        Key=dynamo.marshal({"pk": counter["pk"], "sk": counter["sk"]}),
        UpdateExpression="ADD p_accrual :one",
        ExpressionAttributeValues=dynamo.values({":one": 1}),
    )
    found = job.run(today)
    assert [(m["tenant_id"], m["member_id"]) for m in found["members"]] == [(DEMO_TENANT, "rep-b")]
    assert len(found["counter_drift"]) == 1 and found["drift"] == 2
    job.record(found)
    assert store.run(today.isoformat())["members"][0]["member_id"] == "rep-b"


def _shift_lot_counter(world, counter: dict, points: int) -> None:
    world.client.update_item(
        TableName=world.tables["LedgerTable"],
        Key=dynamo.marshal({"pk": counter["pk"], "sk": counter["sk"]}),
        UpdateExpression="ADD points :p",
        ExpressionAttributeValues=dynamo.values({":p": points}),
    )


def test_a_lot_counter_read_apart_from_its_lots_during_the_scan_is_no_drift(world, fake_clock, reporting):
    pump, _, store = reporting
    members = activity(world, fake_clock)
    pump()
    counter = next(store.counters(DEMO_TENANT, "B#", "B#~"))
    burn_date = counter["sk"].split("#")[1]
    lots = sum(lot.remaining for m in members for lot in world.stores.ledger.lot(DEMO_TENANT, m, burn_date))
    assert store.lot_counter(DEMO_TENANT, burn_date) == lots > 0
    job = Reconciliation(world.tables["LedgerTable"], world.client, segments=2)
    today = fake_clock.now().date() + dt.timedelta(days=1)
    # The Scan sees the counter 5 points off its lots (a lot changed between the two reads); by the
    # consistent second look the stream has caught up: nothing to report.
    _shift_lot_counter(world, counter, 5)
    transient = job.run(today, recheck_wait=lambda: _shift_lot_counter(world, counter, -5))
    assert (transient["lot_suspects"], transient["lot_counter_drift"], transient["drift"]) == (1, [], 0)
    # A difference that stays through every second look is drift, with the figures read last.
    _shift_lot_counter(world, counter, 5)
    waits = []
    found = job.run(today, recheck_wait=lambda: waits.append(1))
    assert found["lot_counter_drift"] == [
        {"tenant_id": DEMO_TENANT, "burn_date": burn_date, "lots": lots, "counters": lots + 5}
    ]
    assert found["drift"] == 1 and found["members"] == [] and found["counter_drift"] == []
    assert len(waits) == 3  # once before the second looks, then between the three rounds
