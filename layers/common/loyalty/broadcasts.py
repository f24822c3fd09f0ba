"""Broadcasts: one message (kind ``broadcast``, marketing) to every member of a segment (all, a
program, a tier of a program), resumable and with progress.

- Started once per ``broadcast_id``: ``POST /v1/broadcasts`` writes the broadcast item
  ``T#<tenant>#BCAST#<id>`` / ``BROADCAST`` conditionally, with a fingerprint of the body; the same
  body again answers the same broadcast, another body is a 409. Then one message per Scan segment
  (``SEGMENTS``) goes on BroadcastQueue.
- One Scan page per message: the worker reads the broadcast (consistently), scans one page of its
  segment from the cursor kept in the item (``cursors[<segment>]``, the page's LastEvaluatedKey),
  decides ``broadcast#<id>`` for each member of the segment on that page (``sending.decide``: a
  member decided once, whatever the retries), then moves the cursor conditionally on the page
  number the message carries, and sends itself the message for the next page.
- Resumable: a crash before the move redelivers the message, which scans the same page again
  (the decisions exist: nothing twice); a crash after the move but before the next message is
  sent redelivers a message one page behind, which sends the next one again (only on a
  redelivery, so a mere duplicate does not fork the chain). After 5 receives a message goes to the
  dead-letter queue (alarm); redriving it resumes from the cursor kept.
- Erased members are skipped (filtered in the Scan); consent, the marketing cap, suppression and
  quiet hours are applied by the sender when each message goes, at the SES rate (the sender
  throttles), so a broadcast to 100 000 members is decided in minutes and sent over hours.
- Progress: ``scanned`` (member items of the tenant read), ``decided`` (members of the segment a
  message was decided for), ``status`` (``running``, ``done``), ``started_at``, ``finished_at``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from loyalty import clock
from loyalty.errors import Conflict
from loyalty.store import dynamo, keys

SEGMENTS = 4  # parallel Scan segments, each its own chain of messages
PAGE_ITEMS = 500  # items a Scan page evaluates (DynamoDB's Limit, before the filter)
BROADCAST_SK = "BROADCAST"
END = "END"  # a segment's cursor once its last page is done
KIND = "broadcast"


def broadcast_pk(tenant_id: str, broadcast_id: str) -> str:
    return f"T#{tenant_id}#BCAST#{broadcast_id}"


def reference(broadcast_id: str) -> str:
    return f"broadcast#{broadcast_id}"


def fingerprint(title: str, message: str, segment: Mapping[str, Any]) -> str:
    text = json.dumps({"title": title, "message": message, "segment": dict(segment)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Progress:
    broadcast_id: str
    status: str
    scanned: int
    decided: int
    started_at: str
    finished_at: str | None
    segment: dict[str, Any]
    title: str

    @classmethod
    def of(cls, item: Mapping[str, Any]) -> Progress:
        return cls(
            broadcast_id=item["broadcast_id"],
            status=item["status"],
            scanned=int(item["scanned"]),
            decided=int(item["decided"]),
            started_at=item["started_at"],
            finished_at=item.get("finished_at"),
            segment=dict(item["segment"]),
            title=item["title"],
        )


class BroadcastQueue:
    """BroadcastQueue: one message per Scan page still to do."""

    def __init__(self, url: str, client: Any | None = None) -> None:
        self.url = url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs")
        return self._client

    def send(self, tenant_id: str, broadcast_id: str, segment: int, page: int) -> None:
        body = {"tenant_id": tenant_id, "broadcast_id": broadcast_id, "segment": segment, "page": page}
        self.client.send_message(QueueUrl=self.url, MessageBody=json.dumps(body))


class BroadcastStore(dynamo.Store):
    def get(self, tenant_id: str, broadcast_id: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": broadcast_pk(tenant_id, broadcast_id), "sk": BROADCAST_SK}),
            ConsistentRead=True,
        )
        return dynamo.unmarshal(response["Item"]) if "Item" in response else None

    def create(self, item: Mapping[str, Any]) -> bool:
        """False if a broadcast with this id exists already."""
        return self.put_new(item)

    def advance(
        self, tenant_id: str, broadcast_id: str, segment: int, page: int, cursor: str, scanned: int, decided: int
    ) -> dict[str, Any] | None:
        """Move the segment's cursor past page ``page`` (if it is still there) and add the page's
        counts; the updated item, or None if another delivery moved it first."""
        ended = cursor == END
        expression = "SET cursors.#s = :cursor, pages.#s = :next ADD scanned :scanned, decided :decided"
        if ended:
            expression += ", segments_left :minus"
        values: dict[str, Any] = {
            ":cursor": cursor,
            ":next": page + 1,
            ":page": page,
            ":scanned": scanned,
            ":decided": decided,
        }
        if ended:
            values[":minus"] = -1
        try:
            response = self.client.update_item(
                TableName=self.table,
                Key=dynamo.marshal({"pk": broadcast_pk(tenant_id, broadcast_id), "sk": BROADCAST_SK}),
                UpdateExpression=expression,
                ConditionExpression="pages.#s = :page",
                ExpressionAttributeNames={"#s": str(segment)},
                ExpressionAttributeValues=dynamo.values(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return dynamo.unmarshal(response["Attributes"])

    def finish(self, tenant_id: str, broadcast_id: str, at: str) -> None:
        """Mark it done once every segment has ended (once: a second call changes nothing)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=dynamo.marshal({"pk": broadcast_pk(tenant_id, broadcast_id), "sk": BROADCAST_SK}),
                UpdateExpression="SET #st = :done, finished_at = :at",
                ConditionExpression="segments_left = :zero AND #st = :running",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues=dynamo.values(
                    {":done": "done", ":at": at, ":zero": 0, ":running": "running"}
                ),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def page(
        self, tenant_id: str, segment_spec: Mapping[str, Any], segment: int, cursor: str, limit: int
    ) -> tuple[list[dict[str, Any]], int, str]:
        """One Scan page of ``segment`` from ``cursor``: the segment's members on it, the tenant's
        member items read, and the next cursor (``END`` after the last page)."""
        # The tenant's member items (counted as scanned); the segment is picked from them below.
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Segment": segment,
            "TotalSegments": SEGMENTS,
            "Limit": limit,
            "FilterExpression": "#sk = :member AND #t = :tenant",
            "ProjectionExpression": "member_id, program_id, tier, erased_at",
            "ExpressionAttributeNames": {"#sk": "sk", "#t": "tenant_id"},
            "ExpressionAttributeValues": dynamo.values({":member": keys.MEMBER_SK, ":tenant": tenant_id}),
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = json.loads(cursor)
        response = self.client.scan(**kwargs)
        tenants = [dynamo.unmarshal(raw) for raw in response["Items"]]
        members = [item for item in tenants if in_segment(item, segment_spec)]
        last = response.get("LastEvaluatedKey")
        return members, len(tenants), json.dumps(last, sort_keys=True) if last else END


