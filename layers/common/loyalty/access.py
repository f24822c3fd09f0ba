"""Who may do what: permissions, the roles that hold them, and the manager's adjustment limit.

Pure rules: values in, values out. A tenant may override a role's permissions and the limit
(``AccessPolicy`` stored in the config table); what it does not override keeps the defaults.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from loyalty.errors import Forbidden
from loyalty.models import Actor, Frozen, Role


class Permission(StrEnum):
    MEMBERS_READ = "members:read"
    MEMBERS_ENROL = "members:enrol"
    MEMBERS_ERASE = "members:erase"
    PURCHASES = "purchases"
    REDEMPTIONS = "redemptions"  # quotes, holds, capture, release, direct redemptions
    REFUNDS = "refunds"
    ADJUSTMENTS = "adjustments"  # up to the tenant's limit unless also ADJUSTMENTS_UNLIMITED
    ADJUSTMENTS_UNLIMITED = "adjustments:unlimited"
    TRANSFERS = "transfers"
    PROGRAMS_READ = "programs:read"
    PROGRAMS_ADMIN = "programs:admin"  # create and change programs, simulate, move members between them
    CARDS_ISSUE = "cards:issue"  # issue and link cards
    CARDS_ADMIN = "cards:admin"  # sell, flag as test, block and replace, hand over
    COMPANIES = "companies"  # make a member a company, edit its profile, link and unlink its managers
    CONSENTS = "consents"  # change what a member agreed to receive (reading them is MEMBERS_READ)
    TEMPLATES_ADMIN = "templates:admin"  # the tenant's own message templates, and previews
    KEYS_ADMIN = "keys:admin"
    ACCESS_ADMIN = "access:admin"
    AUDIT_READ = "audit:read"
    REPORTS_READ = "reports:read"  # /v1/reports: accrued, redeemed, burned, liability, members
    COUPONS = "coupons"  # the till collects a single-use coupon (a birthday greeting's)
    MESSAGES_SEND = "messages:send"  # tell an event's attendees its results are out
    BROADCASTS = "broadcasts"  # a message to a whole segment (all, a program, a tier), and its progress


_SHOP = {
    Permission.MEMBERS_READ,
    Permission.MEMBERS_ENROL,
    Permission.PURCHASES,
    Permission.REDEMPTIONS,
    Permission.REFUNDS,
    Permission.PROGRAMS_READ,
    Permission.COMPANIES,  # the shop's B2B accounts: which customer is a company, who its managers are
    Permission.CONSENTS,  # the shop's account page: "send me news", "no SMS"
    Permission.COUPONS,  # the till: a birthday coupon collected at the checkout
}
_MANAGER = {
    Permission.MEMBERS_READ,
    Permission.ADJUSTMENTS,
    Permission.PROGRAMS_READ,
    Permission.CARDS_ISSUE,
    Permission.CONSENTS,  # a customer at the desk asks to stop (or start) the messages
    Permission.MESSAGES_SEND,  # after an event, tell its attendees the photos are out
}
_SENIOR = _MANAGER | {
    Permission.ADJUSTMENTS_UNLIMITED,
    Permission.TRANSFERS,
    Permission.CARDS_ADMIN,
    Permission.COMPANIES,
}

DEFAULT_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.INTEGRATION: frozenset(_SHOP),
    Role.MANAGER: frozenset(_MANAGER),
    Role.SENIOR: frozenset(_SENIOR),
    Role.ADMIN: frozenset(set(Permission)),
}
DEFAULT_MANAGER_ADJUSTMENT_LIMIT = 1_000


class AccessPolicy(Frozen):
    """A tenant's roles: what each may do, and how many points one limited adjustment may move."""

    roles: dict[Role, frozenset[Permission]] = Field(default_factory=lambda: dict(DEFAULT_PERMISSIONS))
    manager_adjustment_limit: int = Field(default=DEFAULT_MANAGER_ADJUSTMENT_LIMIT, ge=0, le=1_000_000_000)

    def permissions(self, role: Role) -> frozenset[Permission]:
        return self.roles.get(role, DEFAULT_PERMISSIONS[role])

    def roles_with(self, permission: Permission) -> list[Role]:
        return [role for role in Role if permission in self.permissions(role)]


def require(policy: AccessPolicy, actor: Actor, permission: Permission) -> None:
    """Raise Forbidden, naming the roles that may, unless the actor's role has ``permission``."""
    if permission in policy.permissions(actor.role):
        return
    allowed = ", ".join(role.value for role in policy.roles_with(permission)) or "no role"
    raise Forbidden(
        f"A key with role {actor.role.value!r} may not do this ({permission.value}); "
        f"it needs a key with role: {allowed}.",
        permission=permission.value,
        role=actor.role.value,
    )


def check_adjustment(policy: AccessPolicy, actor: Actor, points: int) -> None:
    """Adjustments: the permission, and for limited roles at most the tenant's limit either way."""
    require(policy, actor, Permission.ADJUSTMENTS)
    role_permissions = policy.permissions(actor.role)
    limit = policy.manager_adjustment_limit
    if Permission.ADJUSTMENTS_UNLIMITED in role_permissions or abs(points) <= limit:
        return
    allowed = ", ".join(role.value for role in policy.roles_with(Permission.ADJUSTMENTS_UNLIMITED)) or "no role"
    raise Forbidden(
        f"A key with role {actor.role.value!r} may adjust at most {limit} points at once; "
        f"{abs(points)} needs a key with role: {allowed}.",
        permission=Permission.ADJUSTMENTS_UNLIMITED.value,
        limit=limit,
        role=actor.role.value,
    )
