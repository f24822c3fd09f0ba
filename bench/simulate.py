"""Program simulator: orders per second replayed by ``python -m loyalty.simulate``.

    make bench                                          (with the other benchmarks)
    .venv/bin/python -m bench.simulate [--sizes 100000 1000000] [--shuffled] [--seed 7]
    .venv/bin/python -m bench.simulate --write-csv examples/orders.csv --sizes 200 --members 20 --date-only

For each size N it writes N synthetic orders (seeded: the same file every run) to a temporary CSV,
then times what the command does with them: read the CSV into the order book (and sort it when the
file is out of order: ``--shuffled``), replay it under the candidate and the baseline
(``examples/candidate.json``, ``examples/current.json``) and build the report; beside it, one replay
alone. The orders: N // 10 members (``--members``) whose activity and basket sizes vary (Pareto and
log-normal), RFC 3339 times over one year (``--days``), amounts in minor units.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import print_table
from loyalty.simulate import Replay, format_report, load_program, read_orders_csv, simulate_book

ROOT = Path(__file__).resolve().parent.parent
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def generate(
    n: int, members: int, seed: int = 7, days: int = 365, date_only: bool = False
) -> Iterator[tuple[str, str, str, int]]:
    """N orders in time order: (member_id, order_id, date, amount)."""
    rng = random.Random(seed)
    ids = [f"m{i:06d}" for i in range(members)]
    activity = [rng.paretovariate(1.3) for _ in ids]
    basket = [rng.lognormvariate(0, 0.5) * 2_500_00 for _ in ids]  # a member's typical order, minor units
    total, cumulative = 0.0, []
    for weight in activity:
        total += weight
        cumulative.append(total)
    who = rng.choices(range(members), cum_weights=cumulative, k=n)
    seconds = sorted(rng.randrange(days * 86_400) for _ in range(n))
    for i, (m, second) in enumerate(zip(who, seconds, strict=True)):
        moment = START + dt.timedelta(seconds=second)
        when = moment.date().isoformat() if date_only else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        amount = max(100_00, round(basket[m] * rng.lognormvariate(0, 0.6), -2))
        yield ids[m], f"o{i + 1:07d}", when, int(amount)


def write_orders(path: Path, rows: Iterator[tuple[str, str, str, int]], shuffled: bool = False, seed: int = 7) -> None:
    with path.open("w", newline="", encoding="utf-8") as target:
        writer = csv.writer(target, lineterminator="\n")
        writer.writerow(["member_id", "order_id", "date", "amount"])
        if shuffled:
            listed = list(rows)
            random.Random(seed).shuffle(listed)
            writer.writerows(listed)
        else:
            writer.writerows(rows)


def stage(results: dict[str, tuple[float, float]], name: str, started: tuple[float, float]) -> None:
    """Keep the best wall and CPU seconds of a stage since ``started`` (perf_counter, process_time)."""
    wall, cpu = time.perf_counter() - started[0], time.process_time() - started[1]
    best_wall, best_cpu = results.get(name, (float("inf"), float("inf")))
    results[name] = (min(best_wall, wall), min(best_cpu, cpu))


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (Linux's ru_maxrss would carry the parent's peak
    across fork and exec), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def measure_file(path: Path, repeat: int) -> dict[str, object]:
    """Time the command's work on one file, in this (fresh) process; the peak RSS is its own."""
    candidate = load_program((ROOT / "examples" / "candidate.json").read_bytes(), "candidate")
    baseline = load_program((ROOT / "examples" / "current.json").read_bytes(), "current")
    floor = peak_rss_mb()
    times: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        started = now()
        with path.open(encoding="utf-8-sig", newline="") as source:
            book = read_orders_csv(source, path.name)
        stage(times, "read", started)
        started = now()
        book.sort()
        stage(times, "sort", started)
        started = now()
        report = simulate_book(book, candidate, baseline, 0.3)
        format_report(report)
        stage(times, "both", started)
        started = now()
        Replay(book, candidate, 0.3).run()
        stage(times, "one", started)
        members, months = len(book.member_ids), len(report.candidate.months)
        del book, report
    return {
        "members": members,
        "months": months,
        "times": times,
        "rss_floor_mb": floor,
        "rss_mb": peak_rss_mb(),
    }


def measure(n: int, members: int, args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    path = workdir / f"orders-{n}.csv"
    write_orders(path, generate(n, members, args.seed, args.days), args.shuffled, args.seed)
    command = [sys.executable, "-m", "bench.simulate", "--measure-file", str(path), "--repeat", str(args.repeat)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(done.stdout)
    return {"orders": n, "members": members, "bytes": path.stat().st_size, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--members", type=int, help="members (default: a tenth of the orders)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; each stage's best time counts")
    parser.add_argument("--shuffled", action="store_true", help="write the rows out of time order (the sort path)")
    parser.add_argument("--write-csv", type=Path, help="only write the first size's orders to this file")
    parser.add_argument("--date-only", action="store_true", help="with --write-csv: dates, not date-times")
    parser.add_argument("--measure-file", type=Path, help=argparse.SUPPRESS)  # the child process's part
    args = parser.parse_args(argv)
    if args.measure_file:
        print(json.dumps(measure_file(args.measure_file, args.repeat)))
        return 0
    if args.write_csv:
        n = args.sizes[0]
        rows = generate(n, args.members or max(1, n // 10), args.seed, args.days, args.date_only)
        write_orders(args.write_csv, rows, args.shuffled, args.seed)
        print(f"wrote {n} orders to {args.write_csv}")
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp:
        for n in args.sizes:
            print(f"... {n:,} orders", file=sys.stderr)
            results.append(measure(n, args.members or max(1, n // 10), args, Path(tmp)))
    order = "shuffled (sorted after reading)" if args.shuffled else "in time order"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\nsynthetic orders (seed {args.seed}, {args.days} days, RFC 3339 times, rows {order}); candidate "
        "examples/candidate.json (spend window, 180-day lifetime), baseline examples/current.json (the demo "
        "program); redemption rate 0.3; each size in a fresh process, best of "
        f"{args.repeat} runs per stage; load average at the end {load} on {os.cpu_count()} CPUs"
    )
    rows = []
    for r in results:
        t = r["times"]
        wall = t["read"][0] + t["sort"][0] + t["both"][0]
        cpu = t["read"][1] + t["sort"][1] + t["both"][1]
        r["rate"] = r["orders"] / cpu
        rows.append(
            [f"{r['orders']:,}", f"{r['members']:,}", f"{r['bytes'] / 1e6:.1f}", f"{t['read'][1]:.2f}",
             f"{t['sort'][1]:.2f}", f"{t['both'][1]:.2f}", f"{cpu:.2f}", f"{wall:.2f}", f"{r['rate']:,.0f}",
             f"{r['orders'] / t['one'][1]:,.0f}", f"{r['rss_floor_mb']:.0f} -> {r['rss_mb']:.0f}"]
        )  # fmt: skip
    print_table(
        ["orders", ">members", ">CSV MB", ">read s", ">sort s", ">both replays + report s", ">total CPU s",
         ">total wall s", ">orders/s (CPU)", ">orders/s, one replay", ">RSS MB, imports -> peak"],
        rows,
    )  # fmt: skip
    if len(results) >= 2:
        small, large = results[0], results[-1]
        print(
            f"\norders per second at {large['orders']:,} / at {small['orders']:,}: {large['rate'] / small['rate']:.2f} "
            "(1.00 = the rate holds as the history grows)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
