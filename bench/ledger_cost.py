"""Ledger cost: the DynamoDB capacity units each ledger operation consumes, and the monthly bill.

    make bench                                  (with the other benchmarks)
    .venv/bin/python -m bench.ledger_cost [--purchases-per-day 1000000] [--busy-lots 365]

moto answers every request with flat ConsumedCapacity figures, so this computes them instead. It
runs the real operations (``loyalty.ledger.Ledger``, ``loyalty.members``) against an in-process moto
server holding the template's tables and the demo tenant, through a client that passes every
request on and meters it by DynamoDB's rules:

* item size: the sum over attributes of the name's UTF-8 bytes plus the value's size. Strings:
  UTF-8 bytes; numbers: 1 byte per two significant digits, plus 1; binary: raw bytes; booleans
  and null: 1; maps and lists: 3, plus their elements, plus 1 per element (a map element's name
  counts like an attribute name).
* writes: the larger of the item before and after the request (both read back from moto around
  it), rounded up to 1 KB; 1 write unit per KB, 2 inside a transaction. A ConditionCheck costs
  like a write of the item it checks. An item that carries an index's key attributes also writes
  the index (KEYS_ONLY: an entry of the table and index keys), counted apart at 1 unit per KB.
* reads: rounded up to 4 KB per item for GetItem and BatchGetItem, over the sum of the items
  returned for a Query; 1 unit per 4 KB strongly consistent, 0.5 eventually consistent, 2 in a
  transaction. A read that finds nothing costs the minimum.

Beside each operation: the smallest figure an atomic, idempotent operation could cost (see
docs/PERFORMANCE.md), computed from the sizes of the items this run wrote. Then the monthly bill of
N purchases a day at on-demand prices, and the storage each purchase leaves behind.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import print_table
from loyalty import clock, members, rules
from loyalty.admin import DEMO_PROGRAM, DEMO_TENANT, seed_demo
from loyalty.api.schemas import PurchaseOut
from loyalty.ledger import Ledger
from loyalty.members import Stores
from loyalty.models import BASIS_POINTS, Actor, Profile, Program, Role
from loyalty.store.config import ConfigStore
from loyalty.store.idempotency import IdempotencyStore, StoredResponse
from loyalty.store.ledger import MAX_TRANSACTION_ITEMS, LedgerStore
from tests.support.aws import create_tables, dynamodb_client, moto_server

KB = 1024
READ_BLOCK = 4 * KB
STORAGE_OVERHEAD_BYTES = 100  # DynamoDB bills every stored item 100 bytes of index overhead
DAYS_PER_MONTH = 30
TODAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a fixed clock: the same items, the same sizes
PURCHASE_AMOUNT = 250_000  # 2,500.00 RUB in minor units: 75 points in the demo program's first tier


@dataclass(frozen=True)
class Prices:
    """On-demand, us-east-1, standard table class: the price list since the November 2024 cut."""

    write_per_million: float = 0.625
    read_per_million: float = 0.125
    storage_gb_month: float = 0.25
    backup_gb_month: float = 0.20  # point-in-time recovery, which the template enables


# ----------------------------------------------------------------------------- sizing rules


def number_size(text: str) -> int:
    mantissa = text.lstrip("+-").split("e")[0].split("E")[0]
    significant = mantissa.replace(".", "").strip("0")
    return (len(significant) + 1) // 2 + 1


def value_size(value: Mapping[str, Any]) -> int:
    """Size of one attribute value in DynamoDB's JSON form ({"S": ...}, {"N": ...}, ...)."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(text.encode()) for text in data)
    if kind == "NS":
        return sum(number_size(text) for text in data)
    if kind == "BS":
        return sum(len(blob) for blob in data)
    if kind == "M":
        return 3 + sum(len(name.encode()) + value_size(element) + 1 for name, element in data.items())
    if kind == "L":
        return 3 + sum(value_size(element) + 1 for element in data)
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: Mapping[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def write_units(size: int, *, transactional: bool) -> int:
    units = max(1, math.ceil(size / KB))
    return 2 * units if transactional else units


def read_units(size: int, *, consistent: bool, transactional: bool = False) -> float:
    units = max(1, math.ceil(size / READ_BLOCK)) * (1.0 if consistent else 0.5)
    return 2 * units if transactional else units


# Item kinds by sort key, as loyalty.store.keys builds them (the prefixes are distinct).
KINDS = (
    ("MEMBER", "account"),
    ("E#", "entry"),
    ("L#", "lot"),
    ("G#", "guard"),
    ("O#", "order"),
    ("HOLD", "hold"),
    ("IK", "idempotency record"),
    ("P#", "program"),
    ("TENANT", "tenant"),
    ("KEY", "api key"),
)


def kind_of(key: Mapping[str, Any]) -> str:
    sort_key = key.get("sk", {}).get("S", "")
    return next((name for prefix, name in KINDS if sort_key.startswith(prefix)), sort_key or "item")


# ----------------------------------------------------------------------------- metering


@dataclass
class ItemRead:
    kind: str
    size: int


@dataclass
class ItemWrite:
    kind: str
    action: str  # Put, Update, Delete, ConditionCheck
    before: int  # bytes, 0 when the item did not exist
    after: int  # bytes, 0 when the item is gone
    units: int
    index_units: int

    @property
    def size(self) -> int:
        return max(self.before, self.after)


@dataclass
class Call:
    operation: str
    reads: list[ItemRead] = field(default_factory=list)
    read_units: float = 0.0
    writes: list[ItemWrite] = field(default_factory=list)

    @property
    def write_units(self) -> int:
        return sum(write.units for write in self.writes)

    @property
    def index_write_units(self) -> int:
        return sum(write.index_units for write in self.writes)

    def label(self) -> str:
        count = len(self.writes) or len(self.reads)
        return self.operation if self.operation in ("GetItem", "PutItem") else f"{self.operation}({count})"


@dataclass(frozen=True)
class TableKeys:
    primary: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...]  # the key attributes of each global secondary index


