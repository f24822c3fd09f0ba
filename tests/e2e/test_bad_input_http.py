"""Bad input on every ledger endpoint, over real HTTP: each case is a 4xx RFC 9457 problem, and
NOTHING is written: the members' views and their whole ledgers are the same afterwards.

One module-scoped "world" holds a member with a bit of everything (the demo program's welcome
bonus, a purchase, a redemption, an open, a captured and a released hold, an adjustment, a refund,
a transfer) and a second member that receives transfers. Every case runs against it; ``{a}``,
``{b}``, ``{nobody}``, ``{captured}``, ``{released}``, ``{cursor}`` in a case stand for the
world's ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from .conftest import CURRENCY, WELCOME, Api, new_id

pytestmark = pytest.mark.e2e

BIG_ORDER = 1_000_000  # 10,000.00 RUB: 300 points at Silver, up to 1,500 points of it payable
TOO_MANY_POINTS = 1_000_000_001
TOO_MUCH_MONEY = 10**13 + 1
# What the world's member ``a`` may spend: its welcome bonus, and 300 - 20 - 5 + 7 - 30 - 2 = 250
# points of its own, 10 of them held.
AVAILABLE = WELCOME + 240


@dataclass
class World:
    api: Api
    staff: Api  # a senior key: adjustments and transfers are for staff, not for the shop's key
    ids: dict[str, str]
    baseline: dict[str, Any] = field(default_factory=dict)

    def client_for(self, path: str) -> Api:
        return self.staff if path.endswith(("/adjustments", "/transfers")) else self.api

    def state(self, *, with_b: bool = True) -> dict[str, Any]:
        """Both members' views and ledgers (``b`` only changes through a transfer or its own calls)."""
        state = {"a": self.api.state(self.ids["a"])}
        state["b"] = self.api.state(self.ids["b"]) if with_b else self.baseline["b"]
        return state


