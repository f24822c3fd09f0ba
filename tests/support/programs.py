"""Programs for tests whose members must start with no points at all.

The demo program (``loyalty.admin.demo_program``) gives every new member a welcome bonus, and
birthday and referral bonuses later. A test about the ledger's own mechanics (a member without
points, exact overdraws, lots and burn dates) runs on a copy without them, so that a member holds
exactly the points the test gave it.
"""

from __future__ import annotations

from typing import Any

from loyalty.models import Program

ONE_OFF_BONUSES = ("welcome_bonus", "birthday_bonus", "referral_bonus_referrer", "referral_bonus_referee")
assert set(ONE_OFF_BONUSES) <= set(Program.model_fields), "a one-off bonus was renamed: update ONE_OFF_BONUSES"


def without_one_off_bonuses(program: Program, **changes: Any) -> Program:
    """``program`` with no welcome, birthday or referral bonus (and ``changes``, e.g. another
    ``program_id``), validated as a program stored by the admin API would be."""
    return Program.model_validate({**program.model_dump(), **dict.fromkeys(ONE_OFF_BONUSES, 0), **changes})
