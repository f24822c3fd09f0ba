"""SES bounces and complaints (``loyalty.messaging.feedback``): the configuration set's event
destination publishes them to the feedback topic, which delivers them raw to the bounces queue.

A permanent bounce or a complaint suppresses the address (the sender never sends to it again) and
records a consent change (via ``bounce`` / ``complaint``). Each record on its own (partial batch
response); both writes are idempotent, so a redelivery changes nothing twice. After 5 receives a
message goes to the bounces dead-letter queue, whose alarm tells.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty.messaging import consents, feedback
from loyalty.settings import settings
from loyalty.store.sends import SendStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    body = json.loads(record.body)
    if body.get("Type") == "Notification" and isinstance(body.get("Message"), str):
        body = json.loads(body["Message"])  # delivered without raw message delivery
    done = feedback.handle(SendStore(settings().ledger_table), consents.change, body)
    if done:
        metrics.add_metric(name=f"Ses{done['via'].capitalize()}s", unit=MetricUnit.Count, value=1)
        logger.info("address suppressed", extra=done)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
