"""Send records and suppressed addresses (the LedgerTable).

- ``SEND#<kind>#<reference>`` in the member's partition: one decision to send a message, written
  once (``attribute_not_exists``). Its ``status`` moves ``decided`` -> ``sending`` (a lease: the
  sender that holds it, until when) -> ``sent`` (with the provider's message id per recipient) or
  ``skipped`` (with the reason); a retryable failure or quiet hours put it back to ``decided``.
  Every move is conditional, so two senders on the same message never both send it.
- While ``decided``/``sending`` it is in gsi1 under ``SENDDUE#<shard>`` (``keys.send_due_gsi1sk``):
  the release job's way to find what is due.
- ``T#<tenant>#SUPPRESS`` / ``<channel>#<sha256 of the address>``: an address that bounced or
  complained; the sender never sends to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from loyalty.store import dynamo, keys

DECIDED, SENDING, SENT, SKIPPED = "decided", "sending", "sent", "skipped"
RECORD_DAYS = 400  # a record outlives the cap's window and a year of "was this sent?" questions


def plain(value: Any) -> Any:
    """DynamoDB numbers back to ints (points are ints), sets to sorted lists, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    return value


def due_index(tenant_id: str, member_id: str, sk: str, not_before: str) -> dict[str, str]:
    return {
        "gsi1pk": keys.send_due_gsi1pk(keys.due_shard(tenant_id, member_id, sk) % keys.SEND_DUE_SHARDS),
        "gsi1sk": keys.send_due_gsi1sk(not_before, tenant_id, member_id, sk),
    }


