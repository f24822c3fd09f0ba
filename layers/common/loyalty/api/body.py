"""A request body is one JSON object.

Powertools' request validation hands a route whose body is a model the FIRST element of a
top-level JSON array (it unwraps lists for non-list parameters), so ``[{...}, {...}]`` would pass
as ``{...}`` and book it. Routes that take a body add this middleware to refuse that as the 422
any other non-object body gets.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from loyalty.web import validation_problem


def object_body(app: APIGatewayRestResolver, next_middleware: Any) -> Response:
    event = app.current_event
    if event.body and not isinstance(event.json_body, dict):
        return validation_problem([{"loc": ("body",), "type": "model_attributes_type", "msg": "must be an object"}])
    return next_middleware(app)


OBJECT_BODY = [object_body]
