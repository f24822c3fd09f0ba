"""/v1/members/{id}/purchases, redemption-quote, holds, redemptions, refunds, adjustments,
transfers, entries; /v1/holds/{id}/capture|release. Each route: parse, call one ledger
operation, shape the answer. The order's operations (purchase, quote, hold, redemption, refund)
go through ``loyalty.companies.Buyers``: a company's manager may book on the company's account,
and the answer's ``member_id`` names the account."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from loyalty.api.body import OBJECT_BODY
from loyalty.api.deps import buyers, ledger
from loyalty.api.schemas import (
    ID_PATTERN,
    AdjustmentOut,
    AdjustmentRequest,
    EntriesOut,
    EntryOut,
    HoldOut,
    PurchaseOut,
    PurchaseRequest,
    QuoteOut,
    QuoteRequest,
    RedemptionOut,
    RefundOut,
    RefundRequest,
    SpendRequest,
    TransferOut,
    TransferRequest,
)
from loyalty.web import actor_of, json_response

router = APIGatewayRouter()

MemberId = Annotated[str, Path(pattern=ID_PATTERN, description="The customer's id in the shop.")]
HoldId = Annotated[str, Path(pattern=r"^hold_[0-9a-f]{20}$")]


@router.post(
    "/v1/members/<member_id>/purchases",
    summary="Accrue bonuses on a purchase (once per order_id)",
    responses={201: {"description": "Accrued (a repeat of the same purchase answers the first result)"}},
    middlewares=OBJECT_BODY,
)
def purchase(member_id: MemberId, body: PurchaseRequest) -> Response[PurchaseOut]:
    result = buyers().accrue(
        actor_of(router),
        member_id,
        order_id=body.order_id,
        amount=body.amount,
        currency_code=body.currency,
        occurred_at=body.occurred_at,
    )
    return json_response(201, PurchaseOut(**result))


@router.post(
    "/v1/members/<member_id>/redemption-quote", summary="The most bonuses an order may use", middlewares=OBJECT_BODY
)
def quote(member_id: MemberId, body: QuoteRequest) -> QuoteOut:
    result = buyers().quote(actor_of(router), member_id, order_amount=body.order_amount, currency_code=body.currency)
    return QuoteOut(**result)


@router.post(
    "/v1/members/<member_id>/holds",
    summary="Reserve points for a checkout",
    responses={201: {"description": "Held"}},
    middlewares=OBJECT_BODY,
)
def place_hold(member_id: MemberId, body: SpendRequest) -> Response[HoldOut]:
    result = buyers().hold(
        actor_of(router),
        member_id,
        order_id=body.order_id,
        points=body.points,
        order_amount=body.order_amount,
        currency_code=body.currency,
    )
    return json_response(201, HoldOut(**result))


@router.post("/v1/holds/<hold_id>/capture", summary="Spend a hold's points")
def capture(hold_id: HoldId) -> HoldOut:
    return HoldOut(**ledger().capture(actor_of(router), hold_id))


@router.post("/v1/holds/<hold_id>/release", summary="Give a hold's points back")
def release(hold_id: HoldId) -> HoldOut:
    return HoldOut(**ledger().release(actor_of(router), hold_id))


@router.post(
    "/v1/members/<member_id>/redemptions",
    summary="Pay part of an order with points",
    responses={201: {"description": "Redeemed"}},
    middlewares=OBJECT_BODY,
)
def redeem(member_id: MemberId, body: SpendRequest) -> Response[RedemptionOut]:
    result = buyers().redeem(
        actor_of(router),
        member_id,
        order_id=body.order_id,
        points=body.points,
        order_amount=body.order_amount,
        currency_code=body.currency,
    )
    return json_response(201, RedemptionOut(**result))


@router.post(
    "/v1/members/<member_id>/refunds",
    summary="Refund (part of) an order",
    responses={201: {"description": "Refunded"}},
    middlewares=OBJECT_BODY,
)
def refund(member_id: MemberId, body: RefundRequest) -> Response[RefundOut]:
    result = buyers().refund(
        actor_of(router), member_id, refund_id=body.refund_id, order_id=body.order_id, amount=body.amount
    )
    return json_response(201, RefundOut(**result))


@router.post(
    "/v1/members/<member_id>/adjustments",
    summary="Add or take points by hand, with a reason",
    responses={201: {"description": "Adjusted"}},
    middlewares=OBJECT_BODY,
)
def adjust(member_id: MemberId, body: AdjustmentRequest) -> Response[AdjustmentOut]:
    result = ledger().adjust(
        actor_of(router), member_id, adjustment_id=body.adjustment_id, points=body.points, reason=body.reason
    )
    return json_response(201, AdjustmentOut(**result))


@router.post(
    "/v1/members/<member_id>/transfers",
    summary="Give points to another member",
    responses={201: {"description": "Transferred"}},
    middlewares=OBJECT_BODY,
)
def transfer(member_id: MemberId, body: TransferRequest) -> Response[TransferOut]:
    result = ledger().transfer(
        actor_of(router), member_id, transfer_id=body.transfer_id, to_member_id=body.to_member_id, points=body.points
    )
    return json_response(201, TransferOut(**result))


@router.get("/v1/members/<member_id>/entries", summary="The member's ledger entries, newest first")
def entries(
    member_id: MemberId,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> EntriesOut:
    page = ledger().entries(actor_of(router).tenant_id, member_id, limit=limit, cursor=cursor)
    return EntriesOut(
        entries=[EntryOut(**{k: v for k, v in vars(e).items() if k in EntryOut.model_fields}) for e in page["entries"]],
        next_cursor=page["next_cursor"],
    )
