"""/v1/programs: the tenant's loyalty programs, each change a new version with the instant it takes
effect. Served by the admin function (the only one that may write the config table).

Percents are integer basis points at the edge, as in the model: 1 % = 100, 100 % = 10000 (exact,
no rounding of decimal fractions). Money is integer minor units of the program's currency.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field, field_validator

from loyalty.api.body import OBJECT_BODY
from loyalty.api.deps import programs
from loyalty.api.schemas import Request
from loyalty.models import (
    MAX_REMINDER_DAYS,
    MAX_REMINDERS,
    ActivityEvent,
    BonusOwner,
    BurnPolicy,
    LeavingManagerPoints,
    TierBasis,
    TierDowngrade,
    check_activity_events,
    check_reminder_days,
)
from loyalty.program_versions import ProgramVersion, VersionStatus
from loyalty.programs import ProgramView
from loyalty.web import actor_of, json_response

router = APIGatewayRouter()

PROGRAM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
ProgramId = Annotated[
    str, Path(pattern=PROGRAM_ID_PATTERN, description="The program's id: letters, digits, . _ - (up to 40).")
]
PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"  # no control characters (CR/LF included)
BP = "Basis points: 1 % = 100, 100 % = 10000."
MAX_MONEY = 10**13
MAX_BONUS = 1_000_000


# ------------------------------------------------------------------------------ request


class TierIn(Request):
    name: str = Field(min_length=1, max_length=40, pattern=PLAIN_TEXT, examples=["Silver"])
    threshold: int = Field(
        ge=0,
        le=MAX_MONEY,
        description="Where the tier starts on the program's tier_basis: minor units spent (lifetime_spend, "
        "spend_window) or a number of purchases (purchase_count). The first tier starts at 0; each next "
        "one strictly higher.",
    )
    accrual_bp: int = Field(ge=0, le=10_000, description=f"Points accrued as a share of the order. {BP}")
    discount_bp: int = Field(default=0, ge=0, le=10_000, description=f"Discount the tier gives (optional). {BP}")


class ProgramSettings(Request):
    name: str = Field(min_length=1, max_length=80, pattern=PLAIN_TEXT, examples=["Bonus club"])
    currency: str = Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code; every amount of the program is in its minor units. It cannot change "
        "in a later version (points are not converted).",
        examples=["RUB"],
    )
    point_value: int = Field(default=100, ge=1, le=1_000_000, description="Minor units one point is worth.")
    tiers: list[TierIn] = Field(min_length=1, max_length=20, description="Lowest first; thresholds rise.")
    tier_basis: TierBasis = Field(
        default=TierBasis.LIFETIME_SPEND,
        strict=False,
        description="What tiers are measured on: lifetime_spend, purchase_count, or spend_window "
        "(spend in the last tier_window_days days).",
    )
    tier_window_days: int | None = Field(
        default=None, ge=1, le=3_650, description="Days of the spend window; only with tier_basis spend_window."
    )
    tier_downgrade: TierDowngrade = Field(
        default=TierDowngrade.NEVER,
        strict=False,
        description="never, or window (nightly, when the spend window falls below the tier; needs spend_window).",
    )
    max_redeem_share_bp: int = Field(
        default=1_500, ge=0, le=10_000, description=f"The largest share of an order payable with points. {BP}"
    )
    min_order_amount: int = Field(
        default=0, ge=0, le=MAX_MONEY, description="Orders below it (minor units) accrue nothing."
    )
    hold_minutes: int = Field(default=15, ge=1, le=24 * 60, description="How long a checkout hold lasts.")
    lifetime_days: int = Field(
        default=365, ge=1, le=3_650, description="Days until points burn; points already earned keep their date."
    )
    burn_policy: BurnPolicy = Field(
        default=BurnPolicy.FIXED_LIFETIME,
        strict=False,
        description="fixed_lifetime: each accrual burns its lifetime after it was earned; inactivity: every "
        "point burns inactivity_months after the member's last activity (activity_events).",
    )
    lifetime_months: int | None = Field(
        default=None, ge=1, le=120, description="fixed_lifetime: months until points burn (instead of lifetime_days)."
    )
    round_to_month_end: bool = Field(
        default=False, description="fixed_lifetime: points stay spendable to the end of the month they would burn in."
    )
    inactivity_months: int = Field(
        default=6, ge=1, le=120, description="inactivity: months after the last activity that every point burns."
    )
    activity_events: list[Annotated[ActivityEvent, Field(strict=False)]] = Field(
        default=[ActivityEvent.PURCHASE, ActivityEvent.REDEMPTION, ActivityEvent.CARD_PRESENTED],
        max_length=3,
        description="inactivity: what counts as activity (purchase, redemption, card_presented), each once.",
    )
    reminder_days: list[int] = Field(
        default=[30],
        max_length=MAX_REMINDERS,
        description="Days before a burn that the member is reminded (amount and date), e.g. [30, 7]: distinct, "
        f"1 to {MAX_REMINDER_DAYS}; [] for none.",
    )

    @field_validator("activity_events")
    @classmethod
    def _distinct_events(cls, value: list[ActivityEvent]) -> list[ActivityEvent]:
        return list(check_activity_events(tuple(value)))

    @field_validator("reminder_days")
    @classmethod
    def _reminders(cls, value: list[int]) -> list[int]:
        return list(check_reminder_days(tuple(value)))

    welcome_bonus: int = Field(default=0, ge=0, le=MAX_BONUS, description="Points at enrolment.")
    birthday_bonus: int = Field(default=0, ge=0, le=MAX_BONUS, description="Points on the member's birthday.")
    referral_bonus_referrer: int = Field(default=0, ge=0, le=MAX_BONUS, description="Points for who referred.")
    referral_bonus_referee: int = Field(default=0, ge=0, le=MAX_BONUS, description="Points for who was referred.")
    allow_transfers: bool = Field(default=False, description="Members may transfer points to each other.")
    allow_card_handover: bool = Field(default=False, description="A card may be handed over to another person.")
    company_bonus_owner: BonusOwner = Field(
        default=BonusOwner.COMPANY, strict=False, description="Who owns a company customer's bonuses."
    )
    leaving_manager_points: LeavingManagerPoints = Field(
        default=LeavingManagerPoints.STAY_WITH_COMPANY,
        strict=False,
        description="What happens to a leaving manager's points.",
    )
    active: bool = Field(
        default=True, description="Offered to members; practitioners advise no more than three active programs."
    )


class ProgramIn(ProgramSettings):
    effective_from: datetime | None = Field(
        default=None,
        strict=False,
        description="RFC 3339 with an offset; when this version takes effect (default now; at most 5 minutes "
        "back, at most two years ahead). Until then the version before stays in force.",
    )

    @field_validator("effective_from")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2026-12-01T00:00:00Z")
        try:
            return value.astimezone(UTC)
        except OverflowError as error:
            raise ValueError("is too close to the edge of the calendar") from error


# ------------------------------------------------------------------------------ answers


class TierOut(BaseModel):
    name: str
    threshold: int
    accrual_bp: int
    discount_bp: int


class ScheduledOut(BaseModel):
    version: int
    effective_from: str | None


class ProgramVersionOut(BaseModel):
    program_id: str
    version: int = Field(description="1 for the first; each change adds one.")
    effective_from: str | None = Field(
        description="When it takes effect, RFC 3339 UTC with microseconds; null: since the program began."
    )
    status: VersionStatus = Field(
        description="current (in force now), scheduled (later), past (was in force), superseded (never: a "
        "newer version took effect first)."
    )
    created_at: str | None
    created_by: dict[str, str] | None = Field(description="key_id and role of who stored it (null: the operator).")
    name: str
    currency: str
    point_value: int
    tiers: list[TierOut]
    tier_basis: TierBasis
    tier_window_days: int | None
    tier_downgrade: TierDowngrade
    max_redeem_share_bp: int
    min_order_amount: int
    hold_minutes: int
    lifetime_days: int
    burn_policy: BurnPolicy
    lifetime_months: int | None
    round_to_month_end: bool
    inactivity_months: int
    activity_events: list[ActivityEvent]
    reminder_days: list[int]
    welcome_bonus: int
    birthday_bonus: int
    referral_bonus_referrer: int
    referral_bonus_referee: int
    allow_transfers: bool
    allow_card_handover: bool
    company_bonus_owner: BonusOwner
    leaving_manager_points: LeavingManagerPoints
    active: bool

    @classmethod
    def fields_of(cls, version: ProgramVersion, status: VersionStatus) -> dict:
        program = version.program
        fields = program.model_dump(exclude={"tenant_id", "tiers"})
        return {
            **fields,
            "tiers": [TierOut(**tier.model_dump()) for tier in program.tiers],
            "version": version.version,
            "effective_from": version.effective_from,
            "status": status,
            "created_at": version.created_at,
            "created_by": version.created_by,
        }


class ProgramOut(ProgramVersionOut):
    scheduled: list[ScheduledOut] = Field(description="Versions that take effect later, with when.")

    @classmethod
    def of_view(cls, view: ProgramView) -> ProgramOut:
        scheduled = [ScheduledOut(version=v.version, effective_from=v.effective_from) for v in view.scheduled]
        return cls(**ProgramVersionOut.fields_of(view.version, view.status), scheduled=scheduled)


class ProgramPutOut(ProgramOut):
    warnings: list[str] = Field(
        description="What to know about this change, e.g. more than three active programs, or an earlier "
        "scheduled version that this one supersedes. Empty when there is nothing to say."
    )


class ProgramsOut(BaseModel):
    programs: list[ProgramOut]


class ProgramVersionsOut(BaseModel):
    program_id: str
    versions: list[ProgramVersionOut] = Field(description="Every version, oldest first; none is ever removed.")


class MoveRequest(Request):
    program_id: str = Field(pattern=PROGRAM_ID_PATTERN, description="The program to move the member to.")


# ------------------------------------------------------------------------------ routes


@router.get("/v1/programs", summary="The tenant's programs, each as the version in force now")
def list_programs() -> ProgramsOut:
    views = programs().all(actor_of(router).tenant_id)
    return ProgramsOut(programs=[ProgramOut.of_view(view) for view in views])


@router.get("/v1/programs/<program_id>", summary="A program: the version in force now, and what is scheduled")
def get_program(program_id: ProgramId) -> ProgramOut:
    return ProgramOut.of_view(programs().get(actor_of(router).tenant_id, program_id))


@router.get("/v1/programs/<program_id>/versions", summary="Every version of a program, oldest first")
def program_versions(program_id: ProgramId) -> ProgramVersionsOut:
    history = programs().history(actor_of(router).tenant_id, program_id)
    versions = [ProgramVersionOut(**ProgramVersionOut.fields_of(version, status)) for version, status in history]
    return ProgramVersionsOut(program_id=program_id, versions=versions)


@router.put(
    "/v1/programs/<program_id>",
    summary="Create a program, or store a new version of it that takes effect at effective_from",
    responses={
        201: {"description": "Created (version 1)"},
        200: {"description": "A new version stored, or the same settings again: the version that has them"},
    },
    middlewares=OBJECT_BODY,
)
def put_program(program_id: ProgramId, body: ProgramIn) -> Response[ProgramPutOut]:
    settings = body.model_dump(exclude={"effective_from"})
    view, created = programs().put(actor_of(router), program_id, settings, body.effective_from)
    out = ProgramPutOut(**ProgramOut.of_view(view).model_dump(), warnings=list(view.warnings))
    return json_response(201 if created else 200, out)
