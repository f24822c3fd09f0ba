"""Programs against moto: versions with effective dates, the ledger reading the version in force,
programs stored before versions existed, moving a member, and the audit of both."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from loyalty import clock
from loyalty.admin import DEMO_PROGRAM, DEMO_TENANT, DEMO_WELCOME_BONUS
from loyalty.errors import Conflict, InvalidRequest, NotFound
from loyalty.ledger import check_invariant
from loyalty.members import enrol
from loyalty.models import Profile
from loyalty.program_versions import VersionStatus
from loyalty.programs import Programs
from loyalty.store import dynamo, keys
from loyalty.store.audit import AuditStore


def settings(accrual_bp: int = 1_000, **changes: Any) -> dict[str, Any]:
    return {
        "name": "Test club",
        "currency": "RUB",
        "point_value": 100,
        "tiers": [{"name": "Base", "threshold": 0, "accrual_bp": accrual_bp}],
        **changes,
    }


def audit(world, action: str) -> list:
    records, _ = AuditStore(world.tables["LedgerTable"], world.client).list(
        DEMO_TENANT, since="2000-01-01T00:00:00Z", until="2100-01-01T00:00:00Z", limit=100, action=action
    )
    return records


def member(world, program_id: str = "") -> str:
    member_id = f"m-{uuid.uuid4().hex[:8]}"
    enrol(world.stores, DEMO_TENANT, member_id, Profile(program_id=program_id))
    return member_id


def buy(world, member_id: str, order_id: str, amount: int = 100_000) -> dict[str, Any]:
    return world.ledger.accrue(
        world.actor, member_id, order_id=order_id, amount=amount, currency_code="RUB", occurred_at=None
    )


def test_the_seeded_program_is_version_one_in_force_since_it_began(world) -> None:
    programs = Programs(world.stores)
    view = programs.get(DEMO_TENANT, DEMO_PROGRAM)
    assert (view.version.version, view.version.effective_from, view.status) == (1, None, VersionStatus.CURRENT)
    assert [v.version for v, _ in programs.history(DEMO_TENANT, DEMO_PROGRAM)] == [1]
    assert world.stores.config.get_program(DEMO_TENANT, DEMO_PROGRAM).name == "Demo bonus club"


def test_a_change_waits_for_its_date_and_earned_points_keep_their_burn_date(world, fake_clock) -> None:
    programs = Programs(world.stores)
    view, created = programs.put(world.actor, "club", settings(1_000), None)
    assert created and view.version.version == 1 and view.status is VersionStatus.CURRENT
    member_id = member(world, "club")
    first = buy(world, member_id, "o-1")
    assert first["points"] == 100  # 10 % of 1,000.00 at 1.00 a point

    starts = clock.now() + timedelta(days=1)
    view, created = programs.put(world.actor, "club", settings(2_000, lifetime_days=30), starts)
    assert not created and view.version.version == 2 and view.status is VersionStatus.SCHEDULED
    assert programs.get(DEMO_TENANT, "club").version.version == 1
    assert [v.version for v in programs.get(DEMO_TENANT, "club").scheduled] == [2]
    assert buy(world, member_id, "o-2")["points"] == 100  # still version 1

    fake_clock.advance(days=2)
    third = buy(world, member_id, "o-3")
    assert third["points"] == 200  # version 2: 20 %
    assert third["burn_date"] == (clock.now() + timedelta(days=30)).date().isoformat()
    burns = {lot.burn_date for lot in world.stores.ledger.lots(DEMO_TENANT, member_id)}
    assert first["burn_date"] in burns  # the earlier points burn when they always would
    statuses = [(v.version, s) for v, s in programs.history(DEMO_TENANT, "club")]
    assert statuses == [(1, VersionStatus.PAST), (2, VersionStatus.CURRENT)]
    check_invariant(world.stores.ledger, DEMO_TENANT, member_id)
    assert sorted(r.details["version"] for r in audit(world, "program.put") if r.target == "club") == [1, 2]


def test_the_same_settings_again_store_nothing(world) -> None:
    programs = Programs(world.stores)
    programs.put(world.actor, "same", settings(), None)
    view, created = programs.put(world.actor, "same", settings(), None)
    assert (view.version.version, created) == (1, False)
    assert len(programs.history(DEMO_TENANT, "same")) == 1


def test_a_newer_version_supersedes_an_earlier_scheduled_one_and_says_so(world, fake_clock) -> None:
    programs = Programs(world.stores)
    programs.put(world.actor, "sup", settings(100), None)
    programs.put(world.actor, "sup", settings(200), clock.now() + timedelta(days=10))
    fake_clock.advance(minutes=1)  # in the same second as version 1, version 3 would supersede it too
    view, _ = programs.put(world.actor, "sup", settings(300), None)
    assert any("Version 2" in warning and "will not take effect" in warning for warning in view.warnings)
    fake_clock.advance(days=11)
    assert programs.get(DEMO_TENANT, "sup").version.version == 3
    statuses = [s for _, s in programs.history(DEMO_TENANT, "sup")]
    assert statuses == [VersionStatus.PAST, VersionStatus.SUPERSEDED, VersionStatus.CURRENT]


def test_refusals_write_nothing(world) -> None:
    programs = Programs(world.stores)
    with pytest.raises(InvalidRequest) as invalid:
        programs.put(world.actor, "bad", settings(tier_window_days=30, currency="ZZZ"), None)
    assert {e["field"] for e in invalid.value.extra["errors"]} == {"tier_window_days", "currency"}
    with pytest.raises(InvalidRequest):
        programs.put(world.actor, "bad", settings(), clock.now() - timedelta(hours=1))
    assert world.stores.config.program_head(DEMO_TENANT, "bad") is None
    programs.put(world.actor, "eur", settings(currency="EUR"), None)
    with pytest.raises(Conflict, match="not converted"):
        programs.put(world.actor, "eur", settings(currency="RUB"), None)
    assert len(programs.history(DEMO_TENANT, "eur")) == 1


def test_more_than_three_active_programs_is_allowed_with_a_warning(world) -> None:
    programs = Programs(world.stores)  # the demo program is active: 1
    assert programs.put(world.actor, "a2", settings(), None)[0].warnings == ()
    assert programs.put(world.actor, "off", settings(active=False), None)[0].warnings == ()
    assert programs.put(world.actor, "a3", settings(), None)[0].warnings == ()
    view, created = programs.put(world.actor, "a4", settings(), None)
    assert created and len(view.warnings) == 1 and "no more than 3" in view.warnings[0]


def test_a_program_stored_before_versions_reads_as_version_one_and_keeps_it(world) -> None:
    program = world.stores.config.get_program(DEMO_TENANT, DEMO_PROGRAM).model_copy(update={"program_id": "old"})
    item = {"pk": keys.tenant_pk(DEMO_TENANT), "sk": keys.program_sk("old"), "doc": program.model_dump_json()}
    world.client.put_item(TableName=world.tables["ConfigTable"], Item=dynamo.marshal(item))
    config = world.stores.config
    assert config.get_program(DEMO_TENANT, "old") == program
    assert config.program_head(DEMO_TENANT, "old").legacy
    Programs(world.stores).put(world.actor, "old", settings(), None)
    history = config.program_history(DEMO_TENANT, "old")
    assert (history[0].version, history[0].effective_from, history[0].program.name) == (1, None, program.name)
    assert [v.version for v in history] == [1, 2] and not config.program_head(DEMO_TENANT, "old").legacy
    assert config.get_program(DEMO_TENANT, "old").name == "Test club"


def test_a_member_moves_with_points_and_history(world) -> None:
    programs = Programs(world.stores)
    programs.put(world.actor, "gold-club", settings(1_000), None)
    member_id = member(world)
    buy(world, member_id, "before")  # 3 % at the demo program: 30 points, beside its welcome bonus
    ledger = world.stores.ledger
    entries, lots = ledger.all_entries(DEMO_TENANT, member_id), ledger.lots(DEMO_TENANT, member_id)

    moved = programs.move_member(world.actor, member_id, "gold-club")
    assert moved.profile.program_id == "gold-club" and moved.tier == "Base"
    assert moved.balance.balance == DEMO_WELCOME_BONUS + 30
    assert ledger.all_entries(DEMO_TENANT, member_id) == entries and ledger.lots(DEMO_TENANT, member_id) == lots
    assert buy(world, member_id, "after")["points"] == 100  # 10 % now
    check_invariant(ledger, DEMO_TENANT, member_id)
    [record] = [r for r in audit(world, "member.program") if r.member_id == member_id]
    assert record.details["from"] == DEMO_PROGRAM and record.target == "gold-club"
    assert record.actor == {"key_id": world.actor.key_id, "role": "admin"}

    again = programs.move_member(world.actor, member_id, "gold-club")  # already there: nothing written
    assert again.profile.program_id == "gold-club"
    assert len([r for r in audit(world, "member.program") if r.member_id == member_id]) == 1


def test_a_move_is_refused_across_currencies_and_to_unknown_programs_or_members(world) -> None:
    programs = Programs(world.stores)
    programs.put(world.actor, "euro", settings(currency="EUR"), None)
    programs.put(world.actor, "closed", settings(active=False), None)
    member_id = member(world)
    with pytest.raises(Conflict, match="not converted") as refused:
        programs.move_member(world.actor, member_id, "euro")
    assert refused.value.extra["currency"] == "EUR" and refused.value.extra["member_currency"] == "RUB"
    with pytest.raises(Conflict, match="not active"):
        programs.move_member(world.actor, member_id, "closed")
    with pytest.raises(NotFound):
        programs.move_member(world.actor, member_id, "nowhere")
    with pytest.raises(NotFound):
        programs.move_member(world.actor, "nobody", "euro")
    assert world.stores.ledger.get_member(DEMO_TENANT, member_id).profile.program_id == DEMO_PROGRAM
    assert not [r for r in audit(world, "member.program") if r.member_id == member_id]


def test_a_refund_of_an_order_below_the_minimum_leaves_the_tier_basis_alone(world) -> None:
    tiers = [
        {"name": "Base", "threshold": 0, "accrual_bp": 500},
        {"name": "Gold", "threshold": 500_000, "accrual_bp": 900},
    ]
    Programs(world.stores).put(world.actor, "minimum", settings(tiers=tiers, min_order_amount=50_000), None)
    member_id = member(world, "minimum")
    buy(world, member_id, "big", amount=300_000)  # qualifies: counts 300_000 towards Gold
    small = buy(world, member_id, "small", amount=10_000)  # below the minimum: accrues and counts nothing
    assert small["points"] == 0
    spend = lambda: world.stores.ledger.get_member(DEMO_TENANT, member_id).lifetime_spend  # noqa: E731
    assert spend() == 300_000
    world.ledger.refund(world.actor, member_id, refund_id="r-small", order_id="small", amount=10_000)
    assert spend() == 300_000  # the small order never counted, so its refund takes nothing out
    world.ledger.refund(world.actor, member_id, refund_id="r-big", order_id="big", amount=100_000)
    assert spend() == 200_000
    check_invariant(world.stores.ledger, DEMO_TENANT, member_id)
