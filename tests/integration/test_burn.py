"""The nightly burn against moto: the due index, reruns, crashes, holds, many lots, reminders.

The scheduler (``burning.run_nights``) is run with a ``send_batch`` that keeps the messages, and
the worker's step (``burning.handle_message``) is run on each, as the SQS worker does.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from loyalty import burning
from loyalty.errors import NotFound
from loyalty.ledger import Ledger, check_invariant
from loyalty.members import Stores, enrol
from loyalty.models import BurnPolicy, Profile, Program, Tier
from loyalty.store import keys
from loyalty.store.burn import BurnStore, reminder_days
from loyalty.store.config import ConfigStore
from loyalty.store.ledger import LedgerStore

AMOUNT = 100_000  # 30 points at 3 %


def put_program(world, program_id: str, **settings: Any) -> Program:
    program = Program(
        tenant_id=world.actor.tenant_id,
        program_id=program_id,
        name=program_id,
        currency="RUB",
        tiers=(Tier(name="Base", threshold=0, accrual_bp=300),),
        **settings,
    )
    world.stores.config.put_program(program)
    return program


def member(world, program_id: str) -> str:
    member_id = f"b-{uuid.uuid4().hex[:8]}"
    enrol(world.stores, world.actor.tenant_id, member_id, Profile(program_id=program_id))
    return member_id


def buy(world, member_id: str, order_id: str | None = None, amount: int = AMOUNT) -> dict[str, Any]:
    return world.ledger.accrue(
        world.actor,
        member_id,
        order_id=order_id or uuid.uuid4().hex,
        amount=amount,
        currency_code="RUB",
        occurred_at=None,
    )


def store(world) -> BurnStore:
    return BurnStore(world.tables["LedgerTable"], world.client)


def nights(world, offsets: Any, messages: list[dict[str, Any]], today: date) -> dict[str, Any]:
    """The scheduler's work for the world's tenant up to ``today``, from its checkpoint."""
    tenant_id, burns = world.actor.tenant_id, store(world)
    return burning.run_nights(burns, tenant_id, offsets, messages.extend, today, checkpoint=burns.checkpoint(tenant_id))


def run(world, ledger: Ledger | None = None) -> dict[str, Any]:
    """One scheduler run at the fake clock's date, then every message through the worker."""
    messages: list[dict[str, Any]] = []
    offsets = reminder_days(world.tables["ConfigTable"], world.client)
    summary = nights(world, offsets, messages, burning.clock.now().date())
    summary["results"] = [burning.handle_message(ledger or world.ledger, json.dumps(m)) for m in messages]
    summary["messages"] = messages
    return summary


def lots(world, member_id: str) -> dict[str, int]:
    return {lot.burn_date: lot.remaining for lot in world.stores.ledger.lots(world.actor.tenant_id, member_id)}


def entries(world, member_id: str, kind: str = "burn") -> list[Any]:
    return [e for e in world.stores.ledger.all_entries(world.actor.tenant_id, member_id) if e.type == kind]


def invariant(world, *member_ids: str) -> None:
    for member_id in member_ids:
        check_invariant(world.stores.ledger, world.actor.tenant_id, member_id)
        for item in world.stores.ledger.query_all(keys.member_pk(world.actor.tenant_id, member_id), "L#"):
            shard = keys.due_shard(world.actor.tenant_id, member_id)
            assert item["gsi1pk"] == keys.burn_gsi1pk(world.actor.tenant_id, item["burn_date"], shard)
            assert item["gsi1sk"] == keys.member_pk(world.actor.tenant_id, member_id)


def test_open_lots_are_in_the_due_index_and_expiring_lists_them(world, fake_clock):
    put_program(world, "fixed30", lifetime_days=30)
    m = member(world, "fixed30")
    buy(world, m)
    fake_clock.advance(days=2)
    buy(world, m)
    invariant(world, m)
    today = fake_clock.moment.date()
    assert burning.expiring(world.ledger, world.actor.tenant_id, m) == [
        {"date": (today - timedelta(days=2) + timedelta(days=30)).isoformat(), "points": 30},
        {"date": (today + timedelta(days=30)).isoformat(), "points": 30},
    ]
    due = set(burning.due_members(store(world), world.actor.tenant_id, today + timedelta(days=30)))
    assert m in due
    with pytest.raises(NotFound):
        burning.expiring(world.ledger, world.actor.tenant_id, "nobody")


