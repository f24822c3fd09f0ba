"""The nightly tier review (``functions/tiers``, daily at 00:15 UTC): lowers the tier of members of
``spend_window`` programs with ``tier_downgrade: window`` whose window no longer reaches it.

It never scans. Each such member above the first tier has a marker item (``IDX#TIER``) in its
partition, indexed in gsi1 under ``TIERREVIEW#<shard>`` with the review day first in the sort
key: the day the window's spend falls below the tier held, if nothing else is bought
(``rules.next_review``), written in the same transaction as the purchase, refund or review that
moves it. One Query per shard (``gsi1sk < tomorrow``) finds every review due up to today, those of
missed nights included; ``Ledger.review_tier`` makes them, in day order, and moves or deletes the
marker. The cost follows the reviews due, not the table.

A rerun changes nothing (a reviewed member's next review is after today); a member that a purchase
or refund changes meanwhile is serialized by the account's version. The index is eventually
consistent and only a hint: the account's ``tier_review`` decides.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loyalty import clock
from loyalty.errors import NotFound, Unavailable
from loyalty.ledger import Ledger
from loyalty.members import job_stores
from loyalty.store import dynamo, keys

MIN_SECONDS_LEFT = 20.0  # stop reviewing when less is left of the invocation (Lambda retries it)


class ReviewUnfinished(RuntimeError):
    """Raised when reviews were left: the asynchronous invocation fails, so Lambda retries it, and
    what is left is found again (what was done is not redone). After the retries, the event goes
    to the dead-letter queue, whose alarm says the job cannot keep up or keeps failing."""


@dataclass
class Summary:
    today: dt.date
    due: int = 0  # markers found due in gsi1
    reviewed: int = 0  # members whose reviews were made
    downgrades: int = 0  # tier_change entries written
    skipped: int = 0  # markers not due on the account (a rerun, an index not caught up yet)
    failed: list[str] = field(default_factory=list)  # members whose review failed after retries
    left: bool = False  # stopped for lack of time

    def as_dict(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "due": self.due,
            "reviewed": self.reviewed,
            "downgrades": self.downgrades,
            "skipped": self.skipped,
            "failed": len(self.failed),
            "left": self.left,
        }


def ledger_for_job(ledger_table: str, config_table: str, client: Any | None = None) -> Ledger:
    """The ledger as the job uses it: programs read once per run."""
    return Ledger(job_stores(ledger_table, config_table, client))


def review_due(ledger: Ledger, *, seconds_left: Callable[[], float] | None = None) -> Summary:
    """Make every tier review due up to today (UTC), shard by shard. Raises ``ReviewUnfinished``
    when time ran short or a member's review failed, after doing what it could."""
    today = clock.now().date()
    summary = Summary(today=today)
    for shard in range(keys.DUE_SHARDS):
        due = dynamo.with_retries(lambda shard=shard: list(ledger.store.due_tier_reviews(shard, today)))
        for _, tenant_id, member_id in due:
            if seconds_left is not None and seconds_left() < MIN_SECONDS_LEFT:
                summary.left = True
                break
            summary.due += 1
            try:
                result = ledger.review_tier(tenant_id, member_id)
            except NotFound:  # pragma: no cover - members are never deleted
                summary.skipped += 1
                continue
            except Unavailable:
                summary.failed.append(f"{tenant_id}/{member_id}")
                continue
            if result["reviewed"]:
                summary.reviewed += 1
                summary.downgrades += result["downgrades"]
            else:
                summary.skipped += 1
        if summary.left:
            break
    if summary.left or summary.failed:
        raise ReviewUnfinished(
            f"tier reviews left for a retry: {len(summary.failed)} failed"
            + (", and time ran short" if summary.left else "")
            + f" ({summary.as_dict()})"
        )
    return summary
