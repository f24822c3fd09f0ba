"""The program simulator: hand-computed histories, each tier basis, burns, the baseline comparison,
input errors, the PNG, and Hypothesis properties of the replay."""

from __future__ import annotations

import datetime as dt
import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty import chart, rules
from loyalty.admin import demo_program
from loyalty.models import Program, Tier
from loyalty.simulate import (
    Order,
    OrderBook,
    Replay,
    Report,
    SimulationInputError,
    load_program,
    main,
    parse_when,
    read_orders_csv,
    simulate,
    simulate_book,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def program(**changes: object) -> Program:
    """5 % up to 1,000.00 of lifetime spend, then 10 %; a point is 1.00; 20 % of an order payable."""
    base = {
        "tenant_id": "t",
        "program_id": "p",
        "name": "P",
        "currency": "RUB",
        "point_value": 100,
        "tiers": (
            Tier(name="Silver", threshold=0, accrual_bp=500),
            Tier(name="Gold", threshold=1_000_00, accrual_bp=1_000),
        ),
        "max_redeem_share_bp": 2_000,
        "lifetime_days": 60,
    }
    base.update(changes)
    return Program.model_validate(base)


def book_of(*rows: tuple[str, str, int]) -> OrderBook:
    """(member, date or date-time, amount) rows, as the CSV reader would take them."""
    text = "member_id,order_id,date,amount\n" + "".join(
        f"{member},o{i},{when},{amount}\n" for i, (member, when, amount) in enumerate(rows)
    )
    return read_orders_csv(io.StringIO(text))


def run(book: OrderBook, prog: Program, rate: float = 0.0) -> tuple[Replay, list[tuple[int, int, int, int, int]]]:
    calls: list[tuple[int, int, int, int, int]] = []
    replay = Replay(book, prog, rate, trace=lambda *args: calls.append(args)).run()
    return replay, calls


def months(replay: Replay) -> dict[str, tuple[int, ...]]:
    """month -> (issued, redeemed, burned, outstanding)."""
    return {row[0]: (row[3], row[4], row[5], row[6]) for row in replay.months}


# ------------------------------------------------------------------------------------ by hand


def test_one_member_across_months_by_hand():
    """Welcome 10 points, redemption rate 0.5, 20 % cap, 60-day lifetime:

    Jan 05  400.00  enrol +10 (burns Mar 06); uses 5 of 10; Silver 5 % -> +20 (Mar 06 lot: 25)
    Jan 20  800.00  uses 12 of 25 (Mar 06 lot: 13); Silver -> +40 (burns Mar 21); spend 1,200.00: Gold
    Feb 10  100.00  wants 26 of 53, the cap is 20 % of 100.00 = 20: uses 20 (Mar 06 lot: 0, Mar 21
                    lot: 33); Gold 10 % -> +10 (burns Apr 11)
    Mar 21          33 burn;  Apr 11: 10 burn
    Apr 20  500.00  nothing left to use; Gold -> +50 (burns Jun 19)
    """
    book = book_of(
        ("ann", "2026-01-05", 400_00),
        ("ann", "2026-01-20", 800_00),
        ("ann", "2026-02-10", 100_00),
        ("ann", "2026-04-20", 500_00),
    )
    replay, calls = run(book, program(welcome_bonus=10), rate=0.5)
    assert months(replay) == {
        "2026-01": (70, 17, 0, 53),
        "2026-02": (10, 20, 0, 43),
        "2026-03": (0, 0, 33, 10),
        "2026-04": (50, 0, 10, 50),
    }
    assert [(available, used, issued) for _, _, available, used, issued in calls] == [
        (10, 5, 20),
        (25, 12, 40),
        (53, 20, 10),
        (0, 0, 50),
    ]
    assert replay.earned == [130]
    assert replay.balance == [50]
    report = replay.report()
    jan = report.months[0]
    assert (jan.orders, jan.revenue, jan.liability) == (2, 1_200_00, 53_00)
    assert jan.issued_share == pytest.approx(70_00 / 1_200_00)
    assert jan.redeemed_share == pytest.approx(17_00 / 1_200_00)
    assert [row.tiers for row in report.months] == [[0, 1], [0, 1], [0, 1], [0, 1]]
    assert (report.issued, report.redeemed, report.burned, report.outstanding, report.liability) == (
        130,
        37,
        43,
        50,
        50_00,
    )


def test_points_are_spendable_through_the_day_before_their_burn_date():
    prog = program(lifetime_days=10, max_redeem_share_bp=10_000)
    earned = ("ann", "2026-01-01", 200_00)  # 10 points, burning on 2026-01-11
    day_before, _ = run(book_of(earned, ("ann", "2026-01-10", 10_00)), prog, rate=1.0)
    assert months(day_before)["2026-01"] == (10 + 0, 10, 0, 0)
    on_the_day, calls = run(book_of(earned, ("ann", "2026-01-11", 10_00)), prog, rate=1.0)
    assert calls[1][2:4] == (0, 0)  # nothing available, nothing used
    assert months(on_the_day)["2026-01"] == (10, 0, 10, 0)
    assert rules.burn_date(prog, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) == dt.date(2026, 1, 11)


def test_burns_after_the_last_order_count_until_its_month_ends():
    prog = program(lifetime_days=20)
    replay, _ = run(book_of(("ann", "2026-01-02", 200_00), ("bob", "2026-01-25", 200_00)), prog)
    assert months(replay) == {"2026-01": (20, 0, 10, 10)}  # ann's 10 burn on Jan 22, bob's in February


def test_months_without_orders_still_get_a_row():
    replay, _ = run(book_of(("ann", "2026-01-02", 200_00), ("ann", "2026-04-02", 200_00)), program())
    assert list(months(replay)) == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert replay.months[1][1:3] == (0, 0)  # no orders, no revenue


def test_orders_below_the_minimum_accrue_nothing_but_still_redeem():
    prog = program(min_order_amount=100_00, max_redeem_share_bp=10_000)
    _, calls = run(book_of(("ann", "2026-01-02", 200_00), ("ann", "2026-01-03", 50_00)), prog, rate=1.0)
    assert [(used, issued) for *_, used, issued in calls] == [(0, 10), (10, 0)]


def test_the_welcome_bonus_comes_once_at_the_first_order():
    replay, calls = run(book_of(("ann", "2026-01-02", 1), ("ann", "2026-01-03", 1)), program(welcome_bonus=25))
    assert [available for _, _, available, _, _ in calls] == [25, 25]
    assert replay.earned == [25]


# ------------------------------------------------------------------------------------ tiers by basis


def test_tier_by_lifetime_spend_counts_from_the_next_order():
    _, calls = run(book_of(("ann", "2026-01-02", 1_000_00), ("ann", "2026-01-03", 100_00)), program())
    assert [issued for *_, issued in calls] == [50, 10]  # 5 % for the order that reaches Gold, 10 % after


def test_tier_by_lifetime_spend_counts_qualifying_orders_only():
    book = book_of(
        ("ann", "2026-01-02", 999_00),  # 49 points; 999.00 spent
        ("ann", "2026-01-03", 50_00),  # below the minimum: no points, and the spend does not move
        ("ann", "2026-01-04", 100_00),  # still Silver: 5 points; 1,099.00: Gold
        ("ann", "2026-01-05", 100_00),  # Gold: 10 points
    )
    _, calls = run(book, program(min_order_amount=100_00))
    assert [issued for *_, issued in calls] == [49, 0, 5, 10]


def test_tier_by_purchase_count_counts_qualifying_purchases_only():
    prog = program(
        tier_basis="purchase_count",
        min_order_amount=100_00,
        tiers=(Tier(name="One", threshold=0, accrual_bp=100), Tier(name="Two", threshold=2, accrual_bp=200)),
    )
    book = book_of(
        ("ann", "2026-01-02", 100_00),  # 1 % = 1 point; 1 purchase
        ("ann", "2026-01-03", 50_00),  # below the minimum: nothing, and it does not count
        ("ann", "2026-01-04", 100_00),  # still tier One: 1 point; 2 purchases: Two
        ("ann", "2026-01-05", 100_00),  # 2 % = 2 points
    )
    replay, calls = run(book, prog)
    assert [issued for *_, issued in calls] == [1, 0, 1, 2]
    assert replay.months[0][7] == (0, 1)


WINDOW_TIERS = (Tier(name="Base", threshold=0, accrual_bp=100), Tier(name="Top", threshold=200_00, accrual_bp=300))
WINDOW_ORDERS = (
    ("ann", "2026-01-01", 200_00),  # Base: 2 points; the window holds 200.00: Top
    ("ann", "2026-01-15", 100_00),  # Jan 01 is within 30 days: Top, 3 points
    ("ann", "2026-02-05", 100_00),  # the window (Jan 07..Feb 05) holds Jan 15 only: 100.00, Base: 1 point
    ("ann", "2026-02-20", 100_00),  # the window (Jan 22..) holds Feb 05: Base: 1 point; then 200.00: Top
)


def test_tier_by_spend_window_follows_the_window():
    prog = program(tiers=WINDOW_TIERS, tier_basis="spend_window", tier_window_days=30, tier_downgrade="window")
    replay, calls = run(book_of(*WINDOW_ORDERS), prog)
    assert [issued for *_, issued in calls] == [2, 3, 1, 1]
    # at Jan 31 the window (Jan 02..Jan 31) holds 100.00: Base; at Feb 28 it holds Feb 05 + Feb 20: Top
    assert [row[7] for row in replay.months] == [(1, 0), (0, 1)]


def test_tier_by_spend_window_without_downgrade_keeps_the_best_tier():
    prog = program(tiers=WINDOW_TIERS, tier_basis="spend_window", tier_window_days=30, tier_downgrade="never")
    replay, calls = run(book_of(*WINDOW_ORDERS), prog)
    assert [issued for *_, issued in calls] == [2, 3, 3, 3]
    assert [row[7] for row in replay.months] == [(0, 1), (0, 1)]


def test_a_window_longer_than_366_days_counts_in_buckets_as_the_ledger_does():
    """733 days: 3-day buckets (``rules.window_bucket_days``); an order's spend leaves on the day
    after its bucket's last day + 732, as ``rules.window_leaves`` says."""
    prog = program(tiers=WINDOW_TIERS, tier_basis="spend_window", tier_window_days=733, tier_downgrade="window")
    first = dt.date(2026, 1, 1)
    leaves = rules.window_leaves(rules.window_bucket(first, 733), 733)
    assert 733 <= (leaves - first).days <= 735
    before, on = leaves - dt.timedelta(days=1), leaves
    book = book_of(("ann", first.isoformat(), 200_00), ("ann", before.isoformat(), 100_00))
    _, calls = run(book, prog)
    assert [issued for *_, issued in calls] == [2, 3]  # still Top the day before it leaves
    book = book_of(("ann", first.isoformat(), 200_00), ("ann", on.isoformat(), 100_00))
    _, calls = run(book, prog)
    assert [issued for *_, issued in calls] == [2, 1]  # Base on the day it leaves


def test_spend_window_counts_qualifying_orders_only():
    prog = program(
        tiers=WINDOW_TIERS, tier_basis="spend_window", tier_window_days=30, tier_downgrade="window",
        min_order_amount=100_00,
    )  # fmt: skip
    book = book_of(("ann", "2026-01-01", 99_00), ("ann", "2026-01-02", 150_00), ("ann", "2026-01-03", 100_00))
    _, calls = run(book, prog)
    assert [issued for *_, issued in calls] == [0, 1, 1]  # the window holds 150.00 at Jan 03, not 249.00


# ------------------------------------------------------------------------------------ baseline


def test_members_worse_off_under_the_candidate_sorted_by_loss():
    baseline = program(tiers=(Tier(name="Flat", threshold=0, accrual_bp=500),))
    candidate = program(tiers=(Tier(name="Flat", threshold=0, accrual_bp=200),), welcome_bonus=50)
    book = book_of(
        ("big", "2026-01-02", 10_000_00),  # candidate 200 + 50, baseline 500: -250 points
        ("small", "2026-01-02", 1_000_00),  # candidate 20 + 50, baseline 50: better off
        ("mid", "2026-01-03", 4_000_00),  # candidate 80 + 50, baseline 200: -70 points
    )
    report = simulate_book(book, candidate, baseline, 0.0)
    assert [(w.member_id, w.candidate_points, w.baseline_points, w.difference) for w in report.worse_off] == [
        ("big", 250, 500, -250_00),
        ("mid", 130, 200, -70_00),
    ]


def test_worse_off_compares_money_when_point_values_differ():
    baseline = program(tiers=(Tier(name="Flat", threshold=0, accrual_bp=500),))
    cheap_points = program(tiers=(Tier(name="Flat", threshold=0, accrual_bp=500),), point_value=50)
    report = simulate_book(book_of(("ann", "2026-01-02", 1_000_00)), cheap_points, baseline, 0.0)
    assert report.worse_off == []  # 100 points of 0.50 against 50 points of 1.00: the same value
    assert (report.candidate.issued, report.baseline.issued) == (100, 50)


def test_programs_in_two_currencies_are_refused():
    with pytest.raises(SimulationInputError, match=r"RUB .* EUR"):
        simulate_book(book_of(("ann", "2026-01-02", 1)), program(), program(currency="EUR"), 0.0)


# ------------------------------------------------------------------------------------ input


def test_dates_and_rfc3339_times_are_utc_days():
    assert parse_when("2026-02-01") == (dt.date(2026, 2, 1).toordinal(), 0)
    assert parse_when("2026-02-01T01:00:00+03:00") == (dt.date(2026, 1, 31).toordinal(), 22 * 3600)
    assert parse_when("2026-01-31t23:30:00.250-01:00") == (dt.date(2026, 2, 1).toordinal(), 30 * 60)
    assert parse_when("2026-02-01 10:00:00Z") == (dt.date(2026, 2, 1).toordinal(), 10 * 3600)
    assert parse_when("2026-02-01T10:00:00") == (dt.date(2026, 2, 1).toordinal(), 10 * 3600)  # no offset: UTC
    for bad in ("20260201", "2026-02-30", "2026-2-1", "2026-02-01T25:00:00Z", "2026-02-01T10:00Z", "yesterday"):
        with pytest.raises(ValueError):
            parse_when(bad)


def test_rows_out_of_order_are_replayed_in_time_order_ties_in_file_order():
    rows = [("ann", "2026-03-01", 100_00), ("bob", "2026-01-01T10:00:00Z", 1), ("ann", "2026-01-01T10:00:00Z", 5)]
    book = book_of(*rows)
    assert not book.in_order
    book.sort()
    assert [book.member_ids[m] for m in book.members] == ["bob", "ann", "ann"]
    assert list(book.amounts) == [1, 5, 100_00]
    in_order = simulate_book(book_of(rows[1], rows[2], rows[0]), program(), None, 0.3)
    assert simulate_book(book_of(*rows), program(), None, 0.3) == in_order


def test_simulate_takes_orders_and_answers_json():
    orders = [
        Order(member_id="ann", order_id="1", date="2026-01-05", amount=400_00),
        Order(member_id="ann", order_id="2", date=dt.date(2026, 1, 20), amount=800_00),
        Order(member_id="ann", order_id="3", date="2026-02-10T10:00:00+03:00", amount=100_00),
    ]
    report = simulate(orders, program(welcome_bonus=10), program(), 0.5)
    same = simulate_book(
        book_of(("ann", "2026-01-05", 400_00), ("ann", "2026-01-20", 800_00), ("ann", "2026-02-10T07:00:00Z", 100_00)),
        program(welcome_bonus=10),
        program(),
        0.5,
    )
    assert report == same
    assert Report.model_validate_json(report.model_dump_json()) == report
    assert json.loads(report.model_dump_json())["candidate"]["months"][0]["month"] == "2026-01"
    with pytest.raises(ValueError):
        Order(member_id="ann", order_id="1", date="20260105", amount=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "orders: the file is empty"),
        ("member,order_id,date,amount\n", "orders line 1: the header lacks member_id"),
        ("member_id,order_id,date,amount\na,1,2026-01-01\n", "orders line 2: 3 fields, the header has 4"),
        ("member_id,order_id,date,amount\n,1,2026-01-01,5\n", "orders line 2: member_id is empty"),
        ("member_id,order_id,date,amount\na,,2026-01-01,5\n", "orders line 2: order_id is empty"),
        ("member_id,order_id,date,amount\na,1,2026-01-01,5\na,2,01/02/2026,5\n", "orders line 3: date '01/02/2026'"),
        ("member_id,order_id,date,amount\na,1,2026-01-01,12.50\n", "orders line 2: amount '12.50' is not a whole"),
        ("member_id,order_id,date,amount\na,1,2026-01-01,-5\n", "orders line 2: amount '-5'"),
        ("member_id,order_id,date,amount\na,1,2026-01-01,0\n", "orders line 2: amount must be from 1 to"),
        ("member_id,order_id,date,amount\na,1,2026-01-01,99999999999999999999\n", "orders line 2: amount must be"),
        ("member_id,order_id,date,amount\na,1,2026-01-01,1_000\n", "orders line 2: amount '1_000'"),
    ],
)
def test_bad_csv_names_the_line_and_field(text, message):
    with pytest.raises(SimulationInputError) as raised:
        read_orders_csv(io.StringIO(text))
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_extra_columns_in_any_order_and_blank_lines_are_fine():
    book = read_orders_csv(io.StringIO("amount,channel,date,order_id,member_id\n500,web,2026-01-01,1,ann\n\n"))
    assert (book.member_ids, list(book.amounts)) == (["ann"], [500])


