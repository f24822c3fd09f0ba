"""The nightly burn over HTTP on a private local stack whose clock travels through a year.

The demo tenant's settings put its nights in Europe/Berlin (``PUT /v1/settings``; the stack's
default, ``BurnTimeZone``, stays Europe/Moscow), burning from 00:30 local: 23:30 UTC in winter,
22:30 UTC in summer, both daylight-saving changes included. Each step travels without firing to
just before a local midnight, then with firing past 00:30 local, so that the hourly scheduler's run
after 00:30 catches up every night since the tenant's checkpoint in order, and the stack drains the
burn queue before answering. Both policies run side by side: fixed_lifetime in months rounded to the
month's end, and inactivity. After every night the ledger's invariant holds for every member.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from loyalty.ledger import check_invariant
from loyalty.store.burn import BurnStore
from loyalty.store.ledger import LedgerStore
from tests.e2e.conftest import Api, new_id
from tests.support.aws import dynamodb_client

BERLIN = ZoneInfo("Europe/Berlin")
TIERS = [{"name": "Base", "threshold": 0, "accrual_bp": 300}]  # 3 %: 1,000.00 RUB -> 30 points


@pytest.fixture(scope="module")
def berlin(start_local_stack: Any) -> Iterator[tuple[dict[str, Any], Api, Api]]:
    stack = start_local_stack()
    keys = stack["tenants"]["demo"]["api_keys"]
    admin, api = Api(stack, keys["admin"]), Api(stack, keys["integration"])
    answer = admin.call("PUT", "/v1/settings", json_body={"burn_time_zone": "Europe/Berlin", "burn_time": "00:30"})
    assert answer.status_code == 200, answer.text
    yield stack, admin, api
    admin.session.close()
    api.session.close()


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=BERLIN)


def travel(api: Api, to: datetime, *, fire: bool) -> dict[str, Any]:
    body = {"to": to.astimezone(UTC).isoformat().replace("+00:00", "Z"), "fire": fire}
    answer = requests.post(api.url + "/_local/clock", json=body, timeout=900)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert all(f.get("ok") for f in result.get("fired", [])), result
    return result


def now(api: Api) -> datetime:
    answer = requests.get(api.url + "/_local/clock", timeout=60)
    assert answer.status_code == 200, answer.text
    return datetime.fromisoformat(answer.json()["now"].replace("Z", "+00:00"))


def night(api: Api, day: date) -> list[dict[str, Any]]:
    """Run the burn of the night of ``day`` (and of any night missed before it): answers the burn
    scheduler's runs."""
    before = local(day.year, day.month, day.day) - timedelta(hours=1)
    if now(api) < before:
        travel(api, before, fire=False)
    fired = travel(api, local(day.year, day.month, day.day, 0, 45), fire=True)["fired"]
    return [f for f in fired if f["schedule"].startswith("BurnSchedulerFunction")]


def burned_at(api: Api, member_id: str) -> list[str]:
    """When each of the member's burn entries was written (the scheduler's run), oldest first."""
    return sorted(e["created_at"][:16] for e in api.entries(member_id) if e["type"] == "burn")


def program(admin: Api, **settings: Any) -> str:
    program_id = new_id("burn")
    body = {"name": program_id, "currency": "RUB", "tiers": TIERS, "max_redeem_share_bp": 10_000, **settings}
    answer = admin.call("PUT", f"/v1/programs/{program_id}", json_body=body)
    assert answer.status_code == 201, answer.text
    return program_id


def expiring(api: Api, member_id: str) -> list[dict[str, Any]]:
    answer = api.get(f"/v1/members/{member_id}/expiring")
    assert answer.status_code == 200, answer.text
    return answer.json()["expiring"]


def stores(stack: dict[str, Any]) -> tuple[LedgerStore, BurnStore]:
    client = dynamodb_client(stack["aws_endpoint"])
    table = stack["tables"]["LedgerTable"]
    return LedgerStore(table, client), BurnStore(table, client)


