"""Programs: the pure rules of their settings, their effective dates and their versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.admin import demo_program
from loyalty.models import TierBasis
from loyalty.program_versions import ProgramVersion, VersionStatus, in_force, latest, live, status
from loyalty.programs import check_effective_from, check_settings, tier_after_move
from loyalty.store.ledger_models import Account

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def settings(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Club",
        "currency": "RUB",
        "tiers": [
            {"name": "Silver", "threshold": 0, "accrual_bp": 300},
            {"name": "Gold", "threshold": 50_000_00, "accrual_bp": 500},
            {"name": "Platinum", "threshold": 200_000_00, "accrual_bp": 700},
        ],
    }
    return {**base, **changes}


def fields(problems: list[dict[str, str]]) -> list[str]:
    return [problem["field"] for problem in problems]


def test_good_settings_have_no_problems() -> None:
    assert check_settings(settings()) == []
    assert check_settings(settings(tier_basis="spend_window", tier_window_days=90, tier_downgrade="window")) == []


@pytest.mark.parametrize(
    ("changes", "blamed"),
    [
        ({"currency": "XXX"}, ["currency"]),
        (
            {"tiers": [{"name": "A", "threshold": 0, "accrual_bp": 1}, {"name": "B", "threshold": 0, "accrual_bp": 2}]},
            ["tiers[1].threshold"],
        ),
        ({"tiers": [{"name": "A", "threshold": 5, "accrual_bp": 1}]}, ["tiers[0].threshold"]),
        (
            {
                "tiers": [
                    {"name": "A", "threshold": 0, "accrual_bp": 1},
                    {"name": "B", "threshold": 100, "accrual_bp": 2},
                    {"name": "C", "threshold": 100, "accrual_bp": 3},
                ]
            },
            ["tiers[2].threshold"],
        ),
        (
            {"tiers": [{"name": "A", "threshold": 0, "accrual_bp": 1}, {"name": "A", "threshold": 9, "accrual_bp": 2}]},
            ["tiers[1].name"],
        ),
        ({"tier_basis": "spend_window"}, ["tier_window_days"]),
        ({"tier_window_days": 30}, ["tier_window_days"]),
        ({"tier_downgrade": "window"}, ["tier_downgrade"]),
        ({"currency": "ABC", "tier_window_days": 30}, ["currency", "tier_window_days"]),
    ],
)
def test_each_broken_rule_names_its_field(changes: dict[str, Any], blamed: list[str]) -> None:
    problems = check_settings(settings(**changes))
    assert fields(problems) == blamed
    assert all(problem["message"] for problem in problems)


def test_the_rising_threshold_message_names_the_tier_before() -> None:
    tiers = [{"name": "A", "threshold": 0, "accrual_bp": 1}, {"name": "B", "threshold": 0, "accrual_bp": 1}]
    [problem] = check_settings(settings(tiers=tiers))
    assert "tiers[0].threshold" in problem["message"]


@pytest.mark.parametrize(
    ("effective_from", "ok"),
    [
        (None, True),
        (NOW, True),
        (NOW - timedelta(minutes=4), True),
        (NOW - timedelta(minutes=6), False),
        (NOW + timedelta(days=30), True),
        (NOW + timedelta(days=800), False),
    ],
)
def test_effective_from_is_now_or_later(effective_from: datetime | None, ok: bool) -> None:
    problems = check_effective_from(effective_from, NOW)
    assert (problems == []) is ok
    assert all(problem["field"] == "effective_from" for problem in problems)


def test_a_moved_member_gets_its_tier_on_the_new_programs_basis() -> None:
    account = Account(
        tenant_id="t",
        member_id="m",
        program_id="old",
        version=3,
        seq=3,
        balance=90,
        lifetime_earned=90,
        lifetime_spend=60_000_00,
        purchases=3,
        tier="Anything",
        lot_debt=0,
        holds=(),
    )
    program = demo_program()  # Silver 0, Gold 50,000.00, Platinum 200,000.00 of lifetime spend
    assert tier_after_move(program, account) == "Gold"
    by_count = program.model_copy(update={"tier_basis": TierBasis.PURCHASE_COUNT})
    assert tier_after_move(by_count, account) == "Silver"  # 3 purchases: below 50,000.00 of them
    windowed = program.model_copy(update={"tier_basis": TierBasis.SPEND_WINDOW, "tier_window_days": 90})
    assert tier_after_move(windowed, account) == "Silver"  # until a purchase counts the window


# ------------------------------------------------------------------------------ versions

PROGRAM = demo_program()


def version(number: int, starts: str | None) -> ProgramVersion:
    return ProgramVersion(version=number, effective_from=starts, program=PROGRAM)


V1 = version(1, None)
V2 = version(2, "2026-12-01T00:00:00Z")
V3 = version(3, "2026-11-23T10:00:00Z")


def test_the_newest_started_version_is_in_force() -> None:
    versions = [V1, V2]
    assert in_force(versions, "2026-11-30T23:59:59Z") == V1
    assert in_force(versions, "2026-12-01T00:00:00Z") == V2
    assert in_force([V2], "2026-11-30T00:00:00Z") is None  # not in force yet


def test_a_newer_version_supersedes_one_scheduled_after_it() -> None:
    versions = [V1, V2, V3]  # V3 was stored after V2 but takes effect before it
    at = "2026-11-25T00:00:00Z"
    assert in_force(versions, at) == V3
    assert in_force(versions, "2027-01-01T00:00:00Z") == V3
    assert [status(v, versions, at) for v in versions] == [
        VersionStatus.PAST,
        VersionStatus.SUPERSEDED,
        VersionStatus.CURRENT,
    ]
    assert live(versions, at) == [V3]
    assert latest(versions) == V3


def test_statuses_of_a_scheduled_change() -> None:
    versions = [V1, V2]
    at = "2026-11-25T00:00:00Z"
    assert [status(v, versions, at) for v in versions] == [VersionStatus.CURRENT, VersionStatus.SCHEDULED]
    assert live(versions, at) == [V1, V2]


instants = st.integers(min_value=0, max_value=40).map(lambda day: f"2026-12-{day // 10 + 1:02d}T{day % 10:02d}:00:00Z")


@given(
    starts=st.lists(st.one_of(st.none(), instants), min_size=1, max_size=8),
    now=instants,
    later=st.lists(instants, min_size=1, max_size=5),
)
def test_the_live_versions_decide_as_all_of_them_from_now_on(
    starts: list[str | None], now: str, later: list[str]
) -> None:
    versions = [version(number, start) for number, start in enumerate(starts, start=1)]
    kept = live(versions, now)
    assert latest(versions) in kept  # the newest version is always kept
    for at in [now, *later]:
        if at >= now:
            assert in_force(kept, at) == in_force(versions, at)
    current = [v for v in versions if status(v, versions, now) is VersionStatus.CURRENT]
    assert current == ([in_force(versions, now)] if in_force(versions, now) else [])
