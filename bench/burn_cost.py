"""The nightly burn's cost: DynamoDB read units and API calls of one night, for a small and a large
table with the same number of lots due, against a full-table Scan of each.

    make bench                                   (with the other benchmarks)
    .venv/bin/python -m bench.burn_cost [--members 10000 100000] [--due 1000]

Each size gets fresh tables on an in-process moto server, seeded directly (BatchWriteItem, not
metered) with ``members`` members of the demo program, each with one accrual entry and one open lot
of 30 points: ``due`` of them burn tonight, the others on a later day of the coming year. Then the
night runs as in production, through a client that meters every request by DynamoDB's rules
(``bench.ledger_cost.MeteredClient``): the scheduler (``burning.run_tenants``: the registry of
tenants and their checkpoints, a Query each; one Query per shard of gsi1) and the worker on each
message it sent (``Ledger.burn``). Reminders are left out (no offsets) so that both sizes do the
same work; they add the same per member reminded.

The baseline is what a job without the index would read: a Scan of the whole ledger table
(eventually consistent, 1 MB pages), computed from the sizes of the items in the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench import print_table
from bench.ledger_cost import Call, Meter, MeteredClient, frozen_clock, item_size, read_units
from loyalty import burning
from loyalty.admin import DEMO_PROGRAM, DEMO_TENANT, seed_demo
from loyalty.ledger import Ledger, check_invariant
from loyalty.members import Stores
from loyalty.store import dynamo, keys
from loyalty.store.burn import BurnStore
from loyalty.store.config import ConfigStore
from loyalty.store.ledger import LedgerStore
from tests.support.aws import create_tables, dynamodb_client, moto_server

NIGHT = date(2026, 12, 1)
RUN_AT = datetime(2026, 11, 30, 21, 30, tzinfo=UTC)  # 00:30 in Moscow on the night
POINTS = 30
PAGE_BYTES = 1024 * 1024  # a Scan page


@dataclass
class Figures:
    members: int
    due: int
    scheduler_calls: int
    scheduler_rru: float
    worker_calls: int
    worker_rru: float
    burned_lots: int
    burned_points: int
    scheduler_seconds: float
    worker_seconds: float
    scan_calls: int
    scan_rru: float
    table_items: int


def seed(client: Any, table: str, members: int, due: int) -> list[int]:
    """``members`` members with one lot each, ``due`` of them due on NIGHT; answers the items' sizes."""
    requests: list[dict[str, Any]] = []
    sizes: list[int] = []

    def flush() -> None:
        nonlocal requests
        pending = {table: requests}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        requests = []

    for n in range(members):
        member_id = f"bench-{n:06d}"
        pk = keys.member_pk(DEMO_TENANT, member_id)
        burn = NIGHT if n < due else NIGHT + timedelta(days=1 + n % 365)
        shard = keys.due_shard(DEMO_TENANT, member_id)
        items = [
            {
                "pk": pk,
                "sk": keys.MEMBER_SK,
                "tenant_id": DEMO_TENANT,
                "member_id": member_id,
                "program_id": DEMO_PROGRAM,
                "profile": "{}",
                "enrolled_at": "2026-01-01T00:00:00+00:00",
                "tier": "Silver",
                "balance": POINTS,
                "held": 0,
                "lifetime_earned": POINTS,
                "seq": 1,
                "version": 1,
            },
            {
                "pk": pk,
                "sk": keys.entry_sk(1),
                "seq": 1,
                "tenant_id": DEMO_TENANT,
                "member_id": member_id,
                "entry_id": f"ent_{member_id}",
                "type": "accrual",
                "points": POINTS,
                "balance_after": POINTS,
                "created_at": "2026-01-01T00:00:00Z",
                "burn_date": burn.isoformat(),
            },
            {
                "pk": pk,
                "sk": keys.lot_sk(burn.isoformat()),
                "burn_date": burn.isoformat(),
                "remaining": POINTS,
                "tenant_id": DEMO_TENANT,
                "member_id": member_id,
                "gsi1pk": keys.burn_gsi1pk(DEMO_TENANT, burn.isoformat(), shard),
                "gsi1sk": pk,
            },
        ]
        for item in items:
            marshalled = dynamo.marshal(item)
            requests.append({"PutRequest": {"Item": marshalled}})
            sizes.append(item_size(marshalled))
            if len(requests) == 25:
                flush()
    if requests:
        flush()
    return sizes


def scan_baseline(sizes: list[int]) -> tuple[int, float]:
    """(Scan calls, read units) of reading every item once, eventually consistent: DynamoDB bills a
    Scan by the bytes it reads, in pages of up to 1 MB, 0.5 unit per 4 KB. Computed from the sizes
    of the items in the table (moto's Scan re-reads the table for each page, far too slow here)."""
    pages, total, page_bytes = 0, 0.0, 0
    for size in sizes:
        if page_bytes + size > PAGE_BYTES:
            pages += 1
            total += read_units(page_bytes, consistent=False)
            page_bytes = 0
        page_bytes += size
    return pages + 1, total + read_units(page_bytes, consistent=False)


