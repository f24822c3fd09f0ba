"""Event source mappings: SQS queues and DynamoDB streams polled into functions, as Lambda does.

Each ``Type: SQS`` / ``Type: DynamoDB`` event gets a poller thread. Both honour ``BatchSize``,
``FilterCriteria`` and ``ReportBatchItemFailures``; SQS also ``MaximumBatchingWindowInSeconds``.

* SQS: on success the batch is deleted (except the ``batchItemFailures``); on error nothing is
  deleted, the messages come back after the visibility timeout, and moto's redrive policy moves a
  message to its dead-letter queue on the receive after ``maxReceiveCount``.
* DynamoDB: the poller checkpoints the sequence number of the last record done and asks for a fresh
  iterator after it on every poll. (moto's failed transactions put back a copy of the whole table,
  stream shard included, so an iterator kept from before would go on reading a dead shard.) A failed
  batch is retried from the first failed record until it succeeds or ``MaximumRetryAttempts`` runs out.

:meth:`EventSources.drain` waits until every source is idle: queues empty (in flight included),
streams read to the end, nothing being processed, and a last full round that did no work at all.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from local.aws import AwsClients, forget_shard_iterators
from local.clock import LocalClock
from local.filters import matches_any, parse_patterns, sqs_filter_view
from local.model import QueueSourceSpec, StreamSourceSpec
from local.template import REGION
from local.workers import FunctionRuntime, InvokeResult

log = logging.getLogger(__name__)

# The message attributes Lambda puts in an SQS record (moto returns more).
_SQS_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
)
_QUEUE_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


class DrainSource(Protocol):
    """Something :meth:`EventSources.drain` waits for."""

    def wake(self) -> None: ...

    def idle(self, since: float) -> bool:
        """Nothing to do, as observed by a check that started after ``since`` (monotonic)."""
        ...

    def work_done(self) -> int:
        """A counter that grows with every completed invocation."""
        ...


def failed_item_ids(result: InvokeResult, report_failures: bool, valid_ids: set[str]) -> set[str] | None:
    """The ``batchItemFailures`` of a successful invocation; None means the whole batch failed
    (an identifier that is empty or not in the batch fails the batch, as in Lambda)."""
    if not result.ok:
        return None
    if not report_failures or not isinstance(result.payload, dict):
        return set()
    items = result.payload.get("batchItemFailures") or []
    if not isinstance(items, list):
        return None
    ids = {item.get("itemIdentifier") if isinstance(item, dict) else None for item in items}
    if any(not isinstance(item_id, str) or item_id not in valid_ids for item_id in ids):
        return None
    return ids  # type: ignore[return-value]


class _Poller:
    """A polling thread (composition, not a Thread subclass: no clash with Thread's internals)."""

    def __init__(
        self, name: str, function: str, runtime: FunctionRuntime, clock: LocalClock, clients: AwsClients
    ) -> None:
        self._thread = threading.Thread(target=self.run, name=f"poller:{name}", daemon=True)
        self.source_name = name
        self.function = function
        self.runtime = runtime
        self.clock = clock
        self.clients = clients
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._work = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def run(self) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        self._wake.set()

    def work_done(self) -> int:
        with self._lock:
            return self._work

    def _invoke(self, event: dict[str, Any]) -> InvokeResult:
        try:
            return self.runtime.invoke(self.function, event, self.clock.now(), source=self.source_name)
        finally:
            with self._lock:
                self._work += 1

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()


class SqsPoller(_Poller):
    def __init__(self, spec: QueueSourceSpec, runtime: FunctionRuntime, clock: LocalClock, clients: AwsClients) -> None:
        super().__init__(spec.name, spec.function, runtime, clock, clients)
        self.spec = spec
        self._patterns = parse_patterns(spec.filters)
        self._busy = False

    def idle(self, since: float) -> bool:
        if self._busy:
            return False
        answer = self.clients("sqs").get_queue_attributes(
            QueueUrl=self.spec.queue_url, AttributeNames=list(_QUEUE_COUNTS)
        )
        return not self._busy and all(int(answer["Attributes"].get(name, 0)) == 0 for name in _QUEUE_COUNTS)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                messages = self._receive()
                if messages:
                    self._busy = True
                    try:
                        self._process(messages)
                    finally:
                        self._busy = False
            except Exception:
                if self._stop_event.is_set():
                    return
                log.exception("SQS poller %s failed; retrying", self.source_name)
                self._sleep(1)

    def _receive(self) -> list[dict[str, Any]]:
        """One batch: a long poll, then (with a batching window) more receives until the batch is
        full or the window, counted from the first message, has passed."""
        sqs = self.clients("sqs")
        batch: list[dict[str, Any]] = []
        deadline = 0.0
        while len(batch) < self.spec.batch_size and not self._stop_event.is_set():
            # Long polls of 1 s at most, so that a stop is noticed quickly.
            wait = 1 if not batch else max(0, min(1, math.ceil(deadline - time.monotonic())))
            answer = sqs.receive_message(
                QueueUrl=self.spec.queue_url,
                MaxNumberOfMessages=min(10, self.spec.batch_size - len(batch)),
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            if not batch:
                deadline = time.monotonic() + self.spec.window_seconds
            batch.extend(answer.get("Messages", []))
            if not batch or time.monotonic() >= deadline:
                break
        return batch

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {
            key: value for key, value in (message.get("Attributes") or {}).items() if key in _SQS_RECORD_ATTRIBUTES
        }
        message_attributes = {}
        for name, value in (message.get("MessageAttributes") or {}).items():
            entry: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
            if "StringValue" in value:
                entry["stringValue"] = value["StringValue"]
            if "BinaryValue" in value:
                entry["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
            message_attributes[name] = entry
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.spec.queue_arn,
            "awsRegion": REGION,
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record

    def _process(self, messages: list[dict[str, Any]]) -> None:
        records = [self._record(message) for message in messages]
        wanted = [record for record in records if matches_any(self._patterns, sqs_filter_view(record))]
        # Lambda deletes the messages a filter drops: they would otherwise come back forever.
        dropped = [record for record in records if record not in wanted]
        self._delete_messages(dropped)
        if not wanted:
            return
        result = self._invoke({"Records": wanted})
        failed = failed_item_ids(result, self.spec.report_failures, {record["messageId"] for record in wanted})
        if failed is None:
            return  # the whole batch comes back after its visibility timeout
        self._delete_messages([record for record in wanted if record["messageId"] not in failed])

    def _delete_messages(self, records: list[dict[str, Any]]) -> None:
        sqs = self.clients("sqs")
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            answer = sqs.delete_message_batch(
                QueueUrl=self.spec.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": record["receiptHandle"]} for index, record in enumerate(chunk)
                ],
            )
            for failure in answer.get("Failed", []):
                log.warning("%s: could not delete a message: %s", self.source_name, failure.get("Message"))


def _json_attribute_value(value: Any) -> Any:
    """boto3 decodes binary attribute values to bytes; the Lambda event carries base64 text."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _json_attribute_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_attribute_value(item) for item in value]
    return value


def stream_record(raw: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A DynamoDB stream record as Lambda delivers it."""
    dynamodb = {key: _json_attribute_value(value) for key, value in raw["dynamodb"].items()}
    created = raw["dynamodb"].get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


class StreamPoller(_Poller):
    ACTIVE_INTERVAL = 0.25  # Lambda polls a shard about four times a second
    IDLE_INTERVAL = 1.0

    def __init__(
        self, spec: StreamSourceSpec, runtime: FunctionRuntime, clock: LocalClock, clients: AwsClients
    ) -> None:
        super().__init__(spec.name, spec.function, runtime, clock, clients)
        self.spec = spec
        self._patterns = parse_patterns(spec.filters)
        self._shard_id: str | None = None
        self._after: str | None = None  # sequence number of the last record done (the checkpoint)
        self._pending: list[dict[str, Any]] = []  # a batch being retried
        self._attempts = 0
        self._last_empty_poll = 0.0  # monotonic start of the last poll that found nothing to do

    def idle(self, since: float) -> bool:
        with self._lock:
            return not self._pending and self._last_empty_poll > since

    def start_position(self) -> None:
        """Find the shard and, for LATEST, the current end of the stream (called before start())."""
        streams = self.clients("dynamodbstreams")
        description = streams.describe_stream(StreamArn=self.spec.stream_arn)["StreamDescription"]
        self._shard_id = description["Shards"][0]["ShardId"] if description.get("Shards") else None
        if self.spec.starting_position == "LATEST" and self._shard_id:
            while True:
                records = self._read(10000)
                if not records:
                    break
                self._after = records[-1]["dynamodb"]["SequenceNumber"]

    def _read(self, limit: int) -> list[dict[str, Any]]:
        streams = self.clients("dynamodbstreams")
        if self._after is None:
            iterator = streams.get_shard_iterator(
                StreamArn=self.spec.stream_arn, ShardId=self._shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        else:
            iterator = streams.get_shard_iterator(
                StreamArn=self.spec.stream_arn,
                ShardId=self._shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=self._after,
            )["ShardIterator"]
        answer = streams.get_records(ShardIterator=iterator, Limit=limit)
        forget_shard_iterators([iterator, answer.get("NextShardIterator", "")])
        return list(answer.get("Records", []))

    def run(self) -> None:
        interval = self.ACTIVE_INTERVAL
        while not self._stop_event.is_set():
            try:
                interval = self._poll_once()
            except Exception:
                if self._stop_event.is_set():
                    return
                log.exception("stream poller %s failed; retrying", self.source_name)
                interval = self.IDLE_INTERVAL
            self._sleep(interval)

    def _poll_once(self) -> float:
        """One poll; returns how long to wait before the next."""
        started = time.monotonic()
        if self._shard_id is None:
            self.start_position()
            if self._shard_id is None:
                return self.IDLE_INTERVAL
        batch = self._pending or [stream_record(raw, self.spec.stream_arn) for raw in self._read(self.spec.batch_size)]
        if not batch:
            with self._lock:
                self._last_empty_poll = started
            return self.IDLE_INTERVAL
        wanted = [record for record in batch if matches_any(self._patterns, record)]
        if not wanted:
            self._checkpoint(batch, [])
            return 0
        with self._lock:
            self._pending = batch
        result = self._invoke({"Records": wanted})
        sequence_numbers = {record["dynamodb"]["SequenceNumber"] for record in wanted}
        failed = failed_item_ids(result, self.spec.report_failures, sequence_numbers)
        if failed is not None and not failed:
            self._checkpoint(batch, [])
            return 0

        # Retry from the first failed record (all of them when the invocation failed).
        def retried(record: dict[str, Any]) -> bool:
            if failed is None:
                return record in wanted
            return record["dynamodb"]["SequenceNumber"] in failed

        first_failed = next((index for index, record in enumerate(batch) if retried(record)), 0)
        self._attempts += 1
        if 0 <= self.spec.max_retries < self._attempts:
            log.error(
                "%s: dropping %d records after %d failed attempts (MaximumRetryAttempts)",
                self.source_name,
                len(batch) - first_failed,
                self._attempts,
            )
            self._checkpoint(batch, [])
            return 0
        self._checkpoint(batch[:first_failed], batch[first_failed:])
        return min(5.0, 0.5 * 2 ** (self._attempts - 1))

    def _checkpoint(self, done: list[dict[str, Any]], pending: list[dict[str, Any]]) -> None:
        with self._lock:
            if done:
                self._after = done[-1]["dynamodb"]["SequenceNumber"]
            self._pending = pending
            if not pending:
                self._attempts = 0


class EventSources:
    """All pollers of the stack, plus anything else drain must wait for (async invocations)."""

    def __init__(
        self,
        queue_sources: list[QueueSourceSpec],
        stream_sources: list[StreamSourceSpec],
        runtime: FunctionRuntime,
        clock: LocalClock,
        clients: AwsClients,
    ) -> None:
        self.pollers: list[_Poller] = [SqsPoller(spec, runtime, clock, clients) for spec in queue_sources]
        self.pollers += [StreamPoller(spec, runtime, clock, clients) for spec in stream_sources]
        self.extra: list[DrainSource] = []

    def start(self) -> None:
        for poller in self.pollers:
            if isinstance(poller, StreamPoller):
                poller.start_position()
            poller.start()

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stop()
        for poller in self.pollers:
            poller.join(timeout=3)

    def drain(self, timeout: float, sleep: Callable[[float], None] = time.sleep) -> bool:
        """Wait until queues and streams are idle; False if ``timeout`` seconds were not enough."""
        sources: list[DrainSource] = [*self.pollers, *self.extra]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            round_start = time.monotonic()
            work_before = sum(source.work_done() for source in sources)
            for source in sources:
                source.wake()
            while not all(source.idle(round_start) for source in sources):
                if time.monotonic() > deadline:
                    return False
                sleep(0.02)
            if sum(source.work_done() for source in sources) == work_before:
                return True
        return False
