"""A tenant's API keys (create, list, rotate, revoke; stored as hashes only) and its access policy.
Every change is audited in the same transaction.

The secret is shown once, in the answer that creates it. A revoked key stops working as soon as
API Gateway's authorizer cache for it runs out (``ReauthorizeEvery`` in the template: 5 minutes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from loyalty import auth, clock
from loyalty.access import AccessPolicy, Permission
from loyalty.errors import Conflict, InvalidRequest, NotFound
from loyalty.models import Actor, ApiKey, Role, TenantSettings
from loyalty.store.audit import put_item, record
from loyalty.store.config import ConfigStore


class ApiKeys:
    def __init__(self, config: ConfigStore, audit_table: str) -> None:
        self.config = config
        self.audit_table = audit_table

    def create(self, actor: Actor, role: Role, name: str, *, secret: str | None = None) -> tuple[ApiKey, str]:
        """A new key for the actor's tenant; returns it and its secret (the only time it is seen)."""
        secret = secret or auth.new_key()
        now = clock.now()
        api_key = ApiKey(
            key_id=auth.key_id_of(secret),
            tenant_id=actor.tenant_id,
            role=role,
            name=name,
            created_at=clock.isoformat(now),
        )
        audit = record(
            actor,
            "key.create",
            ref=api_key.key_id,
            at=now,
            target=api_key.key_id,
            details={"role": role.value, "name": name},
        )
        self.config.put_api_key(
            auth.key_hash(secret),
            api_key,
            api_key.created_at,
            also=[put_item(self.audit_table, actor.tenant_id, audit)],
        )
        return api_key, secret

    def list(self, actor: Actor) -> list[ApiKey]:
        return self.config.list_api_keys(actor.tenant_id)

    def _find(self, actor: Actor, key_id: str) -> tuple[ApiKey, str]:
        found = self.config.tenant_api_key(actor.tenant_id, key_id)
        if found is None:  # another tenant's key is as unknown as one that never existed
            raise NotFound(f"No API key {key_id!r}. GET /v1/keys lists this tenant's keys.", key_id=key_id)
        return found

    def revoke(self, actor: Actor, key_id: str, *, reason: str | None = None) -> ApiKey:
        if key_id == actor.key_id:  # nobody locks a tenant out by accident
            raise Conflict("A key cannot revoke itself; rotate it, or revoke it with another admin key.")
        return self._revoke(actor, key_id, reason)

    def _revoke(self, actor: Actor, key_id: str, reason: str | None) -> ApiKey:
        api_key, key_hash = self._find(actor, key_id)
        if not api_key.active:
            return api_key  # revoking twice is the same as once
        now = clock.now()
        audit = record(actor, "key.revoke", ref=key_id, at=now, target=key_id, reason=reason)
        at = clock.isoformat(now)
        self.config.revoke_api_key(
            actor.tenant_id, key_id, key_hash, at, also=[put_item(self.audit_table, actor.tenant_id, audit)]
        )
        return api_key.model_copy(update={"active": False, "revoked_at": at})

    def rotate(self, actor: Actor, key_id: str) -> tuple[ApiKey, str, ApiKey]:
        """A new key with the old one's role and name; the old one is revoked. Returns (new, secret, old)."""
        old, _ = self._find(actor, key_id)
        if not old.active:
            raise Conflict(f"API key {key_id!r} is revoked; create a new key instead.", key_id=key_id)
        new, secret = self.create(actor, old.role, old.name)
        return new, secret, self._revoke(actor, key_id, f"rotated to {new.key_id}")


def key_view(api_key: ApiKey) -> dict[str, Any]:
    return api_key.model_dump(exclude={"tenant_id"})


class AccessPolicies:
    def __init__(self, config: ConfigStore, audit_table: str) -> None:
        self.config = config
        self.audit_table = audit_table

    def get(self, actor: Actor) -> AccessPolicy:
        return self.config.get_access_policy(actor.tenant_id)

    def set(self, actor: Actor, roles: dict[Role, list[Permission]], manager_adjustment_limit: int) -> AccessPolicy:
        """Replace the permissions of the roles given (the others keep theirs) and the limit."""
        if Role.ADMIN in roles and Permission.ACCESS_ADMIN not in roles[Role.ADMIN]:
            raise InvalidRequest("admin must keep access:admin, or nobody could change access again.", field="roles")
        current = self.get(actor)
        policy = AccessPolicy(
            roles={role: frozenset(roles.get(role, current.permissions(role))) for role in Role},
            manager_adjustment_limit=manager_adjustment_limit,
        )
        details = {"roles": {r.value: sorted(p.value for p in policy.permissions(r)) for r in Role}}
        details["manager_adjustment_limit"] = manager_adjustment_limit  # type: ignore[assignment]
        now = clock.now()
        audit = record(actor, "access.set", ref=clock.isoformat(now), at=now, details=details)
        self.config.put_access_policy(
            actor.tenant_id, policy, also=[put_item(self.audit_table, actor.tenant_id, audit)]
        )
        return policy


class TenantSettingsAdmin:
    """The tenant's own settings (today: when its nightly burn runs), audited like every change."""

    def __init__(self, config: ConfigStore, audit_table: str) -> None:
        self.config = config
        self.audit_table = audit_table

    def get(self, actor: Actor) -> TenantSettings:
        found = self.config.tenant_settings(actor.tenant_id)
        if found is None:
            raise NotFound("This tenant has no settings yet; `python -m loyalty.admin create-tenant` registers it.")
        return found

    def set(self, actor: Actor, tenant_settings: TenantSettings) -> TenantSettings:
        """Replace every setting."""
        self.get(actor)  # a tenant outside the registry gets the 404 that says how to register it
        return self._write(actor, tenant_settings)

    def change(self, actor: Actor, changes: Mapping[str, Any]) -> TenantSettings:
        """Change the settings named in ``changes``; the others keep their values."""
        current = self.get(actor)
        try:
            wanted = TenantSettings(**{**current.model_dump(), **changes})
        except ValidationError as error:
            fields = "; ".join(f"{e['loc'][0]} {e['msg']}" for e in error.errors())
            raise InvalidRequest(fields, field=str(error.errors()[0]["loc"][0])) from error
        return self._write(actor, wanted)

    def _write(self, actor: Actor, tenant_settings: TenantSettings) -> TenantSettings:
        now = clock.now()
        audit = record(
            actor, "settings.set", ref=clock.isoformat(now), at=now, details=tenant_settings.model_dump(mode="json")
        )
        self.config.put_tenant_settings(
            actor.tenant_id, tenant_settings, also=[put_item(self.audit_table, actor.tenant_id, audit)]
        )
        return tenant_settings