class Meter:
    """Reads items straight from moto (unmetered) and keeps the metered calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[Call] = []
        self._keys: dict[str, TableKeys] = {}

    def keys(self, table: str) -> TableKeys:
        if table not in self._keys:
            description = self.client.describe_table(TableName=table)["Table"]

            def names(schema: list[dict[str, str]]) -> tuple[str, ...]:
                return tuple(element["AttributeName"] for element in schema)

            indexes = tuple(names(index["KeySchema"]) for index in description.get("GlobalSecondaryIndexes", []))
            self._keys[table] = TableKeys(names(description["KeySchema"]), indexes)
        return self._keys[table]

    def key_of(self, table: str, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.keys(table).primary}

    def fetch(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        return self.client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    def index_write_units(self, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
        """KEYS_ONLY index entries written: a new entry, a removed one, or both when its keys move."""
        keys = self.keys(table)
        units = 0
        for index in keys.indexes:
            old, new = (_index_entry(item, keys.primary + index) for item in (before, after))
            if old == new:
                continue
            units += sum(write_units(item_size(entry), transactional=False) for entry in (old, new) if entry)
        return units

    def record(self, call: Call) -> None:
        self.calls.append(call)


def _index_entry(item: Mapping[str, Any] | None, attributes: tuple[str, ...]) -> dict[str, Any] | None:
    if not item or any(name not in item for name in attributes):
        return None
    return {name: item[name] for name in attributes}


@dataclass
class _Target:
    action: str
    table: str
    key: dict[str, Any]


class MeteredClient:
    """A DynamoDB client that passes each request on and meters it (into ``meter.calls``).

    Only the requests below are metered; any other API method raises, so none goes uncounted.
    """

    def __init__(self, client: Any, meter: Meter) -> None:
        self._client = client
        self._meter = meter

    def __getattr__(self, name: str) -> Any:
        if name in self._client.meta.method_to_api_mapping:
            raise NotImplementedError(f"{name} is not metered by bench.ledger_cost")
        return getattr(self._client, name)

    # ------------------------------------------------------------------ reads
    def _read(self, table: str, key: Mapping[str, Any]) -> ItemRead:
        # Sized from the whole item: a projection trims the answer, never the units.
        return ItemRead(kind_of(key), item_size(self._meter.fetch(table, key)))

    def get_item(self, **params: Any) -> Any:
        response = self._client.get_item(**params)
        read = self._read(params["TableName"], params["Key"])
        units = read_units(read.size, consistent=params.get("ConsistentRead", False))
        self._meter.record(Call("GetItem", [read], units))
        return response

    def batch_get_item(self, **params: Any) -> Any:
        response = self._client.batch_get_item(**params)
        call = Call("BatchGetItem")
        unprocessed = response.get("UnprocessedKeys") or {}
        for table, request in params["RequestItems"].items():
            skipped = unprocessed.get(table, {}).get("Keys", [])
            for key in request["Keys"]:
                if key in skipped:
                    continue
                read = self._read(table, key)
                call.reads.append(read)
                call.read_units += read_units(read.size, consistent=request.get("ConsistentRead", False))
        self._meter.record(call)
        return response

    def query(self, **params: Any) -> Any:
        response = self._client.query(**params)
        table = params["TableName"]
        if "IndexName" in params:  # an index is billed on its own entries, as returned (KEYS_ONLY)
            reads = [ItemRead(kind_of(item), item_size(item)) for item in response["Items"]]
        else:
            reads = [self._read(table, self._meter.key_of(table, item)) for item in response["Items"]]
        total = sum(read.size for read in reads)
        self._meter.record(Call("Query", reads, read_units(total, consistent=params.get("ConsistentRead", False))))
        return response

    def transact_get_items(self, **params: Any) -> Any:
        response = self._client.transact_get_items(**params)
        call = Call("TransactGetItems")
        for item in params["TransactItems"]:
            read = self._read(item["Get"]["TableName"], item["Get"]["Key"])
            call.reads.append(read)
            call.read_units += read_units(read.size, consistent=True, transactional=True)
        self._meter.record(call)
        return response

    # ------------------------------------------------------------------ writes
    def _target(self, action: str, spec: Mapping[str, Any]) -> _Target:
        table = spec["TableName"]
        key = spec["Key"] if "Key" in spec else self._meter.key_of(table, spec["Item"])
        return _Target(action, table, dict(key))

    def _write(self, operation: str, targets: list[_Target], send: Callable[[], Any], *, transactional: bool) -> Any:
        before = [self._meter.fetch(t.table, t.key) for t in targets]
        try:
            return send()
        finally:  # a failed write is billed too: then before == after
            after = [self._meter.fetch(t.table, t.key) for t in targets]
            call = Call(operation)
            for target, old, new in zip(targets, before, after, strict=True):
                size = item_size(old) if target.action == "ConditionCheck" else max(item_size(old), item_size(new))
                call.writes.append(
                    ItemWrite(
                        kind=kind_of(target.key),
                        action=target.action,
                        before=item_size(old),
                        after=item_size(new),
                        units=write_units(size, transactional=transactional),
                        index_units=self._meter.index_write_units(target.table, old, new),
                    )
                )
            self._meter.record(call)

    def transact_write_items(self, **params: Any) -> Any:
        targets = [self._target(action, spec) for item in params["TransactItems"] for action, spec in item.items()]
        return self._write(
            "TransactWriteItems", targets, lambda: self._client.transact_write_items(**params), transactional=True
        )

    def put_item(self, **params: Any) -> Any:
        target = self._target("Put", params)
        return self._write("PutItem", [target], lambda: self._client.put_item(**params), transactional=False)

    def update_item(self, **params: Any) -> Any:
        target = self._target("Update", params)
        return self._write("UpdateItem", [target], lambda: self._client.update_item(**params), transactional=False)

    def delete_item(self, **params: Any) -> Any:
        target = self._target("Delete", params)
        return self._write("DeleteItem", [target], lambda: self._client.delete_item(**params), transactional=False)


# ----------------------------------------------------------------------------- the world


@dataclass
class FakeClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


@contextmanager
def frozen_clock(moment: datetime) -> Iterator[FakeClock]:
    """Replace ``loyalty.clock.now`` (as tests/integration/conftest.py does) for the whole run."""
    fake = FakeClock(moment)
    original = clock.now
    clock.now = fake.now
    try:
        yield fake
    finally:
        clock.now = original


class World:
    """The template's tables on moto, the demo tenant, and ledgers on a raw or a metered client."""

    def __init__(self, endpoint: str, fake_clock: FakeClock) -> None:
        self.client = dynamodb_client(endpoint)
        self.tables = create_tables(self.client)
        seed_demo(
            dynamodb=self.client, config_table=self.tables["ConfigTable"], ledger_table=self.tables["LedgerTable"]
        )
        self.clock = fake_clock
        self.actor = Actor(tenant_id=DEMO_TENANT, key_id="key_bench", role=Role.INTEGRATION)
        self.stores = self.stores_on(self.client)
        self.ledger = Ledger(self.stores)
        program = self.stores.config.get_program(DEMO_TENANT, DEMO_PROGRAM)
        assert program is not None, "seed_demo wrote the demo program"
        self.program: Program = program

    def stores_on(self, client: Any) -> Stores:
        return Stores(
            ledger=LedgerStore(self.tables["LedgerTable"], client),
            config=ConfigStore(self.tables["ConfigTable"], client),
        )

    def metered(self) -> tuple[Stores, Meter]:
        meter = Meter(self.client)
        return self.stores_on(MeteredClient(self.client, meter)), meter

    def member_with_lots(self, member_id: str, lots: int) -> str:
        """Enrol a member ``lots`` days ago and buy once a day since: one lot per burn date."""
        self.clock.moment = TODAY - timedelta(days=lots)
        profile = Profile(
            email=f"{member_id}@example.com", phone="+79001234567", locale="ru", time_zone="Europe/Moscow"
        )
        members.enrol(self.stores, DEMO_TENANT, member_id, profile)
        for day in range(lots):
            self.clock.moment = TODAY - timedelta(days=lots - day)
            self.purchase(self.ledger, member_id, f"{member_id}-order-{day:04d}")
        self.clock.moment = TODAY
        return member_id

    def member_holding_lots(self, member_id: str, lots: int) -> str:
        """Enrol a member holding one lot per day of the last ``lots`` days, as a member who bought
        every day would. The lots are written in bulk through the store's own unit of work (the
        very items the ledger writes): replaying a year of accruals on moto takes minutes, as moto
        copies every table at each transaction."""
        profile = Profile(
            email=f"{member_id}@example.com", phone="+79001234567", locale="ru", time_zone="Europe/Moscow"
        )
        members.enrol(self.stores, DEMO_TENANT, member_id, profile)
        points = rules.accrual_points(self.program, self.program.tiers[0], PURCHASE_AMOUNT)
        days = [TODAY - timedelta(days=lots - day) for day in range(lots)]
        burn_dates = [rules.burn_date(self.program, day).isoformat() for day in days]
        room = MAX_TRANSACTION_ITEMS - 1  # one item for the account
        for start in range(0, lots, room):
            chunk = burn_dates[start : start + room]
            account = self.stores.ledger.snapshot(DEMO_TENANT, member_id).account
            assert account is not None, "enrolled above"
            uow = self.stores.ledger.unit_of_work()
            for burn_date in chunk:
                uow.change_lot(account, None, burn_date, points)
            credited = points * len(chunk)
            uow.update_account(
                account, balance=account.balance + credited, seq=account.seq, holds=(), lot_debt=0, earned=credited
            )
            uow.commit()
        return member_id

    def purchase(self, ledger: Ledger, member_id: str, order_id: str) -> dict[str, Any]:
        return ledger.accrue(
            self.actor,
            member_id,
            order_id=order_id,
            amount=PURCHASE_AMOUNT,
            currency_code=self.program.currency,
            occurred_at=None,
        )

    def lots(self, member_id: str) -> list[int]:
        """Remaining points of the member's lots, earliest burn date first."""
        found = self.stores.ledger.lots(DEMO_TENANT, member_id)
        return [lot.remaining for lot in sorted(found, key=lambda lot: lot.burn_date)]

    def order_amount_for(self, points: int) -> int:
        """The smallest order on which the program lets ``points`` be spent."""
        return math.ceil(points * self.program.point_value * BASIS_POINTS / self.program.max_redeem_share_bp)


