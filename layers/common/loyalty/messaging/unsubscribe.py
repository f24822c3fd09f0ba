"""Signed unsubscribe links (RFC 8058 one-click): who, from what, over which channel.

A token is ``<payload>.<signature>``, both base64url without padding: the payload names the
tenant, the member, the category and the channel; the signature is HMAC-SHA256 over the payload
with the stack's secret (a Secrets Manager secret made by the template, never a value in the
code), cut to 128 bits. ``verify`` compares in constant time and refuses (403) anything altered.
A token does not expire: an unsubscribe link in an old e-mail must keep working.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from loyalty.errors import Forbidden
from loyalty.messaging.kinds import Category, Channel

VERSION = "1"
SIGNATURE_BYTES = 16
CATEGORY_CODES = {"marketing": "m", "bonus_notices": "b"}
CHANNEL_CODES = {"email": "e", "sms": "s"}
SEPARATOR = "\x1f"  # cannot occur in a tenant or member id
MAX_TOKEN_CHARS = 512
PATH = "/v1/unsubscribe/"


@dataclass(frozen=True)
class UnsubscribeClaim:
    tenant_id: str
    member_id: str
    category: Category
    channel: Channel


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES])


def sign(secret: bytes, claim: UnsubscribeClaim) -> str:
    """The token for ``claim`` (pure: the secret is given)."""
    if claim.category not in CATEGORY_CODES or claim.channel not in CHANNEL_CODES:
        raise ValueError(f"unknown category or channel: {claim.category!r}, {claim.channel!r}")
    fields = [VERSION, claim.tenant_id, claim.member_id, CATEGORY_CODES[claim.category], CHANNEL_CODES[claim.channel]]
    if any(SEPARATOR in field or not field for field in fields):
        raise ValueError("ids must be non-empty and free of control characters")
    payload = _b64(SEPARATOR.join(fields).encode())
    return f"{payload}.{_signature(secret, payload)}"


FORGED = "This unsubscribe link is not valid (altered or incomplete). Use the link from the message as it came."


def parse(secret: bytes, token: str) -> UnsubscribeClaim:
    """The claim of a token signed with ``secret``; Forbidden for anything else (pure)."""
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise Forbidden(FORGED)
    payload, signature = token.split(".")
    if not hmac.compare_digest(_signature(secret, payload).encode(), signature.encode()):
        raise Forbidden(FORGED)
    try:
        version, tenant_id, member_id, category, channel = _unb64(payload).decode().split(SEPARATOR)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:  # pragma: no cover - signed by us
        raise Forbidden(FORGED) from error
    categories = {code: name for name, code in CATEGORY_CODES.items()}
    channels = {code: name for name, code in CHANNEL_CODES.items()}
    if version != VERSION or category not in categories or channel not in channels:  # pragma: no cover
        raise Forbidden(FORGED)
    return UnsubscribeClaim(tenant_id, member_id, categories[category], channels[channel])  # type: ignore[arg-type]


def _secret() -> bytes:
    from loyalty.settings import settings  # read on first use
    from loyalty.store.secrets import secret_string

    arn = settings().unsubscribe_secret_arn
    if not arn:
        raise RuntimeError("UNSUBSCRIBE_SECRET_ARN is not set: the function needs the stack's signing secret")
    return secret_string(arn).encode()


def link(tenant_id: str, member_id: str, category: Category, channel: Channel) -> str:
    """The absolute, signed one-click URL for ``List-Unsubscribe`` and the messages' footers:
    ``<PUBLIC_API_URL>/v1/unsubscribe/<token>``."""
    from loyalty.settings import settings

    base = settings().public_api_url.rstrip("/")
    if not base:
        raise RuntimeError("PUBLIC_API_URL is not set: the function needs the API's public URL")
    return f"{base}{PATH}{sign(_secret(), UnsubscribeClaim(tenant_id, member_id, category, channel))}"


def verify(token: str) -> UnsubscribeClaim:
    """The claim of a token this stack signed; Forbidden (403) for a forged or altered one."""
    return parse(_secret(), token)
