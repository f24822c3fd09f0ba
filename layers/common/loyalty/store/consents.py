"""A member's consents and their history, in the member's partition of the LedgerTable.

The current consents live in the member's profile (``MEMBER``), where enrolment put them and every
reader of a member finds them. A change rewrites the profile conditionally (on the profile read,
so a concurrent change makes it read again, never lose one) and, in the same transaction, writes
one history item ``CONSENT#<seq>`` (``seq`` counted on the member as ``consent_seq``): who, when,
how, what changed. History items are never changed or deleted.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from pydantic import Field

from loyalty.errors import InvalidRequest
from loyalty.models import Frozen
from loyalty.store import dynamo, keys

CONSENT_PREFIX = "CONSENT#"


def consent_sk(seq: int) -> str:
    return f"{CONSENT_PREFIX}{seq:08d}"


class ConsentChange(Frozen):
    """One recorded change: the flags it set, the whole state after it, when, how and by whom."""

    seq: int
    at: str
    via: str = Field(description="api, enrolment, link, bounce, complaint or stop_reply.")
    actor: str = Field(description="Who: an API key (key:<id>), the member (member) or a system (system:ses).")
    reason: str | None = None
    changes: dict[str, bool]
    consents: dict[str, bool]


class MemberConsents(Frozen):
    """What a change needs from the member item: the stored profile (as written) and the counter."""

    profile_json: str
    consent_seq: int
    erased: bool
    enrolled_at: str
    enrolled_by: dict[str, str] | None = None


class ConsentStore(dynamo.Store):
    def read(self, tenant_id: str, member_id: str) -> MemberConsents | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.MEMBER_SK}),
            ProjectionExpression="profile, consent_seq, erased_at, enrolled_at, enrolled_by",
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        item = dynamo.unmarshal(response["Item"])
        return MemberConsents(
            profile_json=item["profile"],
            consent_seq=int(item.get("consent_seq", 0)),
            erased=bool(item.get("erased_at")),
            enrolled_at=item["enrolled_at"],
            enrolled_by=item.get("enrolled_by"),
        )

    def write(
        self, tenant_id: str, member_id: str, before: MemberConsents, profile_json: str, change: ConsentChange
    ) -> None:
        """The new profile and the history item, in one transaction; the profile's condition fails
        (ConditionalCheckFailed) if it moved since ``before`` was read."""
        pk = keys.member_pk(tenant_id, member_id)
        update = {
            "TableName": self.table,
            "Key": dynamo.marshal({"pk": pk, "sk": keys.MEMBER_SK}),
            "UpdateExpression": "SET profile = :new, consent_seq = :seq",
            "ConditionExpression": "profile = :old AND attribute_not_exists(erased_at)",
            "ExpressionAttributeValues": dynamo.values(
                {":new": profile_json, ":old": before.profile_json, ":seq": change.seq}
            ),
        }
        history = {
            "pk": pk,
            "sk": consent_sk(change.seq),
            "doc": change.model_dump_json(),
        }
        put = {
            "TableName": self.table,
            "Item": dynamo.marshal(history),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        self.client.transact_write_items(TransactItems=[{"Update": update}, {"Put": put}])

    def history(
        self, tenant_id: str, member_id: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[ConsentChange], str | None]:
        """Newest first; a page of ``limit`` and the cursor of the next one (None at the end)."""
        pk = keys.member_pk(tenant_id, member_id)
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": dynamo.values({":pk": pk, ":prefix": CONSENT_PREFIX}),
            "ScanIndexForward": False,
            "ConsistentRead": True,
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = dynamo.marshal({"pk": pk, "sk": consent_sk(_decode(cursor))})
        page = self.client.query(**kwargs)
        changes = [ConsentChange.model_validate_json(dynamo.unmarshal(raw)["doc"]) for raw in page["Items"]]
        full = len(changes) == limit  # a full page: the next one may hold only the enrolment
        return changes, (_encode(changes[-1].seq) if full else None)

    def first_change(self, tenant_id: str, member_id: str) -> ConsentChange | None:
        """The first change ever recorded (it tells the consents given at enrolment), or None."""
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": consent_sk(1)}),
            ConsistentRead=True,
        )
        return (
            ConsentChange.model_validate_json(dynamo.unmarshal(response["Item"])["doc"]) if "Item" in response else None
        )


def _encode(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"seq": seq}).encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        seq = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 10**8:
            raise TypeError
        return seq
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidRequest("cursor is not one this endpoint returned; start without it.", field="cursor") from error
