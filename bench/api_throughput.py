"""API throughput: purchases per second through the local stack's API, against a bare boto3 replay
of the same DynamoDB calls on the same moto server, in the same run.

    make bench                                  (with the other benchmarks)
    .venv/bin/python -m bench.api_throughput [-n 40] [--stacks 3] [-c 1 4] [--idempotency-key]

Each measurement runs on a fresh local stack (``python -m local.stack --port 0`` in a temporary
state dir; three per number of clients by default), stopped when its figures are in. On each:

1. One purchase is recorded: moto's request recorder (``/moto-api/recorder``) logs every AWS request
   the stack makes while one purchase is POSTed, which gives the DynamoDB calls of the real code
   path, in order and as sent.
2. Members are enrolled over HTTP, a few per client (clients never share a member, so no purchase
   waits on another's version); both paths are warmed up (each member buys once, and each client
   replays one purchase), untimed.
3. N purchases go through the API (distinct order ids, C client threads, one keep-alive session
   each), and N bare purchases replay the recorded calls from C processes with a boto3 client each
   (as parallel as the stack's worker processes), each purchase on its own copy of the recorded
   member (made before the clock starts, from the items the recorded calls touch) so that every
   condition holds as it did in the recording.

The two paths alternate in batches: moto deep-copies a table (its stream records included) at
every transaction, so each purchase costs moto more than the one before. Alternating keeps that
growth out of the comparison (an API batch and the bare batch after it meet the same moto), short
runs on fresh stacks keep it small, and the last column shows how much it still is. The API's
extra time over the bare replay is ours: the API Gateway emulation and authorizer cache, the hop to
the worker process, Powertools' routing and validation, the ledger's decisions, boto3 in the worker.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore import xform_name
from botocore.config import Config

from bench import print_table
from local.aws import CREDENTIALS
from local.template import REGION
from loyalty.admin import DEMO_TENANT, demo_program
from loyalty.store import keys

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_SECONDS = 60
DYNAMODB_TARGET = "DynamoDB_20120810."
AMOUNT = 250_000  # 2,500.00 in minor units
CURRENCY = demo_program().currency
MEMBERS_PER_CLIENT = 4
BATCH_WRITE_ITEMS = 25  # BatchWriteItem's limit

Job = Callable[[], None]


# ----------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class Stack:
    url: str
    aws_endpoint: str
    ledger_table: str
    api_key: str


def _console(log_path: Path) -> str:
    return log_path.read_text(encoding="utf-8", errors="replace")[-5_000:] if log_path.exists() else "(no output)"


@contextmanager
def local_stack(workdir: Path) -> Iterator[Stack]:
    """``python -m local.stack --port 0`` as a subprocess; its stack.json read once written."""
    state_dir = workdir / "stack"
    state_dir.mkdir()
    log_path = state_dir / "console.log"
    # moto's recorder writes where this says (by default: a file in the current directory).
    env = {**os.environ, "MOTO_RECORDER_FILEPATH": str(workdir / "moto-recording.jsonl")}
    command = [sys.executable, "-m", "local.stack", "--port", "0", "--state-dir", str(state_dir)]
    with log_path.open("wb") as log_file:  # a file, not a pipe: nobody reads a pipe while the bench runs
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        state_file = state_dir / "stack.json"
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not state_file.exists():
            if process.poll() is not None:
                raise RuntimeError(f"the local stack exited with {process.returncode}:\n{_console(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no stack.json after {STARTUP_TIMEOUT_SECONDS} s:\n{_console(log_path)}")
            time.sleep(0.05)
        state = json.loads(state_file.read_text(encoding="utf-8"))
        yield Stack(
            url=state["url"],
            aws_endpoint=state["aws_endpoint"],
            ledger_table=state["tables"]["LedgerTable"],
            api_key=state["tenants"]["demo"]["api_keys"]["integration"],
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Api:
    """The stack's HTTP API, one keep-alive session per thread."""

    def __init__(self, stack: Stack, *, idempotency_key: bool) -> None:
        self.url = stack.url
        self.headers = {"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"}
        self.idempotency_key = idempotency_key
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.session.post(self.url + path, json=body, headers={**self.headers, **(headers or {})})
        if response.status_code not in (200, 201):
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return response.json()

    def enrol(self, member_id: str) -> None:
        self.post("/v1/members", {"member_id": member_id, "email": f"{member_id}@example.com"})

    def purchase(self, member_id: str, order_id: str) -> None:
        headers = {"Idempotency-Key": order_id} if self.idempotency_key else None
        body = {"order_id": order_id, "amount": AMOUNT, "currency": CURRENCY}
        self.post(f"/v1/members/{member_id}/purchases", body, headers)


