"""Domain models: what the rules and the stores speak. No boto3, no HTTP here."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from itertools import pairwise

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BASIS_POINTS = 10_000  # 100 % in basis points; percents are stored as integers of 0.01 %


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Tier(Frozen):
    name: str = Field(min_length=1, max_length=40)
    threshold: int = Field(ge=0, description="Lifetime spend (minor units) from which the tier applies.")
    accrual_bp: int = Field(ge=0, le=BASIS_POINTS, description="Accrued share of the order, in basis points.")


class Program(Frozen):
    tenant_id: str
    program_id: str = ""
    name: str
    currency: str
    point_value: int = Field(default=100, ge=1, description="Minor units one point is worth.")
    tiers: tuple[Tier, ...] = Field(min_length=1)
    max_redeem_share_bp: int = Field(default=1_500, ge=0, le=BASIS_POINTS)
    hold_minutes: int = Field(default=15, ge=1, le=24 * 60)
    lifetime_days: int = Field(default=365, ge=1, le=3_650)
    allow_transfers: bool = False

    @model_validator(mode="after")
    def _tiers_rise(self) -> Program:
        thresholds = [tier.threshold for tier in self.tiers]
        if thresholds[0] != 0:
            raise ValueError("the first tier must start at threshold 0")
        if any(b <= a for a, b in pairwise(thresholds)):
            raise ValueError("tier thresholds must rise strictly")
        return self


class Consents(Frozen):
    marketing: bool = False
    bonus_notices: bool = True


class Profile(Frozen):
    """What the shop tells us about a customer at enrolment."""

    email: str | None = None
    phone: str | None = None
    locale: str = "en"
    time_zone: str = "UTC"
    birthday: date | None = None
    consents: Consents = Consents()
    program_id: str = ""


class Balance(Frozen):
    balance: int = 0
    held: int = 0
    lifetime_earned: int = 0

    @property
    def available(self) -> int:
        return self.balance - self.held


class Member(Frozen):
    tenant_id: str
    member_id: str
    profile: Profile
    enrolled_at: datetime
    balance: Balance = Balance()
    lifetime_spend: int = 0
    tier: str
    erased_at: datetime | None = None
    enrolled_by: dict[str, str] | None = None  # the API key (id and role) that enrolled the member


class Role(StrEnum):
    INTEGRATION = "integration"
    MANAGER = "manager"
    SENIOR = "senior"
    ADMIN = "admin"


class ApiKey(Frozen):
    key_id: str
    tenant_id: str
    role: Role
    active: bool = True
    name: str = ""
    created_at: str = ""
    revoked_at: str | None = None

    @field_validator("tenant_id")
    @classmethod
    def _tenant(cls, value: str) -> str:
        if not value:
            raise ValueError("tenant_id is required")
        return value


class Actor(Frozen):
    """Who asked: the API key (or operator) behind a write, recorded on every entry."""

    tenant_id: str
    key_id: str
    role: Role
