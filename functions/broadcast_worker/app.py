"""Broadcasts' worker: one SQS message from BroadcastQueue per Scan page of a broadcast's segment.
Thin: the work is ``loyalty.broadcasts.Worker`` (decide ``broadcast#<id>`` for each member of the
segment on the page through ``sending.decide``, move the cursor kept in the broadcast item, send
itself the next page's message).

Each record is processed on its own and a failed one is reported back (partial batch response):
SQS delivers it again after the visibility timeout and the same page is scanned again (what was
decided is not decided twice); after 5 receives it goes to the broadcast dead-letter queue, whose
alarm tells, and a redrive resumes from the cursor kept.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty import broadcasts
from loyalty.messaging import sending
from loyalty.settings import settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@cache
def worker() -> broadcasts.Worker:
    table = settings().ledger_table
    queue = broadcasts.BroadcastQueue(os.environ["BROADCAST_QUEUE_URL"])
    return broadcasts.Worker(broadcasts.BroadcastStore(table), queue, sending.decide)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    receive_count = int(record.attributes.approximate_receive_count or 1)
    result = worker().handle(json.loads(record.body), receive_count=receive_count)
    logger.info("broadcast page", extra={"broadcast": json.loads(record.body), **result})
    if result["outcome"] == "page":
        metrics.add_metric(name="BroadcastMembersScanned", unit=MetricUnit.Count, value=result["scanned"])
        metrics.add_metric(name="BroadcastMessagesDecided", unit=MetricUnit.Count, value=result["decided"])


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
