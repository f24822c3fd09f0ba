"""The ledger over real HTTP: parallel spending, retries, Idempotency-Key, and the life of a hold.

Money is RUB in kopecks. The demo program: a point is worth 1.00 RUB, Silver members earn 3 % of
a purchase in points, at most 15 % of an order may be paid in points, and every member starts with
a welcome bonus of ``WELCOME`` points (the first entry of each ledger).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from .conftest import CURRENCY, WELCOME, Api, new_id, retry_busy, silver_points

pytestmark = pytest.mark.e2e

BIG_ORDER = 1_000_000  # 10,000.00 RUB: its 15 % cap (1,500 points) never limits the spends below
RACE_WORKERS = 4  # concurrent invocations of the private stack's API function


@pytest.fixture(scope="module")
def private_api(start_local_stack: Any) -> Iterator[Api]:
    """A stack of this module's own, for the races and for time travel.

    - Races: 50 requests at once, served by ``RACE_WORKERS`` concurrent function invocations
      (the rest queue at the gateway, as beyond a reserved concurrency). Four real writers are
      as much contention as a 2-core machine can run at once; eight would mostly add cold starts.
      The workers are started before the race, so that no request's 10 s timeout is spent
      waiting for a CPU that is busy importing boto3 in seven fresh processes.
    - Time travel moves only this stack's clock; the races do not mind a clock that moved
      (nothing in them lives for the 15 minutes of a hold).
    """
    stack = start_local_stack(args=("--max-workers", str(RACE_WORKERS)))
    client = Api(stack, stack["tenants"]["demo"]["api_keys"]["integration"])
    member_id = client.enrol()
    warm = parallel(RACE_WORKERS, lambda _, session: client.get(f"/v1/members/{member_id}", session=session))
    assert [answer.status_code for answer in warm] == [200] * RACE_WORKERS
    yield client
    client.session.close()


def parallel(count: int, work: Callable[[int, requests.Session], Any]) -> list[Any]:
    """Run ``work(i, session)`` for i in range(count) on ``count`` threads released together."""
    start = threading.Barrier(count)

    def run(index: int) -> Any:
        with requests.Session() as session:
            start.wait(timeout=60)
            return work(index, session)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def check_chain(entries: list[dict[str, Any]], balance: int) -> None:
    """Newest first: each entry's balance_after is the one before plus its points; the last is the balance."""
    running = 0
    for entry in reversed(entries):
        running += entry["points"]
        assert entry["balance_after"] == running, entry
    assert running == balance == sum(entry["points"] for entry in entries)


# ---------------------------------------------------------------------------- concurrency


