"""/v1/members/{member_id}/company and /v1/members/{member_id}/managers/{manager_id}: company
customers (B2B). The company is the member in the path (API Gateway wants one name for the
path's variable at that level, so it is ``member_id`` here as on every member route).
See ``loyalty.companies`` for the rules."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field, field_validator

from loyalty.api.body import OBJECT_BODY
from loyalty.api.deps import companies
from loyalty.api.schemas import EMAIL_PATTERN, ID_PATTERN, Request
from loyalty.companies import MANAGER_PAGE
from loyalty.store.companies import Company, Contact, Link, ManagerEntry
from loyalty.web import actor_of

router = APIGatewayRouter()

PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"  # no control characters (CR/LF included)
CompanyId = Annotated[str, Path(pattern=ID_PATTERN, description="The company's member id.")]
ManagerId = Annotated[str, Path(pattern=ID_PATTERN, description="The manager's member id.")]


# ---------------------------------------------------------------------------- models
class DecisionMakerIn(Request):
    name: str = Field(min_length=1, max_length=120, pattern=PLAIN_TEXT, description="Who decides for the company.")
    email: str | None = Field(default=None, max_length=254, description="Gets the company's statements in copy.")
    phone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164.")
    locale: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$", examples=["ru", "uk", "en"])

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_PATTERN.match(value):
            raise ValueError("must be an e-mail address like name@example.com")
        return value.lower() if value else value


class CompanyRequest(Request):
    name: str = Field(min_length=1, max_length=120, pattern=PLAIN_TEXT, examples=["Acme Travel LLC"])
    decision_maker: DecisionMakerIn


class DecisionMakerOut(BaseModel):
    name: str | None = Field(description="None once the company's member was erased.")
    email: str | None
    phone: str | None
    locale: str


class ManagerOut(BaseModel):
    member_id: str
    linked_at: str


class CompanyOut(BaseModel):
    member_id: str = Field(description="The company's member id.")
    name: str
    decision_maker: DecisionMakerOut
    created_at: str
    updated_at: str
    erased_at: str | None = Field(default=None, description="Set once the company's member was erased.")
    managers: list[ManagerOut] = Field(description="Its current managers, by member id (a page of them).")
    next_cursor: str | None = Field(description="Pass it back as cursor for the next page of managers.")

    @classmethod
    def of(cls, company: Company, managers: list[ManagerEntry], next_cursor: str | None) -> CompanyOut:
        return cls(
            member_id=company.member_id,
            name=company.name,
            decision_maker=DecisionMakerOut(**vars(company.decision_maker)),
            created_at=company.created_at,
            updated_at=company.updated_at,
            erased_at=company.erased_at,
            managers=[ManagerOut(member_id=m.manager_id, linked_at=m.linked_at) for m in managers],
            next_cursor=next_cursor,
        )


class ManagerLinkOut(BaseModel):
    company_id: str
    member_id: str = Field(description="The manager.")
    linked_at: str
    stint: int = Field(description="Which of this member's links to a company it is (1 for the first).")

    @classmethod
    def of(cls, link: Link) -> ManagerLinkOut:
        return cls(company_id=link.company_id, member_id=link.member_id, linked_at=link.linked_at, stint=link.seq)


class AttributedOut(BaseModel):
    company: int = Field(description="Points the manager's purchases earned on the company's account, net of refunds.")
    manager: int = Field(description="Points its purchases earned on its own account during the link, net of refunds.")


class LeaveEntryOut(BaseModel):
    member_id: str
    entry_id: str
    type: str = Field(description="manager_leave_out, manager_leave_in, manager_leave_burn or manager_left (0 points).")
    points: int
    balance: int = Field(description="The account's balance after the entry.")


class ManagerLeaveOut(BaseModel):
    company_id: str
    manager_id: str
    rule: str = Field(description="The company's program's leaving_manager_points that applied.")
    left_at: str
    attributed: AttributedOut
    points: int = Field(description="The points that moved or burned (capped by what each account had available).")
    entries: list[LeaveEntryOut] = Field(description="One entry on each side: the company's, then the manager's.")


# ---------------------------------------------------------------------------- routes
@router.put(
    "/v1/members/<member_id>/company",
    summary="Make an enrolled member a company, or change its profile (name, decision maker)",
    middlewares=OBJECT_BODY,
)
def put_company(member_id: CompanyId, body: CompanyRequest) -> CompanyOut:
    actor = actor_of(router)
    contact = Contact(**body.decision_maker.model_dump())
    service = companies()
    service.put(actor, member_id, name=body.name, decision_maker=contact)
    return CompanyOut.of(*service.get(actor.tenant_id, member_id))


@router.get("/v1/members/<member_id>/company", summary="A company's profile and its current managers")
def get_company(
    member_id: CompanyId,
    limit: Annotated[int, Query(ge=1, le=100)] = MANAGER_PAGE,
    cursor: Annotated[str | None, Query(max_length=400, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> CompanyOut:
    found = companies().get(actor_of(router).tenant_id, member_id, limit=limit, cursor=cursor)
    return CompanyOut.of(*found)


@router.put(
    "/v1/members/<member_id>/managers/<manager_id>",
    summary="Link an enrolled member to the company as its manager (one company at a time)",
)
def link_manager(member_id: CompanyId, manager_id: ManagerId) -> ManagerLinkOut:
    return ManagerLinkOut.of(companies().link(actor_of(router), member_id, manager_id))


@router.delete(
    "/v1/members/<member_id>/managers/<manager_id>",
    summary="The manager leaves the company: its points follow the program's leaving_manager_points",
)
def unlink_manager(member_id: CompanyId, manager_id: ManagerId) -> ManagerLeaveOut:
    return ManagerLeaveOut(**companies().leave(actor_of(router), member_id, manager_id))
