"""API keys: how they are made, stored (as hashes only) and turned into an IAM policy."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from loyalty.models import ApiKey

KEY_PREFIX = "lk_"
BEARER = re.compile(r"^Bearer ([A-Za-z0-9_.~-]{16,128})$")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str:
    """A public name for a key (safe to log and to show in audit lines)."""
    return "key_" + key_hash(key)[:12]


def bearer_token(header: str | None) -> str | None:
    match = BEARER.match(header or "")
    return match.group(1) if match else None


def api_scope_arn(method_arn: str) -> str:
    """``arn:…:api-id/stage/GET/v1/x`` -> ``arn:…:api-id/stage/*/*``.

    API Gateway caches the authorizer's policy per token for every route, so the policy must
    cover the whole API, not only the route that happened to be called first.
    """
    arn, _, path = method_arn.partition(":execute-api:")
    region_account_api, *rest = path.split("/")
    stage = rest[0] if rest else "*"
    return f"{arn}:execute-api:{region_account_api}/{stage}/*/*"


def allow_policy(api_key: ApiKey, method_arn: str) -> dict[str, Any]:
    return {
        "principalId": api_key.key_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": api_scope_arn(method_arn)}],
        },
        # Context values must be strings, numbers or booleans.
        "context": {"tenant_id": api_key.tenant_id, "key_id": api_key.key_id, "role": api_key.role.value},
    }
