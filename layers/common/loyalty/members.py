"""Enrolment and the member's profile."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from loyalty import clock, rules
from loyalty.errors import Conflict, NotFound
from loyalty.models import Actor, Member, Profile, Program
from loyalty.store import dynamo
from loyalty.store.audit import put_item, record
from loyalty.store.config import ConfigStore
from loyalty.store.ledger import LedgerStore


@dataclass(frozen=True)
class Stores:
    ledger: LedgerStore
    config: ConfigStore


def program_of(stores: Stores, tenant_id: str, program_id: str | None) -> Program:
    """The program (the tenant's default if no id) as it is in force now: the version whose
    ``effective_from`` has come (``ConfigStore.get_program``), so each operation follows the
    version in force when it runs."""
    program_id = program_id or stores.config.default_program_id(tenant_id)
    program = stores.config.get_program(tenant_id, program_id) if program_id else None
    if program is None:
        raise NotFound(f"Program {program_id!r} does not exist for this tenant.", field="program_id")
    return program


def enrol(
    stores: Stores, tenant_id: str, member_id: str, profile: Profile, *, actor: Actor | None = None
) -> tuple[Member, bool]:
    """Enrol a member. The same request again returns the same member (created=False);
    the same id with other data is a conflict, never an overwrite. ``actor`` (the API key that
    enrols) is recorded on the member."""
    program = program_of(stores, tenant_id, profile.program_id or None)
    profile = profile.model_copy(update={"program_id": program.program_id})
    candidate = Member(
        tenant_id=tenant_id,
        member_id=member_id,
        profile=profile,
        enrolled_at=clock.now(),
        tier=rules.tier_for(program, 0).name,
        enrolled_by={"key_id": actor.key_id, "role": actor.role.value} if actor else None,
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
    member = dynamo.with_retries(lambda: stores.ledger.get_member(tenant_id, member_id))
    if member is None:
        raise NotFound(f"No member {member_id!r}. Enrol it with POST /v1/members.", member_id=member_id)
    return member


def erase(stores: Stores, actor: Actor, member_id: str, *, reason: str, audit_table: str) -> Member:
    """Anonymise a member's contacts and profile (a data-erasure request). The ledger stays valid:
    entries hold no personal data, and balance, lots and history are kept. Erasing twice answers
    the erased member again; the audit log records who did it and why."""

    def attempt() -> Member:
        member = get(stores, actor.tenant_id, member_id)
        if member.erased_at is not None:
            return member
        now = clock.now()
        audit = record(actor, "member.erase", ref=member_id, at=now, member_id=member_id, reason=reason)
        try:
            stores.ledger.erase_member(
                actor.tenant_id, member_id, clock.isoformat(now), also=[put_item(audit_table, actor.tenant_id, audit)]
            )
        except ClientError as error:
            if "ConditionalCheckFailed" in dynamo.cancellation_codes(error):
                raise dynamo.Retry() from error  # erased meanwhile: the next attempt answers it
            raise
        return get(stores, actor.tenant_id, member_id)

    return dynamo.with_retries(attempt)
