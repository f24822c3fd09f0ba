"""The audit log: manual and administrative actions, who did them, when and why.

One partition per tenant (``T#<tenant>#AUDIT``), sorted by time. It holds what people do by hand
(adjustments, transfers, API keys, access rules, erasures), not the shop's automated purchases and
redemptions: those carry their actor on the ledger entry itself. Manual actions are orders of
magnitude below the 1,000 writes per second one partition takes, so the partition is not a hot key.
Each record is written in the same transaction as the action it records.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from loyalty import clock
from loyalty.errors import InvalidRequest
from loyalty.models import Actor, Frozen
from loyalty.store import dynamo, keys


class AuditRecord(Frozen):
    audit_id: str
    action: str = Field(description="What was done, e.g. adjustment, transfer, key.create, member.erase.")
    actor: dict[str, str] = Field(description="key_id and role of the API key that did it.")
    created_at: str
    reason: str | None = None
    member_id: str | None = None
    target: str | None = Field(default=None, description="What the action was about: an entry, key or member id.")
    details: dict[str, Any] | None = None


def precise(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds: records of one second still sort in the order they happened."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def record(
    actor: Actor,
    action: str,
    *,
    ref: str,
    at: datetime | None = None,
    reason: str | None = None,
    member_id: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditRecord:
    """An audit record whose id derives from the action and its business key (a retry names the same)."""
    return AuditRecord(
        audit_id=keys.stable_id("aud", actor.tenant_id, action, ref),
        action=action,
        actor={"key_id": actor.key_id, "role": actor.role.value},
        created_at=precise(at or clock.now()),
        reason=reason,
        member_id=member_id,
        target=target,
        details=details,
    )


def put_item(table: str, tenant_id: str, audit: AuditRecord) -> dict[str, Any]:
    """The ``Put`` of a transaction that writes ``audit`` (once: a replay finds it there)."""
    item = {
        "pk": keys.audit_pk(tenant_id),
        "sk": f"{audit.created_at}#{audit.audit_id}",
        "doc": audit.model_dump_json(exclude_none=True),
        "action": audit.action,
        "key_id": audit.actor["key_id"],
        "member_id": audit.member_id,
    }
    put = {"TableName": table, "Item": dynamo.marshal(item), "ConditionExpression": "attribute_not_exists(pk)"}
    return {"Put": put}


class AuditStore(dynamo.Store):
    def list(
        self,
        tenant_id: str,
        *,
        since: str,
        until: str,
        limit: int,
        cursor: str | None = None,
        action: str | None = None,
        key_id: str | None = None,
        member_id: str | None = None,
    ) -> tuple[list[AuditRecord], str | None]:
        """Newest first within ``[since, until]`` (RFC 3339), filtered; returns a page and a cursor."""
        filters, values = [], {":pk": keys.audit_pk(tenant_id), ":lo": since, ":hi": until + "\uffff"}
        names = {}
        for name, value in (("action", action), ("key_id", key_id), ("member_id", member_id)):
            if value is not None:  # names go through #placeholders: ACTION is a reserved word
                filters.append(f"#{name} = :{name}")
                values[f":{name}"] = value
                names[f"#{name}"] = name
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": dynamo.values(values),
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        if filters:
            kwargs["FilterExpression"] = " AND ".join(filters)
            kwargs["ExpressionAttributeNames"] = names
        if cursor:
            kwargs["ExclusiveStartKey"] = dynamo.marshal({"pk": keys.audit_pk(tenant_id), "sk": _decode(cursor)})
        records: list[AuditRecord] = []
        last_sk: str | None = None
        while len(records) < limit:  # a filter may leave a page short: read on until full or done
            page = self.client.query(**kwargs, Limit=limit - len(records) if not filters else 100)
            for raw in page["Items"]:
                item = dynamo.unmarshal(raw)
                if len(records) < limit:
                    records.append(AuditRecord.model_validate_json(item["doc"]))
                    last_sk = item["sk"]
            if "LastEvaluatedKey" not in page:
                return records, (_encode(last_sk) if len(records) == limit and last_sk else None)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return records, _encode(last_sk) if last_sk else None


def _encode(sk: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"sk": sk}).encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        sk = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["sk"]
        if not isinstance(sk, str):
            raise TypeError
        return sk
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidRequest("cursor is not one this endpoint returned; start without it.", field="cursor") from error
