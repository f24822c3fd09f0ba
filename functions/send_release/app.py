"""The hourly release of messages that waited (``loyalty.messaging.sending.release_due``): every
send record due by now that is not on the send queue, found through the due index (4 shards of
gsi1), is enqueued: the morning after quiet hours, a decision for a later day, an enqueue that was
lost. Thin; on an EventBridge Scheduler schedule at minute 0 of every hour.

Invoked asynchronously. Enqueueing twice is harmless (the sender sends a record once); a failed
run is retried by Lambda, then dead-lettered, and the next hour's run releases what is due anyway.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty import clock
from loyalty.messaging.sending import SendQueue, release_due
from loyalty.settings import sending_settings, settings
from loyalty.store.sends import SendStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    released = release_due(
        SendStore(settings().ledger_table), SendQueue(sending_settings().send_queue_url), clock.now()
    )
    metrics.add_metric(name="MessagesReleased", unit=MetricUnit.Count, value=released)
    logger.info("messages released", extra={"released": released})
    return {"released": released}
