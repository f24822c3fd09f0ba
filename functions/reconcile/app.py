"""The nightly reconciliation, on an EventBridge schedule: proves for every member that
``balance == sum(entries) == sum(open lots)`` and that the report counters equal the ledger
(``loyalty.reconcile``). Thin.

Drift is counted (``ReconciliationDrift``, with an alarm in the template), stored (``RECON`` /
``RUN#<day>``) and logged with ids only. The run's day is the scheduled event's ``time`` (a retry
checks the same days); ``{"segments": N}`` in the event sets the Scan's parallelism.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty import clock
from loyalty.reconcile import Reconciliation
from loyalty.settings import settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
DEFAULT_SEGMENTS = 4
RECHECK_WAIT_SECONDS = 2.0  # the stream's usual delay, before suspects are read again


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    at = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")) if event.get("time") else clock.now()
    segments = int(event.get("segments") or DEFAULT_SEGMENTS)
    job = Reconciliation(settings().ledger_table, segments=max(1, min(segments, 64)))
    result = job.run(at.date(), recheck_wait=lambda: time.sleep(RECHECK_WAIT_SECONDS))
    job.record(result)
    metrics.add_metric(name="ReconciliationDrift", unit=MetricUnit.Count, value=result["drift"])
    metrics.add_metric(name="ReconciledMembers", unit=MetricUnit.Count, value=result["members_checked"])
    summary = {k: v for k, v in result.items() if k not in ("members", "counter_drift", "lot_counter_drift")}
    if result["drift"]:
        logger.error(
            "the books do not balance",
            extra={
                **summary,
                "members": result["members"],
                "counter_drift": result["counter_drift"],
                "lot_counter_drift": result["lot_counter_drift"],
            },
        )
    else:
        logger.info("the books balance", extra=summary)
    return summary
