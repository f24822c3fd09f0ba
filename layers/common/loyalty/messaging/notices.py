"""Bonus notices: what the ledger's stream decides, and what a notice says when it is sent.

From the stream (``functions/events``; its filters pass new entry items and new due notices):

- ``accrual`` (points > 0): joins the member's accrual notice still inside its burst window, or
  opens one due at the window's end (``NoticeBurstSeconds``): several accruals within minutes are
  one message that lists them;
- ``redemption``, ``adjustment``: one notice per entry;
- ``refund_return`` / ``refund_clawback``: one ``refund`` notice per refund (both entries join it);
- ``tier_change`` caused by a purchase (an upgrade; reviews only lower tiers): ``tier_reached``;
- ``burn``: one ``burned`` notice per night (every lot of the night joins it);
- a due notice ``NOTICE#BURN#<burn date>#<days before>`` the burn worker wrote: ``burn_reminder``.

When it is sent (:func:`payload`), the amounts are read again: a burn reminder says what burns
now (points spent meanwhile: the new amount; nothing left: no message), and every notice carries
the balance of the moment. :func:`after` marks the due notice sent (or skipped).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from loyalty import currency
from loyalty.store import dynamo, keys

BURN_NOTICE_PREFIX = "NOTICE#BURN#"


def _details(image: Mapping[str, Any]) -> dict[str, Any]:
    raw = image.get("details")
    if isinstance(raw, str) and raw:
        return json.loads(raw)
    return dict(raw or {})


def decide_from_stream(decider: Any, stores: Any, image: Mapping[str, Any]) -> str | None:
    """Decide the notice a new ledger item calls for; answers the kind decided (or joined), None
    when the item calls for nothing or its decision existed already."""
    tenant_id, member_id, sk = image.get("tenant_id"), image.get("member_id"), str(image.get("sk", ""))
    if not tenant_id or not member_id:
        return None
    window = timedelta(seconds=decider.config.notice_burst_seconds)
    if sk.startswith(BURN_NOTICE_PREFIX):
        if image.get("status") != "due":
            return None
        reference = f"{image['burn_date']}#{int(image['days_before']):03d}"
        data = {"burn_date": image["burn_date"], "days_before": int(image["days_before"])}
        return "burn_reminder" if decider.decide(tenant_id, member_id, "burn_reminder", reference, data) else None
    if not sk.startswith("E#"):
        return None
    entry_type, points, entry_id = image.get("type"), int(image.get("points", 0)), str(image.get("entry_id"))
    order_id = image.get("order_id")
    details = _details(image)
    if entry_type == "accrual" and points > 0:
        amount = details.get("amount")
        part = {
            "order_id": order_id,
            "points": points,
            "amount": currency.format_amount(int(amount), details["currency"])
            if amount and details.get("currency")
            else "",
        }
        done = decider.join_or_decide(tenant_id, member_id, "accrual", part, entry_id, window=window)
        return "accrual" if done else None
    if entry_type == "redemption":
        data = {"points": abs(points), "order_id": order_id}
        return "redemption" if decider.decide(tenant_id, member_id, "redemption", entry_id, data) else None
    if entry_type in ("refund_return", "refund_clawback"):
        part = {"type": entry_type, "points": abs(points), "order_id": order_id}
        group = str(image.get("ref") or entry_id)
        done = decider.join_or_decide(tenant_id, member_id, "refund", part, entry_id, window=window, group=group)
        return "refund" if done else None
    if entry_type == "adjustment":
        data = {"points": points, "reason": image.get("reason") or ""}
        return "adjustment" if decider.decide(tenant_id, member_id, "adjustment", entry_id, data) else None
    if entry_type == "tier_change" and order_id and details.get("to"):
        data = {"tier": details["to"]}
        return "tier_reached" if decider.decide(tenant_id, member_id, "tier_reached", entry_id, data) else None
    if entry_type == "burn" and points < 0:
        part = {"points": abs(points), "burn_date": image.get("burn_date")}
        night = str(details.get("night") or image.get("ref") or entry_id)
        done = decider.join_or_decide(tenant_id, member_id, "burned", part, entry_id, window=window, group=night)
        return "burned" if done else None
    return None


# ------------------------------------------------------------------------------ at send time
def payload(stores: Any, record: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """The template's variables (but ``locale`` and ``unsubscribe_url``, which are per
    recipient): the record's data, what its parts add up to, and the member's balance now.
    None when there is nothing left to say (a burn reminder whose points are gone)."""
    from loyalty import burning
    from loyalty.ledger import Ledger

    tenant_id, member_id, kind = record["tenant_id"], record["member_id"], record["kind"]
    account = stores.ledger.snapshot(tenant_id, member_id).account
    if account is None:
        return None
    program = stores.config.get_program(tenant_id, account.program_id)
    data: dict[str, Any] = {
        **(record.get("data") or {}),
        "member_id": member_id,
        "program_name": program.name if program else "",
        "balance": account.balance,
        "available": account.available(now),
    }
    parts = list(record.get("parts") or [])
    if kind == "accrual":
        data |= {"points": sum(int(p["points"]) for p in parts), "accruals": parts, "count": len(parts)}
    elif kind == "refund":
        taken = sum(int(p["points"]) for p in parts if p["type"] == "refund_clawback")
        returned = sum(int(p["points"]) for p in parts if p["type"] == "refund_return")
        data |= {
            "points_taken": taken,
            "points_returned": returned,
            "order_id": parts[0]["order_id"] if parts else None,
        }
    elif kind == "burned":
        data |= {
            "points": sum(int(p["points"]) for p in parts),
            "burn_date": max((str(p["burn_date"]) for p in parts if p.get("burn_date")), default=""),
        }
    elif kind == "burn_reminder":
        upcoming = burning.expiring(Ledger(stores), tenant_id, member_id)
        points = next((int(u["points"]) for u in upcoming if str(u["date"]) == data["burn_date"]), 0)
        if points <= 0:
            return None
        data["points"] = points
    return data


def after(stores: Any, record: Mapping[str, Any]) -> None:
    """Once a record is finished: a burn reminder's due notice says ``sent`` (or ``skipped``)."""
    if record["kind"] != "burn_reminder":
        return
    burn_date, days_before = record["data"]["burn_date"], int(record["data"]["days_before"])
    key = {"pk": keys.member_pk(record["tenant_id"], record["member_id"]), "sk": keys.notice_sk(burn_date, days_before)}
    try:
        stores.ledger.client.update_item(
            TableName=stores.ledger.table,
            Key=dynamo.marshal(key),
            UpdateExpression="SET #s = :s, sent_at = :at, sent_points = :p",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=dynamo.values(
                {":s": record["status"], ":at": record.get("finished_at"), ":p": record.get("points") or 0}
            ),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
