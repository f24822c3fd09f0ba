"""Decide, then send, exactly once.

- :func:`decide` writes a send record with a deterministic key (member, kind, reference) once
  (``attribute_not_exists``) and enqueues it on the send queue (SQS, delayed up to 15 minutes);
  a record due later (quiet hours, a later day) waits in the due index for the hourly release job
  (:func:`release_due`), which also enqueues again a record whose enqueue was lost.
- :class:`Sender` (``functions/sender``) consumes the queue: it re-reads the record (already sent:
  nothing to do), takes it with a conditional lease (``sending``), re-checks what may have changed
  since the decision (quiet hours in the member's zone, the marketing cap, consents, suppressed
  addresses, the amount of a burn reminder), renders (``templates.render``) and sends through SES
  v2 (email, with a configuration set and one-click unsubscribe headers) or SNS (SMS, after
  ``CheckIfPhoneNumberIsOptedOut``), records the provider's message id per recipient, then marks
  the record ``sent``. A retry finds the record sent, or the recipient already delivered.
- Throttling: a token bucket per container holds the send rate (``throttle``); a provider throttle
  or outage puts the record back and the message back on the queue with a delay (:class:`RetryLater`).

Where each rule applies (docs/DECISIONS.md, "Messaging: sending"): quiet hours at the decision
(the record waits in the index) and again at sending; the cap, consents and suppression at
sending (the state that counts is the one when the message goes); bursts at the decision (a later
accrual joins the notice still waiting).
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from loyalty import clock
from loyalty.messaging import quiet
from loyalty.messaging.throttle import TokenBucket
from loyalty.settings import SendingSettings, sending_settings, settings
from loyalty.store import keys
from loyalty.store.sends import DECIDED, RECORD_DAYS, SENDING, SENT, SKIPPED, SendStore, due_index

MAX_SQS_DELAY = 900  # SQS delays a message at most 15 minutes
LEASE_SECONDS = 300  # a sender's hold on a record; a crashed sender's record is free again after it
STALE_ENQUEUE = timedelta(minutes=20)  # a due record enqueued longer ago than this is enqueued again
MAX_RETRY_DELAY = 900
# SES v2 and SNS answers that mean "later", not "never".
RETRYABLE_PROVIDER_CODES = {
    "ThrottlingException",
    "TooManyRequestsException",
    "LimitExceededException",
    "Throttling",
    "Throttled",
    "ThrottledException",
    "InternalFailure",
    "InternalError",
    "InternalErrorException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSThrottlingException",
}
# Answers that say this message to this address will never go: the record is skipped, not retried.
REJECTED_CODES = {
    "MessageRejected",
    "BadRequestException",
    "InvalidParameterValue",
    "InvalidParameter",
    "InvalidParameterException",
}
SYSTEM_ACTOR = "system:sender"
# The welcome chain is a sequence the member signed up for, spaced by design (days 1, 3, 7, 14...):
# its steps count toward the marketing cap but are never refused by it, so a broadcast in the
# member's first week is what gives way, not the chain.
CAP_EXEMPT_KINDS = frozenset({"welcome_day1", "welcome_day3", "welcome_day7", "welcome_day14", "welcome_periodic"})


class RetryLater(Exception):
    """The message goes back to the queue and comes again after ``delay`` seconds."""

    def __init__(self, delay: int, reason: str) -> None:
        super().__init__(f"{reason}; again in {delay} s")
        self.delay = max(0, min(MAX_RETRY_DELAY, int(delay)))
        self.reason = reason


def retry_delay(receive_count: int) -> int:
    """Backoff for the n-th receive of a throttled message: 10 s, 20 s, 40 s... up to 15 minutes,
    with jitter so that throttled messages do not all come back together."""
    base = min(MAX_RETRY_DELAY, 10 * 2 ** max(0, receive_count - 1))
    return int(base / 2 + random.uniform(0, base / 2))


def category_of(kind: str) -> str:
    from loyalty.messaging.kinds import spec

    return spec(kind).category


def _iso(moment: datetime) -> str:
    return clock.isoformat(moment)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def tag_value(text: str) -> str:
    """SES tag values allow letters, digits, ``_`` and ``-`` only: base64url without padding."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def untag(value: str) -> str:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()


