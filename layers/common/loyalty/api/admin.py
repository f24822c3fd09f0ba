"""/v1/keys, /v1/access, /v1/settings and /v1/audit: the tenant's API keys, its roles, its own
settings, and who did what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field, field_validator

from loyalty import clock
from loyalty.access import AccessPolicy, Permission
from loyalty.api.access import policies
from loyalty.api.body import OBJECT_BODY
from loyalty.api.deps import access_policies, api_keys, audit_store, tenant_settings
from loyalty.api.schemas import Request
from loyalty.errors import InvalidRequest
from loyalty.models import Role, TenantSettings, iana_zone
from loyalty.store.audit import AuditRecord, precise
from loyalty.tenancy import key_view
from loyalty.web import actor_of, json_response

router = APIGatewayRouter()

KeyId = Annotated[str, Path(pattern=r"^key_[0-9a-f]{12}$", description="The key's public id, as GET /v1/keys shows.")]


class KeyRequest(Request):
    role: Role = Field(strict=False, description="What the key may do: integration, manager, senior or admin.")
    name: str = Field(default="", max_length=80, pattern=r"^[^\x00-\x1f\x7f]*$", description="What it is for.")


class KeyOut(BaseModel):
    key_id: str
    role: Role
    name: str
    active: bool
    created_at: str
    revoked_at: str | None = None


class NewKeyOut(KeyOut):
    api_key: str = Field(description="The secret: shown this once, stored only as a hash.")


class KeysOut(BaseModel):
    keys: list[KeyOut]


class RotatedOut(BaseModel):
    key: NewKeyOut
    revoked: KeyOut


class AccessIn(Request):
    roles: dict[Role, list[Permission]] = Field(
        default_factory=dict, strict=False, description="Permissions per role; a role left out keeps its defaults."
    )
    manager_adjustment_limit: int = Field(default=1_000, ge=0, le=1_000_000_000)


class AccessOut(BaseModel):
    roles: dict[Role, list[Permission]]
    manager_adjustment_limit: int


class SettingsIn(Request):
    burn_time_zone: str | None = Field(
        default=None,
        max_length=64,
        examples=["Europe/Kyiv"],
        description="IANA time zone of the nightly burn: a night is a calendar date there. "
        "null: the stack's default (the BurnTimeZone parameter).",
    )
    burn_time: str = Field(
        default="00:30",
        pattern=r"^0[0-5]:[0-5][0-9]$",
        description="Local time (HH:MM, 00:00-05:59) from which a night's burn runs; the hourly scheduler "
        "starts it within the hour after.",
    )
    chain_interval_days: int = Field(
        default=25, ge=20, le=30, description="After day 14 of the welcome chain: a message every this many days."
    )
    digest_interval_days: int = Field(
        default=14, ge=7, le=30, description="After day 90: the balance statement (digest) every this many days."
    )
    birthday_coupon_days: int = Field(
        default=14, ge=1, le=366, description="How many days a birthday greeting's single-use coupon stays valid."
    )

    @field_validator("burn_time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else iana_zone(value)


class AuditOut(BaseModel):
    records: list[AuditRecord]
    next_cursor: str | None


def _in_utc(moment: datetime, name: str, before: timedelta = timedelta(0)) -> datetime:
    """``moment`` (less ``before``) in UTC; a 422 naming the query parameter where that leaves the
    calendar (e.g. to=0001-01-01T00:00:00+01:00), which would otherwise be an OverflowError, a 500."""
    if moment.tzinfo is None:  # an instant without an offset is read as UTC, never as the machine's time
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC) - before
    except OverflowError as error:
        raise InvalidRequest(f"{name} is too close to the edge of the calendar.", field=f"query:{name}") from error


def _access_out(policy: AccessPolicy) -> AccessOut:
    return AccessOut(
        roles={role: sorted(policy.permissions(role)) for role in Role},
        manager_adjustment_limit=policy.manager_adjustment_limit,
    )


@router.get("/v1/keys", summary="The tenant's API keys (never their secrets)")
def list_keys() -> KeysOut:
    return KeysOut(keys=[KeyOut(**key_view(key)) for key in api_keys().list(actor_of(router))])


@router.post(
    "/v1/keys",
    summary="Create an API key with a role",
    responses={201: {"description": "Created; the secret is in api_key, shown this once"}},
    middlewares=OBJECT_BODY,
)
def create_key(body: KeyRequest) -> Response[NewKeyOut]:
    api_key, secret = api_keys().create(actor_of(router), body.role, body.name)
    return json_response(201, NewKeyOut(**key_view(api_key), api_key=secret))


@router.post("/v1/keys/<key_id>/rotate", summary="A new key in place of this one, which is revoked")
def rotate_key(key_id: KeyId) -> RotatedOut:
    new, secret, old = api_keys().rotate(actor_of(router), key_id)
    return RotatedOut(key=NewKeyOut(**key_view(new), api_key=secret), revoked=KeyOut(**key_view(old)))


@router.delete("/v1/keys/<key_id>", summary="Revoke a key (within 5 minutes everywhere)")
def revoke_key(key_id: KeyId) -> KeyOut:
    return KeyOut(**key_view(api_keys().revoke(actor_of(router), key_id)))


@router.get("/v1/access", summary="What each role may do")
def get_access() -> AccessOut:
    return _access_out(access_policies().get(actor_of(router)))


@router.put(
    "/v1/access",
    summary="Set what each role may do, and the manager's adjustment limit",
    middlewares=OBJECT_BODY,
)
def put_access(body: AccessIn) -> AccessOut:
    actor = actor_of(router)
    policy = access_policies().set(actor, body.roles, body.manager_adjustment_limit)
    policies.forget(actor.tenant_id)
    return _access_out(policy)


@router.get("/v1/settings", summary="The tenant's settings: when its nightly burn runs")
def get_settings() -> TenantSettings:
    return tenant_settings().get(actor_of(router))


@router.put(
    "/v1/settings",
    summary="Change the tenant's settings (audited); a field left out keeps its value",
    middlewares=OBJECT_BODY,
)
def put_settings(body: SettingsIn) -> TenantSettings:
    return tenant_settings().change(actor_of(router), body.model_dump(exclude_unset=True))


@router.get("/v1/audit", summary="Manual and administrative actions, newest first")
def audit(
    since: Annotated[datetime | None, Query(alias="from", description="RFC 3339; default 30 days ago.")] = None,
    until: Annotated[datetime | None, Query(alias="to", description="RFC 3339; default now.")] = None,
    action: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z.]+$")] = None,
    key_id: Annotated[str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9_:]+$")] = None,
    member_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=400, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> AuditOut:
    end = _in_utc(until or clock.now(), "to")
    start = _in_utc(since, "from") if since else _in_utc(end, "to", before=timedelta(days=30))
    if start > end:
        raise InvalidRequest("from must not be after to.", field="query:from")
    records, next_cursor = audit_store().list(
        actor_of(router).tenant_id,
        since=precise(start),
        until=precise(end),
        limit=limit,
        cursor=cursor,
        action=action,
        key_id=key_id,
        member_id=member_id,
    )
    return AuditOut(records=records, next_cursor=next_cursor)
