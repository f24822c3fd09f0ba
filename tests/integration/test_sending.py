"""Decide, then send, against the moto server (boto3 all the way): DynamoDB, SQS, SES v2, SNS.

The send queue is a real SQS queue; the sender (``Sender.process``) is run on what it receives, as
``functions/sender`` does, with the fake clock deciding what is due (a delayed SQS message is
delivered at once here: the sender itself refuses a record before its time). What went out is read
from moto's SES and SNS backends (this process runs the server).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from loyalty import burning, clock
from loyalty.members import enrol
from loyalty.messaging import consents, feedback, notices, sending
from loyalty.messaging.sending import Decider, Providers, RetryLater, Sender, SendQueue
from loyalty.messaging.throttle import TokenBucket
from loyalty.models import Consents, Profile
from loyalty.settings import SendingSettings, sending_settings, settings
from loyalty.store import dynamo, keys, secrets
from loyalty.store.ledger import LedgerStore
from loyalty.store.sends import SendStore
from tests.support.aws import REGION

SENDER = "loyalty@shop.example"


class ImmediateQueue(SendQueue):
    """The real queue, without SQS's delay: the fake clock decides what is due, not real time."""

    def enqueue(self, tenant_id: str, member_id: str, sk: str, delay: int = 0) -> None:
        super().enqueue(tenant_id, member_id, sk, 0)