# ----------------------------------------------------------------------------- recording and replay


@dataclass(frozen=True)
class RecordedCall:
    operation: str  # e.g. "TransactWriteItems"
    body: str  # the request as sent (DynamoDB's JSON: the low-level client's parameters)

    def params(self, token: str, member_id: str) -> dict[str, Any]:
        params = json.loads(self.body.replace(token, member_id))
        params.pop("ClientRequestToken", None)  # botocore makes a fresh one, as the worker's did
        return params

    def keys(self) -> set[tuple[str, str]]:
        """(pk, sk) of every item this request names."""
        request = json.loads(self.body)
        named = [key for table in request.get("RequestItems", {}).values() for key in table.get("Keys", [])]
        named += [request["Key"]] if "Key" in request else []
        for action in request.get("TransactItems", []):
            for spec in action.values():
                named.append(spec.get("Key") or spec["Item"])
        return {(key["pk"]["S"], key["sk"]["S"]) for key in named}


@dataclass
class Replay:
    """A recorded purchase, replayable on copies of the member it was made for."""

    calls: list[RecordedCall]
    table: str  # the ledger table, where the member's items live
    token: str  # the recorded member's id: also inside its pk, its order id and idempotency key
    seed_items: list[dict[str, Any]]  # that member's items the calls touch, as they were before
    other_requests: int  # requests to other AWS services during the recorded purchase

    def seed(self, client: Any, member_ids: list[str]) -> None:
        """Give each member id a copy of the recorded member's state (not timed)."""
        text = json.dumps(self.seed_items)
        items = [item for member_id in member_ids for item in json.loads(text.replace(self.token, member_id))]
        for start in range(0, len(items), BATCH_WRITE_ITEMS):
            request = {
                self.table: [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_ITEMS]]
            }
            while request:
                request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    def purchase(self, client: Any, member_id: str) -> None:
        for call in self.calls:
            getattr(client, xform_name(call.operation))(**call.params(self.token, member_id))


def dynamodb_client(endpoint: str) -> Any:
    config = Config(retries={"mode": "standard", "max_attempts": 3})
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION, **CREDENTIALS, config=config)