class SendStore(dynamo.Store):
    @staticmethod
    def key(tenant_id: str, member_id: str, sk: str) -> dict[str, Any]:
        return dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": sk})

    def put(self, record: dict[str, Any]) -> bool:
        """Write a new record once; False if that decision exists already."""
        return self.put_new(record)

    def get(self, tenant_id: str, member_id: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table, Key=self.key(tenant_id, member_id, sk), ConsistentRead=True
        )
        return plain(dynamo.unmarshal(response["Item"])) if "Item" in response else None

    def between(self, tenant_id: str, member_id: str, low: str, high: str) -> list[dict[str, Any]]:
        """The member's records with ``low <= sk <= high``, consistent, every page."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": dynamo.values(
                {":pk": keys.member_pk(tenant_id, member_id), ":low": low, ":high": high}
            ),
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        for page in self.pages("query", kwargs):
            items += [plain(dynamo.unmarshal(raw)) for raw in page["Items"]]
        return items

    def marketing_since(self, tenant_id: str, member_id: str, since: str) -> list[str]:
        """When the member's marketing messages since ``since`` went (or began to go)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "FilterExpression": "category = :m AND #s IN (:sent, :sending) AND claimed_at > :since",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": dynamo.values(
                {
                    ":pk": keys.member_pk(tenant_id, member_id),
                    ":p": keys.SEND_PREFIX,
                    ":m": "marketing",
                    ":sent": SENT,
                    ":sending": SENDING,
                    ":since": since,
                }
            ),
            "ConsistentRead": True,
        }
        found: list[str] = []
        for page in self.pages("query", kwargs):
            found += [dynamo.unmarshal(raw)["claimed_at"] for raw in page["Items"]]
        return found

    def _update(self, key: dict[str, Any], **request: Any) -> dict[str, Any] | None:
        """A conditional update; the new item, or None when the condition failed."""
        try:
            response = self.client.update_item(TableName=self.table, Key=key, ReturnValues="ALL_NEW", **request)
        except ClientError as error:
            if dynamo.failed_condition(error):
                return None
            raise
        return plain(dynamo.unmarshal(response["Attributes"]))

    def join(
        self, record: Mapping[str, Any], part: Mapping[str, Any], entry_id: str, now: str
    ) -> dict[str, Any] | None:
        """Add ``part`` (one more accrual, lot...) to a record nobody has begun to send yet and
        that is still due later than ``now``; None if it is too late (or the part is in already)."""
        return self._update(
            self.key(record["tenant_id"], record["member_id"], record["sk"]),
            UpdateExpression="SET parts = list_append(parts, :part) ADD entry_ids :e",
            ConditionExpression="#s = :decided AND not_before > :now AND NOT contains(entry_ids, :eid)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=dynamo.values(
                {":part": [dict(part)], ":e": {entry_id}, ":eid": entry_id, ":decided": DECIDED, ":now": now}
            ),
        )

    def claim(self, record: Mapping[str, Any], lease: str, now: str, lease_until: str) -> dict[str, Any] | None:
        """Take the record for sending: it must be due and nobody's (or its lease expired)."""
        return self._update(
            self.key(record["tenant_id"], record["member_id"], record["sk"]),
            UpdateExpression="SET #s = :sending, lease = :lease, lease_until = :until, claimed_at = :now "
            "ADD attempts :one",
            ConditionExpression="(#s = :decided AND not_before <= :now) OR (#s = :sending AND lease_until < :now)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=dynamo.values(
                {
                    ":sending": SENDING,
                    ":decided": DECIDED,
                    ":lease": lease,
                    ":until": lease_until,
                    ":now": now,
                    ":one": 1,
                }
            ),
        )

    def delivered(self, record: Mapping[str, Any], lease: str, role: str, message_id: str) -> dict[str, Any] | None:
        """Record that the message went to one recipient (``member``, ``copy``), under our lease."""
        return self._update(
            self.key(record["tenant_id"], record["member_id"], record["sk"]),
            UpdateExpression="SET delivered.#r = :id",
            ConditionExpression="#s = :sending AND lease = :lease",
            ExpressionAttributeNames={"#s": "status", "#r": role},
            ExpressionAttributeValues=dynamo.values({":sending": SENDING, ":lease": lease, ":id": message_id}),
        )

    def finish(
        self, record: Mapping[str, Any], lease: str, status: str, at: str, **fields: Any
    ) -> dict[str, Any] | None:
        """``sent`` or ``skipped`` (``reason``...), out of the due index, under our lease."""
        names = {"#s": "status"}
        values: dict[str, Any] = {":status": status, ":sending": SENDING, ":lease": lease, ":at": at}
        sets = ["#s = :status", "finished_at = :at"]
        for i, (name, value) in enumerate(sorted(fields.items())):
            names[f"#f{i}"] = name
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
        return self._update(
            self.key(record["tenant_id"], record["member_id"], record["sk"]),
            UpdateExpression=f"SET {', '.join(sets)} REMOVE gsi1pk, gsi1sk, lease, lease_until",
            ConditionExpression="#s = :sending AND lease = :lease",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=dynamo.values(values),
        )

    def put_back(self, record: Mapping[str, Any], lease: str, not_before: str) -> dict[str, Any] | None:
        """Back to ``decided``, due at ``not_before`` (quiet hours, a throttle), re-indexed."""
        index = due_index(record["tenant_id"], record["member_id"], record["sk"], not_before)
        return self._update(
            self.key(record["tenant_id"], record["member_id"], record["sk"]),
            UpdateExpression="SET #s = :decided, not_before = :nb, gsi1pk = :g1, gsi1sk = :g2 "
            "REMOVE lease, lease_until, enqueued_at",
            ConditionExpression="#s = :sending AND lease = :lease",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=dynamo.values(
                {
                    ":decided": DECIDED,
                    ":nb": not_before,
                    ":g1": index["gsi1pk"],
                    ":g2": index["gsi1sk"],
                    ":sending": SENDING,
                    ":lease": lease,
                }
            ),
        )

    def mark_enqueued(self, pk: str, sk: str, now: str, stale_before: str) -> dict[str, Any] | None:
        """The release job's claim on a due record before it enqueues it: still ``decided``, due,
        and not enqueued since ``stale_before`` (an enqueue lost, or never made)."""
        return self._update(
            dynamo.marshal({"pk": pk, "sk": sk}),
            UpdateExpression="SET enqueued_at = :now",
            ConditionExpression="#s = :decided AND not_before <= :now "
            "AND (attribute_not_exists(enqueued_at) OR enqueued_at < :stale)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=dynamo.values({":decided": DECIDED, ":now": now, ":stale": stale_before}),
        )

    def due(self, shard: int, through: str) -> Iterator[tuple[str, str]]:
        """``(pk, sk)`` of every record of one shard due at or before ``through`` (keys only,
        eventually consistent: the caller's conditional write re-checks)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk < :bound",
            # '$' sorts right after '#': every sort key that starts with an instant <= through.
            "ExpressionAttributeValues": dynamo.values({":pk": keys.send_due_gsi1pk(shard), ":bound": f"{through}$"}),
        }
        for page in self.pages("query", kwargs):
            for raw in page["Items"]:
                yield keys.parse_send_due_gsi1sk(raw["gsi1sk"]["S"])

    # ------------------------------------------------------------------ suppressed addresses
    def suppressed(self, tenant_id: str, channel: str, address: str) -> bool:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.suppression_pk(tenant_id), "sk": keys.suppression_sk(channel, address)}),
            ConsistentRead=True,
        )
        return "Item" in response

    def suppress(self, tenant_id: str, channel: str, address: str, *, reason: str, at: str, member_id: str) -> None:
        """Suppress the address (idempotent: the first reason and time stay)."""
        item = {
            "pk": keys.suppression_pk(tenant_id),
            "sk": keys.suppression_sk(channel, address),
            "tenant_id": tenant_id,
            "channel": channel,
            "reason": reason,
            "suppressed_at": at,
            "member_id": member_id,
        }
        try:
            self.client.put_item(
                TableName=self.table, Item=dynamo.marshal(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:
            if not dynamo.failed_condition(error):
                raise
