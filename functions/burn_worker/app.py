"""The nightly burn's worker: one SQS message per member from the burn scheduler. ``burn``
messages burn the member's points due by the night (``Ledger.burn``), ``remind`` messages record
a due notice before a burn (``loyalty.burning.remind``).

Each record is processed on its own and a failed one is reported back (partial batch response):
SQS delivers it again after the visibility timeout, and after 5 receives it goes to the burn
dead-letter queue, whose alarm tells. Every step re-reads the member consistently and is guarded,
so a redelivery burns and records nothing twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty import burning
from loyalty.api.deps import ledger

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    result = burning.handle_message(ledger(), record.body)
    if result and "burned" in result:
        logger.info(
            "burned", extra={"member_id": result["member_id"], "night": result["night"], "points": result["points"]}
        )
        metrics.add_metric(name="PointsBurned", unit=MetricUnit.Count, value=result["points"])
        metrics.add_metric(name="LotsBurned", unit=MetricUnit.Count, value=len(result["burned"]))
    elif result:
        metrics.add_metric(name="BurnRemindersRecorded", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
