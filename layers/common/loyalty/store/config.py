"""Tenants, API keys and programs (the ConfigTable)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loyalty import clock, program_versions
from loyalty.access import AccessPolicy
from loyalty.models import ApiKey, Program, TenantSettings
from loyalty.program_versions import ProgramVersion
from loyalty.store import dynamo, keys
from loyalty.store.burn import reminder_days_update

_NEW = {"ConditionExpression": "attribute_not_exists(pk)"}


def _api_key(item: dict[str, Any]) -> ApiKey:
    return ApiKey.model_validate({field: item[field] for field in ApiKey.model_fields if field in item})


@dataclass(frozen=True)
class ProgramHead:
    """A program's head item: its newest version number and the versions in force or scheduled."""

    program_id: str
    latest_version: int
    versions: tuple[ProgramVersion, ...]
    legacy: bool = False  # written before versions existed (``doc`` only)

    @property
    def latest(self) -> ProgramVersion:
        return max(self.versions, key=lambda version: version.version)


def _program_head(item: dict[str, Any]) -> ProgramHead:
    if "versions" not in item:
        program = Program.model_validate_json(item["doc"])
        legacy = ProgramVersion(version=1, effective_from=None, program=program)
        return ProgramHead(program.program_id, 1, (legacy,), legacy=True)
    versions = tuple(ProgramVersion.model_validate(v) for v in json.loads(item["versions"]))
    return ProgramHead(item["program_id"], int(item["latest_version"]), versions)


