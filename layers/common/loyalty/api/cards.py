"""/v1/cards: issue, look up, link, sell, replace and hand over cards; accrue and redeem by card.

Each route checks the card number's check digit first (a mistyped number is a 422 before any
lookup), then calls one operation of ``loyalty.cards``.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field, field_validator

from loyalty import cards as card_rules
from loyalty.api.body import OBJECT_BODY
from loyalty.api.deps import ledger, stores
from loyalty.api.schemas import (
    ID_PATTERN,
    CurrencyCode,
    MemberOut,
    PurchaseOut,
    PurchaseRequest,
    RedemptionOut,
    Request,
    SpendRequest,
    aware,
)
from loyalty.cards import Cards
from loyalty.settings import settings
from loyalty.store.cards import Card, CardStore
from loyalty.web import actor_of, json_response

router = APIGatewayRouter()

CardNumber = Annotated[
    str,
    Path(
        pattern=r"^[0-9]{12,19}$",
        description="The card number (the engine issues 16 digits; the last is a Luhn check digit).",
    ),
]


@cache
def cards() -> Cards:
    return Cards(stores(), CardStore(settings().ledger_table))


def _number(number: str) -> str:
    card_rules.check_number(number)
    return number


# ---------------------------------------------------------------------------- models
class IssueCardRequest(Request):
    kind: Literal["virtual", "physical"]
    member_id: str | None = Field(default=None, pattern=ID_PATTERN, description="Link the card to this member.")
    test: bool = Field(
        default=False, description="A test card: its activity is flagged (needs cards:admin as well as cards:issue)."
    )
    prefix: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,8}$",
        description="Digits the number starts with (the tenant's choice); never a 0 next to a 9.",
    )


class LinkCardRequest(Request):
    member_id: str = Field(pattern=ID_PATTERN)


class SaleRequest(Request):
    price: int = Field(ge=0, le=10**13, description="What the card was sold for, in integer minor units.")
    currency: str = CurrencyCode
    sold_at: datetime | None = Field(default=None, strict=False, description="RFC 3339; defaults to now.")

    _aware = field_validator("sold_at")(aware)


class HandoverRequest(Request):
    to_member_id: str = Field(pattern=ID_PATTERN, description="The member who gets the card.")
    transfer_id: str = Field(pattern=ID_PATTERN, description="Names the hand-over and its points transfer, once.")


class SaleOut(BaseModel):
    price: int
    currency: str
    sold_at: str


class CardOut(BaseModel):
    card_number: str
    kind: str
    status: str = Field(description="active or blocked.")
    member_id: str | None
    test: bool
    issued_at: str
    sale: SaleOut | None = None
    replaced_by: str | None = Field(default=None, description="A blocked card's replacement.")
    replaces: str | None = Field(default=None, description="The card this one replaced.")
    pending_handover: str | None = Field(default=None, description="The transfer_id of an unfinished hand-over.")

    @classmethod
    def of(cls, card: Card) -> CardOut:
        sale = card.sale
        return cls(
            card_number=card.card_number,
            kind=card.kind,
            status=card.status,
            member_id=card.member_id,
            test=card.test,
            issued_at=card.issued_at,
            sale=SaleOut(price=sale.price, currency=sale.currency, sold_at=sale.sold_at) if sale else None,
            replaced_by=card.replaced_by,
            replaces=card.replaces,
            pending_handover=card.pending_handover,
        )


class CardView(CardOut):
    member: MemberOut | None = Field(description="The card's member with its balance, if the card is linked.")


class CardPurchaseOut(PurchaseOut):
    card_number: str


class CardRedemptionOut(RedemptionOut):
    card_number: str


class ReplacementOut(BaseModel):
    blocked: CardOut
    card: CardOut = Field(description="The new card, linked to the same member.")


class HandoverOut(BaseModel):
    card: CardOut
    transfer_id: str
    from_member_id: str
    to_member_id: str
    points: int = Field(description="The giver's available points that moved with the card (may be 0).")
    entry_id: str | None = Field(default=None, description="The giver's transfer_out entry.")
    to_entry_id: str | None = Field(default=None, description="The receiver's transfer_in entry.")


# ---------------------------------------------------------------------------- routes
@router.post(
    "/v1/cards",
    summary="Issue a card (virtual or physical), optionally linked to a member",
    responses={201: {"description": "Issued"}},
    middlewares=OBJECT_BODY,
)
def issue(body: IssueCardRequest) -> Response[CardOut]:
    card = cards().issue(
        actor_of(router), kind=body.kind, member_id=body.member_id, test=body.test, prefix=body.prefix or ""
    )
    return json_response(201, CardOut.of(card))


@router.get("/v1/cards/<number>", summary="Look up a card and its member")
def get_card(number: CardNumber) -> CardView:
    card = cards().get(actor_of(router).tenant_id, _number(number))
    found = card_rules.member_view(stores(), ledger(), card)
    member = MemberOut.of(*found) if found else None
    return CardView(**CardOut.of(card).model_dump(), member=member)


@router.post("/v1/cards/<number>/link", summary="Link a card to a member", middlewares=OBJECT_BODY)
def link(number: CardNumber, body: LinkCardRequest) -> CardOut:
    return CardOut.of(cards().link(actor_of(router), _number(number), body.member_id))


@router.post(
    "/v1/cards/<number>/purchases",
    summary="Accrue bonuses on a purchase by card (the card's member; once per order_id)",
    responses={201: {"description": "Accrued (a repeat of the same purchase answers the first result)"}},
    middlewares=OBJECT_BODY,
)
def purchase(number: CardNumber, body: PurchaseRequest) -> Response[CardPurchaseOut]:
    result, card = cards().accrue(
        actor_of(router),
        _number(number),
        order_id=body.order_id,
        amount=body.amount,
        currency_code=body.currency,
        occurred_at=body.occurred_at,
    )
    return json_response(201, CardPurchaseOut(**result, card_number=card.card_number))


@router.post(
    "/v1/cards/<number>/redemptions",
    summary="Pay part of an order with the points of the card's member",
    responses={201: {"description": "Redeemed"}},
    middlewares=OBJECT_BODY,
)
def redeem(number: CardNumber, body: SpendRequest) -> Response[CardRedemptionOut]:
    result, card = cards().redeem(
        actor_of(router),
        _number(number),
        order_id=body.order_id,
        points=body.points,
        order_amount=body.order_amount,
        currency_code=body.currency,
    )
    return json_response(201, CardRedemptionOut(**result, card_number=card.card_number))


@router.post(
    "/v1/cards/<number>/sale", summary="Record the card's sale (price in minor units)", middlewares=OBJECT_BODY
)
def sell(number: CardNumber, body: SaleRequest) -> CardOut:
    card = cards().sell(
        actor_of(router), _number(number), price=body.price, currency_code=body.currency, sold_at=body.sold_at
    )
    return CardOut.of(card)


@router.post(
    "/v1/cards/<number>/replace",
    summary="Block a lost card and issue a new one for the same member (the balance is the member's)",
    responses={201: {"description": "Replaced (again: the same replacement)"}},
)
def replace(number: CardNumber) -> Response[ReplacementOut]:
    blocked, new = cards().replace(actor_of(router), _number(number))
    return json_response(201, ReplacementOut(blocked=CardOut.of(blocked), card=CardOut.of(new)))


@router.post(
    "/v1/cards/<number>/handover",
    summary="Hand the card to another member with the giver's available points (if the program allows)",
    middlewares=OBJECT_BODY,
)
def handover(number: CardNumber, body: HandoverRequest) -> HandoverOut:
    result = cards().handover(
        actor_of(router), _number(number), to_member_id=body.to_member_id, transfer_id=body.transfer_id
    )
    return HandoverOut(**{**result, "card": CardOut.of(result["card"])})
