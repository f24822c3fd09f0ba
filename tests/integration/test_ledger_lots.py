"""Lots: earliest burn first, and operations that touch more lots than one transaction holds.

A member who bought on 95 different days has 95 lots; one transaction holds 100 items, some of
them taken by the account, the entries and the guard. The
ledger must still spend, transfer and refund exactly, carry what did not fit as ``lot_debt`` in
the same transaction, settle it on the next operation, and keep
``balance == sum(entries) == sum(open lots) - lot_debt`` after every step.

The members here are in the demo program without its one-off bonuses (no welcome bonus): a member's
lots are exactly its purchase days.
"""

from __future__ import annotations

import uuid

from loyalty.admin import demo_program
from loyalty.ledger import LOT_ITEMS_RESERVED, check_invariant
from loyalty.members import enrol
from loyalty.models import Profile
from loyalty.store.ledger import MAX_TRANSACTION_ITEMS
from tests.support.programs import without_one_off_bonuses

DAYS = 95  # more lots than fit in one transaction beside the other items
AMOUNT = 100_000  # 1,000.00 RUB -> 30 points at the demo program's 3 % and point value 100
PROGRAM_ID = "lots"  # the demo program without one-off bonuses


def _member(world, name: str) -> str:
    tenant_id = world.actor.tenant_id
    if world.stores.config.get_program(tenant_id, PROGRAM_ID) is None:
        world.stores.config.put_program(without_one_off_bonuses(demo_program(tenant_id), program_id=PROGRAM_ID))
    member_id = f"{name}-{uuid.uuid4().hex[:8]}"
    enrol(world.stores, tenant_id, member_id, Profile(program_id=PROGRAM_ID))
    assert world.stores.ledger.all_entries(tenant_id, member_id) == []  # no points but the test's
    return member_id


def _buy_on_many_days(world, fake_clock, member_id: str, days: int = DAYS) -> int:
    total = 0
    for day in range(days):
        result = world.ledger.accrue(
            world.actor, member_id, order_id=f"day-{day}", amount=AMOUNT, currency_code="RUB", occurred_at=None
        )
        total += result["points"]
        fake_clock.advance(days=1)
    return total


def _lots(world, member_id: str) -> dict[str, int]:
    return {lot.burn_date: lot.remaining for lot in world.stores.ledger.lots(world.actor.tenant_id, member_id)}


def _debt(world, member_id: str) -> int:
    return world.stores.ledger.snapshot(world.actor.tenant_id, member_id).account.lot_debt


def test_each_purchase_day_is_its_own_lot_and_spending_takes_the_earliest(world, fake_clock):
    member_id = _member(world, "lots")
    total = _buy_on_many_days(world, fake_clock, member_id, days=5)
    assert total == 150
    before = sorted(_lots(world, member_id).items())
    assert [points for _, points in before] == [30] * 5

    world.ledger.redeem(
        world.actor, member_id, order_id="spend-45", points=45, order_amount=1_000_000, currency_code="RUB"
    )

    after = sorted(_lots(world, member_id).items())
    # The earliest lot is gone, the second half spent, the later three untouched.
    assert after == [(before[1][0], 15), *before[2:]]
    check_invariant(world.stores.ledger, world.actor.tenant_id, member_id)
    view = world.ledger.balance_view(world.actor.tenant_id, member_id)
    assert view["next_expiry"] == {"date": before[1][0], "points": 15}


def test_a_redemption_over_more_lots_than_a_transaction_holds_is_exact(world, fake_clock):
    member_id = _member(world, "wide")
    total = _buy_on_many_days(world, fake_clock, member_id)
    assert len(_lots(world, member_id)) == DAYS > MAX_TRANSACTION_ITEMS - LOT_ITEMS_RESERVED
    check_invariant(world.stores.ledger, world.actor.tenant_id, member_id)

    spend = total - 30  # every lot but the last one
    order_amount = spend * 100 * 100 // 15 + 100  # the 15 % cap allows it
    result = world.ledger.redeem(
        world.actor, member_id, order_id="big", points=spend, order_amount=order_amount, currency_code="RUB"
    )

    assert result["balance"] == 30
    assert _debt(world, member_id) > 0, "the lots that did not fit are carried as debt"
    figures = check_invariant(world.stores.ledger, world.actor.tenant_id, member_id)
    assert figures == {**figures, "balance": 30, "entries": 30, "available": 30}
    # What the member sees already excludes the carried debt: one lot of 30, the last one.
    view = world.ledger.balance_view(world.actor.tenant_id, member_id)
    last_burn = max(_lots(world, member_id))
    assert view["next_expiry"] == {"date": last_burn, "points": 30}

    # The next operation settles the debt first, then does its own work.
    world.ledger.adjust(world.actor, member_id, adjustment_id="after", points=5, reason="goodwill")
    assert _debt(world, member_id) == 0
    assert sum(_lots(world, member_id).values()) == 35
    check_invariant(world.stores.ledger, world.actor.tenant_id, member_id)

    # A replay of the big redemption changes nothing and answers the first result.
    again = world.ledger.redeem(
        world.actor, member_id, order_id="big", points=spend, order_amount=order_amount, currency_code="RUB"
    )
    assert again == result
    assert check_invariant(world.stores.ledger, world.actor.tenant_id, member_id)["balance"] == 35


def test_a_transfer_over_many_lots_moves_exact_points_and_never_later_burn_dates(world, fake_clock):
    giver = _member(world, "giver")
    taker = _member(world, "taker")
    total = _buy_on_many_days(world, fake_clock, giver)
    giver_lots = _lots(world, giver)

    result = world.ledger.transfer(world.actor, giver, transfer_id="all-but-one", to_member_id=taker, points=total - 30)

    assert result["balance"] == 30
    for member_id in (giver, taker):
        check_invariant(world.stores.ledger, world.actor.tenant_id, member_id)
    taker_view = world.ledger.balance_view(world.actor.tenant_id, taker)
    assert taker_view["balance"] == total - 30
    # Points never gain lifetime by moving: every lot the taker got burns no later than the
    # giver's last lot, and the earliest is the giver's earliest.
    taker_lots = _lots(world, taker)
    assert sum(taker_lots.values()) == total - 30
    assert min(taker_lots) == min(giver_lots)
    assert max(taker_lots) <= max(giver_lots)


def test_a_full_refund_after_spending_over_many_lots_restores_the_books(world, fake_clock):
    member_id = _member(world, "refund")
    total = _buy_on_many_days(world, fake_clock, member_id, days=DAYS)
    spend = total // 2
    order_amount = 10_000_000
    world.ledger.redeem(
        world.actor, member_id, order_id="basket", points=spend, order_amount=order_amount, currency_code="RUB"
    )

    # Refund the spending order in three parts: exactly the spent points come back.
    parts = [3_333_333, 3_333_333, 3_333_334]
    returned = 0
    for index, amount in enumerate(parts):
        refund = world.ledger.refund(world.actor, member_id, refund_id=f"r{index}", order_id="basket", amount=amount)
        returned += refund["points_returned"]
        check_invariant(world.stores.ledger, world.actor.tenant_id, member_id)
    assert returned == spend
    assert world.ledger.balance_view(world.actor.tenant_id, member_id)["balance"] == total
