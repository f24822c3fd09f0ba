"""Sends the messages decided (``loyalty.messaging.sending``): one SQS message per send record.

Each record is processed on its own (partial batch response). The sender re-reads the send record
and takes it with a conditional lease, so a batch delivered twice, or two senders on one message,
send it once. A message that must wait (the send rate, a provider throttle or outage, another
sender's lease, not due yet) gets a visibility delay and is reported failed: SQS delivers it again
after the delay, never drops it (after 20 receives it goes to the dead-letter queue, whose alarm
tells; redrive it once the cause is fixed).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty.api.deps import stores
from loyalty.messaging.sending import Providers, RetryLater, Sender
from loyalty.settings import sending_settings, settings
from loyalty.store.sends import SendStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)
SAFETY_SECONDS = 5.0  # what is kept of the function's time for the last record's writes


@cache
def sender() -> Sender:
    return Sender(stores(), SendStore(settings().ledger_table), Providers(), sending_settings())


@cache
def _sqs() -> Any:
    return boto3.client("sqs")


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    message = json.loads(record.body)
    logger.append_keys(tenant_id=message.get("tenant_id"), member_id=message.get("member_id"), send=message.get("sk"))
    context = getattr(processor, "lambda_context", None)
    left = context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS if context else 5.0
    try:
        outcome = sender().process(
            message, receive_count=int(record.attributes.approximate_receive_count), max_wait=max(0.0, min(5.0, left))
        )
    except RetryLater as later:
        metrics.add_metric(name="MessagesDeferred", unit=MetricUnit.Count, value=1)
        logger.info("message deferred", extra={"reason": later.reason, "delay": later.delay})
        queue_url = sending_settings().send_queue_url
        _sqs().change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=later.delay
        )
        raise
    metrics.add_metric(name=f"Messages{outcome.status.capitalize()}", unit=MetricUnit.Count, value=1)
    logger.info("message " + outcome.status, extra={"reason": outcome.reason, "delivered": outcome.delivered})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
