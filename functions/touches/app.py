"""Touches, on an EventBridge schedule (hourly, at minute 10 UTC): the welcome chain from the
first contact, then the periodic digest. Thin: the work is ``loyalty.touches``; the messages are
decided through ``loyalty.messaging.sending`` (the sender sends them, in the member's daytime, at
the SES rate, with consent, the marketing cap and suppression applied when they go).

Invoked asynchronously. An error (a member that failed, or time ran short) makes Lambda retry the
event, and what was decided is not decided twice; after the retries the event goes to the
dead-letter queue, whose alarm tells. Nothing needs replaying: the next hour's run finds every
marker still due. The event's content is not used: "now" is the clock's.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty import clock, touches
from loyalty.settings import settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = settings()
    job = touches.Job.for_tables(config.ledger_table, config.config_table)
    try:
        summary = job.run(clock.now(), seconds_left=lambda: context.get_remaining_time_in_millis() / 1000)
    except touches.TouchesUnfinished as unfinished:
        summary = unfinished.summary
        metrics.add_metric(name="TouchFailures", unit=MetricUnit.Count, value=len(summary.failed))
        metrics.add_metric(name="TouchRunsUnfinished", unit=MetricUnit.Count, value=1)
        _count(summary)
        logger.error("touches left for a retry", extra=summary.as_dict())
        raise
    _count(summary)
    logger.info("touches done", extra=summary.as_dict())
    return summary.as_dict()


def _count(summary: touches.Summary) -> None:
    metrics.add_metric(name="TouchesDue", unit=MetricUnit.Count, value=summary.due)
    metrics.add_metric(name="TouchesDecided", unit=MetricUnit.Count, value=summary.decided)
