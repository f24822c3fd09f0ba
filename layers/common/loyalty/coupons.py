"""Single-use coupons (a birthday greeting's): issued once per member and occasion, collected once
by the shop's till (``POST /v1/coupons/{code}/redeem``).

- The code is random (``secrets``: 60 bits in Crockford base32, ``BDAY-XXXX-XXXX-XXXX``),
  never derived from the member, so it cannot be guessed from who or when.
- Issued once: one transaction writes the member's claim ``COUPON#<occasion>`` (in its partition,
  ``attribute_not_exists``) and the coupon ``T#<tenant>#COUPON#<code>``; a rerun of the job finds
  the claim and answers the same code, so a retried greeting never mints a second coupon.
- Collected once: a conditional update (not used, not expired) marks it used; the second attempt
  is a 409 that says when it was used; an unknown code (or another tenant's: the tenant is in the
  key) a 404; an expired one a 410.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from loyalty import clock
from loyalty.errors import Conflict, DomainError, NotFound
from loyalty.store import dynamo, keys

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
GROUPS = 3
GROUP_LENGTH = 4


class Gone(DomainError):
    """410: the coupon exists but is no longer valid."""

    status = 410
    slug = "coupon-expired"
    title = "Coupon Expired"


def new_code(prefix: str = "BDAY") -> str:
    groups = ["".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS)]
    return "-".join([prefix, *groups])


def normalize(code: str) -> str:
    """What a cashier types: any case, spaces trimmed."""
    return code.strip().upper()


def claim_sk(occasion: str) -> str:
    return f"COUPON#{occasion}"


@dataclass(frozen=True)
class Coupon:
    code: str
    member_id: str
    occasion: str
    valid_until: str
    used_at: str | None = None


class CouponStore(dynamo.Store):
    def issue(self, tenant_id: str, member_id: str, occasion: str, valid_until: datetime) -> Coupon:
        """The member's coupon for ``occasion`` (e.g. ``birthday#2027``): a new one, or the one
        issued already."""
        for _ in range(5):
            code = new_code()
            claim = {
                "pk": keys.member_pk(tenant_id, member_id),
                "sk": claim_sk(occasion),
                "code": code,
                "valid_until": clock.isoformat(valid_until),
            }
            coupon = {
                "pk": keys.coupon_pk(tenant_id, code),
                "sk": keys.COUPON_SK,
                "tenant_id": tenant_id,
                "member_id": member_id,
                "occasion": occasion,
                "code": code,
                "valid_until": clock.isoformat(valid_until),
                "issued_at": clock.isoformat(clock.now()),
            }
            try:
                self.client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.table,
                                "Item": dynamo.marshal(claim),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self.table,
                                "Item": dynamo.marshal(coupon),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                    ]
                )
            except ClientError as error:
                reasons = dynamo.cancellation_codes(error)
                if reasons[:1] == ["ConditionalCheckFailed"]:
                    existing = self._claim(tenant_id, member_id, occasion)
                    return Coupon(existing["code"], member_id, occasion, existing["valid_until"])
                if reasons[1:2] == ["ConditionalCheckFailed"]:
                    continue  # 1 in 2^60: another code
                raise
            return Coupon(code, member_id, occasion, coupon["valid_until"])
        raise Conflict("Could not find a free coupon code; retry.")  # pragma: no cover

    def _claim(self, tenant_id: str, member_id: str, occasion: str) -> dict[str, Any]:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": claim_sk(occasion)}),
            ConsistentRead=True,
        )
        return dynamo.unmarshal(response["Item"])

    def get(self, tenant_id: str, code: str) -> Coupon | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.coupon_pk(tenant_id, code), "sk": keys.COUPON_SK}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        item = dynamo.unmarshal(response["Item"])
        return Coupon(item["code"], item["member_id"], item["occasion"], item["valid_until"], item.get("used_at"))

    def redeem(self, tenant_id: str, code: str, *, order_id: str | None, actor: str) -> Coupon:
        """Mark the coupon used now, once. NotFound (404), Conflict with ``used_at`` (409), Gone (410)."""
        code = normalize(code)
        now = clock.isoformat(clock.now())
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=dynamo.marshal({"pk": keys.coupon_pk(tenant_id, code), "sk": keys.COUPON_SK}),
                UpdateExpression="SET used_at = :now, used_by = :actor, order_id = :order",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(used_at) AND valid_until >= :now",
                ExpressionAttributeValues=dynamo.values({":now": now, ":actor": actor, ":order": order_id or ""}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            found = self.get(tenant_id, code)
            if found is None:
                raise NotFound(f"No coupon {code!r}; check the code.", field="code") from None
            if found.used_at is not None:
                raise Conflict(
                    f"Coupon {code!r} was used already, at {found.used_at}.", code=code, used_at=found.used_at
                ) from None
            raise Gone(
                f"Coupon {code!r} expired at {found.valid_until}.", code=code, valid_until=found.valid_until
            ) from None
        item = dynamo.unmarshal(response["Attributes"])
        return Coupon(item["code"], item["member_id"], item["occasion"], item["valid_until"], item.get("used_at"))
