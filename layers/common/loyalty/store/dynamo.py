"""A thin layer over the low-level DynamoDB client: marshalling, and retries that are safe.

Every write of the engine is either a single conditional write or one ``TransactWriteItems`` whose
items all carry conditions, so re-running a whole operation after a conflict, a throttle or a
lost response can never apply it twice (the permanent idempotency guard sees to that).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import Any, TypeVar

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from loyalty.errors import Unavailable

T = TypeVar("T")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# botocore retries throttles on its own (standard mode); our loop re-runs whole operations.
# Short timeouts: one DynamoDB call answers in milliseconds; a call that hangs is better retried
# (every write is conditional, so a retry is safe) than waited for until the function times out.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2},
    connect_timeout=1,
    read_timeout=2,
    tcp_keepalive=True,
)
# The time one request may spend retrying: with the timeouts above, the answer (at worst a 503)
# comes well inside the functions' 10 s timeout, never API Gateway's own 5xx.
RETRY_BUDGET_SECONDS = 5.0
RETRYABLE_CODES = {
    "TransactionConflictException",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
}
# A cancelled TransactWriteItems names one reason per item; these ones are transient (unlike
# ConditionalCheckFailed or ValidationError), so the whole operation may simply run again.
RETRYABLE_CANCELLATION_CODES = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}


@cache
def client() -> Any:
    """This process's DynamoDB client, made on first use (not at import: tests pass their own)."""
    return boto3.client("dynamodb", config=CLIENT_CONFIG)


BATCH_GET_LIMIT = 100  # keys in one BatchGetItem request


def failed_condition(error: ClientError) -> bool:
    """A conditional write's condition was false (not a transaction's cancellation)."""
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class Store:
    """A store on one table. Its client is the one given (tests pass theirs) or this process's,
    made on first use."""

    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or client()

    def pages(self, operation: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every page of a ``query`` or ``scan`` (``operation``) of ``request``, following
        ``LastEvaluatedKey`` to the end."""
        kwargs = dict(request)
        while True:
            page = getattr(self.client, operation)(**kwargs)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put_new(self, item: Mapping[str, Any]) -> bool:
        """Put ``item`` only if no item has its key; False (nothing written) if one has."""
        try:
            self.client.put_item(
                TableName=self.table, Item=marshal(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:
            if failed_condition(error):
                return False
            raise
        return True

    def batch_get(
        self, keys: list[Mapping[str, Any]], *, projection: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """The items of ``keys`` that exist (BatchGetItem, 100 keys a request, eventually
        consistent), unmarshalled, in no particular order; ``projection``: ``{placeholder: attribute}``
        of the attributes to read. Keys DynamoDB leaves unprocessed are asked again with backoff;
        still unprocessed after ten rounds: ``Retry`` (the caller's retry reads them again)."""
        found: list[dict[str, Any]] = []
        wanted = list({tuple(sorted(k.items())): k for k in keys}.values())
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self.table: {"Keys": [marshal(k) for k in wanted[start : start + BATCH_GET_LIMIT]]}
            }
            if projection:
                request[self.table]["ProjectionExpression"] = ", ".join(projection)
                request[self.table]["ExpressionAttributeNames"] = dict(projection)
            for attempt in range(10):
                response = self.client.batch_get_item(RequestItems=request)
                found += [unmarshal(raw) for raw in response["Responses"].get(self.table, [])]
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))  # unprocessed keys: DynamoDB asks us to slow down
            else:
                raise Retry()
        return found

    def query_all(self, pk: str, prefix: str, *, consistent: bool = False) -> list[dict[str, Any]]:
        """Every item of partition ``pk`` whose sort key starts with ``prefix``, every page of it
        (a balance is never summed from a first page only), unmarshalled."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": values({":pk": pk, ":prefix": prefix}),
        }
        if consistent:
            kwargs["ConsistentRead"] = True
        items: list[dict[str, Any]] = []
        for page in self.pages("query", kwargs):
            items += [unmarshal(raw) for raw in page["Items"]]
        return items


def marshal(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items() if value is not None}


def unmarshal(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def values(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Expression attribute values, marshalled."""
    return {key: _serializer.serialize(value) for key, value in mapping.items()}


class Retry(Exception):
    """Raised inside an operation to ask for a fresh attempt (e.g. a version moved)."""


def cancellation_codes(error: ClientError) -> list[str]:
    return [reason.get("Code", "None") for reason in error.response.get("CancellationReasons", [])]


def is_retryable(error: Exception) -> bool:
    if isinstance(error, Retry | BotoCoreError):
        return True  # BotoCoreError: connection reset, read timeout (maybe a lost response)
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in RETRYABLE_CODES:
            return True
        if code == "TransactionCanceledException":
            return any(c in RETRYABLE_CANCELLATION_CODES for c in cancellation_codes(error))
    return False


def retry_if_condition_failed(write: Callable[[], T]) -> T:
    """Run a conditional write. A failed condition means someone wrote the same items meanwhile:
    ``Retry``, so that the operation around it (``with_retries``) reads and decides again."""
    try:
        return write()
    except ClientError as error:
        if "ConditionalCheckFailed" in cancellation_codes(error):
            raise Retry() from error
        raise


def with_retries(
    operation: Callable[[], T],
    *,
    attempts: int = 8,
    base_delay: float = 0.01,
    max_delay: float = 0.4,
    sleep: Callable[[float], None] = time.sleep,
    budget: float = RETRY_BUDGET_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``operation`` until it succeeds or a non-retryable error; 503 when the attempts or the
    time budget run out.

    Full jitter spreads competing writers of one member apart; the bounds keep a request well
    inside the function's timeout.
    """
    deadline = monotonic() + budget
    for attempt in range(attempts):
        try:
            return operation()
        except Exception as error:
            if not is_retryable(error):
                raise
            delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))
            if attempt == attempts - 1 or monotonic() + delay > deadline:
                raise Unavailable(
                    "The ledger is busy; retry the same request (it is idempotent).", retry_after=1
                ) from error
            sleep(delay)
    raise AssertionError("unreachable")
