"""SES bounces and complaints: the configuration set's event destination publishes them to an SNS
topic, which delivers them (raw) to the bounces queue that ``functions/bounces`` consumes.

A permanent bounce suppresses the address and turns the member's e-mail channel off; a complaint
suppresses the address and turns off the category of the message complained about (the member
said "this is spam"). Each records a consent change (``via`` bounce / complaint) through
``consents.change``. Transient bounces (a full mailbox) change nothing: SES retried already, and
the next message may get through. Who the member is comes from the message's tags (the sender
tags every e-mail); a copy to a company's decision maker suppresses its address only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loyalty import clock
from loyalty.errors import Conflict, NotFound
from loyalty.messaging.sending import untag
from loyalty.store.sends import SendStore

ACTOR = "system:ses"


def _tag(mail: Mapping[str, Any], name: str) -> str | None:
    values = (mail.get("tags") or {}).get(name) or []
    return values[0] if values else None


def handle(sends: SendStore, change: Callable[..., Any], event: Mapping[str, Any]) -> dict[str, Any] | None:
    """Apply one SES event (``eventType`` from a configuration set, or ``notificationType`` from
    an identity's notifications). Answers what was done, None for an event that asks nothing."""
    kind = event.get("eventType") or event.get("notificationType")
    mail = event.get("mail") or {}
    if kind == "Bounce":
        bounce = event.get("bounce") or {}
        if bounce.get("bounceType") != "Permanent":
            return None
        addresses = [r["emailAddress"] for r in bounce.get("bouncedRecipients", []) if r.get("emailAddress")]
        via, changes = "bounce", {"email": False}
    elif kind == "Complaint":
        complaint = event.get("complaint") or {}
        addresses = [r["emailAddress"] for r in complaint.get("complainedRecipients", []) if r.get("emailAddress")]
        category = _tag(mail, "category") or "marketing"
        via, changes = "complaint", {category: False}
    else:
        return None
    tenant_tag, member_tag = _tag(mail, "tenant"), _tag(mail, "member")
    if not tenant_tag or not member_tag or not addresses:
        return None
    tenant_id, member_id = untag(tenant_tag), untag(member_tag)
    at = clock.isoformat(clock.now())
    for address in addresses:
        sends.suppress(tenant_id, "email", address, reason=via, at=at, member_id=member_id)
    if _tag(mail, "role") == "copy":
        changes = {}
    recorded = False
    if changes:
        try:
            change(tenant_id, member_id, changes, via=via, actor=ACTOR, reason=f"SES {kind.lower()}")
            recorded = True
        except (NotFound, Conflict):
            pass  # an unknown or erased member: the address stays suppressed, there is no consent to change
    return {
        "tenant_id": tenant_id,
        "member_id": member_id,
        "via": via,
        "suppressed": len(addresses),
        "consent_changed": recorded,
    }
