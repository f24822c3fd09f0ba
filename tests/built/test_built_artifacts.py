"""Smoke test of what `sam build` produced: each built function, run as Lambda would run it.

Every function in ``.aws-sam/build/template.yaml`` runs in a separate ``python3.12`` whose path is
only the built function folder and the built layer's ``python/`` folder (no venv, no source tree:
see ``scripts/lambda_bootstrap.py``), with the environment the built template declares resolved
against a local stack, on each sample event in ``events/<function folder>/``. This catches what
the source-tree tests cannot: a dependency missing from the layer, a module left out of the build,
a handler path or an environment variable that only the template knows.

Run with ``make built`` (after ``make build``); ``make test`` runs both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loyalty.admin import DEMO_WELCOME_BONUS
from scripts import invoke, samtemplate
from tests.support.aws import dynamodb_client

pytestmark = pytest.mark.built

EVENTS = samtemplate.EVENTS_DIR
FOLDERS = samtemplate.source_function_folders()  # logical id -> folder under functions/ and events/
DEMO_KEY_EVENT = EVENTS / "authorizer" / "token_demo_key.json"
PROBLEM_JSON = "application/problem+json"


def demo_key() -> str:
    """The key the sample events carry: the stack under test must know it as the demo key."""
    return json.loads(DEMO_KEY_EVENT.read_text())["authorizationToken"].removeprefix("Bearer ")


def unavailable(reason: str) -> None:
    if os.environ.get("LOYALTY_REQUIRE_BUILD"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def built() -> dict[str, invoke.BuiltFunction]:
    if not samtemplate.BUILT_TEMPLATE.is_file():
        unavailable(f"{samtemplate.BUILT_TEMPLATE} is missing: run `make build` (make test does)")
    return invoke.built_functions()


@pytest.fixture(scope="module")
def python312(built: dict[str, invoke.BuiltFunction]) -> str:
    [runtime] = {fn.function.runtime for fn in built.values()}
    try:
        return invoke.runtime_python(runtime)
    except RuntimeError as error:
        unavailable(str(error))
        raise


@pytest.fixture(scope="module")
def stack(start_local_stack) -> dict[str, Any]:
    """A local stack of our own (fresh state, so enrolment answers 201), knowing the sample key."""
    running = start_local_stack(env={"LOYALTY_DEMO_API_KEY": demo_key()})
    assert running["tenants"]["demo"]["api_keys"]["integration"] == demo_key(), "LOYALTY_DEMO_API_KEY ignored"
    return running


@pytest.fixture(scope="module")
def run(built, python312, stack) -> Callable[[str, str], invoke.Invocation]:
    template = samtemplate.load(samtemplate.BUILT_TEMPLATE)

    def run(logical_id: str, event_file: str) -> invoke.Invocation:
        event = EVENTS / FOLDERS[logical_id] / event_file
        outcome = invoke.invoke(built[logical_id], event, stack, template=template, python=python312)
        # The handler ran on Lambda's path only: built function, built layer, the stdlib.
        assert not [p for p in outcome.sys_path if ".venv" in p or "layers/common" in p], outcome.sys_path
        expected_head = [str(built[logical_id].code_dir), *map(str, built[logical_id].layer_dirs)]
        assert outcome.sys_path[: len(expected_head)] == expected_head
        assert not (outcome.error and outcome.error["errorType"] == "IsolationError"), outcome.error
        return outcome

    run.stack = stack  # type: ignore[attr-defined]  # for scenarios that set data up first
    return run


# ------------------------------------------------------------------------------ expectations


def header(outcome: invoke.Invocation, name: str) -> str | None:
    """A response header from either of the proxy response's header maps."""
    response = outcome.result
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    headers.update({k.lower(): v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()})
    return headers.get(name.lower())


def http(outcome: invoke.Invocation, status: int, content_type: str) -> dict[str, Any]:
    """The JSON body of a proxy response, after checking its status and content type."""
    assert outcome.ok, f"the handler raised: {outcome.error}\n{outcome.logs}"
    response = outcome.result
    assert response["statusCode"] == status, f"{response['statusCode']}: {response.get('body')}\n{outcome.logs}"
    assert header(outcome, "Content-Type") == content_type
    if status < 400:  # (error responses from request validation do not carry it yet)
        assert header(outcome, "X-Request-Id"), "responses echo the request id"
    return json.loads(response["body"])


