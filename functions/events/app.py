"""Reacts to the ledger's DynamoDB stream: today, referral bonuses due after a newcomer's first
qualifying purchase (``loyalty.referrals``).

The event source mapping delivers only member items still ``referral_state: pending`` (its filter
in the template), in batches; each record is processed on its own and a failed one is reported
back (partial batch response), so one bad member never blocks the others. Every step is
idempotent (guards in the ledger): a redelivered record credits nothing twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty import referrals
from loyalty.api.deps import ledger

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> None:
    image = record.dynamodb.new_image if record.dynamodb else {}
    tenant_id, member_id = image.get("tenant_id"), image.get("member_id")
    if not tenant_id or not member_id:
        logger.warning("record without a member; skipped", extra={"event_id": record.event_id})
        return
    logger.append_keys(tenant_id=tenant_id, member_id=member_id)
    paid = referrals.pay(ledger(), tenant_id, member_id)
    if paid:
        metrics.add_metric(name="ReferralBonusesPaid", unit=MetricUnit.Count, value=len(paid))
        logger.info("referral bonuses paid", extra={"entries": [p["entry_id"] for p in paid]})


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
