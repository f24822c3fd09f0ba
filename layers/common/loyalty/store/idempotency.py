"""Stored responses for the ``Idempotency-Key`` header (replay only; the ledger's own guards
make effects exactly-once whether or not a client sends the header)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from loyalty.store import dynamo, keys

RETENTION_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    body: str
    content_type: str


class IdempotencyStore(dynamo.Store):
    def _key(self, tenant_id: str, key: str) -> dict[str, Any]:
        return dynamo.marshal({"pk": f"{keys.tenant_pk(tenant_id)}#{keys.idempotency_key_sk(key)}", "sk": "IK"})

    def get(self, tenant_id: str, key: str) -> StoredResponse | None:
        response = self.client.get_item(TableName=self.table, Key=self._key(tenant_id, key), ConsistentRead=True)
        if "Item" not in response:
            return None
        item = dynamo.unmarshal(response["Item"])
        return StoredResponse(item["fingerprint"], int(item["status"]), item["body"], item["content_type"])

    def put(self, tenant_id: str, key: str, stored: StoredResponse) -> None:
        item = {
            **dynamo.unmarshal(self._key(tenant_id, key)),
            "fingerprint": stored.fingerprint,
            "status": stored.status,
            "body": stored.body,
            "content_type": stored.content_type,
            "ttl": int(time.time()) + RETENTION_SECONDS,
        }
        try:
            self.client.put_item(
                TableName=self.table, Item=dynamo.marshal(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:  # a concurrent twin stored first: its response stands
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
