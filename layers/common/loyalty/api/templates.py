"""/v1/templates: the tenant's own message templates (overrides of the repository's), and a
preview of any kind as the customer would get it."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

from loyalty.api.body import OBJECT_BODY
from loyalty.api.schemas import Request
from loyalty.errors import InvalidRequest
from loyalty.messaging import templates
from loyalty.messaging.kinds import KINDS
from loyalty.messaging.templates import MAX_PART_CHARS, Rendered, StoredTemplate
from loyalty.settings import settings
from loyalty.store.templates import TemplateStore
from loyalty.web import actor_of

router = APIGatewayRouter()

LOCALE_PATTERN = r"^[a-z]{2}(-[A-Z]{2})?$"
Kind = Annotated[str, Path(pattern=r"^[a-z0-9_]{1,40}$", description=f"One of: {', '.join(KINDS)}.")]
Locale = Annotated[str, Path(pattern=LOCALE_PATTERN, description="ru, uk, en, or any other language (ll or ll-CC).")]
ChannelPath = Annotated[Literal["email", "sms"], Path(description="email or sms.")]


@cache
def _store() -> TemplateStore:
    return TemplateStore(settings().config_table)


class TemplateIn(Request):
    subject: str | None = Field(default=None, max_length=MAX_PART_CHARS["subject"], description="E-mail only.")
    html: str | None = Field(default=None, max_length=MAX_PART_CHARS["html"], description="E-mail only.")
    text: str = Field(max_length=MAX_PART_CHARS["text"], description="The e-mail's plain text, or the SMS.")


class TemplateOut(BaseModel):
    kind: str
    channel: str
    locale: str
    source: Literal["tenant", "repository"] = Field(description="The tenant's own template or the repository's.")
    subject: str | None = None
    html: str | None = None
    text: str
    variables: list[str] = Field(description="What the template may use (and kind, category).")
    updated_at: str | None = None
    updated_by: dict[str, str] | None = None

    @classmethod
    def of(cls, found: StoredTemplate) -> TemplateOut:
        return cls(
            kind=found.kind,
            channel=found.channel,
            locale=found.locale,
            source=found.source,
            subject=found.parts.get("subject"),
            html=found.parts.get("html"),
            text=found.parts["text"],
            variables=sorted(KINDS[found.kind].variables),
            updated_at=found.updated_at,
            updated_by=dict(found.updated_by) if found.updated_by else None,
        )


class PreviewIn(Request):
    locale: str | None = Field(default=None, pattern=LOCALE_PATTERN, description="Default: en (with the fallbacks).")
    channel: Literal["email", "sms"] = "email"
    data: dict[str, Any] | None = Field(
        default=None, description="Variables to render with, on top of the kind's sample data."
    )


class PreviewOut(BaseModel):
    kind: str
    channel: str
    locale: str = Field(description="The locale used, after the fallback chain.")
    subject: str | None = None
    html: str | None = None
    text: str
    encoding: Literal["GSM-7", "UCS-2"] | None = Field(default=None, description="SMS only.")
    segments: int | None = Field(default=None, description="SMS only: parts billed (160/153 GSM-7, 70/67 UCS-2).")

    @classmethod
    def of(cls, rendered: Rendered) -> PreviewOut:
        return cls(**{name: getattr(rendered, name) for name in cls.model_fields})


@router.get("/v1/templates/<kind>/<locale>/<channel>", summary="The template in force for a kind, locale, channel")
def get_template(kind: Kind, locale: Locale, channel: ChannelPath) -> TemplateOut:
    return TemplateOut.of(templates.stored(_store(), actor_of(router).tenant_id, kind, channel, locale))


@router.put(
    "/v1/templates/<kind>/<locale>/<channel>",
    summary="Save the tenant's own template (refused with 422 if it uses an unknown variable or does not parse)",
    middlewares=OBJECT_BODY,
)
def put_template(kind: Kind, locale: Locale, channel: ChannelPath, body: TemplateIn) -> TemplateOut:
    if channel == "sms" and (body.subject or body.html):
        raise InvalidRequest("An SMS template has text only; remove subject and html.", field="subject")
    parts = body.model_dump() if channel == "email" else {"text": body.text}
    found = templates.save(
        _store(), actor_of(router), kind, channel, locale, parts, audit_table=settings().ledger_table
    )
    return TemplateOut.of(found)


@router.delete(
    "/v1/templates/<kind>/<locale>/<channel>",
    summary="Delete the tenant's own template; answers the repository's, in force again",
)
def delete_template(kind: Kind, locale: Locale, channel: ChannelPath) -> TemplateOut:
    found = templates.delete(_store(), actor_of(router), kind, channel, locale, audit_table=settings().ledger_table)
    return TemplateOut.of(found)


@router.post(
    "/v1/templates/<kind>/preview",
    summary="Render a kind as the customer would get it (sample or given data; SMS encoding and segments)",
    middlewares=OBJECT_BODY,
)
def preview(kind: Kind, body: PreviewIn) -> PreviewOut:
    tenant_id = actor_of(router).tenant_id
    return PreviewOut.of(templates.preview(kind, body.channel, body.locale, body.data, tenant_id=tenant_id))
