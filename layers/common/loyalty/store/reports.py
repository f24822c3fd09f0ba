"""Report counters and the reports consumer's member state (LedgerTable).

Counters live under the tenant, spread over ``REPORT_SHARDS`` partitions by member
(``T#<tenant>#RPT#<shard>``), so no single item takes every write of a busy day; a report sums the
shards when it reads. Sort keys:

* ``D#<YYYY-MM-DD>#<program>#<tier>`` and ``M#<YYYY-MM>#<program>#<tier>``: a day's and a month's
  points by entry type (``p_<type>``; ``x_<type>`` through a test card), orders and member counts;
* ``B#<burn date>#<program>``: the points of open lots that burn that day (``points``).

The consumer's state of a member is ``RPT#STATE`` in the member's own partition (the ledger's
queries read other prefixes only). The nightly reconciliation's results are ``RECON`` /
``RUN#<date>`` (ids only, no personal data).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from loyalty.report_rules import Change, MemberState
from loyalty.store import dynamo, keys

REPORT_SHARDS = 8
STATE_SK = "RPT#STATE"
RECON_PK = "RECON"


def shard_of(tenant_id: str, member_id: str) -> int:
    return int(hashlib.sha256(f"{tenant_id}\x1f{member_id}".encode()).hexdigest()[:8], 16) % REPORT_SHARDS


def counter_pk(tenant_id: str, shard: int) -> str:
    return f"{keys.tenant_pk(tenant_id)}#RPT#{shard:02d}"


def counter_sk(period: str, program_id: str, tier: str) -> str:
    return f"{period}#{program_id}#{tier}"


def lot_counter_sk(burn_date: str, program_id: str) -> str:
    return f"B#{burn_date}#{program_id}"


def recon_sk(day: str) -> str:
    return f"RUN#{day}"


class ReportStore(dynamo.Store):
    # ------------------------------------------------------------------- the consumer
    def state(self, tenant_id: str, member_id: str) -> MemberState | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": STATE_SK}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        item = dynamo.unmarshal(response["Item"])
        return MemberState.from_dict(json.loads(item["state"]), int(item["version"]))

    def member_facts(self, tenant_id: str, member_id: str) -> dict[str, Any] | None:
        """The member item's program, tier and enrolment instant (a new state starts from them)."""
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.MEMBER_SK}),
            ConsistentRead=True,
            ProjectionExpression="program_id, tier, enrolled_at",
        )
        return dynamo.unmarshal(response["Item"]) if "Item" in response else None

    def apply(self, tenant_id: str, member_id: str, change: Change, *, new: bool) -> None:
        """One transaction: the member's next state (if nobody moved it meanwhile: its version) and
        every counter's ADD. A failed condition raises ``dynamo.Retry``."""
        state = change.state
        pk = counter_pk(tenant_id, shard_of(tenant_id, member_id))
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": dynamo.marshal(
                        {
                            "pk": keys.member_pk(tenant_id, member_id),
                            "sk": STATE_SK,
                            "state": json.dumps(state.as_dict(), sort_keys=True, separators=(",", ":")),
                            "version": state.version + 1,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)" if new else "version = :v",
                    **({} if new else {"ExpressionAttributeValues": dynamo.values({":v": state.version})}),
                }
            }
        ]
        for (period, program_id, tier), attrs in sorted(change.counters.items()):
            if attrs:
                items.append(
                    _add(self.table, pk, counter_sk(period, program_id, tier), attrs, program_id=program_id, tier=tier)
                )
        for (burn_date, program_id), points in sorted(change.lots.items()):
            items.append(
                _add(self.table, pk, lot_counter_sk(burn_date, program_id), {"points": points}, program_id=program_id)
            )
        dynamo.retry_if_condition_failed(lambda: self.client.transact_write_items(TransactItems=items))

    # ------------------------------------------------------------------- reading
    def counters(self, tenant_id: str, low: str, high: str) -> Iterator[dict[str, Any]]:
        """Every counter item with ``low <= sk <= high``, every shard, every page."""
        for shard in range(REPORT_SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
                "ExpressionAttributeValues": dynamo.values(
                    {":pk": counter_pk(tenant_id, shard), ":lo": low, ":hi": high}
                ),
            }
            while True:
                page = self.client.query(**kwargs)
                for raw in page["Items"]:
                    yield dynamo.unmarshal(raw)
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def lot_counter(self, tenant_id: str, burn_date: str) -> int:
        """The points of open lots that burn on ``burn_date`` by the counters, every program and
        shard, read consistently (the reconciliation's second look)."""
        total = 0
        for shard in range(REPORT_SHARDS):
            total += sum(
                int(item.get("points", 0))
                for item in self.query_all(counter_pk(tenant_id, shard), lot_counter_sk(burn_date, ""), consistent=True)
            )
        return total

    # ------------------------------------------------------------------- reconciliation
    def put_run(self, day: str, result: dict[str, Any]) -> None:
        self.client.put_item(
            TableName=self.table,
            Item=dynamo.marshal({"pk": RECON_PK, "sk": recon_sk(day), "result": json.dumps(result, sort_keys=True)}),
        )

    def run(self, day: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table, Key=dynamo.marshal({"pk": RECON_PK, "sk": recon_sk(day)}), ConsistentRead=True
        )
        return json.loads(dynamo.unmarshal(response["Item"])["result"]) if "Item" in response else None


def _add(table: str, pk: str, sk: str, attrs: dict[str, int], **labels: str) -> dict[str, Any]:
    names = {f"#a{i}": name for i, name in enumerate(sorted(attrs))}
    vals: dict[str, Any] = {f":a{i}": attrs[name] for i, name in enumerate(sorted(attrs))}
    sets = []
    for name, value in labels.items():
        names[f"#{name}"] = name
        vals[f":{name}"] = value
        sets.append(f"#{name} = :{name}")
    adds = ", ".join(f"#a{i} :a{i}" for i in range(len(attrs)))
    return {
        "Update": {
            "TableName": table,
            "Key": dynamo.marshal({"pk": pk, "sk": sk}),
            "UpdateExpression": f"SET {', '.join(sets)} ADD {adds}",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": dynamo.values(vals),
        }
    }
