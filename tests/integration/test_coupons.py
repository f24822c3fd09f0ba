"""The birthday greeting and its coupon against DynamoDB (moto): the birthday job decides one
greeting per birthday, due at 10:00 local time, with a single-use coupon valid for the tenant's
birthday_coupon_days, issued once (a rerun answers the same code); a coupon is collected once
(then 409 with when), an unknown or another tenant's code is 404, an expired one 410."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from loyalty import birthdays, coupons
from loyalty.admin import DEMO_TENANT, OTHER_TENANT
from loyalty.errors import Conflict, NotFound
from loyalty.members import enrol
from loyalty.models import Profile, TenantSettings


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


class Greetings:
    """What the job decided: ``sending.decide``'s arguments, once per (member, kind, reference)."""

    def __init__(self) -> None:
        self.decided: dict[tuple[str, str, str, str], dict[str, Any]] = {}

    def __call__(self, tenant_id, member_id, kind, reference, data, *, not_before=None) -> bool:
        key = (tenant_id, member_id, kind, reference)
        if key in self.decided:
            return False
        self.decided[key] = {"data": dict(data), "not_before": not_before}
        return True


@pytest.fixture
def greetings() -> Greetings:
    return Greetings()


def job(world, greet) -> birthdays.Job:
    return birthdays.Job.for_tables(world.tables["LedgerTable"], world.tables["ConfigTable"], world.client, greet)


def test_the_birthday_greeting_comes_once_at_ten_with_one_coupon(world, fake_clock, greetings) -> None:
    fake_clock.moment = utc("2027-06-01T12:00")
    world.stores.config.put_tenant_settings(DEMO_TENANT, TenantSettings(birthday_coupon_days=10))
    member_id = f"g-{uuid.uuid4().hex[:10]}"
    enrol(world.stores, DEMO_TENANT, member_id, Profile(time_zone="Asia/Tokyo", birthday=dt.date(1990, 6, 10)))
    run = utc("2027-06-09T15:05")  # just after midnight of 10 June in Tokyo
    fake_clock.moment = run
    assert job(world, greetings).run(run).greeted == 1
    assert job(world, greetings).run(run + dt.timedelta(hours=1)).greeted == 0  # done for the year
    assert (
        job(world, greetings).greeting(
            birthdays.Celebrant(DEMO_TENANT, member_id, "demo", dt.date(1990, 6, 10), "Asia/Tokyo", False),
            dt.date(2027, 6, 10),
        )
        is False
    )  # a retry of the same greeting: nothing new, and the same coupon
    ((key, decided),) = greetings.decided.items()
    assert key == (DEMO_TENANT, member_id, "birthday", "2027")
    assert decided["not_before"] == utc("2027-06-10T01:00")  # 10:00 in Tokyo
    code = decided["data"]["coupon_code"]
    assert decided["data"]["coupon_valid_until"] == "2027-06-20"
    store = coupons.CouponStore(world.tables["LedgerTable"], world.client)
    again = store.issue(DEMO_TENANT, member_id, "birthday#2027", utc("2030-01-01T00:00"))
    assert again.code == code  # issued once


def test_a_coupon_is_collected_once(world, fake_clock) -> None:
    store = coupons.CouponStore(world.tables["LedgerTable"], world.client)
    coupon = store.issue(DEMO_TENANT, "m-1", "birthday#2027", fake_clock.moment + dt.timedelta(days=14))
    assert coupon.code.startswith("BDAY-") and len(coupon.code) == 19
    used = store.redeem(DEMO_TENANT, coupon.code.lower(), order_id="A-1", actor="key:till")
    assert used.used_at == "2026-11-23T10:00:00Z" and used.member_id == "m-1"
    fake_clock.advance(minutes=5)
    with pytest.raises(Conflict) as second:
        store.redeem(DEMO_TENANT, coupon.code, order_id="A-2", actor="key:till")
    assert second.value.extra["used_at"] == "2026-11-23T10:00:00Z"
    with pytest.raises(NotFound):
        store.redeem(OTHER_TENANT, coupon.code, order_id=None, actor="key:other")  # another tenant's
    with pytest.raises(NotFound):
        store.redeem(DEMO_TENANT, "BDAY-0000-0000-0000", order_id=None, actor="key:till")


def test_an_expired_coupon_is_gone(world, fake_clock) -> None:
    store = coupons.CouponStore(world.tables["LedgerTable"], world.client)
    coupon = store.issue(DEMO_TENANT, "m-2", "birthday#2027", fake_clock.moment + dt.timedelta(days=1))
    fake_clock.advance(days=1, seconds=1)
    with pytest.raises(coupons.Gone) as gone:
        store.redeem(DEMO_TENANT, coupon.code, order_id=None, actor="key:till")
    assert gone.value.status == 410 and "expired" in gone.value.detail


def test_codes_are_random(world) -> None:
    codes = {coupons.new_code() for _ in range(2000)}
    assert len(codes) == 2000
