"""The nightly burn's reads and writes besides the ledger's own: the due index, markers, notices,
the checkpoint.

- Every open lot carries ``gsi1pk = BURN#<burn date>#<shard>`` and ``gsi1sk = <member pk>``
  (``UnitOfWork.change_lot``); a lot that is spent or burned is deleted, so it leaves the index.
- A member's ``IDX#BURN`` marker (same index keys) holds ``due``: under the inactivity policy the
  day every point burns (moved by each activity, in the activity's transaction), or the next night
  when a live hold kept points from burning.
- ``NOTICE#BURN#<burn date>#<days before>`` in the member's partition: one due notice (reminder)
  per member, burn date and offset, written once (``attribute_not_exists``) with the amount and
  the date; the messaging engine sends them (``status: due``).
- ``BURN``/``CHECKPOINT#<tenant>``: the last night the scheduler finished for the tenant.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from botocore.exceptions import ClientError

from loyalty.store import dynamo, keys
from loyalty.store.ledger import UnitOfWork
from loyalty.store.ledger_models import Account


def marker_item(account: Account, due: str, cut: date | None = None, held: int = 0) -> dict[str, Any]:
    """``cut``/``held``: the night a live hold kept ``held`` points from burning (the rest burns on
    ``due``, the next night); that night does nothing more for the member."""
    pk = keys.member_pk(account.tenant_id, account.member_id)
    return {
        "pk": pk,
        "sk": keys.BURN_MARKER_SK,
        **keys.burn_index(account.tenant_id, account.member_id, due),
        "due": due,
        "tenant_id": account.tenant_id,
        "member_id": account.member_id,
        "cut_night": cut.isoformat() if cut else None,
        "held_back": held or None,
    }


def put_marker(uow: UnitOfWork, account: Account, due: str, *, cut: date | None = None, held: int = 0) -> None:
    """Set the member's burn marker to ``due``. No condition of its own: the account's version, in
    the same transaction, guards it."""
    uow._put(marker_item(account, due, cut, held), condition=None)


def delete_marker(uow: UnitOfWork, account: Account) -> None:
    key = {"pk": keys.member_pk(account.tenant_id, account.member_id), "sk": keys.BURN_MARKER_SK}
    uow.items.append({"Delete": {"TableName": uow.table, "Key": dynamo.marshal(key)}})


class BurnStore(dynamo.Store):
    def due_members(self, tenant_id: str, day: str, shard: int) -> Iterator[str]:
        """The member id of every member of the tenant with a lot or a marker under ``day`` in one
        shard of gsi1, each once. Eventually consistent and keys only: the worker re-reads."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": dynamo.values({":pk": keys.burn_gsi1pk(tenant_id, day, shard)}),
            "ReturnConsumedCapacity": "TOTAL",
        }
        seen: set[str] = set()
        for page in self.pages("query", kwargs):
            self.consumed(page)
            for raw in page["Items"]:
                pk = raw["gsi1sk"]["S"]
                if pk not in seen:
                    seen.add(pk)
                    yield keys.parse_member_pk(pk)[1]

    def consumed(self, response: dict[str, Any]) -> None:
        """A hook for the benchmark: the read units of each index query."""

    def marker_item(self, tenant_id: str, member_id: str) -> dict[str, Any] | None:
        """The member's burn marker (consistent read), None without one."""
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.BURN_MARKER_SK}),
            ConsistentRead=True,
        )
        return dynamo.unmarshal(response["Item"]) if "Item" in response else None

    def checkpoints(self) -> dict[str, str]:
        """The last night (ISO date) the scheduler finished, per tenant: one Query for them all."""
        items = self.query_all(keys.BURN_CHECKPOINT_PK, keys.burn_checkpoint_sk(""), consistent=True)
        return {item["tenant_id"]: item["night"] for item in items}

    def checkpoint(self, tenant_id: str) -> str | None:
        """The last night the scheduler finished for the tenant, None before the first."""
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.BURN_CHECKPOINT_PK, "sk": keys.burn_checkpoint_sk(tenant_id)}),
            ConsistentRead=True,
        )
        return dynamo.unmarshal(response["Item"])["night"] if "Item" in response else None

    def set_checkpoint(self, tenant_id: str, night: str, finished_at: str) -> None:
        """Move the tenant's checkpoint forward to ``night`` (never back: a late rerun of an old
        night leaves it where it is)."""
        item = {
            "pk": keys.BURN_CHECKPOINT_PK,
            "sk": keys.burn_checkpoint_sk(tenant_id),
            "tenant_id": tenant_id,
            "night": night,
            "finished_at": finished_at,
        }
        try:
            self.client.put_item(
                TableName=self.table,
                Item=dynamo.marshal(item),
                ConditionExpression="attribute_not_exists(night) OR night < :n",
                ExpressionAttributeValues=dynamo.values({":n": night}),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def reindex(self, segment: int, total_segments: int, *, dry_run: bool = False) -> dict[str, int]:
        """The backfill of the due index for one segment of a parallel Scan: every lot and burn
        marker whose gsi1 keys are missing or not what ``keys.burn_index`` says now (written
        before the index existed, or before it held the tenant) gets them. A one-off upgrade
        (``python -m loyalty.admin backfill-burn-index``): rerunning it changes nothing more.
        Answers the counts: ``checked``, ``fixed`` (or to fix, on a dry run), ``gone`` (spent or
        burned between the read and the write)."""
        counts = {"checked": 0, "fixed": 0, "gone": 0}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Segment": segment,
            "TotalSegments": total_segments,
            "FilterExpression": "begins_with(sk, :lot) OR sk = :marker",
            "ExpressionAttributeValues": dynamo.values({":lot": "L#", ":marker": keys.BURN_MARKER_SK}),
            "ProjectionExpression": "pk, sk, #due, gsi1pk, gsi1sk",
            "ExpressionAttributeNames": {"#due": "due"},
        }
        for page in self.pages("scan", kwargs):
            for item in map(dynamo.unmarshal, page["Items"]):
                try:
                    tenant_id, member_id = keys.parse_member_pk(item["pk"])
                except ValueError:
                    continue  # not a member's item (no lot or marker lives elsewhere)
                day = item["due"] if item["sk"] == keys.BURN_MARKER_SK else item["sk"].removeprefix("L#")
                wanted = keys.burn_index(tenant_id, member_id, day)
                counts["checked"] += 1
                if all(item.get(name) == value for name, value in wanted.items()):
                    continue
                counts["fixed"] += 1
                if not dry_run and not self._set_index(item["pk"], item["sk"], wanted):
                    counts["fixed"] -= 1
                    counts["gone"] += 1
        return counts

    def _set_index(self, pk: str, sk: str, index: dict[str, str]) -> bool:
        """Set an existing item's gsi1 keys; False if the item is gone (never creates one)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.marshal({"pk": pk, "sk": sk}),
                UpdateExpression="SET gsi1pk = :pk, gsi1sk = :sk",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=dynamo.values({":pk": index["gsi1pk"], ":sk": index["gsi1sk"]}),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_notice(self, tenant_id: str, member_id: str, notice: dict[str, Any]) -> bool:
        """Record a due notice once; False if it was recorded already."""
        pk = keys.member_pk(tenant_id, member_id)
        return self.put_new({"pk": pk, "sk": keys.notice_sk(notice["burn_date"], notice["days_before"]), **notice})

    def notices(self, tenant_id: str, member_id: str) -> list[dict[str, Any]]:
        """The member's due notices about burns, oldest burn first."""
        return self.query_all(keys.member_pk(tenant_id, member_id), "NOTICE#BURN#", consistent=True)


# The offsets (days before a burn) any program of any tenant reminds at: the config table's
# ``BURN``/``REMINDER_DAYS`` item, a number set that each stored program version adds its
# ``reminder_days`` to (never removed: an offset no program uses any more costs 16 empty Queries a
# night). The scheduler reads it once a run.
REMINDER_DAYS_KEY = {"pk": keys.BURN_CHECKPOINT_PK, "sk": "REMINDER_DAYS"}


def reminder_days_update(table: str, days: tuple[int, ...]) -> dict[str, Any]:
    """The transaction item that adds ``days`` to the registry of reminder offsets."""
    return {
        "Update": {
            "TableName": table,
            "Key": dynamo.marshal(REMINDER_DAYS_KEY),
            "UpdateExpression": "ADD #d :d",
            "ExpressionAttributeNames": {"#d": "days"},
            "ExpressionAttributeValues": dynamo.values({":d": set(days)}),
        }
    }


def reminder_days(config_table: str, client: Any) -> set[int]:
    response = client.get_item(TableName=config_table, Key=dynamo.marshal(REMINDER_DAYS_KEY), ConsistentRead=True)
    return {int(d) for d in dynamo.unmarshal(response["Item"]).get("days", set())} if "Item" in response else set()