# ----------------------------------------------------------------------------- scenarios

WRITE_FLOOR = ("account", "entry", "guard")


@dataclass
class Measured:
    name: str
    calls: list[Call]
    floor_kinds: tuple[str, ...]  # the items an atomic, idempotent version must write

    @property
    def read_units(self) -> float:
        return sum(call.read_units for call in self.calls)

    @property
    def write_units(self) -> int:
        return sum(call.write_units for call in self.calls)

    @property
    def index_write_units(self) -> int:
        return sum(call.index_write_units for call in self.calls)

    @property
    def writes(self) -> list[ItemWrite]:
        return [write for call in self.calls for write in call.writes]

    def account_size(self) -> int:
        sizes = [w.size for w in self.writes if w.kind == "account"]
        sizes += [r.size for call in self.calls for r in call.reads if r.kind == "account"]
        return max(sizes)

    def floor_write_units(self) -> int:
        """One transaction of the floor's items, each as large as the one this run wrote."""
        first = {}
        for write in self.writes:
            first.setdefault(write.kind, write)
        return sum(write_units(first[kind].size, transactional=True) for kind in self.floor_kinds)

    def floor_read_units(self) -> float:
        """One strongly consistent read of the account: what any decision needs."""
        return read_units(self.account_size(), consistent=True)


