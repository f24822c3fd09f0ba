"""/v1/members/{member_id}/consents: what the member agreed to receive, and every change of it."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field, model_validator

from loyalty.api.body import OBJECT_BODY
from loyalty.api.schemas import ID_PATTERN, Request
from loyalty.messaging import consents
from loyalty.web import actor_of

router = APIGatewayRouter()

MemberId = Annotated[str, Path(pattern=ID_PATTERN, description="The customer's id in the shop.")]


class ConsentsState(BaseModel):
    marketing: bool = Field(description="Advertising, newsletters, the welcome chain, birthdays, broadcasts.")
    bonus_notices: bool = Field(description="Notices about the member's points: accruals, burns, statements.")
    email: bool = Field(description="Messages by e-mail.")
    sms: bool = Field(description="Messages by SMS.")


class ConsentsChangeRequest(Request):
    marketing: bool | None = None
    bonus_notices: bool | None = None
    email: bool | None = None
    sms: bool | None = None
    reason: str | None = Field(
        default=None, min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$", description="Why, for the record."
    )

    @model_validator(mode="after")
    def _something(self) -> ConsentsChangeRequest:
        if all(getattr(self, flag) is None for flag in consents.FLAGS):
            raise ValueError("give at least one of marketing, bonus_notices, email, sms")
        return self


class ConsentChangeOut(BaseModel):
    at: str
    via: str = Field(description="enrolment, api, link, bounce, complaint or stop_reply.")
    actor: str = Field(description="key:<key id>, member (an unsubscribe link) or system:<what>.")
    reason: str | None = None
    changes: dict[str, bool] = Field(description="The consents this change set (at enrolment: all of them).")
    consents: ConsentsState = Field(description="Every consent after the change.")


class ConsentsOut(BaseModel):
    member_id: str
    consents: ConsentsState


class ConsentsHistoryOut(ConsentsOut):
    history: list[ConsentChangeOut] = Field(description="Newest first; the consents given at enrolment come last.")
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null at the end.")


@router.get("/v1/members/<member_id>/consents", summary="The member's consents and their history, newest first")
def get_consents(
    member_id: MemberId,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> ConsentsHistoryOut:
    tenant_id = actor_of(router).tenant_id
    now, page, next_cursor = consents.history(tenant_id, member_id, limit=limit, cursor=cursor)
    return ConsentsHistoryOut(
        member_id=member_id,
        consents=ConsentsState(**now),
        history=[
            ConsentChangeOut(
                at=c.at,
                via=c.via,
                actor=c.actor,
                reason=c.reason,
                changes=c.changes,
                consents=ConsentsState(**c.consents),
            )
            for c in page
        ],
        next_cursor=next_cursor,
    )


@router.put(
    "/v1/members/<member_id>/consents",
    summary="Change some of the member's consents (recorded with who, when and why)",
    middlewares=OBJECT_BODY,
)
def put_consents(member_id: MemberId, body: ConsentsChangeRequest) -> ConsentsOut:
    actor = actor_of(router)
    changes = {flag: value for flag in consents.FLAGS if (value := getattr(body, flag)) is not None}
    after = consents.change(
        actor.tenant_id, member_id, changes, via="api", actor=f"key:{actor.key_id}", reason=body.reason
    )
    return ConsentsOut(member_id=member_id, consents=ConsentsState(**after))
