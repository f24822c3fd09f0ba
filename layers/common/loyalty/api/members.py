"""/v1/members: enrol and read."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from loyalty import burning, members
from loyalty.api.body import OBJECT_BODY
from loyalty.api.deps import ledger, programs, stores
from loyalty.api.programs import MoveRequest
from loyalty.api.schemas import ID_PATTERN, EnrolRequest, ErasureRequest, MemberOut
from loyalty.models import Consents, Profile
from loyalty.settings import settings
from loyalty.web import actor_of, json_response

router = APIGatewayRouter()

MemberId = Annotated[str, Path(pattern=ID_PATTERN, description="The customer's id in the shop.")]


@router.post(
    "/v1/members",
    summary="Enrol a member",
    responses={
        201: {"description": "Enrolled"},
        200: {"description": "Already enrolled with the same data: the member as it is"},
    },
    middlewares=OBJECT_BODY,
)
def enrol(body: EnrolRequest) -> Response[MemberOut]:
    actor = actor_of(router)
    profile = Profile(
        email=body.email,
        phone=body.phone,
        locale=body.locale,
        time_zone=body.time_zone,
        birthday=body.birthday,
        consents=Consents(**body.consents.model_dump()),
        program_id=body.program_id or "",
    )
    member, created = members.enrol(
        stores(), actor.tenant_id, body.member_id, profile, actor=actor, referral_code=body.referral_code
    )
    view = ledger().balance_view(actor.tenant_id, body.member_id)  # the same view GET answers
    return json_response(201 if created else 200, MemberOut.of(member, view))


@router.get("/v1/members/<member_id>", summary="Read a member: profile, balance and tier")
def get_member(member_id: MemberId) -> MemberOut:
    tenant_id = actor_of(router).tenant_id
    member = members.get(stores(), tenant_id, member_id)
    return MemberOut.of(member, ledger().balance_view(tenant_id, member_id))


class BurnOut(BaseModel):
    date: str = Field(description="The day these points burn (they are spendable through the day before).")
    points: int


class ExpiringOut(BaseModel):
    expiring: list[BurnOut] = Field(
        description="The member's next burns, soonest first, if nothing changes (purchases, redemptions and, "
        "under the inactivity policy, any activity move them). Empty when nothing is due to burn."
    )


@router.get("/v1/members/<member_id>/expiring", summary="When the member's points burn, and how many")
def expiring(member_id: MemberId) -> ExpiringOut:
    tenant_id = actor_of(router).tenant_id
    upcoming = burning.expiring(ledger(), tenant_id, member_id)
    return ExpiringOut(expiring=[BurnOut(date=str(u["date"]), points=int(u["points"])) for u in upcoming])


@router.post(
    "/v1/members/<member_id>/erasure",
    summary="Erase the member's personal data (contacts, birthday, profile); the ledger stays valid",
    middlewares=OBJECT_BODY,
)
def erase(member_id: MemberId, body: ErasureRequest) -> MemberOut:
    actor = actor_of(router)
    member = members.erase(stores(), actor, member_id, reason=body.reason, audit_table=settings().ledger_table)
    return MemberOut.of(member, ledger().balance_view(actor.tenant_id, member_id))


@router.put(
    "/v1/members/<member_id>/program",
    summary="Move the member to another program of the same currency; points, burn dates and history stay",
    middlewares=OBJECT_BODY,
)
def move_program(member_id: MemberId, body: MoveRequest) -> MemberOut:
    actor = actor_of(router)
    member = programs().move_member(actor, member_id, body.program_id)
    return MemberOut.of(member, ledger().balance_view(actor.tenant_id, member_id))
