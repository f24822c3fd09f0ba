"""A tenant's programs: create and change them (each change a new version with the instant it takes
effect), read them, and move a member from one program to another.

History is never rewritten: a change stores a new version (``loyalty.program_versions``), the old
ones stay, and the ledger reads the version in force at each operation (``ConfigStore.get_program``).
Points already earned keep their burn date: it is on their lot. Every change and every move is
written to the audit log in the same transaction as the change itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from pydantic import ValidationError

from loyalty import clock, currency, rules
from loyalty.errors import Conflict, InvalidRequest, NotFound
from loyalty.members import Stores
from loyalty.members import get as get_member
from loyalty.models import Actor, BurnPolicy, Member, Program, TierBasis, TierDowngrade
from loyalty.program_versions import ProgramVersion, VersionStatus, in_force, instant, live, status
from loyalty.store import dynamo
from loyalty.store.audit import put_item, record
from loyalty.store.config import ProgramHead
from loyalty.store.ledger_models import Account

ADVISED_ACTIVE_PROGRAMS = 3  # practitioners' advice: customers follow few programs
PAST_TOLERANCE = timedelta(minutes=5)  # effective_from may lie this far back (clocks, slow requests)
MAX_AHEAD = timedelta(days=2 * 366)
MAX_SCHEDULED = 5  # versions waiting to take effect, per program (they live in the head item)

FieldProblem = dict[str, str]


# ------------------------------------------------------------------------------ pure checks


def _problem(field: str, message: str) -> FieldProblem:
    return {"field": field, "message": message, "type": "value_error"}


def check_settings(settings: Mapping[str, Any]) -> list[FieldProblem]:
    """What is wrong with a program's settings across fields, one entry per field (the edge model
    already checked each field alone: types, ranges, patterns). Pure."""
    problems: list[FieldProblem] = []
    code = settings.get("currency")
    if code is not None and not currency.is_known(code):
        problems.append(_problem("currency", f"{code!r} is not an ISO 4217 currency this engine knows"))
    tiers = list(settings.get("tiers") or [])
    if tiers and tiers[0]["threshold"] != 0:
        problems.append(_problem("tiers[0].threshold", "must be 0: the first tier is where every member starts"))
    for index, (before, tier) in enumerate(pairwise(tiers), start=1):
        if tier["threshold"] <= before["threshold"]:
            problems.append(
                _problem(
                    f"tiers[{index}].threshold",
                    f"must be above tiers[{index - 1}].threshold ({before['threshold']}): thresholds rise strictly",
                )
            )
    seen: set[str] = set()
    for index, tier in enumerate(tiers):
        if tier["name"] in seen:
            problems.append(_problem(f"tiers[{index}].name", f"{tier['name']!r} names another tier already"))
        seen.add(tier["name"])
    windowed = settings.get("tier_basis", TierBasis.LIFETIME_SPEND) == TierBasis.SPEND_WINDOW
    window_days = settings.get("tier_window_days")
    if windowed and window_days is None:
        problems.append(_problem("tier_window_days", "is required with tier_basis spend_window"))
    if not windowed and window_days is not None:
        problems.append(_problem("tier_window_days", "is only for tier_basis spend_window; leave it out"))
    if settings.get("tier_downgrade") == TierDowngrade.WINDOW and not windowed:
        problems.append(_problem("tier_downgrade", "window needs tier_basis spend_window"))
    if settings.get("burn_policy") == BurnPolicy.INACTIVITY:
        for name in ("lifetime_months", "round_to_month_end"):
            if settings.get(name):
                problems.append(_problem(name, "is only for burn_policy fixed_lifetime; leave it out"))
        if not settings.get("activity_events", True):
            problems.append(_problem("activity_events", "must name at least one event with burn_policy inactivity"))
    return problems


def check_effective_from(effective_from: datetime | None, now: datetime) -> list[FieldProblem]:
    """A version takes effect from now on: at most a few minutes back, at most two years ahead. Pure."""
    if effective_from is None:
        return []
    if effective_from < now - PAST_TOLERANCE:
        minutes = int(PAST_TOLERANCE.total_seconds() // 60)
        return [
            _problem(
                "effective_from",
                f"is more than {minutes} minutes in the past; history is never rewritten, "
                "so a change takes effect from now on",
            )
        ]
    if effective_from > now + MAX_AHEAD:
        return [_problem("effective_from", "is more than two years ahead")]
    return []


def tier_after_move(program: Program, account: Account) -> str:
    """The member's tier in the program it moves to, on that program's tier basis (on a spend
    window, the first tier, from which nothing is reviewed, until the next qualifying purchase
    counts the window)."""
    value = rules.basis_value(program, lifetime_spend=account.lifetime_spend, purchases=account.purchases)
    return rules.tier_for(program, value).name if value is not None else program.tiers[0].name


def invalid(problems: Sequence[FieldProblem]) -> InvalidRequest:
    summary = "; ".join(f"{p['field']} {p['message']}" for p in problems[:5])
    return InvalidRequest(f"Fix these fields: {summary}.", errors=list(problems))


# ------------------------------------------------------------------------------ service


@dataclass(frozen=True)
class ProgramView:
    """One version of a program, where it stands now, the program's scheduled versions, and for
    a change, what the caller should know (``warnings``)."""

    version: ProgramVersion
    status: VersionStatus
    scheduled: tuple[ProgramVersion, ...]
    warnings: tuple[str, ...] = ()


def _view(
    versions: Sequence[ProgramVersion], shown: ProgramVersion, at: str, warnings: Sequence[str] = ()
) -> ProgramView:
    scheduled = tuple(v for v in live(versions, at) if status(v, versions, at) is VersionStatus.SCHEDULED)
    return ProgramView(shown, status(shown, versions, at), scheduled, tuple(warnings))


def _unknown(program_id: str) -> NotFound:
    return NotFound(f"No program {program_id!r}. GET /v1/programs lists this tenant's programs.", program_id=program_id)


class Programs:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.config = stores.config
        self.audit_table = stores.ledger.table  # the audit log lives in the ledger table

    # ------------------------------------------------------------------- reads
    def _head(self, tenant_id: str, program_id: str) -> ProgramHead:
        head = self.config.program_head(tenant_id, program_id)
        if head is None:  # another tenant's program is as unknown as one that never existed
            raise _unknown(program_id)
        return head

    def get(self, tenant_id: str, program_id: str) -> ProgramView:
        """The version in force now; for a program not in force yet, its first scheduled version."""
        head = dynamo.with_retries(lambda: self._head(tenant_id, program_id))
        at = instant(clock.now())
        shown = in_force(head.versions, at) or min(head.versions, key=lambda v: (v.starts, v.version))
        return _view(head.versions, shown, at)

    def all(self, tenant_id: str) -> list[ProgramView]:
        heads = dynamo.with_retries(lambda: self.config.program_heads(tenant_id))
        at = instant(clock.now())
        views = []
        for head in heads:
            shown = in_force(head.versions, at) or min(head.versions, key=lambda v: (v.starts, v.version))
            views.append(_view(head.versions, shown, at))
        return views

    def history(self, tenant_id: str, program_id: str) -> list[tuple[ProgramVersion, VersionStatus]]:
        versions = dynamo.with_retries(lambda: self.config.program_history(tenant_id, program_id))
        if versions is None:
            raise _unknown(program_id)
        at = instant(clock.now())
        return [(version, status(version, versions, at)) for version in versions]

    # ------------------------------------------------------------------- changes
    def put(
        self, actor: Actor, program_id: str, settings: Mapping[str, Any], effective_from: datetime | None
    ) -> tuple[ProgramView, bool]:
        """Store the settings as the program's next version, in force from ``effective_from``
        (default now). Returns the version's view and whether the program is new. The same
        settings again (a retry) store nothing and answer the version that has them."""
        now = clock.now()
        problems = check_settings(settings) + check_effective_from(effective_from, now)
        if problems:
            raise invalid(problems)
        try:
            program = Program(tenant_id=actor.tenant_id, program_id=program_id, **settings)
        except ValidationError as error:  # pragma: no cover - check_settings covers the model's rules
            raise invalid([_problem("body", str(e["msg"])) for e in error.errors()]) from error
        starts = instant(effective_from or now)

        def attempt() -> tuple[ProgramView, bool]:
            at = instant(clock.now())
            head = self.config.program_head(actor.tenant_id, program_id)
            if head is not None:
                latest = head.latest
                if latest.program.currency != program.currency:
                    raise Conflict(
                        f"Program {program_id!r} runs in {latest.program.currency}; a new version cannot change "
                        f"the currency, because members' points and orders are in {latest.program.currency} and "
                        f"points are not converted. Create another program in {program.currency} instead.",
                        field="currency",
                        currency=latest.program.currency,
                    )
                same = latest.program == program
                if same and (latest.starts == starts or (effective_from is None and latest.starts <= at)):
                    return _view(head.versions, latest, at, self._warnings(actor, program, head, latest)), False
            number = head.latest_version + 1 if head else 1
            new = ProgramVersion(
                version=number,
                effective_from=starts,
                created_at=at,
                created_by={"key_id": actor.key_id, "role": actor.role.value},
                program=program,
            )
            versions = [*(head.versions if head else ()), new]
            keep = live(versions, at)
            waiting = [v for v in keep if status(v, keep, at) is VersionStatus.SCHEDULED]
            if len(waiting) > MAX_SCHEDULED:
                raise Conflict(
                    f"Program {program_id!r} has {MAX_SCHEDULED} versions waiting to take effect already; "
                    "wait for one, or store one with an earlier effective_from that replaces them.",
                    field="effective_from",
                )
            audit = record(
                actor,
                "program.put",
                ref=f"{program_id}/{number}",
                at=now,
                target=program_id,
                details={"version": number, "effective_from": starts, "active": program.active},
            )
            # Another version stored meanwhile: decide again.
            dynamo.retry_if_condition_failed(
                lambda: self.config.put_program_version(
                    head, new, keep, also=[put_item(self.audit_table, actor.tenant_id, audit)]
                )
            )
            return _view(versions, new, at, self._warnings(actor, program, head, new)), head is None

        return dynamo.with_retries(attempt)

    def _warnings(self, actor: Actor, program: Program, head: ProgramHead | None, stored: ProgramVersion) -> list[str]:
        warnings = []
        for version in head.versions if head else ():
            if version.version < stored.version and version.starts > stored.starts:
                warnings.append(
                    f"Version {version.version}, scheduled for {version.effective_from}, will not take effect: "
                    f"version {stored.version} is newer and in force before it. To keep that change, "
                    f"store it again with effective_from {version.effective_from}."
                )
        others = [h for h in self.config.program_heads(actor.tenant_id) if h.program_id != program.program_id]
        active = sum(1 for h in others if h.latest.program.active) + (1 if program.active else 0)
        if active > ADVISED_ACTIVE_PROGRAMS:
            warnings.append(
                f"This tenant has {active} active programs; practitioners advise no more than "
                f"{ADVISED_ACTIVE_PROGRAMS}, as customers follow few programs well. Consider setting "
                "active to false on programs no longer offered."
            )
        return warnings

    # ------------------------------------------------------------------- members
    def move_member(self, actor: Actor, member_id: str, program_id: str) -> Member:
        """Move a member to another program of the same currency. Balance, lots (with their burn
        dates), holds and entries stay as they are; the tier is the member's tier in the new
        program; the next operation follows the new program. Audited in the same transaction."""
        tenant = actor.tenant_id

        def attempt() -> Member:
            account = self.stores.ledger.snapshot(tenant, member_id).account
            if account is None:
                raise NotFound(f"No member {member_id!r}. Enrol it with POST /v1/members.", member_id=member_id)
            head = self._head(tenant, program_id)
            if account.program_id == program_id:
                return get_member(self.stores, tenant, member_id)  # already there: nothing to do
            now = clock.now()
            target = in_force(head.versions, instant(now))
            if target is None:
                first = min(head.versions, key=lambda v: (v.starts, v.version))
                raise Conflict(
                    f"Program {program_id!r} takes effect only at {first.effective_from}; move members after that.",
                    field="program_id",
                )
            current = self.config.program_head(tenant, account.program_id)
            code = current.latest.program.currency if current else None
            if code is not None and code != target.program.currency:
                raise Conflict(
                    f"Member {member_id!r} has points in {code} (program {account.program_id!r}); program "
                    f"{program_id!r} runs in {target.program.currency}. Points are not converted between "
                    "currencies, so a member moves only to a program of the same currency.",
                    field="program_id",
                    currency=target.program.currency,
                    member_currency=code,
                )
            if not target.program.active:
                raise Conflict(
                    f"Program {program_id!r} is not active; set active to true before moving members to it.",
                    field="program_id",
                )
            tier = tier_after_move(target.program, account)
            audit = record(
                actor,
                "member.program",
                ref=f"{member_id}/{account.version}",
                at=now,
                member_id=member_id,
                target=program_id,
                details={"from": account.program_id, "to": program_id, "tier": tier, "balance": account.balance},
            )
            # The member changed meanwhile: decide again.
            dynamo.retry_if_condition_failed(
                lambda: self.stores.ledger.change_program(
                    tenant,
                    member_id,
                    version=account.version,
                    from_program=account.program_id,
                    to_program=program_id,
                    tier=tier,
                    also=[put_item(self.audit_table, tenant, audit)],
                )
            )
            return get_member(self.stores, tenant, member_id)

        return dynamo.with_retries(attempt)