def test_a_night_burns_exactly_what_is_due_and_a_rerun_changes_nothing(world, fake_clock):
    put_program(world, "fixed10", lifetime_days=10)
    m = member(world, "fixed10")
    run(world)  # the first run: today, nothing due; the checkpoint starts here
    buy(world, m)
    fake_clock.advance(days=3)
    buy(world, m, amount=2 * AMOUNT)
    fake_clock.advance(days=7)  # the first lot's burn date
    summary = run(world)
    assert len(summary["nights"]) == 10  # every night since the checkpoint, in order
    assert summary["nights"] == sorted(summary["nights"])
    burned = entries(world, m)
    assert [(e.points, e.burn_date) for e in burned] == [(-30, fake_clock.moment.date().isoformat())]
    assert sum(lots(world, m).values()) == 60
    invariant(world, m)

    before = world.stores.ledger.all_entries(world.actor.tenant_id, m)
    for m_ in summary["messages"]:  # the same night's messages delivered again
        burning.handle_message(world.ledger, json.dumps(m_))
    assert world.ledger.burn(world.actor.tenant_id, m, fake_clock.moment.date())["points"] == 0
    assert world.stores.ledger.all_entries(world.actor.tenant_id, m) == before
    assert run(world)["nights"] == []  # tonight is done
    invariant(world, m)

    fake_clock.advance(days=5)  # missed nights are caught up in order, the second lot on its day
    summary = run(world)
    assert len(summary["nights"]) == 5
    assert sum(e.points for e in entries(world, m)) == -90 and lots(world, m) == {}
    invariant(world, m)


def test_held_points_are_not_burned_until_the_hold_ends(world, fake_clock):
    put_program(world, "fixed5", lifetime_days=5, max_redeem_share_bp=10_000)
    m = member(world, "fixed5")
    buy(world, m)  # 30 points
    run(world)
    fake_clock.advance(days=5)  # the burn date; a checkout holds 20 points just after midnight
    hold, _ = world.ledger.hold(
        world.actor, m, order_id="checkout", points=20, order_amount=1_000_000, currency_code="RUB"
    )
    run(world)
    assert sum(e.points for e in entries(world, m)) == -10  # the 20 held points stay for the checkout
    assert burning.expiring(world.ledger, world.actor.tenant_id, m) == [
        {"date": (fake_clock.moment.date() + timedelta(days=1)).isoformat(), "points": 20}
    ]
    invariant(world, m)
    assert run(world)["nights"] == [] and sum(e.points for e in entries(world, m)) == -10
    world.ledger.capture(world.actor, hold["hold_id"])  # the checkout takes its points
    invariant(world, m)
    fake_clock.advance(days=1)
    run(world)
    assert sum(e.points for e in entries(world, m)) == -10 and lots(world, m) == {}
    invariant(world, m)


def test_held_points_burn_the_night_after_the_hold_ran_out(world, fake_clock):
    put_program(world, "fixed6", lifetime_days=6, max_redeem_share_bp=10_000)
    m = member(world, "fixed6")
    buy(world, m)
    run(world)
    fake_clock.advance(days=6)
    world.ledger.hold(world.actor, m, order_id="co", points=25, order_amount=1_000_000, currency_code="RUB")
    run(world)
    assert sum(e.points for e in entries(world, m)) == -5
    fake_clock.advance(days=1)  # the hold expired long ago
    run(world)
    assert sum(e.points for e in entries(world, m)) == -30 and lots(world, m) == {}
    invariant(world, m)


def test_a_lot_spent_between_the_index_read_and_the_burn_is_not_burned(world, fake_clock):
    put_program(world, "fixed7", lifetime_days=7, max_redeem_share_bp=10_000)
    m = member(world, "fixed7")
    buy(world, m)
    run(world)
    fake_clock.advance(days=7)
    messages: list[dict[str, Any]] = []
    nights(world, set(), messages, fake_clock.moment.date())
    assert [x["member_id"] for x in messages] == [m]
    # Spent at the till before the worker got to it (a backdated redemption of the day before).
    world.ledger.redeem(world.actor, m, order_id="late", points=30, order_amount=1_000_000, currency_code="RUB")
    result = burning.handle_message(world.ledger, json.dumps(messages[0]))
    assert result["points"] == 0 and entries(world, m) == []
    invariant(world, m)


