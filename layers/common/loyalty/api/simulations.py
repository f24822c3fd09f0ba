"""/v1/simulations: price a program on a small history of orders, as ``python -m loyalty.simulate``
does for big ones (the same replay; the body holds the CSV, so at most about 60 KB of orders)."""

from __future__ import annotations

import io
import json
import re
from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import Field

from loyalty.api.body import OBJECT_BODY
from loyalty.api.schemas import Request
from loyalty.errors import InvalidRequest
from loyalty.simulate import (
    DEFAULT_REDEMPTION_RATE,
    Report,
    SimulationInputError,
    load_program,
    read_orders_csv,
    simulate_book,
)

router = APIGatewayRouter()


class SimulationRequest(Request):
    orders_csv: str = Field(
        min_length=1,
        max_length=60_000,
        description="CSV with a header: member_id,order_id,date,amount (amount in minor units).",
    )
    program: dict[str, Any] = Field(description="The candidate program: the fields of PUT /v1/programs/{id}.")
    baseline: dict[str, Any] | None = Field(default=None, description="The program to compare with.")
    redemption_rate: float = Field(
        default=DEFAULT_REDEMPTION_RATE, ge=0, le=1, strict=False, description="Share of the points each order uses."
    )


def run_simulation(body: SimulationRequest) -> Report:
    """Replay the orders; any unusable input is a 422 that names the row or field."""
    try:
        book = read_orders_csv(io.StringIO(body.orders_csv), "orders_csv")
        if len(book) == 0:
            raise SimulationInputError("orders_csv: no orders after the header")
        program = load_program(json.dumps(body.program), "program")
        baseline = load_program(json.dumps(body.baseline), "baseline") if body.baseline is not None else None
        return simulate_book(book, program, baseline, body.redemption_rate)
    except SimulationInputError as error:
        named = re.match(r"\w+", str(error))  # the simulator's messages start with the input they blame
        field = named.group(0) if named and named.group(0) in SimulationRequest.model_fields else "body"
        raise InvalidRequest(str(error), field=field) from None


@router.post(
    "/v1/simulations",
    summary="What a program would have cost on a history of orders, month by month, beside a baseline",
    middlewares=OBJECT_BODY,
)
def simulate(body: SimulationRequest) -> Report:
    return run_simulation(body)
