"""The touches job against DynamoDB and SQS (moto): the hourly runs over 120 days with a fake clock
decide exactly the welcome chain's and the digests' records, on their days; a rerun decides nothing
new; a run that crashes between a decision and the marker's move is resumed by the next; an outage
overtakes stale steps; a tenant's own intervals; an erased member gets nothing more; the backfill
of members enrolled before the markers existed."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import boto3
import pytest

from loyalty import touches
from loyalty.admin import DEMO_TENANT, OTHER_TENANT
from loyalty.members import enrol, erase
from loyalty.messaging.sending import Decider, SendQueue
from loyalty.models import Profile, TenantSettings
from loyalty.settings import SendingSettings
from loyalty.store import dynamo, keys
from loyalty.store.sends import SendStore
from loyalty.store.touches import TouchStore
from tests.support.aws import REGION

HOUR = dt.timedelta(hours=1)
# The 120 days are run every six hours (480 runs, about a minute against moto): the hourly
# schedule's runs in between find nothing due, as the reruns below show.
STEP = dt.timedelta(hours=6)
DEFAULT_DAYS = [1, 3, 7, 14, 39, 64, 89, 104, 118]


@pytest.fixture
def decider(world, moto_endpoint) -> Decider:
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    url = sqs.create_queue(QueueName=f"send-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    table = world.tables["LedgerTable"]
    return Decider(SendStore(table, world.client), SendQueue(url, sqs), SendingSettings())


def job(world, decider: Decider) -> touches.Job:
    return touches.Job.for_tables(
        world.tables["LedgerTable"], world.tables["ConfigTable"], world.client, decide=decider.decide
    )


def run(world, decider, fake_clock, at: dt.datetime) -> touches.Summary:
    fake_clock.moment = at
    return job(world, decider).run(at)


def member(world, tenant_id: str = DEMO_TENANT) -> str:
    member_id = f"t-{uuid.uuid4().hex[:10]}"
    enrol(world.stores, tenant_id, member_id, Profile(email=f"{member_id}@example.com"))
    return member_id


def records(world, tenant_id: str, member_id: str) -> list[dict[str, Any]]:
    items = world.stores.ledger.query_all(keys.member_pk(tenant_id, member_id), keys.SEND_PREFIX, consistent=True)
    return sorted(items, key=lambda item: item["decided_at"])


def days_and_kinds(world, tenant_id: str, member_id: str) -> list[tuple[int, str]]:
    enrolled = world.stores.ledger.get_member(tenant_id, member_id).enrolled_at
    found = []
    for item in records(world, tenant_id, member_id):
        decided = dt.datetime.fromisoformat(item["decided_at"].replace("Z", "+00:00"))
        found.append((touches.day_at(enrolled, decided), item["kind"]))
    return found


def expected(days: list[int]) -> list[tuple[int, str]]:
    return [(day, touches.kind_of(day)) for day in days]


def hourly(start: dt.datetime, end: dt.datetime, step: dt.timedelta = HOUR):
    at = start.replace(minute=10, second=0, microsecond=0)
    while at <= end:
        yield at
        at += step


def test_runs_over_120_days_decide_exactly_the_chain_and_the_digests(world, decider, fake_clock) -> None:
    start = fake_clock.moment
    first = member(world)
    fake_clock.advance(hours=7, minutes=33)
    second = member(world)
    # The other tenant runs a 20-day chain and a 7-day digest.
    world.stores.config.put_tenant_settings(
        OTHER_TENANT, TenantSettings(chain_interval_days=20, digest_interval_days=7)
    )
    third = member(world, OTHER_TENANT)
    erased = member(world)

    decided = 0
    for at in hourly(start, start + dt.timedelta(days=121), STEP):
        if at == start.replace(minute=10) + dt.timedelta(days=5):  # after day 3, before day 7
            erase(world.stores, world.actor, erased, reason="asked", audit_table=world.tables["ConfigTable"])
        summary = run(world, decider, fake_clock, at)
        decided += summary.decided

    assert days_and_kinds(world, DEMO_TENANT, first) == expected(DEFAULT_DAYS)
    assert days_and_kinds(world, DEMO_TENANT, second) == expected(DEFAULT_DAYS)
    other_days = [1, 3, 7, 14, 34, 54, 74, 97, 104, 111, 118]
    assert days_and_kinds(world, OTHER_TENANT, third) == expected(other_days)
    assert [kind for _, kind in days_and_kinds(world, DEMO_TENANT, erased)] == ["welcome_day1", "welcome_day3"]
    assert decided == 2 * len(DEFAULT_DAYS) + len(other_days) + 2

    # Each decision at the first run after its day began (day 1: the first run after enrolment).
    enrolled = world.stores.ledger.get_member(DEMO_TENANT, first).enrolled_at
    for item in records(world, DEMO_TENANT, first):
        late = dt.datetime.fromisoformat(item["decided_at"].replace("Z", "+00:00")) - enrolled
        assert late % dt.timedelta(days=1) < STEP
    assert [r["reference"] for r in records(world, DEMO_TENANT, first)][:2] == ["chain#1", "chain#3"]
    digest = records(world, DEMO_TENANT, first)[-1]
    assert digest["kind"] == "digest" and digest["category"] == "marketing"
    assert digest["data"]["next_expiry"]["points"] == 100  # the demo program's welcome bonus
    assert digest["data"]["entries"] == []  # nothing happened in the statement's period

    # A rerun decides nothing new; the erased member's marker is gone.
    again = run(world, decider, fake_clock, fake_clock.moment)
    assert (again.due, again.decided) == (0, 0)
    marker = world.client.get_item(
        TableName=world.tables["LedgerTable"],
        Key=dynamo.marshal({"pk": keys.member_pk(DEMO_TENANT, erased), "sk": keys.TOUCH_SK}),
    )
    assert "Item" not in marker


def test_a_crash_between_decision_and_move_is_resumed_by_the_next_run(world, decider, fake_clock, monkeypatch) -> None:
    members = [member(world) for _ in range(6)]
    at = fake_clock.moment + dt.timedelta(minutes=30)
    moves = {"count": 0}
    real_move = TouchStore.move

    def crashing_move(self, tenant_id, member_id, read, due):
        moves["count"] += 1
        if moves["count"] == 3:
            raise RuntimeError("the function died here")
        return real_move(self, tenant_id, member_id, read, due)

    monkeypatch.setattr(TouchStore, "move", crashing_move)
    with pytest.raises(touches.TouchesUnfinished) as unfinished:
        run(world, decider, fake_clock, at)
    assert unfinished.value.summary.decided == 6 and len(unfinished.value.summary.failed) == 1
    monkeypatch.setattr(TouchStore, "move", real_move)

    resumed = run(world, decider, fake_clock, at + HOUR)
    assert (resumed.due, resumed.decided, resumed.already) == (1, 0, 1)  # the same decision, not a second
    for member_id in members:
        assert [kind for _, kind in days_and_kinds(world, DEMO_TENANT, member_id)] == ["welcome_day1"]
    assert run(world, decider, fake_clock, at + 2 * HOUR).due == 0


def test_an_outage_overtakes_stale_steps(world, decider, fake_clock) -> None:
    member_id = member(world)
    start = fake_clock.moment
    run(world, decider, fake_clock, start + HOUR)
    # Down from day 2 to day 10: days 3 and 7 are due at once; only day 7 is decided.
    summary = run(world, decider, fake_clock, start + dt.timedelta(days=9, hours=2))
    assert (summary.decided, summary.overtaken) == (1, 1)
    assert days_and_kinds(world, DEMO_TENANT, member_id) == [(1, "welcome_day1"), (10, "welcome_day7")]
    assert run(world, decider, fake_clock, start + dt.timedelta(days=12, hours=23)).due == 0
    assert run(world, decider, fake_clock, start + dt.timedelta(days=13, hours=1)).decided == 1  # day 14


def test_the_backfill_gives_older_members_a_marker_at_their_next_step(world, decider, fake_clock) -> None:
    member_id = member(world)
    world.client.delete_item(  # as if enrolled before touches existed
        TableName=world.tables["LedgerTable"],
        Key=dynamo.marshal({"pk": keys.member_pk(DEMO_TENANT, member_id), "sk": keys.TOUCH_SK}),
    )
    store = TouchStore(world.tables["LedgerTable"], world.client)
    at = fake_clock.moment + dt.timedelta(days=20)
    dry = touches.backfill(store, world.stores, 0, 1, at=at, dry_run=True)
    assert dry["added"] == 0 and dry["checked"] >= 1
    counts = [touches.backfill(store, world.stores, s, 2, at=at, dry_run=False) for s in range(2)]
    assert sum(c["added"] for c in counts) == 1
    assert sum(c["added"] for c in (touches.backfill(store, world.stores, 0, 1, at=at, dry_run=False),)) == 0
    assert run(world, decider, fake_clock, at).due == 0  # nothing for the past
    later = run(world, decider, fake_clock, fake_clock.moment + dt.timedelta(days=39))  # day 39 begun
    assert later.decided == 1
    assert days_and_kinds(world, DEMO_TENANT, member_id)[0][1] == "welcome_periodic"
