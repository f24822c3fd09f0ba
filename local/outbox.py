"""The local outbox: every e-mail and SMS the functions send, as the customer sees it.

moto keeps what SES v2 and SNS were asked to send, but drops what matters here (SES v2's custom
headers such as ``List-Unsubscribe``, its tags, SNS's message attributes). So the outbox listens at
the boundary instead: :class:`Capture` is WSGI middleware around the stack's moto server that
records each ``SendEmail`` (SES v2, ``POST /v2/email/outbound-emails``) and ``Publish`` to a phone
number (SNS) that succeeded, with the instant on the stack's clock. Production code knows nothing
of it: the functions call AWS as they would anywhere.

Who a message was for (``member_id``) and its ``kind`` come from the send record whose delivered
message id it is (read from the LedgerTable when the outbox is shown), or else from the e-mail's
tags. ``GET /_local/outbox`` shows the messages (HTML in a sandboxed iframe, SMS as text, headers),
``GET /_local/outbox.json`` answers ``[{to, channel, kind, subject, body, headers, sent_at,
member_id}]``; both take ``?member_id=``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from werkzeug.wrappers import Request, Response

from local.clock import format_rfc3339

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
SES_SEND_PATH = "/v2/email/outbound-emails"


def _untag(value: str) -> str:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return value


class Outbox:
    """What was sent, in order (thread-safe)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self.now = now
        self._messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, message: dict[str, Any]) -> None:
        with self._lock:
            self._messages.append({**message, "sent_at": format_rfc3339(self.now())})

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._messages]

    # ------------------------------------------------------------------ what a request says
    def email(self, request: dict[str, Any], answer: dict[str, Any]) -> None:
        simple = (request.get("Content") or {}).get("Simple") or {}
        body = simple.get("Body") or {}
        tags = {t.get("Name"): t.get("Value", "") for t in request.get("EmailTags") or []}
        to = ", ".join((request.get("Destination") or {}).get("ToAddresses") or [])
        subject = (simple.get("Subject") or {}).get("Data", "")
        headers = {"From": request.get("FromEmailAddress", ""), "To": to, "Subject": subject}
        headers |= {h["Name"]: h["Value"] for h in simple.get("Headers") or []}
        if request.get("ConfigurationSetName"):
            headers["X-SES-Configuration-Set"] = request["ConfigurationSetName"]
        self.add(
            {
                "message_id": answer.get("MessageId"),
                "to": to,
                "channel": "email",
                "kind": tags.get("kind"),
                "subject": subject,
                "body": (body.get("Html") or {}).get("Data") or (body.get("Text") or {}).get("Data", ""),
                "text": (body.get("Text") or {}).get("Data", ""),
                "headers": headers,
                "member_id": _untag(tags["member"]) if tags.get("member") else None,
            }
        )

    def sms(self, form: dict[str, list[str]], answer: bytes) -> None:
        text = answer.decode(errors="replace")
        message_id = text.split("<MessageId>", 1)[1].split("</MessageId>", 1)[0] if "<MessageId>" in text else None
        attributes: dict[str, str] = {}
        n = 1
        while f"MessageAttributes.entry.{n}.Name" in form:
            name = form[f"MessageAttributes.entry.{n}.Name"][0]
            attributes[name] = (form.get(f"MessageAttributes.entry.{n}.Value.StringValue") or [""])[0]
            n += 1
        self.add(
            {
                "message_id": message_id,
                "to": form["PhoneNumber"][0],
                "channel": "sms",
                "kind": None,
                "subject": None,
                "body": (form.get("Message") or [""])[0],
                "text": (form.get("Message") or [""])[0],
                "headers": attributes,
                "member_id": None,
            }
        )


