"""API Gateway TOKEN authorizer: ``Authorization: Bearer <key>`` -> tenant, key id and role.

Kept light on imports (no resolver, no pydantic routes): it runs before every uncached request.
Tracer and Metrics are here like on every function; API Gateway caches the answer per token
(``ReauthorizeEvery``), so their import cost is paid per cold start, not per request.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from loyalty import auth
from loyalty.settings import settings
from loyalty.store.config import ConfigStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)  # the policy names the tenant: keep it out of traces
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    token = auth.bearer_token(event.get("authorizationToken"))
    api_key = ConfigStore(settings().config_table).get_api_key(auth.key_hash(token)) if token else None
    if api_key is None or not api_key.active:
        metrics.add_metric(name="RejectedApiKey", unit=MetricUnit.Count, value=1)
        logger.info("rejected API key", extra={"key_id": auth.key_id_of(token) if token else None})
        raise Exception("Unauthorized")  # API Gateway answers 401 for exactly this message
    logger.append_keys(tenant_id=api_key.tenant_id, key_id=api_key.key_id)
    metrics.add_metric(name="AuthorizedApiKey", unit=MetricUnit.Count, value=1)
    logger.info("authorized")
    return auth.allow_policy(api_key, event["methodArn"])