def api_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    used = set()

    def call(event_file: str) -> invoke.Invocation:
        used.add(event_file)
        return run("ApiFunction", event_file)

    document = http(call("get_openapi.json"), 200, "application/json")
    assert document["openapi"].startswith("3.")
    assert "/v1/members" in document["paths"]

    enrolled = http(call("post_member.json"), 201, "application/json")
    assert enrolled["member_id"] == "cust-1001"
    assert enrolled["program_id"] and enrolled["tier"]
    again = http(call("post_member.json"), 200, "application/json")  # enrolling again changes nothing
    assert again == enrolled

    first = call("post_member_idempotency_key.json")
    assert http(first, 201, "application/json")["member_id"] == "cust-1002"
    replay = call("post_member_idempotency_key.json")  # a retry with the same Idempotency-Key
    assert http(replay, 201, "application/json") == json.loads(first.result["body"])
    assert header(replay, "Idempotent-Replayed") == "true"

    member = http(call("get_member.json"), 200, "application/json")
    assert member["member_id"] == "cust-1001" and member["balance"] == DEMO_WELCOME_BONUS  # only the welcome bonus

    problem = http(call("post_member_malformed.json"), 400, PROBLEM_JSON)
    assert problem["status"] == 400 and problem["type"].startswith("urn:problem:loyalty:")
    return used


