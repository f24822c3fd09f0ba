"""SMS length rules: which encoding a text needs and how many segments it is billed as.

Pure rules. GSM-7 (3GPP TS 23.038, the GSM 03.38 default alphabet) fits 160 septets in one
segment and 153 in each part of a concatenated message; a character of the extension table
(``€ [ ] { } \\ ^ ~ |`` and form feed) is an escape plus a septet, so it counts twice and is never
split across two parts. Any other character forces UCS-2: 70 UTF-16 code units in one segment,
67 per part, a surrogate pair (an emoji) counting two and never split.
"""

from __future__ import annotations

from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
SINGLE = {"GSM-7": 160, "UCS-2": 70}  # units in a message of one segment
PART = {"GSM-7": 153, "UCS-2": 67}  # units in each part of a concatenated message (the rest is its header)


def encoding(text: str) -> Encoding:
    """GSM-7 if every character is in the basic set or the extension table, else UCS-2."""
    return "GSM-7" if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else "UCS-2"


def _unit_sizes(text: str, enc: Encoding) -> list[int]:
    """The size of each character in the encoding's units (septets or UTF-16 code units)."""
    if enc == "GSM-7":
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def length(text: str) -> int:
    """The text's length in units of its encoding (septets for GSM-7, code units for UCS-2)."""
    return sum(_unit_sizes(text, encoding(text)))


def segments(text: str) -> int:
    """How many segments the text is sent (and billed) as; 0 for an empty text."""
    enc = encoding(text)
    sizes = _unit_sizes(text, enc)
    total = sum(sizes)
    if total == 0:
        return 0
    if total <= SINGLE[enc]:
        return 1
    parts, used = 1, 0
    for size in sizes:  # greedy, as phones and gateways split: a character never straddles two parts
        if used + size > PART[enc]:
            parts, used = parts + 1, 0
        used += size
    return parts
