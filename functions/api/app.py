"""The web shop's HTTPS API (/v1). Thin: routes live in ``loyalty.api``; this wires them up."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty.api import ledger, members
from loyalty.api.idempotency import idempotency_middleware
from loyalty.web import build_resolver, handle

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = build_resolver([members.router, ledger.router], title="Loyalty engine API", version="1.0.0")
app.use([idempotency_middleware])


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(app, event, context)
