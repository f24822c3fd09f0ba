"""Bonus notices from the ledger's DynamoDB stream (``loyalty.messaging.notices``): the event source
mapping delivers only new entries of the kinds customers are told about and new due notices
before a burn (its filter in the template); each becomes a decision to send
(``loyalty.messaging.sending``), or joins a notice still inside its burst window.

Each record is processed on its own and a failed one is reported back (partial batch response).
Every decision is written once under a deterministic key (and a joined entry is remembered), so a
redelivered record decides nothing twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty.api.deps import stores
from loyalty.messaging import notices
from loyalty.messaging.sending import decider

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> None:
    image = record.dynamodb.new_image if record.dynamodb else {}
    logger.append_keys(tenant_id=image.get("tenant_id"), member_id=image.get("member_id"))
    kind = notices.decide_from_stream(decider(), stores(), image)
    if kind:
        metrics.add_metric(name="NoticesDecided", unit=MetricUnit.Count, value=1)
        logger.info("notice decided", extra={"kind": kind, "sk": image.get("sk")})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
