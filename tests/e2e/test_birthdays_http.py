"""The birthday bonus over real HTTP, on a stack of this module's own started at a chosen instant:
the template's hourly schedule (BirthdaysFunction) pays each member once, with the first run after
midnight in the member's own time zone, nothing in the hours after, and once again a year later;
an erased member gets nothing; an hour missed is caught up by the next run. The ledger invariant
holds after every step.

The clock travels hour by hour through the day the birthday is "today" somewhere (from Kiritimati,
UTC+14, to Pago Pago, UTC-11). The shared stack's clock never moves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.e2e.conftest import CURRENCY, Api, new_id

pytestmark = pytest.mark.e2e

START = "2027-06-09T09:30:00Z"  # half an hour before 10 June begins in Kiritimati
BIRTHDAY = "06-10"
BONUS = 250
HOUR = dt.timedelta(hours=1)
SCHEDULE = "BirthdaysFunction.Hourly"
# Where each member lives, and the run (minute 5 of the hour, UTC) that should pay them in 2027:
# the first after midnight of 10 June there.
ZONES = {
    "Pacific/Kiritimati": "2027-06-09T10:05:00Z",  # UTC+14: 10 June begins at 10:00 UTC on the 9th
    "Asia/Tokyo": "2027-06-09T15:05:00Z",  # UTC+9
    "America/Los_Angeles": "2027-06-10T07:05:00Z",  # UTC-7 (summer time)
    "Pacific/Pago_Pago": "2027-06-10T11:05:00Z",  # UTC-11: the last place where 10 June begins
}


def instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def stack(start_local_stack: Any) -> Iterator[dict[str, Api]]:
    """A stack of our own, its clock started at START (the schedule's real-time firing waits for
    minute 5 of an hour that never comes: every step below stops at minute 10 or 30)."""
    running = start_local_stack(args=["--now", START])
    keys = running["tenants"]["demo"]["api_keys"]
    clients = {role: Api(running, keys[role]) for role in ("integration", "admin")}
    yield clients
    for client in clients.values():
        client.session.close()


def travel(client: Api, to: str, *, fire: bool = True) -> list[dict[str, Any]]:
    answer = requests.post(client.url + "/_local/clock", json={"to": to, "fire": fire}, timeout=600)
    assert answer.status_code == 200, answer.text
    moved = answer.json()
    assert moved["drained"] is True and all(entry["ok"] for entry in moved["fired"]), moved
    return moved["fired"]


def balanced(client: Api, member_id: str) -> list[dict[str, Any]]:
    """The ledger invariant as a client sees it; answers the member's birthday entries, oldest first."""
    state = client.balanced(member_id)
    return [entry for entry in reversed(state["entries"]) if entry["type"] == "birthday_bonus"]


def test_the_hourly_schedule_pays_each_birthday_once_in_the_members_time_zone(stack: dict[str, Api]) -> None:
    shop, admin = stack["integration"], stack["admin"]
    program_id = new_id("bday")
    body = {
        "name": "Birthday club",
        "currency": CURRENCY,
        "tiers": [{"name": "Base", "threshold": 0, "accrual_bp": 500}],
        "birthday_bonus": BONUS,
        "lifetime_days": 3_650,  # nothing burns during the test's two years
    }
    created = admin.call("PUT", f"/v1/programs/{program_id}", json_body=body)
    assert created.status_code == 201, created.text

    members = {}
    for zone in ZONES:
        members[zone] = shop.enrol(program_id=program_id, time_zone=zone, birthday=f"1990-{BIRTHDAY}")
    erased = shop.enrol(program_id=program_id, time_zone="Asia/Tokyo", birthday=f"1985-{BIRTHDAY}")
    answer = admin.post(f"/v1/members/{erased}/erasure", {"reason": "the customer asked"})
    assert answer.status_code == 200, answer.text
    later = shop.enrol(program_id=program_id, time_zone="Pacific/Kiritimati", birthday="1990-06-13")

    # Hour by hour through 10 June everywhere, and past it.
    at = instant(START).replace(minute=10) + HOUR
    last = instant("2027-06-11T12:10:00Z")
    paid_at: dict[str, str] = {}
    while at <= last:
        fired = travel(shop, at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        [run] = [entry["at"] for entry in fired if entry["schedule"] == SCHEDULE]  # other jobs may run too
        for zone, member_id in members.items():
            entries = balanced(shop, member_id)
            due = instant(run) >= instant(ZONES[zone])
            assert len(entries) == (1 if due else 0), (zone, run, entries)
            if entries:
                paid_at.setdefault(zone, run)
        at += HOUR
    for member_id in (erased, later):
        assert balanced(shop, member_id) == []

    assert paid_at == ZONES
    for zone, member_id in members.items():
        [entry] = balanced(shop, member_id)
        assert (entry["points"], entry["details"]) == (BONUS, {"birthday": "2027-06-10"})
        assert entry["actor"] == {"key_id": "system:birthdays", "role": "admin"}
        created_at = instant(entry["created_at"])
        assert instant(ZONES[zone]) <= created_at < instant(ZONES[zone]) + dt.timedelta(minutes=1)
        assert created_at.astimezone(ZoneInfo(zone)).date() == dt.date(2027, 6, 10)  # the local birthday
        assert shop.member(member_id)["balance"] == BONUS

    # A year later. The clock jumps without firing to the eve of 10 June 2028 (8,700 hourly runs
    # would change nothing); Tokyo's first run after midnight is missed (as if the job were down
    # for that hour), and the next run catches up.
    travel(shop, "2028-06-09T09:30:00Z", fire=False)
    travel(shop, "2028-06-09T14:30:00Z")
    skipped = requests.post(
        shop.url + "/_local/clock", json={"to": "2028-06-09T15:30:00Z", "fire": False}, timeout=60
    ).json()
    assert {"schedule": SCHEDULE, "from": "2028-06-09T15:05:00Z"} in skipped["skipped"]
    travel(shop, "2028-06-11T12:10:00Z")
    expected_2028 = {
        "Pacific/Kiritimati": "2028-06-09T10:05:00Z",
        "Asia/Tokyo": "2028-06-09T16:05:00Z",  # one hour late: the 15:05 run did not happen
        "America/Los_Angeles": "2028-06-10T07:05:00Z",
        "Pacific/Pago_Pago": "2028-06-10T11:05:00Z",
    }
    for zone, member_id in members.items():
        entries = balanced(shop, member_id)
        assert [entry["details"]["birthday"] for entry in entries] == ["2027-06-10", "2028-06-10"], zone
        created_at = instant(entries[1]["created_at"])
        assert instant(expected_2028[zone]) <= created_at < instant(expected_2028[zone]) + dt.timedelta(minutes=1)
        assert shop.member(member_id)["balance"] == 2 * BONUS
    assert balanced(shop, erased) == []
    assert balanced(shop, later) == []  # 13 June has not come anywhere yet