def test_a_year_of_nightly_burns_under_both_policies(berlin: tuple[dict[str, Any], Api, Api]) -> None:
    stack, admin, api = berlin
    ledger, burns = stores(stack)
    fixed = program(admin, lifetime_months=1, round_to_month_end=True, reminder_days=[7])
    idle = program(
        admin, burn_policy="inactivity", inactivity_months=2, activity_events=["purchase"], reminder_days=[7]
    )
    a, b = api.enrol(program_id=fixed), api.enrol(program_id=idle)

    def balance(member_id: str) -> int:
        return api.member(member_id)["balance"]

    def settled() -> None:
        for member_id in (a, b):
            check_invariant(ledger, "demo", member_id)

    assert now(api) < local(2026, 12, 1), "the stack's clock starts at the real time; this test plans from late 2026"
    assert balance(a) == balance(b) == 0  # these programs give no welcome bonus
    api.purchase(a, new_id("o"), 1_000_00)
    api.purchase(b, new_id("o"), 1_000_00)
    # Earned in late November: one month later, rounded to the end of that month -> burns on 1 January.
    assert expiring(api, a) == [{"date": "2027-01-01", "points": 30}]
    assert expiring(api, b) == [{"date": "2027-01-25", "points": 30}]  # 2 months after the purchase

    # 25 December: the reminder 7 days before the 1 January burn is recorded, with the amount.
    assert night(api, date(2026, 12, 25))
    settled()
    notices = burns.notices("demo", a)
    assert [(n["burn_date"], n["days_before"], n["points"], n["status"]) for n in notices] == [
        ("2027-01-01", 7, 30, "due")
    ]
    travel(api, local(2026, 12, 25, 12, 0), fire=False)  # burn dates are UTC calendar dates
    api.purchase(b, new_id("o"), 1_000_00)  # activity: all of b's points now burn 2 months after it
    assert expiring(api, b) == [{"date": "2027-02-25", "points": 60}]

    # New Year's night at 00:15 local: not burned yet (the burn is at 00:30 local, not UTC midnight).
    travel(api, local(2026, 12, 31, 23, 0), fire=False)
    travel(api, local(2027, 1, 1, 0, 15), fire=True)
    assert balance(a) == 30
    runs = night(api, date(2027, 1, 1))
    assert [r["at"] for r in runs] == ["2026-12-31T23:30:00Z"]  # 00:30 CET
    assert burned_at(api, a) == ["2026-12-31T23:30"]
    assert balance(a) == 0 and expiring(api, a) == []
    burned = [e for e in api.entries(a) if e["type"] == "burn"]
    assert [(e["points"], e["burn_date"]) for e in burned] == [(-30, "2027-01-01")]
    settled()

    # b: nothing burns on its first lot's own date (25 January): the activity moved it.
    night(api, date(2027, 1, 25))
    assert balance(b) == 60
    night(api, date(2027, 2, 25))
    assert balance(b) == 0 and expiring(api, b) == []
    settled()

    # Across the change to summer time (28 March 2027): a purchase on 28 February burns on 1 April,
    # at 00:30 CEST, which is 22:30 UTC the day before.
    travel(api, local(2027, 2, 28, 12, 0), fire=False)
    api.purchase(a, new_id("o"), 2_000_00)
    assert expiring(api, a) == [{"date": "2027-04-01", "points": 60}]
    night(api, date(2027, 3, 28))
    assert balance(a) == 60
    night(api, date(2027, 4, 1))
    assert burned_at(api, a)[-1] == "2027-03-31T22:30"  # 00:30 CEST: an hour earlier in UTC
    assert balance(a) == 0
    settled()

    # The rest of the year, a month at a time: each month's lot burns on the 1st of the month after
    # next, both members buying (b's activity keeps its points).
    # In October, c's points burn on the night of the change to winter time (31 October 2027,
    # 03:00 CEST -> 02:00 CET), at 00:30 CEST, and a's on 1 November at 00:30 CET.
    c = api.enrol(program_id=program(admin, lifetime_days=21))
    for month in range(4, 12):
        travel(api, local(2027, month, 10, 12, 0), fire=False)
        api.purchase(a, new_id("o"), 1_000_00)
        api.purchase(b, new_id("o"), 1_000_00)
        following = date(2027, month + 2, 1) if month < 11 else date(2028, 1, 1)
        assert {"date": following.isoformat(), "points": 30} in expiring(api, a)
        if month == 10:
            api.purchase(c, new_id("o"), 1_000_00)
            assert expiring(api, c) == [{"date": "2027-10-31", "points": 30}]
            night(api, date(2027, 10, 30))
            assert balance(c) == 30
            night(api, date(2027, 10, 31))
            assert balance(c) == 0 and burned_at(api, c) == ["2027-10-30T22:30"]
            check_invariant(ledger, "demo", c)
        night(api, date(2027, month + 1, 1))
        settled()
        if month == 10:
            assert burned_at(api, a)[-1] == "2027-10-31T23:30"  # 00:30 CET again
    assert sorted(lot.burn_date for lot in ledger.lots("demo", a)) == ["2028-01-01"]
    assert balance(b) == 8 * 30 and burns.checkpoint("demo") == "2027-12-01"


def test_the_tenant_settings_say_what_to_fix(berlin: tuple[dict[str, Any], Api, Api]) -> None:
    _, admin, api = berlin
    assert admin.get("/v1/settings").json() == {
        "burn_time_zone": "Europe/Berlin",
        "burn_time": "00:30",
        "chain_interval_days": 25,
        "digest_interval_days": 14,
        "birthday_coupon_days": 14,
    }
    for body, field in (
        ({"burn_time_zone": "Mars/Olympus"}, "burn_time_zone"),
        ({"burn_time": "23:30"}, "burn_time"),
        ({"burn_time": 30}, "burn_time"),
        ({"burn_day": "Sunday"}, "burn_day"),
    ):
        answer = admin.call("PUT", "/v1/settings", json_body=body)
        admin.problem(answer, 422)
        assert field in answer.text
    admin.problem(api.call("PUT", "/v1/settings", json_body={"burn_time": "01:00"}), 403)  # the shop's key
    assert admin.get("/v1/settings").json()["burn_time_zone"] == "Europe/Berlin"  # nothing was changed
    kept = admin.call("PUT", "/v1/settings", json_body={"digest_interval_days": 21})  # one field: the rest stays
    assert kept.status_code == 200, kept.text
    assert (kept.json()["burn_time_zone"], kept.json()["digest_interval_days"]) == ("Europe/Berlin", 21)
