"""What the engine may tell a customer: every message kind, its consent category, its variables
and sample data (the preview's data, and what a template is tried with when it is saved).

Pure values. Every kind's templates get the common variables plus its own; a template that uses
any other name is refused when it is saved (``loyalty.messaging.templates``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, get_args

Category = Literal["marketing", "bonus_notices"]
Channel = Literal["email", "sms"]
CATEGORIES: tuple[Category, ...] = get_args(Category)
CHANNELS: tuple[Channel, ...] = get_args(Channel)
LOCALES = ("ru", "uk", "en")  # fallback chain: requested -> its base language -> tenant default -> "en"
FALLBACK_LOCALE = "en"

COMMON_VARIABLES = frozenset({"member_id", "locale", "program_name", "balance", "available", "unsubscribe_url"})
COMMON_SAMPLE: Mapping[str, Any] = {
    "member_id": "cust-1042",
    "locale": "en",
    "program_name": "Demo Rewards",
    "balance": 1250,
    "available": 1150,
    "unsubscribe_url": "https://api.example.com/prod/v1/unsubscribe/sample-token",
}


@dataclass(frozen=True)
class KindSpec:
    """A message kind: the consent it needs, the variables its templates may use (the common ones
    included) and sample data for every one of them."""

    kind: str
    category: Category
    variables: frozenset[str]
    sample: Mapping[str, Any]


def _kind(kind: str, category: Category, **sample: Any) -> KindSpec:
    data = {**COMMON_SAMPLE, **sample}
    return KindSpec(kind, category, COMMON_VARIABLES | frozenset(sample), MappingProxyType(data))


_BONUS: list[KindSpec] = [
    _kind(
        "accrual",
        "bonus_notices",
        points=120,
        count=2,
        accruals=[
            {"order_id": "A-1001", "points": 80, "amount": "800.00 RUB"},
            {"order_id": "A-1002", "points": 40, "amount": "400.00 RUB"},
        ],
    ),
    _kind("redemption", "bonus_notices", points=300, order_id="A-1003"),
    _kind("refund", "bonus_notices", points_taken=80, points_returned=30, order_id="A-1001"),
    _kind("adjustment", "bonus_notices", points=50, reason="Goodwill for a delayed delivery"),
    _kind("tier_reached", "bonus_notices", tier="Gold"),
    _kind("burn_reminder", "bonus_notices", points=200, burn_date="2026-03-01", days_before=30),
    _kind("burned", "bonus_notices", points=200, burn_date="2026-03-01"),
]
# The welcome chain and the digest are marketing: opting out of marketing stops both (the issue's
# rule), and bonus notices go on.
_MARKETING: list[KindSpec] = [
    _kind(
        "digest",
        "marketing",
        next_expiry={"date": "2026-03-01", "points": 200},
        entries=[
            {"date": "2026-01-12", "type": "accrual", "points": 80},
            {"date": "2026-01-20", "type": "redemption", "points": -300},
        ],
    ),
    _kind("welcome_day1", "marketing"),
    _kind("welcome_day3", "marketing"),
    _kind("welcome_day7", "marketing"),
    _kind("welcome_day14", "marketing"),
    _kind("welcome_periodic", "marketing"),
    _kind("birthday", "marketing", coupon_code="BDAY-7QK2M", coupon_valid_until="2026-02-14"),
    _kind("event_results", "marketing", event_name="Spring tasting evening", results_url="https://example.com/photos"),
    _kind("broadcast", "marketing", title="New program conditions", message="From 1 March every purchase earns 5 %."),
]
KINDS: Mapping[str, KindSpec] = MappingProxyType({spec.kind: spec for spec in _BONUS + _MARKETING})


def spec(kind: str) -> KindSpec:
    """The kind's spec; KeyError (naming the known kinds) for an unknown one."""
    try:
        return KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown message kind {kind!r}; known: {', '.join(KINDS)}") from None


def locale_chain(requested: str | None, default_locale: str = FALLBACK_LOCALE) -> list[str]:
    """The locales to try, in order: the requested one (``uk-UA``), its base language (``uk``),
    the tenant's default (and its base), then ``en``; each once."""
    chain: list[str] = []
    for candidate in (requested, default_locale, FALLBACK_LOCALE):
        if not candidate:
            continue
        for locale in (candidate, candidate.split("-", 1)[0].split("_", 1)[0]):
            if locale and locale not in chain:
                chain.append(locale)
    return chain
