"""Keeps the report counters up from the ledger's DynamoDB stream (``loyalty.reports``).

The event source mapping delivers only what the reports count (its filter in the template): new
entries, new member items (enrolments) and every change of a lot. Each record is applied on its
own, in one transaction with the member's report state, so a redelivered record adds nothing; a
failed one is reported back (partial batch response) and retried from there.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty.reports import Consumer, StreamRecord
from loyalty.settings import settings
from loyalty.store.reports import ReportStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@cache
def consumer() -> Consumer:
    return Consumer(ReportStore(settings().ledger_table))


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> None:
    stream = record.dynamodb
    if stream is None:
        return
    applied = consumer().record(
        StreamRecord(
            event_name=record.event_name.name if record.event_name else "",
            keys=stream.keys or {},
            new_image=stream.new_image,
        )
    )
    metrics.add_metric(
        name="ReportRecordsApplied" if applied else "ReportRecordsSkipped", unit=MetricUnit.Count, value=1
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