def test_parallel_redemptions_and_holds_never_overdraw(private_api: Api) -> None:
    api = private_api
    member_id = api.enrol()
    accruals = [api.purchase(member_id, f"buy-{i}", BIG_ORDER) for i in range(3)]
    assert sum(accrual["points"] for accrual in accruals) == 3 * silver_points(BIG_ORDER) == 900
    start_balance = WELCOME + 900
    assert api.member(member_id)["available"] == start_balance

    # 25 redemptions and 25 holds, each on its own order, asking 30..36 points: about 1,650 in all.
    asks = [
        ("redemptions" if i % 2 else "holds", f"spend-{i:02d}", 30 + i % 7)
        for i in range(50)  # interleaved, so both kinds race from the first request on
    ]
    assert sum(points for _, _, points in asks) > start_balance

    def spend(index: int, session: requests.Session) -> tuple[requests.Response, int]:
        kind, order_id, points = asks[index]
        body = {"order_id": order_id, "points": points, "order_amount": BIG_ORDER, "currency": CURRENCY}
        return retry_busy(lambda: api.post(f"/v1/members/{member_id}/{kind}", body, session=session))

    outcomes = parallel(len(asks), spend)
    busy = sum(retries for _, retries in outcomes)  # 5xx answers retried with the same request
    summary = f"{Counter(answer.status_code for answer, _ in outcomes)}, {busy} busy answers retried"

    accepted: dict[str, list[tuple[str, int]]] = {"redemptions": [], "holds": []}
    refused: list[tuple[str, int, int]] = []
    for (kind, order_id, points), (answer, _) in zip(asks, outcomes, strict=True):
        if answer.status_code == 201:
            body = answer.json()
            assert body["points"] == points, body
            if kind == "holds":
                assert body["status"] == "open" and body["order_id"] == order_id, body
            accepted[kind].append((order_id, points))
        else:
            problem = api.problem(answer, 409, "insufficient-points")
            assert isinstance(problem["available"], int) and 0 <= problem["available"] < points, problem
            refused.append((order_id, points, problem["available"]))
    redeemed = sum(points for _, points in accepted["redemptions"])
    held = sum(points for _, points in accepted["holds"])
    assert accepted["redemptions"] and accepted["holds"] and refused, summary
    assert len(accepted["redemptions"]) + len(accepted["holds"]) + len(refused) == 50, summary
    assert redeemed + held <= start_balance, summary

    member = api.member(member_id)
    assert member["balance"] == start_balance - redeemed
    assert member["held"] == held
    assert member["available"] == start_balance - redeemed - held >= 0
    # Available only fell during the race, so every refused ask is still more than what is left:
    # nothing was refused that would have fitted.
    assert all(points > member["available"] for _, points, _ in refused)

    entries = api.entries(member_id, limit=7)  # several pages
    assert len({entry["entry_id"] for entry in entries}) == len(entries)
    redemption_orders = Counter(entry["order_id"] for entry in entries if entry["type"] == "redemption")
    assert redemption_orders == Counter(order_id for order_id, _ in accepted["redemptions"])  # each exactly once
    assert {entry["order_id"]: -entry["points"] for entry in entries if entry["type"] == "redemption"} == dict(
        accepted["redemptions"]
    )
    assert sorted(entry["order_id"] for entry in entries if entry["type"] == "accrual") == ["buy-0", "buy-1", "buy-2"]
    assert entries[-1]["type"] == "welcome_bonus" and entries[-1]["points"] == WELCOME
    assert len(entries) == 1 + 3 + len(accepted["redemptions"])  # holds write no entry until captured
    check_chain(entries, member["balance"])


def test_entries_pages_cover_the_ledger_exactly_once(api: Api) -> None:
    member_id = api.enrol()
    for i in range(12):
        api.purchase(member_id, f"buy-{i:02d}", 100_000 * (i + 1))  # 30, 60, ... 360 points
    everything = api.entries(member_id, limit=100)
    expected = [f"buy-{i:02d}" for i in reversed(range(12))]
    expected.insert(expected.index("buy-09"), "buy-09")  # spend reaches Gold there: an entry of its own
    expected.append(None)  # the welcome bonus, first of all: no order
    assert [entry["order_id"] for entry in everything] == expected
    assert (everything[-1]["type"], everything[-1]["points"]) == ("welcome_bonus", WELCOME)
    upgrade, accrual = (entry for entry in everything if entry["order_id"] == "buy-09")
    assert (upgrade["type"], upgrade["points"], accrual["type"]) == ("tier_change", 0, "accrual")
    assert (upgrade["details"]["from"], upgrade["details"]["to"]) == ("Silver", "Gold")
    assert "lifetime_spend" in upgrade["details"]["why"]
    progress = api.member(member_id)["tier_progress"]
    assert progress["next_tier"] == "Platinum" and progress["remaining"] == 20_000_000 - 7_800_000
    assert progress["message"] == "spend 122 000.00 RUB more to reach Platinum"
    check_chain(everything, api.member(member_id)["balance"])
    assert len(everything) == 14
    for limit in (1, 2, 5, 12, 13, 14):
        assert api.entries(member_id, limit=limit) == everything, f"limit={limit}"
    first = api.get(f"/v1/members/{member_id}/entries?limit=5").json()
    assert len(first["entries"]) == 5 and first["next_cursor"]
    second = api.get(f"/v1/members/{member_id}/entries?limit=5&cursor={first['next_cursor']}").json()
    assert second["entries"] == everything[5:10] and second["next_cursor"]
    last = api.get(f"/v1/members/{member_id}/entries?limit=5&cursor={second['next_cursor']}").json()
    assert last == {"entries": everything[10:], "next_cursor": None}


# ---------------------------------------------------------------------------- retries


