"""/v1/unsubscribe/{token}: the public end of an unsubscribe link (no API key: the signed token
is the authority). ``GET`` shows a small page in the member's language with a button and changes
nothing (mail scanners fetch links); ``POST`` (RFC 8058 one-click, ``List-Unsubscribe=One-Click``,
or the page's button) records the change with ``via="link"``. A forged or altered token is a 403."""

from __future__ import annotations

import html
import json
from contextlib import suppress
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from loyalty.errors import Conflict
from loyalty.messaging import consents, unsubscribe
from loyalty.messaging.kinds import locale_chain

router = APIGatewayRouter()

Token = Annotated[str, Path(min_length=1, max_length=unsubscribe.MAX_TOKEN_CHARS, description="The signed token.")]
HTML = "text/html; charset=utf-8"
PAGE = {
    200: {"description": "A small HTML page for the member", "content": {"text/html": {"schema": {"type": "string"}}}}
}

TEXTS = {
    "en": {
        "title": "Unsubscribe",
        "marketing": "news and offers",
        "bonus_notices": "notices about your points",
        "email": "by e-mail",
        "sms": "by SMS",
        "ask": "Stop sending you {what}?",
        "button": "Unsubscribe",
        "done": "Done: you will no longer receive {what}.",
        "note": "You can change this at any time at the desk or in your account.",
    },
    "ru": {
        "title": "Отписка",
        "marketing": "новости и предложения",
        "bonus_notices": "уведомления о ваших баллах",  # noqa: RUF001 - Russian, not look-alike Latin
        "email": "по электронной почте",
        "sms": "по SMS",
        "ask": "Больше не присылать вам {what}?",
        "button": "Отписаться",
        "done": "Готово: вы больше не будете получать {what}.",
        "note": "Это можно изменить в любой момент на кассе или в личном кабинете.",
    },
    "uk": {
        "title": "Відписка",
        "marketing": "новини та пропозиції",
        "bonus_notices": "сповіщення про ваші бали",
        "email": "електронною поштою",
        "sms": "через SMS",
        "ask": "Більше не надсилати вам {what}?",
        "button": "Відписатися",
        "done": "Готово: ви більше не отримуватимете {what}.",
        "note": "Це можна змінити будь-коли на касі або в особистому кабінеті.",  # noqa: RUF001 - Ukrainian
    },
}


def _texts(claim: unsubscribe.UnsubscribeClaim) -> tuple[str, dict[str, str]]:
    """The member's language (the fallback chain over the pages we have) and its texts."""
    try:
        found = consents.store().read(claim.tenant_id, claim.member_id)
        locale = json.loads(found.profile_json).get("locale") if found else None
    except (ValueError, KeyError):  # pragma: no cover - a profile is always JSON
        locale = None
    chosen = next(c for c in locale_chain(locale) if c in TEXTS)
    return chosen, TEXTS[chosen]


def _page(locale: str, title: str, body: str) -> Response:
    page = (
        f'<!DOCTYPE html><html lang="{locale}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:Arial,Helvetica,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
        "color:#1f2933}button{font-size:1rem;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#1f6feb;"
        "color:#fff;cursor:pointer}p.note{color:#52606d;font-size:.9rem}</style></head>"
        f"<body>{body}</body></html>"
    )
    return Response(
        status_code=200,
        content_type=HTML,
        body=page,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"},
    )


def _what(texts: dict[str, str], claim: unsubscribe.UnsubscribeClaim) -> str:
    return f"{texts[claim.category]} {texts[claim.channel]}"


@router.get("/v1/unsubscribe/<token>", summary="The unsubscribe page (public): asks, changes nothing", responses=PAGE)
def unsubscribe_page(token: Token) -> Response[str]:
    claim = unsubscribe.verify(token)
    locale, texts = _texts(claim)
    what = html.escape(_what(texts, claim))
    body = (
        f"<h1>{html.escape(texts['title'])}</h1><p>{html.escape(texts['ask']).format(what=what)}</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit">{html.escape(texts["button"])}</button></form>'
        f'<p class="note">{html.escape(texts["note"])}</p>'
    )
    return _page(locale, texts["title"], body)


@router.post(
    "/v1/unsubscribe/<token>",
    summary="Unsubscribe (public, RFC 8058 one-click: body List-Unsubscribe=One-Click)",
    responses=PAGE,
)
def unsubscribe_now(token: Token) -> Response[str]:
    claim = unsubscribe.verify(token)
    with suppress(Conflict):  # an erased member gets nothing anyway: the link's promise holds
        consents.change(
            claim.tenant_id,
            claim.member_id,
            {claim.category: False},
            via="link",
            actor="member",
            reason=f"unsubscribe link ({claim.channel})",
        )
    locale, texts = _texts(claim)
    what = html.escape(_what(texts, claim))
    body = (
        f"<h1>{html.escape(texts['title'])}</h1><p>{html.escape(texts['done']).format(what=what)}</p>"
        f'<p class="note">{html.escape(texts["note"])}</p>'
    )
    return _page(locale, texts["title"], body)