def measure(world: World, name: str, operation: Callable[[Stores], Any], floor: tuple[str, ...]) -> Measured:
    stores, meter = world.metered()
    operation(stores)
    return Measured(name, meter.calls, floor)


def scenarios(world: World, history_lots: int, busy_lots: int) -> list[Measured]:
    actor = world.actor
    regular = world.member_with_lots("member-regular", history_lots)
    spender = world.member_with_lots("member-spender", history_lots)
    results = []

    def run(name: str, operation: Callable[[Ledger], Any], floor: tuple[str, ...] = WRITE_FLOOR) -> Any:
        outcome: list[Any] = []
        results.append(measure(world, name, lambda stores: outcome.append(operation(Ledger(stores))), floor))
        return outcome[0]

    accrued = run("accrual (purchase)", lambda ledger: world.purchase(ledger, regular, "order-accrual"))
    results.append(with_idempotency_record(world, results[-1], regular, accrued))

    def redeem(ledger: Ledger, member_id: str, order_id: str, points: int) -> dict[str, Any]:
        currency = world.program.currency
        amount = world.order_amount_for(points)
        return ledger.redeem(
            actor, member_id, order_id=order_id, points=points, order_amount=amount, currency_code=currency
        )

    half_a_lot = world.lots(regular)[0] // 2
    run("redemption, 1 lot", lambda ledger: redeem(ledger, regular, "order-redeem-1", half_a_lot))
    four_lots_and_a_point = sum(world.lots(spender)[:4]) + 1  # empties four lots, dips into the fifth
    run("redemption, 5 lots", lambda ledger: redeem(ledger, spender, "order-redeem-5", four_lots_and_a_point))
    run(
        "refund, half of an order",
        lambda ledger: ledger.refund(
            actor, regular, refund_id="refund-1", order_id="order-accrual", amount=PURCHASE_AMOUNT // 2
        ),
    )
    hold, _ = run(
        "hold (checkout)",
        lambda ledger: ledger.hold(
            actor,
            regular,
            order_id="order-hold",
            points=10,
            order_amount=world.order_amount_for(10),
            currency_code=world.program.currency,
        ),
        ("account", "hold"),
    )
    run("capture of the hold", lambda ledger: ledger.capture(actor, hold["hold_id"]), ("account", "entry", "hold"))
    run("balance read (GET member)", lambda ledger: read_member(ledger, regular), ())

    if busy_lots:  # a member who bought every day of the lifetime: reads that grow with the lots
        busy = world.member_holding_lots("member-busy", busy_lots)
        run(f"accrual, member with {busy_lots} lots", lambda ledger: world.purchase(ledger, busy, "order-busy"))
        run(f"redemption, 1 of {busy_lots + 1} lots", lambda ledger: redeem(ledger, busy, "order-busy-redeem", 10))
        run(f"balance read, {busy_lots + 1} lots", lambda ledger: read_member(ledger, busy), ())
    return results


