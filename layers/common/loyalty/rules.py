"""Pure bonus rules: values in, values out. No storage, no clock, no environment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from loyalty.models import BASIS_POINTS, ActivityEvent, BurnPolicy, Program, Tier, TierBasis, TierDowngrade


def tier_for(program: Program, lifetime_spend: int) -> Tier:
    """The highest tier whose threshold the member's lifetime spend has reached."""
    reached = program.tiers[0]
    for tier in program.tiers:
        if lifetime_spend >= tier.threshold:
            reached = tier
    return reached


def tier_named(program: Program, name: str) -> Tier:
    """The program's tier of that name; the first tier if the program no longer has it."""
    return next((tier for tier in program.tiers if tier.name == name), program.tiers[0])


def basis_value(
    program: Program, *, lifetime_spend: int, purchases: int, window_spend: int | None = None
) -> int | None:
    """Where a member stands on the program's tier basis. For ``spend_window`` that is
    ``window_spend`` (``window_spend()`` of the member's window), None when not given."""
    if program.tier_basis is TierBasis.LIFETIME_SPEND:
        return lifetime_spend
    if program.tier_basis is TierBasis.PURCHASE_COUNT:
        return purchases
    return window_spend


def reached_tier(
    program: Program, current: str, *, lifetime_spend: int, purchases: int, window_spend: int | None = None
) -> Tier:
    """The member's tier after a qualifying purchase: an upgrade is immediate, and nothing here
    ever lowers it (downgrades follow the program's rule, evaluated apart: ``review_window``)."""
    held = tier_named(program, current)
    value = basis_value(program, lifetime_spend=lifetime_spend, purchases=purchases, window_spend=window_spend)
    if value is None:
        return held
    earned = tier_for(program, value)
    return earned if earned.threshold > held.threshold else held


def tier_progress(
    program: Program, current: str, *, lifetime_spend: int, purchases: int, window_spend: int | None = None
) -> dict | None:
    """What the member still needs for the next tier, on the program's basis; None at the top."""
    held = tier_named(program, current)
    higher = [tier for tier in program.tiers if tier.threshold > held.threshold]
    value = basis_value(program, lifetime_spend=lifetime_spend, purchases=purchases, window_spend=window_spend)
    if not higher or value is None:
        return None
    following = higher[0]
    return {
        "next_tier": following.name,
        "basis": program.tier_basis.value,
        "remaining": max(0, following.threshold - value),
    }


# ------------------------------------------------------------------------ the spend window
#
# A windowed member's qualifying spend is kept by day: ``{first day of the bucket (ISO): minor
# units}``. Windows up to WINDOW_MAX_BUCKETS days count whole UTC days exactly: the spend of day d
# counts on days d .. d + N - 1 (N = ``tier_window_days``) and leaves the window on day d + N.
# Longer windows group days into buckets of ``window_bucket_days(N)`` days, the same for every
# member (day ordinal // width), and a bucket leaves when its last day does: spend counts for at
# least N days and at most N + width - 1. So a member never holds more than about
# WINDOW_MAX_BUCKETS + 1 buckets, whatever the window (3 650 days: 10-day buckets).

WINDOW_MAX_BUCKETS = 366


