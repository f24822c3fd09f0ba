"""The birthday job's reads and its one write: markers in gsi1, members' profiles, the year done.

Every member with a birthday has a marker item ``IDX#BDAY`` in its partition (written at enrolment,
deleted at erasure: ``store.ledger``), indexed in the sparse, KEYS_ONLY gsi1 under
``BDAY#<MM-DD>#<shard>``. Its sort key ``gsi1sk`` says which birthday was dealt with last:

- ``<member pk>`` (as enrolment writes it): none yet;
- ``Y#<yyyy>#<member pk>``: the birthday of year ``yyyy`` (the member's local year) is done (paid,
  or nothing was due).

``T#`` sorts before ``Y#``, and ``Y#2026#`` before ``Y#2027#``, so one Query per shard,
``gsi1sk < "Y#<year>#"``, finds exactly the members of a month-day whose birthday of ``year`` is
not done yet: after a member's bonus is paid, the job's later runs that day never read it again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from botocore.exceptions import ClientError

from loyalty.store import dynamo, keys

DONE_PREFIX = "Y#"


def done_gsi1sk(year: int, tenant_id: str, member_id: str) -> str:
    """The marker's sort key once the birthday of ``year`` is done."""
    return f"{DONE_PREFIX}{year:04d}#{keys.member_pk(tenant_id, member_id)}"


def not_done_before(year: int) -> str:
    """The upper bound (exclusive) of the sort keys of markers whose birthday of ``year`` is not done."""
    return f"{DONE_PREFIX}{year:04d}#"


def member_of(gsi1sk: str) -> tuple[str, str]:
    """``(tenant_id, member_id)`` from a marker's sort key, in either form."""
    pk = gsi1sk
    if pk.startswith(DONE_PREFIX):
        pk = pk.split("#", 2)[2]
    head, _, member_id = pk.rpartition("#M#")
    if not head.startswith("T#") or not member_id:
        raise ValueError(f"not a birthday marker's sort key: {gsi1sk!r}")
    return head[2:], member_id


@dataclass(frozen=True)
class Celebrant:
    """What the job needs of a member: who, which program, the birthday and the time zone."""

    tenant_id: str
    member_id: str
    program_id: str
    birthday: date | None
    time_zone: str
    erased: bool


def _celebrant(item: dict[str, Any]) -> Celebrant:
    profile = json.loads(item.get("profile") or "{}")
    return Celebrant(
        tenant_id=item["tenant_id"],
        member_id=item["member_id"],
        program_id=item.get("program_id") or "",
        birthday=date.fromisoformat(profile["birthday"]) if profile.get("birthday") else None,
        time_zone=profile.get("time_zone") or "UTC",
        erased=bool(item.get("erased_at")),
    )


class BirthdayStore(dynamo.Store):
    def not_done(self, month_day: str, shard: int, year: int) -> Iterator[tuple[str, str]]:
        """``(tenant_id, member_id)`` of the markers under ``month_day`` in one shard whose birthday
        of ``year`` is not done, page by page. The index is eventually consistent and a hint only:
        the member item and the ledger's guard decide."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk < :until",
            "ExpressionAttributeValues": dynamo.values(
                {":pk": keys.birthday_gsi1pk(month_day, shard), ":until": not_done_before(year)}
            ),
        }
        for page in self.pages("query", kwargs):
            for raw in page["Items"]:
                yield member_of(dynamo.unmarshal(raw)["gsi1sk"])

    def celebrants(self, members: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Celebrant]:
        """The member items of ``members`` (BatchGetItem, 100 at a time, eventually consistent: a
        profile read a moment late is good enough), by ``(tenant_id, member_id)``; members not
        found are left out."""
        keys_ = [{"pk": keys.member_pk(t, m), "sk": keys.MEMBER_SK} for t, m in dict.fromkeys(members)]
        projection = {
            "#t": "tenant_id",
            "#m": "member_id",
            "#p": "program_id",
            "#profile": "profile",
            "#erased": "erased_at",
        }
        celebrants = (_celebrant(item) for item in self.batch_get(keys_, projection=projection))
        return {(c.tenant_id, c.member_id): c for c in celebrants}

    def mark_done(self, tenant_id: str, member_id: str, month_day: str, year: int) -> bool:
        """Move the member's marker to "birthday of ``year`` done". Only forward, and only while the
        marker is still under ``month_day``: never re-creates an erased member's marker (erasure
        deletes it), never undoes a later year. False if the marker did not qualify."""
        pk = keys.member_pk(tenant_id, member_id)
        shard = keys.due_shard(tenant_id, member_id)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.marshal({"pk": pk, "sk": keys.BIRTHDAY_SK}),
                UpdateExpression="SET gsi1sk = :done",
                ConditionExpression="gsi1pk = :pk AND gsi1sk < :done",
                ExpressionAttributeValues=dynamo.values(
                    {":done": done_gsi1sk(year, tenant_id, member_id), ":pk": keys.birthday_gsi1pk(month_day, shard)}
                ),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
