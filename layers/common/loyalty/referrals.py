"""Referral bonuses: paid to both sides after the newcomer's first qualifying purchase.

A newcomer enrolled with a referral code carries ``referred_by`` and ``referral_state: pending``
on its member item. The ledger's stream delivers every change of such an item (the template
filters for ``pending``) to the events function, which calls :func:`pay` here. ``pay`` credits the
newcomer's and the referrer's bonuses (amounts from the newcomer's program) and marks the
newcomer ``paid``, all in one transaction with a guard per side, so a redelivered record, a retry
or a concurrent second delivery credits nothing twice.
"""

from __future__ import annotations

from typing import Any

from loyalty.ledger import Grant, Ledger
from loyalty.models import Actor, Role

SYSTEM_KEY = "system:referrals"
REFERRAL_BONUS = "referral_bonus"


def system_actor(tenant_id: str) -> Actor:
    """Who the entries name: the engine itself, not an API key."""
    return Actor(tenant_id=tenant_id, key_id=SYSTEM_KEY, role=Role.ADMIN)


def pay(ledger: Ledger, tenant_id: str, member_id: str) -> list[dict[str, Any]] | None:
    """Pay the referral bonuses of ``member_id`` if they are due; None if nothing is due (no
    referrer, paid already, or no qualifying purchase yet)."""
    account = ledger.store.snapshot(tenant_id, member_id).account
    if account is None or account.referral_state != "pending" or account.referred_by is None:
        return None
    if account.purchases < 1:  # only a qualifying purchase counts (below the minimum it does not)
        return None
    program = ledger._program(tenant_id, account.program_id)
    referrer_id = account.referred_by
    grants = [
        Grant(
            member_id=member_id,
            kind=REFERRAL_BONUS,
            key="referee",
            points=program.referral_bonus_referee,
            details={"referrer_id": referrer_id, "side": "referee"},
        ),
        Grant(
            member_id=referrer_id,
            kind=REFERRAL_BONUS,
            key=f"referrer#{member_id}",
            points=program.referral_bonus_referrer,
            details={"referee_id": member_id, "side": "referrer"},
        ),
    ]
    # The newcomer's state changes in the same transaction, even when its own bonus is 0 points.
    return ledger.grant(system_actor(tenant_id), grants, also_set={member_id: {"referral_state": "paid"}})
