"""moto's server, in-process on loopback, as the stack's AWS endpoint; and boto3 clients for it.

Built like moto's ``ThreadedMotoServer`` with one difference: DynamoDB requests are serialized.
moto's server handles requests on concurrent threads without a lock, and a failing
``TransactWriteItems`` rolls back by putting back a copy of the whole table taken before it
started, which silently undoes any write another request made meanwhile (and acknowledged). The
engine's correctness rests on DynamoDB conditions, so tests must exercise those, not moto's races.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from local.template import ACCOUNT_ID, REGION

log = logging.getLogger(__name__)

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

# DynamoDB_20120810.* are the table APIs; DynamoDBStreams_20120810.* read the stream shards that
# table writes append to (and that a transaction rollback replaces), so they share the lock.
_SERIALIZED_TARGETS = ("DynamoDB_20120810", "DynamoDBStreams_20120810")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SerializeDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, every other service untouched."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(_SERIALIZED_TARGETS):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            # The body must be produced inside the lock too: moto may build it lazily.
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]


class _NoTableCopies:
    """Stands in for the ``copy`` module inside ``moto.dynamodb.models``.

    Before a ``TransactWriteItems``, moto backs up each table it touches, once per ITEM of the
    transaction, each a deep copy of the whole table with its stream records: a transaction costs
    in proportion to everything the table ever held, and the local stack slows down as it lives
    on (seconds per request after a day of use). While ``active``, a table's "copy" is the table
    itself, so moto's own restore is a no-op, and ``transact_write_items`` below rolls back
    exactly the items the transaction names instead. Every other deep copy is a real one.
    """

    def __init__(self, real_copy: Any, table_type: type) -> None:
        self._real = real_copy
        self._table_type = table_type
        self.active = False

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if self.active and isinstance(value, self._table_type):
            return value
        return self._real.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _restore(table: Any, hash_value: Any, range_value: Any, item: Any) -> None:
    if range_value is None:
        if item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item
        return
    bucket = table.items[hash_value]
    if item is None:
        bucket.pop(range_value, None)
    else:
        bucket[range_value] = item


def copy_tables_once_per_transaction() -> None:
    """Patch moto (idempotent): a transaction's rollback restores the items it names, and the
    stream records it appended, instead of deep-copying whole tables. Requests are serialized
    (``SerializeDynamoDB``), so nothing else writes while a transaction runs."""
    from moto.dynamodb import models

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "rolls_back_items", False):
        return
    shim = _NoTableCopies(models.copy, models.Table)
    models.copy = shim  # type: ignore[assignment]
    original = backend.transact_write_items
    real_deepcopy = shim._real.deepcopy

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved: list[tuple[Any, Any, Any, Any]] = []
        streams: dict[int, tuple[Any, int]] = {}
        for entry in transact_items:
            try:
                _, op = next(iter(entry.items()))
                table = self.tables[op["TableName"]]
                key = op["Item"] if "Item" in op else op["Key"]
                hash_value, range_value = self.get_keys_value(table, key)
            except Exception:  # noqa: S112 - a malformed item: moto refuses it before writing it
                continue
            saved.append((table, hash_value, range_value, real_deepcopy(table.get_item(hash_value, range_value))))
            if table.stream_shard is not None:
                streams.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
        shim.active = True
        try:
            return original(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(saved):
                _restore(table, hash_value, range_value, item)
            for shard, length in streams.values():
                del shard.items[length:]
            raise
        finally:
            shim.active = False

    transact_write_items.rolls_back_items = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class _QuietMotoHandler(MotoRequestHandler):
    """No access log line per AWS call: a busy stack makes thousands, and they tell nothing."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class MotoServer:
    """moto's server on a loopback port (0 picks a free one), serving from a daemon thread."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, wrap: Callable[[WsgiApp], WsgiApp] | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._wrap = wrap  # more middleware around moto (the outbox: local.outbox.Capture)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        copy_tables_once_per_transaction()
        app: WsgiApp = SerializeDynamoDB(DomainDispatcherApplication(create_backend_app))
        if self._wrap is not None:
            app = self._wrap(app)
        self._server = make_server(self._host, self._port, app, threaded=True, request_handler=_QuietMotoHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self._host}:{self._server.server_port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def forget_shard_iterators(iterators: Iterable[str]) -> None:
    """Drop stream shard iterators from moto's memory once used.

    moto keeps every shard iterator it ever handed out, and a stream poller asks for a fresh one
    on every poll (see ``pollers``): left alone, that is a few hundred MB a day per stream. moto
    runs in this process, so its backend can be pruned directly; if its internals change, this
    quietly does nothing.
    """
    try:
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        known = dynamodbstreams_backends[ACCOUNT_ID][REGION].shard_iterators
    except (ImportError, AttributeError, KeyError):
        return
    for iterator in iterators:
        known.pop(iterator, None)


class AwsClients:
    """boto3 clients for the moto endpoint, one per service, shared between threads (boto3
    clients are thread-safe; creating them is not, hence the lock)."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._session = boto3.session.Session(region_name=REGION, **CREDENTIALS)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._config = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32)

    def __call__(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(
                    service, endpoint_url=self.endpoint_url, config=self._config
                )
            return self._clients[service]