@pytest.fixture(scope="module")
def world(api: Api, local_stack: dict[str, Any]) -> World:
    a, b = api.enrol(), api.enrol()
    ok = {201, 200}
    staff = Api(local_stack, local_stack["tenants"]["demo"]["api_keys"]["senior"])

    def post(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = (staff if path.endswith(("/adjustments", "/transfers")) else api).post(path, body)
        assert answer.status_code in ok, answer.text
        return answer.json()

    spend = {"order_amount": BIG_ORDER, "currency": CURRENCY}
    api.purchase(a, "buy-1", BIG_ORDER)  # +300
    post(f"/v1/members/{a}/redemptions", {"order_id": "spent-1", "points": 20, **spend})  # -20
    post(f"/v1/members/{a}/holds", {"order_id": "held-1", "points": 10, **spend})  # held 10, left open
    captured = post(f"/v1/members/{a}/holds", {"order_id": "cap-1", "points": 5, **spend})
    post(f"/v1/holds/{captured['hold_id']}/capture")  # -5
    released = post(f"/v1/members/{a}/holds", {"order_id": "rel-1", "points": 5, **spend})
    post(f"/v1/holds/{released['hold_id']}/release")
    post(f"/v1/members/{a}/adjustments", {"adjustment_id": "adj-1", "points": 7, "reason": "goodwill"})  # +7
    refund = post(f"/v1/members/{a}/refunds", {"refund_id": "ref-1", "order_id": "buy-1", "amount": 100_000})
    assert refund["points_taken_back"] == 30  # a tenth of the order's 300 points
    post(f"/v1/members/{a}/transfers", {"transfer_id": "tr-1", "to_member_id": b, "points": 2})  # -2
    page = api.get(f"/v1/members/{a}/entries?limit=1")
    assert page.status_code == 200, page.text
    world = World(
        api,
        staff,
        {
            "a": a,
            "b": b,
            "nobody": new_id("nobody"),
            "captured": captured["hold_id"],
            "released": released["hold_id"],
            "cursor": page.json()["next_cursor"],
        },
    )
    world.baseline = world.state()
    member = world.baseline["a"]["member"]
    assert (member["balance"], member["held"], member["available"]) == (WELCOME + 250, 10, AVAILABLE)
    assert world.baseline["b"]["member"]["balance"] == WELCOME + 2
    assert len(world.baseline["a"]["entries"]) == 7  # the welcome bonus first
    return world


# ---------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: Any = None
    status: int = 422
    slug: str = "invalid-request"
    field: str | None = None  # the field a 422 must name
    raw: str | None = None  # a body sent as is, instead of ``body`` as JSON
    content_type: str = "application/json"


def case(case_id: str, method: str, path: str, body: Any = None, status: int = 422, **kwargs: Any) -> Any:
    slug = kwargs.pop("slug", None) or {404: "not-found", 409: "conflict", 422: "invalid-request"}[status]
    return pytest.param(Case(method, path, body, status, slug, **kwargs), id=case_id)


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def without(base: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in base.items() if key != name}


PURCHASE = {"order_id": "new-order", "amount": 100_000, "currency": CURRENCY}
QUOTE = {"order_amount": 100_000, "currency": CURRENCY}
SPEND = {"order_id": "new-cart", "points": 10, "order_amount": BIG_ORDER, "currency": CURRENCY}
REFUND = {"refund_id": "new-refund", "order_id": "buy-1", "amount": 1_000}
ADJUST = {"adjustment_id": "new-adjustment", "points": 5, "reason": "goodwill"}
TRANSFER = {"transfer_id": "new-transfer", "to_member_id": "{b}", "points": 1}

P = "/v1/members/{a}/purchases"
Q = "/v1/members/{a}/redemption-quote"
H = "/v1/members/{a}/holds"
R = "/v1/members/{a}/redemptions"
F = "/v1/members/{a}/refunds"
A = "/v1/members/{a}/adjustments"
T = "/v1/members/{a}/transfers"
E = "/v1/members/{a}/entries"


def money_cases(prefix: str, path: str, base: dict[str, Any], name: str, *, every_type: bool = False) -> list[Any]:
    cases = [
        case(f"{prefix}-{name}-zero", "POST", path, with_(base, **{name: 0}), field=name),
        case(f"{prefix}-{name}-negative", "POST", path, with_(base, **{name: -100}), field=name),
        case(f"{prefix}-{name}-huge", "POST", path, with_(base, **{name: TOO_MUCH_MONEY}), field=name),
        case(f"{prefix}-{name}-string", "POST", path, with_(base, **{name: "100000"}), field=name),
        case(f"{prefix}-{name}-fraction", "POST", path, with_(base, **{name: 1000.5}), field=name),
        case(f"{prefix}-{name}-missing", "POST", path, without(base, name), field=name),
    ]
    if every_type:
        cases += [
            case(f"{prefix}-{name}-enormous", "POST", path, with_(base, **{name: 10**30}), field=name),
            case(f"{prefix}-{name}-float", "POST", path, with_(base, **{name: 100000.0}), field=name),
            case(f"{prefix}-{name}-bool", "POST", path, with_(base, **{name: True}), field=name),
            case(f"{prefix}-{name}-null", "POST", path, with_(base, **{name: None}), field=name),
        ]
    return cases


def points_cases(prefix: str, path: str, base: dict[str, Any], *, every_type: bool = False) -> list[Any]:
    cases = [
        case(f"{prefix}-points-zero", "POST", path, with_(base, points=0), field="points"),
        case(f"{prefix}-points-negative", "POST", path, with_(base, points=-5), field="points"),
        case(f"{prefix}-points-huge", "POST", path, with_(base, points=TOO_MANY_POINTS), field="points"),
        case(f"{prefix}-points-string", "POST", path, with_(base, points="10"), field="points"),
        case(f"{prefix}-points-missing", "POST", path, without(base, "points"), field="points"),
    ]
    if every_type:
        cases += [
            case(f"{prefix}-points-fraction", "POST", path, with_(base, points=1.5), field="points"),
            case(f"{prefix}-points-float", "POST", path, with_(base, points=10.0), field="points"),
            case(f"{prefix}-points-bool", "POST", path, with_(base, points=True), field="points"),
        ]
    return cases


def currency_cases(prefix: str, path: str, base: dict[str, Any], *, every_type: bool = False) -> list[Any]:
    cases = [
        case(f"{prefix}-currency-unknown", "POST", path, with_(base, currency="XXX"), field="currency"),
        case(f"{prefix}-currency-lowercase", "POST", path, with_(base, currency="rub"), field="currency"),
        case(f"{prefix}-currency-not-the-programs", "POST", path, with_(base, currency="USD"), field="currency"),
    ]
    if every_type:
        cases += [
            case(f"{prefix}-currency-number", "POST", path, with_(base, currency=643), field="currency"),
            case(f"{prefix}-currency-long", "POST", path, with_(base, currency="RUBL"), field="currency"),
            case(f"{prefix}-currency-missing", "POST", path, without(base, "currency"), field="currency"),
        ]
    return cases


def id_cases(prefix: str, path: str, base: dict[str, Any], name: str, *, every_type: bool = False) -> list[Any]:
    cases = [
        case(f"{prefix}-{name}-missing", "POST", path, without(base, name), field=name),
        case(f"{prefix}-{name}-number", "POST", path, with_(base, **{name: 12345}), field=name),
        case(f"{prefix}-{name}-too-long", "POST", path, with_(base, **{name: "x" * 65}), field=name),
    ]
    if every_type:
        cases += [
            case(f"{prefix}-{name}-empty", "POST", path, with_(base, **{name: ""}), field=name),
            case(f"{prefix}-{name}-spaces", "POST", path, with_(base, **{name: "a b"}), field=name),
        ]
    return cases


def body_cases(prefix: str, path: str, base: dict[str, Any], *, every_kind: bool = False) -> list[Any]:
    cases = [
        case(f"{prefix}-unknown-field", "POST", path, with_(base, coupon="FREE"), field="coupon"),
        case(f"{prefix}-unknown-member", "POST", path.replace("{a}", "{nobody}"), base, 404),
        case(f"{prefix}-bad-member-id", "POST", path.replace("{a}", "no%20such"), base, field="path:member_id"),
        # A list around a valid body: Powertools alone would take its first element.
        case(f"{prefix}-body-array", "POST", path, [base], field="body"),
    ]
    if every_kind:
        cases += [
            case(f"{prefix}-body-array-of-two", "POST", path, [base, base], field="body"),
            case(f"{prefix}-body-string", "POST", path, "order", field="body"),
            case(f"{prefix}-body-empty", "POST", path, field="body"),
            case(f"{prefix}-broken-json", "POST", path, raw='{"order_id": "x",', status=400, slug="malformed-json"),
            case(f"{prefix}-too-deep", "POST", path, raw="[" * 40 + "]" * 40, status=400, slug="too-deep"),
            case(
                f"{prefix}-too-large", "POST", path, raw=json.dumps({"x": "y" * 70_000}), status=413, slug="too-large"
            ),
            case(
                f"{prefix}-form",
                "POST",
                path,
                raw="order_id=x&amount=1",
                content_type="application/x-www-form-urlencoded",
                status=415,
                slug="unsupported-media-type",
            ),
        ]
    return cases


# Every kind of bad value on purchases; on the other endpoints, each kind once per field.
CASES = [
    # ------------------------------------------------------------------ purchases
    *money_cases("purchase", P, PURCHASE, "amount", every_type=True),
    *currency_cases("purchase", P, PURCHASE, every_type=True),
    *id_cases("purchase", P, PURCHASE, "order_id", every_type=True),
    *body_cases("purchase", P, PURCHASE, every_kind=True),
    case(
        "purchase-occurred-at-naive", "POST", P, with_(PURCHASE, occurred_at="2026-01-01T10:00:00"), field="occurred_at"
    ),
    case("purchase-occurred-at-garbage", "POST", P, with_(PURCHASE, occurred_at="yesterday"), field="occurred_at"),
    case(
        "purchase-occurred-at-future",
        "POST",
        P,
        with_(PURCHASE, occurred_at="2999-01-01T00:00:00Z"),
        field="occurred_at",
    ),
    case(
        "purchase-occurred-at-ancient",
        "POST",
        P,
        with_(PURCHASE, occurred_at="2001-01-01T00:00:00Z"),
        field="occurred_at",
    ),
    case("purchase-order-replayed-other-amount", "POST", P, with_(PURCHASE, order_id="buy-1", amount=999), 409),
    # ------------------------------------------------------------------ redemption-quote
    *money_cases("quote", Q, QUOTE, "order_amount"),
    *currency_cases("quote", Q, QUOTE),
    *body_cases("quote", Q, QUOTE),
    # ------------------------------------------------------------------ holds
    *points_cases("hold", H, SPEND, every_type=True),
    *money_cases("hold", H, SPEND, "order_amount"),
    *currency_cases("hold", H, SPEND),
    *id_cases("hold", H, SPEND, "order_id"),
    *body_cases("hold", H, SPEND),
    case("hold-more-than-available", "POST", H, with_(SPEND, points=AVAILABLE + 1), 409, slug="insufficient-points"),
    case("hold-more-than-the-order-allows", "POST", H, with_(SPEND, points=16, order_amount=10_000), 409),
    case("hold-order-replayed-other-points", "POST", H, with_(SPEND, order_id="held-1", points=11), 409),
    # ------------------------------------------------------------------ capture and release
    case("capture-unknown-hold", "POST", "/v1/holds/hold_0123456789abcdef0123/capture", status=404),
    case("capture-malformed-hold", "POST", "/v1/holds/hold_xyz/capture", field="path:hold_id"),
    case("capture-uppercase-hold", "POST", "/v1/holds/HOLD_0123456789ABCDEF0123/capture", field="path:hold_id"),
    case("capture-long-hold", "POST", "/v1/holds/hold_0123456789abcdef01234/capture", field="path:hold_id"),
    case("capture-released-hold", "POST", "/v1/holds/{released}/capture", status=409),
    case("release-unknown-hold", "POST", "/v1/holds/hold_0123456789abcdef0123/release", status=404),
    case("release-malformed-hold", "POST", "/v1/holds/not-a-hold/release", field="path:hold_id"),
    case("release-captured-hold", "POST", "/v1/holds/{captured}/release", status=409),
    # ------------------------------------------------------------------ redemptions
    *points_cases("redeem", R, SPEND),
    *money_cases("redeem", R, SPEND, "order_amount"),
    *currency_cases("redeem", R, SPEND),
    *id_cases("redeem", R, SPEND, "order_id"),
    *body_cases("redeem", R, SPEND),
    case("redeem-more-than-available", "POST", R, with_(SPEND, points=AVAILABLE + 1), 409, slug="insufficient-points"),
    case("redeem-more-than-the-order-allows", "POST", R, with_(SPEND, points=16, order_amount=10_000), 409),
    case("redeem-beyond-the-held-orders-room", "POST", R, with_(SPEND, order_id="held-1", points=1491), 409),
    case("redeem-order-replayed-other-points", "POST", R, with_(SPEND, order_id="spent-1", points=21), 409),
    # ------------------------------------------------------------------ refunds
    *money_cases("refund", F, REFUND, "amount"),
    *id_cases("refund", F, REFUND, "refund_id"),
    *id_cases("refund", F, REFUND, "order_id"),
    *body_cases("refund", F, REFUND),
    case("refund-more-than-paid", "POST", F, with_(REFUND, amount=900_001), 409),
    case("refund-unknown-order", "POST", F, with_(REFUND, order_id="no-such-order"), 404),
    case("refund-replayed-other-amount", "POST", F, with_(REFUND, refund_id="ref-1", amount=100_001), 409),
    # ------------------------------------------------------------------ adjustments
    case("adjust-points-zero", "POST", A, with_(ADJUST, points=0), field="points"),
    case("adjust-points-huge", "POST", A, with_(ADJUST, points=TOO_MANY_POINTS), field="points"),
    case("adjust-points-huge-negative", "POST", A, with_(ADJUST, points=-TOO_MANY_POINTS), field="points"),
    case("adjust-points-string", "POST", A, with_(ADJUST, points="5"), field="points"),
    case("adjust-points-fraction", "POST", A, with_(ADJUST, points=0.5), field="points"),
    case("adjust-points-missing", "POST", A, without(ADJUST, "points"), field="points"),
    case("adjust-reason-missing", "POST", A, without(ADJUST, "reason"), field="reason"),
    case("adjust-reason-short", "POST", A, with_(ADJUST, reason="ok"), field="reason"),
    case("adjust-reason-long", "POST", A, with_(ADJUST, reason="x" * 501), field="reason"),
    case("adjust-reason-number", "POST", A, with_(ADJUST, reason=12345), field="reason"),
    *id_cases("adjust", A, ADJUST, "adjustment_id"),
    *body_cases("adjust", A, ADJUST),
    case(
        "adjust-take-more-than-available",
        "POST",
        A,
        with_(ADJUST, points=-(AVAILABLE + 1)),
        409,
        slug="insufficient-points",
    ),
    case("adjust-replayed-other-points", "POST", A, with_(ADJUST, adjustment_id="adj-1", points=8), 409),
    # ------------------------------------------------------------------ transfers
    *points_cases("transfer", T, TRANSFER),
    *id_cases("transfer", T, TRANSFER, "transfer_id"),
    *id_cases("transfer", T, TRANSFER, "to_member_id"),
    *body_cases("transfer", T, TRANSFER),
    case("transfer-to-self", "POST", T, with_(TRANSFER, to_member_id="{a}"), field="to_member_id"),
    case("transfer-to-unknown-member", "POST", T, with_(TRANSFER, to_member_id="{nobody}"), 404),
    case(
        "transfer-more-than-available",
        "POST",
        T,
        with_(TRANSFER, points=AVAILABLE + 1),
        409,
        slug="insufficient-points",
    ),
    case("transfer-replayed-other-points", "POST", T, with_(TRANSFER, transfer_id="tr-1", points=3), 409),
    # ------------------------------------------------------------------ entries
    case("entries-limit-zero", "GET", E + "?limit=0", field="query:limit"),
    case("entries-limit-negative", "GET", E + "?limit=-1", field="query:limit"),
    case("entries-limit-101", "GET", E + "?limit=101", field="query:limit"),
    case("entries-limit-1000", "GET", E + "?limit=1000", field="query:limit"),
    case("entries-limit-word", "GET", E + "?limit=all", field="query:limit"),
    case("entries-limit-fraction", "GET", E + "?limit=1.5", field="query:limit"),
    case("entries-limit-empty", "GET", E + "?limit=", field="query:limit"),
    case("entries-cursor-made-up", "GET", E + "?cursor=abc", field="cursor"),
    case("entries-cursor-bad-characters", "GET", E + "?cursor=%21%21%21", field="query:cursor"),
    case("entries-cursor-empty", "GET", E + "?cursor=", field="query:cursor"),
    case("entries-cursor-too-long", "GET", E + "?cursor=" + "A" * 201, field="query:cursor"),
    case("entries-cursor-of-another-member", "GET", "/v1/members/{b}/entries?cursor={cursor}", field="cursor"),
    case("entries-unknown-member", "GET", "/v1/members/{nobody}/entries", status=404),
    case("entries-bad-member-id", "GET", "/v1/members/no%20such/entries", field="path:member_id"),
]


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids) if value.startswith("{") and value.endswith("}") else value
    if isinstance(value, dict):
        return {key: fill(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, ids) for item in value]
    return value


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_is_a_problem_and_writes_nothing(world: World, bad: Case) -> None:
    api = world.client_for(bad.path)
    path = bad.path.format(**world.ids)
    if bad.raw is not None:
        answer = api.call(bad.method, path, data=bad.raw, headers={"Content-Type": bad.content_type})
    else:
        answer = api.call(bad.method, path, json_body=fill(bad.body, world.ids))
    assert 400 <= answer.status_code < 500
    problem = api.problem(answer, bad.status, bad.slug)
    if bad.field is not None:
        assert bad.field in api.fields_named(problem), problem
    if bad.status == 409 and bad.slug == "insufficient-points":
        assert problem["available"] == AVAILABLE

    after = world.state(with_b="/transfers" in bad.path or "{b}" in bad.path)
    if after != world.baseline:
        world.baseline = after  # the next cases compare with what is there now
        pytest.fail(f"{bad.method} {path} was refused with {answer.status_code} but changed the ledger")


def test_the_cases_cover_every_ledger_endpoint() -> None:
    covered = {(param.values[0].method, param.values[0].path.split("?")[0]) for param in CASES}
    for method, path in [
        ("POST", P),
        ("POST", Q),
        ("POST", H),
        ("POST", "/v1/holds/{released}/capture"),
        ("POST", "/v1/holds/{captured}/release"),
        ("POST", R),
        ("POST", F),
        ("POST", A),
        ("POST", T),
        ("GET", E),
    ]:
        assert (method, path) in covered, (method, path)
    ids = [param.id for param in CASES]
    assert len(ids) == len(set(ids))
