"""The report counters' arithmetic (``loyalty.report_rules``): property tests.

Whatever the order in which a member's stream records arrive and however often each is
delivered, the counters add up to the entries, the lots to their last images, and each
enrolment and first purchase counts once.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty import report_rules as rules

TYPES = [*sorted(rules.CATEGORIES), "tier_change", "something_new"]
DAY0 = dt.date(2026, 1, 1)


@st.composite
def histories(draw):
    """A member's entries (seq 1..n) and a delivery order with duplicates."""
    n = draw(st.integers(min_value=1, max_value=25))
    entries = []
    for seq in range(1, n + 1):
        entry_type = draw(st.sampled_from(TYPES))
        day = DAY0 + dt.timedelta(days=draw(st.integers(min_value=0, max_value=2)) + seq // 5)
        details = {}
        if entry_type == "accrual":
            details = {"amount": draw(st.integers(min_value=1, max_value=10**6)), "tier": "Base"}
            if draw(st.booleans()):
                details["below_min_order_amount"] = 100
        if draw(st.integers(min_value=0, max_value=9)) == 0:
            details["test"] = True
        entries.append(
            rules.EntryRecord(
                seq=seq,
                type=entry_type,
                points=draw(st.integers(min_value=-500, max_value=500)),
                created_at=f"{day.isoformat()}T10:00:00Z",
                program_id="p1",
                details=details,
            )
        )
    # Mostly in order (as a stream shard delivers), with some records delivered again later.
    order = list(entries)
    extra = draw(st.lists(st.sampled_from(entries), max_size=10))
    for record in extra:
        order.insert(draw(st.integers(min_value=0, max_value=len(order))), record)
    return entries, order


def run(state: rules.MemberState, records) -> tuple[rules.MemberState, dict, int]:
    totals: dict = defaultdict(lambda: defaultdict(int))
    applied = 0
    for record in records:
        change = rules.apply_entry(state, record)
        if change is None:
            continue
        applied += 1
        state = change.state
        for key, attrs in change.counters.items():
            for attr, value in attrs.items():
                totals[key][attr] += value
    return state, totals, applied


@settings(deadline=None)  # timing: CI machines are slow and busy
@given(histories())
def test_day_and_month_counters_add_up_to_the_entries_whatever_is_delivered_twice(history):
    entries, order = history
    state = rules.MemberState(program_id="p1", tier="Base", enrol_day="2025-12-31", enrol_program="p1")
    state, totals, applied = run(state, order)
    assert applied == len(entries)
    assert state.upto == len(entries) and not state.applied
    for prefix in ("D#", "M#"):
        by_attr: dict[str, int] = defaultdict(int)
        for (period, _, _), attrs in totals.items():
            if period.startswith(prefix):
                for attr, value in attrs.items():
                    by_attr[attr] += value
        for entry in entries:
            by_attr[rules.points_attr(entry.type, test=entry.test)] -= entry.points
        assert all(v == 0 for k, v in by_attr.items() if k.startswith(("p_", "x_")))
        orders = [e for e in entries if e.type == "accrual" and not e.test]
        qualifying = [e for e in orders if "below_min_order_amount" not in e.details]
        assert by_attr["first_purchases"] == (1 if qualifying else 0)
        assert by_attr.get("converted", 0) == (1 if qualifying else 0)
        assert by_attr["orders"] == len(orders)
        assert by_attr["order_amount"] == sum(e.details["amount"] for e in orders)
    # Active at most once per member and period.
    assert all(attrs.get("active", 0) <= 1 for attrs in totals.values())


@settings(deadline=None)  # timing: CI machines are slow and busy
@given(histories())
def test_the_columns_add_up_to_the_net_change(history):
    entries, _ = history
    counter: dict[str, int] = defaultdict(int)
    for entry in entries:
        counter[rules.points_attr(entry.type, test=entry.test)] += entry.points
    cols = rules.columns(counter)
    signed = sum(-v if k in rules.DEBIT_COLUMNS else v for k, v in cols.items() if k != "net")
    assert signed == cols["net"] == sum(e.points for e in entries if not e.test)


@given(st.lists(st.tuples(st.sampled_from(["2026-02-01", "2026-03-15", "2026-09-30"]), st.integers(0, 100))))
def test_lot_deltas_follow_the_last_image_and_repeat_images_add_nothing(images):
    state = rules.MemberState(program_id="p1", tier="Base")
    totals: dict = defaultdict(int)
    for burn_date, remaining in images + images[-3:]:  # the last images again: a redelivery
        change = rules.apply_lot(state, burn_date, remaining)
        if change is not None:
            state = change.state
            for key, value in change.lots.items():
                totals[key] += value
    last = {}
    for burn_date, remaining in images:
        last[burn_date] = remaining
    assert {d: v for (d, _), v in totals.items() if v} == {d: r for d, r in last.items() if r}
    assert {d: r for d, (r, _) in state.lots.items()} == {d: r for d, r in last.items() if r}


def test_an_enrolment_counts_once_in_its_cohort():
    state = rules.MemberState(program_id="p1", tier="Base")
    change = rules.apply_enrolment(state, enrolled_at="2026-03-05T10:00:00Z", program_id="p1", tier="Base")
    assert change is not None
    assert change.counters[("D#2026-03-05", "p1", "Base")] == {"enrolled": 1}
    assert change.counters[("M#2026-03", "p1", "Base")] == {"enrolled": 1}
    assert rules.apply_enrolment(change.state, enrolled_at="2026-03-05T10:00:00Z", program_id="p1", tier="Base") is None


@given(st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 1, 1)), st.integers(-50, 800))
def test_aging_buckets_are_by_days_left(today, days_left):
    burn = (today + dt.timedelta(days=days_left)).isoformat()
    bucket = rules.age_bucket(burn, today)
    if days_left <= 30:
        assert bucket == "0-30"
    elif days_left <= 90:
        assert bucket == "31-90"
    elif days_left <= 180:
        assert bucket == "91-180"
    else:
        assert bucket == "181+"
    yesterday = (today - dt.timedelta(days=1 + abs(days_left))).isoformat()  # overdue: still owed
    assert rules.aged({burn: 7, yesterday: 3}, today)["0-30"] >= 3
    assert sum(rules.aged({burn: 7, yesterday: 3}, today).values()) == 10
