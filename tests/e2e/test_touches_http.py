"""Touches over real HTTP, on a stack of this module's own started at a chosen instant: the birthday
greeting reaches the outbox at 10:00 on the birthday in the member's zone with a single-use coupon
that the till collects once (409 the second time, 404 with another tenant's key); an event's
results reach its attendees once (unknown ids are reported back).

The clock travels through the template's hourly schedules (BirthdaysFunction decides the greeting
after local midnight, SendReleaseFunction enqueues it when it is due, SenderFunction sends it): the
test never sends anything itself. The shared stack's clock never moves.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from loyalty import touches
from tests.e2e.conftest import CURRENCY, Api, new_id
from tests.support.aws import dynamodb_client

pytestmark = pytest.mark.e2e

START = "2027-06-09T20:30:00Z"  # 21:30 in London, the eve of the birthday
CODE = re.compile(r"BDAY(?:-[0-9A-Z]{4}){3}")


@pytest.fixture(scope="module")
def stack(start_local_stack: Any) -> Iterator[dict[str, Api]]:
    running = start_local_stack(args=["--now", START])
    clients = {
        role: Api(running, running["tenants"]["demo"]["api_keys"][role]) for role in ("integration", "manager", "admin")
    }
    clients["other"] = Api(running, running["tenants"]["other"]["api_keys"]["integration"])
    yield clients
    for client in clients.values():
        client.session.close()


def travel(client: Api, to: str) -> list[dict[str, Any]]:
    answer = requests.post(client.url + "/_local/clock", json={"to": to}, timeout=600)
    assert answer.status_code == 200, answer.text
    moved = answer.json()
    assert moved["drained"] is True and all(entry["ok"] for entry in moved["fired"]), moved
    return moved["fired"]


def outbox(client: Api, member_id: str, kind: str, *, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The member's messages of ``kind`` once ``count`` have arrived (the queue is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(f"{client.url}/_local/outbox.json", params={"member_id": member_id}, timeout=10)
        assert answer.status_code == 200, answer.text
        messages = [message for message in answer.json() if message["kind"] == kind]
        if len(messages) >= count or time.monotonic() > deadline:
            return messages
        time.sleep(0.2)


def test_the_birthday_greeting_goes_at_ten_local_with_a_coupon_collected_once(stack: dict[str, Api]) -> None:
    shop = stack["integration"]
    member_id = shop.enrol(
        email=f"{new_id('bday')}@example.com",
        locale="en",
        time_zone="Europe/London",
        birthday="1990-06-10",
        consents={"marketing": True},
    )
    travel(shop, "2027-06-10T08:50:00Z")  # 09:50 in London: decided after midnight, not sent yet
    assert outbox(shop, member_id, "birthday", timeout=0) == []
    fired = travel(shop, "2027-06-10T09:20:00Z")  # the release job's 09:00 UTC run: 10:00 in London
    assert "SendReleaseFunction.Hourly" in {entry["schedule"] for entry in fired}
    [greeting] = outbox(shop, member_id, "birthday")
    assert greeting["sent_at"].startswith("2027-06-10T09:0"), greeting
    assert greeting["channel"] == "email" and greeting["to"].endswith("@example.com")
    codes = set(CODE.findall(greeting["body"]))
    assert len(codes) == 1, greeting["body"]
    (code,) = codes

    # The till: collected once (any case), then a 409 that says when; another tenant's key: 404.
    other = stack["other"].post(f"/v1/coupons/{code}/redeem", {})
    Api.problem(other, 404)
    collected = shop.post(f"/v1/coupons/{code.lower()}/redeem", {"order_id": new_id("o")})
    assert collected.status_code == 200, collected.text
    body = collected.json()
    assert (body["code"], body["member_id"], body["occasion"]) == (code, member_id, "birthday#2027")
    assert body["used_at"].startswith("2027-06-10T09:2")
    assert body["valid_until"].startswith("2027-06-24T09:00")  # the tenant's birthday_coupon_days (14) from 10:00
    again = Api.problem(shop.post(f"/v1/coupons/{code}/redeem", {}), 409)
    assert again["used_at"] == body["used_at"] and body["used_at"] in again["detail"]
    Api.problem(shop.post("/v1/coupons/BDAY-0000-0000-0000/redeem", {}), 404)
    Api.problem(shop.post("/v1/coupons/no%20such/redeem", {}), 422)
    Api.problem(stack["manager"].post(f"/v1/coupons/{code}/redeem", {}), 403, "forbidden")

    # A rerun of the day decides nothing twice: one greeting, one coupon.
    travel(shop, "2027-06-10T12:20:00Z")
    assert len(outbox(shop, member_id, "birthday", timeout=0)) == 1


def test_event_results_reach_each_attendee_once(stack: dict[str, Api]) -> None:
    shop, manager = stack["integration"], stack["manager"]
    travel(shop, "2027-06-10T13:30:00Z")  # daytime in Moscow (the tenant's zone) and London
    attendees = [
        shop.enrol(email=f"{new_id('ev')}@example.com", locale=locale, consents={"marketing": True})
        for locale in ("en", "ru")
    ]
    nobody = new_id("nobody")
    event_id = new_id("tasting")
    body = {
        "event_name": "Summer tasting",
        "results_url": "https://example.com/photos/summer",
        "attendees": [*attendees, nobody, attendees[0]],
    }
    answer = manager.post(f"/v1/events/{event_id}/results", body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"decided": 2, "already": 0, "unknown": [nobody]}
    repeat = manager.post(f"/v1/events/{event_id}/results", body)
    assert repeat.json() == {"decided": 0, "already": 2, "unknown": [nobody]}
    for member_id in attendees:
        [message] = outbox(shop, member_id, "event_results")
        assert "https://example.com/photos/summer" in message["body"], message
    assert requests.post(f"{shop.url}/_local/drain", json={}, timeout=120).status_code == 200
    assert all(len(outbox(shop, m, "event_results", timeout=0)) == 1 for m in attendees)

    # What to fix, said: not https, too many attendees, none; the till may not tell attendees.
    bad = manager.post(f"/v1/events/{event_id}/results", {**body, "results_url": "http://example.com/x"})
    assert "results_url" in Api.fields_named(Api.problem(bad, 422))
    many = manager.post(f"/v1/events/{event_id}/results", {**body, "attendees": [f"m{i}" for i in range(1_001)]})
    assert "attendees" in Api.fields_named(Api.problem(many, 422))
    empty = manager.post(f"/v1/events/{event_id}/results", {**body, "attendees": []})
    assert "attendees" in Api.fields_named(Api.problem(empty, 422))
    Api.problem(shop.post(f"/v1/events/{event_id}/results", body), 403, "forbidden")


def test_a_broadcast_to_a_tier_reaches_exactly_that_segment(stack: dict[str, Api]) -> None:
    shop, admin = stack["integration"], stack["admin"]
    travel(shop, "2027-06-10T14:30:00Z")  # daytime everywhere the members live
    program_id = new_id("club")
    tiers = [
        {"name": "Bronze", "threshold": 0, "accrual_bp": 100},
        {"name": "Gold", "threshold": 5_000_00, "accrual_bp": 300},
    ]
    created = admin.call(
        "PUT", f"/v1/programs/{program_id}", json_body={"name": "Club", "currency": CURRENCY, "tiers": tiers}
    )
    assert created.status_code == 201, created.text

    def member(program: str | None, gold: bool) -> str:
        extra = {"program_id": program} if program else {}
        member_id = shop.enrol(email=f"{new_id('bc')}@example.com", consents={"marketing": True}, **extra)
        if gold:
            assert shop.purchase(member_id, new_id("o"), 6_000_00)["tier"] == "Gold"
        return member_id

    gold = [member(program_id, True) for _ in range(3)]
    bronze = [member(program_id, False) for _ in range(2)]
    elsewhere = member(None, False)  # the demo program
    erased = member(program_id, True)
    assert admin.post(f"/v1/members/{erased}/erasure", {"reason": "asked"}).status_code == 200

    broadcast_id = new_id("gold-evening")
    body = {
        "broadcast_id": broadcast_id,
        "title": "Gold evening",
        "message": "Gold members: a private sale on Friday.",
        "segment": {"program_id": program_id, "tier": "Gold"},
    }
    started = admin.post("/v1/broadcasts", body)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "running"
    deadline = time.monotonic() + 60
    while (progress := admin.get(f"/v1/broadcasts/{broadcast_id}").json())["status"] != "done":
        assert time.monotonic() < deadline, progress
        time.sleep(0.3)
    assert progress["decided"] == len(gold) and progress["scanned"] >= len(gold) + len(bronze) + 2
    assert progress["finished_at"] >= progress["started_at"] == started.json()["started_at"]

    for member_id in gold:
        [message] = outbox(shop, member_id, "broadcast")
        assert "a private sale on Friday" in message["body"] and message["subject"], message
    assert requests.post(f"{shop.url}/_local/drain", json={}, timeout=120).status_code == 200
    for member_id in [*bronze, elsewhere, erased]:
        assert outbox(shop, member_id, "broadcast", timeout=0) == [], member_id

    # The same body again is the same broadcast; another body, a 409; what to fix, said.
    again = admin.post("/v1/broadcasts", body)
    assert again.status_code == 202 and again.json()["started_at"] == progress["started_at"]
    Api.problem(admin.post("/v1/broadcasts", {**body, "message": "Other words"}), 409)
    wrong_tier = admin.post(
        "/v1/broadcasts", {**body, "broadcast_id": new_id("b"), "segment": {**body["segment"], "tier": "Platinum"}}
    )
    assert "segment.tier" in Api.fields_named(Api.problem(wrong_tier, 422))
    both = admin.post(
        "/v1/broadcasts", {**body, "broadcast_id": new_id("b"), "segment": {"all": True, "program_id": program_id}}
    )
    Api.problem(both, 422)
    Api.problem(admin.get(f"/v1/broadcasts/{new_id('none')}"), 404)
    Api.problem(stack["manager"].get(f"/v1/broadcasts/{broadcast_id}"), 403, "forbidden")


# ---------------------------------------------------------------- the proof: 120 days
JOURNEY_START = "2027-01-04T10:30:00Z"  # 10:30 in London: every run below is in the daytime there
CHAIN_DAYS = [1, 3, 7, 14, 39, 64, 89]  # chain_interval_days 25 by default
DIGEST_DAYS = [104, 118]  # digest_interval_days 14 by default
PURCHASE_DAY = 20  # the member's own activity: an accrual notice (a bonus notice)
OPT_OUT_DAY = 10


@pytest.fixture(scope="module")
def journey(start_local_stack: Any) -> Iterator[dict[str, Any]]:
    running = start_local_stack(args=["--now", JOURNEY_START])
    client = Api(running, running["tenants"]["demo"]["api_keys"]["integration"])
    yield {"stack": running, "shop": client}
    client.session.close()


def at_iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fire_touches_on(shop: Api, enrolled: dt.datetime, day: int) -> None:
    """Jump (no schedule fired) to just before the touches job's first run of ``day``, then let the
    stack fire the schedules of a short window around it: TouchesFunction decides, the sender sends."""
    begins = touches.due_at(enrolled, day)
    run = begins.replace(minute=10, second=0, microsecond=0)
    if run <= begins:
        run += dt.timedelta(hours=1)
    moved = requests.post(
        shop.url + "/_local/clock", json={"to": at_iso(run - dt.timedelta(minutes=3)), "fire": False}, timeout=120
    )
    assert moved.status_code == 200, moved.text
    fired = travel(shop, at_iso(run + dt.timedelta(minutes=3)))
    assert "TouchesFunction.Hourly" in {entry["schedule"] for entry in fired}, fired


def sent_days(shop: Api, member_id: str, enrolled: dt.datetime) -> list[tuple[int, str]]:
    answer = requests.get(f"{shop.url}/_local/outbox.json", params={"member_id": member_id}, timeout=10)
    assert answer.status_code == 200, answer.text
    messages = sorted(answer.json(), key=lambda message: message["sent_at"])
    return [
        (touches.day_at(enrolled, dt.datetime.fromisoformat(m["sent_at"].replace("Z", "+00:00"))), m["kind"])
        for m in messages
    ]


def test_120_days_of_a_new_member_and_what_each_opt_out_stops(journey: dict[str, Any]) -> None:
    shop = journey["shop"]
    everything, no_marketing, no_notices = (
        shop.enrol(
            email=f"{new_id('journey')}@example.com",
            locale="en",
            time_zone="Europe/London",
            consents={"marketing": True, "bonus_notices": True},
        )
        for _ in range(3)
    )
    enrolled = {
        m: dt.datetime.fromisoformat(shop.member(m)["enrolled_at"].replace("Z", "+00:00"))
        for m in (everything, no_marketing, no_notices)
    }
    first = enrolled[everything]
    assert max(enrolled.values()) - min(enrolled.values()) < dt.timedelta(minutes=5)

    for day in sorted({*CHAIN_DAYS, *DIGEST_DAYS, OPT_OUT_DAY, PURCHASE_DAY}):
        if day == OPT_OUT_DAY:
            travel(shop, at_iso(touches.due_at(first, day) + dt.timedelta(hours=1)))
            for member_id, change in ((no_marketing, {"marketing": False}), (no_notices, {"bonus_notices": False})):
                answer = shop.call("PUT", f"/v1/members/{member_id}/consents", json_body={**change, "reason": "asked"})
                assert answer.status_code == 200, answer.text
            continue
        if day == PURCHASE_DAY:
            travel(shop, at_iso(touches.due_at(first, day) + dt.timedelta(hours=1)))
            for member_id in (everything, no_marketing, no_notices):
                shop.purchase(member_id, new_id("o"), 100_000)
            assert requests.post(f"{shop.url}/_local/drain", json={}, timeout=120).status_code == 200
            continue
        fire_touches_on(shop, first, day)

    # Every step of the chain goes, day 7 included: the chain counts toward the marketing cap (2 a
    # rolling week) but is never refused by it (sending.CAP_EXEMPT_KINDS).
    chain = [(day, touches.kind_of(day)) for day in CHAIN_DAYS]
    digests = [(day, "digest") for day in DIGEST_DAYS]
    accrual = [(PURCHASE_DAY, "accrual")]
    assert sent_days(shop, everything, enrolled[everything]) == sorted(chain + accrual + digests)
    before_opt_out = [step for step in chain if step[0] < OPT_OUT_DAY]
    assert sent_days(shop, no_marketing, enrolled[no_marketing]) == before_opt_out + accrual
    assert sent_days(shop, no_notices, enrolled[no_notices]) == chain + digests

    # What the touches job decided, and why the sender skipped what it skipped.
    ledger = dynamodb_client(journey["stack"]["aws_endpoint"])
    for member_id, reason in ((everything, None), (no_marketing, "consent"), (no_notices, None)):
        records = ledger.query(
            TableName=journey["stack"]["tables"]["LedgerTable"],
            KeyConditionExpression="pk = :pk AND begins_with(sk, :send)",
            ExpressionAttributeValues={":pk": {"S": f"T#demo#M#{member_id}"}, ":send": {"S": "SEND#"}},
            ConsistentRead=True,
        )["Items"]
        decided = {item["reference"]["S"]: (item["status"]["S"], item.get("reason", {}).get("S")) for item in records}
        marketing = [ref for ref in decided if ref.startswith(("chain#", "digest#"))]
        assert len(marketing) == len(CHAIN_DAYS) + len(DIGEST_DAYS), decided  # every step decided
        if reason:  # the opt-out: every later step decided, then skipped for consent
            after = [decided[ref] for ref in marketing if decided[ref][0] != "sent"]
            assert after == [("skipped", reason)] * (len(marketing) - len(before_opt_out)), decided