def test_a_header_without_orders_has_nothing_to_replay():
    with pytest.raises(SimulationInputError, match="no orders"):
        simulate_book(read_orders_csv(io.StringIO("member_id,order_id,date,amount\n")), program())


def test_program_json_needs_no_tenant_and_errors_are_one_line():
    assert load_program((EXAMPLES / "current.json").read_text()).tenant_id == "simulation"
    current = load_program((EXAMPLES / "current.json").read_text())
    assert current.model_dump(exclude={"tenant_id"}) == demo_program().model_dump(exclude={"tenant_id"})
    with pytest.raises(SimulationInputError, match=r"^p.json: not JSON: .* line 1 column 2$"):
        load_program("{nope", "p.json")
    data = json.loads((EXAMPLES / "candidate.json").read_text())
    data["tiers"][0]["accrual_bp"] = 20_000
    data["colour"] = "red"
    with pytest.raises(SimulationInputError) as raised:
        load_program(json.dumps(data), "c.json")
    assert str(raised.value) == (
        "c.json: tiers.0.accrual_bp: Input should be less than or equal to 10000; "
        "colour: Extra inputs are not permitted"
    )


# ------------------------------------------------------------------------------------ command line


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loyalty.simulate", *args], capture_output=True, text=True, cwd=tmp_path, check=False
    )


