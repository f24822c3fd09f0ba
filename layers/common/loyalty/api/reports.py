"""/v1/reports/summary: what the business steers by, per day or month, as JSON or CSV
(``loyalty.reports``; counters kept up from the ledger's stream, never a scan)."""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ConfigDict, Field

from loyalty import clock
from loyalty.api.deps import stores
from loyalty.api.programs import PROGRAM_ID_PATTERN
from loyalty.reports import MAX_DAYS, MAX_MONTHS, Reports, to_csv
from loyalty.settings import settings
from loyalty.store.reports import ReportStore
from loyalty.web import actor_of, json_response

router = APIGatewayRouter()


@cache
def reports() -> Reports:
    return Reports(ReportStore(settings().ledger_table), stores().config)


class Money(BaseModel):
    amount: int = Field(description="Minor units of the currency, at the program's point value.")
    currency: str


class Points(BaseModel):
    accrued: int = Field(description="Purchases and bonuses (welcome, birthday, referral).")
    redeemed: int = Field(description="Points paid with, as a positive number.")
    burned: int = Field(description="Points that burned (or were forfeited when a manager left), positive.")
    refunded: int = Field(description="Net change from refunds: points given back minus points taken back.")
    adjusted: int = Field(description="Net manual adjustments.")
    transferred: int = Field(description="Net points moved between members (0 within one program).")
    other: int = Field(description="Entries of any other type (tier changes carry 0 points).")
    net: int = Field(description="The change of the outstanding balance: the sum of the entries.")


class MembersOut(BaseModel):
    enrolled: int
    active: int = Field(description="Members who bought or paid with points in the period.")
    repeat_purchase: int = Field(description="Members whose qualifying purchase in the period was not their first.")
    first_purchase: int = Field(description="Members who made their first qualifying purchase in the period.")
    converted: int = Field(description="Of the members enrolled in the period, those who have bought since.")
    conversion: float | None = Field(description="converted / enrolled (null when nobody enrolled).")


class OrdersOut(BaseModel):
    count: int = Field(description="Purchases booked (qualifying or not).")
    amount: int = Field(description="Their amount, minor units of the program's currency.")
    average: int | None = Field(description="amount / count, minor units (null without orders).")


class Outstanding(BaseModel):
    points: int = Field(description="At the end of the period.")
    money: Money | None


class TierRow(BaseModel):
    tier: str
    points: Points
    members: MembersOut
    orders: OrdersOut


class ProgramRow(BaseModel):
    program_id: str
    currency: str | None
    points: Points
    outstanding: Outstanding
    members: MembersOut
    orders: OrdersOut
    tiers: list[TierRow]


class PeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    period: str = Field(description="YYYY-MM-DD or YYYY-MM.")
    first_day: str = Field(alias="from")
    last_day: str = Field(alias="to")
    points: Points
    outstanding_points: int
    members: MembersOut
    programs: list[ProgramRow]


class AgedOut(BaseModel):
    points: int
    money: Money | None


class LiabilityProgram(BaseModel):
    program_id: str
    currency: str | None
    points: int = Field(description="Points in open lots now.")
    money: Money | None
    aged: dict[str, AgedOut] = Field(description="By days left before they burn: 0-30, 31-90, 91-180, 181+.")


class Liability(BaseModel):
    as_of: str
    programs: list[LiabilityProgram]


class SummaryOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    first_day: str = Field(alias="from")
    last_day: str = Field(alias="to")
    granularity: Literal["day", "month"]
    program_id: str | None
    periods: list[PeriodOut]
    liability: Liability


# Both media types of the one 200: the body is validated against ``SummaryOut | str`` (a CSV is a
# string), and the document declares each under its own content type.
ANSWERS = {
    200: {
        "description": "The report: JSON by default, CSV with format=csv (one row per period, program and tier)",
        "content": {"application/json": {"model": SummaryOut}, "text/csv": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/v1/reports/summary",
    summary="Points accrued, redeemed, burned, refunded, adjusted; liability; members; orders (JSON or CSV)",
    responses=ANSWERS,
)
def summary(
    first: Annotated[
        dt.date | None,
        Query(alias="from", description="First day (YYYY-MM-DD, UTC); default: the first day of 11 months ago."),
    ] = None,
    last: Annotated[
        dt.date | None, Query(alias="to", description="Last day (YYYY-MM-DD, UTC); default: today.")
    ] = None,
    program_id: Annotated[
        str | None, Query(max_length=40, pattern=PROGRAM_ID_PATTERN, description="Only this program.")
    ] = None,
    granularity: Annotated[
        Literal["day", "month"],
        Query(description=f"day (at most {MAX_DAYS} days) or month (whole months, at most {MAX_MONTHS})."),
    ] = "month",
    response_format: Annotated[
        Literal["json", "csv"], Query(alias="format", description="csv: one row per period, program and tier.")
    ] = "json",
) -> Response[SummaryOut | str]:
    end = last or clock.now().date()
    if first is None:
        month = end.year * 12 + end.month - 1 - (11 if granularity == "month" else 0)
        first = dt.date(month // 12, month % 12 + 1, 1) if granularity == "month" else end - dt.timedelta(days=29)
    answer = reports().summary(
        actor_of(router).tenant_id, start=first, end=end, granularity=granularity, program_id=program_id
    )
    if response_format == "csv":
        name = f"loyalty-report-{answer['from']}-{answer['to']}.csv"
        return Response(
            status_code=200,
            content_type="text/csv; charset=utf-8",
            body=to_csv(answer),
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return json_response(200, SummaryOut.model_validate(answer))