def authorizer_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    allowed = run("AuthorizerFunction", "token_demo_key.json")
    assert allowed.ok, f"{allowed.error}\n{allowed.logs}"
    policy = allowed.result
    [statement] = policy["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "execute-api:Invoke"
    assert statement["Resource"].endswith("/prod/*/*"), "the cached policy must cover the whole API"
    assert policy["context"]["tenant_id"] == "demo"
    assert policy["context"]["role"] == "integration"
    assert policy["context"]["key_id"] == policy["principalId"]

    denied = run("AuthorizerFunction", "token_unknown_key.json")
    assert not denied.ok, f"an unknown key was let in: {denied.result}"
    assert denied.error["errorMessage"] == "Unauthorized", "API Gateway answers 401 only for exactly this message"
    return {"token_demo_key.json", "token_unknown_key.json"}


def admin_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    created = http(run("AdminFunction", "post_key.json"), 201, "application/json")
    assert created["role"] == "manager" and created["api_key"].startswith("lk_") and created["active"]
    listed = http(run("AdminFunction", "get_keys.json"), 200, "application/json")["keys"]
    assert created["key_id"] in {key["key_id"] for key in listed}
    assert all("api_key" not in key for key in listed), "a listing never shows a secret"
    records = http(run("AdminFunction", "get_audit.json"), 200, "application/json")["records"]
    assert any(r["target"] == created["key_id"] and r["action"] == "key.create" for r in records)
    access = http(run("AdminFunction", "get_access.json"), 200, "application/json")
    assert "keys:admin" in access["roles"]["admin"] and "keys:admin" not in access["roles"]["integration"]
    programs = http(run("AdminFunction", "get_programs.json"), 200, "application/json")["programs"]
    demo = next(program for program in programs if program["program_id"] == "demo")
    assert (demo["version"], demo["status"], demo["currency"]) == (1, "current", "RUB") and demo["tiers"]
    return {"post_key.json", "get_keys.json", "get_audit.json", "get_access.json", "get_programs.json"}


def events_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    # A stream record of a member the stack does not have: nothing is due, nothing fails.
    outcome = run("EventsFunction", "referral_pending.json")
    assert outcome.ok, f"{outcome.error}\n{outcome.logs}"
    assert outcome.result == {"batchItemFailures": []}
    return {"referral_pending.json"} | notices_scenario(run)


def birthdays_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    # The hourly run decides at the scheduled event's time: the dates "today" somewhere then.
    outcome = run("BirthdaysFunction", "scheduled.json")
    assert outcome.ok, f"{outcome.error}\n{outcome.logs}"
    summary = outcome.result
    assert (summary["at"], summary["dates"]) == ("2026-11-24T15:05:00Z", ["2026-11-24", "2026-11-25"])
    assert (summary["failed"], summary["left"]) == (0, False)
    return {"scheduled.json"}


def tiers_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    """A member of a windowed program reached Gold 31 days ago (set up here with the source tree's
    ledger, on the clock moved back): the built job lowers the tier once; a rerun changes nothing."""
    from datetime import timedelta

    from loyalty import clock
    from loyalty.ledger import Ledger, check_invariant
    from loyalty.members import Stores, enrol
    from loyalty.models import Actor, Profile, Program, Role, Tier
    from loyalty.store.config import ConfigStore
    from loyalty.store.ledger import LedgerStore

    stack = run.stack  # type: ignore[attr-defined]
    client = dynamodb_client(stack["aws_endpoint"])
    stores = Stores(
        ledger=LedgerStore(stack["tables"]["LedgerTable"], client),
        config=ConfigStore(stack["tables"]["ConfigTable"], client),
    )
    tiers = (Tier(name="Bronze", threshold=0, accrual_bp=100), Tier(name="Gold", threshold=5_000_00, accrual_bp=300))
    stores.config.put_program(
        Program(
            tenant_id="demo",
            program_id="built-window",
            name="Built window",
            currency="RUB",
            tiers=tiers,
            tier_basis="spend_window",
            tier_window_days=30,
            tier_downgrade="window",
        )
    )
    real_now = clock.now
    try:
        clock.now = lambda: real_now() - timedelta(days=31)
        enrol(stores, "demo", "built-gold", Profile(program_id="built-window"))
        actor = Actor(tenant_id="demo", key_id="key_built", role=Role.INTEGRATION)
        bought = Ledger(stores).accrue(
            actor, "built-gold", order_id="o-1", amount=6_000_00, currency_code="RUB", occurred_at=None
        )
    finally:
        clock.now = real_now
    assert bought["tier"] == "Gold"

    first = run("TiersFunction", "scheduled_nightly.json")
    assert first.ok, f"{first.error}\n{first.logs}"
    assert (first.result["due"], first.result["reviewed"], first.result["downgrades"]) == (1, 1, 1), first.result
    assert (first.result["failed"], first.result["left"]) == (0, False)
    again = run("TiersFunction", "scheduled_nightly.json")
    assert again.ok and (again.result["reviewed"], again.result["downgrades"]) == (0, 0), again.result
    assert stores.ledger.snapshot("demo", "built-gold").account.tier == "Bronze"
    check_invariant(stores.ledger, "demo", "built-gold")
    return {"scheduled_nightly.json"}


def touches_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    """A member enrolled now (the source tree's enrolment writes its marker): the built job decides
    its day-1 thanks once (a send record, a message on the send queue); a rerun finds nothing due."""
    from loyalty.members import Stores, enrol
    from loyalty.models import Profile
    from loyalty.store.config import ConfigStore
    from loyalty.store.ledger import LedgerStore

    stack = run.stack  # type: ignore[attr-defined]
    client = dynamodb_client(stack["aws_endpoint"])
    stores = Stores(
        ledger=LedgerStore(stack["tables"]["LedgerTable"], client),
        config=ConfigStore(stack["tables"]["ConfigTable"], client),
    )
    enrol(stores, "demo", "built-touch", Profile(email="built-touch@example.com"))
    first = run("TouchesFunction", "scheduled_hourly.json")
    assert first.ok, f"{first.error}\n{first.logs}"
    assert first.result["decided"] >= 1 and first.result["kinds"].get("welcome_day1", 0) >= 1, first.result
    again = run("TouchesFunction", "scheduled_hourly.json")
    assert again.ok and (again.result["due"], again.result["decided"]) == (0, 0), again.result
    items = client.query(
        TableName=stack["tables"]["LedgerTable"],
        KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
        ExpressionAttributeValues={":pk": {"S": "T#demo#M#built-touch"}, ":s": {"S": "SEND#"}},
    )["Items"]
    assert [item["sk"]["S"] for item in items] == ["SEND#welcome_day1#chain#1"]
    return {"scheduled_hourly.json"}


def broadcast_worker_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    """A broadcast to everyone, its item written as POST /v1/broadcasts writes it: the built worker
    scans segment 0's first page and moves its cursor; the same message again changes nothing."""
    from loyalty import broadcasts

    class Unsent:
        def send(self, *args: object) -> None:  # the first pages' messages: the scenario sends its own
            pass

    stack = run.stack  # type: ignore[attr-defined]
    store = broadcasts.BroadcastStore(stack["tables"]["LedgerTable"], dynamodb_client(stack["aws_endpoint"]))
    broadcasts.start(store, Unsent(), "demo", "built-broadcast", "Built", "A built broadcast.", {"all": True}, "key:b")  # type: ignore[arg-type]
    for _ in range(2):
        outcome = run("BroadcastWorkerFunction", "broadcast_page.json")
        assert outcome.ok, f"{outcome.error}\n{outcome.logs}"
        assert outcome.result == {"batchItemFailures": []}
        item = store.get("demo", "built-broadcast")
        assert item is not None and int(item["pages"]["0"]) == 1, item
    return {"broadcast_page.json"}


def burn_scheduler_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    # 21:30 UTC is 00:30 in Moscow (BurnTimeZone, the default of tenants that name no zone): the
    # hourly run begins the night of the 25th for every tenant, and a rerun of it has nothing left
    # to do (the checkpoints).
    first = run("BurnSchedulerFunction", "scheduled_hourly.json")
    assert first.ok, f"{first.error}\n{first.logs}"
    assert first.result["tenants"] == {"demo": ["2026-11-25"], "other": ["2026-11-25"]}, first.result
    again = run("BurnSchedulerFunction", "scheduled_hourly.json")
    assert again.ok and again.result["tenants"] == {} and again.result["burn"] == 0, again.result
    return {"scheduled_hourly.json"}


def burn_worker_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    # A burn and a reminder of a member the stack does not have (nothing to do), and a message the
    # worker does not know: only that one is reported back, for SQS to redeliver and dead-letter.
    outcome = run("BurnWorkerFunction", "burn_messages.json")
    assert outcome.ok, f"{outcome.error}\n{outcome.logs}"
    assert outcome.result == {"batchItemFailures": [{"itemIdentifier": "5f0c1e8a-8d4b-4d0e-9a53-3c2b1f0a9e03"}]}
    return {"burn_messages.json"}


def reports_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    # An enrolment, its welcome entry and its lot, delivered twice: applied once, no failure.
    for _ in range(2):
        outcome = run("ReportsFunction", "ledger_stream.json")
        assert outcome.ok, f"{outcome.error}\n{outcome.logs}"
        assert outcome.result == {"batchItemFailures": []}
    return {"ledger_stream.json"}


def reconcile_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    # The nightly run on the stack's table: it checks the days before the event's time.
    outcome = run("ReconcileFunction", "scheduled_nightly.json")
    assert outcome.ok, f"{outcome.error}\n{outcome.logs}"
    assert (outcome.result["day"], outcome.result["segments"]) == ("2026-11-24", 4)
    assert outcome.result["items_read"] >= outcome.result["members_checked"]
    return {"scheduled_nightly.json"}


def sender_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    # A send record the stack does not have (never decided): nothing to send, nothing fails.
    outcome = run("SenderFunction", "send_messages.json")
    assert outcome.ok, f"{outcome.error}\n{outcome.logs}"
    assert outcome.result == {"batchItemFailures": []}
    return {"send_messages.json"}


def notices_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    # The events function's bonus notices: an adjustment entry on the stream, delivered twice: one
    # decision (a send record and a message on the send queue), no failure.
    for _ in range(2):
        outcome = run("EventsFunction", "adjustment_entry.json")
        assert outcome.ok, f"{outcome.error}\n{outcome.logs}"
        assert outcome.result == {"batchItemFailures": []}
    client = dynamodb_client(run.stack["aws_endpoint"])  # type: ignore[attr-defined]
    items = client.query(
        TableName=run.stack["tables"]["LedgerTable"],  # type: ignore[attr-defined]
        KeyConditionExpression="pk = :pk AND begins_with(sk, :s)",
        ExpressionAttributeValues={":pk": {"S": "T#demo#M#cust-4002"}, ":s": {"S": "SEND#adjustment#"}},
    )["Items"]
    # One record; the stack's own sender may have taken it already (no such member: skipped).
    assert [item["sk"]["S"] for item in items] == ["SEND#adjustment#ent_4002adjustment0001"]
    assert items[0]["status"]["S"] in ("decided", "sending", "skipped")
    return {"adjustment_entry.json"}


def send_release_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    outcome = run("SendReleaseFunction", "scheduled_hourly.json")
    assert outcome.ok, f"{outcome.error}\n{outcome.logs}"
    assert isinstance(outcome.result["released"], int)
    return {"scheduled_hourly.json"}


def bounces_scenario(run: Callable[[str, str], invoke.Invocation]) -> set[str]:
    # A permanent bounce (of a member the stack does not have: the address is suppressed anyway)
    # and a delivery event, which asks nothing.
    outcome = run("BouncesFunction", "bounce_and_complaint.json")
    assert outcome.ok, f"{outcome.error}\n{outcome.logs}"
    assert outcome.result == {"batchItemFailures": []}
    return {"bounce_and_complaint.json"}


SCENARIOS: dict[str, Callable[[Callable[[str, str], invoke.Invocation]], set[str]]] = {
    "SenderFunction": sender_scenario,
    "SendReleaseFunction": send_release_scenario,
    "BouncesFunction": bounces_scenario,
    "BurnSchedulerFunction": burn_scheduler_scenario,
    "BurnWorkerFunction": burn_worker_scenario,
    "ApiFunction": api_scenario,
    "AuthorizerFunction": authorizer_scenario,
    "AdminFunction": admin_scenario,
    "EventsFunction": events_scenario,
    "TiersFunction": tiers_scenario,
    "BirthdaysFunction": birthdays_scenario,
    "ReportsFunction": reports_scenario,
    "ReconcileFunction": reconcile_scenario,
    "TouchesFunction": touches_scenario,
    "BroadcastWorkerFunction": broadcast_worker_scenario,
}


# ------------------------------------------------------------------------------ tests


def test_build_has_every_function_of_the_template(built: dict[str, invoke.BuiltFunction]) -> None:
    assert sorted(built) == sorted(FOLDERS), "the build is stale: run `make build`"
    for logical_id, fn in built.items():
        assert (fn.code_dir / f"{fn.function.handler.rpartition('.')[0]}.py").is_file(), logical_id
        assert fn.layer_dirs and all(d.is_dir() for d in fn.layer_dirs), f"{logical_id}: layer not built"
        assert not (fn.code_dir / "tests").exists() and not list(fn.code_dir.rglob("*.pyc"))


@pytest.mark.parametrize("logical_id", sorted(FOLDERS))
def test_built_function_on_its_sample_events(logical_id: str, run) -> None:
    events = {path.name for path in (EVENTS / FOLDERS[logical_id]).glob("*.json")}
    assert events, f"no sample event in events/{FOLDERS[logical_id]}/"
    scenario = SCENARIOS.get(logical_id)
    if scenario is None:  # a function without a scenario yet: its events must at least not raise
        for name in sorted(events):
            outcome = run(logical_id, name)
            assert outcome.ok, f"{name}: {outcome.error}\n{outcome.logs}"
        return
    used = scenario(run)
    assert used == events, f"sample events without an expectation here: {sorted(events - used)}"


def test_layer_has_no_development_packages(built: dict[str, invoke.BuiltFunction]) -> None:
    layer_dirs = {d for fn in built.values() for d in fn.layer_dirs}
    for layer in layer_dirs:
        present = {p.name for p in layer.iterdir()}
        for dev_only in ("moto", "pytest", "pynamodb", "samcli", "cfnlint"):
            assert dev_only not in present, f"{dev_only} is in the layer {layer}: it is a dev dependency"
        assert "loyalty" in present
        assert not any(Path(layer, "loyalty").rglob("__pycache__"))
