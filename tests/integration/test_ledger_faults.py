"""Faults at every DynamoDB call of every ledger operation: no partial effect, no double effect.

For each operation, each of its DynamoDB calls (numbered 1..n by a fault-free run) and each kind
of fault (a transaction conflict, a throttle, a lost response: see tests/support/faults.py), a
fresh member is set up by the ledger's own API in a fresh ledger table and the operation runs with
that one fault. It must give the result of the fault-free run (the "twin": the same member ids,
set up the same way in a table of its own) and leave exactly the items the twin left (account,
entries, lots, orders, guards, holds, audit records: item for item); the books must balance, and
the fault must cost exactly one more attempt. A lost response is then retried by the client as
is: it must answer the first result and write nothing more.

A fault on every call must end, after the configured number of attempts, in ``Unavailable`` with
nothing written; through the API function's handler that is a 503 ``application/problem+json``
that tells the client to retry the same request.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from loyalty import clock
from loyalty import settings as settings_module
from loyalty.admin import DEMO_TENANT, DEMO_WELCOME_BONUS, seed_demo
from loyalty.api import deps
from loyalty.api import idempotency as idempotency_api
from loyalty.errors import Unavailable
from loyalty.ledger import Ledger, check_invariant
from loyalty.members import Stores, enrol
from loyalty.models import Actor, Profile, Program, Role, Tier
from loyalty.store import dynamo, keys
from loyalty.store.config import ConfigStore
from loyalty.store.ledger import LedgerStore
from tests.support.aws import ROOT, create_tables, dynamodb_client, table_definitions
from tests.support.faults import Fault, FaultyClient

ACTOR = Actor(tenant_id=DEMO_TENANT, key_id="key_faults", role=Role.INTEGRATION)  # the shop
ADMIN = Actor(tenant_id=DEMO_TENANT, key_id="key_faults_admin", role=Role.ADMIN)  # adjustments, transfers
HELD_ORDER = "o1"  # the only order the scenarios place a hold for
WELCOME = DEMO_WELCOME_BONUS  # every member of the demo program starts with it
FAULTS = list(Fault)

# ----------------------------------------------------------------------------- tables


@dataclass
class Tables:
    """A ledger table of its own (the template's definition) next to the shared, seeded config table."""

    client: Any  # the plain client: setup and inspection, never faulted
    ledger_table: str
    config_table: str
    faulty: FaultyClient  # the same client, counting and failing on demand

    def stores(self, client: Any) -> Stores:
        return Stores(ledger=LedgerStore(self.ledger_table, client), config=ConfigStore(self.config_table, client))

    @property
    def plain(self) -> Ledger:
        return Ledger(self.stores(self.client))

    @property
    def ledger(self) -> Ledger:
        """The ledger as production builds it (default attempts), over the faulty client."""
        return Ledger(self.stores(self.faulty))

    def footprint(self, members: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """Every item the ledger keeps for these members: their partitions, holds and audit records."""
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for pk in [keys.member_pk(DEMO_TENANT, member) for member in members] + [keys.audit_pk(DEMO_TENANT)]:
            kwargs: dict[str, Any] = {
                "TableName": self.ledger_table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": dynamo.values({":pk": pk}),
                "ConsistentRead": True,
            }
            while True:
                page = self.client.query(**kwargs)
                for item in map(dynamo.unmarshal, page["Items"]):
                    if item["pk"] != keys.audit_pk(DEMO_TENANT) or item.get("member_id") in members:
                        items[(item["pk"], item["sk"])] = item
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        for member in members:
            hold_id = keys.stable_id("hold", DEMO_TENANT, member, HELD_ORDER)
            key = {"pk": keys.hold_pk(DEMO_TENANT, hold_id), "sk": keys.HOLD_SK}
            found = self.client.get_item(TableName=self.ledger_table, Key=dynamo.marshal(key), ConsistentRead=True)
            if "Item" in found:
                items[(key["pk"], key["sk"])] = dynamo.unmarshal(found["Item"])
        return items


def _fresh_ledger_table(client: Any) -> str:
    name = f"LedgerTable-{uuid.uuid4().hex[:12]}"
    client.create_table(TableName=name, **table_definitions()["LedgerTable"])
    return name


@pytest.fixture(scope="module")
def config(moto_endpoint) -> tuple[Any, str]:
    """The template's tables with the demo tenant seeded; the config table is shared by every case."""
    client = dynamodb_client(moto_endpoint)
    names = create_tables(client)
    seed_demo(dynamodb=client, config_table=names["ConfigTable"], ledger_table=names["LedgerTable"])
    return client, names["ConfigTable"]


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The back-off delays ``with_retries`` asked for, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setitem(dynamo.with_retries.__kwdefaults__, "sleep", recorded.append)
    return recorded


@pytest.fixture
def faulted(config, fake_clock, sleeps) -> Iterator[Tables]:
    """A fresh, empty ledger table: small, because moto copies a whole table for each
    transaction (a long-lived table makes every transaction slower)."""
    client, config_table = config
    name = _fresh_ledger_table(client)
    yield Tables(client, name, config_table, FaultyClient(client))
    client.delete_table(TableName=name)


# ----------------------------------------------------------------------------- the scenarios


@dataclass(frozen=True)
class Ids:
    member: str
    other: str  # a second member (the receiver of a transfer)

    @classmethod
    def fresh(cls) -> Ids:
        return cls(member=f"m-{uuid.uuid4().hex}", other=f"n-{uuid.uuid4().hex}")

    def hold(self) -> str:
        return keys.stable_id("hold", DEMO_TENANT, self.member, HELD_ORDER)


def _member_with_points(ledger: Ledger, member: str) -> None:
    """Enrolled in the demo program (its welcome bonus: WELCOME points), with 600 points from
    order o0 (20 000.00 RUB at 3 %)."""
    enrol(ledger.stores, DEMO_TENANT, member, Profile())
    ledger.accrue(ACTOR, member, order_id="o0", amount=2_000_000, currency_code="RUB", occurred_at=None)


def _base(ledger: Ledger, ids: Ids) -> None:
    _member_with_points(ledger, ids.member)


def _with_hold(ledger: Ledger, ids: Ids) -> None:
    _base(ledger, ids)
    ledger.hold(ACTOR, ids.member, order_id=HELD_ORDER, points=100, order_amount=100_000, currency_code="RUB")


def _with_redemption(ledger: Ledger, ids: Ids) -> None:
    _base(ledger, ids)
    ledger.redeem(ACTOR, ids.member, order_id="o0", points=100, order_amount=2_000_000, currency_code="RUB")


def _two_members(ledger: Ledger, ids: Ids) -> None:
    _member_with_points(ledger, ids.member)
    _member_with_points(ledger, ids.other)


WINDOW_PROGRAM = Program(
    tenant_id=DEMO_TENANT,
    program_id="window-faults",
    name="Tiers on 30 days of spend",
    currency="RUB",
    tiers=(
        Tier(name="Base", threshold=0, accrual_bp=300),
        Tier(name="Mid", threshold=5_000_00, accrual_bp=400),
        Tier(name="Top", threshold=10_000_00, accrual_bp=500),
    ),
    tier_basis="spend_window",
    tier_window_days=30,
    tier_downgrade="window",
)


def _review_due(ledger: Ledger, ids: Ids) -> None:
    """A member of a windowed program who spent 20 000.00 31 days ago and 6 000.00 5 days ago:
    its review (Top -> Mid, then the next one in 25 days) was due yesterday."""
    if ledger.stores.config.get_program(DEMO_TENANT, WINDOW_PROGRAM.program_id) is None:
        ledger.stores.config.put_program(WINDOW_PROGRAM)
    now = clock.now
    try:  # the clock goes back for the setup only (restored below: the test's fake clock stays)
        clock.now = lambda: now() - timedelta(days=31)
        enrol(ledger.stores, DEMO_TENANT, ids.member, Profile(program_id=WINDOW_PROGRAM.program_id))
        ledger.accrue(ACTOR, ids.member, order_id="o0", amount=2_000_000, currency_code="RUB", occurred_at=None)
        clock.now = lambda: now() - timedelta(days=5)
        ledger.accrue(ACTOR, ids.member, order_id="o1", amount=600_000, currency_code="RUB", occurred_at=None)
    finally:
        clock.now = now


def _review(ledger: Ledger, ids: Ids) -> dict[str, Any]:
    """The state a review leaves (a repeat finds nothing due, so its own answer says "not reviewed")."""
    result = ledger.review_tier(DEMO_TENANT, ids.member)
    return {"tier": result["tier"], "next_review": result["next_review"]}


@dataclass(frozen=True)
class Scenario:
    setup: Callable[[Ledger, Ids], None]
    run: Callable[[Ledger, Ids], Any]
    both_members: bool = False

    def members(self, ids: Ids) -> list[str]:
        return [ids.member, ids.other] if self.both_members else [ids.member]


# The calls of each run are counted by its fault-free run; the comments say what they were when
# this was written.
SCENARIOS: dict[str, Scenario] = {
    "accrue": Scenario(  # snapshot, program, the lot it credits, commit
        _base,
        lambda lg, ids: lg.accrue(
            ACTOR, ids.member, order_id=HELD_ORDER, amount=1_500_000, currency_code="RUB", occurred_at=None
        ),
    ),
    "hold": Scenario(  # the hold, snapshot, program, commit
        _base,
        lambda lg, ids: lg.hold(
            ACTOR, ids.member, order_id=HELD_ORDER, points=100, order_amount=100_000, currency_code="RUB"
        ),
    ),
    # hold, snapshot, lots, program (a redemption is activity under the inactivity policy), commit
    "capture": Scenario(_with_hold, lambda lg, ids: lg.capture(ACTOR, ids.hold())),
    "release": Scenario(_with_hold, lambda lg, ids: lg.release(ACTOR, ids.hold())),  # hold, snapshot, commit
    "redeem": Scenario(  # snapshot, program, lots, commit
        _base,
        lambda lg, ids: lg.redeem(
            ACTOR, ids.member, order_id=HELD_ORDER, points=100, order_amount=100_000, currency_code="RUB"
        ),
    ),
    "refund": Scenario(  # half of o0 back: 50 spent points return, 300 earned ones are taken back
        _with_redemption,
        lambda lg, ids: lg.refund(ACTOR, ids.member, refund_id="r1", order_id="o0", amount=1_000_000),
    ),
    "adjust": Scenario(  # a debit: snapshot, (access policy), program, lots, commit
        _base,
        lambda lg, ids: lg.adjust(ADMIN, ids.member, adjustment_id="a1", points=-50, reason="goodwill correction"),
    ),
    "transfer": Scenario(  # snapshot, target snapshot, program, lots, target lots, commit
        _two_members,
        lambda lg, ids: lg.transfer(ADMIN, ids.member, transfer_id="t1", to_member_id=ids.other, points=70),
        both_members=True,
    ),
    "quote": Scenario(  # snapshot, program
        _with_hold, lambda lg, ids: lg.quote(ACTOR, ids.member, order_amount=100_000, currency_code="RUB")
    ),
    "balance": Scenario(_with_hold, lambda lg, ids: lg.balance_view(DEMO_TENANT, ids.member)),  # snapshot, lots
    "entries": Scenario(  # snapshot, entries
        _with_hold, lambda lg, ids: lg.entries(DEMO_TENANT, ids.member, limit=10, cursor=None)
    ),
    "review": Scenario(_review_due, _review),  # snapshot, program, commit (tier_change, IDX#TIER marker)
}

# How many DynamoDB calls each operation makes: every one of them is a case. The fault-free twin
# proves the count, so an operation that gains or loses a call fails until this table says so
# (and no call ever goes without its faults).
CALLS = {
    "accrue": 4,
    "hold": 4,
    "capture": 5,
    "release": 3,
    "redeem": 4,
    "refund": 4,
    "adjust": 5,
    "transfer": 6,
    "quote": 2,
    "balance": 3,
    "entries": 2,
    "review": 3,
}
ONE_FAULT_CASES = [
    pytest.param(name, fault, k, id=f"{name}-{fault.value}-call{k}")
    for name in SCENARIOS
    for fault in FAULTS
    for k in range(1, CALLS[name] + 1)
]


@dataclass(frozen=True)
class Twin:
    """One fault-free run of an operation: what every faulted case of it must reproduce."""

    ids: Ids
    result: Any
    calls: list[str]  # the DynamoDB operations it called, in order
    items: dict[tuple[str, str], dict[str, Any]]


class Twins:
    """The fault-free run of each operation, made once per test process in a ledger table of its
    own; each faulted case then sets up the same member ids in a fresh table."""

    def __init__(self, client: Any, config_table: str) -> None:
        self.client = client
        self.config_table = config_table
        self.tables: Tables | None = None
        self.runs: dict[str, Twin] = {}

    def of(self, name: str) -> Twin:
        if name not in self.runs:
            if self.tables is None:
                table = _fresh_ledger_table(self.client)
                self.tables = Tables(self.client, table, self.config_table, FaultyClient(self.client))
            scenario, ids = SCENARIOS[name], Ids.fresh()
            scenario.setup(self.tables.plain, ids)
            self.tables.faulty.reset()
            result = scenario.run(self.tables.ledger, ids)
            calls = self.tables.faulty.operations
            assert len(calls) == CALLS[name], f"{name} now makes {len(calls)} DynamoDB calls {calls}: update CALLS"
            self.runs[name] = Twin(ids, result, calls, self.tables.footprint(scenario.members(ids)))
        return self.runs[name]

    def drop(self) -> None:
        if self.tables is not None:
            self.client.delete_table(TableName=self.tables.ledger_table)


@pytest.fixture(scope="module")
def twins(config) -> Iterator[Twins]:
    made = Twins(*config)
    yield made
    made.drop()


def _differences(got: dict, want: dict) -> str:
    lines = [f"  extra   {key}: {got[key]}" for key in sorted(got.keys() - want.keys())]
    lines += [f"  missing {key}: {want[key]}" for key in sorted(want.keys() - got.keys())]
    for key in sorted(got.keys() & want.keys()):
        if got[key] != want[key]:
            changed = sorted(f for f in got[key].keys() | want[key].keys() if got[key].get(f) != want[key].get(f))
            lines.append(
                f"  differs {key}: "
                + ", ".join(f"{f}={got[key].get(f)!r} (want {want[key].get(f)!r})" for f in changed)
            )
    return "\n".join(lines)


def _assert_same_items(got: dict, want: dict, what: str) -> None:
    assert got == want, f"{what}: the items differ from the fault-free twin's:\n{_differences(got, want)}"


def _same_result(name: str, got: Any, want: Any, *, lost_commit: bool) -> None:
    if name != "hold":
        assert got == want
        return
    (result, created), (want_result, want_created) = got, want
    assert result == want_result
    assert want_created is True
    # After a lost commit the retry finds the hold and cannot tell who made it: created may be False.
    assert created is True or lost_commit


# ----------------------------------------------------------------------------- one fault, each call


@pytest.mark.parametrize(("name", "fault", "k"), ONE_FAULT_CASES)
def test_one_fault_at_each_call_has_exactly_the_fault_free_effect(request, twins, fake_clock, sleeps, name, fault, k):
    twin = twins.of(name)
    assert sleeps == [], "the fault-free run retried"
    tables: Tables = request.getfixturevalue("faulted")
    scenario, ids = SCENARIOS[name], twin.ids
    members = scenario.members(ids)
    scenario.setup(tables.plain, ids)

    tables.faulty.reset()
    tables.faulty.fail_at(k, fault)
    got = scenario.run(tables.ledger, ids)
    calls = tables.faulty.calls
    injected = [(call.index, call.operation) for call in tables.faulty.injected]
    assert injected == [(k, twin.calls[k - 1])], "the fault did not hit call k"
    lost_commit = fault is Fault.LOST_RESPONSE and twin.calls[k - 1] == "TransactWriteItems"

    _same_result(name, got, twin.result, lost_commit=lost_commit)
    _assert_same_items(tables.footprint(members), twin.items, f"{name} with {fault.value} at call {k}")
    for member in members:
        check_invariant(tables.stores(tables.client).ledger, DEMO_TENANT, member)
    # Bounded: one fault costs exactly one more attempt, and at most one more full run of calls.
    assert len(sleeps) == 1, sleeps
    assert len(calls) <= k + len(twin.calls), [call.operation for call in calls]
    if not lost_commit:  # nothing was written: the retry runs the whole operation again
        assert [call.operation for call in calls[k:]] == twin.calls

    if fault is Fault.LOST_RESPONSE:  # the client never saw the answer: it sends the same call again
        tables.faulty.reset()
        again = scenario.run(tables.ledger, ids)
        assert again == ((got[0], False) if name == "hold" else got)
        assert "TransactWriteItems" not in tables.faulty.operations, "the repeat wrote again"
        _assert_same_items(tables.footprint(members), twin.items, f"{name} repeated after a lost response")


# ----------------------------------------------------------------------------- faults that persist


@pytest.mark.parametrize("fault", FAULTS, ids=[f.value for f in FAULTS])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_fault_on_every_call_ends_in_unavailable_after_bounded_attempts(faulted, sleeps, name, fault):
    scenario, ids = SCENARIOS[name], Ids.fresh()
    members = scenario.members(ids)
    scenario.setup(faulted.plain, ids)
    before = faulted.footprint(members)
    ledger = faulted.ledger

    faulted.faulty.fail_every(fault)
    with pytest.raises(Unavailable) as raised:
        scenario.run(ledger, ids)

    # Each attempt dies at its first call: as many calls as attempts, and no more than configured.
    assert len(faulted.faulty.calls) == ledger.attempts <= 15
    assert all(call.fault is fault for call in faulted.faulty.calls)
    assert len(sleeps) == ledger.attempts - 1
    assert all(0 <= delay <= 0.25 for delay in sleeps)
    assert raised.value.status == 503
    assert "retry the same request" in raised.value.detail
    assert raised.value.extra.get("retry_after", 0) > 0
    _assert_same_items(faulted.footprint(members), before, f"{name} under a persistent {fault.value}")
    for member in members:
        check_invariant(faulted.stores(faulted.client).ledger, DEMO_TENANT, member)

    faulted.faulty.reset()  # the store recovers: the same request now succeeds, once
    scenario.run(ledger, ids)
    for member in members:
        check_invariant(faulted.stores(faulted.client).ledger, DEMO_TENANT, member)


def test_the_configured_attempts_bound_the_retries(faulted, sleeps):
    ids = Ids.fresh()
    _base(faulted.plain, ids)
    ledger = Ledger(faulted.stores(faulted.faulty), attempts=3)
    faulted.faulty.fail_every(Fault.THROTTLE)
    with pytest.raises(Unavailable):
        SCENARIOS["accrue"].run(ledger, ids)
    assert len(faulted.faulty.calls) == 3
    assert len(sleeps) == 2


def test_cancellation_reasons_that_are_transient_are_retried():
    """DynamoDB reports a throttled or conflicting item of a transaction as a cancellation reason."""

    def cancelled(*codes: str) -> Exception:
        reasons = [{"Code": code} for code in codes]
        return ClientError(
            {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}, "CancellationReasons": reasons},
            "TransactWriteItems",
        )

    for code in ("TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"):
        assert dynamo.is_retryable(cancelled("None", code)), code
    assert not dynamo.is_retryable(cancelled("None", "ValidationError"))
    assert not dynamo.is_retryable(cancelled("ConditionalCheckFailed", "None"))


# ----------------------------------------------------------------------------- through the HTTP API


MEMBER = "/v1/members/{member_id}"
PURCHASES = MEMBER + "/purchases"
QUOTE = MEMBER + "/redemption-quote"
REDEMPTIONS = MEMBER + "/redemptions"
ENTRIES = MEMBER + "/entries"


class _Context:
    function_name = "ApiFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    memory_limit_in_mb = "512"
    aws_request_id = "00000000-0000-0000-0000-00000000fa17"
    log_group_name = "/aws/lambda/ApiFunction"
    log_stream_name = "2026/11/23/[$LATEST]faults"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def _clear_caches() -> None:
    """Forget the services the API made on first use (they hold the tables and client they saw)."""
    for module in (settings_module, deps, idempotency_api):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


@pytest.fixture
def api(faulted, monkeypatch) -> Iterator[Callable[..., tuple[int, dict[str, Any], dict[str, Any]]]]:
    """The API function's real handler, its stores built by deps.py over the faulty client."""
    monkeypatch.setenv("LEDGER_TABLE", faulted.ledger_table)
    monkeypatch.setenv("CONFIG_TABLE", faulted.config_table)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "LoyaltyTests")
    monkeypatch.setattr(dynamo, "client", lambda: faulted.faulty)  # what a store without a client uses
    _clear_caches()
    spec = importlib.util.spec_from_file_location("_faults_api_app", ROOT / "functions" / "api" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    template = json.loads((ROOT / "events" / "api" / "post_member.json").read_text())

    def call(
        method: str,
        resource: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **params: str,
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """One API Gateway proxy event through the handler: (status, headers lower-cased, body)."""
        event = json.loads(json.dumps(template))
        path = resource.format(**params)
        text = json.dumps(body) if body is not None else None
        event.update(httpMethod=method, path=path, resource=resource, pathParameters=params or None, body=text)
        event["requestContext"].update(httpMethod=method, resourcePath=resource, path=f"/prod{path}")
        extra = dict(headers or {})
        if text is not None:
            extra["Content-Length"] = str(len(text.encode()))
        event["headers"].update(extra)
        event["multiValueHeaders"].update({name: [value] for name, value in extra.items()})
        answer = module.handler(event, _Context())
        flat = {name.lower(): values[-1] for name, values in (answer.get("multiValueHeaders") or {}).items()}
        flat.update({name.lower(): value for name, value in (answer.get("headers") or {}).items()})
        return answer["statusCode"], flat, json.loads(answer["body"]) if answer.get("body") else {}

    # A fault-free request first: whatever the process caches on its first request (settings, the
    # tenant's access rules) is read now, so the faults below hit the route's own calls.
    status, _, _ = call("POST", QUOTE, {"order_amount": 100_000, "currency": "RUB"}, member_id="warm-up")
    assert status == 404
    faulted.faulty.reset()
    yield call
    _clear_caches()


def _assert_retry_later(status: int, headers: dict[str, Any], body: dict[str, Any]) -> None:
    if status == 500:
        raise Answered500(body)
    assert status == 503, body
    assert headers["content-type"] == "application/problem+json"
    assert body["type"] == "urn:problem:loyalty:unavailable"
    assert body["status"] == 503
    assert "retry the same request" in body["detail"]
    retry_after = headers.get("retry-after", body.get("retry_after"))
    assert retry_after is not None and int(retry_after) > 0, (headers, body)


class Answered500(AssertionError):
    """A transient store error reached the client as a 500 instead of a 503."""


PURCHASE = {"order_id": "o1", "amount": 1_500_000, "currency": "RUB"}


def test_http_persistent_throttling_is_a_503_problem_and_the_same_request_later_succeeds(faulted, api):
    ids = Ids.fresh()
    _base(faulted.plain, ids)
    before = faulted.footprint([ids.member])

    faulted.faulty.fail_every(Fault.THROTTLE)
    _assert_retry_later(*api("POST", PURCHASES, PURCHASE, member_id=ids.member))
    assert 1 < len(faulted.faulty.calls) <= 15
    _assert_same_items(faulted.footprint([ids.member]), before, "a purchase answered 503")

    faulted.faulty.reset()  # the client retries the same request once the store recovers
    status, _, body = api("POST", PURCHASES, PURCHASE, member_id=ids.member)
    assert (status, body["points"], body["balance"]) == (201, 450, WELCOME + 600 + 450)
    check_invariant(faulted.stores(faulted.client).ledger, DEMO_TENANT, ids.member)


@pytest.mark.parametrize(
    ("method", "resource", "body"),
    [
        ("POST", QUOTE, {"order_amount": 100_000, "currency": "RUB"}),
        ("POST", REDEMPTIONS, {"order_id": "o1", "points": 10, "order_amount": 100_000, "currency": "RUB"}),
        ("GET", ENTRIES, None),
    ],
    ids=["quote", "redeem", "entries"],
)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.value for f in FAULTS])
def test_http_ledger_routes_answer_503_under_a_persistent_fault(faulted, api, method, resource, body, fault):
    ids = Ids.fresh()
    _base(faulted.plain, ids)
    before = faulted.footprint([ids.member])
    faulted.faulty.fail_every(fault)
    _assert_retry_later(*api(method, resource, body, member_id=ids.member))
    _assert_same_items(faulted.footprint([ids.member]), before, f"{resource} answered 503")