def measure(endpoint: str, members: int, due: int) -> Figures:
    client = dynamodb_client(endpoint)
    tables = create_tables(client)
    seed_demo(dynamodb=client, config_table=tables["ConfigTable"], ledger_table=tables["LedgerTable"])
    table = tables["LedgerTable"]
    stage = time.perf_counter()
    sizes = seed(client, table, members, due)
    print(f"seeded {members:,} members ({len(sizes):,} items) in {time.perf_counter() - stage:.0f} s", file=sys.stderr)
    meter = Meter(client)
    metered = MeteredClient(client, meter)
    with frozen_clock(RUN_AT):
        started = time.perf_counter()
        messages: list[dict[str, Any]] = []
        tenants = ConfigStore(tables["ConfigTable"], metered).all_tenant_settings()
        summary = burning.run_tenants(
            BurnStore(table, metered), tenants, "Europe/Moscow", set(), messages.extend, RUN_AT
        )
        # Both local tenants (demo and other) begin the night; only the demo tenant has lots due.
        assert all(nights == [NIGHT.isoformat()] for nights in summary["tenants"].values()), summary
        assert len(summary["tenants"]) == 2 and summary["burn"] == due, summary
        scheduler: list[Call] = list(meter.calls)
        scheduled = time.perf_counter()
        meter.calls.clear()
        ledger = Ledger(Stores(ledger=LedgerStore(table, metered), config=ConfigStore(tables["ConfigTable"], metered)))
        results = [burning.handle_message(ledger, json.dumps(message)) for message in messages]
        worker_seconds = time.perf_counter() - scheduled
        scheduler_seconds = scheduled - started
        worker: list[Call] = list(meter.calls)
        plain = LedgerStore(table, client)
        for n in (0, due - 1, due):  # a burned member, the last one, and one not due
            check_invariant(plain, DEMO_TENANT, f"bench-{n:06d}")
    scan_calls, scan_rru = scan_baseline(sizes)
    return Figures(
        members=members,
        due=due,
        scheduler_calls=len(scheduler),
        scheduler_rru=sum(call.read_units for call in scheduler),
        worker_calls=len(worker),
        worker_rru=sum(call.read_units for call in worker),
        burned_lots=sum(len(r["burned"]) for r in results if r),
        burned_points=sum(r["points"] for r in results if r),
        scheduler_seconds=scheduler_seconds,
        worker_seconds=worker_seconds,
        scan_calls=scan_calls,
        scan_rru=scan_rru,
        table_items=len(sizes),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--due", type=int, default=200, help="members (one lot each) due tonight, every size")
    args = parser.parse_args(argv)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    figures = []
    with moto_server() as endpoint:
        for members in args.members:
            figures.append(measure(endpoint, members, args.due))
            print(f"measured {members:,} members", file=sys.stderr, flush=True)
    print(f"\nOne night's burn, {args.due} members with a lot due, one lot of {POINTS} points each")
    print_table(
        [
            "members",
            ">items in table",
            ">lots burned",
            ">API calls (scheduler + worker)",
            ">read units (scheduler + worker)",
            ">scheduler s",
            ">worker s per 1 000 lots",
            ">Scan calls",
            ">Scan read units",
        ],
        [
            [
                f"{f.members:,}",
                f"{f.table_items:,}",
                f"{f.burned_lots:,}",
                f"{f.scheduler_calls} + {f.worker_calls} = {f.scheduler_calls + f.worker_calls:,}",
                f"{f.scheduler_rru:g} + {f.worker_rru:g} = {f.scheduler_rru + f.worker_rru:,.1f}",
                f"{f.scheduler_seconds:.1f}",
                f"{f.worker_seconds * 1000 / max(f.burned_lots, 1):.1f}",
                f"{f.scan_calls:,}",
                f"{f.scan_rru:,.1f}",
            ]
            for f in figures
        ],
    )
    base, top = figures[0], figures[-1]
    units = [f.scheduler_rru + f.worker_rru for f in (base, top)]
    calls = [f.scheduler_calls + f.worker_calls for f in (base, top)]
    unit_spread = abs(units[1] - units[0]) / units[0]
    call_spread = abs(calls[1] - calls[0]) / calls[0]
    print(
        f"\n{top.members / base.members:g}x the members: read units {unit_spread:+.1%}, API calls {call_spread:+.1%} "
        f"(limit 10 %); the Scan reads {top.scan_rru / max(units[1], 1):,.0f}x what the night reads."
    )
    within = unit_spread <= 0.10 and call_spread <= 0.10 and all(f.burned_lots == f.due for f in figures)
    if not within:
        print("FAILED: the night's cost follows the table, not what is due")
    return 0 if within else 1


if __name__ == "__main__":
    raise SystemExit(main())
