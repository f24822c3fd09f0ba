"""/v1/coupons/{code}/redeem (the shop's till collects a birthday coupon) and
/v1/events/{event_id}/results (tell an event's attendees that its results or photos are out)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from loyalty import clock
from loyalty.api.body import OBJECT_BODY
from loyalty.api.schemas import ID_PATTERN, Request
from loyalty.coupons import CouponStore
from loyalty.settings import settings
from loyalty.store import dynamo
from loyalty.store.touches import TouchStore
from loyalty.web import actor_of

router = APIGatewayRouter()

MAX_ATTENDEES = 1_000
CouponCode = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9-]{4,40}$", description="The coupon's code as printed (any case).")
]
EventId = Annotated[str, Path(pattern=ID_PATTERN, description="The shop's id of the event.")]


class RedeemRequest(Request):
    order_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="The order the coupon was used on, for the record."
    )


class CouponOut(BaseModel):
    code: str
    member_id: str
    occasion: str = Field(description="What the coupon was for, e.g. birthday#2027.")
    valid_until: str
    used_at: str | None


class EventResultsRequest(Request):
    event_name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")
    results_url: str = Field(min_length=8, max_length=2000, pattern=r"^https://[^\s]+$")
    attendees: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(
        min_length=1, max_length=MAX_ATTENDEES, description="Member ids, at most 1 000 a call."
    )


class EventResultsOut(BaseModel):
    decided: int = Field(description="Attendees a message was decided for now.")
    already: int = Field(description="Attendees told about this event already (a repeat of the call).")
    unknown: list[str] = Field(description="Ids that are no member of this tenant (or erased): nobody was told.")


@router.post(
    "/v1/coupons/<code>/redeem",
    summary="Collect a single-use coupon (a birthday greeting's): 200 once, 409 again, 410 expired",
    middlewares=OBJECT_BODY,
)
def redeem_coupon(code: CouponCode, body: RedeemRequest) -> CouponOut:
    actor = actor_of(router)
    coupon = CouponStore(settings().ledger_table).redeem(
        actor.tenant_id, code, order_id=body.order_id, actor=f"key:{actor.key_id}"
    )
    return CouponOut(
        code=coupon.code,
        member_id=coupon.member_id,
        occasion=coupon.occasion,
        valid_until=coupon.valid_until,
        used_at=coupon.used_at,
    )


@router.post(
    "/v1/events/<event_id>/results",
    summary="Tell an event's attendees that its results or photos are published (once per event)",
    middlewares=OBJECT_BODY,
)
def event_results(event_id: EventId, body: EventResultsRequest) -> EventResultsOut:
    from loyalty.messaging import sending

    tenant_id = actor_of(router).tenant_id
    wanted = list(dict.fromkeys(body.attendees))
    found = dynamo.with_retries(lambda: TouchStore(settings().ledger_table).members([(tenant_id, m) for m in wanted]))
    decided = already = 0
    unknown: list[str] = []
    data = {"event_name": body.event_name, "results_url": body.results_url}
    for member_id in wanted:
        member = found.get((tenant_id, member_id))
        if member is None or member.erased:
            unknown.append(member_id)
            continue
        if sending.decide(tenant_id, member_id, "event_results", f"event#{event_id}", data, not_before=clock.now()):
            decided += 1
        else:
            already += 1
    return EventResultsOut(decided=decided, already=already, unknown=unknown)
