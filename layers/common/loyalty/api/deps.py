"""What a route needs besides the request: the services of this process, made once on first use."""

from __future__ import annotations

from functools import cache

from loyalty.companies import Buyers, Companies
from loyalty.ledger import Ledger
from loyalty.members import Stores
from loyalty.programs import Programs
from loyalty.settings import settings
from loyalty.store.audit import AuditStore
from loyalty.store.config import ConfigStore
from loyalty.store.ledger import LedgerStore
from loyalty.tenancy import AccessPolicies, ApiKeys, TenantSettingsAdmin


@cache
def stores() -> Stores:
    config = settings()
    return Stores(ledger=LedgerStore(config.ledger_table), config=ConfigStore(config.config_table))


@cache
def ledger() -> Ledger:
    return Ledger(stores())


@cache
def buyers() -> Buyers:
    """The ledger's order operations as the member in the path sees them (a company's manager books
    on the company's account when its program says so)."""
    return Buyers(stores())


@cache
def companies() -> Companies:
    return Companies(stores(), audit_table=settings().ledger_table)


@cache
def api_keys() -> ApiKeys:
    return ApiKeys(stores().config, settings().ledger_table)


@cache
def access_policies() -> AccessPolicies:
    return AccessPolicies(stores().config, settings().ledger_table)


@cache
def tenant_settings() -> TenantSettingsAdmin:
    return TenantSettingsAdmin(stores().config, settings().ledger_table)


@cache
def audit_store() -> AuditStore:
    return AuditStore(settings().ledger_table)


@cache
def programs() -> Programs:
    return Programs(stores())
