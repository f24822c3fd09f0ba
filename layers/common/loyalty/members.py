"""Enrolment and the member's profile."""

from __future__ import annotations

from dataclasses import dataclass

from loyalty import clock, rules
from loyalty.errors import Conflict, NotFound
from loyalty.models import Member, Profile, Program
from loyalty.store import dynamo
from loyalty.store.config import ConfigStore
from loyalty.store.ledger import LedgerStore


@dataclass(frozen=True)
class Stores:
    ledger: LedgerStore
    config: ConfigStore


def program_of(stores: Stores, tenant_id: str, program_id: str | None) -> Program:
    program_id = program_id or stores.config.default_program_id(tenant_id)
    program = stores.config.get_program(tenant_id, program_id) if program_id else None
    if program is None:
        raise NotFound(f"Program {program_id!r} does not exist for this tenant.", field="program_id")
    return program


def enrol(stores: Stores, tenant_id: str, member_id: str, profile: Profile) -> tuple[Member, bool]:
    """Enrol a member. The same request again returns the same member (created=False);
    the same id with other data is a conflict, never an overwrite."""
    program = program_of(stores, tenant_id, profile.program_id or None)
    profile = profile.model_copy(update={"program_id": program.program_id})
    candidate = Member(
        tenant_id=tenant_id,
        member_id=member_id,
        profile=profile,
        enrolled_at=clock.now(),
        tier=rules.tier_for(program, 0).name,
    )
    created = dynamo.with_retries(lambda: stores.ledger.create_member(candidate))
    if created is not None:
        return created, True
    existing = stores.ledger.get_member(tenant_id, member_id)
    if existing is None:  # pragma: no cover - members are never deleted
        raise Conflict("The member was being enrolled concurrently; retry.")
    if existing.profile != profile:
        raise Conflict(
            f"Member {member_id!r} is already enrolled with other data; read it with GET /v1/members/{member_id}.",
            member_id=member_id,
        )
    return existing, False


def get(stores: Stores, tenant_id: str, member_id: str) -> Member:
    member = stores.ledger.get_member(tenant_id, member_id)
    if member is None:
        raise NotFound(f"No member {member_id!r}. Enrol it with POST /v1/members.", member_id=member_id)
    return member