def in_segment(member: Mapping[str, Any], segment: Mapping[str, Any]) -> bool:
    if member.get("erased_at"):
        return False
    if segment.get("program_id") and member.get("program_id") != segment["program_id"]:
        return False
    return not (segment.get("tier") and member.get("tier") != segment["tier"])


def start(
    store: BroadcastStore,
    queue: BroadcastQueue,
    tenant_id: str,
    broadcast_id: str,
    title: str,
    message: str,
    segment: Mapping[str, Any],
    actor: str,
) -> tuple[Progress, bool]:
    """Start the broadcast (or answer the one started with the same body: then its segments not
    begun yet are sent again, harmless); Conflict if this id was started with another body.
    Answers the progress and whether it was started now."""
    print_ = fingerprint(title, message, segment)
    now = clock.isoformat(clock.now())
    item = {
        "pk": broadcast_pk(tenant_id, broadcast_id),
        "sk": BROADCAST_SK,
        "tenant_id": tenant_id,
        "broadcast_id": broadcast_id,
        "fingerprint": print_,
        "title": title,
        "message": message,
        "segment": dict(segment),
        "status": "running",
        "scanned": 0,
        "decided": 0,
        "segments_left": SEGMENTS,
        "cursors": {str(s): "" for s in range(SEGMENTS)},
        "pages": {str(s): 0 for s in range(SEGMENTS)},
        "started_at": now,
        "started_by": actor,
    }
    created = dynamo.with_retries(lambda: store.create(item))
    if not created:
        found = dynamo.with_retries(lambda: store.get(tenant_id, broadcast_id))
        assert found is not None
        if found["fingerprint"] != print_:
            raise Conflict(
                f"Broadcast {broadcast_id!r} was started with another title, message or segment; "
                "use a new broadcast_id.",
                broadcast_id=broadcast_id,
            )
        item = found
    for segment_no in range(SEGMENTS):
        if int(item["pages"][str(segment_no)]) == 0:  # not begun (a retry after a lost send)
            queue.send(tenant_id, broadcast_id, segment_no, 0)
    return Progress.of(item), created


@dataclass
class Worker:
    store: BroadcastStore
    queue: BroadcastQueue
    decide: Callable[..., bool]
    page_items: int = PAGE_ITEMS

    def handle(self, body: Mapping[str, Any], receive_count: int = 1) -> dict[str, Any]:
        """Process one message: one Scan page of one segment. Answers what it did."""
        tenant_id, broadcast_id = body["tenant_id"], body["broadcast_id"]
        segment, page = int(body["segment"]), int(body["page"])
        item = dynamo.with_retries(lambda: self.store.get(tenant_id, broadcast_id))
        if item is None:
            return {"outcome": "unknown"}
        stored_page = int(item["pages"][str(segment)])
        cursor = item["cursors"][str(segment)]
        if stored_page != page:
            # A message behind the cursor. Redelivered (its run died after the move, perhaps
            # before the next message was sent): send the next one again. A mere duplicate: drop.
            if stored_page == page + 1 and receive_count > 1:
                if cursor != END:
                    self.queue.send(tenant_id, broadcast_id, segment, stored_page)
                    return {"outcome": "resent"}
                if int(item["segments_left"]) <= 0 and item["status"] == "running":
                    self._finish(tenant_id, broadcast_id)  # the last page's run died before this
            return {"outcome": "stale"}
        if cursor == END:
            return {"outcome": "ended"}
        members, scanned, next_cursor = dynamo.with_retries(
            lambda: self.store.page(tenant_id, item["segment"], segment, cursor, self.page_items)
        )
        data = {"title": item["title"], "message": item["message"]}
        for member in members:
            # True: decided now; False: decided by an earlier delivery of this page. Both count.
            self.decide(tenant_id, member["member_id"], KIND, reference(broadcast_id), data)
        moved = dynamo.with_retries(
            lambda: self.store.advance(tenant_id, broadcast_id, segment, page, next_cursor, scanned, len(members))
        )
        if moved is None:
            return {"outcome": "stale"}
        if next_cursor != END:
            self.queue.send(tenant_id, broadcast_id, segment, page + 1)
        elif int(moved["segments_left"]) <= 0:
            self._finish(tenant_id, broadcast_id)
        return {"outcome": "page", "scanned": scanned, "decided": len(members), "segment": segment, "page": page}

    def _finish(self, tenant_id: str, broadcast_id: str) -> None:
        at = clock.isoformat(clock.now())
        dynamo.with_retries(lambda: self.store.finish(tenant_id, broadcast_id, at))