@dataclass
class Bench:
    world: Any
    sends: SendStore
    queue: SendQueue
    decider: Decider
    sender: Sender
    sqs: Any
    ses: Any
    sns: Any
    deferred: list[RetryLater] = field(default_factory=list)

    def receive(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=self.queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return answer.get("Messages", [])

    def run_queue(self, max_wait: float = 5.0) -> list[sending.Outcome]:
        """Every message on the queue through the sender once, as the function does: done ->
        deleted; deferred -> kept (it comes back later), the delay remembered."""
        outcomes = []
        for message in self.receive():
            try:
                outcomes.append(self.sender.process(json.loads(message["Body"]), max_wait=max_wait))
            except RetryLater as later:
                self.deferred.append(later)
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
                continue
            self.sqs.delete_message(QueueUrl=self.queue.url, ReceiptHandle=message["ReceiptHandle"])
        return outcomes

    def member(self, *, email: str | None = "auto", phone: str | None = None, **profile: Any) -> str:
        member_id = f"s-{uuid.uuid4().hex[:10]}"
        address = f"{member_id}@example.com" if email == "auto" else email
        enrol(
            self.world.stores,
            self.world.actor.tenant_id,
            member_id,
            Profile(email=address, phone=phone, consents=Consents(marketing=True), **profile),
        )
        return member_id

    def record(self, member_id: str, kind: str, reference: str) -> dict[str, Any]:
        record = self.sends.get(self.world.actor.tenant_id, member_id, keys.send_sk(kind, reference))
        assert record is not None
        return record


def emails_to(address: str) -> list[Any]:
    sent = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    return [m for m in sent if address in (m.destinations.get("ToAddresses") or [])]


def sms_to(number: str) -> list[str]:
    return [text for phone, text in sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages.values() if phone == number]


def aws(service: str, endpoint: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _clear_caches() -> None:
    caches = (settings, sending_settings, dynamo.client, consents._store, secrets.secret_string, sending._sqs)
    for cached in (*caches, sending.decider):
        cached.cache_clear()


@pytest.fixture
def bench(world, moto_endpoint, monkeypatch) -> Iterator[Bench]:
    secret = aws("secretsmanager", moto_endpoint).create_secret(
        Name=f"unsubscribe-{uuid.uuid4().hex[:8]}", SecretString=uuid.uuid4().hex
    )
    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "LEDGER_TABLE": world.tables["LedgerTable"],
        "CONFIG_TABLE": world.tables["ConfigTable"],
        "UNSUBSCRIBE_SECRET_ARN": secret["ARN"],
        "PUBLIC_API_URL": "https://api.shop.example/prod",
    }.items():
        monkeypatch.setenv(name, value)
    _clear_caches()
    sqs, ses, sns = aws("sqs", moto_endpoint), aws("sesv2", moto_endpoint), aws("sns", moto_endpoint)
    ses.create_email_identity(EmailIdentity=SENDER)
    if "messages" not in ses.list_configuration_sets()["ConfigurationSets"]:
        ses.create_configuration_set(ConfigurationSetName="messages")
    url = sqs.create_queue(QueueName=f"send-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    config = SendingSettings(sender_email=SENDER, configuration_set="messages", send_queue_url=url)
    table = world.tables["LedgerTable"]
    sends = SendStore(table, world.client)
    queue = ImmediateQueue(url, sqs)
    ticks = {"t": 0.0}
    bucket = TokenBucket(rate=1000, capacity=1000, monotonic=lambda: ticks["t"], sleep=lambda s: None)
    sender = Sender(world.stores, sends, Providers(ses, sns), config, bucket=bucket)
    decider = Decider(sends, queue, config, LedgerStore(table, world.client))
    yield Bench(world, sends, queue, decider, sender, sqs, ses, sns)
    _clear_caches()


def buy(bench: Bench, member_id: str, amount: int = 100_000) -> dict[str, Any]:
    return bench.world.ledger.accrue(
        bench.world.actor,
        member_id,
        order_id=uuid.uuid4().hex[:12],
        amount=amount,
        currency_code="RUB",
        occurred_at=None,
    )


def stream_images(bench: Bench, member_id: str) -> list[dict[str, Any]]:
    """The member's ledger items as the notices function sees them on the stream (new images)."""
    pk = keys.member_pk(bench.world.actor.tenant_id, member_id)
    store = bench.world.stores.ledger
    return store.query_all(pk, "E#", consistent=True) + store.query_all(pk, "NOTICE#BURN#", consistent=True)


def decide_notices(bench: Bench, member_id: str) -> list[str]:
    return [
        kind
        for image in stream_images(bench, member_id)
        if (kind := notices.decide_from_stream(bench.decider, bench.world.stores, image))
    ]


# ------------------------------------------------------------------------------------ exactly once
def test_decide_writes_once_and_the_sender_sends_once(bench: Bench) -> None:
    member_id = bench.member(locale="en")
    data = {"points": 50, "reason": "Sorry for the delay"}
    assert bench.decider.decide("demo", member_id, "adjustment", "adj-1", data) is True
    assert bench.decider.decide("demo", member_id, "adjustment", "adj-1", data) is False  # the same decision
    [message] = bench.receive()
    body = json.loads(message["Body"])
    first = bench.sender.process(body)
    second = bench.sender.process(body)  # the same message again (a batch delivered twice)
    assert first.status == "sent" and second.status == "duplicate"
    [email] = emails_to(f"{member_id}@example.com")
    assert "50" in email.subject and "Sorry for the delay" in email.body
    record = bench.record(member_id, "adjustment", "adj-1")
    assert record["status"] == "sent" and record["delivered"] == {"member": email.id}
    assert "gsi1pk" not in record  # out of the due index


def test_two_senders_on_one_message_send_it_once(bench: Bench) -> None:
    member_id = bench.member()
    bench.decider.decide("demo", member_id, "tier_reached", "t-1", {"tier": "Gold"})
    [message] = bench.receive()
    body = json.loads(message["Body"])
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(bench.sender.process(body).status)
        except RetryLater as later:
            results.append(later.reason)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("sent") == 1, results
    assert len(emails_to(f"{member_id}@example.com")) == 1


def test_a_throttled_message_is_sent_once_later(bench: Bench, fake_clock) -> None:
    member_id = bench.member()
    throttled = {"left": 2}

    def throttle(**_: Any) -> Any:
        if throttled["left"]:
            throttled["left"] -= 1
            return _Http(400), {
                "Error": {"Code": "TooManyRequestsException", "Message": "Maximum sending rate exceeded."}
            }
        return None

    bench.ses.meta.events.register("before-call.sesv2.SendEmail", throttle)
    bench.decider.decide("demo", member_id, "redemption", "r-1", {"points": 30, "order_id": "A-1"})
    assert bench.run_queue() == []  # throttled: back on the queue
    assert bench.run_queue() == []  # again
    assert [d.reason.split(":")[0] for d in bench.deferred] == ["provider", "provider"]
    assert all(d.delay > 0 for d in bench.deferred)
    assert bench.record(member_id, "redemption", "r-1")["status"] == "decided"
    [outcome] = bench.run_queue()
    assert outcome.status == "sent"
    assert bench.run_queue() == []  # nothing left on the queue
    assert len(emails_to(f"{member_id}@example.com")) == 1
    assert bench.record(member_id, "redemption", "r-1")["attempts"] == 3


def test_the_token_bucket_paces_sends_to_the_rate(bench: Bench) -> None:
    ticks = {"t": 0.0}

    def sleep(seconds: float) -> None:
        ticks["t"] += seconds

    bench.sender.bucket = TokenBucket(rate=2, capacity=1, monotonic=lambda: ticks["t"], sleep=sleep)
    members = [bench.member() for _ in range(5)]
    for member_id in members:
        bench.decider.decide("demo", member_id, "tier_reached", "t", {"tier": "Gold"})
    assert [o.status for o in bench.run_queue()] == ["sent"] * 5
    assert ticks["t"] == pytest.approx(2.0)  # 5 messages at 2 a second: the first at once, 4 waits of 0.5 s
    assert all(len(emails_to(f"{m}@example.com")) == 1 for m in members)


def test_what_the_bucket_cannot_take_in_time_is_deferred_not_dropped(bench: Bench) -> None:
    ticks = {"t": 0.0}
    bench.sender.bucket = TokenBucket(rate=1, capacity=1, monotonic=lambda: ticks["t"], sleep=lambda s: None)
    members = [bench.member() for _ in range(3)]
    for member_id in members:
        bench.decider.decide("demo", member_id, "tier_reached", "t", {"tier": "Gold"})
    sent = [o for o in bench.run_queue(max_wait=0) if o.status == "sent"]
    assert len(sent) == 1 and [d.reason for d in bench.deferred] == ["send rate", "send rate"]
    ticks["t"] += 1  # a second later, one more token
    assert [o.status for o in bench.run_queue(max_wait=0)] == ["sent"]
    ticks["t"] += 1
    assert [o.status for o in bench.run_queue(max_wait=0)] == ["sent"]
    assert all(len(emails_to(f"{m}@example.com")) == 1 for m in members)


# ------------------------------------------------------------------------------------ when
def test_quiet_hours_hold_a_message_until_morning_in_the_members_zone(bench: Bench, fake_clock) -> None:
    fake_clock.moment = datetime(2026, 11, 23, 20, 30, tzinfo=UTC)  # 23:30 in Moscow, 20:30 in London
    moscow = bench.member(time_zone="Europe/Moscow")
    london = bench.member(time_zone="Europe/London")
    for member_id in (moscow, london):
        bench.decider.decide("demo", member_id, "tier_reached", "t", {"tier": "Gold"})
    assert bench.record(moscow, "tier_reached", "t")["not_before"] == "2026-11-24T06:00:00Z"  # 09:00 MSK
    assert [o.status for o in bench.run_queue()] == ["sent"]  # London: not quiet yet
    assert emails_to(f"{moscow}@example.com") == []
    released = sending.release_due(bench.sends, bench.queue, clock.now())
    assert released == 0
    fake_clock.moment = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    assert sending.release_due(bench.sends, bench.queue, clock.now()) == 1
    assert sending.release_due(bench.sends, bench.queue, clock.now()) == 0  # enqueued once
    assert [o.status for o in bench.run_queue()] == ["sent"]
    assert len(emails_to(f"{moscow}@example.com")) == 1


def test_a_message_that_reaches_the_sender_in_quiet_hours_waits_for_morning(bench: Bench, fake_clock) -> None:
    member_id = bench.member(time_zone="Asia/Tokyo")  # 19:00 in Tokyo at 10:00 UTC: not quiet yet
    bench.decider.decide("demo", member_id, "tier_reached", "t", {"tier": "Gold"})
    fake_clock.advance(hours=3)  # the sender gets it at 22:00 Tokyo time (a backlog, a throttle)
    assert [(o.status, o.reason) for o in bench.run_queue()] == [("held", "quiet_hours")]
    record = bench.record(member_id, "tier_reached", "t")
    assert (record["status"], record["not_before"]) == ("decided", "2026-11-24T00:00:00Z")  # 09:00 JST
    fake_clock.moment = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert sending.release_due(bench.sends, bench.queue, clock.now()) == 1
    assert [o.status for o in bench.run_queue()] == ["sent"]


def test_marketing_is_capped_at_two_a_rolling_week(bench: Bench, fake_clock) -> None:
    member_id = bench.member()
    for day in range(5):
        bench.decider.decide("demo", member_id, "broadcast", f"b-{day}", {"title": f"T{day}", "message": "News"})
        bench.run_queue()
        fake_clock.advance(days=2)
    statuses = [bench.record(member_id, "broadcast", f"b-{d}") for d in range(5)]
    assert [(r["status"], r.get("reason")) for r in statuses] == [
        ("sent", None),  # day 0
        ("sent", None),  # day 2
        ("skipped", "marketing_cap"),  # day 4: two in the last 7 days
        ("skipped", "marketing_cap"),  # day 6: still two (days 0 and 2)
        ("sent", None),  # day 8: day 0 left the window
    ]
    # the welcome chain counts toward the cap but is never refused by it (days 1, 3, 7 in a week)...
    bench.decider.decide("demo", member_id, "welcome_day7", "chain#7", {})
    assert [o.status for o in bench.run_queue()] == ["sent"]
    # ...so the next broadcast in the window gives way
    fake_clock.advance(minutes=1)
    bench.decider.decide("demo", member_id, "broadcast", "b-after-chain", {"title": "T", "message": "News"})
    bench.run_queue()
    assert bench.record(member_id, "broadcast", "b-after-chain")["reason"] == "marketing_cap"
    # bonus notices are not capped
    for n in range(3):
        bench.decider.decide("demo", member_id, "tier_reached", f"t-{n}", {"tier": "Gold"})
    assert [o.status for o in bench.run_queue()] == ["sent"] * 3


def test_a_burst_of_accruals_becomes_one_message(bench: Bench, fake_clock) -> None:
    member_id = bench.member()
    for _ in range(3):
        buy(bench, member_id, 100_000)
        fake_clock.advance(seconds=20)
    decided = decide_notices(bench, member_id)
    assert decide_notices(bench, member_id) == []  # the stream delivered again: nothing new
    assert decided == ["accrual"] * 3  # the first opened the notice, the others joined it
    assert [o for o in bench.run_queue()] == [] and bench.deferred[-1].reason == "not due yet"
    fake_clock.advance(seconds=120)
    [outcome] = bench.run_queue()
    assert outcome.status == "sent"
    [email] = emails_to(f"{member_id}@example.com")
    assert "Your last 3 purchases earned you" in email.body
    record = bench.sends.between("demo", member_id, keys.send_sk("accrual", ""), keys.send_sk("accrual", "~"))
    assert [len(r["parts"]) for r in record] == [3]
    assert record[0]["points"] == sum(p["points"] for p in record[0]["parts"]) > 0
    # an accrual after the window opens a new notice
    buy(bench, member_id)
    assert decide_notices(bench, member_id) == ["accrual"]


# ------------------------------------------------------------------------------------ burn reminders
def test_a_burn_reminder_says_what_burns_when_it_is_sent(bench: Bench, fake_clock) -> None:
    member_id = bench.member()
    buy(bench, member_id, 200_000)
    tenant = bench.world.actor.tenant_id
    [upcoming, *_] = burning.expiring(bench.world.ledger, tenant, member_id)
    burn_date = datetime.fromisoformat(str(upcoming["date"])).date()
    program = bench.world.stores.config.get_program(tenant, "demo")
    days = program.reminder_days[0] if program and program.reminder_days else 30
    fake_clock.moment = datetime.combine(burn_date - timedelta(days=days), datetime.min.time(), UTC) + timedelta(
        hours=10
    )
    notice = burning.remind(bench.world.ledger, tenant, member_id, burn_date, days)
    assert notice is not None
    decided = decide_notices(bench, member_id)
    assert "burn_reminder" in decided
    # points spent meanwhile: the reminder says the new amount
    bench.world.ledger.redeem(
        bench.world.actor, member_id, order_id="spend-1", points=20, order_amount=100_000, currency_code="RUB"
    )
    outcomes = [o for o in bench.run_queue() if o.status == "sent"]
    assert outcomes
    reference = f"{burn_date.isoformat()}#{days:03d}"
    record = bench.record(member_id, "burn_reminder", reference)
    assert record["status"] == "sent" and record["points"] == notice["points"] - 20
    [item] = [n for n in bench.world.stores.ledger.query_all(keys.member_pk(tenant, member_id), "NOTICE#BURN#")]
    assert item["status"] == "sent"


def test_a_burn_reminder_with_nothing_left_is_not_sent(bench: Bench, fake_clock) -> None:
    member_id = bench.member()
    buy(bench, member_id, 100_000)
    tenant = bench.world.actor.tenant_id
    [upcoming, *_] = burning.expiring(bench.world.ledger, tenant, member_id)
    burn_date = datetime.fromisoformat(str(upcoming["date"])).date()
    days = 30
    bench.decider.decide(
        tenant, member_id, "burn_reminder", "x", {"burn_date": burn_date.isoformat(), "days_before": days}
    )
    points = bench.world.stores.ledger.snapshot(tenant, member_id).account.balance
    bench.world.ledger.redeem(
        bench.world.actor, member_id, order_id="all", points=points, order_amount=10**9, currency_code="RUB"
    )
    [outcome] = bench.run_queue()
    assert (outcome.status, outcome.reason) == ("skipped", "nothing_to_say")
    assert emails_to(f"{member_id}@example.com") == []


# ------------------------------------------------------------------------------------ who, how
def test_email_carries_the_configuration_set_and_one_click_unsubscribe(bench: Bench) -> None:
    member_id = bench.member()
    seen: list[dict[str, Any]] = []
    bench.ses.meta.events.register("provide-client-params.sesv2.SendEmail", lambda params, **_: seen.append(params))
    bench.decider.decide("demo", member_id, "tier_reached", "t", {"tier": "Gold"})
    bench.run_queue()
    [params] = seen
    headers = {h["Name"]: h["Value"] for h in params["Content"]["Simple"]["Headers"]}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Unsubscribe"].startswith("<https://api.shop.example/prod/v1/unsubscribe/")
    assert params["ConfigurationSetName"] == "messages"
    tags = {t["Name"]: t["Value"] for t in params["EmailTags"]}
    assert sending.untag(tags["member"]) == member_id and tags["category"] == "bonus_notices"


def test_sms_is_transactional_for_notices_and_an_opted_out_phone_gets_nothing(bench: Bench) -> None:
    phone = f"+1555{uuid.uuid4().int % 10**6:06d}"
    phone = phone[:-2] + "12"
    member_id = bench.member(email=None, phone=phone)
    seen: list[dict[str, Any]] = []
    bench.sns.meta.events.register("provide-client-params.sns.Publish", lambda params, **_: seen.append(params))
    bench.decider.decide("demo", member_id, "tier_reached", "t", {"tier": "Gold"})
    assert [o.status for o in bench.run_queue()] == ["sent"]
    assert len(sms_to(phone)) == 1
    assert seen[0]["MessageAttributes"]["AWS.SNS.SMS.SMSType"]["StringValue"] == "Transactional"
    stopped = phone[:-2] + "99"  # moto: numbers ending in 99 have opted out (a STOP reply)
    other = bench.member(email=None, phone=stopped)
    bench.decider.decide("demo", other, "tier_reached", "t", {"tier": "Gold"})
    assert [(o.status, o.reason) for o in bench.run_queue()] == [("skipped", "sms_opted_out")]
    assert sms_to(stopped) == []
    assert consents.current("demo", other)["sms"] is False
    assert any(c["via"] == "stop_reply" for c in _history(other))


def _history(member_id: str) -> list[dict[str, Any]]:
    _, changes, _ = consents.history("demo", member_id)
    return [{"via": change.via} for change in changes]


def test_a_bounce_suppresses_the_address_and_records_a_consent_change(bench: Bench) -> None:
    member_id = bench.member()
    address = f"{member_id}@example.com"
    event = {
        "eventType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": address}]},
        "mail": {"tags": {"tenant": [sending.tag_value("demo")], "member": [sending.tag_value(member_id)]}},
    }
    assert feedback.handle(bench.sends, consents.change, event)["via"] == "bounce"
    assert bench.sends.suppressed("demo", "email", address.upper())
    assert consents.current("demo", member_id)["email"] is False
    bench.decider.decide("demo", member_id, "tier_reached", "t", {"tier": "Gold"})
    [outcome] = bench.run_queue()
    assert outcome.status == "skipped"
    assert emails_to(address) == []


