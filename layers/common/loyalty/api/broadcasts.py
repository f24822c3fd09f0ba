"""/v1/broadcasts: one message to every member of a segment (all, a program, a tier), resumable,
with progress (``loyalty.broadcasts``)."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field, model_validator

from loyalty import broadcasts
from loyalty.api.body import OBJECT_BODY
from loyalty.api.deps import stores
from loyalty.api.schemas import ID_PATTERN, Request
from loyalty.errors import InvalidRequest, NotFound
from loyalty.settings import settings
from loyalty.store import dynamo
from loyalty.web import actor_of, json_response

router = APIGatewayRouter()

BroadcastId = Annotated[str, Path(pattern=ID_PATTERN, description="The caller's id of the broadcast.")]
TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # no control characters but tabs and line breaks


class Segment(Request):
    """Who gets it: ``{"all": true}``, ``{"program_id": ...}`` or ``{"program_id": ..., "tier": ...}``."""

    all: Literal[True] | None = Field(default=None, description="Every member of the tenant.")
    program_id: str | None = Field(default=None, pattern=ID_PATTERN)
    tier: str | None = Field(default=None, min_length=1, max_length=64, description="A tier of the program.")

    @model_validator(mode="after")
    def _one_kind(self) -> Segment:
        if (self.all is None) == (self.program_id is None):
            raise ValueError('give either "all": true or a "program_id" (with an optional "tier")')
        if self.tier is not None and self.program_id is None:
            raise ValueError('a "tier" needs its "program_id"')
        return self

    def spec(self) -> dict[str, Any]:
        return (
            {"all": True}
            if self.all
            else {k: v for k, v in (("program_id", self.program_id), ("tier", self.tier)) if v}
        )


class BroadcastRequest(Request):
    broadcast_id: str = Field(pattern=ID_PATTERN, description="Yours: the same id and body is the same broadcast.")
    title: str = Field(min_length=1, max_length=200, pattern=TEXT)
    message: str = Field(min_length=1, max_length=5000, pattern=TEXT)
    segment: Segment


class BroadcastOut(BaseModel):
    broadcast_id: str
    status: str = Field(description="running, then done once every member of the segment has a decision.")
    scanned: int = Field(description="The tenant's members read so far.")
    decided: int = Field(description="Members of the segment a message was decided for so far (sent by the sender).")
    started_at: str
    finished_at: str | None
    segment: dict[str, Any]
    title: str


def _out(progress: broadcasts.Progress) -> BroadcastOut:
    return BroadcastOut(**progress.__dict__)


def _store() -> broadcasts.BroadcastStore:
    return broadcasts.BroadcastStore(settings().ledger_table)


@router.post(
    "/v1/broadcasts",
    summary="Start a broadcast to a segment (all, a program, a tier): 202; the same id and body again: the same one",
    middlewares=OBJECT_BODY,
    responses={202: {"description": "Started (or started before with this id and body): its progress"}},
)
def start_broadcast(body: BroadcastRequest) -> Response[BroadcastOut]:
    actor = actor_of(router)
    segment = body.segment.spec()
    if "program_id" in segment:
        program = dynamo.with_retries(lambda: stores().config.get_program(actor.tenant_id, segment["program_id"]))
        if program is None:
            raise NotFound(f"No program {segment['program_id']!r}.", field="segment.program_id")
        if "tier" in segment and segment["tier"] not in {tier.name for tier in program.tiers}:
            raise InvalidRequest(
                f"Program {program.program_id!r} has no tier {segment['tier']!r}; its tiers: "
                + ", ".join(tier.name for tier in program.tiers)
                + ".",
                field="segment.tier",
            )
    queue = broadcasts.BroadcastQueue(os.environ["BROADCAST_QUEUE_URL"])
    progress, _ = broadcasts.start(
        _store(), queue, actor.tenant_id, body.broadcast_id, body.title, body.message, segment, f"key:{actor.key_id}"
    )
    return json_response(202, _out(progress))


@router.get("/v1/broadcasts/<broadcast_id>", summary="A broadcast's progress")
def get_broadcast(broadcast_id: BroadcastId) -> BroadcastOut:
    tenant_id = actor_of(router).tenant_id
    item = dynamo.with_retries(lambda: _store().get(tenant_id, broadcast_id))
    if item is None:
        raise NotFound(f"No broadcast {broadcast_id!r}.", field="broadcast_id")
    return _out(broadcasts.Progress.of(item))
