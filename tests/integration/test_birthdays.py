"""The birthday job against DynamoDB (moto): many members across gsi1's shards and time zones, the
hourly runs around a birthday, reruns, erased members, programs without a bonus, 29 February, a
member that fails, a run out of time, a missed day and its catch-up, the next year."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

from loyalty import birthdays
from loyalty.admin import DEMO_PROGRAM, DEMO_TENANT, demo_program
from loyalty.ledger import Ledger, check_invariant
from loyalty.members import enrol, erase
from loyalty.models import Profile
from loyalty.store import keys

BONUS = demo_program(DEMO_TENANT).birthday_bonus  # the demo program's birthday bonus
ZONES = [
    "Pacific/Kiritimati",  # UTC+14: the first to have a birthday
    "Pacific/Auckland",
    "Asia/Tokyo",
    "Asia/Kathmandu",  # +05:45
    "Asia/Kolkata",  # +05:30
    "Europe/Moscow",
    "Europe/Berlin",
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "Pacific/Honolulu",
    "Pacific/Pago_Pago",  # UTC-11: the last
]
HOUR = dt.timedelta(hours=1)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def first_run_after_local_midnight(day: dt.date, zone: str) -> dt.datetime:
    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)
    run = midnight.replace(minute=5, second=0, microsecond=0)
    return run if run >= midnight else run + HOUR


def member(world, birthday: str | None, zone: str = "UTC", prefix: str = "b") -> str:
    member_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
    profile = Profile(time_zone=zone, birthday=dt.date.fromisoformat(birthday) if birthday else None)
    enrol(world.stores, DEMO_TENANT, member_id, profile, actor=world.actor)
    return member_id


def birthday_entries(world, member_id: str) -> list:
    return [e for e in world.stores.ledger.all_entries(DEMO_TENANT, member_id) if e.type == "birthday_bonus"]


def job(world) -> birthdays.Job:
    return birthdays.Job.for_tables(world.tables["LedgerTable"], world.tables["ConfigTable"], world.client)


def run_at(world, fake_clock, at: dt.datetime, **kwargs) -> birthdays.Summary:
    fake_clock.moment = at  # the function's clock during the run (entries' created_at)
    return job(world).run(at, **kwargs)


# ------------------------------------------------------------------------------------------ the day


def test_hourly_runs_pay_each_member_once_on_their_local_birthday(world, fake_clock) -> None:
    fake_clock.moment = utc("2027-06-01T12:00")
    celebrants = {
        member(world, f"19{80 + i % 20}-06-10", ZONES[i % len(ZONES)]): ZONES[i % len(ZONES)] for i in range(36)
    }
    shards = {keys.due_shard(DEMO_TENANT, m) for m in celebrants}
    assert len(shards) >= 10, "the members should spread over gsi1's shards"
    # Not today anywhere during these runs: the day before Pago Pago's and the day after Kiritimati's.
    others = [member(world, "1990-06-13", "Pacific/Kiritimati"), member(world, "1990-06-07", "Pacific/Pago_Pago")]
    no_birthday = member(world, None)
    erased = member(world, "1991-06-10", "Europe/Berlin")
    erase(world.stores, world.actor, erased, reason="asked", audit_table=world.tables["LedgerTable"])
    free = f"nobonus-{uuid.uuid4().hex[:6]}"  # a program without a birthday bonus
    world.stores.config.put_program(
        demo_program(DEMO_TENANT).model_copy(update={"program_id": free, "birthday_bonus": 0})
    )
    unpaid = member(world, "1992-06-10", "Asia/Tokyo", prefix="free")
    world.stores.ledger.change_program(
        DEMO_TENANT, unpaid, version=0, from_program=DEMO_PROGRAM, to_program=free, tier="Silver"
    )

    # The hourly runs that matter: each zone's first run after its local midnight, the run just
    # before it, and the last run of the day somewhere; the others can only repeat what these show.
    day = dt.date(2027, 6, 10)
    firsts = {first_run_after_local_midnight(day, zone) for zone in ZONES}
    paid = 0
    for at in sorted({*firsts, *(at - HOUR for at in firsts), utc("2027-06-11T11:05")}):
        summary = run_at(world, fake_clock, at)
        assert summary.failed == [] and not summary.left
        assert summary.paid == sum(1 for z in celebrants.values() if first_run_after_local_midnight(day, z) == at)
        paid += summary.paid
    assert paid == len(celebrants)
    # A rerun of an instant (a retry, an overlapping run) pays nobody and reads nobody paid.
    again = run_at(world, fake_clock, max(firsts))
    assert (again.paid, again.candidates) == (0, 0)

    for member_id, zone in celebrants.items():
        [entry] = birthday_entries(world, member_id)  # one, whatever the runs after it
        assert (entry.points, entry.ref, entry.details) == (BONUS, "2027", {"birthday": "2027-06-10"})
        assert entry.actor == {"key_id": birthdays.SYSTEM_KEY, "role": "admin"}
        created = dt.datetime.fromisoformat(entry.created_at.replace("Z", "+00:00"))
        assert created == first_run_after_local_midnight(dt.date(2027, 6, 10), zone), zone  # the first run there
        assert created.astimezone(ZoneInfo(zone)).date() == dt.date(2027, 6, 10)  # on the local birthday
        assert check_invariant(world.stores.ledger, DEMO_TENANT, member_id)["balance"] == 100 + BONUS
    for member_id in [*others, no_birthday, erased, unpaid]:
        assert birthday_entries(world, member_id) == [], member_id
    # Every marker of 10 June is done for 2027 (the program without a bonus too): no run reads them.
    store = job(world).store
    assert [m for s in range(keys.DUE_SHARDS) for m in store.not_done("06-10", s, 2027)] == []
    assert {m for s in range(keys.DUE_SHARDS) for _, m in store.not_done("06-10", s, 2028)} == {*celebrants, unpaid}

    # A year later: once again, keyed by the new year, at each zone's first run (the hour before: nothing).
    firsts = {first_run_after_local_midnight(dt.date(2028, 6, 10), zone) for zone in ZONES}
    for at in sorted(firsts):
        summary = run_at(world, fake_clock, at)
        assert summary.paid == (
            sum(1 for z in celebrants.values() if first_run_after_local_midnight(dt.date(2028, 6, 10), z) == at)
        )
    for member_id, zone in celebrants.items():
        entries = birthday_entries(world, member_id)
        assert [e.ref for e in entries] == ["2027", "2028"], zone
        created = dt.datetime.fromisoformat(entries[1].created_at.replace("Z", "+00:00"))
        assert created == first_run_after_local_midnight(dt.date(2028, 6, 10), zone)
        check_invariant(world.stores.ledger, DEMO_TENANT, member_id)


def test_29_february_is_kept_on_28_february_in_common_years(world, fake_clock) -> None:
    fake_clock.moment = utc("2027-02-01T12:00")
    leapling = member(world, "1996-02-29", "Europe/Berlin")
    born_28 = member(world, "1990-02-28", "Europe/Berlin")
    # Berlin is UTC+1 in February: its days begin at 23:00 UTC, so the runs at 22:05 and 23:05 UTC
    # are the last of a Berlin day and the first of the next.
    for at in ["2027-02-27T22:05", "2027-02-27T23:05", "2027-02-28T22:05", "2027-02-28T23:05"]:
        run_at(world, fake_clock, utc(at))
    [entry] = birthday_entries(world, leapling)
    assert (entry.ref, entry.details, entry.created_at) == ("2027", {"birthday": "2027-02-28"}, "2027-02-27T23:05:00Z")
    assert [e.ref for e in birthday_entries(world, born_28)] == ["2027"]

    for at in ["2028-02-27T22:05", "2028-02-27T23:05", "2028-02-28T22:05", "2028-02-28T23:05", "2028-02-29T23:05"]:
        run_at(world, fake_clock, utc(at))  # 2028 is a leap year: the day itself
    entries = birthday_entries(world, leapling)
    assert [(e.ref, e.details["birthday"], e.created_at) for e in entries][1:] == [
        ("2028", "2028-02-29", "2028-02-28T23:05:00Z")
    ]
    assert [e.ref for e in birthday_entries(world, born_28)] == ["2027", "2028"]
    check_invariant(world.stores.ledger, DEMO_TENANT, leapling)


# ------------------------------------------------------------------------------------------ failures


def test_one_member_failing_does_not_stop_the_others(world, fake_clock, monkeypatch) -> None:
    fake_clock.moment = utc("2027-09-01T12:00")
    members = [member(world, "1990-09-20", "Europe/Moscow") for _ in range(6)]
    broken = members[2]
    grant = Ledger.grant

    def failing(self, actor, grants, **kwargs):
        if grants[0].member_id == broken:
            raise RuntimeError("the disk is on fire")
        return grant(self, actor, grants, **kwargs)

    monkeypatch.setattr(Ledger, "grant", failing)
    at = utc("2027-09-19T21:05")  # 00:05 in Moscow
    with pytest.raises(birthdays.BirthdaysUnfinished) as unfinished:
        run_at(world, fake_clock, at)
    assert unfinished.value.summary.failed == [f"{DEMO_TENANT}/{broken}"]
    assert unfinished.value.summary.paid == 5
    assert [len(birthday_entries(world, m)) for m in members] == [1, 1, 0, 1, 1, 1]

    monkeypatch.setattr(Ledger, "grant", grant)
    retry = run_at(world, fake_clock, at)  # Lambda's retry of the same event: only the one left
    assert (retry.candidates, retry.paid, retry.failed) == (1, 1, [])
    assert [len(birthday_entries(world, m)) for m in members] == [1] * 6


def test_a_run_short_of_time_stops_and_its_retry_finishes(world, fake_clock) -> None:
    fake_clock.moment = utc("2027-10-01T12:00")
    members = [member(world, "1985-10-05", "UTC") for _ in range(5)]
    budget = iter([100.0, 100.0, 5.0])  # two members, then time runs short
    at = utc("2027-10-05T00:05")
    with pytest.raises(birthdays.BirthdaysUnfinished, match="time ran short") as unfinished:
        run_at(world, fake_clock, at, seconds_left=lambda: next(budget))
    assert unfinished.value.summary.left and unfinished.value.summary.paid == 2
    retry = run_at(world, fake_clock, at)
    assert retry.paid == 3
    assert [len(birthday_entries(world, m)) for m in members] == [1] * 5


def test_a_lost_marker_write_pays_nothing_twice(world, fake_clock, monkeypatch) -> None:
    fake_clock.moment = utc("2027-11-01T12:00")
    member_id = member(world, "1977-11-11", "Asia/Tokyo")
    at = utc("2027-11-10T15:05")
    store_class = type(job(world).store)
    real = store_class.mark_done

    def lost(self, *args, **kwargs):
        raise RuntimeError("connection reset")

    monkeypatch.setattr(store_class, "mark_done", lost)
    with pytest.raises(birthdays.BirthdaysUnfinished):
        run_at(world, fake_clock, at)
    monkeypatch.setattr(store_class, "mark_done", real)
    # The next run reads the member again; the guard answers the first grant.
    run_at(world, fake_clock, at + HOUR)
    assert len(birthday_entries(world, member_id)) == 1
    assert run_at(world, fake_clock, at + 2 * HOUR).candidates == 0


def test_a_bonus_changed_after_payment_is_not_paid_again(world, fake_clock) -> None:
    fake_clock.moment = utc("2027-12-01T12:00")
    member_id = member(world, "1970-12-24", "Europe/Berlin")
    at = utc("2027-12-23T23:05")
    run_at(world, fake_clock, at)
    # The marker write was lost, and the program's bonus changed: the guard holds another amount.
    world.client.update_item(
        TableName=world.tables["LedgerTable"],
        Key={"pk": {"S": keys.member_pk(DEMO_TENANT, member_id)}, "sk": {"S": keys.BIRTHDAY_SK}},
        UpdateExpression="SET gsi1sk = :pk",
        ExpressionAttributeValues={":pk": {"S": keys.member_pk(DEMO_TENANT, member_id)}},
    )
    fake_clock.moment = at + HOUR
    world.stores.config.put_program(demo_program(DEMO_TENANT).model_copy(update={"birthday_bonus": BONUS + 1}))
    summary = run_at(world, fake_clock, at + HOUR)
    assert summary.failed == [] and [e.points for e in birthday_entries(world, member_id)] == [BONUS]
    assert run_at(world, fake_clock, at + 2 * HOUR).candidates == 0


def test_a_day_without_runs_is_missed_and_can_be_caught_up(world, fake_clock) -> None:
    fake_clock.moment = utc("2027-08-01T12:00")
    missed = member(world, "1988-08-15", "America/New_York")
    # No run during New York's whole 15 August (04:00 UTC on the 15th to 04:00 on the 16th).
    for at in ["2027-08-15T03:05", "2027-08-16T04:05", "2027-08-17T03:05"]:  # 23:05 the day before, then after
        assert run_at(world, fake_clock, utc(at)).paid == 0
    assert birthday_entries(world, missed) == []
    # The catch-up: the function invoked with an instant of that day (a replayed event).
    fake_clock.moment = utc("2027-08-17T12:30")
    late = birthdays.Job.for_tables(world.tables["LedgerTable"], world.tables["ConfigTable"], world.client)
    assert late.run(utc("2027-08-15T12:05")).paid == 1
    [entry] = birthday_entries(world, missed)
    assert (entry.ref, entry.details) == ("2027", {"birthday": "2027-08-15"})
