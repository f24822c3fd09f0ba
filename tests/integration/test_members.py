"""Enrolment records who enrolled a member, and a repeat by another key changes nothing."""

from __future__ import annotations

import uuid

from loyalty.members import enrol
from loyalty.models import Actor, Profile, Role


def test_enrolment_records_its_actor_once(world) -> None:
    member_id = f"who-{uuid.uuid4().hex[:8]}"
    shop = Actor(tenant_id=world.actor.tenant_id, key_id="key_shop", role=Role.INTEGRATION)
    desk = Actor(tenant_id=world.actor.tenant_id, key_id="key_desk", role=Role.INTEGRATION)
    profile = Profile(email="who@example.com")

    member, created = enrol(world.stores, shop.tenant_id, member_id, profile, actor=shop)
    again, created_again = enrol(world.stores, desk.tenant_id, member_id, profile, actor=desk)

    assert (created, created_again) == (True, False)
    stored = world.stores.ledger.get_member(shop.tenant_id, member_id)
    assert stored.enrolled_by == {"key_id": "key_shop", "role": "integration"}
    assert again == stored == member.model_copy(update={"enrolled_at": stored.enrolled_at})
