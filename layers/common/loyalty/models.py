"""Domain models: what the rules and the stores speak. No boto3, no HTTP here."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from enum import StrEnum
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BASIS_POINTS = 10_000  # 100 % in basis points; percents are stored as integers of 0.01 %


# A night's burn begins after local midnight and before the shop opens: 00:00-05:59.
BURN_TIME = re.compile(r"0[0-5]:[0-5][0-9]")


def iana_zone(value: str) -> str:
    """``value`` if it names an IANA time zone; a ValueError a field validator reports otherwise."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError("must be an IANA time zone such as Europe/Kyiv") from error
    return value


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Tier(Frozen):
    name: str = Field(min_length=1, max_length=40)
    threshold: int = Field(ge=0, description="Where the tier starts, in the program's tier basis.")
    accrual_bp: int = Field(ge=0, le=BASIS_POINTS, description="Accrued share of the order, in basis points.")
    discount_bp: int = Field(default=0, ge=0, le=BASIS_POINTS, description="Discount the tier gives, basis points.")


class TierBasis(StrEnum):
    LIFETIME_SPEND = "lifetime_spend"  # minor units spent since enrolment
    PURCHASE_COUNT = "purchase_count"  # number of qualifying purchases
    SPEND_WINDOW = "spend_window"  # minor units spent in the last ``tier_window_days`` days


class TierDowngrade(StrEnum):
    NEVER = "never"
    WINDOW = "window"  # nightly, when the basis window says the member fell below the tier


class BonusOwner(StrEnum):
    COMPANY = "company"
    MANAGER = "manager"


class LeavingManagerPoints(StrEnum):
    STAY_WITH_COMPANY = "stay_with_company"
    GO_WITH_MANAGER = "go_with_manager"
    BURN = "burn"


class BurnPolicy(StrEnum):
    FIXED_LIFETIME = "fixed_lifetime"  # each accrual burns its lifetime after it was earned
    INACTIVITY = "inactivity"  # every point burns inactivity_months after the member's last activity


class ActivityEvent(StrEnum):
    """What counts as a member's activity under the inactivity burn policy."""

    PURCHASE = "purchase"
    REDEMPTION = "redemption"
    CARD_PRESENTED = "card_presented"


MAX_REMINDERS = 5
MAX_REMINDER_DAYS = 366


def check_reminder_days(days: tuple[int, ...]) -> tuple[int, ...]:
    """Distinct positive day counts, at most MAX_REMINDERS, each up to MAX_REMINDER_DAYS."""
    if len(set(days)) != len(days):
        raise ValueError("must not name a day twice")
    if any(not 1 <= day <= MAX_REMINDER_DAYS for day in days):
        raise ValueError(f"each must be between 1 and {MAX_REMINDER_DAYS} days")
    if len(days) > MAX_REMINDERS:
        raise ValueError(f"at most {MAX_REMINDERS} reminders")
    return tuple(sorted(days, reverse=True))


def check_activity_events(events: tuple[ActivityEvent, ...]) -> tuple[ActivityEvent, ...]:
    if len(set(events)) != len(events):
        raise ValueError("must not name an event twice")
    return events


