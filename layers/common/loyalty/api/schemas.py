"""The API's input and output models (the edge). Domain models stay in the layer."""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loyalty import clock
from loyalty.models import Member

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"
# Printable ASCII only: no CR/LF (header injection), no look-alike unicode.
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ConsentsIn(Request):
    marketing: bool = Field(default=False, description="Advertising and newsletters.")
    bonus_notices: bool = Field(default=True, description="Useful notices about the member's bonuses.")


class EnrolRequest(Request):
    member_id: str = Field(pattern=ID_PATTERN, description="The customer's id in the shop.")
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164.")
    locale: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$", examples=["ru", "uk", "en"])
    time_zone: str = Field(default="UTC", max_length=64, examples=["Europe/Kyiv"])
    birthday: date | None = None
    consents: ConsentsIn = ConsentsIn()
    program_id: str | None = Field(default=None, pattern=ID_PATTERN)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_PATTERN.match(value):
            raise ValueError("must be an e-mail address like name@example.com")
        return value.lower() if value else value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError("must be an IANA time zone such as Europe/Kyiv") from error
        return value

    @field_validator("birthday")
    @classmethod
    def _birthday(cls, value: date | None) -> date | None:
        if value is not None and not (date(1900, 1, 1) <= value <= date(2100, 1, 1)):
            raise ValueError("must be a plausible date of birth")
        return value


class ConsentsOut(BaseModel):
    marketing: bool
    bonus_notices: bool


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

    @classmethod
    def of(cls, member: Member) -> MemberOut:
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
        )