def test_consent_is_checked_when_the_message_goes(bench: Bench) -> None:
    member_id = bench.member()
    bench.decider.decide("demo", member_id, "broadcast", "b", {"title": "T", "message": "M"})
    consents.change("demo", member_id, {"marketing": False}, via="api", actor="test")
    [outcome] = bench.run_queue()
    assert (outcome.status, outcome.reason) == ("skipped", "consent")


class _Http:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""


def test_a_companys_notices_go_in_copy_to_its_decision_maker(bench: Bench) -> None:
    from loyalty.companies import Companies
    from loyalty.store.companies import Contact

    company = bench.member(locale="en")
    boss = f"boss-{uuid.uuid4().hex[:8]}@example.com"
    Companies(bench.world.stores).put(
        bench.world.actor, company, name="Acme", decision_maker=Contact(name="Ann", email=boss, locale="uk")
    )
    bench.decider.decide("demo", company, "adjustment", "adj-c", {"points": 40, "reason": "Contract bonus"})
    bench.decider.decide("demo", company, "broadcast", "news", {"title": "News", "message": "Spring sale"})
    outcomes = bench.run_queue()
    assert sorted(o.status for o in outcomes) == ["sent", "sent"]
    assert len(emails_to(f"{company}@example.com")) == 2  # the notice and the news, to the company
    [copy] = emails_to(boss)  # the statement in copy, not the marketing
    assert "40" in copy.subject and 'lang="uk"' in copy.body  # in the decision maker's language
    assert bench.record(company, "adjustment", "adj-c")["delivered"].keys() == {"member", "copy"}
    assert bench.record(company, "broadcast", "news")["delivered"].keys() == {"member"}