def read_member(ledger: Ledger, member_id: str) -> dict[str, Any]:
    """What GET /v1/members/{id} does: the member's profile, then the balance view."""
    members.get(ledger.stores, DEMO_TENANT, member_id)
    return ledger.balance_view(DEMO_TENANT, member_id)


def with_idempotency_record(world: World, accrual: Measured, member_id: str, result: dict[str, Any]) -> Measured:
    """The accrual as the API serves it with an Idempotency-Key header: the middleware reads the
    key's record first and stores the response after (loyalty.api.idempotency, same store calls)."""
    order_id = "order-accrual"  # the shop sends its order id as the key
    path = f"/v1/members/{member_id}/purchases"
    request = f'{{"order_id": "{order_id}", "amount": {PURCHASE_AMOUNT}, "currency": "{world.program.currency}"}}'
    body = PurchaseOut(**result).model_dump_json()
    digest = hashlib.sha256(f"POST {path}\n{request}".encode()).hexdigest()

    def middleware(stores: Stores) -> None:
        store = IdempotencyStore(world.tables["LedgerTable"], stores.ledger.client)
        store.get(DEMO_TENANT, order_id)
        store.put(DEMO_TENANT, order_id, StoredResponse(digest, 201, body, "application/json"))

    lookup, record = measure(world, "", middleware, ()).calls
    return Measured("accrual + Idempotency-Key record", [lookup, *accrual.calls, record], accrual.floor_kinds)