def test_many_lots_burn_in_several_guarded_transactions_and_a_crash_resumes(world, fake_clock):
    put_program(world, "fixed120", lifetime_days=120)
    m = member(world, "fixed120")
    for _ in range(110):  # 110 lots: more than one transaction holds
        buy(world, m)
        fake_clock.advance(days=1)
    fake_clock.advance(days=120)  # every lot is due

    class Crashing:
        """Crashes the worker after its first burn transaction."""

        def __init__(self, client: Any) -> None:
            self.client, self.commits = client, 0

        def __getattr__(self, name: str) -> Any:
            method = getattr(self.client, name)
            if name != "transact_write_items":
                return method

            def commit(**kwargs: Any) -> Any:
                self.commits += 1
                if self.commits == 2:
                    raise RuntimeError("the worker crashed")
                return method(**kwargs)

            return commit

    crashing = Crashing(world.client)
    crashed = Ledger(
        Stores(
            ledger=LedgerStore(world.tables["LedgerTable"], crashing),
            config=ConfigStore(world.tables["ConfigTable"], world.client),
        )
    )
    with pytest.raises(RuntimeError):
        crashed.burn(world.actor.tenant_id, m, fake_clock.moment.date())
    invariant(world, m)  # the first transaction is complete on its own
    assert len(entries(world, m)) == burning.LOTS_PER_TRANSACTION
    # The message comes again (SQS redelivers what the crashed worker did not finish): the rest
    # burns, nothing twice; and again, nothing at all.
    assert world.ledger.burn(world.actor.tenant_id, m, fake_clock.moment.date())["points"] == (110 - 32) * 30
    assert world.ledger.burn(world.actor.tenant_id, m, fake_clock.moment.date())["points"] == 0
    burned = entries(world, m)
    assert len(burned) == 110 and len({e.burn_date for e in burned}) == 110
    assert sum(e.points for e in burned) == -110 * 30 and lots(world, m) == {}
    invariant(world, m)


def test_inactivity_burns_everything_months_after_the_last_activity(world, fake_clock):
    put_program(world, "sleepy", burn_policy=BurnPolicy.INACTIVITY, inactivity_months=2, activity_events=["redemption"])
    m = member(world, "sleepy")
    run(world)
    start = fake_clock.moment.date()
    buy(world, m)  # no activity of this program's kind yet: the lot burns on its own date
    fake_clock.advance(days=20)
    buy(world, m)
    world.ledger.redeem(world.actor, m, order_id="r1", points=1, order_amount=1_000_000, currency_code="RUB")
    due = burning.rules.add_months(fake_clock.moment.date(), 2)
    assert burning.expiring(world.ledger, world.actor.tenant_id, m) == [{"date": due.isoformat(), "points": 59}]
    view = world.ledger.balance_view(world.actor.tenant_id, m)
    assert view["next_expiry"] == {"date": due.isoformat(), "points": 59}  # GET /v1/members/{id} agrees
    fake_clock.advance(days=45)  # past the first lot's own date: nothing burns, the activity moved it
    run(world)
    assert entries(world, m) == [] and burning.rules.add_months(start, 2) < fake_clock.moment.date()
    fake_clock.moment = fake_clock.moment.replace(year=due.year, month=due.month, day=due.day)
    run(world)
    assert sum(e.points for e in entries(world, m)) == -59 and lots(world, m) == {}
    assert store(world).marker_item(world.actor.tenant_id, m) is None
    invariant(world, m)


def test_reminders_are_recorded_once_per_burn_date_and_offset_with_the_amount_then(world, fake_clock):
    put_program(world, "remind", lifetime_days=40, reminder_days=[30, 7], max_redeem_share_bp=10_000)
    m, spender = member(world, "remind"), member(world, "remind")
    run(world)
    buy(world, m)
    buy(world, spender)
    burn_day = (fake_clock.moment + timedelta(days=40)).date()
    fake_clock.advance(days=10)
    run(world)
    run(world)  # the same night again
    notices = store(world).notices(world.actor.tenant_id, m)
    assert [(n["burn_date"], n["days_before"], n["points"], n["status"]) for n in notices] == [
        (burn_day.isoformat(), 30, 30, "due")
    ]
    world.ledger.redeem(world.actor, m, order_id="s", points=10, order_amount=1_000_000, currency_code="RUB")
    world.ledger.redeem(world.actor, spender, order_id="s", points=30, order_amount=1_000_000, currency_code="RUB")
    fake_clock.advance(days=23)
    for _ in range(2):
        run(world)
    notices = store(world).notices(world.actor.tenant_id, m)
    assert sorted((n["days_before"], n["points"]) for n in notices) == [(7, 20), (30, 30)]  # recomputed
    assert [n["days_before"] for n in store(world).notices(world.actor.tenant_id, spender)] == [30]  # none left
    assert {date.fromisoformat(n["burn_date"]) for n in notices} == {burn_day}


