"""Broadcasts against DynamoDB and SQS (moto): the worker, driven by the broadcast queue one message
at a time (a failed message is delivered again, as SQS does), decides exactly one message per
member of the segment, skips erased members and other tenants, and keeps its progress; a crash in
the middle of a page, and one between the cursor's move and the next message, are resumed without
deciding anyone twice; the same broadcast_id is the same broadcast, another body a 409."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from loyalty import broadcasts
from loyalty.admin import DEMO_PROGRAM, DEMO_TENANT, OTHER_TENANT
from loyalty.errors import Conflict
from loyalty.members import enrol, erase
from loyalty.messaging.sending import Decider, SendQueue
from loyalty.models import Profile
from loyalty.settings import SendingSettings
from loyalty.store import keys
from loyalty.store.sends import SendStore
from tests.support.aws import REGION

PAGE = 5  # items a Scan page evaluates: several pages per segment


@pytest.fixture
def sqs(moto_endpoint) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def parts(world, sqs) -> dict[str, Any]:
    def queue(name: str) -> str:
        return sqs.create_queue(QueueName=f"{name}-{uuid.uuid4().hex[:8]}")["QueueUrl"]

    table = world.tables["LedgerTable"]
    decider = Decider(SendStore(table, world.client), SendQueue(queue("send"), sqs), SendingSettings())
    store = broadcasts.BroadcastStore(table, world.client)
    bqueue = broadcasts.BroadcastQueue(queue("broadcast"), sqs)
    worker = broadcasts.Worker(store, bqueue, decider.decide, page_items=PAGE)
    return {"store": store, "queue": bqueue, "worker": worker, "decider": decider}


def drain(sqs, worker: broadcasts.Worker, queue: broadcasts.BroadcastQueue, max_messages: int = 500) -> list[str]:
    """Deliver the queue's messages to the worker one at a time until it is empty; a message whose
    handling raises is made visible again at once (as after the visibility timeout). Answers the
    outcomes, with ``failed`` for each failure."""
    outcomes: list[str] = []
    for _ in range(max_messages):
        answer = sqs.receive_message(
            QueueUrl=queue.url, MaxNumberOfMessages=1, AttributeNames=["ApproximateReceiveCount"], WaitTimeSeconds=0
        )
        messages = answer.get("Messages", [])
        if not messages:
            return outcomes
        (message,) = messages
        try:
            result = worker.handle(
                json.loads(message["Body"]), receive_count=int(message["Attributes"]["ApproximateReceiveCount"])
            )
        except RuntimeError:
            outcomes.append("failed")
            sqs.change_message_visibility(
                QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
            continue
        outcomes.append(result["outcome"])
        sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
    raise AssertionError("the broadcast did not end")


def members(world, count: int, tenant_id: str = DEMO_TENANT) -> list[str]:
    made = []
    for _ in range(count):
        member_id = f"b-{uuid.uuid4().hex[:10]}"
        enrol(world.stores, tenant_id, member_id, Profile(email=f"{member_id}@example.com"))
        made.append(member_id)
    return made


def decided_for(world, tenant_id: str, member_id: str, broadcast_id: str) -> list[dict[str, Any]]:
    items = world.stores.ledger.query_all(keys.member_pk(tenant_id, member_id), keys.SEND_PREFIX, consistent=True)
    return [item for item in items if item["reference"] == broadcasts.reference(broadcast_id)]


def start(parts, broadcast_id: str, segment: dict[str, Any], message: str = "New conditions from March.") -> Any:
    return broadcasts.start(
        parts["store"], parts["queue"], DEMO_TENANT, broadcast_id, "News", message, segment, "key:test"
    )


def test_a_broadcast_reaches_each_member_of_the_segment_once_through_crashes(world, parts, sqs, monkeypatch) -> None:
    everyone = members(world, 23)
    others = members(world, 4, OTHER_TENANT)
    erased = everyone.pop()
    erase(world.stores, world.actor, erased, reason="asked", audit_table=world.tables["ConfigTable"])

    progress, created = start(parts, "spring", {"all": True})
    assert created and progress.status == "running" and (progress.scanned, progress.decided) == (0, 0)

    # Crash 1: the function dies in the middle of a page (after two decisions of it).
    # Crash 2: it dies after the cursor moved, before the next page's message was sent.
    decide, send = parts["worker"].decide, broadcasts.BroadcastQueue.send
    calls = {"decide": 0, "send": 0}

    def dying_decide(*args: Any, **kwargs: Any) -> bool:
        calls["decide"] += 1
        if calls["decide"] == 9:
            raise RuntimeError("the function died mid-page")
        return decide(*args, **kwargs)

    def dying_send(self, tenant_id: str, broadcast_id: str, segment: int, page: int) -> None:
        calls["send"] += 1
        if calls["send"] == 3 and page > 0:
            raise RuntimeError("the function died before the next message")
        send(self, tenant_id, broadcast_id, segment, page)

    parts["worker"].decide = dying_decide
    monkeypatch.setattr(broadcasts.BroadcastQueue, "send", dying_send)
    outcomes = drain(sqs, parts["worker"], parts["queue"])
    assert outcomes.count("failed") == 2 and "resent" in outcomes, outcomes

    for member_id in everyone:
        [record] = decided_for(world, DEMO_TENANT, member_id, "spring")
        assert (record["kind"], record["category"]) == ("broadcast", "marketing")
        assert record["data"] == {"title": "News", "message": "New conditions from March."}
    assert decided_for(world, DEMO_TENANT, erased, "spring") == []
    assert all(decided_for(world, OTHER_TENANT, m, "spring") == [] for m in others)

    done = broadcasts.Progress.of(parts["store"].get(DEMO_TENANT, "spring"))
    demo_members = len(everyone) + 1  # the erased one is scanned, not decided
    assert (done.status, done.scanned, done.decided) == ("done", demo_members, len(everyone))
    assert done.finished_at is not None and done.finished_at >= done.started_at

    # The same body again: the same broadcast, nothing new; another body: 409.
    again, created = start(parts, "spring", {"all": True})
    assert not created and again.status == "done"
    assert drain(sqs, parts["worker"], parts["queue"]) == []
    with pytest.raises(Conflict):
        start(parts, "spring", {"all": True}, message="Other words")


def test_a_program_segment_and_a_duplicate_message(world, parts, sqs) -> None:
    members(world, 6)
    program = world.stores.config.get_program(DEMO_TENANT, DEMO_PROGRAM)
    assert program is not None
    start(parts, "nobody", {"program_id": "no-such-program"})
    # Every page message delivered twice (a standard queue may): the duplicate is dropped.
    original = broadcasts.BroadcastQueue.send

    def twice(self, *args: Any) -> None:
        original(self, *args)
        original(self, *args)

    broadcasts.BroadcastQueue.send = twice  # type: ignore[method-assign]
    try:
        outcomes = drain(sqs, parts["worker"], parts["queue"])
    finally:
        broadcasts.BroadcastQueue.send = original  # type: ignore[method-assign]
    assert "stale" in outcomes and "resent" not in outcomes
    nobody = broadcasts.Progress.of(parts["store"].get(DEMO_TENANT, "nobody"))
    assert (nobody.status, nobody.decided) == ("done", 0) and nobody.scanned >= 6

    start(parts, "default-program", {"program_id": program.program_id})
    drain(sqs, parts["worker"], parts["queue"])
    progress = broadcasts.Progress.of(parts["store"].get(DEMO_TENANT, "default-program"))
    assert progress.status == "done" and progress.decided == progress.scanned >= 6