def test_the_same_purchase_sent_again_and_again_books_once(private_api: Api) -> None:
    api = private_api
    member_id = api.enrol()
    path = f"/v1/members/{member_id}/purchases"
    body = {"order_id": "order-A", "amount": 250_000, "currency": CURRENCY}

    in_a_row = [api.post(path, body) for _ in range(20)]
    # A replay answers as the first did: 201 with the very same result (the purchase route always
    # answers 201; the ledger's guard returns the stored result).
    assert [answer.status_code for answer in in_a_row] == [201] * 20
    first = in_a_row[0].json()
    assert first["points"] == silver_points(250_000) == 75 and first["balance"] == WELCOME + 75
    assert all(answer.json() == first for answer in in_a_row)

    replays = parallel(20, lambda _, session: retry_busy(lambda: api.post(path, body, session=session))[0])
    assert [answer.status_code for answer in replays] == [201] * 20
    assert all(answer.json() == first for answer in replays)

    # A new order, sent 20 times at once: the race itself, not only replays of a settled result.
    racing = {"order_id": "order-B", "amount": 400_000, "currency": CURRENCY}
    raced = parallel(20, lambda _, session: retry_busy(lambda: api.post(path, racing, session=session))[0])
    assert [answer.status_code for answer in raced] == [201] * 20
    results = [answer.json() for answer in raced]
    assert all(result == results[0] for result in results)
    assert results[0]["points"] == silver_points(400_000) == 120 and results[0]["balance"] == WELCOME + 75 + 120
    assert results[0]["entry_id"] != first["entry_id"]

    # The same order with another amount is a conflict, and books nothing.
    before = api.state(member_id)
    changed = api.post(path, {**body, "amount": 250_001})
    assert "order-A" in api.problem(changed, 409, "conflict")["detail"]
    other_currency = api.post(path, {**body, "currency": "USD"})
    api.problem(other_currency, 409, "conflict")
    assert api.state(member_id) == before

    entries = before["entries"]
    accruals = Counter(entry["order_id"] for entry in entries if entry["type"] == "accrual")
    assert accruals == Counter({"order-A": 1, "order-B": 1})
    by_order = {entry["order_id"]: entry for entry in entries}
    assert by_order["order-A"]["entry_id"] == first["entry_id"] and by_order["order-A"]["points"] == 75
    assert by_order["order-B"]["entry_id"] == results[0]["entry_id"] and by_order["order-B"]["points"] == 120
    assert before["member"]["balance"] == before["member"]["lifetime_earned"] == WELCOME + 195
    check_chain(entries, WELCOME + 195)


def test_idempotency_key_replays_the_first_answer(api: Api) -> None:
    member_id = api.enrol()
    api.purchase(member_id, "buy-1", BIG_ORDER)  # 300 points
    path = f"/v1/members/{member_id}/redemptions"
    key = new_id("idem")
    body = {"order_id": "pay-1", "points": 40, "order_amount": BIG_ORDER, "currency": CURRENCY}

    first = api.post(path, body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert first.json()["balance"] == WELCOME + 260

    for _ in range(3):
        again = api.post(path, body, headers={"Idempotency-Key": key})
        assert again.status_code == 201
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["Content-Type"] == "application/json"
        assert again.json() == first.json()
        assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]  # a new request, the old answer

    after = api.state(member_id)
    reused = api.post(path, {**body, "points": 41}, headers={"Idempotency-Key": key})
    assert "Idempotency-Key" in api.problem(reused, 422, "idempotency-key-reused")["detail"]
    elsewhere = api.post(
        f"/v1/members/{member_id}/purchases",
        {"order_id": "buy-2", "amount": BIG_ORDER, "currency": CURRENCY},
        headers={"Idempotency-Key": key},
    )
    api.problem(elsewhere, 422, "idempotency-key-reused")  # same key, another request
    bad_key = api.post(path, {**body, "order_id": "pay-2"}, headers={"Idempotency-Key": "not a key!"})
    api.problem(bad_key, 400, "bad-idempotency-key")
    assert api.state(member_id) == after
    assert after["member"]["balance"] == WELCOME + 260
    assert [entry["type"] for entry in after["entries"]] == ["redemption", "accrual", "welcome_bonus"]


