"""The web shop's HTTPS API (/v1). Thin: routes live in ``loyalty.api``; this wires them up."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty.api import broadcasts, cards, companies, consents, ledger, members, touches, unsubscribe
from loyalty.api.access import access_guard
from loyalty.api.deps import stores
from loyalty.api.idempotency import idempotency_middleware
from loyalty.web import build_resolver, handle

logger = Logger()
tracer = Tracer()
metrics = Metrics()


def _admin_routers() -> list[Any]:
    """The routes AdminFunction serves, named here only so that /v1/openapi.json describes the
    whole API in one document; imported when the document is first asked for, not at cold start."""
    from loyalty.api import admin, programs, reports, simulations, templates

    return [admin.router, programs.router, simulations.router, reports.router, templates.router]


app = build_resolver(
    [
        members.router,
        ledger.router,
        cards.router,
        companies.router,
        consents.router,
        unsubscribe.router,
        touches.router,
        broadcasts.router,
    ],
    documented_elsewhere=_admin_routers,
)
app.use([idempotency_middleware])
guards = [access_guard(lambda: stores().config)]
FORM_ROUTES = {("POST", "/v1/unsubscribe/{token}")}  # RFC 8058: the mail client posts a form


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(app, event, context, guards, form_routes=FORM_ROUTES)
