"""Messages end to end over HTTP, on a stack of this module's own (its clock at 10:00 UTC, outside
quiet hours everywhere in Europe): a purchase makes the notices function decide an accrual notice
from the ledger's stream, the sender sends it through SES v2 (moto), and the local outbox shows it
with the right amount, language and one-click unsubscribe headers. The outbox page is then opened
in a real headless Chromium (Debian's ``chromium``), whose screenshot is kept in
``tests/artefacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Api, new_id, silver_points

pytestmark = pytest.mark.e2e

START = "2026-11-25T10:00:00Z"
ARTEFACTS = Path(__file__).resolve().parents[1] / "artefacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def api(start_local_stack: Any) -> Iterator[Api]:
    stack = start_local_stack(args=["--now", START])
    client = Api(stack, stack["tenants"]["demo"]["api_keys"]["integration"])
    yield client
    client.session.close()


def outbox(
    api: Api, member_id: str, *, count: int = 1, kind: str | None = None, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """The member's messages once ``count`` of them (of ``kind``, if given) have arrived: the stream
    and the queue are asynchronous, and other messages (the welcome chain's) may come first."""
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(f"{api.url}/_local/outbox.json", params={"member_id": member_id}, timeout=10)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
        messages = answer.json()
        counted = [m for m in messages if kind is None or m["kind"] == kind]
        if len(counted) >= count or time.monotonic() > deadline:
            return messages
        time.sleep(0.2)


def test_a_purchase_sends_an_accrual_notice_in_the_members_language(api: Api) -> None:
    member_id = api.enrol(email=f"{new_id('ru')}@example.com", locale="ru", time_zone="Europe/Moscow")
    amount = 250_000
    api.purchase(member_id, new_id("order"), amount)
    points = silver_points(amount)
    messages = outbox(api, member_id, kind="accrual")
    [message] = [m for m in messages if m["kind"] == "accrual" and f"+{points}" in m["subject"]]
    assert message["channel"] == "email" and message["member_id"] == member_id
    assert message["to"].endswith("@example.com") and message["sent_at"].startswith("2026-11-25T10:")
    assert "баллов" in message["subject"]  # Russian
    assert 'lang="ru"' in message["body"] and "2 500.00 RUB" in message["body"]
    headers = message["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Unsubscribe"].startswith("<https://") and "/v1/unsubscribe/" in headers["List-Unsubscribe"]
    assert headers["X-SES-Configuration-Set"] == "loyalty-local-messages"  # MessagesConfigurationSet
    # The same message once: filtering by another member shows none of it.
    assert outbox(api, new_id("nobody"), timeout=0) == []


def test_the_outbox_page_in_a_real_browser(api: Api, tmp_path: Path) -> None:
    member_id = api.enrol(email=f"{new_id('en')}@example.com", locale="en")
    api.purchase(member_id, new_id("order"), 100_000)
    assert [m for m in outbox(api, member_id, kind="accrual") if m["kind"] == "accrual"]
    if not Path(CHROMIUM).exists() or not shutil.which(CHROMIUM):
        reason = f"{CHROMIUM} is missing: `make test` installs Debian's chromium when run as root (apt-get)"
        if os.environ.get("LOYALTY_REQUIRE_CHROMIUM"):
            pytest.fail(reason)
        pytest.skip(reason)
    ARTEFACTS.mkdir(exist_ok=True)
    screenshot = ARTEFACTS / "outbox.png"
    screenshot.unlink(missing_ok=True)
    page = f"{api.url}/_local/outbox?member_id={member_id}"
    with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
        common = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1100,1400"]
        dom = subprocess.run(
            [*common, "--dump-dom", page], capture_output=True, text=True, timeout=120, check=True
        ).stdout
        subprocess.run(
            [*common, f"--screenshot={screenshot}", page], capture_output=True, text=True, timeout=120, check=True
        )
    assert "Outbox: 1 message(s) to member" in dom
    assert f'data-member-id="{member_id}"' in dom
    assert "<iframe sandbox=" in dom and "srcdoc=" in dom  # the e-mail as the customer sees it, sandboxed
    assert "List-Unsubscribe" in dom
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def evening(start_local_stack: Any) -> Iterator[Api]:
    """A stack of its own whose clock starts at 19:30 UTC: 22:30 in Moscow (quiet), 19:30 in London."""
    stack = start_local_stack(args=["--now", "2026-11-25T19:30:00Z"])
    client = Api(stack, stack["tenants"]["demo"]["api_keys"]["integration"])
    yield client
    client.session.close()


def travel(api: Api, to: str) -> dict[str, Any]:
    answer = requests.post(f"{api.url}/_local/clock", json={"to": to}, timeout=600)
    assert answer.status_code == 200, answer.text
    moved = answer.json()
    assert moved["drained"] is True and all(f["ok"] for f in moved["fired"]), moved
    return moved


def test_quiet_hours_hold_a_notice_until_morning_in_the_members_zone(evening: Api) -> None:
    moscow = evening.enrol(email=f"{new_id('msk')}@example.com", locale="ru", time_zone="Europe/Moscow")
    london = evening.enrol(email=f"{new_id('ldn')}@example.com", locale="en", time_zone="Europe/London")
    for member_id in (moscow, london):
        evening.purchase(member_id, new_id("order"), 100_000)
    assert [m["kind"] for m in outbox(evening, london)] == ["accrual"]  # 19:30 in London: it goes
    assert requests.post(f"{evening.url}/_local/drain", json={}, timeout=120).status_code == 200
    assert outbox(evening, moscow, timeout=0) == []  # 22:30 in Moscow: held
    travel(evening, "2026-11-26T05:30:00Z")  # 08:30 in Moscow: still quiet
    assert outbox(evening, moscow, timeout=0) == []
    moved = travel(evening, "2026-11-26T06:10:00Z")  # the release job's run at 06:00 UTC, 09:00 there
    assert "SendReleaseFunction.Hourly" in {f["schedule"] for f in moved["fired"]}
    [message] = outbox(evening, moscow)
    assert message["kind"] == "accrual" and message["sent_at"].startswith("2026-11-26T06:0")
