"""The tenant's administration (/v1/keys, /v1/access, /v1/audit, /v1/programs): API keys, roles, the
audit log, the loyalty programs.

A function of its own so that only it may write API keys and access rules (least privilege: the
shop-facing API function cannot mint a key even if a bug let it try).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty.api import admin, programs, reports, simulations, templates
from loyalty.api.access import access_guard
from loyalty.api.deps import stores
from loyalty.api.idempotency import idempotency_middleware
from loyalty.web import build_resolver, handle

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = build_resolver(
    [admin.router, programs.router, simulations.router, reports.router, templates.router], serve_openapi=False
)
app.use([idempotency_middleware])
guards = [access_guard(lambda: stores().config)]


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(app, event, context, guards)