def test_each_tenant_burns_after_midnight_in_its_own_time_zone(world, fake_clock):
    """Two tenants, Vladivostok (UTC+10) and Los Angeles (UTC-8), each with a member whose points
    burn on 1 December: the hourly scheduler burns each one's night at 00:30 there, not before,
    and once; each tenant's checkpoint moves on its own."""
    from loyalty.admin import OTHER_TENANT
    from loyalty.models import Actor, Role, TenantSettings
    from loyalty.tenancy import TenantSettingsAdmin

    zones = {world.actor.tenant_id: "Asia/Vladivostok", OTHER_TENANT: "America/Los_Angeles"}
    settings_admin = TenantSettingsAdmin(world.stores.config, world.tables["LedgerTable"])
    members = {}
    for tenant_id, zone in zones.items():
        actor = Actor(tenant_id=tenant_id, key_id="key_test", role=Role.ADMIN)
        settings_admin.set(actor, TenantSettings(burn_time_zone=zone))
        world.stores.config.put_program(
            Program(
                tenant_id=tenant_id,
                program_id="week",
                name="week",
                currency="RUB",
                tiers=(Tier(name="Base", threshold=0, accrual_bp=300),),
                lifetime_days=7,
            )
        )
        members[tenant_id] = f"z-{uuid.uuid4().hex[:8]}"
        enrol(world.stores, tenant_id, members[tenant_id], Profile(program_id="week"))
        fake_clock.moment = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
        world.ledger.accrue(
            actor, members[tenant_id], order_id="o1", amount=AMOUNT, currency_code="RUB", occurred_at=None
        )
    assert dict(world.stores.config.all_tenant_settings())[OTHER_TENANT].burn_time_zone == "America/Los_Angeles"
    audited = world.client.query(
        TableName=world.tables["LedgerTable"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": keys.audit_pk(OTHER_TENANT)}},
    )["Items"]
    assert "settings.set" in {item["action"]["S"] for item in audited}

    def hourly_run(at: datetime) -> dict[str, Any]:
        fake_clock.moment = at
        messages: list[dict[str, Any]] = []
        summary = burning.run_tenants(
            store(world), world.stores.config.all_tenant_settings(), "Europe/Moscow", set(), messages.extend, at
        )
        for message in messages:
            burning.handle_message(world.ledger, json.dumps(message))
        return summary

    def balances() -> dict[str, int]:
        return {t: world.stores.ledger.snapshot(t, m).account.balance for t, m in members.items()}

    # 22:30 on 30 November in Vladivostok, 04:30 in Los Angeles: the first run starts both checkpoints.
    first = hourly_run(datetime(2026, 11, 30, 12, 30, tzinfo=UTC))
    assert first["tenants"] == {world.actor.tenant_id: ["2026-11-30"], OTHER_TENANT: ["2026-11-30"]}
    assert hourly_run(datetime(2026, 11, 30, 13, 30, tzinfo=UTC))["tenants"] == {}  # 23:30 there: not yet
    assert balances() == {world.actor.tenant_id: 30, OTHER_TENANT: 30}
    at_0030 = hourly_run(datetime(2026, 11, 30, 14, 30, tzinfo=UTC))  # 00:30 on 1 December in Vladivostok
    assert at_0030["tenants"] == {world.actor.tenant_id: ["2026-12-01"]} and at_0030["burn"] == 1
    assert balances() == {world.actor.tenant_id: 0, OTHER_TENANT: 30}
    for hour in range(15, 32):  # until 07:30 UTC on 1 December (23:30 in Los Angeles): nothing more
        assert hourly_run(datetime(2026, 11, 30, 0, 30, tzinfo=UTC) + timedelta(hours=hour))["tenants"] == {}
    at_la = hourly_run(datetime(2026, 12, 1, 8, 30, tzinfo=UTC))  # 00:30 on 1 December in Los Angeles
    assert at_la["tenants"] == {OTHER_TENANT: ["2026-12-01"]} and at_la["burn"] == 1
    assert balances() == {world.actor.tenant_id: 0, OTHER_TENANT: 0}
    assert store(world).checkpoints() == {world.actor.tenant_id: "2026-12-01", OTHER_TENANT: "2026-12-01"}
    for tenant_id, member_id in members.items():
        check_invariant(world.stores.ledger, tenant_id, member_id)
