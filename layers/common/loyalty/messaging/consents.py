"""A member's consents: two independent opt-outs (marketing, bonus notices) and two channels
(email, SMS); a message goes only where both its category and its channel are allowed.

``allows`` is a pure rule over what a member item or profile says. ``change`` records a change
with when, how (``via``) and by whom (``actor``), in the same transaction as the new state
(``loyalty.store.consents``); the consents given at enrolment open the history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any, Literal, get_args

from loyalty import clock
from loyalty.errors import Conflict, InvalidRequest, NotFound
from loyalty.messaging.kinds import Category, Channel
from loyalty.models import Consents
from loyalty.store import dynamo
from loyalty.store.consents import ConsentChange, ConsentStore

Via = Literal["api", "enrolment", "link", "bounce", "complaint", "stop_reply"]
VIAS: tuple[str, ...] = get_args(Via)
FLAGS = tuple(Consents.model_fields)  # marketing, bonus_notices, email, sms
MAX_REASON = 500


def state(member_item_or_profile: Any) -> dict[str, bool]:
    """The consents a member item (raw, its profile a JSON string), a ``Member``, a ``Profile``,
    a profile mapping or a ``Consents`` say; what is not said takes the default."""
    source: Any = member_item_or_profile
    if hasattr(source, "profile") and not isinstance(source, Mapping):
        source = source.profile
    if hasattr(source, "consents") and not isinstance(source, Mapping):
        source = source.consents
    if isinstance(source, Consents):
        return source.model_dump()
    if isinstance(source, Mapping):
        profile = source.get("profile", source)
        if isinstance(profile, str):
            profile = json.loads(profile)
        given = profile.get("consents", {}) if isinstance(profile, Mapping) else {}
        return Consents(**{flag: bool(value) for flag, value in given.items() if flag in FLAGS}).model_dump()
    raise TypeError(f"cannot read consents from {type(member_item_or_profile).__name__}")


def _erased(member_item_or_profile: Any) -> bool:
    if isinstance(member_item_or_profile, Mapping):
        return bool(member_item_or_profile.get("erased_at"))
    return getattr(member_item_or_profile, "erased_at", None) is not None


def allows(member_item_or_profile: Mapping | Any, category: Category, channel: Channel) -> bool:
    """May a message of ``category`` go to this member over ``channel``? Both must be consented;
    an erased member gets nothing."""
    if category not in get_args(Category) or channel not in get_args(Channel):
        raise ValueError(f"unknown category or channel: {category!r}, {channel!r}")
    if _erased(member_item_or_profile):
        return False
    consents = state(member_item_or_profile)
    return consents[category] and consents[channel]


@cache
def _store() -> ConsentStore:
    from loyalty.settings import settings  # read on first use: the rule above needs no environment

    return ConsentStore(settings().ledger_table)


def store() -> ConsentStore:
    """This process's consent store (made on first use)."""
    return _store()


def _checked(changes: Mapping[str, Any], via: str, actor: str, reason: str | None) -> dict[str, bool]:
    unknown = sorted(set(changes) - set(FLAGS))
    if unknown:
        raise InvalidRequest(f"Unknown consent(s) {', '.join(unknown)}; known: {', '.join(FLAGS)}.", field=unknown[0])
    if any(not isinstance(value, bool) for value in changes.values()):
        raise InvalidRequest("Every consent must be true or false.", field="consents")
    if via not in VIAS:
        raise ValueError(f"via must be one of {', '.join(VIAS)}, not {via!r}")
    if not actor:
        raise ValueError("actor is required: who made the change")
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidRequest(f"reason may be {MAX_REASON} characters at most.", field="reason")
    return dict(changes)


def change(
    tenant_id: str,
    member_id: str,
    changes: Mapping[str, bool],
    *,
    via: str,
    actor: str,
    reason: str | None = None,
    consent_store: ConsentStore | None = None,
) -> dict:
    """Set some of the member's consents (``marketing``, ``bonus_notices``, ``email``, ``sms``) and
    return the whole state after. Only what really changes is recorded (a repeated unsubscribe
    writes nothing). NotFound for an unknown member; Conflict for an erased one."""
    wanted = _checked(changes, via, actor, reason)
    target = consent_store or store()

    def attempt() -> dict:
        current = target.read(tenant_id, member_id)
        if current is None:
            raise NotFound(f"No member {member_id!r}. Enrol it with POST /v1/members.", member_id=member_id)
        if current.erased:
            raise Conflict(f"Member {member_id!r} was erased; it has no consents to change.", member_id=member_id)
        profile = json.loads(current.profile_json)
        before = state(profile)
        changed = {flag: value for flag, value in wanted.items() if before[flag] != value}
        if not changed:
            return before
        after = {**before, **changed}
        profile["consents"] = after
        record = ConsentChange(
            seq=current.consent_seq + 1,
            at=clock.isoformat(clock.now()),
            via=via,
            actor=actor,
            reason=reason,
            changes=changed,
            consents=after,
        )
        new_profile = json.dumps(profile, sort_keys=True)
        dynamo.retry_if_condition_failed(lambda: target.write(tenant_id, member_id, current, new_profile, record))
        return after

    return dynamo.with_retries(attempt)


def current(tenant_id: str, member_id: str, *, consent_store: ConsentStore | None = None) -> dict[str, bool]:
    """The member's consents now; NotFound for an unknown member."""
    found = dynamo.with_retries(lambda: (consent_store or store()).read(tenant_id, member_id))
    if found is None:
        raise NotFound(f"No member {member_id!r}. Enrol it with POST /v1/members.", member_id=member_id)
    return state(json.loads(found.profile_json))


def history(
    tenant_id: str,
    member_id: str,
    *,
    limit: int = 20,
    cursor: str | None = None,
    consent_store: ConsentStore | None = None,
) -> tuple[dict[str, bool], list[ConsentChange], str | None]:
    """The consents now, a page of their history (newest first, the enrolment last) and the cursor
    of the next page (None at the end)."""
    target = consent_store or store()
    found = dynamo.with_retries(lambda: target.read(tenant_id, member_id))
    if found is None:
        raise NotFound(f"No member {member_id!r}. Enrol it with POST /v1/members.", member_id=member_id)
    now = state(json.loads(found.profile_json))
    page, next_cursor = dynamo.with_retries(lambda: target.history(tenant_id, member_id, limit=limit, cursor=cursor))
    if next_cursor is None:  # the last page: the consents given at enrolment close it
        first = dynamo.with_retries(lambda: target.first_change(tenant_id, member_id)) if found.consent_seq else None
        given = {**first.consents, **{f: not v for f, v in first.changes.items()}} if first else now
        by = found.enrolled_by or {}
        page = [
            *page,
            ConsentChange(
                seq=0,
                at=clock.isoformat(datetime.fromisoformat(found.enrolled_at)),
                via="enrolment",
                actor=f"key:{by['key_id']}" if by.get("key_id") else "system",
                changes=given,
                consents=given,
            ),
        ]
    return now, page, next_cursor
