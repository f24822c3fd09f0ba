"""Tiers on a spend window over real HTTP, on a private stack that travels in time: a member of a
windowed program reaches Gold at once, and once the window has passed without purchases the
nightly job (TiersFunction, fired by the local stack's schedule) lowers the tier with a
``tier_change`` entry, visible in ``GET /v1/members/{id}`` and its entries. The ledger invariant
(``loyalty.ledger.check_invariant``, the IDX#TIER marker included) is checked through the stack's
AWS endpoint after each step.

The shared stack's clock never moves: this module starts a stack of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from loyalty.ledger import check_invariant
from loyalty.store.ledger import LedgerStore
from tests.e2e.conftest import CURRENCY, Api, new_id
from tests.support.aws import dynamodb_client

pytestmark = pytest.mark.e2e

START = "2026-03-10T22:00:00Z"  # two hours before midnight UTC: the windows' days are UTC days
WINDOW_PROGRAM = {
    "name": "Gold for two days",
    "currency": CURRENCY,
    "tiers": [
        {"name": "Bronze", "threshold": 0, "accrual_bp": 100},
        {"name": "Silver", "threshold": 1_000_00, "accrual_bp": 200},
        {"name": "Gold", "threshold": 5_000_00, "accrual_bp": 300},
    ],
    "tier_basis": "spend_window",
    "tier_window_days": 2,  # the purchase's day and the next
    "tier_downgrade": "window",
}


@pytest.fixture(scope="module")
def private(start_local_stack: Any) -> Iterator[dict[str, Any]]:
    stack = start_local_stack(args=["--now", START])
    keys = stack["tenants"]["demo"]["api_keys"]
    clients = {role: Api(stack, keys[role]) for role in ("integration", "admin")}
    yield {"stack": stack, **clients}
    for client in clients.values():
        client.session.close()


def travel(stack: dict[str, Any], to: str) -> list[dict[str, Any]]:
    answer = requests.post(stack["url"] + "/_local/clock", json={"to": to}, timeout=600)
    assert answer.status_code == 200, answer.text
    fired = answer.json()["fired"]
    assert all(run["ok"] for run in fired), fired
    return [run for run in fired if run["schedule"].startswith("TiersFunction.")]


def invariant(stack: dict[str, Any], member_id: str) -> None:
    client = dynamodb_client(stack["aws_endpoint"])
    check_invariant(LedgerStore(stack["tables"]["LedgerTable"], client), "demo", member_id)


def test_gold_at_once_and_the_nightly_job_lowers_it_after_the_window(private: dict[str, Any]) -> None:
    stack, api, admin = private["stack"], private["integration"], private["admin"]
    created = admin.call("PUT", "/v1/programs/window-club", json_body=WINDOW_PROGRAM)
    assert created.status_code == 201, created.text
    member_id = api.enrol(new_id("w"), program_id="window-club")

    bought = api.purchase(member_id, "o-1", 6_000_00)
    assert (bought["tier"], bought["points"]) == ("Gold", 60)  # accrued at Bronze (1 %), then Gold at once
    view = api.member(member_id)
    assert (view["tier"], view["tier_progress"]) == ("Gold", None)
    [upgrade] = [e for e in api.entries(member_id) if e["type"] == "tier_change"]
    assert (upgrade["details"]["from"], upgrade["details"]["to"]) == ("Bronze", "Gold")
    invariant(stack, member_id)

    # The first night: the window (Mar 10 and 11) still holds the purchase.
    runs = travel(stack, "2026-03-11T00:30:00Z")
    assert [run["at"] for run in runs] == ["2026-03-11T00:15:00Z"]
    assert api.member(member_id)["tier"] == "Gold"
    invariant(stack, member_id)

    # The second night: the purchase has left the window, and the job lowers the tier.
    runs = travel(stack, "2026-03-12T00:30:00Z")
    assert [run["at"] for run in runs] == ["2026-03-12T00:15:00Z"]
    view = api.member(member_id)
    assert view["tier"] == "Bronze"
    assert view["tier_progress"] == {
        "next_tier": "Silver",
        "basis": "spend_window",
        "remaining": 1_000_00,
        "message": "spend 1 000.00 RUB more to reach Silver",
    }
    newest = api.entries(member_id)[0]
    assert (newest["type"], newest["points"], newest["created_at"]) == ("tier_change", 0, "2026-03-12T00:15:00Z")
    assert newest["actor"] == {"key_id": "system:tiers", "role": "admin"}
    details = newest["details"]
    assert (details["from"], details["to"], details["as_of"], details["window_spend"]) == (
        "Gold",
        "Bronze",
        "2026-03-12",
        0,
    )
    assert "2-day window" in details["why"]
    invariant(stack, member_id)

    # Another night changes nothing: the member has no review due any more.
    before = api.entries(member_id)
    travel(stack, "2026-03-13T00:30:00Z")
    assert api.entries(member_id) == before and api.member(member_id)["tier"] == "Bronze"


def test_a_refund_lowers_the_tier_only_at_the_next_nights_review(private: dict[str, Any]) -> None:
    stack, api, admin = private["stack"], private["integration"], private["admin"]
    if admin.get("/v1/programs/window-club").status_code == 404:  # (this test may run first, or alone)
        assert admin.call("PUT", "/v1/programs/window-club", json_body=WINDOW_PROGRAM).status_code == 201
    member_id = api.enrol(new_id("w"), program_id="window-club")
    now = requests.get(stack["url"] + "/_local/clock", timeout=60).json()["now"]
    day = datetime.fromisoformat(now.replace("Z", "+00:00")).date()
    assert api.purchase(member_id, "o-1", 5_000_00)["tier"] == "Gold"
    travel(stack, f"{day}T23:00:00Z")
    assert api.purchase(member_id, "o-2", 500_00)["tier"] == "Gold"  # the window holds 5 500.00
    refund = api.post(f"/v1/members/{member_id}/refunds", {"refund_id": "r-1", "order_id": "o-1", "amount": 1_000_00})
    assert refund.status_code in (200, 201), refund.text
    assert api.member(member_id)["tier"] == "Gold"  # a refund never lowers a tier at once
    invariant(stack, member_id)

    runs = travel(stack, f"{day + timedelta(days=1)}T00:30:00Z")  # the next night: 4 500.00 is below Gold
    assert [run["at"] for run in runs] == [f"{day + timedelta(days=1)}T00:15:00Z"]
    view = api.member(member_id)
    assert view["tier"] == "Silver"
    assert view["tier_progress"]["message"] == "spend 500.00 RUB more to reach Gold"
    newest = api.entries(member_id)[0]["details"]
    assert (newest["from"], newest["to"], newest["window_spend"]) == ("Gold", "Silver", 4_500_00)
    invariant(stack, member_id)
