"""The ledger: members, their balance, entries, lots, holds and orders (the LedgerTable)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from botocore.exceptions import ClientError

from loyalty.models import Balance, Consents, Member, Profile
from loyalty.store import dynamo, keys


def _member_from_item(item: dict[str, Any]) -> Member:
    profile = json.loads(item["profile"])
    return Member(
        tenant_id=item["tenant_id"],
        member_id=item["member_id"],
        profile=Profile(
            email=profile.get("email"),
            phone=profile.get("phone"),
            locale=profile.get("locale", "en"),
            time_zone=profile.get("time_zone", "UTC"),
            birthday=date.fromisoformat(profile["birthday"]) if profile.get("birthday") else None,
            consents=Consents(**profile.get("consents", {})),
            program_id=item["program_id"],
        ),
        enrolled_at=datetime.fromisoformat(item["enrolled_at"]),
        balance=Balance(
            balance=int(item.get("balance", 0)),
            held=int(item.get("held", 0)),
            lifetime_earned=int(item.get("lifetime_earned", 0)),
        ),
        lifetime_spend=int(item.get("lifetime_spend", 0)),
        tier=item["tier"],
    )


class LedgerStore:
    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or dynamo.client()

    def get_member(self, tenant_id: str, member_id: str) -> Member | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.MEMBER_SK}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        return _member_from_item(dynamo.unmarshal(response["Item"]))

    def create_member(self, member: Member) -> Member | None:
        """Write a new member; ``None`` if one with this id exists already (nothing is changed)."""
        profile = member.profile.model_dump(mode="json", exclude={"program_id"})
        item = {
            "pk": keys.member_pk(member.tenant_id, member.member_id),
            "sk": keys.MEMBER_SK,
            "tenant_id": member.tenant_id,
            "member_id": member.member_id,
            "program_id": member.profile.program_id,
            "profile": json.dumps(profile, sort_keys=True),
            "enrolled_at": member.enrolled_at.isoformat(),
            "tier": member.tier,
            "balance": 0,
            "held": 0,
            "lifetime_earned": 0,
            "lifetime_spend": 0,
            "version": 0,
        }
        try:
            self.client.put_item(
                TableName=self.table,
                Item=dynamo.marshal(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return member
