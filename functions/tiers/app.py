"""The nightly tier review, on an EventBridge schedule (daily, 00:15 UTC): lowers the tier of
``spend_window`` members whose window no longer reaches it. Thin: the work is ``loyalty.tiers``.

Invoked asynchronously: an error (reviews left for lack of time, or a member that kept failing)
makes Lambda retry the event, and what was done is not redone; after the retries the event goes to
the dead-letter queue, whose alarm tells. The event's content is not used: "today" is the clock's.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty import tiers
from loyalty.settings import settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = settings()
    ledger = tiers.ledger_for_job(config.ledger_table, config.config_table)
    try:
        summary = tiers.review_due(ledger, seconds_left=lambda: context.get_remaining_time_in_millis() / 1000)
    except tiers.ReviewUnfinished:
        metrics.add_metric(name="TierReviewsUnfinished", unit=MetricUnit.Count, value=1)
        logger.exception("tier reviews left for a retry")
        raise
    metrics.add_metric(name="TierReviews", unit=MetricUnit.Count, value=summary.reviewed)
    metrics.add_metric(name="TierDowngrades", unit=MetricUnit.Count, value=summary.downgrades)
    logger.info("tier reviews done", extra=summary.as_dict())
    return summary.as_dict()
