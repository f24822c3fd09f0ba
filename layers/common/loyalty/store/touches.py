"""The touches job's reads and writes: the members' ``IDX#TOUCH`` markers in gsi1, the members.

Every member has a marker item ``IDX#TOUCH`` in its partition (written at enrolment in the same
transaction as the member, deleted at erasure: ``store.ledger``), indexed in the sparse, KEYS_ONLY
gsi1 under ``TOUCH#<shard>`` with ``<due instant>#<member pk>`` as sort key
(``keys.touch_index``). The instant is RFC 3339 UTC with a ``Z``, so the sort keys are in time
order within a shard, and one Query per shard (``gsi1sk`` below ``<now>$``) finds every member
with a message due up to now, the missed hours included. The job moves the marker forward
(conditionally on the sort key it read), so later runs never read that member again until its
next step: the cost follows the members due, not the table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from loyalty.store import dynamo, keys


def due_until(now: str) -> str:
    """The upper bound (exclusive) of the sort keys due at or before the instant ``now``: ``$``
    sorts right after ``#``, the separator after the instant."""
    return f"{now}$"


def parse_gsi1sk(gsi1sk: str) -> tuple[str, str, str]:
    """``(due, tenant_id, member_id)`` of a marker's sort key."""
    due, _, pk = gsi1sk.partition("#")
    tenant_id, member_id = keys.parse_member_pk(pk)
    return due, tenant_id, member_id


@dataclass(frozen=True)
class Touchee:
    """What the job needs of a member: who, which program, since when, and whether erased."""

    tenant_id: str
    member_id: str
    program_id: str
    enrolled_at: datetime
    erased: bool


def _touchee(item: dict[str, Any]) -> Touchee:
    return Touchee(
        tenant_id=item["tenant_id"],
        member_id=item["member_id"],
        program_id=item.get("program_id") or "",
        enrolled_at=datetime.fromisoformat(str(item["enrolled_at"]).replace("Z", "+00:00")),
        erased=bool(item.get("erased_at")),
    )


class TouchStore(dynamo.Store):
    def due(self, shard: int, now: str) -> Iterator[str]:
        """The sort keys of the markers of one shard due at or before ``now``, oldest first, page
        by page. The index is eventually consistent and a hint only: the move is conditional."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk < :until",
            "ExpressionAttributeValues": dynamo.values({":pk": keys.touch_gsi1pk(shard), ":until": due_until(now)}),
        }
        for page in self.pages("query", kwargs):
            for raw in page["Items"]:
                yield str(dynamo.unmarshal(raw)["gsi1sk"])

    def members(self, members: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Touchee]:
        """The member items of ``members`` (BatchGetItem, 100 at a time, only the attributes the job
        needs), by ``(tenant_id, member_id)``; members not found are left out."""
        keys_ = [{"pk": keys.member_pk(t, m), "sk": keys.MEMBER_SK} for t, m in dict.fromkeys(members)]
        projection = {"#t": "tenant_id", "#m": "member_id", "#p": "program_id", "#e": "enrolled_at", "#x": "erased_at"}
        touchees = (_touchee(item) for item in self.batch_get(keys_, projection=projection))
        return {(t.tenant_id, t.member_id): t for t in touchees}

    def move(self, tenant_id: str, member_id: str, read: str, due: str) -> bool:
        """Move the member's marker from the sort key ``read`` to the instant ``due``. Only from
        what was read: a concurrent run moved it already, or erasure deleted it, and this changes
        nothing (False)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.TOUCH_SK}),
                UpdateExpression="SET gsi1sk = :next",
                ConditionExpression="gsi1sk = :read",
                ExpressionAttributeValues=dynamo.values(
                    {":next": keys.touch_index(tenant_id, member_id, due)["gsi1sk"], ":read": read}
                ),
            )
        except ClientError as error:
            if dynamo.failed_condition(error):
                return False
            raise
        return True

    def drop(self, tenant_id: str, member_id: str, read: str) -> bool:
        """Delete the marker of a member that gets no more touches (erased, or no member item)."""
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.TOUCH_SK}),
                ConditionExpression="gsi1sk = :read",
                ExpressionAttributeValues=dynamo.values({":read": read}),
            )
        except ClientError as error:
            if dynamo.failed_condition(error):
                return False
            raise
        return True

    def add(self, tenant_id: str, member_id: str, due: str) -> bool:
        """Write a marker for a member that has none (the backfill); False if it has one."""
        from loyalty.store.ledger import touch_marker

        return self.put_new(touch_marker(tenant_id, member_id, due))

    def scan_members(self, segment: int, segments: int) -> Iterator[Touchee]:
        """Every member item of one parallel Scan segment (the backfill only: a one-off command)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Segment": segment,
            "TotalSegments": segments,
            "FilterExpression": "sk = :member",
            "ProjectionExpression": "tenant_id, member_id, program_id, enrolled_at, erased_at",
            "ExpressionAttributeValues": dynamo.values({":member": keys.MEMBER_SK}),
        }
        for page in self.pages("scan", kwargs):
            for raw in page["Items"]:
                yield _touchee(dynamo.unmarshal(raw))