def test_http_a_lost_commit_then_the_clients_retry_gives_the_first_answer(faulted, api):
    ids = Ids.fresh()
    _base(faulted.plain, ids)
    spend = {"order_id": "o1", "points": 100, "order_amount": 100_000, "currency": "RUB"}

    faulted.faulty.fail_next("TransactWriteItems", Fault.LOST_RESPONSE)
    first = api("POST", REDEMPTIONS, spend, member_id=ids.member)
    assert [c.operation for c in faulted.faulty.injected] == ["TransactWriteItems"]
    assert first[0] == 201, first
    assert (first[2]["points"], first[2]["balance"]) == (100, WELCOME + 600 - 100)

    faulted.faulty.reset()
    again = api("POST", REDEMPTIONS, spend, member_id=ids.member)
    assert (again[0], again[2]) == (first[0], first[2])
    assert "TransactWriteItems" not in faulted.faulty.operations
    figures = check_invariant(faulted.stores(faulted.client).ledger, DEMO_TENANT, ids.member)
    assert figures["balance"] == WELCOME + 600 - 100


def test_http_get_member_answers_503_under_persistent_throttling(faulted, api):
    ids = Ids.fresh()
    _base(faulted.plain, ids)
    faulted.faulty.fail_every(Fault.THROTTLE)
    _assert_retry_later(*api("GET", MEMBER, member_id=ids.member))


def test_http_idempotency_key_requests_answer_503_under_persistent_throttling(faulted, api):
    ids = Ids.fresh()
    _base(faulted.plain, ids)
    faulted.faulty.fail_every(Fault.THROTTLE)
    answer = api("POST", PURCHASES, PURCHASE, headers={"Idempotency-Key": "ik-1"}, member_id=ids.member)
    _assert_retry_later(*answer)
