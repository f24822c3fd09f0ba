"""Every route's permission, checked before the route runs; deny by default.

A route that is not in ``ROUTE_PERMISSIONS`` answers 403 (a unit test proves every route of the
template is listed). The tenant's access policy is read from the config table and kept for
``POLICY_TTL_SECONDS`` in the process, so a change applies within a minute, without a read per request.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.event_handler import Response

from loyalty.access import AccessPolicy, Permission, require
from loyalty.errors import DomainError, Forbidden
from loyalty.store import dynamo
from loyalty.store.config import ConfigStore
from loyalty.web import actor_from_event, problem

P = Permission
# Public: the document, and the unsubscribe links in customers' messages (the signed token is the authority).
OPEN_ROUTES = {
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/unsubscribe/{token}"),
    ("POST", "/v1/unsubscribe/{token}"),
}
ROUTE_PERMISSIONS: dict[tuple[str, str], Permission] = {
    ("POST", "/v1/members"): P.MEMBERS_ENROL,
    ("GET", "/v1/members/{member_id}"): P.MEMBERS_READ,
    ("GET", "/v1/members/{member_id}/entries"): P.MEMBERS_READ,
    ("GET", "/v1/members/{member_id}/expiring"): P.MEMBERS_READ,
    ("POST", "/v1/members/{member_id}/erasure"): P.MEMBERS_ERASE,
    ("POST", "/v1/members/{member_id}/purchases"): P.PURCHASES,
    ("POST", "/v1/members/{member_id}/redemption-quote"): P.REDEMPTIONS,
    ("POST", "/v1/members/{member_id}/holds"): P.REDEMPTIONS,
    ("POST", "/v1/holds/{hold_id}/capture"): P.REDEMPTIONS,
    ("POST", "/v1/holds/{hold_id}/release"): P.REDEMPTIONS,
    ("POST", "/v1/members/{member_id}/redemptions"): P.REDEMPTIONS,
    ("POST", "/v1/members/{member_id}/refunds"): P.REFUNDS,
    ("POST", "/v1/members/{member_id}/adjustments"): P.ADJUSTMENTS,  # the limit is checked by the ledger
    ("POST", "/v1/members/{member_id}/transfers"): P.TRANSFERS,
    ("GET", "/v1/keys"): P.KEYS_ADMIN,
    ("POST", "/v1/keys"): P.KEYS_ADMIN,
    ("POST", "/v1/keys/{key_id}/rotate"): P.KEYS_ADMIN,
    ("DELETE", "/v1/keys/{key_id}"): P.KEYS_ADMIN,
    ("GET", "/v1/access"): P.ACCESS_ADMIN,
    ("PUT", "/v1/access"): P.ACCESS_ADMIN,
    ("GET", "/v1/audit"): P.AUDIT_READ,
    ("GET", "/v1/reports/summary"): P.REPORTS_READ,
    ("GET", "/v1/settings"): P.PROGRAMS_READ,
    ("PUT", "/v1/settings"): P.PROGRAMS_ADMIN,  # when the nightly burn runs
    ("GET", "/v1/programs"): P.PROGRAMS_READ,
    ("GET", "/v1/programs/{program_id}"): P.PROGRAMS_READ,
    ("GET", "/v1/programs/{program_id}/versions"): P.PROGRAMS_READ,
    ("PUT", "/v1/programs/{program_id}"): P.PROGRAMS_ADMIN,
    ("POST", "/v1/simulations"): P.PROGRAMS_ADMIN,
    ("PUT", "/v1/members/{member_id}/program"): P.PROGRAMS_ADMIN,
    ("POST", "/v1/cards"): P.CARDS_ISSUE,  # a test card needs CARDS_ADMIN too (checked by loyalty.cards)
    ("GET", "/v1/cards/{number}"): P.MEMBERS_READ,
    ("POST", "/v1/cards/{number}/link"): P.CARDS_ISSUE,
    ("POST", "/v1/cards/{number}/purchases"): P.PURCHASES,
    ("POST", "/v1/cards/{number}/redemptions"): P.REDEMPTIONS,
    ("POST", "/v1/cards/{number}/sale"): P.CARDS_ADMIN,
    ("POST", "/v1/cards/{number}/replace"): P.CARDS_ADMIN,
    ("POST", "/v1/cards/{number}/handover"): P.CARDS_ADMIN,
    ("GET", "/v1/members/{member_id}/company"): P.MEMBERS_READ,
    ("PUT", "/v1/members/{member_id}/company"): P.COMPANIES,
    ("PUT", "/v1/members/{member_id}/managers/{manager_id}"): P.COMPANIES,
    ("DELETE", "/v1/members/{member_id}/managers/{manager_id}"): P.COMPANIES,
    ("GET", "/v1/members/{member_id}/consents"): P.MEMBERS_READ,
    ("PUT", "/v1/members/{member_id}/consents"): P.CONSENTS,
    ("GET", "/v1/templates/{kind}/{locale}/{channel}"): P.TEMPLATES_ADMIN,
    ("PUT", "/v1/templates/{kind}/{locale}/{channel}"): P.TEMPLATES_ADMIN,
    ("DELETE", "/v1/templates/{kind}/{locale}/{channel}"): P.TEMPLATES_ADMIN,
    ("POST", "/v1/templates/{kind}/preview"): P.TEMPLATES_ADMIN,
    ("POST", "/v1/coupons/{code}/redeem"): P.COUPONS,
    ("POST", "/v1/events/{event_id}/results"): P.MESSAGES_SEND,
    ("POST", "/v1/broadcasts"): P.BROADCASTS,
    ("GET", "/v1/broadcasts/{broadcast_id}"): P.BROADCASTS,
}
POLICY_TTL_SECONDS = 60.0


class PolicyCache:
    """Tenant -> (policy, read at); per process, so per Lambda execution environment."""

    def __init__(self, ttl: float = POLICY_TTL_SECONDS, clock: Any = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._policies: dict[str, tuple[AccessPolicy, float]] = {}

    def get(self, config: ConfigStore, tenant_id: str) -> AccessPolicy:
        cached = self._policies.get(tenant_id)
        if cached is not None and self.clock() - cached[1] < self.ttl:
            return cached[0]
        policy = config.get_access_policy(tenant_id)
        self._policies[tenant_id] = (policy, self.clock())
        return policy

    def forget(self, tenant_id: str) -> None:
        self._policies.pop(tenant_id, None)


policies = PolicyCache()


def access_guard(config: Any) -> Any:
    """A check of the route's permission, run before anything parses the request (so a key that
    may not call a route learns nothing about its body); ``config()`` gives the ConfigStore."""

    def check(event: dict[str, Any]) -> Response | None:
        route = (event.get("httpMethod", ""), event.get("resource", ""))
        if route in OPEN_ROUTES:
            return None
        try:
            actor = actor_from_event(event)
            permission = ROUTE_PERMISSIONS.get(route)
            if permission is None:
                raise Forbidden("No key may call this route.")
            policy = dynamo.with_retries(lambda: policies.get(config(), actor.tenant_id))  # 503 if it stays busy
            require(policy, actor, permission)
        except DomainError as error:
            return problem(error.status, error.slug, error.title, error.detail, **error.extra)
        return None

    return check