# ---------------------------------------------------------------------------------- the queue
class SendQueue:
    """The send queue: one message per record, ``{"tenant_id", "member_id", "sk"}``."""

    def __init__(self, url: str, client: Any | None = None) -> None:
        self.url = url
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or _sqs()

    def enqueue(self, tenant_id: str, member_id: str, sk: str, delay: int = 0) -> None:
        body = json.dumps({"tenant_id": tenant_id, "member_id": member_id, "sk": sk}, sort_keys=True)
        self.client.send_message(
            QueueUrl=self.url, MessageBody=body, DelaySeconds=max(0, min(MAX_SQS_DELAY, int(delay)))
        )


@cache
def _sqs() -> Any:
    return boto3.client("sqs")


# ---------------------------------------------------------------------------------- deciding
@dataclass
class Decider:
    """Writes decisions and enqueues them. ``members`` reads a member's time zone (a
    ``LedgerStore``); None skips the quiet-hours check at the decision (the sender checks)."""

    sends: SendStore
    queue: SendQueue
    config: SendingSettings
    members: Any | None = None

    @property
    def quiet_hours(self) -> quiet.QuietHours:
        return quiet.QuietHours.parse(self.config.quiet_hours_start, self.config.quiet_hours_end)

    def _time_zone(self, tenant_id: str, member_id: str) -> str | None:
        if self.members is None:
            return None
        member = self.members.get_member(tenant_id, member_id)
        return member.profile.time_zone if member else None

    def record(
        self,
        tenant_id: str,
        member_id: str,
        kind: str,
        reference: str,
        data: Mapping[str, Any],
        *,
        now: datetime,
        not_before: datetime,
        parts: list[dict[str, Any]] | None = None,
        entry_id: str | None = None,
        group: str | None = None,
    ) -> dict[str, Any]:
        sk = keys.send_sk(kind, reference)
        due = _iso(not_before)
        return {
            "pk": keys.member_pk(tenant_id, member_id),
            "sk": sk,
            "tenant_id": tenant_id,
            "member_id": member_id,
            "kind": kind,
            "category": category_of(kind),
            "reference": reference,
            "status": DECIDED,
            "data": dict(data),
            "parts": list(parts or []),
            "entry_ids": {entry_id} if entry_id else None,
            "group": group,
            "delivered": {},
            "decided_at": _iso(now),
            "not_before": due,
            "attempts": 0,
            "ttl": int((now + timedelta(days=RECORD_DAYS)).timestamp()),
            **due_index(tenant_id, member_id, sk, due),
        }

    def decide(
        self,
        tenant_id: str,
        member_id: str,
        kind: str,
        reference: str,
        data: Mapping[str, Any],
        *,
        not_before: datetime | None = None,
        parts: list[dict[str, Any]] | None = None,
        entry_id: str | None = None,
        group: str | None = None,
    ) -> bool:
        now = clock.now()
        due = max(now, not_before or now)
        due = quiet.next_allowed(due, self._time_zone(tenant_id, member_id), self.quiet_hours)
        record = self.record(
            tenant_id,
            member_id,
            kind,
            reference,
            data,
            now=now,
            not_before=due,
            parts=parts,
            entry_id=entry_id,
            group=group,
        )
        if not self.sends.put(record):
            return False
        self.schedule(record, now)
        return True

    def schedule(self, record: Mapping[str, Any], now: datetime) -> None:
        """Enqueue what is due now, or within the burst window (an SQS delay, at most 15 minutes);
        the rest waits in the due index for the hourly release job (the morning after quiet
        hours, a later day)."""
        wait = (_parse(record["not_before"]) - now).total_seconds()
        if wait <= min(MAX_SQS_DELAY, self.config.notice_burst_seconds) or wait <= 0:
            self.queue.enqueue(record["tenant_id"], record["member_id"], record["sk"], int(max(0.0, wait) + 0.999))

    def join_or_decide(
        self,
        tenant_id: str,
        member_id: str,
        kind: str,
        part: Mapping[str, Any],
        entry_id: str,
        *,
        window: timedelta,
        data: Mapping[str, Any] | None = None,
        group: str | None = None,
    ) -> bool:
        """A burst becomes one message: ``part`` (one accrual, one burned lot...) joins the member's
        notice of ``kind`` that still waits for its burst window to end, or opens a new one, due
        at the end of its window and named by its first part (``<opened at>#<entry id>``); with a
        ``group`` (a refund id, a night), only a notice of the same group is joined. A part
        already in a notice (a redelivered stream record) changes nothing. False when nothing new
        was written."""
        now = clock.now()
        recent = self.sends.between(
            tenant_id,
            member_id,
            keys.send_sk(kind, _stamp(now - timedelta(days=1))),
            keys.send_sk(kind, "~"),
        )
        if any(entry_id in (r.get("entry_ids") or []) for r in recent):
            return False
        for record in sorted(recent, key=lambda r: r["sk"], reverse=True):
            open_now = record["status"] == DECIDED and _parse(record["not_before"]) > now
            if open_now and record.get("group") == group and self.sends.join(record, part, entry_id, _iso(now)):
                return True
        reference = f"{_stamp(now)}#{entry_id}"
        return self.decide(
            tenant_id,
            member_id,
            kind,
            reference,
            data or {},
            not_before=now + window,
            parts=[dict(part)],
            entry_id=entry_id,
            group=group,
        )


