"""Templates, consents and unsubscribe tokens as pure rules (no AWS)."""

from __future__ import annotations

import pytest

from loyalty.errors import Forbidden, InvalidRequest
from loyalty.messaging import consents, templates, unsubscribe
from loyalty.messaging.kinds import KINDS, LOCALES, locale_chain
from loyalty.models import Consents, Profile


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_every_file_in_every_locale_and_renders(kind: str, locale: str) -> None:
    for channel in templates.PARTS:
        assert templates.file_parts(kind, channel, locale), (kind, channel, locale)
        templates.check(kind, channel, locale, templates.file_parts(kind, channel, locale) or {})
    email = templates.render(kind, "email", locale, KINDS[kind].sample)
    assert email.locale == locale and email.subject and "\n" not in email.subject
    assert KINDS[kind].sample["unsubscribe_url"] in email.html and KINDS[kind].sample["unsubscribe_url"] in email.text


def test_the_fallback_chain() -> None:
    assert locale_chain("uk-UA", "ru") == ["uk-UA", "uk", "ru", "en"]
    assert locale_chain(None) == ["en"]
    assert templates.render("burned", "sms", "de-AT", KINDS["burned"].sample, default_locale="uk").locale == "uk"
    assert templates.render("burned", "sms", "pt", KINDS["burned"].sample).locale == "en"


def test_html_is_autoescaped_text_and_sms_are_not() -> None:
    data = {**KINDS["broadcast"].sample, "title": "<script>alert(1)</script>", "message": "A & B"}
    email = templates.render("broadcast", "email", "en", data)
    assert "<script>" not in email.html and "&lt;script&gt;" in email.html and "A &amp; B" in email.html
    assert "<script>alert(1)</script>" in email.text and email.subject == "<script>alert(1)</script>"
    assert "A & B" in templates.render("broadcast", "sms", "en", data).text


def test_a_missing_variable_fails_the_render_not_silently() -> None:
    data = dict(KINDS["burned"].sample)
    del data["points"]
    with pytest.raises(templates.RenderError, match="points"):
        templates.render("burned", "sms", "en", data)
    with pytest.raises(KeyError):
        templates.render("no_such_kind", "sms", "en", {})


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{{ ''.__class__ }}", "unsafe"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
        ("{{ points.__class__ }}", "unsafe"),
        ("{{ program_name.format.__globals__ }}", "unsafe"),
        ("{{ cycler.__init__.__globals__ }}", "unsafe"),  # a global of Jinja, refused by the sandbox
        ("{{ member_email }}", "member_email"),
        ("{% include '/etc/passwd' %}", "include"),
        ("{{ points }\n", "line 1"),
    ],
)
def test_the_sandbox_and_the_check_refuse_at_save(source: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        templates.check("burned", "sms", "en", {"text": source})
    assert says in refused.value.detail


def test_consents_allow_only_where_category_and_channel_both_say_yes() -> None:
    profile = Profile(consents=Consents(marketing=True, bonus_notices=False, email=True, sms=False))
    assert consents.allows(profile, "marketing", "email")
    assert not consents.allows(profile, "marketing", "sms")
    assert not consents.allows(profile, "bonus_notices", "email")
    item = {"profile": '{"consents": {"marketing": false, "bonus_notices": true}}'}
    assert consents.allows(item, "bonus_notices", "sms")  # channels default to yes
    assert not consents.allows({**item, "erased_at": "2026-01-01T00:00:00Z"}, "bonus_notices", "sms")


def test_unsubscribe_tokens_round_trip_and_refuse_any_alteration() -> None:
    secret = b"k" * 64
    claim = unsubscribe.UnsubscribeClaim("demo", "cust.1@x", "bonus_notices", "sms")
    token = unsubscribe.sign(secret, claim)
    assert unsubscribe.parse(secret, token) == claim
    assert all(c.isalnum() or c in "-_." for c in token) and len(token) < 100
    for i in range(len(token)):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        with pytest.raises(Forbidden):
            unsubscribe.parse(secret, flipped)
    with pytest.raises(Forbidden):
        unsubscribe.parse(b"other", token)