def test_an_address_the_provider_refuses_is_skipped_not_retried(bench: Bench) -> None:
    member_id = bench.member(email="not-an-address")
    bench.decider.decide("demo", member_id, "tier_reached", "t", {"tier": "Gold"})
    [outcome] = bench.run_queue()
    assert outcome.status == "skipped" and outcome.reason.startswith("rejected: ")
    assert bench.run_queue() == [] and bench.deferred == []


class _Context:
    function_name = "SenderFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:SenderFunction"
    memory_limit_in_mb = "512"
    aws_request_id = "00000000-0000-0000-0000-0000000053d0"
    log_group_name = "/aws/lambda/SenderFunction"
    log_stream_name = "2026/11/23/[$LATEST]sending"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def test_the_sender_function_invoked_twice_on_the_same_batch_sends_once(bench: Bench, monkeypatch) -> None:
    from pathlib import Path

    from loyalty.api import deps
    from tests.support.functions import load_app

    for name, value in {
        "SEND_QUEUE_URL": bench.queue.url,
        "SENDER_EMAIL": SENDER,
        "SES_CONFIGURATION_SET": "messages",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "LoyaltyTests",
        "POWERTOOLS_SERVICE_NAME": "sender",
    }.items():
        monkeypatch.setenv(name, value)
    _clear_caches()
    deps.stores.cache_clear()
    try:
        app = load_app(Path(__file__).resolve().parents[2] / "functions" / "sender" / "app.py")
        members = [bench.member() for _ in range(3)]
        for member_id in members:
            bench.decider.decide("demo", member_id, "tier_reached", "t", {"tier": "Gold"})
        received = bench.receive()
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764020000000"},
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:SendQueue",
                    "awsRegion": "us-east-1",
                }
                for m in received
            ]
        }
        assert len(event["Records"]) == 3
        first = app.handler(event, _Context())
        second = app.handler(event, _Context())  # the same batch again (a retry, a duplicate delivery)
        assert first == second == {"batchItemFailures": []}
        assert [len(emails_to(f"{m}@example.com")) for m in members] == [1, 1, 1]
    finally:
        deps.stores.cache_clear()