class Capture:
    """WSGI middleware around moto's server: records successful sends in the outbox."""

    def __init__(self, app: WsgiApp, outbox: Outbox) -> None:
        self.app = app
        self.outbox = outbox

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        path = environ.get("PATH_INFO", "")
        is_email = path == SES_SEND_PATH
        form = parse_qs(raw.decode(errors="replace")) if not is_email and b"Action=Publish" in raw else {}
        is_sms = bool(form.get("PhoneNumber"))
        if not (is_email or is_sms):
            return self.app(environ, start_response)
        status: list[str] = []

        def remember(code: str, headers: list[Any], exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        result = self.app(environ, remember)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if status and status[0].startswith("2"):
            if is_email:
                self.outbox.email(json.loads(raw or b"{}"), json.loads(body or b"{}"))
            else:
                self.outbox.sms(form, body)
        return [body]


# ---------------------------------------------------------------------- the pages
class OutboxPages:
    """``/_local/outbox`` and ``/_local/outbox.json``. ``senders`` answers, for provider message
    ids, the ``(member_id, kind)`` of the send record that delivered them."""

    def __init__(self, outbox: Outbox, senders: Callable[[], dict[str, tuple[str, str]]]) -> None:
        self.outbox = outbox
        self.senders = senders

    def rows(self, request: Request) -> list[dict[str, Any]]:
        known = self.senders()
        rows = []
        for message in self.outbox.messages():
            member_id, kind = known.get(message.get("message_id") or "", (message["member_id"], message["kind"]))
            rows.append(
                {
                    "to": message["to"],
                    "channel": message["channel"],
                    "kind": kind,
                    "subject": message["subject"],
                    "body": message["body"],
                    "headers": message["headers"],
                    "sent_at": message["sent_at"],
                    "member_id": member_id,
                }
            )
        wanted = request.args.get("member_id")
        return [row for row in rows if row["member_id"] == wanted] if wanted else rows

    def json(self, request: Request) -> Response:
        return Response(json.dumps(self.rows(request)), status=200, content_type="application/json")

    def page(self, request: Request) -> Response:
        rows = self.rows(request)
        wanted = request.args.get("member_id")
        title = f"Outbox: {len(rows)} message(s)" + (f" to member {wanted}" if wanted else "")
        cards = [_card(row) for row in reversed(rows)] or ["<p class='empty'>Nothing was sent yet.</p>"]
        body = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:1.5em;background:#f4f4f6}"
            "article{background:#fff;border:1px solid #ccd;border-radius:6px;margin:0 0 1.2em;padding:1em}"
            "h2{font-size:1.05em;margin:0 0 .4em}.meta{color:#555;font-size:.9em}"
            "table{border-collapse:collapse;font-size:.85em;margin:.5em 0}"
            "td,th{border:1px solid #dde;padding:2px 6px;text-align:left;vertical-align:top}"
            "iframe{width:100%;height:320px;border:1px solid #dde;background:#fff}"
            "pre.sms{background:#e8f4ea;border-radius:12px;padding:.8em;max-width:28em;white-space:pre-wrap}"
            "</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            "<form method='get'><label>member_id <input name='member_id' "
            f"value='{html.escape(wanted or '', quote=True)}'></label> <button>Filter</button> "
            "<a href='/_local/outbox.json'>JSON</a></form>" + "".join(cards) + "</body></html>"
        )
        return Response(body, status=200, content_type="text/html; charset=utf-8")


def _card(row: dict[str, Any]) -> str:
    head = "".join(
        f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(str(value))}</td></tr>"
        for name, value in row["headers"].items()
    )
    if row["channel"] == "email":
        # The customer's view: the HTML in a sandboxed frame (no scripts, no same origin).
        content = f"<iframe sandbox title='message' srcdoc=\"{html.escape(row['body'] or '', quote=True)}\"></iframe>"
    else:
        content = f"<pre class='sms'>{html.escape(row['body'] or '')}</pre>"
    summary = f"{row['channel']} · {row['kind'] or '?'} · to {row['to']} · member {row['member_id'] or '?'}"
    heading = row["subject"] if row["channel"] == "email" else f"SMS: {(row['body'] or '')[:60]}"
    return (
        f"<article class='message {html.escape(row['channel'])}' data-member-id='{html.escape(str(row['member_id']))}'>"
        f"<h2>{html.escape(heading or '')}</h2>"
        f"<div class='meta'>{html.escape(summary)} · {html.escape(row['sent_at'])}</div>"
        f"<table>{head}</table>{content}</article>"
    )