def _stamp(moment: datetime) -> str:
    """A sortable instant for a reference: ``20261123T100000Z``."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@cache
def decider() -> Decider:
    from loyalty.store.ledger import LedgerStore

    config = sending_settings()
    table = settings().ledger_table
    return Decider(SendStore(table), SendQueue(config.send_queue_url), config, LedgerStore(table))


def decide(
    tenant_id: str,
    member_id: str,
    kind: str,
    reference: str,
    data: Mapping[str, Any],
    *,
    not_before: datetime | None = None,
) -> bool:
    """Decide to send the member a message of ``kind`` once per ``reference`` (a date, an event
    id, a broadcast id...), with ``data`` for its template (the common variables are added when
    it is sent); not before ``not_before`` (and never in the member's quiet hours). False when
    that decision exists already. Consent, the marketing cap and suppression apply when it is
    sent; the record then says ``sent`` or ``skipped`` with the reason."""
    return decider().decide(tenant_id, member_id, kind, reference, data, not_before=not_before)


# ---------------------------------------------------------------------------------- releasing
def release_due(sends: SendStore, queue: SendQueue, now: datetime) -> int:
    """The hourly release job: enqueue every record due by ``now`` that is not in the queue
    (the morning after quiet hours, a later day, an enqueue lost), one Query per index shard.
    Answers how many."""
    released = 0
    stale = _iso(now - STALE_ENQUEUE)
    for shard in range(keys.SEND_DUE_SHARDS):
        for pk, sk in sends.due(shard, _iso(now)):
            record = sends.mark_enqueued(pk, sk, _iso(now), stale)
            if record is not None:
                queue.enqueue(record["tenant_id"], record["member_id"], record["sk"])
                released += 1
    return released


# ---------------------------------------------------------------------------------- sending
@dataclass(frozen=True)
class Outcome:
    status: str  # sent | skipped | held | duplicate | missing
    reason: str | None = None
    delivered: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipient:
    role: str  # member | copy (a company's decision maker)
    channel: str  # email | sms
    address: str
    locale: str


class Providers:
    """SES v2 and SNS clients, made on first use."""

    def __init__(self, ses: Any | None = None, sns: Any | None = None) -> None:
        self._ses, self._sns = ses, sns

    @property
    def ses(self) -> Any:
        if self._ses is None:
            self._ses = boto3.client("sesv2")
        return self._ses

    @property
    def sns(self) -> Any:
        if self._sns is None:
            self._sns = boto3.client("sns")
        return self._sns


def _retryable(error: Exception) -> bool:
    if isinstance(error, BotoCoreError):
        return True  # connection reset, timeout
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "") in RETRYABLE_PROVIDER_CODES
    return False


class Sender:
    """Sends one record. ``stores`` is the engine's ``Stores`` (members, accounts, programs);
    ``edges`` bundles the templates, consents and unsubscribe links (``Edges``)."""

    def __init__(
        self,
        stores: Any,
        sends: SendStore,
        providers: Providers,
        config: SendingSettings,
        *,
        bucket: TokenBucket | None = None,
        edges: Edges | None = None,
    ) -> None:
        self.stores = stores
        self.sends = sends
        self.providers = providers
        self.config = config
        per_container = config.ses_max_send_rate / max(1, config.sender_concurrency)
        self.bucket = bucket or TokenBucket(rate=per_container, capacity=max(1.0, per_container))
        self.edges = edges or Edges()
        self.quiet_hours = quiet.QuietHours.parse(config.quiet_hours_start, config.quiet_hours_end)
        self.cap = quiet.Cap(count=config.marketing_weekly_cap)

    # -- the steps
    def process(self, message: Mapping[str, Any], *, receive_count: int = 1, max_wait: float = 5.0) -> Outcome:
        tenant_id, member_id, sk = message["tenant_id"], message["member_id"], message["sk"]
        now = clock.now()
        record = self.sends.get(tenant_id, member_id, sk)
        if record is None:
            return Outcome("missing")
        if record["status"] in (SENT, SKIPPED):
            return Outcome("duplicate", record["status"], record.get("delivered") or {})
        if record["status"] == SENDING and _parse(record["lease_until"]) > now:
            raise RetryLater(int((_parse(record["lease_until"]) - now).total_seconds()) + 1, "another sender holds it")
        if record["status"] == DECIDED and _parse(record["not_before"]) > now:
            wait = (_parse(record["not_before"]) - now).total_seconds()
            if wait <= MAX_SQS_DELAY:
                raise RetryLater(int(wait) + 1, "not due yet")
            return Outcome("held", "not due yet")  # the release job enqueues it when due
        lease = uuid.uuid4().hex
        claimed = self.sends.claim(record, lease, _iso(now), _iso(now + timedelta(seconds=LEASE_SECONDS)))
        if claimed is None:
            raise RetryLater(5, "the record moved meanwhile")
        try:
            return self._send(claimed, lease, now, receive_count, max_wait)
        except RetryLater:
            raise
        except Exception as error:
            if _retryable(error):
                self.sends.put_back(claimed, lease, _iso(now))
                raise RetryLater(retry_delay(receive_count), f"provider: {error}") from error
            code = error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""
            if code in REJECTED_CODES:  # an address the provider refuses: retrying changes nothing
                return self._skip(claimed, lease, now, f"rejected: {code}")
            raise

    def _finish(self, record: Mapping[str, Any], lease: str, status: str, now: datetime, **fields: Any) -> Outcome:
        done = self.sends.finish(record, lease, status, _iso(now), **fields)
        if done is None:
            raise RetryLater(5, "lost the lease")
        from loyalty.messaging import notices

        notices.after(self.stores, done)
        return Outcome(status, fields.get("reason"), done.get("delivered") or {})

    def _skip(self, record: Mapping[str, Any], lease: str, now: datetime, reason: str) -> Outcome:
        return self._finish(record, lease, SKIPPED, now, reason=reason)

    def _send(self, record: dict[str, Any], lease: str, now: datetime, receive_count: int, max_wait: float) -> Outcome:
        from loyalty.messaging import notices

        tenant_id, member_id = record["tenant_id"], record["member_id"]
        member = self.stores.ledger.get_member(tenant_id, member_id)
        if member is None or member.erased_at is not None:
            return self._skip(record, lease, now, "no_member")
        morning = quiet.release_at(now, member.profile.time_zone, self.quiet_hours)
        if morning is not None:
            self.sends.put_back(record, lease, _iso(morning))
            return Outcome("held", "quiet_hours")
        category = record["category"]
        if category == "marketing" and record["kind"] not in CAP_EXEMPT_KINDS:
            since = _iso(now - self.cap.window)
            earlier = [
                _parse(at)
                for at in self.sends.marketing_since(tenant_id, member_id, since)
                if at != record.get("claimed_at")
            ]
            if not quiet.cap_allows(earlier, now, self.cap):
                return self._skip(record, lease, now, "marketing_cap")
        data = notices.payload(self.stores, record, now)
        if data is None:
            return self._skip(record, lease, now, "nothing_to_say")
        recipients, reason = self._recipients(record, member, category)
        if not recipients:
            return self._skip(record, lease, now, reason or "no_channel")
        delivered: dict[str, str] = dict(record.get("delivered") or {})
        for recipient in recipients:
            if recipient.role in delivered:
                continue  # a retry: this one has it already
            if recipient.channel == "sms" and self._opted_out(recipient, tenant_id, member_id):
                if recipient.role == "member":
                    return self._skip(record, lease, now, "sms_opted_out")
                continue
            if not self.bucket.take(max_wait):
                self.sends.put_back(record, lease, _iso(now))
                raise RetryLater(max(1, int(self.bucket.wait()) + 1), "send rate")
            message_id = self._deliver(record, recipient, data)
            delivered[recipient.role] = message_id
            if self.sends.delivered(record, lease, recipient.role, message_id) is None:
                raise RetryLater(5, "lost the lease")
        return self._finish(
            record,
            lease,
            SENT,
            now,
            sent_at=_iso(clock.now()),
            channel=recipients[0].channel,
            points=data.get("points"),
        )

    def _recipients(self, record: Mapping[str, Any], member: Any, category: str) -> tuple[list[Recipient], str | None]:
        tenant_id = record["tenant_id"]
        profile = member.profile
        chosen: Recipient | None = None
        reason = "consent"
        for channel, address in (("email", profile.email), ("sms", profile.phone)):
            if not address:
                continue
            if not self.edges.allows(member, category, channel):
                continue
            if self.sends.suppressed(tenant_id, channel, address):
                reason = "suppressed"
                continue
            chosen = Recipient("member", channel, address, profile.locale)
            break
        if chosen is None:
            if not profile.email and not profile.phone:
                reason = "no_contact"
            return [], reason
        recipients = [chosen]
        copy = self._copy(record, category)
        if copy is not None and not self.sends.suppressed(tenant_id, copy.channel, copy.address):
            recipients.append(copy)
        return recipients, None

    def _copy(self, record: Mapping[str, Any], category: str) -> Recipient | None:
        """A company's statements (digests, bonus notices on its account) go in copy to its
        decision maker."""
        if category != "bonus_notices" and record["kind"] != "digest":
            return None
        from loyalty.store.companies import CompanyStore

        company = CompanyStore.beside(self.stores.ledger).company(record["tenant_id"], record["member_id"])
        if company is None or company.erased_at is not None:
            return None
        contact = company.decision_maker
        if contact.email:
            return Recipient("copy", "email", contact.email, contact.locale)
        if contact.phone:
            return Recipient("copy", "sms", contact.phone, contact.locale)
        return None

    def _opted_out(self, recipient: Recipient, tenant_id: str, member_id: str) -> bool:
        answer = self.providers.sns.check_if_phone_number_is_opted_out(phoneNumber=recipient.address)
        if not answer.get("isOptedOut"):
            return False
        if recipient.role == "member":
            self.edges.change(
                tenant_id, member_id, {"sms": False}, via="stop_reply", actor=SYSTEM_ACTOR, reason="STOP reply"
            )
        return True

    def _deliver(self, record: Mapping[str, Any], recipient: Recipient, data: Mapping[str, Any]) -> str:
        tenant_id, member_id, kind = record["tenant_id"], record["member_id"], record["kind"]
        link = self.edges.link(tenant_id, member_id, record["category"], recipient.channel)
        variables = {**data, "locale": recipient.locale, "unsubscribe_url": link}
        rendered = self.edges.render(kind, recipient.channel, recipient.locale, variables, tenant_id=tenant_id)
        if recipient.channel == "email":
            response = self.providers.ses.send_email(
                FromEmailAddress=self.config.sender_email,
                Destination={"ToAddresses": [recipient.address]},
                Content={
                    "Simple": {
                        "Subject": {"Data": rendered.subject or "", "Charset": "UTF-8"},
                        "Body": {
                            "Html": {"Data": rendered.html or "", "Charset": "UTF-8"},
                            "Text": {"Data": rendered.text, "Charset": "UTF-8"},
                        },
                        "Headers": [
                            {"Name": "List-Unsubscribe", "Value": f"<{link}>"},
                            {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
                        ],
                    }
                },
                ConfigurationSetName=self.config.configuration_set,
                EmailTags=[
                    {"Name": "tenant", "Value": tag_value(tenant_id)},
                    {"Name": "member", "Value": tag_value(member_id)},
                    {"Name": "kind", "Value": kind},
                    {"Name": "category", "Value": record["category"]},
                    {"Name": "role", "Value": recipient.role},
                ],
            )
            return str(response["MessageId"])
        sms_type = "Transactional" if record["category"] == "bonus_notices" else "Promotional"
        response = self.providers.sns.publish(
            PhoneNumber=recipient.address,
            Message=rendered.text,
            MessageAttributes={"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": sms_type}},
        )
        return str(response["MessageId"])


class Edges:
    """The other half of messaging (templates, consents, unsubscribe links), imported on first
    use so that deciding never loads Jinja2."""

    def render(self, *args: Any, **kwargs: Any) -> Any:
        from loyalty.messaging import templates

        return templates.render(*args, **kwargs)

    def allows(self, member: Any, category: str, channel: str) -> bool:
        from loyalty.messaging import consents

        return consents.allows(member, category, channel)  # type: ignore[arg-type]

    def link(self, tenant_id: str, member_id: str, category: str, channel: str) -> str:
        from loyalty.messaging import unsubscribe

        return unsubscribe.link(tenant_id, member_id, category, channel)  # type: ignore[arg-type]

    def change(self, tenant_id: str, member_id: str, changes: Mapping[str, bool], **how: Any) -> dict:
        from loyalty.messaging import consents

        return consents.change(tenant_id, member_id, changes, **how)
