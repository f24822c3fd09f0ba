"""The API's input and output models (the edge). Domain models stay in the layer."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loyalty import clock
from loyalty.models import Member, iana_zone

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"
# Printable ASCII only: no CR/LF (header injection), no look-alike unicode.
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")


def aware(value: datetime | None) -> datetime | None:
    """An instant must say its offset: a naive one is refused, never guessed."""
    if value is not None and value.tzinfo is None:
        raise ValueError("must carry a time zone, e.g. 2026-11-23T10:00:00Z")
    return value


class Request(BaseModel):
    # strict: JSON types as sent; "100", 100.0 or true is not an amount, "yes" is not a boolean.
    # Dates and instants arrive as JSON strings, so their fields opt out (strict=False).
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, strict=True)


class ConsentsIn(Request):
    marketing: bool = Field(default=False, description="Advertising and newsletters.")
    bonus_notices: bool = Field(default=True, description="Useful notices about the member's bonuses.")
    email: bool = Field(default=True, description="Messages (of the categories above) by e-mail.")
    sms: bool = Field(default=True, description="Messages (of the categories above) by SMS.")


class EnrolRequest(Request):
    member_id: str = Field(pattern=ID_PATTERN, description="The customer's id in the shop.")
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164.")
    locale: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$", examples=["ru", "uk", "en"])
    time_zone: str = Field(default="UTC", max_length=64, examples=["Europe/Kyiv"])
    birthday: date | None = Field(default=None, strict=False, description="YYYY-MM-DD.")
    consents: ConsentsIn = ConsentsIn()
    program_id: str | None = Field(default=None, pattern=ID_PATTERN)
    referral_code: str | None = Field(
        default=None,
        min_length=1,
        max_length=24,
        description="The code of the member who brought this one (their `referral_code`). Both get the "
        "program's referral bonuses after this member's first qualifying purchase.",
        examples=["K7M2Q9XR4T"],
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_PATTERN.match(value):
            raise ValueError("must be an e-mail address like name@example.com")
        return value.lower() if value else value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return iana_zone(value)

    @field_validator("birthday")
    @classmethod
    def _birthday(cls, value: date | None) -> date | None:
        if value is not None and not (date(1900, 1, 1) <= value <= date(2100, 1, 1)):
            raise ValueError("must be a plausible date of birth")
        return value


class ExpiryOut(BaseModel):
    date: str
    points: int


class TierProgressOut(BaseModel):
    next_tier: str
    basis: str = Field(
        description="lifetime_spend (minor units), purchase_count, or spend_window (minor units spent in the "
        "program's window, today included)."
    )
    remaining: int = Field(description="How much more of the basis the next tier needs.")
    message: str = Field(examples=["spend 3 400.00 RUB more to reach Gold"])


class ConsentsOut(BaseModel):
    marketing: bool
    bonus_notices: bool
    email: bool = True
    sms: bool = True


class MemberOut(BaseModel):
    member_id: str
    program_id: str
    email: str | None
    phone: str | None
    locale: str
    time_zone: str
    birthday: date | None
    consents: ConsentsOut
    enrolled_at: str
    tier: str
    balance: int
    held: int
    available: int
    lifetime_earned: int
    next_expiry: ExpiryOut | None = None
    tier_progress: TierProgressOut | None = None
    erased_at: str | None = Field(default=None, description="Set once the member's personal data was erased.")
    referral_code: str = Field(description="The member's own code to share: a newcomer enrolling with it is referred.")
    referred_by: str | None = Field(default=None, description="The member id of the referrer, if any.")

    @classmethod
    def of(cls, member: Member, view: dict | None = None) -> MemberOut:
        profile = member.profile
        return cls(
            member_id=member.member_id,
            program_id=profile.program_id,
            email=profile.email,
            phone=profile.phone,
            locale=profile.locale,
            time_zone=profile.time_zone,
            birthday=profile.birthday,
            consents=ConsentsOut(**profile.consents.model_dump()),
            enrolled_at=clock.isoformat(member.enrolled_at),
            tier=member.tier,
            balance=member.balance.balance,
            held=member.balance.held,
            available=member.balance.available,
            lifetime_earned=member.balance.lifetime_earned,
            erased_at=clock.isoformat(member.erased_at) if member.erased_at else None,
            referral_code=member.referral_code,
            referred_by=member.referred_by,
        ).model_copy(update=cls._ledger_view(view))

    @staticmethod
    def _ledger_view(view: dict | None) -> dict:
        if not view:
            return {}
        expiry = view["next_expiry"]
        return {
            "balance": view["balance"],
            "held": view["held"],
            "available": view["available"],
            "lifetime_earned": view["lifetime_earned"],
            "tier": view["tier"],
            "next_expiry": ExpiryOut(**expiry) if expiry else None,
            "tier_progress": TierProgressOut(**view["tier_progress"]) if view.get("tier_progress") else None,
        }


# ---------------------------------------------------------------------------- ledger
Points = Field(ge=1, le=1_000_000_000, description="Whole points.")
ACCOUNT_ID = Field(
    description="The account the operation booked on: the member in the path, or the company it manages "
    "when the company's program says company_bonus_owner company (see GET /v1/members/{id}/company)."
)
Amount = Field(ge=1, le=10**13, description="Money in integer minor units (cents, kopecks).")
CurrencyCode = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.", examples=["RUB"])


class PurchaseRequest(Request):
    order_id: str = Field(pattern=ID_PATTERN)
    amount: int = Amount
    currency: str = CurrencyCode
    occurred_at: datetime | None = Field(default=None, strict=False, description="RFC 3339; defaults to now.")

    _aware = field_validator("occurred_at")(aware)


class PurchaseOut(BaseModel):
    entry_id: str
    points: int
    balance: int = Field(description="The balance of the account that got the points (member_id).")
    tier: str
    burn_date: str
    member_id: str = ACCOUNT_ID
    manager_id: str | None = Field(
        default=None,
        description="Set when the points went to a company: the manager (the member in the path) who bought.",
    )


class QuoteRequest(Request):
    order_amount: int = Amount
    currency: str = CurrencyCode


class QuoteOut(BaseModel):
    max_points: int
    max_amount: int
    available: int
    point_value: int
    currency: str
    member_id: str = ACCOUNT_ID


class SpendRequest(Request):
    order_id: str = Field(pattern=ID_PATTERN)
    points: int = Points
    order_amount: int = Amount
    currency: str = CurrencyCode


class HoldOut(BaseModel):
    hold_id: str
    status: str
    points: int
    order_id: str
    expires_at: str
    entry_id: str | None = None
    balance: int | None = None
    member_id: str | None = Field(default=None, description="The account the points are held on.")


class RedemptionOut(BaseModel):
    entry_id: str
    points: int
    balance: int
    available: int
    member_id: str = ACCOUNT_ID


class RefundRequest(Request):
    refund_id: str = Field(pattern=ID_PATTERN)
    order_id: str = Field(pattern=ID_PATTERN)
    amount: int = Amount


class RefundOut(BaseModel):
    refund_id: str
    order_id: str
    amount: int
    points_returned: int
    points_taken_back: int
    points_unrecovered: int
    balance: int
    member_id: str = Field(description="The account the order was booked on, where the refund took effect.")


class AdjustmentRequest(Request):
    adjustment_id: str = Field(pattern=ID_PATTERN)
    points: int = Field(ge=-1_000_000_000, le=1_000_000_000, description="Positive adds, negative takes.")
    reason: str = Field(min_length=3, max_length=500, description="Why; kept on the entry for audit.")

    @field_validator("points")
    @classmethod
    def _non_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must not be 0")
        return value


class AdjustmentOut(BaseModel):
    entry_id: str
    points: int
    balance: int
    reason: str


class TransferRequest(Request):
    transfer_id: str = Field(pattern=ID_PATTERN)
    to_member_id: str = Field(pattern=ID_PATTERN)
    points: int = Points


class TransferOut(BaseModel):
    transfer_id: str
    points: int
    entry_id: str
    balance: int
    to_member_id: str
    to_entry_id: str


class EntryOut(BaseModel):
    entry_id: str
    type: str
    points: int
    balance_after: int
    created_at: str
    actor: dict[str, str]
    order_id: str | None = None
    burn_date: str | None = None
    reason: str | None = None
    details: dict[str, Any] | None = Field(
        default=None,
        description="What else the entry records: an accrual's amount and tier, a tier change's "
        "from/to/why, a transfer's other member, a refund's unrecovered points.",
    )


class EntriesOut(BaseModel):
    entries: list[EntryOut]
    next_cursor: str | None


class ErasureRequest(Request):
    reason: str = Field(
        min_length=3, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$", description="Why, e.g. the customer's request."
    )