def test_idempotency_key_replays_an_error_too_and_never_books_later(api: Api) -> None:
    """A refused request replayed with its key is refused again, even once it would now succeed."""
    member_id = api.enrol()
    path = f"/v1/members/{member_id}/redemptions"
    key = new_id("idem")
    body = {"order_id": "pay-1", "points": WELCOME + 10, "order_amount": BIG_ORDER, "currency": CURRENCY}
    refused = api.post(path, body, headers={"Idempotency-Key": key})
    assert api.problem(refused, 409, "insufficient-points")["available"] == WELCOME
    api.purchase(member_id, "buy-1", BIG_ORDER)
    replay = api.post(path, body, headers={"Idempotency-Key": key})
    assert replay.status_code == 409 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == refused.json()
    assert api.member(member_id)["balance"] == WELCOME + 300
    fresh = api.post(path, body, headers={"Idempotency-Key": new_id("idem")})
    assert fresh.status_code == 201, fresh.text


# ---------------------------------------------------------------------------- holds


def place_hold(api: Api, member_id: str, order_id: str, points: int) -> dict[str, Any]:
    body = {"order_id": order_id, "points": points, "order_amount": BIG_ORDER, "currency": CURRENCY}
    answer = api.post(f"/v1/members/{member_id}/holds", body)
    assert answer.status_code == 201, answer.text
    hold = answer.json()
    assert hold["status"] == "open" and hold["points"] == points and hold["order_id"] == order_id
    assert hold["hold_id"].startswith("hold_") and hold["entry_id"] is None
    return hold


def test_hold_capture_twice_then_release_is_409(api: Api) -> None:
    member_id = api.enrol()
    api.purchase(member_id, "buy-1", BIG_ORDER)  # 300
    hold = place_hold(api, member_id, "cart-1", 120)
    member = api.member(member_id)
    assert (member["balance"], member["held"], member["available"]) == (WELCOME + 300, 120, WELCOME + 180)

    captured = api.post(f"/v1/holds/{hold['hold_id']}/capture")
    assert captured.status_code == 200, captured.text
    result = captured.json()
    assert result["status"] == "captured" and result["hold_id"] == hold["hold_id"]
    assert result["points"] == 120 and result["balance"] == WELCOME + 180 and result["entry_id"]
    assert result["order_id"] == "cart-1" and result["expires_at"] == hold["expires_at"]

    again = api.post(f"/v1/holds/{hold['hold_id']}/capture")
    assert again.status_code == 200 and again.json() == result

    before = api.state(member_id)
    released = api.post(f"/v1/holds/{hold['hold_id']}/release")
    assert api.problem(released, 409, "conflict")["hold_status"] == "captured"
    assert api.state(member_id) == before

    member = before["member"]
    assert (member["balance"], member["held"], member["available"]) == (WELCOME + 180, 0, WELCOME + 180)
    redemptions = [entry for entry in before["entries"] if entry["type"] == "redemption"]
    assert len(redemptions) == 1
    assert redemptions[0]["entry_id"] == result["entry_id"]
    assert (redemptions[0]["points"], redemptions[0]["order_id"]) == (-120, "cart-1")
    check_chain(before["entries"], WELCOME + 180)


def test_hold_release_then_capture_is_409(api: Api) -> None:
    member_id = api.enrol()
    api.purchase(member_id, "buy-1", BIG_ORDER)  # 300
    hold = place_hold(api, member_id, "cart-1", 50)
    assert api.member(member_id)["available"] == WELCOME + 250

    released = api.post(f"/v1/holds/{hold['hold_id']}/release")
    assert released.status_code == 200, released.text
    assert released.json() == {**hold, "status": "released"}
    again = api.post(f"/v1/holds/{hold['hold_id']}/release")
    assert again.status_code == 200 and again.json() == released.json()

    before = api.state(member_id)
    captured = api.post(f"/v1/holds/{hold['hold_id']}/capture")
    assert api.problem(captured, 409, "conflict")["hold_status"] == "released"
    assert api.state(member_id) == before
    member = before["member"]
    assert (member["balance"], member["held"], member["available"]) == (WELCOME + 300, 0, WELCOME + 300)
    assert [entry["type"] for entry in before["entries"]] == ["accrual", "welcome_bonus"]