class ConfigStore(dynamo.Store):
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
        items = self.query_all(keys.tenant_pk(tenant_id), "K#")
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
        self._register(tenant_id)

    def _register(self, tenant_id: str) -> None:
        """The tenant in the registry, with default settings unless it has some."""
        self.client.update_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.TENANTS_PK, "sk": tenant_id}),
            UpdateExpression="SET #d = if_not_exists(#d, :d)",
            ExpressionAttributeNames={"#d": "doc"},
            ExpressionAttributeValues=dynamo.values({":d": TenantSettings().model_dump_json()}),
        )

    # The registry of tenants (``TENANTS`` / ``<tenant id>``, one item each) holds each tenant's
    # settings, so that a job for every tenant (the nightly burn) reads them all with one Query.
    def tenant_settings(self, tenant_id: str) -> TenantSettings | None:
        """The tenant's settings; None for a tenant that is not in the registry."""
        response = self.client.get_item(
            TableName=self.table, Key=dynamo.marshal({"pk": keys.TENANTS_PK, "sk": tenant_id}), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        return TenantSettings.model_validate_json(dynamo.unmarshal(response["Item"])["doc"])

    def put_tenant_settings(
        self, tenant_id: str, tenant_settings: TenantSettings, also: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Replace the settings of a tenant in the registry (it must be there); ``also``: more
        transaction items, e.g. the audit record."""
        item = {"pk": keys.TENANTS_PK, "sk": tenant_id, "doc": tenant_settings.model_dump_json()}
        put = {"TableName": self.table, "Item": dynamo.marshal(item), "ConditionExpression": "attribute_exists(pk)"}
        self.client.transact_write_items(TransactItems=[{"Put": put}, *also])

    def register_tenants(self) -> int:
        """Put every tenant item of the table into the registry (those already there keep their
        settings): the upgrade of a table written before the registry existed. A Scan, for a
        one-off command only. Answers how many tenants there are."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk = :tenant",
            "ExpressionAttributeValues": dynamo.values({":tenant": keys.TENANT_SK}),
            "ProjectionExpression": "tenant_id",
        }
        tenants = 0
        for page in self.pages("scan", kwargs):
            for item in map(dynamo.unmarshal, page["Items"]):
                self._register(item["tenant_id"])
                tenants += 1
        return tenants

    def all_tenant_settings(self) -> list[tuple[str, TenantSettings]]:
        """Every tenant of the registry with its settings, in tenant id order."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": dynamo.values({":pk": keys.TENANTS_PK}),
            "ConsistentRead": True,
        }
        found: list[tuple[str, TenantSettings]] = []
        for page in self.pages("query", kwargs):
            for item in map(dynamo.unmarshal, page["Items"]):
                found.append((item["sk"], TenantSettings.model_validate_json(item["doc"])))
        return found

    def default_program_id(self, tenant_id: str) -> str | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.tenant_pk(tenant_id), "sk": keys.TENANT_SK}),
            ProjectionExpression="default_program_id",
        )
        item = dynamo.unmarshal(response.get("Item", {}))
        return item.get("default_program_id")

    # --------------------------------------------------------------- programs
    # A program is a head item ``T#<tenant>`` / ``P#<id>`` that holds the versions in force now or
    # scheduled (a few: ``program_versions.live``), so that the ledger reads the version in force
    # with one GetItem, and one immutable item per version, ``PV#<id>#<version>`` (the history).
    # A head written before versions existed holds only ``doc``: it reads as version 1, in force
    # since the program began, and its first new version writes that one into the history too.
    def _program_head_item(self, tenant_id: str, program_id: str, *, consistent: bool) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.tenant_pk(tenant_id), "sk": keys.program_sk(program_id)}),
            ConsistentRead=consistent,
        )
        return dynamo.unmarshal(response["Item"]) if "Item" in response else None

    def program_head(self, tenant_id: str, program_id: str, *, consistent: bool = True) -> ProgramHead | None:
        item = self._program_head_item(tenant_id, program_id, consistent=consistent)
        return _program_head(item) if item else None

    def get_program(self, tenant_id: str, program_id: str) -> Program | None:
        """The version of the program in force now (``loyalty.clock``); None if there is no such
        program, or none of its versions has taken effect yet. One GetItem, as before versions."""
        head = self.program_head(tenant_id, program_id, consistent=False)
        current = program_versions.in_force(head.versions, program_versions.instant(clock.now())) if head else None
        return current.program if current else None

    def program_heads(self, tenant_id: str) -> list[ProgramHead]:
        items = self.query_all(keys.tenant_pk(tenant_id), "P#", consistent=True)
        return sorted((_program_head(item) for item in items), key=lambda head: head.program_id)

    def list_programs(self, tenant_id: str) -> list[Program]:
        """Every program of the tenant as it is in force now (programs not in force yet left out)."""
        at = program_versions.instant(clock.now())
        current = (program_versions.in_force(head.versions, at) for head in self.program_heads(tenant_id))
        return [version.program for version in current if version is not None]

    def program_history(self, tenant_id: str, program_id: str) -> list[ProgramVersion] | None:
        """Every version of the program, oldest first; None if there is no such program."""
        head = self.program_head(tenant_id, program_id)
        if head is None:
            return None
        items = self.query_all(keys.tenant_pk(tenant_id), keys.program_version_sk(program_id), consistent=True)
        stored = {version.version: version for version in head.versions if head.legacy}
        stored.update((int(item["version"]), ProgramVersion.model_validate_json(item["doc"])) for item in items)
        return [stored[number] for number in sorted(stored)]

    def put_program_version(
        self,
        head: ProgramHead | None,
        new: ProgramVersion,
        keep: Sequence[ProgramVersion],
        also: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Store ``new`` (its history item) and make ``keep`` the head's versions, in one
        transaction with ``also`` (the audit record). ``head`` is what was read: the write fails
        with ConditionalCheckFailed if another version was stored meanwhile."""
        program = new.program
        pk, sk = keys.tenant_pk(program.tenant_id), keys.program_sk(program.program_id)
        head_item = {
            "pk": pk,
            "sk": sk,
            "tenant_id": program.tenant_id,
            "program_id": program.program_id,
            "latest_version": new.version,
            "versions": json.dumps([v.model_dump(mode="json") for v in keep], sort_keys=True),
        }
        if head is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        elif head.legacy:
            condition = {"ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(latest_version)"}
        else:
            condition = {
                "ConditionExpression": "latest_version = :v",
                "ExpressionAttributeValues": dynamo.values({":v": head.latest_version}),
            }
        history = [new, *(head.versions if head is not None and head.legacy else [])]
        items = [{"Put": {"TableName": self.table, "Item": dynamo.marshal(head_item), **condition}}]
        for version in history:
            item = {
                "pk": pk,
                "sk": keys.program_version_sk(program.program_id, version.version),
                "program_id": program.program_id,
                "version": version.version,
                "effective_from": version.effective_from,
                "doc": version.model_dump_json(),
            }
            items.append({"Put": {"TableName": self.table, "Item": dynamo.marshal(item), **_NEW}})
        if program.reminder_days:  # the nightly burn looks ahead by every offset a program uses
            items.append(reminder_days_update(self.table, program.reminder_days))
        self.client.transact_write_items(TransactItems=[*items, *also])

    def put_program(self, program: Program) -> None:
        """The operator's write (CLI, local seed): a new program is version 1, in force since it
        began; an existing one gets a new version in force from now. Not audited (no actor)."""
        now = clock.now()
        head = self.program_head(program.tenant_id, program.program_id)
        at = program_versions.instant(now)
        if head is None:
            new = ProgramVersion(version=1, effective_from=None, created_at=at, program=program)
        else:
            new = ProgramVersion(version=head.latest_version + 1, effective_from=at, created_at=at, program=program)
        versions = [*(head.versions if head else []), new]
        self.put_program_version(head, new, program_versions.live(versions, at))
