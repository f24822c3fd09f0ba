"""The birthday bonus, on an EventBridge schedule (hourly, at minute 5 UTC): pays each member whose
birthday it is in their own time zone their program's birthday bonus, once a year, and decides
their birthday greeting with a single-use coupon (``sending.decide``: due at 10:00 local time, sent
by SenderFunction with consent, the marketing cap and quiet hours applied). Thin: the work is
``loyalty.birthdays``.

Invoked asynchronously. The run decides at the event's ``time`` (the scheduled instant), so a retry
or a replay from the dead-letter queue decides as the scheduled run would have. An error (a member
that failed, or time ran short) makes Lambda retry the event, and what was done is not redone;
after the retries the event goes to the dead-letter queue, whose alarm tells.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty import birthdays, clock
from loyalty.messaging import sending
from loyalty.settings import settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    at = birthdays.run_instant(event, clock.now())
    config = settings()
    job = birthdays.Job.for_tables(config.ledger_table, config.config_table, greet=sending.decide)
    try:
        summary = job.run(at, seconds_left=lambda: context.get_remaining_time_in_millis() / 1000)
    except birthdays.BirthdaysUnfinished as unfinished:
        summary = unfinished.summary
        metrics.add_metric(name="BirthdayBonusFailures", unit=MetricUnit.Count, value=len(summary.failed))
        metrics.add_metric(name="BirthdayRunsUnfinished", unit=MetricUnit.Count, value=1)
        _count(summary)
        logger.error("birthday bonuses left for a retry", extra=summary.as_dict())
        raise
    _count(summary)
    logger.info("birthday bonuses done", extra=summary.as_dict())
    return summary.as_dict()


def _count(summary: birthdays.Summary) -> None:
    metrics.add_metric(name="BirthdayBonusesPaid", unit=MetricUnit.Count, value=summary.paid)
    metrics.add_metric(name="BirthdayBonusPoints", unit=MetricUnit.Count, value=summary.points)
    metrics.add_metric(name="BirthdayCandidates", unit=MetricUnit.Count, value=summary.candidates)
    metrics.add_metric(name="BirthdayGreetingsDecided", unit=MetricUnit.Count, value=summary.greeted)
