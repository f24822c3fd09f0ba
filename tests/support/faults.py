"""A DynamoDB client that fails on purpose, for fault-injection tests.

``FaultyClient(client)`` stands in for the low-level boto3 client the stores are given. Every
API call (``get_item``, ``batch_get_item``, ``query``, ``transact_write_items``...) is numbered
from 1 since the last ``reset()``, and recorded in ``calls``. A plan says which calls fail:

- ``fail_at(k, kind)``: call number ``k`` fails once with ``kind``;
- ``fail_next(operation, kind)``: the next call of ``operation`` (e.g. "TransactWriteItems") fails once;
- ``fail_every(kind)``: every call fails with ``kind``.

The kinds are what DynamoDB and the network really do:

- ``Fault.CONFLICT``: ``TransactWriteItems`` is cancelled with a ``TransactionConflict``
  cancellation reason; any other call gets ``TransactionConflictException``. Nothing reaches
  the server.
- ``Fault.THROTTLE``: ``ProvisionedThroughputExceededException``. Nothing reaches the server.
- ``Fault.LOST_RESPONSE``: the call REALLY runs on the server (a write is applied), then the
  caller gets a ``ReadTimeoutError``, as if the response had been lost on the way back.

Faults are raised above botocore, so they are what the engine sees once botocore's own retries
(if any) have given up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError


class Fault(StrEnum):
    CONFLICT = "conflict"
    THROTTLE = "throttle"
    LOST_RESPONSE = "lost-response"


@dataclass(frozen=True)
class Call:
    index: int  # 1-based, since the last reset()
    operation: str  # the DynamoDB API name, e.g. "TransactWriteItems"
    fault: Fault | None  # what was injected, if anything
    reached_server: bool


class FaultyClient:
    """Wraps a boto3 DynamoDB client; see the module's docstring."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._api = client.meta.method_to_api_mapping  # "get_item" -> "GetItem"
        self.calls: list[Call] = []
        self._at: dict[int, Fault] = {}
        self._next: dict[str, Fault] = {}
        self._every: Fault | None = None

    # ------------------------------------------------------------------ the plan
    def reset(self) -> None:
        """Forget the calls counted so far and every planned fault."""
        self.calls = []
        self._at = {}
        self._next = {}
        self._every = None

    def fail_at(self, index: int, fault: Fault) -> None:
        if index < 1:
            raise ValueError("calls are numbered from 1")
        self._at[index] = Fault(fault)

    def fail_next(self, operation: str, fault: Fault) -> None:
        self._next[operation] = Fault(fault)

    def fail_every(self, fault: Fault) -> None:
        self._every = Fault(fault)

    @property
    def injected(self) -> list[Call]:
        return [call for call in self.calls if call.fault is not None]

    @property
    def operations(self) -> list[str]:
        return [call.operation for call in self.calls]

    # ------------------------------------------------------------------ the client
    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        operation = self._api.get(name)
        if operation is None or not callable(attribute):
            return attribute  # meta, exceptions, get_paginator...

        def call(**kwargs: Any) -> Any:
            return self._call(operation, attribute, kwargs)

        call.__name__ = name
        return call

    def _call(self, operation: str, method: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        index = len(self.calls) + 1
        fault = self._at.pop(index, None) or self._next.pop(operation, None) or self._every
        if fault is None:
            self.calls.append(Call(index, operation, None, True))
            return method(**kwargs)
        if fault is Fault.LOST_RESPONSE:
            self.calls.append(Call(index, operation, fault, True))
            method(**kwargs)  # the request is applied; only its answer goes missing
            raise ReadTimeoutError(endpoint_url=self._client.meta.endpoint_url)
        self.calls.append(Call(index, operation, fault, False))
        raise self._error(operation, fault, kwargs)

    def _error(self, operation: str, fault: Fault, kwargs: dict[str, Any]) -> ClientError:
        if fault is Fault.THROTTLE:
            code = "ProvisionedThroughputExceededException"
            response: dict[str, Any] = {
                "Error": {
                    "Code": code,
                    "Message": "The level of configured provisioned throughput for the table was exceeded.",
                }
            }
        elif operation == "TransactWriteItems":
            code = "TransactionCanceledException"
            items = kwargs.get("TransactItems") or [{}]
            reasons = [{"Code": "None"} for _ in items]
            reasons[0] = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
            listed = ", ".join(reason["Code"] for reason in reasons)
            message = f"Transaction cancelled, please refer cancellation reasons for specific reasons [{listed}]"
            response = {
                "Error": {"Code": code, "Message": message},
                "CancellationReasons": reasons,
            }
        else:
            code = "TransactionConflictException"
            response = {"Error": {"Code": code, "Message": "Transaction is ongoing for the item"}}
        response["ResponseMetadata"] = {"HTTPStatusCode": 400, "RetryAttempts": 0}
        error_class = self._client.exceptions.from_code(code)  # the modeled class, as boto3 raises it
        return error_class(response, operation)
