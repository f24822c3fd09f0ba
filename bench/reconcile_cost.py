"""The reports' and the reconciliation's cost: write units the report counters add per stream
record, and the read units of one nightly reconciliation, for two table sizes.

    make bench                                   (with the other benchmarks)
    .venv/bin/python -m bench.reconcile_cost [--members 200 1000]

Each size gets fresh tables on an in-process moto server and the demo program; every member is
enrolled (welcome bonus), makes two purchases and one redemption through ``Ledger``. The ledger's
stream (read from moto) goes through the reports consumer (``loyalty.reports.Consumer``) on a client
that meters each request by DynamoDB's rules (``bench.ledger_cost.MeteredClient``; moto reports flat
figures). Then ``loyalty.reconcile.Reconciliation`` runs on a client that sizes every Scan page
(eventually consistent: half a unit per 4 KB of the page's items).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import boto3

from bench import print_table
from bench.ledger_cost import Meter, MeteredClient, frozen_clock, item_size
from loyalty.admin import DEMO_PROGRAM, DEMO_TENANT, seed_demo
from loyalty.ledger import Ledger
from loyalty.members import Stores, enrol
from loyalty.models import Actor, Profile, Role
from loyalty.reconcile import Reconciliation
from loyalty.reports import Consumer, StreamRecord
from loyalty.store import dynamo
from loyalty.store.config import ConfigStore
from loyalty.store.ledger import LedgerStore
from loyalty.store.reports import ReportStore
from tests.support.aws import REGION, create_tables, dynamodb_client, moto_server

START = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
ACTOR = Actor(tenant_id=DEMO_TENANT, key_id="key_bench", role=Role.ADMIN)


class SizedScans:
    """A client whose Scans are billed from the sizes of the items they return."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.read_units = 0.0
        self.pages = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def scan(self, **params: Any) -> Any:
        page = self._client.scan(**params)
        size = sum(item_size(item) for item in page["Items"])
        self.read_units += max(1, math.ceil(size / 4096)) * 0.5
        self.pages += 1
        return page


def stream_records(endpoint: str, client: Any, table: str) -> list[dict[str, Any]]:
    streams = boto3.client(
        "dynamodbstreams",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's
    )
    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def measure(endpoint: str, members: int) -> dict[str, Any]:
    client = dynamodb_client(endpoint)
    tables = create_tables(client)
    table = tables["LedgerTable"]
    seed_demo(dynamodb=client, config_table=tables["ConfigTable"], ledger_table=table)
    stores = Stores(ledger=LedgerStore(table, client), config=ConfigStore(tables["ConfigTable"], client))
    ledger = Ledger(stores)
    with frozen_clock(START):
        for n in range(members):
            member_id = f"bench-{n:06d}"
            enrol(stores, DEMO_TENANT, member_id, Profile(program_id=DEMO_PROGRAM))
            for order in range(2):
                ledger.accrue(
                    ACTOR, member_id, order_id=f"o{order}", amount=150_000, currency_code="RUB", occurred_at=None
                )
            ledger.redeem(ACTOR, member_id, order_id="o9", points=20, order_amount=100_000, currency_code="RUB")
        records = stream_records(endpoint, client, table)
        meter = Meter(client)
        consumer = Consumer(ReportStore(table, MeteredClient(client, meter)))
        units: dict[str, list[int]] = defaultdict(list)
        for raw in records:
            keys = dynamo.unmarshal(raw["dynamodb"]["Keys"])
            image = dynamo.unmarshal(raw["dynamodb"].get("NewImage") or {})
            before = len(meter.calls)
            applied = consumer.record(StreamRecord(raw["eventName"], keys, image or None))
            if not applied:
                continue
            kind = "entry" if keys["sk"].startswith("E#") else "lot" if keys["sk"].startswith("L#") else "enrolment"
            units[kind].append(
                sum(
                    w.units
                    for call in meter.calls[before:]
                    for w in call.writes
                    if call.operation == "TransactWriteItems"
                )
            )
    sized = SizedScans(client)
    started = time.perf_counter()
    result = Reconciliation(table, sized, segments=4).run(START.date().replace(day=START.day + 1))
    seconds = time.perf_counter() - started
    assert result["drift"] == 0, result
    return {
        "members": members,
        "items": result["items_read"],
        "pages": sized.pages,
        "read_units": sized.read_units,
        "seconds": seconds,
        "units": {kind: sum(v) / len(v) for kind, v in units.items() if v},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[200, 1000])
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    figures = []
    with moto_server() as endpoint:
        for members in args.members:
            figures.append(measure(endpoint, members))
    print("\nReport counters: write units per stream record applied (transactional, metered by item size)")
    kinds = sorted({kind for f in figures for kind in f["units"]})
    print_table(
        ["members", *(f">{kind}" for kind in kinds)],
        [[f["members"], *(f"{f['units'].get(kind, 0):.1f}" for kind in kinds)] for f in figures],
    )
    print("\nNightly reconciliation: one parallel Scan (4 segments), eventually consistent")
    print_table(
        ["members", ">items read", ">Scan pages", ">read units", ">units per member", ">seconds (moto)"],
        [
            [
                f["members"],
                f["items"],
                f["pages"],
                f"{f['read_units']:.1f}",
                f"{f['read_units'] / f['members']:.3f}",
                f"{f['seconds']:.1f}",
            ]
            for f in figures
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