def window_bucket_days(window_days: int) -> int:
    """Days per bucket: 1 for windows up to WINDOW_MAX_BUCKETS days, more for longer ones."""
    return max(1, -(-window_days // WINDOW_MAX_BUCKETS))


def window_bucket(day: date, window_days: int) -> date:
    """The first day of the bucket that ``day`` belongs to."""
    width = window_bucket_days(window_days)
    return day if width == 1 else date.fromordinal(day.toordinal() // width * width)


def window_leaves(bucket: date, window_days: int) -> date:
    """The first day on which the spend of the bucket starting on ``bucket`` no longer counts."""
    return bucket + timedelta(days=window_bucket_days(window_days) - 1 + window_days)


def window_of(stored: Mapping[str, int], window_days: int, today: date) -> dict[str, int]:
    """A member's window as it stands on ``today``: buckets of this window's width (a window
    whose length changed regroups what was kept by each bucket's first day), without the buckets
    that have left and without empty ones."""
    window: dict[str, int] = {}
    for key, amount in stored.items():
        bucket = window_bucket(date.fromisoformat(key), window_days)
        if amount > 0 and window_leaves(bucket, window_days) > today:
            window[bucket.isoformat()] = window.get(bucket.isoformat(), 0) + int(amount)
    return dict(sorted(window.items()))


def window_counts(day: date, window_days: int, today: date) -> bool:
    """Whether spend of ``day`` still counts on ``today`` (a backdated purchase may be too old)."""
    return window_leaves(window_bucket(day, window_days), window_days) > today


def window_add(window: Mapping[str, int], window_days: int, day: date, amount: int) -> dict[str, int]:
    """The window with ``amount`` more spent on ``day``."""
    key = window_bucket(day, window_days).isoformat()
    return dict(sorted({**window, key: window.get(key, 0) + amount}.items()))


def window_remove(window: Mapping[str, int], window_days: int, day: date, amount: int) -> dict[str, int]:
    """The window with ``amount`` of the spend of ``day`` taken out (a refund): never below 0, and
    nothing once that day's bucket has left."""
    key = window_bucket(day, window_days).isoformat()
    left = window.get(key, 0) - amount
    return {k: v for k, v in window.items() if k != key} | ({key: left} if left > 0 else {})


def window_spend(window: Mapping[str, int], window_days: int, day: date) -> int:
    """The qualifying spend that counts on ``day``."""
    return sum(v for k, v in window.items() if window_leaves(date.fromisoformat(k), window_days) > day)


def window_falls_below(window: Mapping[str, int], window_days: int, threshold: int, after: date) -> date | None:
    """The first day from ``after`` on when the window's spend, with no more purchases, is below
    ``threshold``; None for a threshold of 0 (nothing is below it)."""
    if threshold <= 0:
        return None
    leaving = sorted((window_leaves(date.fromisoformat(k), window_days), v) for k, v in window.items())
    spend = sum(v for leaves, v in leaving if leaves > after)
    if spend < threshold:
        return after
    for leaves, amount in leaving:
        if leaves > after:
            spend -= amount
            if spend < threshold:
                return leaves
    return None  # pragma: no cover - every bucket leaves at last, and 0 < threshold


def downgrades_by_window(program: Program) -> bool:
    """Whether the program lowers tiers when the window's spend no longer reaches them."""
    return program.tier_basis is TierBasis.SPEND_WINDOW and program.tier_downgrade is TierDowngrade.WINDOW


def next_review(program: Program, held: Tier, window: Mapping[str, int], after: date) -> date | None:
    """The day the member's tier is next reviewed: the first day from ``after`` on when the
    window's spend is below the tier held. None when the program never lowers tiers, or for the
    first tier."""
    if not downgrades_by_window(program) or program.tier_window_days is None:
        return None
    return window_falls_below(window, program.tier_window_days, held.threshold, after)


@dataclass(frozen=True)
class Downgrade:
    """One nightly review that lowered a tier: on ``as_of`` the window held ``spend``."""

    as_of: date
    source: Tier
    target: Tier
    spend: int


def review_window(
    program: Program, held: Tier, window: Mapping[str, int], due: date | None, today: date
) -> tuple[list[Downgrade], Tier, date | None]:
    """The reviews due up to ``today``, in order (missed nights are caught up one by one): each, on
    its day, lowers the tier to the one the window's spend of that day reaches, if below the tier
    held (never raises it). Answers the downgrades, the tier after them and the next review day."""
    if not downgrades_by_window(program) or program.tier_window_days is None:
        return [], held, None
    steps: list[Downgrade] = []
    while due is not None and due <= today:
        spend = window_spend(window, program.tier_window_days, due)
        reached = tier_for(program, spend)
        if reached.threshold < held.threshold:
            steps.append(Downgrade(as_of=due, source=held, target=reached, spend=spend))
            held = reached
        due = next_review(program, held, window, due + timedelta(days=1))
    return steps, held, due


def qualifies(program: Program, amount: int) -> bool:
    """A purchase counts (accrues, and moves the member along the tier basis) from the minimum up."""
    return amount >= program.min_order_amount


def accrual_points(program: Program, tier: Tier, amount: int) -> int:
    """Points for a purchase: the tier's percent of the amount, at the point value, rounded down."""
    return (amount * tier.accrual_bp) // (BASIS_POINTS * program.point_value)


def max_redeemable(program: Program, order_amount: int, available: int) -> int:
    """The most points an order may use: the program's cap on the order's share, and the balance."""
    cap_amount = (order_amount * program.max_redeem_share_bp) // BASIS_POINTS
    return max(0, min(available, cap_amount // program.point_value))


# ------------------------------------------------------------------------ burning
#
# A burn date is the first day points are no longer spendable: they are spendable through the day
# before, and the nightly burn of that date (after local midnight) takes them.


def add_months(day: date, months: int) -> date:
    """``day`` plus whole calendar months; a day the target month lacks becomes its last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, _month_days(year, month + 1)))


def _month_days(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def month_end_burn(burn: date) -> date:
    """The burn date rounded to the end of a month: points last spendable on some day stay
    spendable through the end of that day's month (so they burn on the 1st of the next)."""
    last = burn - timedelta(days=1)
    return add_months(date(last.year, last.month, 1), 1)


def burn_date(program: Program, earned_at: datetime) -> date:
    """The date points earned at ``earned_at`` burn (they are spendable through the day before).

    fixed_lifetime: ``lifetime_months`` (else ``lifetime_days``) later, rounded to a month's end
    with ``round_to_month_end``. inactivity: ``inactivity_months`` later, the latest the points can
    burn; the member's activity date (``inactivity_due``) decides for all of them at once."""
    day = earned_at.date()
    if program.burn_policy is BurnPolicy.INACTIVITY:
        return inactivity_due(program, day)
    if program.lifetime_months is not None:
        burn = add_months(day, program.lifetime_months)
    else:
        burn = day + timedelta(days=program.lifetime_days)
    return month_end_burn(burn) if program.round_to_month_end else burn


def counts_as_activity(program: Program, events: set[ActivityEvent]) -> bool:
    """Whether an operation made of ``events`` moves the member's burn date (inactivity policy)."""
    return program.burn_policy is BurnPolicy.INACTIVITY and bool(events & set(program.activity_events))


def inactivity_due(program: Program, activity_day: date) -> date:
    """Under the inactivity policy: the day every point burns after activity on ``activity_day``."""
    return add_months(activity_day, program.inactivity_months)


def lots_due(program: Program, lots: Sequence[tuple[str, int]], due: str | None, on: date) -> list[tuple[str, int]]:
    """The lots (``(burn_date, remaining)``) that burn by the night of ``on``, earliest first.

    fixed_lifetime, or inactivity with no activity recorded yet (``due`` None): each lot on its own
    date. inactivity with a due date: every lot once that date has come, none before."""
    ordered = sorted((d, r) for d, r in lots if r > 0)
    if program.burn_policy is BurnPolicy.INACTIVITY and due is not None:
        return ordered if due <= on.isoformat() else []
    return [(d, r) for d, r in ordered if d <= on.isoformat()]


def burn_plan(due: Sequence[tuple[str, int]], available: int) -> list[tuple[str, int]]:
    """What burns of the due lots: all of them, earliest first, but never more than ``available``
    (points held for a checkout stay until the hold ends; they burn on a later night)."""
    return spend_plan(list(due), max(0, available))


def upcoming_burns(
    program: Program, lots: Sequence[tuple[str, int]], due: str | None, lot_debt: int = 0
) -> list[dict[str, int | str]]:
    """``[{date, points}]``, soonest first: when the member's points burn, if nothing changes.
    Carried lot debt is owed by the earliest lots."""
    left: list[tuple[str, int]] = []
    debt = lot_debt
    for burn, remaining in sorted(lots):
        paid = min(debt, remaining)
        debt -= paid
        if remaining - paid > 0:
            left.append((burn, remaining - paid))
    if program.burn_policy is BurnPolicy.INACTIVITY and due is not None:
        # Every point burns on the due date; a lot's own date can only come after it.
        total = sum(r for _, r in left)
        return [{"date": due, "points": total}] if total else []
    return [{"date": burn, "points": points} for burn, points in left]


def reminder_targets(program: Program, night: date) -> list[tuple[int, date]]:
    """``(days before, burn date)`` of the reminders the night of ``night`` records."""
    return [(days, night + timedelta(days=days)) for days in program.reminder_days]


def proportional_share(total: int, part: int, whole: int) -> int:
    """``total * part / whole`` rounded down, so that cumulative shares end exactly at ``total``.

    Refunds take ``share(refunded_so_far) - share(refunded_before)``: rounding happens on the
    running total, never on each piece, so full refunds in any number of parts add up exactly.
    """
    if whole <= 0:
        return 0
    return (total * min(part, whole)) // whole


def spend_plan(lots: list[tuple[str, int]], points: int, prefer: str | None = None) -> list[tuple[str, int]]:
    """Which lots pay ``points``: earliest burn date first (``prefer``'s lot first if given).

    ``lots`` are ``(burn_date, remaining)``; the result is ``(burn_date, taken)`` for each lot
    touched. If the lots hold less than ``points``, the plan takes what there is.
    """
    ordered = sorted(lots)
    if prefer is not None:
        ordered.sort(key=lambda lot: lot[0] != prefer)
    plan: list[tuple[str, int]] = []
    left = points
    for burn, remaining in ordered:
        if left <= 0:
            break
        take = min(remaining, left)
        if take > 0:
            plan.append((burn, take))
            left -= take
    return plan
