"""A tenant's own message templates (overrides of the repository's files), in the ConfigTable.

One item per (kind, channel, locale) in the tenant's partition: ``T#<tenant>`` / ``TPL#<kind>#
<channel>#<locale>``, so one Query of ``TPL#<kind>#`` finds every override of a kind (what a
render needs), and no key crosses tenants. Each change is audited in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loyalty.models import Frozen
from loyalty.store import dynamo, keys


def template_sk(kind: str, channel: str | None = None, locale: str | None = None) -> str:
    """The override's sort key; without channel and locale, the prefix of the kind's overrides."""
    if channel is None:
        return f"TPL#{kind}#"
    return f"TPL#{kind}#{channel}#{locale}"


class TemplateOverride(Frozen):
    """A tenant's template for one kind, channel and locale: subject, html and text for email;
    text for SMS."""

    tenant_id: str
    kind: str
    channel: str
    locale: str
    subject: str | None = None
    html: str | None = None
    text: str
    updated_at: str
    updated_by: dict[str, str]


def _override(item: dict[str, Any]) -> TemplateOverride:
    return TemplateOverride.model_validate_json(item["doc"])


class TemplateStore(dynamo.Store):
    def overrides(self, tenant_id: str, kind: str) -> list[TemplateOverride]:
        """Every override of ``kind`` for the tenant (every channel and locale), one Query."""
        return [_override(item) for item in self.query_all(keys.tenant_pk(tenant_id), template_sk(kind))]

    def get(self, tenant_id: str, kind: str, channel: str, locale: str) -> TemplateOverride | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.tenant_pk(tenant_id), "sk": template_sk(kind, channel, locale)}),
            ConsistentRead=True,
        )
        return _override(dynamo.unmarshal(response["Item"])) if "Item" in response else None

    def put(self, override: TemplateOverride, also: Sequence[dict[str, Any]] = ()) -> None:
        item = {
            "pk": keys.tenant_pk(override.tenant_id),
            "sk": template_sk(override.kind, override.channel, override.locale),
            "doc": override.model_dump_json(),
        }
        self.client.transact_write_items(
            TransactItems=[{"Put": {"TableName": self.table, "Item": dynamo.marshal(item)}}, *also]
        )

    def delete(self, tenant_id: str, kind: str, channel: str, locale: str, also: Sequence[dict[str, Any]] = ()) -> None:
        """Delete the override (it must exist: a failed condition cancels the audit record too)."""
        key = {"pk": keys.tenant_pk(tenant_id), "sk": template_sk(kind, channel, locale)}
        delete = {
            "TableName": self.table,
            "Key": dynamo.marshal(key),
            "ConditionExpression": "attribute_exists(pk)",
        }
        self.client.transact_write_items(TransactItems=[{"Delete": delete}, *also])
