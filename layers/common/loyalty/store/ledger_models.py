"""What the ledger store reads and writes, as domain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class OpenHold:
    hold_id: str
    points: int
    expires_at: int  # epoch seconds

    def live(self, now: datetime) -> bool:
        return self.expires_at > int(now.timestamp())


@dataclass(frozen=True)
class Account:
    """A member's ledger state, read consistently; ``version`` guards every write."""

    tenant_id: str
    member_id: str
    program_id: str
    version: int
    seq: int
    balance: int
    lifetime_earned: int
    lifetime_spend: int
    purchases: int
    tier: str
    lot_debt: int
    holds: tuple[OpenHold, ...]
    referred_by: str | None = None  # the referrer's member id, fixed at enrolment
    referral_state: str | None = None  # pending (bonuses due after the first qualifying purchase) | paid
    # Company customers (loyalty.companies): a company's account, or the company a manager works for
    # (None if none) and the manager's stint there (one more at each link).
    is_company: bool = False
    company_id: str | None = None
    company_seq: int | None = None
    # A spend_window program's qualifying spend by day (``rules.window_of``), and the day the tier
    # is next reviewed (ISO date; mirrored by the member's IDX#TIER marker in gsi1).
    tier_window: dict[str, int] = field(default_factory=dict)
    tier_review: str | None = None

    def held(self, now: datetime) -> int:
        return sum(hold.points for hold in self.holds if hold.live(now))

    def available(self, now: datetime) -> int:
        return self.balance - self.held(now)


@dataclass(frozen=True)
class Lot:
    burn_date: str
    remaining: int


@dataclass(frozen=True)
class Guard:
    """The permanent record that a business key was applied, with its first result."""

    fingerprint: str
    result: dict[str, Any]


@dataclass(frozen=True)
class Order:
    order_id: str
    amount: int | None = None  # from the purchase
    order_amount: int | None = None  # from a redemption or hold, if no purchase yet
    currency: str | None = None
    earned: int = 0
    earned_burn_date: str | None = None
    spent: int = 0
    refunded: int = 0
    reversed_due: int = 0
    returned: int = 0
    hold_seq: int = 0  # which hold of this order is the current one (a released one may be followed)
    window_day: str | None = None  # the day its spend counts in a spend window (set if it counted)
    qualified: bool = True  # the purchase reached the minimum order (it accrued and counted for tiers)

    @property
    def base_amount(self) -> int | None:
        return self.amount if self.amount is not None else self.order_amount


@dataclass(frozen=True)
class Hold:
    hold_id: str
    member_id: str
    order_id: str
    points: int
    order_amount: int
    currency: str
    status: str  # open | captured | released
    expires_at: int
    fingerprint: str
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    entry_id: str
    type: str
    points: int
    balance_after: int
    created_at: str
    actor: dict[str, str]
    order_id: str | None = None
    burn_date: str | None = None
    reason: str | None = None
    ref: str | None = None
    details: dict[str, Any] | None = None
