"""ISO 4217 currencies the engine accepts, with the number of minor-unit digits of each."""

from __future__ import annotations

MINOR_UNITS: dict[str, int] = {
    "AED": 2, "AMD": 2, "AUD": 2, "AZN": 2, "BGN": 2, "BRL": 2, "BYN": 2, "CAD": 2, "CHF": 2,
    "CNY": 2, "CZK": 2, "DKK": 2, "EUR": 2, "GBP": 2, "GEL": 2, "HKD": 2, "HUF": 2, "ILS": 2,
    "INR": 2, "JPY": 0, "KGS": 2, "KRW": 0, "KZT": 2, "MDL": 2, "MXN": 2, "NOK": 2, "NZD": 2,
    "PLN": 2, "RON": 2, "RSD": 2, "RUB": 2, "SEK": 2, "SGD": 2, "TJS": 2, "TRY": 2, "UAH": 2,
    "USD": 2, "UZS": 2, "ZAR": 2,
}  # fmt: skip


def is_known(code: str) -> bool:
    return code in MINOR_UNITS


def format_amount(minor: int, code: str) -> str:
    """``340000, "RUB"`` -> ``"3 400.00 RUB"``: major units, thin groups, the currency's digits."""
    digits = MINOR_UNITS.get(code, 2)
    whole, fraction = divmod(minor, 10**digits)
    text = f"{whole:,}".replace(",", " ")
    return f"{text}.{fraction:0{digits}d} {code}" if digits else f"{text} {code}"
