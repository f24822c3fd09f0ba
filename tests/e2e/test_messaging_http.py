"""Consents, templates, previews and unsubscribe links, over real HTTP against the local stack.

The unsubscribe tokens are signed here with the stack's own secret (read from the local AWS, as
the sender reads it), so a link is exactly what a customer gets in a message.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from loyalty.messaging import unsubscribe
from loyalty.messaging.kinds import KINDS, LOCALES
from tests.e2e.conftest import Api, new_id

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def admin(api: Api) -> Api:
    return Api(api.stack, api.stack["tenants"]["demo"]["api_keys"]["admin"])


@pytest.fixture(scope="module")
def secret(local_stack: dict[str, Any]) -> bytes:
    (arn,) = local_stack["secrets"].values()
    client = boto3.client(
        "secretsmanager",
        endpoint_url=local_stack["aws_endpoint"],
        region_name=local_stack["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return client.get_secret_value(SecretId=arn)["SecretString"].encode()


def test_consents_change_and_history(api: Api) -> None:
    member_id = api.enrol(consents={"marketing": True, "bonus_notices": True, "sms": False})
    first = api.get(f"/v1/members/{member_id}/consents")
    assert first.status_code == 200, first.text
    assert first.json()["consents"] == {"marketing": True, "bonus_notices": True, "email": True, "sms": False}
    assert [c["via"] for c in first.json()["history"]] == ["enrolment"]

    changed = api.call("PUT", f"/v1/members/{member_id}/consents", json_body={"marketing": False, "reason": "desk"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["consents"]["marketing"] is False
    again = api.call("PUT", f"/v1/members/{member_id}/consents", json_body={"marketing": False})
    assert again.status_code == 200  # nothing changes: nothing recorded
    api.call("PUT", f"/v1/members/{member_id}/consents", json_body={"sms": True})

    history = api.get(f"/v1/members/{member_id}/consents?limit=1").json()
    assert history["consents"] == {"marketing": False, "bonus_notices": True, "email": True, "sms": True}
    pages = [history["history"]]
    while history["next_cursor"]:
        history = api.get(f"/v1/members/{member_id}/consents?limit=1&cursor={history['next_cursor']}").json()
        pages.append(history["history"])
    changes = [c for page in pages for c in page]
    assert [(c["via"], c["changes"]) for c in changes] == [
        ("api", {"sms": True}),
        ("api", {"marketing": False}),
        ("enrolment", {"marketing": True, "bonus_notices": True, "email": True, "sms": False}),
    ]
    assert changes[1]["reason"] == "desk" and changes[1]["actor"].startswith("key:")
    assert api.get(f"/v1/members/{member_id}").json()["consents"]["marketing"] is False

    api.problem(api.call("PUT", f"/v1/members/{member_id}/consents", json_body={}), 422, "invalid-request")
    bad = api.call("PUT", f"/v1/members/{member_id}/consents", json_body={"phone_calls": False})
    assert "phone_calls" in Api.fields_named(Api.problem(bad, 422))
    api.problem(api.call("PUT", f"/v1/members/{new_id('nobody')}/consents", json_body={"sms": False}), 404)


def test_a_template_with_an_unknown_variable_or_bad_syntax_is_refused_at_save(admin: Api) -> None:
    path = "/v1/templates/burned/en/sms"
    unknown = admin.call("PUT", path, json_body={"text": "{{ points }} burned, {{ secret_of_member }}"})
    problem = admin.problem(unknown, 422, "invalid-request")
    assert "secret_of_member" in problem["detail"]
    broken = admin.call("PUT", path, json_body={"text": "Hi\n{% if points %}"})
    problem = admin.problem(broken, 422, "invalid-request")
    assert problem["errors"][0]["line"] == 2
    escape = admin.call("PUT", path, json_body={"text": "{{ ''.__class__.__mro__ }}"})
    assert "unsafe" in admin.problem(escape, 422)["detail"]
    email_without_subject = admin.call("PUT", "/v1/templates/burned/en/email", json_body={"text": "x"})
    assert {"subject", "html"} <= Api.fields_named(admin.problem(email_without_subject, 422))
    assert admin.get(path).json()["source"] == "repository"  # nothing was saved


def test_an_override_wins_then_goes(admin: Api) -> None:
    path = "/v1/templates/tier_reached/uk/sms"
    saved = admin.call("PUT", path, json_body={"text": "{{ program_name }}: тепер {{ tier }}!"})
    assert saved.status_code == 200, saved.text
    assert saved.json()["source"] == "tenant" and saved.json()["updated_by"]["role"] == "admin"
    preview = admin.post("/v1/templates/tier_reached/preview", {"locale": "uk", "channel": "sms"})
    assert preview.json()["text"] == "Demo Rewards: тепер Gold!"
    gone = admin.call("DELETE", path)
    assert gone.status_code == 200 and gone.json()["source"] == "repository"
    assert admin.post("/v1/templates/tier_reached/preview", {"locale": "uk", "channel": "sms"}).json()["text"] != (
        "Demo Rewards: тепер Gold!"
    )
    admin.problem(admin.call("DELETE", path), 404, "not-found")
    admin.problem(admin.get("/v1/templates/no_such_kind/en/email"), 404, "not-found")


@pytest.mark.parametrize("locale", LOCALES)
def test_every_kind_previews_in_every_locale(admin: Api, locale: str) -> None:
    for kind in KINDS:
        email = admin.post(f"/v1/templates/{kind}/preview", {"locale": locale})
        assert email.status_code == 200, (kind, email.text)
        body = email.json()
        assert body["locale"] == locale and body["subject"] and body["text"]
        assert body["html"].startswith("<!DOCTYPE html>") and "unsubscribe" in body["html"]
        text = admin.post(f"/v1/templates/{kind}/preview", {"locale": locale, "channel": "sms"}).json()
        if kind != "broadcast":  # a broadcast's text is the sample's English whatever the locale
            assert text["encoding"] == ("GSM-7" if locale == "en" else "UCS-2"), (kind, text)
        assert 1 <= text["segments"] <= 3, (kind, text)


def test_preview_escapes_given_data_in_html_only(admin: Api) -> None:
    data = {"title": "<b>Sale</b>", "message": "Tom & Jerry"}
    email = admin.post("/v1/templates/broadcast/preview", {"locale": "en-GB", "data": data}).json()
    assert email["locale"] == "en"  # the fallback chain: en-GB -> en
    assert "&lt;b&gt;Sale&lt;/b&gt;" in email["html"] and "Tom &amp; Jerry" in email["html"]
    assert email["subject"] == "<b>Sale</b>" and "Tom & Jerry" in email["text"]
    wrong = admin.post("/v1/templates/accrual/preview", {"data": {"points": "many"}})
    admin.problem(wrong, 422, "invalid-request")


def test_unsubscribe_page_one_click_and_forged_token(api: Api, secret: bytes) -> None:
    member_id = api.enrol(locale="uk", consents={"marketing": True})
    claim = unsubscribe.UnsubscribeClaim("demo", member_id, "marketing", "email")
    token = unsubscribe.sign(secret, claim)

    page = api.get(f"/v1/unsubscribe/{token}", auth=False)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Відписатися" in page.text and 'method="post"' in page.text
    assert api.get(f"/v1/members/{member_id}").json()["consents"]["marketing"] is True  # GET changes nothing

    done = api.call(
        "POST",
        f"/v1/unsubscribe/{token}",
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=False,
    )
    assert done.status_code == 200, done.text
    assert "Готово" in done.text
    consents = api.get(f"/v1/members/{member_id}/consents").json()
    assert consents["consents"]["marketing"] is False and consents["consents"]["bonus_notices"] is True
    assert consents["history"][0]["via"] == "link" and consents["history"][0]["actor"] == "member"
    repeat = api.call("POST", f"/v1/unsubscribe/{token}", data="List-Unsubscribe=One-Click", auth=False)
    assert repeat.status_code == 200
    assert len(api.get(f"/v1/members/{member_id}/consents").json()["history"]) == 2  # recorded once

    payload, signature = token.split(".")
    altered = unsubscribe.sign(secret, unsubscribe.UnsubscribeClaim("demo", member_id, "bonus_notices", "email"))
    for forged in (
        f"{altered.split('.')[0]}.{signature}",
        f"{payload}.{signature[:-1]}A" if signature[-1] != "A" else f"{payload}.{signature[:-1]}B",
        unsubscribe.sign(b"not the stack's secret", claim),
        "garbage",
    ):
        api.problem(api.call("POST", f"/v1/unsubscribe/{forged}", data="x", auth=False), 403, "forbidden")
        api.problem(api.get(f"/v1/unsubscribe/{forged}", auth=False), 403, "forbidden")
    assert api.get(f"/v1/members/{member_id}").json()["consents"]["bonus_notices"] is True
