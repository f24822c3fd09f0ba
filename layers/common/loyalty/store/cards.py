"""Loyalty cards in the LedgerTable: one item per card, ``T#<tenant>#C#<number>`` / ``CARD``.

Every write is conditional: a new card is put with ``attribute_not_exists`` (so a number is unique
per tenant), a changed card is put whole with ``version = :v`` (so two changes of one card never
both win: the loser reads again and decides again). Each write is one ``TransactWriteItems`` with
the card change's audit record (``also``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from loyalty.store import dynamo, keys

CARD_SK = "CARD"


def card_pk(tenant_id: str, number: str) -> str:
    return f"{keys.tenant_pk(tenant_id)}#C#{number}"


@dataclass(frozen=True)
class Sale:
    price: int  # minor units
    currency: str
    sold_at: str
    recorded_by: dict[str, str]


@dataclass(frozen=True)
class Handover:
    """One hand-over of the card, by its ``transfer_id``: the intent (``pending``) is written with
    the relink; ``done`` once the giver's points moved (``result`` is what the ledger answered)."""

    transfer_id: str
    from_member_id: str
    to_member_id: str
    status: str  # pending | done
    at: str
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class Card:
    tenant_id: str
    card_number: str
    kind: str  # virtual | physical
    status: str  # active | blocked
    issued_at: str
    issued_by: dict[str, str]
    issue_id: str  # names the request that issued it: a retry after a lost response finds its own card
    version: int = 0
    member_id: str | None = None
    linked_at: str | None = None
    test: bool = False
    sale: Sale | None = None
    blocked_at: str | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    pending_handover: str | None = None  # the transfer_id of a hand-over not finished yet
    handovers: dict[str, Handover] = field(default_factory=dict)

    def changed(self, **changes: Any) -> Card:
        return replace(self, version=self.version + 1, **changes)


def _item(card: Card) -> dict[str, Any]:
    return {
        "pk": card_pk(card.tenant_id, card.card_number),
        "sk": CARD_SK,
        "tenant_id": card.tenant_id,
        "card_number": card.card_number,
        "kind": card.kind,
        "status": card.status,
        "issued_at": card.issued_at,
        "issued_by": card.issued_by,
        "issue_id": card.issue_id,
        "version": card.version,
        "member_id": card.member_id,
        "linked_at": card.linked_at,
        "test": card.test,
        "sale": json.dumps(vars(card.sale), sort_keys=True) if card.sale else None,
        "blocked_at": card.blocked_at,
        "replaced_by": card.replaced_by,
        "replaces": card.replaces,
        "pending_handover": card.pending_handover,
        "handovers": json.dumps({tid: vars(h) for tid, h in card.handovers.items()}, sort_keys=True)
        if card.handovers
        else None,
    }


def _card(item: dict[str, Any]) -> Card:
    handovers = json.loads(item["handovers"]) if item.get("handovers") else {}
    return Card(
        tenant_id=item["tenant_id"],
        card_number=item["card_number"],
        kind=item["kind"],
        status=item["status"],
        issued_at=item["issued_at"],
        issued_by=dict(item.get("issued_by") or {}),
        issue_id=item["issue_id"],
        version=int(item.get("version", 0)),
        member_id=item.get("member_id"),
        linked_at=item.get("linked_at"),
        test=bool(item.get("test", False)),
        sale=Sale(**json.loads(item["sale"])) if item.get("sale") else None,
        blocked_at=item.get("blocked_at"),
        replaced_by=item.get("replaced_by"),
        replaces=item.get("replaces"),
        pending_handover=item.get("pending_handover"),
        handovers={tid: Handover(**record) for tid, record in handovers.items()},
    )


class CardStore(dynamo.Store):
    def get(self, tenant_id: str, number: str) -> Card | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": card_pk(tenant_id, number), "sk": CARD_SK}),
            ConsistentRead=True,
        )
        return _card(dynamo.unmarshal(response["Item"])) if "Item" in response else None

    def put_new(self, card: Card) -> dict[str, Any]:
        """The ``Put`` of a new card: fails if the tenant has a card with this number."""
        put = {
            "TableName": self.table,
            "Item": dynamo.marshal(_item(card)),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        return {"Put": put}

    def put_changed(self, before: Card, after: Card) -> dict[str, Any]:
        """The ``Put`` of a changed card: fails unless the card is still as it was read (``before``)."""
        put = {
            "TableName": self.table,
            "Item": dynamo.marshal(_item(after)),
            "ConditionExpression": "version = :v",
            "ExpressionAttributeValues": dynamo.values({":v": before.version}),
        }
        return {"Put": put}

    def write(self, items: Sequence[dict[str, Any]]) -> None:
        """One transaction: card puts (``put_new``/``put_changed``) and their audit records."""
        self.client.transact_write_items(TransactItems=list(items))