# ----------------------------------------------------------------------------- report


def units(value: float) -> str:
    return f"{value:g}"


def ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}" if floor else "-"


def print_units(results: list[Measured]) -> None:
    rows = []
    for result in results:
        floor_wu, floor_ru = result.floor_write_units(), result.floor_read_units()
        rows.append(
            [
                result.name,
                " ".join(call.label() for call in result.calls),
                units(result.read_units),
                units(floor_ru),
                ratio(result.read_units, floor_ru),
                result.write_units,
                floor_wu or "-",
                ratio(result.write_units, floor_wu),
                result.index_write_units,
            ]
        )
    columns = ["operation", "requests (items)", ">RU", ">floor RU", ">x floor", ">WU", ">floor WU", ">x floor"]
    print("\ncapacity units per operation (RU read units, WU write units; index WU: gsi1 writes, apart)")
    print_table([*columns, ">index WU"], rows)


def print_writes(results: list[Measured]) -> None:
    print("\nwhere the write units go (every item of every transaction; bytes: the larger of before and after)")
    rows = []
    for result in results:
        groups: dict[tuple[str, str], list[ItemWrite]] = {}
        for write in result.writes:
            groups.setdefault((write.kind, write.action), []).append(write)
        for (kind, action), writes in groups.items():
            item = f"{kind} x{len(writes)}" if len(writes) > 1 else kind
            rows.append([result.name, item, action, max(w.size for w in writes), sum(w.units for w in writes)])
    print_table(["operation", "item", "action", ">bytes", ">WU"], rows)


