"""Tiers on a spend window against moto: accrual, refunds, backdated purchases, the nightly review
(``loyalty.tiers``) through gsi1, reruns, missed nights, a purchase racing the review, progress,
and the ledger invariant (with the IDX#TIER marker) after every step."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loyalty import clock, tiers
from loyalty.admin import DEMO_TENANT
from loyalty.errors import Unavailable
from loyalty.ledger import Ledger, check_invariant
from loyalty.members import enrol
from loyalty.models import Profile, Program, Tier
from loyalty.store import keys

WINDOW = "window-30"
TIERS = (
    Tier(name="Bronze", threshold=0, accrual_bp=100),
    Tier(name="Silver", threshold=1_000_00, accrual_bp=200),
    Tier(name="Gold", threshold=5_000_00, accrual_bp=300),
)


def windowed(program_id: str = WINDOW, **changes: Any) -> Program:
    settings: dict[str, Any] = {
        "tenant_id": DEMO_TENANT,
        "program_id": program_id,
        "name": "Windowed club",
        "currency": "RUB",
        "tiers": TIERS,
        "tier_basis": "spend_window",
        "tier_window_days": 30,
        "tier_downgrade": "window",
        **changes,
    }
    return Program.model_validate(settings)


@pytest.fixture
def window_world(world):
    world.stores.config.put_program(windowed())
    return world


def member(world, program_id: str = WINDOW) -> str:
    member_id = f"m-{uuid.uuid4().hex[:8]}"
    enrol(world.stores, DEMO_TENANT, member_id, Profile(program_id=program_id))
    return member_id


def buy(world, member_id: str, order_id: str, amount: int, occurred_at: datetime | None = None) -> dict[str, Any]:
    result = world.ledger.accrue(
        world.actor, member_id, order_id=order_id, amount=amount, currency_code="RUB", occurred_at=occurred_at
    )
    check_invariant(world.stores.ledger, DEMO_TENANT, member_id)
    return result


def account(world, member_id: str):
    return world.stores.ledger.snapshot(DEMO_TENANT, member_id).account


def tier_changes(world, member_id: str) -> list[dict[str, Any]]:
    entries = world.stores.ledger.all_entries(DEMO_TENANT, member_id)
    return [{**entry.details, "actor": entry.actor} for entry in entries if entry.type == "tier_change"]


def nightly(world) -> tiers.Summary:
    summary = tiers.review_due(Ledger(world.stores))
    for _, tenant_id, member_id in indexed(world):  # every member the index names balances, marker included
        check_invariant(world.stores.ledger, tenant_id, member_id)
    return summary


def indexed(world) -> list[tuple[str, str, str]]:
    """Every tier review gsi1 holds, whenever due."""
    far = clock.now().date() + timedelta(days=10_000)
    return sorted(r for shard in range(keys.DUE_SHARDS) for r in world.stores.ledger.due_tier_reviews(shard, far))


def test_gold_at_once_then_down_the_night_the_window_passes(window_world, fake_clock) -> None:
    world = window_world
    m = member(world)
    first = buy(world, m, "o1", 6_000_00)
    bought = fake_clock.moment.date()
    assert first["tier"] == "Gold" and first["points"] == 60  # accrued at Bronze, 1 %
    [upgrade] = tier_changes(world, m)
    assert (upgrade["from"], upgrade["to"]) == ("Bronze", "Gold")
    review = (bought + timedelta(days=30)).isoformat()
    assert account(world, m).tier_review == review
    assert indexed(world) == [(review, DEMO_TENANT, m)]
    assert world.ledger.balance_view(DEMO_TENANT, m)["tier_progress"] is None  # the top tier

    fake_clock.advance(days=29)  # the window still holds the purchase on its 30th day
    assert nightly(world).due == 0
    assert account(world, m).tier == "Gold"

    fake_clock.moment = datetime.combine(bought + timedelta(days=30), datetime.min.time(), UTC) + timedelta(minutes=15)
    summary = nightly(world)
    assert (summary.due, summary.reviewed, summary.downgrades) == (1, 1, 1)
    state = account(world, m)
    assert (state.tier, state.tier_review, state.tier_window) == ("Bronze", None, {})
    down = tier_changes(world, m)[-1]
    assert (down["from"], down["to"], down["as_of"], down["window_spend"]) == ("Gold", "Bronze", review, 0)
    assert down["actor"] == {"key_id": "system:tiers", "role": "admin"}
    assert "30-day window" in down["why"] and "Gold" in down["why"]
    assert indexed(world) == []
    view = world.ledger.balance_view(DEMO_TENANT, m)
    assert view["tier"] == "Bronze"
    assert view["tier_progress"]["message"] == "spend 1 000.00 RUB more to reach Silver"

    entries = len(world.stores.ledger.all_entries(DEMO_TENANT, m))
    again = nightly(world)  # a rerun of the same night
    assert (again.due, again.reviewed) == (0, 0)
    assert len(world.stores.ledger.all_entries(DEMO_TENANT, m)) == entries


def test_missed_nights_are_caught_up_in_order_one_entry_per_step(window_world, fake_clock) -> None:
    world = window_world
    m = member(world)
    start = fake_clock.moment.date()
    buy(world, m, "o1", 4_000_00)  # Silver
    fake_clock.advance(days=10)
    buy(world, m, "o2", 1_500_00)  # 5 500.00: Gold. From day 30: 1 500.00 (Silver); from day 40: 0 (Bronze)
    assert account(world, m).tier_review == (start + timedelta(days=30)).isoformat()
    fake_clock.advance(days=45)  # no job ran for 45 days
    summary = nightly(world)
    assert (summary.reviewed, summary.downgrades) == (1, 2)
    steps = [(c["from"], c["to"], c["as_of"], c["window_spend"]) for c in tier_changes(world, m) if c.get("as_of")]
    assert steps == [
        ("Gold", "Silver", (start + timedelta(days=30)).isoformat(), 1_500_00),
        ("Silver", "Bronze", (start + timedelta(days=40)).isoformat(), 0),
    ]
    assert account(world, m).tier_review is None and indexed(world) == []


def test_a_refund_takes_spend_out_of_the_window_and_never_lowers_the_tier_at_once(window_world, fake_clock) -> None:
    world = window_world
    m = member(world)
    start = fake_clock.moment.date()
    buy(world, m, "o1", 6_000_00)  # Gold
    refunded = world.ledger.refund(world.actor, m, refund_id="r1", order_id="o1", amount=2_000_00)
    assert refunded["amount"] == 2_000_00
    check_invariant(world.stores.ledger, DEMO_TENANT, m)
    state = account(world, m)
    assert state.tier == "Gold"  # refunds never lower a tier
    assert state.tier_window == {start.isoformat(): 4_000_00}
    assert state.tier_review == (start + timedelta(days=1)).isoformat()  # reviewed from tomorrow
    progress = world.ledger.balance_view(DEMO_TENANT, m)["tier_progress"]
    assert progress is None  # Gold is the top

    assert nightly(world).due == 0  # not today
    fake_clock.advance(days=1)
    assert nightly(world).downgrades == 1
    state = account(world, m)
    assert (state.tier, state.tier_review) == ("Silver", (start + timedelta(days=30)).isoformat())
    assert tier_changes(world, m)[-1]["window_spend"] == 4_000_00

    # A refund of the rest takes it all out; the review of tomorrow lowers to Bronze.
    world.ledger.refund(world.actor, m, refund_id="r2", order_id="o1", amount=4_000_00)
    check_invariant(world.stores.ledger, DEMO_TENANT, m)
    assert account(world, m).tier == "Silver" and account(world, m).tier_window == {}
    fake_clock.advance(days=1)
    nightly(world)
    assert (account(world, m).tier, account(world, m).tier_review) == ("Bronze", None)


def test_a_backdated_purchase_counts_on_its_own_day(window_world, fake_clock) -> None:
    world = window_world
    m = member(world)
    today = fake_clock.moment.date()
    result = buy(world, m, "old", 6_000_00, occurred_at=fake_clock.moment - timedelta(days=25))
    assert result["tier"] == "Gold"
    assert account(world, m).tier_window == {(today - timedelta(days=25)).isoformat(): 6_000_00}
    assert account(world, m).tier_review == (today + timedelta(days=5)).isoformat()
    # Older than the window: it accrues, and moves no tier.
    other = member(world)
    result = buy(world, other, "older", 6_000_00, occurred_at=fake_clock.moment - timedelta(days=31))
    assert (result["tier"], result["points"]) == ("Bronze", 60)
    assert account(world, other).tier_window == {} and account(world, other).tier_review is None


def test_a_purchase_after_a_missed_review_makes_it_first_and_accrues_at_the_lower_tier(window_world, fake_clock):
    world = window_world
    m = member(world)
    buy(world, m, "o1", 6_000_00)  # Gold
    fake_clock.advance(days=31)  # the review was due yesterday; no job ran
    result = buy(world, m, "o2", 1_000_00)
    assert result["points"] == 10  # at Bronze (1 %), not Gold (3 %)
    assert result["tier"] == "Silver"  # then 1 000.00 in the window: Silver at once
    changes = tier_changes(world, m)
    assert [(c["from"], c["to"]) for c in changes] == [("Bronze", "Gold"), ("Gold", "Bronze"), ("Bronze", "Silver")]
    entries = world.stores.ledger.all_entries(DEMO_TENANT, m)
    assert [e.type for e in entries[-3:]] == ["tier_change", "accrual", "tier_change"]
    assert nightly(world).reviewed == 0  # nothing is left for the job


def test_a_purchase_racing_the_review_is_serialized_by_the_version(window_world, fake_clock, monkeypatch) -> None:
    world = window_world
    m = member(world)
    buy(world, m, "o1", 6_000_00)
    fake_clock.advance(days=30)
    store = world.stores.ledger
    real = store.snapshot
    raced = []

    def snapshot_then_a_purchase(*args: Any, **kwargs: Any):
        seen = real(*args, **kwargs)
        if not raced:  # between the review's read and its write, the member buys 6 000.00 again
            raced.append(True)
            Ledger(world.stores).accrue(
                world.actor, m, order_id="o2", amount=6_000_00, currency_code="RUB", occurred_at=None
            )
        return seen

    with monkeypatch.context() as patched:  # (monkeypatch.undo would undo the fake clock too)
        patched.setattr(store, "snapshot", snapshot_then_a_purchase)
        result = world.ledger.review_tier(DEMO_TENANT, m)
    check_invariant(store, DEMO_TENANT, m)
    # The purchase made the due review itself (Gold -> Bronze, then Gold again); the review's
    # write failed on the version, ran again, and found nothing due.
    assert result["reviewed"] is False and result["tier"] == "Gold"
    changes = [(c["from"], c["to"]) for c in tier_changes(world, m)]
    assert changes == [("Bronze", "Gold"), ("Gold", "Bronze"), ("Bronze", "Gold")]


def test_never_downgrade_keeps_the_best_tier_and_writes_no_marker(window_world, fake_clock) -> None:
    world = window_world
    world.stores.config.put_program(windowed("keep", tier_downgrade="never"))
    m = member(world, "keep")
    assert buy(world, m, "o1", 6_000_00)["tier"] == "Gold"
    assert account(world, m).tier_review is None and indexed(world) == []
    fake_clock.advance(days=100)
    nightly(world)
    assert account(world, m).tier == "Gold"
    progress = world.ledger.balance_view(DEMO_TENANT, m)["tier_progress"]
    assert progress is None


def test_progress_on_the_window_and_a_member_moved_off_the_program_loses_the_marker(window_world, fake_clock):
    world = window_world
    m = member(world)
    buy(world, m, "o1", 2_000_00)  # Silver
    progress = world.ledger.balance_view(DEMO_TENANT, m)["tier_progress"]
    assert progress == {
        "next_tier": "Gold",
        "basis": "spend_window",
        "remaining": 3_000_00,
        "message": "spend 3 000.00 RUB more to reach Gold",
    }
    fake_clock.advance(days=30)  # the window is empty: 5 000.00 to Gold again
    assert world.ledger.balance_view(DEMO_TENANT, m)["tier_progress"]["remaining"] == 5_000_00

    # A new version that stops downgrading: the review finds nothing to lower and drops the marker.
    world.stores.config.put_program(windowed(tier_downgrade="never"))
    summary = nightly(world)
    assert (summary.reviewed, summary.downgrades) == (1, 0)
    assert account(world, m).tier == "Silver" and account(world, m).tier_review is None and indexed(world) == []


def test_a_ten_year_window_keeps_buckets_and_reviews_when_the_last_one_leaves(window_world, fake_clock) -> None:
    world = window_world
    world.stores.config.put_program(windowed("decade", tier_window_days=3_650))
    m = member(world, "decade")
    start = fake_clock.moment.date()
    buy(world, m, "o1", 6_000_00)
    [(bucket, amount)] = account(world, m).tier_window.items()
    width = 10
    assert (
        amount == 6_000_00
        and start.toordinal() - width < datetime.fromisoformat(bucket).toordinal() <= start.toordinal()
    )
    review = datetime.fromisoformat(account(world, m).tier_review).date()
    assert 3_650 <= (review - start).days <= 3_650 + width - 1


def test_the_job_reads_only_what_is_due(window_world, fake_clock, monkeypatch) -> None:
    world = window_world
    members = [member(world) for _ in range(5)]
    for m in members:  # one a day: their reviews fall on five days in a row
        fake_clock.advance(days=1)
        buy(world, m, "o1", 6_000_00)
    fake_clock.advance(days=26)  # the first member's window has passed, not the others'
    calls: list[tuple[str, int]] = []
    client = world.stores.ledger.client
    real_query = client.query

    def counting(**kwargs: Any):
        page = real_query(**kwargs)
        calls.append((kwargs.get("IndexName", "table"), len(page["Items"])))
        return page

    monkeypatch.setattr(client, "query", counting)
    summary = tiers.review_due(Ledger(world.stores))
    assert summary.downgrades == 1 and summary.reviewed == 1
    assert [index for index, _ in calls] == ["gsi1"] * keys.DUE_SHARDS  # one Query per shard, no Scan
    assert sum(found for _, found in calls) == 1  # the index gave only what is due
    assert all(account(world, m).tier == "Gold" for m in members[1:])


def test_a_failed_review_leaves_the_rest_done_and_raises_for_a_retry(window_world, fake_clock, monkeypatch) -> None:
    world = window_world
    a, b = member(world), member(world)
    buy(world, a, "o1", 6_000_00)
    buy(world, b, "o1", 6_000_00)
    fake_clock.advance(days=30)
    ledger = Ledger(world.stores)
    real = ledger.review_tier

    def flaky(tenant_id: str, member_id: str) -> dict[str, Any]:
        if member_id == a:
            raise Unavailable("busy")
        return real(tenant_id, member_id)

    with monkeypatch.context() as patched, pytest.raises(tiers.ReviewUnfinished, match="1 failed"):
        patched.setattr(ledger, "review_tier", flaky)
        tiers.review_due(ledger)
    assert (account(world, a).tier, account(world, b).tier) == ("Gold", "Bronze")
    summary = tiers.review_due(Ledger(world.stores))  # the retry does what was left
    assert (summary.reviewed, account(world, a).tier) == (1, "Bronze")


def test_time_running_short_stops_and_raises(window_world, fake_clock) -> None:
    world = window_world
    m = member(world)
    buy(world, m, "o1", 6_000_00)
    fake_clock.advance(days=30)
    with pytest.raises(tiers.ReviewUnfinished, match="time ran short"):
        tiers.review_due(Ledger(world.stores), seconds_left=lambda: 1.0)
    assert account(world, m).tier == "Gold"
    assert tiers.review_due(Ledger(world.stores), seconds_left=lambda: 300.0).downgrades == 1


# ------------------------------------------------------------------------------- the simulator agrees


@pytest.mark.parametrize(("seed", "job"), [(1, "nightly"), (2, "never"), (3, "never")])
def test_the_ledger_and_the_simulator_agree_on_tiers_and_points(window_world, fake_clock, seed, job) -> None:
    """The same orders through the ledger (with the nightly job every night, or never: purchases
    make the reviews due themselves) and through ``loyalty.simulate``: the same points for each
    order, and the same tiers at the end."""
    import random

    from loyalty.simulate import OrderBook, Replay

    world = window_world
    prog = windowed("sim", tier_window_days=10, min_order_amount=100_00)
    world.stores.config.put_program(prog)
    rng = random.Random(seed)
    names = [f"s{seed}-{i}" for i in range(3)]
    for name in names:
        enrol(world.stores, DEMO_TENANT, name, Profile(program_id="sim"))
    start = fake_clock.moment.replace(hour=0, minute=0)
    orders = sorted(
        (
            start + timedelta(days=rng.randrange(1, 40), hours=rng.randrange(1, 23)),
            rng.choice(names),
            rng.randrange(50_00, 4_000_00),
        )
        for _ in range(24)
    )
    book = OrderBook()
    for when, name, amount in orders:
        book.add(name, when.date().toordinal(), when.hour * 3600, amount)
    simulated: list[int] = []
    replay = Replay(book, prog, 0.0, trace=lambda m, amount, available, used, points: simulated.append(points)).run()

    booked = []
    day = start.date()
    for n, (when, name, amount) in enumerate(orders):
        while job == "nightly" and day < when.date():
            day += timedelta(days=1)
            fake_clock.moment = datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=15)
            tiers.review_due(world.ledger)
        fake_clock.moment = when
        accrued = world.ledger.accrue(
            world.actor, name, order_id=f"o{n}", amount=amount, currency_code="RUB", occurred_at=None
        )
        booked.append(accrued["points"])
    assert booked == simulated

    downgrades = [c for n in names for c in tier_changes(world, n) if c.get("as_of")]
    assert downgrades, "a history without a downgrade proves little: pick another seed"
    last_day = datetime.fromordinal(book.days[-1]).date()
    month_end = (last_day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    fake_clock.moment = datetime.combine(month_end, datetime.min.time(), UTC) + timedelta(hours=23)
    nightly(world)
    for name in names:
        check_invariant(world.stores.ledger, DEMO_TENANT, name)
    tiers_at_end = [sum(1 for n in names if account(world, n).tier == t.name) for t in prog.tiers]
    assert tiers_at_end == list(replay.months[-1][7])