def test_command_on_the_examples_writes_table_csv_and_png(tmp_path):
    done = cli(
        tmp_path,
        *("--orders", str(EXAMPLES / "orders.csv"), "--program", str(EXAMPLES / "candidate.json")),
        *("--baseline", str(EXAMPLES / "current.json"), "--csv", "out.csv", "--chart", "out.png"),
        *("--worse-off-csv", "worse.csv", "--json", "report.json"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "| month   | issued cand | issued base |" in done.stdout
    assert "would earn less under the candidate" in done.stdout
    report = Report.model_validate_json((tmp_path / "report.json").read_text())
    assert report.orders == sum(1 for _ in (EXAMPLES / "orders.csv").open()) - 1
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0].startswith("program,program_id,month,orders,currency,revenue,issued_points")
    assert len(lines) == 1 + 2 * len(report.candidate.months)
    assert len((tmp_path / "worse.csv").read_text().splitlines()) == 1 + len(report.worse_off)
    check_png((tmp_path / "out.png").read_bytes())


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        ({}, ["--orders", "missing.csv", "--program", "p.json"], "error: p.json: No such file or directory"),
        ({"p.json": "{}"}, ["--orders", "missing.csv", "--program", "p.json"], "error: p.json: name: Field required"),
        (
            {"o.csv": "member_id,order_id,date,amount\na,1,2026-13-01,5\n"},
            ["--orders", "o.csv", "--program", str(EXAMPLES / "current.json")],
            "error: o.csv line 2: date '2026-13-01' is not YYYY-MM-DD or an RFC 3339 date-time",
        ),
        (
            {"o.csv": "member_id,order_id,date,amount\na,1,2026-01-01,5\n"},
            ["--orders", "o.csv", "--program", str(EXAMPLES / "current.json"), "--redemption-rate", "1.5"],
            "--redemption-rate: 1.5 is not between 0 and 1",
        ),
    ],
)
def test_command_refuses_bad_input_in_one_line_with_status_2(tmp_path, files, args, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    done = cli(tmp_path, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    if not message.startswith("--"):
        assert done.stderr.count("\n") == 1


def test_main_in_process(tmp_path, capsys):
    (tmp_path / "o.csv").write_text("member_id,order_id,date,amount\nann,1,2026-01-05,40000\n")
    assert main(["--orders", str(tmp_path / "o.csv"), "--program", str(EXAMPLES / "current.json")]) == 0
    out = capsys.readouterr().out
    assert "1 orders of 1 members, 2026-01-05 to 2026-01-05, revenue 400.00 RUB" in out
    assert "would earn less" not in out


# ------------------------------------------------------------------------------------ the PNG


def check_png(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        at += 12 + length
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, color_type, *_ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color_type) == (8, 2)
    raw = zlib.decompress(chunks[1][1])
    assert len(raw) == height * (1 + 3 * width)
    assert all(raw[row * (1 + 3 * width)] == 0 for row in range(height))
    return width, height


def test_canvas_png_round_trips_its_pixels():
    canvas = chart.Canvas(7, 3)
    canvas.dot(2, 1, (10, 20, 30))
    data = canvas.png()
    assert check_png(data) == (7, 3)
    raw = zlib.decompress(data[data.index(b"IDAT") + 4 : -12 - 4])
    row = raw[1 * 22 : 2 * 22]
    assert row[1 + 3 * 2 : 1 + 3 * 3] == bytes((10, 20, 30))
    assert row.count(255) == 3 * 7 - 3


def test_text_draws_the_glyph_bits():
    canvas = chart.Canvas(12, 7)
    canvas.text(0, 0, "1-", (0, 0, 0))
    inked = {(i // 3 % 12, i // 3 // 12) for i in range(0, len(canvas.pixels), 3) if canvas.pixels[i] == 0}
    one = {(x, y) for y, bits in enumerate(chart.glyph("1")) for x in range(5) if bits & (0x10 >> x)}
    dash = {(6 + x, 3) for x in range(5)}
    assert inked == one | dash
    assert chart.glyph("~") == chart.glyph("?")
    assert all(len(code) == 14 for code in chart.FONT.values())


def test_ticks_and_labels():
    assert chart.nice_ticks(0) == [0.0, 1.0]
    assert chart.nice_ticks(1_900) == [0.0, 500.0, 1000.0, 1500.0, 2000.0]
    assert chart.compact(1_500) == "1.5K"
    assert chart.compact(2_000_000) == "2M"
    assert chart.compact(0) == "0"


def test_chart_with_one_month_and_no_baseline():
    book = book_of(("ann", "2026-01-05", 400_00))
    from loyalty.simulate import chart_png

    width, height = check_png(chart_png(simulate_book(book, program())))
    assert width == 1000
    assert height > 500


# ------------------------------------------------------------------------------------ properties


MEMBERS = ("a", "b", "c", "d")
orders_strategy = st.lists(
    st.tuples(st.sampled_from(MEMBERS), st.integers(0, 500), st.integers(1, 3_000_00)), min_size=1, max_size=60
)


@st.composite
def programs(draw: st.DrawFn) -> Program:
    count = draw(st.integers(1, 3))
    thresholds = [0, *sorted(draw(st.sets(st.integers(1, 5_000_00), min_size=count - 1, max_size=count - 1)))]
    basis = draw(st.sampled_from(["lifetime_spend", "purchase_count", "spend_window"]))
    if basis == "purchase_count":
        thresholds = [0, *range(1, count)]
    window = draw(st.one_of(st.integers(1, 120), st.integers(367, 1_000))) if basis == "spend_window" else None
    downgrade = draw(st.sampled_from(["never", "window"])) if basis == "spend_window" else "never"
    return program(
        tiers=tuple(
            Tier(name=f"T{i}", threshold=threshold, accrual_bp=draw(st.integers(0, 2_000)))
            for i, threshold in enumerate(thresholds)
        ),
        tier_basis=basis,
        tier_window_days=window,
        tier_downgrade=downgrade,
        point_value=draw(st.sampled_from([1, 7, 100])),
        max_redeem_share_bp=draw(st.integers(0, 10_000)),
        lifetime_days=draw(st.integers(1, 200)),
        min_order_amount=draw(st.integers(0, 1_000_00)),
        welcome_bonus=draw(st.integers(0, 300)),
    )


def history(rows: list[tuple[str, int, int]]) -> OrderBook:
    start = dt.date(2026, 1, 1)
    return book_of(*((m, (start + dt.timedelta(days=day)).isoformat(), amount) for m, day, amount in rows))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=orders_strategy, prog=programs(), rate=st.floats(0, 1))
def test_outstanding_is_issued_less_redeemed_less_burned_and_redemption_respects_the_cap(rows, prog, rate):
    replay, calls = run(history(rows), prog, rate)
    issued = redeemed = burned = 0
    for _, _, _, month_issued, month_redeemed, month_burned, outstanding, tiers in replay.months:
        issued, redeemed, burned = issued + month_issued, redeemed + month_redeemed, burned + month_burned
        assert outstanding == issued - redeemed - burned
        assert outstanding >= 0
        assert sum(tiers) <= len(MEMBERS)
    assert replay.outstanding == sum(replay.balance)
    assert all(balance >= 0 for balance in replay.balance)
    assert sum(replay.earned) == issued
    for _, amount, available, used, _ in calls:
        assert 0 <= used <= rules.max_redeemable(prog, amount, available)
        assert used <= available


@settings(max_examples=100, deadline=None)
@given(rows=orders_strategy, prog=programs(), raise_by=st.lists(st.integers(0, 3_000), min_size=3, max_size=3))
def test_a_higher_percent_never_issues_fewer_points(rows, prog, raise_by):
    richer = prog.model_copy(
        update={
            "tiers": tuple(
                tier.model_copy(update={"accrual_bp": min(10_000, tier.accrual_bp + extra)})
                for tier, extra in zip(prog.tiers, raise_by, strict=False)
            )
        }
    )
    book = history(rows)
    plain, better = Replay(book, prog, 0.3).run(), Replay(book, richer, 0.3).run()
    assert all(b[3] >= a[3] for a, b in zip(plain.months, better.months, strict=True))
    assert all(b >= a for a, b in zip(plain.earned, better.earned, strict=True))
    report = simulate_book(book, richer, prog, 0.3)
    assert report.worse_off == []


def reference(rows: list[tuple[str, int, int]], prog: Program, rate: float) -> tuple[list[tuple], dict[str, int]]:
    """The rules applied the slow and obvious way: every day in turn, every lot of every member."""
    start = dt.date(2026, 1, 1).toordinal()
    ordered = sorted(rows, key=lambda row: row[1])  # stable: same-day orders keep their order
    last = dt.date.fromordinal(start + ordered[-1][1])
    end = (dt.date(last.year + last.month // 12, last.month % 12 + 1, 1) - dt.timedelta(days=1)).toordinal()
    lots: dict[str, list[list[int]]] = {}
    tier: dict[str, int] = {}
    basis: dict[str, int] = {}
    window: dict[str, list[tuple[int, int]]] = {}
    earned: dict[str, int] = {}
    windowed, never = prog.tier_basis == "spend_window", prog.tier_downgrade == "never"
    index = {id(t): i for i, t in enumerate(prog.tiers)}
    months, figures = [], [0, 0, 0]

    def in_window(member: str, day: int) -> int:  # the ledger's rules: rules.window_leaves
        n = prog.tier_window_days or 0
        return sum(
            amount
            for d, amount in window[member]
            if rules.window_leaves(rules.window_bucket(dt.date.fromordinal(d), n), n).toordinal() > day
        )

    for day in range(start + ordered[0][1], end + 1):
        month = dt.date.fromordinal(day).strftime("%Y-%m")
        for member_lots in lots.values():
            for lot in member_lots:
                if lot[0] == day:
                    figures[2] += lot[1]
                    lot[1] = 0
        for member, offset, amount in ordered:
            if start + offset != day:
                continue
            burn = rules.burn_date(prog, dt.datetime.combine(dt.date.fromordinal(day), dt.time(), dt.UTC)).toordinal()
            if member not in lots:
                lots[member], tier[member], basis[member], window[member] = [], 0, 0, []
                earned[member] = prog.welcome_bonus
                lots[member].append([burn, prog.welcome_bonus])
                figures[0] += prog.welcome_bonus
            available = sum(points for _, points in lots[member])
            used = rules.max_redeemable(prog, amount, available * round(rate * 1_000_000) // 1_000_000)
            figures[1] += used
            for lot in sorted(lots[member]):
                take = min(lot[1], used)
                lot[1] -= take
                used -= take
            qualifying = rules.qualifies(prog, amount)
            if windowed:
                now = index[id(rules.tier_for(prog, in_window(member, day)))]
                accrue_at = max(now, tier[member]) if never else now
                if qualifying:
                    window[member].append((day, amount))
                after = index[id(rules.tier_for(prog, in_window(member, day)))]
                tier[member] = max(after, accrue_at)
            else:
                accrue_at = tier[member]
                if qualifying:
                    basis[member] += 1 if prog.tier_basis == "purchase_count" else amount
                    held = prog.tiers[tier[member]].name
                    reached = rules.reached_tier(prog, held, lifetime_spend=basis[member], purchases=basis[member])
                    tier[member] = index[id(reached)]
            points = rules.accrual_points(prog, prog.tiers[accrue_at], amount) if qualifying else 0
            lots[member].append([burn, points])
            earned[member] += points
            figures[0] += points
        next_month = dt.date.fromordinal(day + 1).strftime("%Y-%m")
        if next_month != month or day == end:
            if windowed and not never:
                for member in tier:
                    tier[member] = index[id(rules.tier_for(prog, in_window(member, day)))]
            outstanding = sum(points for member_lots in lots.values() for _, points in member_lots)
            counts = tuple(sum(1 for t in tier.values() if t == i) for i in range(len(prog.tiers)))
            months.append((month, *figures, outstanding, counts))
            figures = [0, 0, 0]
    return months, earned


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=orders_strategy, prog=programs(), rate=st.floats(0, 1))
def test_the_replay_agrees_with_the_rules_applied_naively(rows, prog, rate):
    book = history(rows)
    replay = Replay(book, prog, rate).run()
    months, earned = reference(rows, prog, rate)
    assert [(row[0], *row[3:]) for row in replay.months] == months
    assert dict(zip(book.member_ids, replay.earned, strict=True)) == earned
