"""Tenants, API keys and programs (the ConfigTable)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loyalty.access import AccessPolicy
from loyalty.models import ApiKey, Program
from loyalty.store import dynamo, keys

_NEW = {"ConditionExpression": "attribute_not_exists(pk)"}


def _api_key(item: dict[str, Any]) -> ApiKey:
    return ApiKey.model_validate({field: item[field] for field in ApiKey.model_fields if field in item})


class ConfigStore:
    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or dynamo.client()

    # --------------------------------------------------------------- API keys
    # Each key is two items written together: ``KEY#<hash>`` (what the authorizer looks up, by the
    # hash of the presented key) and ``T#<tenant>`` / ``K#<key id>`` (the tenant's list of its keys,
    # holding the hash so that a key can be revoked by its public id).
    def get_api_key(self, key_hash: str) -> ApiKey | None:
        response = self.client.get_item(
            TableName=self.table, Key=dynamo.marshal({"pk": keys.api_key_pk(key_hash), "sk": "KEY"})
        )
        if "Item" not in response:
            return None
        return _api_key(dynamo.unmarshal(response["Item"]))

    def put_api_key(self, key_hash: str, api_key: ApiKey, created_at: str, also: Sequence[dict[str, Any]] = ()) -> None:
        """Write a new key (both items); ``also``: more transaction items, e.g. its audit record."""
        fields = {"created_at": created_at, **api_key.model_dump(mode="json")}
        by_hash = {"pk": keys.api_key_pk(key_hash), "sk": "KEY", **fields}
        by_tenant = {"pk": keys.tenant_pk(api_key.tenant_id), "sk": keys.key_sk(api_key.key_id), "hash": key_hash}
        self.client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": self.table, "Item": dynamo.marshal(by_hash), **_NEW}},
                {"Put": {"TableName": self.table, "Item": dynamo.marshal({**by_tenant, **fields}), **_NEW}},
                *also,
            ]
        )

    def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        items = self._query_all(keys.tenant_pk(tenant_id), "K#")
        return sorted((_api_key(item) for item in items), key=lambda key: (key.created_at, key.key_id))

    def tenant_api_key(self, tenant_id: str, key_id: str) -> tuple[ApiKey, str] | None:
        """A key of this tenant by its public id, with its hash; None if the tenant has no such key."""
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.tenant_pk(tenant_id), "sk": keys.key_sk(key_id)}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        item = dynamo.unmarshal(response["Item"])
        return _api_key(item), item["hash"]

    def revoke_api_key(
        self, tenant_id: str, key_id: str, key_hash: str, revoked_at: str, also: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Mark both items of a key inactive, in one transaction (only this tenant's key)."""
        update = {
            "UpdateExpression": "SET active = :f, revoked_at = :at",
            "ConditionExpression": "tenant_id = :t",
            "ExpressionAttributeValues": dynamo.values({":f": False, ":at": revoked_at, ":t": tenant_id}),
        }
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": dynamo.marshal({"pk": keys.api_key_pk(key_hash), "sk": "KEY"}),
                        **update,
                    }
                },
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": dynamo.marshal({"pk": keys.tenant_pk(tenant_id), "sk": keys.key_sk(key_id)}),
                        **update,
                    }
                },
                *also,
            ]
        )

    # --------------------------------------------------------------- access policy
    def get_access_policy(self, tenant_id: str) -> AccessPolicy:
        response = self.client.get_item(
            TableName=self.table, Key=dynamo.marshal({"pk": keys.tenant_pk(tenant_id), "sk": keys.ACCESS_SK})
        )
        if "Item" not in response:
            return AccessPolicy()
        return AccessPolicy.model_validate_json(dynamo.unmarshal(response["Item"])["doc"])

    def put_access_policy(self, tenant_id: str, policy: AccessPolicy, also: Sequence[dict[str, Any]] = ()) -> None:
        item = {"pk": keys.tenant_pk(tenant_id), "sk": keys.ACCESS_SK, "doc": policy.model_dump_json()}
        self.client.transact_write_items(
            TransactItems=[{"Put": {"TableName": self.table, "Item": dynamo.marshal(item)}}, *also]
        )

    def _query_all(self, pk: str, prefix: str) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": dynamo.values({":pk": pk, ":p": prefix}),
        }
        items: list[dict[str, Any]] = []
        while True:  # every page, not just the first
            page = self.client.query(**kwargs)
            items += [dynamo.unmarshal(item) for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --------------------------------------------------------------- tenants
    def put_tenant(self, tenant_id: str, *, default_program_id: str, name: str) -> None:
        item = {
            "pk": keys.tenant_pk(tenant_id),
            "sk": keys.TENANT_SK,
            "tenant_id": tenant_id,
            "default_program_id": default_program_id,
            "name": name,
        }
        self.client.put_item(TableName=self.table, Item=dynamo.marshal(item))

    def default_program_id(self, tenant_id: str) -> str | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.tenant_pk(tenant_id), "sk": keys.TENANT_SK}),
            ProjectionExpression="default_program_id",
        )
        item = dynamo.unmarshal(response.get("Item", {}))
        return item.get("default_program_id")

    # --------------------------------------------------------------- programs
    def get_program(self, tenant_id: str, program_id: str) -> Program | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.tenant_pk(tenant_id), "sk": keys.program_sk(program_id)}),
        )
        if "Item" not in response:
            return None
        return Program.model_validate_json(dynamo.unmarshal(response["Item"])["doc"])

    def put_program(self, program: Program) -> None:
        item = {
            "pk": keys.tenant_pk(program.tenant_id),
            "sk": keys.program_sk(program.program_id),
            "doc": program.model_dump_json(),
        }
        self.client.put_item(TableName=self.table, Item=dynamo.marshal(item))

    def list_programs(self, tenant_id: str) -> list[Program]:
        return [Program.model_validate_json(item["doc"]) for item in self._query_all(keys.tenant_pk(tenant_id), "P#")]
