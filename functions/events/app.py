"""The ledger's DynamoDB stream, one consumer for what the customer is owed and told (the other
reader of the stream is ``functions/reports``; DynamoDB Streams serves at most two readers per
shard without throttling, so everything else that reacts to the ledger lives here):

- **referral bonuses** (``loyalty.referrals``): member items still ``referral_state: pending``,
  paid after the newcomer's first qualifying purchase;
- **bonus notices** (``loyalty.messaging.notices``): new entries of the kinds customers are told
  about and new due notices before a burn, each a decision to send (``loyalty.messaging.sending``)
  or joined to a notice still inside its burst window.

The event source mapping delivers only those items (its filters in the template), in batches;
each record is processed on its own and a failed one is reported back (partial batch response), so
one bad record never blocks the others for long. Every step is idempotent (the ledger's guards,
send records under deterministic keys): a redelivered record pays or decides nothing twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty import referrals
from loyalty.api.deps import ledger, stores
from loyalty.messaging import notices
from loyalty.messaging.sending import decider
from loyalty.store import keys

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def pay_referrals(tenant_id: str, member_id: str) -> None:
    paid = referrals.pay(ledger(), tenant_id, member_id)
    if paid:
        metrics.add_metric(name="ReferralBonusesPaid", unit=MetricUnit.Count, value=len(paid))
        logger.info("referral bonuses paid", extra={"entries": [p["entry_id"] for p in paid]})


def decide_notice(image: dict[str, Any]) -> None:
    kind = notices.decide_from_stream(decider(), stores(), image)
    if kind:
        metrics.add_metric(name="NoticesDecided", unit=MetricUnit.Count, value=1)
        logger.info("notice decided", extra={"kind": kind, "sk": image.get("sk")})


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> None:
    image = record.dynamodb.new_image if record.dynamodb else {}
    tenant_id, member_id = image.get("tenant_id"), image.get("member_id")
    if not tenant_id or not member_id:
        logger.warning("record without a member; skipped", extra={"event_id": record.event_id})
        return
    logger.append_keys(tenant_id=tenant_id, member_id=member_id)
    if image.get("sk") == keys.MEMBER_SK:
        pay_referrals(tenant_id, member_id)
    else:
        decide_notice(image)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
