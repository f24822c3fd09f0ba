"""SMS encoding and segments (loyalty.messaging.sms): exact boundaries and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.messaging import sms

GSM_BASIC = sorted(sms.GSM7_BASIC)
GSM_ANY = sorted(sms.GSM7_BASIC | sms.GSM7_EXTENSION)
gsm_text = st.text(alphabet=st.sampled_from(GSM_ANY), max_size=500)
any_text = st.text(max_size=400)
non_gsm = st.characters().filter(lambda c: c not in sms.GSM7_BASIC and c not in sms.GSM7_EXTENSION)


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("", "GSM-7", 0),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # 160 septets: the euro sign is an escape plus one
        ("€" * 81, "GSM-7", 2),
        ("a" * 152 + "€", "GSM-7", 1),  # 154 septets fit one message of 160
        ("я" * 70, "UCS-2", 1),
        ("я" * 71, "UCS-2", 2),
        ("я" * 134, "UCS-2", 2),
        ("я" * 135, "UCS-2", 3),
        ("😀" * 35, "UCS-2", 1),  # 70 code units
        ("😀" * 36, "UCS-2", 2),
        ("a" * 159 + "я", "UCS-2", 3),  # one Cyrillic letter makes the whole text UCS-2: 160 units
    ],
)
def test_exact_boundaries(text: str, encoding: str, segments: int) -> None:
    assert sms.encoding(text) == encoding
    assert sms.segments(text) == segments


def test_an_escape_pair_is_never_split_across_parts() -> None:
    # 152 septets then a euro sign (2): the pair cannot straddle the 153-septet part.
    text = "a" * 152 + "€" + "a" * 100
    assert sms.length(text) == 254
    assert sms.segments(text) == 2
    assert sms.segments("a" * 152 + "€" + "a" * 152) == 3  # 152 | 2+151 | 1


@given(gsm_text)
def test_gsm_text_stays_gsm(text: str) -> None:
    assert sms.encoding(text) == "GSM-7"
    assert sms.length(text) == len(text) + sum(c in sms.GSM7_EXTENSION for c in text)


@given(gsm_text, non_gsm, st.integers(min_value=0, max_value=500))
def test_any_non_gsm_character_forces_ucs2(text: str, char: str, at: int) -> None:
    at = min(at, len(text))
    assert sms.encoding(text[:at] + char + text[at:]) == "UCS-2"


@given(any_text, st.characters())
def test_segments_never_fall_as_a_text_grows(text: str, char: str) -> None:
    longer = text + char
    if sms.encoding(longer) == sms.encoding(text):
        assert sms.segments(longer) >= sms.segments(text)
    assert sms.segments(longer) >= 1


@given(any_text)
def test_segments_fit_the_parts(text: str) -> None:
    encoding, units, parts = sms.encoding(text), sms.length(text), sms.segments(text)
    if units <= sms.SINGLE[encoding]:
        assert parts == (1 if units else 0)
    else:
        assert parts * sms.PART[encoding] >= units  # every unit has room
        assert (parts - 1) * sms.PART[encoding] < units + parts  # and no part is wasted (a pair may move)
