"""Enrolment and the member's profile."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from loyalty import clock, rules
from loyalty.errors import Conflict, InvalidRequest, NotFound
from loyalty.models import Actor, Member, Profile, Program
from loyalty.store import dynamo, keys
from loyalty.store.audit import put_item, record
from loyalty.store.companies import CompanyStore
from loyalty.store.config import ConfigStore
from loyalty.store.ledger import LedgerStore
from loyalty.store.ledger_models import Entry


@dataclass(frozen=True)
class Stores:
    ledger: LedgerStore
    config: ConfigStore


class _RunProgramCache(ConfigStore):
    """The config store with programs remembered (one GetItem per program, not per member): for
    one run of a scheduled job, which must see a program change at its next run."""

    def __init__(self, table: str, client: Any | None = None) -> None:
        super().__init__(table, client)
        self._programs: dict[tuple[str, str], Program | None] = {}

    def get_program(self, tenant_id: str, program_id: str) -> Program | None:
        key = (tenant_id, program_id)
        if key not in self._programs:
            self._programs[key] = super().get_program(tenant_id, program_id)
        return self._programs[key]


def job_stores(ledger_table: str, config_table: str, client: Any | None = None) -> Stores:
    """The stores as one run of a scheduled job uses them: programs read once per run (make new
    ones for every run)."""
    return Stores(ledger=LedgerStore(ledger_table, client), config=_RunProgramCache(config_table, client))


def program_of(stores: Stores, tenant_id: str, program_id: str | None) -> Program:
    """The program (the tenant's default if no id) as it is in force now: the version whose
    ``effective_from`` has come (``ConfigStore.get_program``), so each operation follows the
    version in force when it runs."""
    program_id = program_id or stores.config.default_program_id(tenant_id)
    program = stores.config.get_program(tenant_id, program_id) if program_id else None
    if program is None:
        raise NotFound(f"Program {program_id!r} does not exist for this tenant.", field="program_id")
    return program


REFERRAL_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
REFERRAL_CODE_LENGTH = 10  # 50 bits: a collision among a million members is 1 in 2 000
MAX_REFERRAL_CHAIN = 64


def referral_code_for(tenant_id: str, member_id: str, attempt: int = 0) -> str:
    """A member's referral code: stable (the same enrolment names the same code), short, and
    unambiguous to read aloud. ``attempt`` > 0 gives the next candidate after a collision."""
    parts = [tenant_id, member_id] + ([str(attempt)] if attempt else [])
    number = int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest(), 16)
    code = []
    for _ in range(REFERRAL_CODE_LENGTH):
        number, digit = divmod(number, 32)
        code.append(REFERRAL_ALPHABET[digit])
    return "".join(code)


def normalize_referral_code(code: str) -> str:
    """What a customer types: any case, with spaces or dashes, O for 0 and I/L for 1."""
    cleaned = code.upper().replace("-", "").replace(" ", "").replace("O", "0").replace("I", "1").replace("L", "1")
    if len(cleaned) != REFERRAL_CODE_LENGTH or any(c not in REFERRAL_ALPHABET for c in cleaned):
        raise InvalidRequest(
            f"referral_code must be the {REFERRAL_CODE_LENGTH} letters and digits of a member's code.",
            field="referral_code",
        )
    return cleaned


def _same_person(a: Profile, b: Profile) -> str | None:
    """Which contact two profiles share, if any (a customer referring a second account of theirs)."""
    if a.email and b.email and a.email.lower() == b.email.lower():
        return "email"
    if a.phone and b.phone and a.phone == b.phone:
        return "phone"
    return None


def _referrer(stores: Stores, tenant_id: str, member_id: str, profile: Profile, code: str) -> str:
    """The member id behind ``code``, refused for an unknown code, an erased referrer or a
    self-referral (the member's own code, or a referrer with the member's e-mail or phone)."""
    referrer_id = stores.ledger.referral_owner(tenant_id, normalize_referral_code(code))
    if referrer_id is None:
        raise InvalidRequest("No member has this referral_code; check it with the referrer.", field="referral_code")
    if referrer_id == member_id:
        raise InvalidRequest("Self-referral: this is the member's own referral code.", field="referral_code")
    referrer = get(stores, tenant_id, referrer_id)
    if referrer.erased_at is not None:
        raise InvalidRequest("The referrer's account is closed; this code no longer works.", field="referral_code")
    shared = _same_person(profile, referrer.profile)
    if shared:
        raise InvalidRequest(
            f"Self-referral: the referrer has the same {shared} as the new member.", field="referral_code"
        )
    return referrer_id


def _referral_chain(stores: Stores, tenant_id: str, member_id: str) -> list[str]:
    """``member_id`` and who referred it, and who referred that one, ... (bounded)."""
    chain = [member_id]
    while len(chain) < MAX_REFERRAL_CHAIN:
        member = stores.ledger.get_member(tenant_id, chain[-1])
        if member is None or member.referred_by is None or member.referred_by in chain:
            break
        chain.append(member.referred_by)
    return chain


def enrol(
    stores: Stores,
    tenant_id: str,
    member_id: str,
    profile: Profile,
    *,
    actor: Actor | None = None,
    referral_code: str | None = None,
) -> tuple[Member, bool]:
    """Enrol a member, with the program's welcome bonus in the same transaction. The same request
    again returns the same member (created=False); the same id with other data is a conflict,
    never an overwrite. ``actor`` (the API key that enrols) is recorded on the member.

    ``referral_code``: the code of the member who brought this one. Both get the program's
    referral bonuses after the newcomer's first qualifying purchase (``loyalty.referrals``), never
    at enrolment. A referrer is fixed at enrolment, so the referral graph cannot form a loop; an
    existing member asking for one is told why not."""
    program = program_of(stores, tenant_id, profile.program_id or None)
    profile = profile.model_copy(update={"program_id": program.program_id})
    existing = stores.ledger.get_member(tenant_id, member_id)
    if existing is not None:
        return _enrolled_already(stores, existing, profile, referral_code), False
    referred_by = _referrer(stores, tenant_id, member_id, profile, referral_code) if referral_code else None
    now = clock.now()
    welcome = None
    if program.welcome_bonus:
        burn = rules.burn_date(program, now).isoformat()
        welcome = Entry(
            entry_id=keys.stable_id("ent", tenant_id, member_id, "welcome"),
            type="welcome_bonus",
            points=program.welcome_bonus,
            balance_after=program.welcome_bonus,
            created_at=clock.isoformat(now),
            actor={"key_id": actor.key_id, "role": actor.role.value} if actor else {},
            burn_date=burn,
            ref="welcome",
        )
    for attempt in range(4):
        candidate = Member(
            tenant_id=tenant_id,
            member_id=member_id,
            profile=profile,
            enrolled_at=now,
            tier=rules.tier_for(program, 0).name,
            enrolled_by={"key_id": actor.key_id, "role": actor.role.value} if actor else None,
            referral_code=referral_code_for(tenant_id, member_id, attempt),
            referred_by=referred_by,
            enrolled_profile=profile_fingerprint(profile),
        )
        outcome = dynamo.with_retries(lambda c=candidate: stores.ledger.create_member(c, welcome=welcome))
        if outcome == "created":
            return get(stores, tenant_id, member_id), True
        if outcome == "exists":
            existing = get(stores, tenant_id, member_id)
            return _enrolled_already(stores, existing, profile, referral_code), False
    raise Conflict("Could not find a free referral code for this member; retry.")  # pragma: no cover


def profile_fingerprint(profile: Profile) -> str:
    """sha256 of the profile's canonical JSON: what an enrolment asked for, without keeping it."""
    canonical = json.dumps(profile.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _enrolled_already(stores: Stores, existing: Member, profile: Profile, referral_code: str | None) -> Member:
    """A repeat of an enrolment answers the member; anything else is a conflict that says why."""
    tenant_id, member_id = existing.tenant_id, existing.member_id
    same = (
        existing.enrolled_profile == profile_fingerprint(profile)
        if existing.enrolled_profile
        else existing.profile == profile  # enrolled before fingerprints: the profile as it is now
    )
    if not same:
        raise Conflict(
            f"Member {member_id!r} is already enrolled with other data; read it with GET /v1/members/{member_id}.",
            member_id=member_id,
        )
    if referral_code is None:
        return existing
    code = normalize_referral_code(referral_code)
    referrer_id = stores.ledger.referral_owner(tenant_id, code)
    if referrer_id is not None and referrer_id == existing.referred_by:
        return existing
    if referrer_id == member_id:
        raise InvalidRequest("Self-referral: this is the member's own referral code.", field="referral_code")
    if referrer_id is not None and member_id in _referral_chain(stores, tenant_id, referrer_id):
        raise Conflict(
            f"Referral loop: {member_id!r} brought {referrer_id!r} (directly or through others), "
            "so it cannot be referred by them.",
            member_id=member_id,
        )
    raise Conflict(
        f"Member {member_id!r} is enrolled already; a referrer can only be given at enrolment.", member_id=member_id
    )


def get(stores: Stores, tenant_id: str, member_id: str) -> Member:
    member = dynamo.with_retries(lambda: stores.ledger.get_member(tenant_id, member_id))
    if member is None:
        raise NotFound(f"No member {member_id!r}. Enrol it with POST /v1/members.", member_id=member_id)
    return member


def erase(stores: Stores, actor: Actor, member_id: str, *, reason: str, audit_table: str) -> Member:
    """Anonymise a member's contacts and profile (a data-erasure request). The ledger stays valid:
    entries hold no personal data, and balance, lots and history are kept. Erasing twice answers
    the erased member again; the audit log records who did it and why. A company's decision
    maker's contact goes in the same transaction (and a member that is not a company must not
    become one meanwhile)."""
    companies = CompanyStore.beside(stores.ledger)

    def attempt() -> Member:
        member = get(stores, actor.tenant_id, member_id)
        if member.erased_at is not None:
            return member
        now = clock.now()
        audit = record(actor, "member.erase", ref=member_id, at=now, member_id=member_id, reason=reason)
        company = companies.company(actor.tenant_id, member_id)
        contact = (
            companies.erase_company(actor.tenant_id, member_id, clock.isoformat(now))
            if company is not None
            else companies.no_company(actor.tenant_id, member_id)
        )
        # Erased meanwhile: the next attempt answers it.
        dynamo.retry_if_condition_failed(
            lambda: stores.ledger.erase_member(
                actor.tenant_id,
                member_id,
                clock.isoformat(now),
                also=[put_item(audit_table, actor.tenant_id, audit), contact],
            )
        )
        return get(stores, actor.tenant_id, member_id)

    return dynamo.with_retries(attempt)