def test_an_order_whose_hold_was_released_may_be_held_again(api: Api) -> None:
    """A customer leaves the checkout (the shop releases the hold) and comes back to the same order."""
    member_id = api.enrol()
    api.purchase(member_id, "buy-1", BIG_ORDER)  # 300
    first = place_hold(api, member_id, "cart-1", 50)
    assert api.post(f"/v1/holds/{first['hold_id']}/release").status_code == 200

    second = place_hold(api, member_id, "cart-1", 60)
    assert second["hold_id"] != first["hold_id"] and second["status"] == "open"
    assert api.member(member_id)["held"] == 60
    retried = api.post(
        f"/v1/members/{member_id}/holds",
        {"order_id": "cart-1", "points": 60, "order_amount": BIG_ORDER, "currency": CURRENCY},
    )
    assert retried.status_code == 201 and retried.json() == second  # a retry answers the current hold
    captured = api.post(f"/v1/holds/{second['hold_id']}/capture")
    assert captured.status_code == 200, captured.text
    member = api.member(member_id)
    assert (member["balance"], member["held"], member["available"]) == (WELCOME + 240, 0, WELCOME + 240)
    # Once captured, the order's hold is final: asking again answers the capture.
    again = api.post(
        f"/v1/members/{member_id}/holds",
        {"order_id": "cart-1", "points": 60, "order_amount": BIG_ORDER, "currency": CURRENCY},
    )
    assert again.status_code == 201 and again.json() == captured.json()
    assert api.member(member_id)["balance"] == WELCOME + 240


def test_a_redemption_on_a_held_order_uses_the_hold_room(api: Api) -> None:
    """Order cap: points held for an order count against the same order's redemptions."""
    member_id = api.enrol()
    api.purchase(member_id, "buy-1", BIG_ORDER)  # 300
    small_order = 100_000  # 1,000.00 RUB: at most 150 points
    body = {"order_id": "cart-1", "points": 100, "order_amount": small_order, "currency": CURRENCY}
    assert api.post(f"/v1/members/{member_id}/holds", body).status_code == 201
    before = api.state(member_id)
    over = api.post(f"/v1/members/{member_id}/redemptions", {**body, "points": 51})
    assert api.problem(over, 409, "conflict")["max_points"] == 50
    assert api.state(member_id) == before
    fits = api.post(f"/v1/members/{member_id}/redemptions", {**body, "points": 50})
    assert fits.status_code == 201, fits.text
    assert fits.json()["balance"] == WELCOME + 250 and fits.json()["available"] == WELCOME + 150


def test_an_expired_hold_cannot_be_captured_and_frees_its_points(private_api: Api) -> None:
    """Time travel on a private stack: the shared one's clock stays put for the other tests."""
    api = private_api
    member_id = api.enrol()
    api.purchase(member_id, "buy-1", BIG_ORDER)  # 300
    hold = place_hold(api, member_id, "cart-1", 100)
    assert api.member(member_id)["available"] == WELCOME + 200

    travel = requests.post(api.url + "/_local/clock", json={"advance": "PT20M"}, timeout=60)
    assert travel.status_code == 200, travel.text

    member = api.member(member_id)
    assert (member["balance"], member["held"], member["available"]) == (WELCOME + 300, 0, WELCOME + 300)
    before = api.state(member_id)
    captured = api.post(f"/v1/holds/{hold['hold_id']}/capture")
    problem = api.problem(captured, 409, "conflict")
    assert problem["hold_status"] == "expired" and "expired" in problem["detail"]
    assert api.state(member_id) == before
    assert [entry["type"] for entry in before["entries"]] == ["accrual", "welcome_bonus"]

    # The freed points can be spent on another order at once: all of them.
    spend = {"order_id": "cart-2", "points": WELCOME + 300, "order_amount": 10 * BIG_ORDER, "currency": CURRENCY}
    redeemed = api.post(f"/v1/members/{member_id}/redemptions", spend)
    assert redeemed.status_code == 201, redeemed.text
    assert redeemed.json()["balance"] == 0 and redeemed.json()["available"] == 0
