"""POST /v1/simulations over HTTP: the simulator's report for a small history, beside a baseline,
and every unusable input a 422 naming what to fix."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from loyalty.simulate import load_program, read_orders_csv, simulate_book

from .conftest import Api

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIER = {"name": "A", "threshold": 0, "accrual_bp": 1}


@pytest.fixture(scope="module")
def admin(api: Api, local_stack: dict[str, Any]) -> Api:
    return Api(local_stack, local_stack["tenants"]["demo"]["api_keys"]["admin"])


def small_history(rows: int = 120) -> str:
    lines = (EXAMPLES / "orders.csv").read_text().splitlines()
    return "\n".join(lines[: rows + 1]) + "\n"


def test_the_endpoint_answers_what_the_command_line_computes(admin: Api) -> None:
    orders = small_history()
    candidate = json.loads((EXAMPLES / "candidate.json").read_text())
    current = json.loads((EXAMPLES / "current.json").read_text())
    body = {"orders_csv": orders, "program": candidate, "baseline": current, "redemption_rate": 0.25}
    answer = admin.post("/v1/simulations", body)
    assert answer.status_code == 200, answer.text
    report = answer.json()

    expected = simulate_book(
        read_orders_csv(io.StringIO(orders)),
        load_program(json.dumps(candidate)),
        load_program(json.dumps(current)),
        0.25,
    ).model_dump(mode="json")
    assert report == expected
    assert report["orders"] == 120 and report["baseline"] is not None
    months = report["candidate"]["months"]
    assert months and all(m["outstanding"] >= 0 for m in months)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"orders_csv": "member_id,order_id,date,amount\n"}, "orders_csv"),
        ({"orders_csv": "member_id,order_id,date,amount\nm1,o1,not-a-date,100\n"}, "orders_csv"),
        ({"orders_csv": "member_id,order_id,date,amount\nm1,o1,2025-01-01,-5\n"}, "orders_csv"),
        ({"program": {"name": "x"}}, "program"),
        ({"program": {"name": "x", "currency": "RUB", "tiers": [{**TIER, "threshold": 5}]}}, "program"),
        ({"baseline": {"name": "y", "currency": "EUR", "tiers": [TIER]}}, "body"),
        ({"redemption_rate": 1.5}, "redemption_rate"),
        ({"orders_csv": "x" * 60_001}, "orders_csv"),
    ],
)
def test_unusable_input_is_a_422_naming_it(admin: Api, change: dict[str, Any], field: str) -> None:
    body = {
        "orders_csv": small_history(5),
        "program": json.loads((EXAMPLES / "current.json").read_text()),
        **change,
    }
    problem = Api.problem(admin.post("/v1/simulations", body), 422)
    assert field in Api.fields_named(problem), problem


def test_the_shop_key_may_not_simulate(api: Api) -> None:
    body = {"orders_csv": small_history(5), "program": json.loads((EXAMPLES / "current.json").read_text())}
    Api.problem(api.post("/v1/simulations", body), 403, "forbidden")