def print_reads(results: list[Measured]) -> None:
    print("\nwhere the read units go (every read request; '(none)': the item does not exist, still billed)")
    rows = []
    for result in results:
        for call in result.calls:
            if not call.reads and call.writes:
                continue
            kinds = Counter(read.kind if read.size else f"{read.kind} (none)" for read in call.reads)
            items = ", ".join(f"{kind} x{n}" if n > 1 else kind for kind, n in kinds.items()) or "nothing"
            rows.append([result.name, call.operation, items, sum(r.size for r in call.reads), units(call.read_units)])
    print_table(["operation", "request", "items read", ">bytes", ">RU"], rows)


def print_monthly_cost(results: list[Measured], purchases_per_day: int, prices: Prices) -> None:
    purchases = purchases_per_day * DAYS_PER_MONTH
    accrual = results[0]
    floor = "floor: " + " + ".join(accrual.floor_kinds) + ", one read"
    per_purchase = [(r.name, r.read_units, r.write_units + r.index_write_units) for r in results[:2]]
    per_purchase.append((floor, accrual.floor_read_units(), accrual.floor_write_units()))
    rows = []
    for name, reads, writes in per_purchase:
        read_cost = purchases * reads * prices.read_per_million / 1e6
        write_cost = purchases * writes * prices.write_per_million / 1e6
        money = (f"{cost:,.2f}" for cost in (read_cost, write_cost, read_cost + write_cost))
        rows.append([name, units(reads), writes, *money])
    print(
        f"\nmonthly cost of {purchases_per_day:,} purchases a day, {DAYS_PER_MONTH} days, on demand:"
        f" ${prices.read_per_million} per million read units, ${prices.write_per_million} per million write units"
    )
    print_table(["per purchase", ">RU", ">WU", ">reads $/month", ">writes $/month", ">total $/month"], rows)
    print_storage(accrual, purchases, prices)


def print_storage(accrual: Measured, purchases_per_month: int, prices: Prices) -> None:
    """What a purchase leaves in the table for good: the items it creates that nothing deletes."""
    kept = [w for w in accrual.writes if w.before == 0 and w.after > 0 and w.kind in ("entry", "guard", "order")]
    per_purchase = sum(w.after + STORAGE_OVERHEAD_BYTES for w in kept)
    gigabytes = purchases_per_month * per_purchase / 2**30
    parts = " + ".join(f"{w.kind} {w.after}" for w in kept)
    print(
        f"\nstorage: a purchase keeps {per_purchase} bytes for good ({parts}, +{STORAGE_OVERHEAD_BYTES} per item):"
        f" {gigabytes:,.1f} GB more every month, which adds ${gigabytes * prices.storage_gb_month:,.2f}/month"
        f" to the bill each month (+${gigabytes * prices.backup_gb_month:,.2f} for point-in-time recovery)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--purchases-per-day", type=int, default=1_000_000, help="for the monthly bill")
    parser.add_argument(
        "--history-lots", type=int, default=5, help="lots (days of purchases) of the regular members (default 5)"
    )
    parser.add_argument(
        "--busy-lots", type=int, default=365, help="lots of the busy member, who bought every day (0: skip)"
    )
    args = parser.parse_args(argv)
    if args.history_lots < 5:
        parser.error("--history-lots must be at least 5 (the five-lot redemption)")

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    with moto_server() as endpoint, frozen_clock(TODAY) as fake:
        world = World(endpoint, fake)
        results = scenarios(world, args.history_lots, args.busy_lots)

    print(
        f"ledger cost by DynamoDB's sizing rules: demo program, purchases of {PURCHASE_AMOUNT} minor units,"
        f" members with {args.history_lots} lots (one purchase a day), clock at {clock.isoformat(TODAY)}"
    )
    print_units(results)
    print_writes(results)
    print_reads(results)
    print_monthly_cost(results, args.purchases_per_day, Prices())
    return 0


if __name__ == "__main__":
    sys.exit(main())
