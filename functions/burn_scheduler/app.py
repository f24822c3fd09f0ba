"""The nightly burn's scheduler, on an hourly EventBridge Scheduler schedule. Thin: the work is
``loyalty.burning.run_tenants``.

Each tenant's night begins at its own burn time in its own time zone (the tenant's settings,
``PUT /v1/settings``; ``BurnTimeZone`` for a tenant that names none). For every tenant whose night
has begun and is not done, it finds, through the sparse due index (16 shards of gsi1 per tenant and
date), every member with points due on each night from the one after the tenant's last finished
night (its checkpoint) up to tonight, in order, and every member with points due ``d`` days later
for each reminder offset; it sends one message per member to the burn queue (SendMessageBatch),
where the worker burns or records the reminder. Its cost follows what is due, not the size of the
table.

Invoked asynchronously; it decides at the schedule's ``scheduled_time`` (in the event), so a retry
decides as the scheduled run would have. A failed run is retried by Lambda, then dead-lettered; a
message sent twice is harmless (the worker's guards).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty import burning, clock
from loyalty.settings import settings
from loyalty.store import dynamo
from loyalty.store.burn import BurnStore, reminder_days
from loyalty.store.config import ConfigStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()


class SendFailed(RuntimeError):
    """SQS did not take every message of a batch: the run fails, and its retry sends again."""


def run_instant(event: dict[str, Any], now: datetime) -> datetime:
    """When the run is for: the schedule's time (``scheduled_time`` in the Input), else now."""
    text = event.get("scheduled_time") if isinstance(event, dict) else None
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else now


def sender(queue_url: str) -> Any:
    sqs = boto3.client("sqs")

    def send_batch(messages: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "MessageBody": json.dumps(m, sort_keys=True)} for i, m in enumerate(messages)]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if response.get("Failed"):
            raise SendFailed(f"{len(response['Failed'])} of {len(entries)} messages were not sent")

    return send_batch


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = settings()
    at = run_instant(event, clock.now())
    store = BurnStore(config.ledger_table)
    tenants = ConfigStore(config.config_table).all_tenant_settings()
    offsets = reminder_days(config.config_table, dynamo.client())
    default_zone = os.environ.get("BURN_TIME_ZONE", "UTC")
    summary = burning.run_tenants(store, tenants, default_zone, offsets, sender(os.environ["BURN_QUEUE_URL"]), at)
    nights = sum(len(n) for n in summary["tenants"].values())
    metrics.add_metric(name="BurnNights", unit=MetricUnit.Count, value=nights)
    metrics.add_metric(name="BurnMembersDue", unit=MetricUnit.Count, value=summary["burn"])
    metrics.add_metric(name="BurnRemindersDue", unit=MetricUnit.Count, value=summary["remind"])
    logger.info("burn messages sent", extra={"at": clock.isoformat(at), **summary})
    return {"at": clock.isoformat(at), **summary}