class MotoControl:
    """moto's request recorder, and a plain boto3 client, on the stack's AWS endpoint."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.client = dynamodb_client(endpoint)

    def _recorder(self, action: str) -> requests.Response:
        method = requests.get if action == "download-recording" else requests.post
        response = method(f"{self.endpoint}/moto-api/recorder/{action}", timeout=30)
        response.raise_for_status()
        return response

    def record(self, action: Job) -> list[dict[str, Any]]:
        self._recorder("reset-recording")
        self._recorder("start-recording")
        try:
            action()
        finally:
            self._recorder("stop-recording")
        return [json.loads(line) for line in self._recorder("download-recording").text.splitlines() if line]

    def items_of(self, table: str, pk: str) -> list[dict[str, Any]]:
        response = self.client.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        )
        return response["Items"]


def _target(entry: dict[str, Any]) -> str:
    return next((value for name, value in entry["headers"].items() if name.lower() == "x-amz-target"), "")


def _body(entry: dict[str, Any]) -> str:
    body = entry.get("body") or ""
    return base64.b64decode(body).decode() if entry.get("body_encoded") else body


def record_purchase(api: Api, moto: MotoControl, stack: Stack) -> Replay:
    """Enrol a member, let it buy once (as the benchmark's members will have), record its second purchase."""
    member_id = member_name("rec", 0, 0)
    api.enrol(member_id)
    api.purchase(member_id, order_name(member_id, 0))
    before = moto.items_of(stack.ledger_table, keys.member_pk(DEMO_TENANT, member_id))
    log = moto.record(lambda: api.purchase(member_id, order_name(member_id, 1)))
    calls = [RecordedCall(_target(e).removeprefix(DYNAMODB_TARGET), _body(e)) for e in log if _is_dynamodb(e)]
    touched = set().union(*(call.keys() for call in calls))
    seed = [item for item in before if (item["pk"]["S"], item["sk"]["S"]) in touched]
    return Replay(calls, stack.ledger_table, member_id, seed, other_requests=len(log) - len(calls))


def _is_dynamodb(entry: dict[str, Any]) -> bool:
    return _target(entry).startswith(DYNAMODB_TARGET)


def member_name(kind: str, clients: int, number: int) -> str:
    """Ids of one length, so that replayed items are the recorded ones' size: api-c4-000012."""
    return f"{kind}-c{clients}-{number:06d}"


def order_name(member_id: str, number: int) -> str:
    return f"{member_id}-o{number:06d}"


# ----------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """One path at one client count, over every stack it ran on."""

    purchases: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, one per purchase
    stacks: list[list[float]] = field(default_factory=list)  # per stack: the mean latency of each batch

    @property
    def per_second(self) -> float:
        return self.purchases / self.seconds

    @property
    def batch_means(self) -> list[float]:
        return [mean for batches in self.stacks for mean in batches]

    def new_stack(self) -> None:
        self.stacks.append([])

    def add(self, wall: float, latencies: list[float]) -> None:
        self.purchases += len(latencies)
        self.seconds += wall
        self.latencies += latencies
        self.stacks[-1].append(statistics.fmean(latencies))

    def drift(self) -> tuple[float, float]:
        """The median over stacks of the first batch's mean, and of the last batch's."""
        return statistics.median(b[0] for b in self.stacks), statistics.median(b[-1] for b in self.stacks)


def run_clients(queues: list[list[Job]]) -> tuple[float, list[float]]:
    """Run each queue on its own thread, all started together; (wall seconds, each job's seconds)."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(queues) + 1)

    def client(queue: list[Job]) -> None:
        start.wait()
        try:
            for job in queue:
                began = time.perf_counter()
                job()
                latencies.append(time.perf_counter() - began)
        except BaseException as error:  # reported on the main thread
            errors.append(error)

    threads = [threading.Thread(target=client, args=(queue,)) for queue in queues]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise errors[0]
    return wall, latencies


_bare: dict[str, Any] = {}  # in a bare client process: its boto3 client and the replay


def _start_bare_client(endpoint: str, replay: Replay) -> None:
    _bare.update(client=dynamodb_client(endpoint), replay=replay)


def _bare_purchases(member_ids: list[str]) -> tuple[float, float, list[float]]:
    """In a bare client process: one replayed purchase per member; (start, end, each one's seconds)."""
    client, replay = _bare["client"], _bare["replay"]
    latencies = []
    start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
    for member_id in member_ids:
        began = time.monotonic()
        replay.purchase(client, member_id)
        latencies.append(time.monotonic() - began)
    return start, time.monotonic(), latencies


class BareClients:
    """C processes with a boto3 client each: the bare replay as parallel as the stack's workers
    (C threads of one process would queue on its interpreter lock)."""

    def __init__(self, endpoint: str, replay: Replay, clients: int) -> None:
        self.clients = clients
        self.pool = ProcessPoolExecutor(
            clients,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_bare_client,
            initargs=(endpoint, replay),
        )

    def run(self, member_ids: list[str]) -> tuple[float, list[float]]:
        """One purchase per member id, dealt over the clients; (wall seconds, each one's seconds)."""
        shares = [member_ids[i :: self.clients] for i in range(self.clients)]
        results = [future.result() for future in [self.pool.submit(_bare_purchases, share) for share in shares]]
        wall = max(end for _, end, _ in results) - min(start for start, _, _ in results)
        return wall, [latency for *_, latencies in results for latency in latencies]

    def close(self) -> None:
        self.pool.shutdown()


@dataclass
class Level:
    """One number of clients: its API members, order counters and bare member numbers."""

    clients: int
    members: list[list[str]]  # per client
    orders: dict[str, int] = field(default_factory=dict)
    bare_count: int = 0

    def api_jobs(self, api: Api, count: int) -> list[list[Job]]:
        queues: list[list[Job]] = [[] for _ in range(self.clients)]
        for i in range(count):
            own = self.members[i % self.clients]
            member_id = own[(i // self.clients) % len(own)]
            self.orders[member_id] = self.orders.get(member_id, 0) + 1
            order_id = order_name(member_id, self.orders[member_id])
            queues[i % self.clients].append(lambda m=member_id, o=order_id: api.purchase(m, o))
        return queues

    def bare_members(self, count: int) -> list[str]:
        numbers = range(self.bare_count, self.bare_count + count)
        self.bare_count += count
        return [member_name("raw", self.clients, n) for n in numbers]


def prepare_level(api: Api, moto: MotoControl, replay: Replay, bare: BareClients) -> Level:
    """Enrol each client's members over HTTP; then warm both paths up, untimed: one purchase per
    API member (workers started, each member holding today's lot like the recorded one) and one
    bare purchase per client (processes started, connections open)."""
    clients = bare.clients
    members = [
        [member_name("api", clients, c * MEMBERS_PER_CLIENT + k) for k in range(MEMBERS_PER_CLIENT)]
        for c in range(clients)
    ]
    for own in members:
        for member_id in own:
            api.enrol(member_id)
    level = Level(clients, members)
    run_clients(level.api_jobs(api, clients * MEMBERS_PER_CLIENT))
    bare.run(seeded_members(moto, replay, level, clients))
    return level


def seeded_members(moto: MotoControl, replay: Replay, level: Level, count: int) -> list[str]:
    """``count`` new bare members, each a copy of the recorded member as it was (untimed)."""
    member_ids = level.bare_members(count)
    replay.seed(moto.client, member_ids)
    return member_ids


def measure_level(
    api: Api,
    moto: MotoControl,
    replay: Replay,
    bare_clients: BareClients,
    level: Level,
    settings: argparse.Namespace,
    into: tuple[Timing, Timing],
) -> None:
    """Alternate API and bare batches until each path has made ``settings.purchases``."""
    through_api, bare = into
    through_api.new_stack()
    bare.new_stack()
    done = 0
    while done < settings.purchases:
        size = min(settings.batch, settings.purchases - done)
        through_api.add(*run_clients(level.api_jobs(api, size)))
        bare.add(*bare_clients.run(seeded_members(moto, replay, level, size)))
        done += size


# ----------------------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def print_recording(replay: Replay) -> None:
    calls = ", ".join(call.operation for call in replay.calls)
    size = sum(len(call.body) for call in replay.calls)
    print(f"one purchase through the API makes {len(replay.calls)} DynamoDB calls (moto's recorder): {calls};")
    print(f"{size:,} request bytes; {replay.other_requests} requests to other AWS services during it")


def print_results(results: list[tuple[int, Timing, Timing]]) -> None:
    rows = []
    for clients, through_api, bare in results:
        for path, timing in (("API (local stack)", through_api), ("bare boto3, same DynamoDB calls", bare)):
            latencies = timing.latencies
            rows.append(
                [
                    path,
                    clients,
                    timing.purchases,
                    f"{timing.per_second:.1f}",
                    ms(statistics.fmean(latencies)),
                    ms(percentile(latencies, 0.5)),
                    ms(percentile(latencies, 0.95)),
                    "{} -> {}".format(*map(ms, timing.drift())),
                ]
            )
    columns = ["path", ">clients", ">purchases", ">per second", ">mean ms", ">p50 ms", ">p95 ms"]
    print_table([*columns, ">batch mean ms, first -> last"], rows)
    print("\nthe comparison (same stack, same moments): what the API adds to the DynamoDB calls it makes")
    rows = []
    for clients, through_api, bare in results:
        # Batch by batch: an API batch and the bare batch right after it see the same moto.
        extra = [a - b for a, b in zip(through_api.batch_means, bare.batch_means, strict=True)]
        rows.append([clients, f"{bare.per_second / through_api.per_second:.2f}", ms(statistics.median(extra))])
    print_table([">clients", ">bare / API (per second)", ">API - bare, ms per purchase (median of batches)"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--purchases", type=int, default=40, help="per path and stack (default 40)")
    parser.add_argument("--stacks", type=int, default=3, help="fresh stacks per client count (default 3)")
    parser.add_argument("-c", "--clients", type=int, nargs="+", default=[1, 4], help="concurrent clients (1 4)")
    parser.add_argument("--batch", type=int, default=5, help="purchases per alternating batch (default 5)")
    parser.add_argument("--idempotency-key", action="store_true", help="send an Idempotency-Key with each purchase")
    args = parser.parse_args(argv)

    results = []
    recorded = None
    for clients in args.clients:
        timings = (Timing(), Timing())
        for _ in range(args.stacks):  # fresh stacks: short runs, each from empty tables
            with tempfile.TemporaryDirectory(prefix="api-throughput-") as tmp, local_stack(Path(tmp)) as stack:
                api = Api(stack, idempotency_key=args.idempotency_key)
                moto = MotoControl(stack.aws_endpoint)
                replay = record_purchase(api, moto, stack)
                if recorded is None:
                    recorded = replay
                    print_recording(replay)
                bare_clients = BareClients(stack.aws_endpoint, replay, clients)
                try:
                    level = prepare_level(api, moto, replay, bare_clients)
                    measure_level(api, moto, replay, bare_clients, level, args, timings)
                finally:
                    bare_clients.close()
        results.append((clients, *timings))
    key = "with an Idempotency-Key" if args.idempotency_key else "without an Idempotency-Key"
    print(
        f"\npurchases {key}; per client count {args.stacks} fresh stacks, each {args.purchases} purchases"
        f" per path, API and bare replay alternating in batches of {args.batch}"
    )
    print_results(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
