"""Tenants, API keys and programs (the ConfigTable)."""

from __future__ import annotations

from typing import Any

from loyalty.models import ApiKey, Program
from loyalty.store import dynamo, keys


class ConfigStore:
    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or dynamo.client()

    # --------------------------------------------------------------- API keys
    def get_api_key(self, key_hash: str) -> ApiKey | None:
        response = self.client.get_item(
            TableName=self.table, Key=dynamo.marshal({"pk": keys.api_key_pk(key_hash), "sk": "KEY"})
        )
        if "Item" not in response:
            return None
        item = dynamo.unmarshal(response["Item"])
        return ApiKey(key_id=item["key_id"], tenant_id=item["tenant_id"], role=item["role"], active=item["active"])

    def put_api_key(self, key_hash: str, api_key: ApiKey, created_at: str) -> None:
        item = {"pk": keys.api_key_pk(key_hash), "sk": "KEY", "created_at": created_at, **api_key.model_dump()}
        self.client.put_item(TableName=self.table, Item=dynamo.marshal(item))

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
        programs: list[Program] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": dynamo.values({":pk": keys.tenant_pk(tenant_id), ":p": "P#"}),
        }
        while True:  # every page, not just the first
            page = self.client.query(**kwargs)
            programs += [Program.model_validate_json(dynamo.unmarshal(i)["doc"]) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return programs
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