class Program(Frozen):
    """A loyalty program. Fields past ``allow_transfers`` are stored and validated; the rules that
    use them come with the programs issue (tiers by basis, bonuses, cards, company customers)."""

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
    tier_basis: TierBasis = TierBasis.LIFETIME_SPEND
    tier_window_days: int | None = Field(default=None, ge=1, le=3_650)
    tier_downgrade: TierDowngrade = TierDowngrade.NEVER
    min_order_amount: int = Field(default=0, ge=0, description="Orders below it accrue nothing (minor units).")
    welcome_bonus: int = Field(default=0, ge=0, le=1_000_000)
    birthday_bonus: int = Field(default=0, ge=0, le=1_000_000)
    referral_bonus_referrer: int = Field(default=0, ge=0, le=1_000_000)
    referral_bonus_referee: int = Field(default=0, ge=0, le=1_000_000)
    allow_card_handover: bool = False
    company_bonus_owner: BonusOwner = BonusOwner.COMPANY
    leaving_manager_points: LeavingManagerPoints = LeavingManagerPoints.STAY_WITH_COMPANY
    active: bool = True
    # Burning (loyalty.burning): fixed_lifetime burns each accrual lifetime_months (else
    # lifetime_days) after it was earned, at the end of that month with round_to_month_end;
    # inactivity burns every point inactivity_months after the last of the activity_events.
    burn_policy: BurnPolicy = BurnPolicy.FIXED_LIFETIME
    lifetime_months: int | None = Field(default=None, ge=1, le=120)
    round_to_month_end: bool = False
    inactivity_months: int = Field(default=6, ge=1, le=120)
    activity_events: tuple[ActivityEvent, ...] = (
        ActivityEvent.PURCHASE,
        ActivityEvent.REDEMPTION,
        ActivityEvent.CARD_PRESENTED,
    )
    reminder_days: tuple[int, ...] = (30,)  # days before a burn that a due notice is recorded

    @field_validator("reminder_days")
    @classmethod
    def _reminders(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return check_reminder_days(value)

    @field_validator("activity_events")
    @classmethod
    def _activity(cls, value: tuple[ActivityEvent, ...]) -> tuple[ActivityEvent, ...]:
        return check_activity_events(value)

    @model_validator(mode="after")
    def _tiers_rise(self) -> Program:
        thresholds = [tier.threshold for tier in self.tiers]
        if thresholds[0] != 0:
            raise ValueError("the first tier must start at threshold 0")
        if any(b <= a for a, b in pairwise(thresholds)):
            raise ValueError("tier thresholds must rise strictly")
        if (self.tier_basis is TierBasis.SPEND_WINDOW) != (self.tier_window_days is not None):
            raise ValueError("tier_window_days is required with tier_basis spend_window, and only with it")
        if self.tier_downgrade is TierDowngrade.WINDOW and self.tier_basis is not TierBasis.SPEND_WINDOW:
            raise ValueError("tier_downgrade window needs tier_basis spend_window")
        return self


class Consents(Frozen):
    """Two independent opt-outs and two channels (``loyalty.messaging.consents``): a message goes
    only where both its category and its channel are consented."""

    marketing: bool = False
    bonus_notices: bool = True
    email: bool = True
    sms: bool = True


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
    referral_code: str = ""  # the member's own code, to share
    referred_by: str | None = None  # the referrer's member id, fixed at enrolment
    # A fingerprint (sha256, no personal data) of the profile as enrolled: a retried enrolment is
    # compared with it, not with the profile as consents or a program move have changed it since.
    enrolled_profile: str | None = None


class TenantSettings(Frozen):
    """A tenant's own settings. The nightly burn: a night is a calendar date in ``burn_time_zone``
    (None: the stack's default, the ``BurnTimeZone`` parameter), and that night's burn begins at
    ``burn_time`` local time (``HH:MM``), after midnight, daylight-saving changes included."""

    burn_time_zone: str | None = None
    burn_time: str = "00:30"
    # Messaging (loyalty.touches): the welcome chain's period after day 14, the digest's period
    # after day 90, and how long a birthday coupon stays valid.
    chain_interval_days: int = Field(default=25, ge=20, le=30)
    digest_interval_days: int = Field(default=14, ge=7, le=30)
    birthday_coupon_days: int = Field(default=14, ge=1, le=366)

    @field_validator("burn_time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else iana_zone(value)

    @field_validator("burn_time")
    @classmethod
    def _time(cls, value: str) -> str:
        if not BURN_TIME.fullmatch(value):
            raise ValueError("must be a local time HH:MM between 00:00 and 05:59 (the night's burn, after midnight)")
        return value

    def local_burn_time(self) -> time:
        return time.fromisoformat(self.burn_time)


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
