"""Pure bonus rules: values in, values out. No storage, no clock, no environment."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from loyalty.models import BASIS_POINTS, Program, Tier, TierBasis


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


def basis_value(program: Program, *, lifetime_spend: int, purchases: int) -> int | None:
    """Where a member stands on the program's tier basis; None for a windowed basis, which is
    evaluated from the window's purchases, not from running totals."""
    if program.tier_basis is TierBasis.LIFETIME_SPEND:
        return lifetime_spend
    if program.tier_basis is TierBasis.PURCHASE_COUNT:
        return purchases
    return None


def reached_tier(program: Program, current: str, *, lifetime_spend: int, purchases: int) -> Tier:
    """The member's tier after a qualifying purchase: an upgrade is immediate, and nothing here
    ever lowers it (downgrades follow the program's rule, evaluated apart)."""
    held = tier_named(program, current)
    value = basis_value(program, lifetime_spend=lifetime_spend, purchases=purchases)
    if value is None:
        return held
    earned = tier_for(program, value)
    return earned if earned.threshold > held.threshold else held


def tier_progress(program: Program, current: str, *, lifetime_spend: int, purchases: int) -> dict | None:
    """What the member still needs for the next tier, on the program's basis; None at the top."""
    held = tier_named(program, current)
    higher = [tier for tier in program.tiers if tier.threshold > held.threshold]
    value = basis_value(program, lifetime_spend=lifetime_spend, purchases=purchases)
    if not higher or value is None:
        return None
    following = higher[0]
    return {
        "next_tier": following.name,
        "basis": program.tier_basis.value,
        "remaining": max(0, following.threshold - value),
    }


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


def burn_date(program: Program, earned_at: datetime) -> date:
    """The date points earned at ``earned_at`` burn (they are spendable through the day before)."""
    return (earned_at + timedelta(days=program.lifetime_days)).date()


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
