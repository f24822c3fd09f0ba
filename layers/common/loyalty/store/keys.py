"""Item keys. Every key starts with the tenant, so no query can cross tenants."""

from __future__ import annotations

import hashlib


def tenant_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}"


def member_pk(tenant_id: str, member_id: str) -> str:
    return f"T#{tenant_id}#M#{member_id}"


def hold_pk(tenant_id: str, hold_id: str) -> str:
    return f"T#{tenant_id}#H#{hold_id}"


def audit_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}#AUDIT"


def api_key_pk(key_hash: str) -> str:
    return f"KEY#{key_hash}"


MEMBER_SK = "MEMBER"
HOLD_SK = "HOLD"
TENANT_SK = "TENANT"
ACCESS_SK = "ACCESS"
TENANTS_PK = "TENANTS"  # the config table's registry of tenants and their settings: sk = tenant id


def program_sk(program_id: str) -> str:
    return f"P#{program_id}"


def program_version_sk(program_id: str, version: int | None = None) -> str:
    """A stored version of a program (its history); without ``version``, the prefix of them all.
    ``PV#``, not ``P#...``, so that a Query of ``P#`` finds the programs' heads only."""
    prefix = f"PV#{program_id}#"
    return prefix if version is None else f"{prefix}{version:06d}"


def key_sk(key_id: str) -> str:
    return f"K#{key_id}"


def entry_sk(seq: int) -> str:
    return f"E#{seq:012d}"


def lot_sk(burn_date: str) -> str:
    return f"L#{burn_date}"


def guard_sk(kind: str, business_key: str) -> str:
    return f"G#{kind}#{business_key}"


def order_sk(order_id: str) -> str:
    return f"O#{order_id}"


def idempotency_key_sk(key: str) -> str:
    return f"IK#{key}"


def stable_id(prefix: str, *parts: str, length: int = 20) -> str:
    """A deterministic id from business keys: the same request always names the same thing."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]
    return f"{prefix}_{digest}"


# ------------------------------------------------------------------ the sparse index gsi1
# gsi1 (KEYS_ONLY) indexes only items that carry gsi1pk: small marker items in a member's partition
# (``IDX#...``) and, later, lots by burn date. A job finds what is due on a day by querying
# ``<KIND>#<day>#<shard>`` for each shard: its cost follows what is due, never the table's size.
DUE_SHARDS = 16
BIRTHDAY_SK = "IDX#BDAY"


def due_shard(*parts: str) -> int:
    """Which of the DUE_SHARDS partitions of gsi1 an item goes to (stable, evenly spread)."""
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:8], 16) % DUE_SHARDS


def birthday_gsi1pk(month_day: str, shard: int) -> str:
    """Members whose birthday is ``month_day`` (``MM-DD``), one shard of them."""
    return f"BDAY#{month_day}#{shard:02d}"


# Burning (loyalty.burning): every open lot is indexed under ``BURN#<tenant>#<burn date>#<shard>``
# with the member's pk as gsi1sk, and so is the member's ``IDX#BURN`` marker (the inactivity
# policy's due date, or the next night for points a hold kept from burning). The tenant is in the
# index key because each tenant's night begins at its own time (its settings): the scheduler reads
# a tenant's night once it has begun there. Due notices (reminders) live in the member's partition;
# each tenant's checkpoint (the last night finished) in the ``BURN`` partition.
BURN_PREFIX = "BURN#"
BURN_MARKER_SK = "IDX#BURN"
BURN_CHECKPOINT_PK = "BURN"
BURN_CHECKPOINT_SK = "CHECKPOINT"  # the prefix of the tenants' checkpoints


def burn_gsi1pk(tenant_id: str, day: str, shard: int) -> str:
    """Lots (and markers) of one tenant's members of one shard that burn on ``day`` (ISO date)."""
    return f"{BURN_PREFIX}{tenant_id}#{day}#{shard:02d}"


def burn_index(tenant_id: str, member_id: str, day: str) -> dict[str, str]:
    """The gsi1 keys of a member's lot or burn marker due on ``day``."""
    return {
        "gsi1pk": burn_gsi1pk(tenant_id, day, due_shard(tenant_id, member_id)),
        "gsi1sk": member_pk(tenant_id, member_id),
    }


def burn_checkpoint_sk(tenant_id: str) -> str:
    return f"{BURN_CHECKPOINT_SK}#{tenant_id}"


def notice_sk(burn_date: str, days_before: int) -> str:
    """A member's due notice: its points burning on ``burn_date``, recorded ``days_before`` ahead."""
    return f"NOTICE#BURN#{burn_date}#{days_before:03d}"


# A windowed member's next tier review: the marker ``IDX#TIER`` in the member's partition, indexed
# under ``TIERREVIEW#<shard>`` with the day first in the sort key, so that one Query per shard
# (``gsi1sk < <tomorrow>``) finds every review due up to today, missed nights included.
TIER_REVIEW_SK = "IDX#TIER"
TIER_REVIEW_PREFIX = "TIERREVIEW#"


def tier_review_gsi1pk(shard: int) -> str:
    return f"{TIER_REVIEW_PREFIX}{shard:02d}"


def tier_review_gsi1sk(day: str, tenant_id: str, member_id: str) -> str:
    """``<YYYY-MM-DD>#<member pk>``: in day order within a shard."""
    return f"{day}#{member_pk(tenant_id, member_id)}"


# Touches (loyalty.touches): every member has a marker ``IDX#TOUCH`` (written at enrolment, deleted
# at erasure) indexed under ``TOUCH#<shard>`` with ``<due instant>#<member pk>`` as sort key: the
# next step of the welcome chain or the next digest. One Query per shard (``gsi1sk`` up to now)
# finds every member with a message due; the job moves the marker to the next step.
TOUCH_SK = "IDX#TOUCH"
TOUCH_PREFIX = "TOUCH#"


def touch_gsi1pk(shard: int) -> str:
    return f"{TOUCH_PREFIX}{shard:02d}"


def touch_index(tenant_id: str, member_id: str, due: str) -> dict[str, str]:
    """The gsi1 keys of a member's touch marker due at the instant ``due`` (RFC 3339, UTC)."""
    return {
        "gsi1pk": touch_gsi1pk(due_shard(tenant_id, member_id)),
        "gsi1sk": f"{due}#{member_pk(tenant_id, member_id)}",
    }


# Coupons (a birthday greeting's): ``T#<tenant>#COUPON#<code>`` / ``COUPON``; the tenant is in the
# key, so another tenant's code is simply not found.
COUPON_SK = "COUPON"


def coupon_pk(tenant_id: str, code: str) -> str:
    return f"T#{tenant_id}#COUPON#{code}"


# Broadcasts (loyalty.broadcasts): ``T#<tenant>#BROADCAST`` / ``<broadcast id>``, with its progress.
BROADCAST_SK_PREFIX = "B#"


def broadcast_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}#BROADCAST"


def parse_member_pk(pk: str) -> tuple[str, str]:
    """``(tenant_id, member_id)`` of a member's partition key (member ids never hold ``#``)."""
    head, _, member_id = pk.rpartition("#M#")
    if not head.startswith("T#") or not member_id:
        raise ValueError(f"not a member's partition key: {pk!r}")
    return head[2:], member_id


def referral_pk(tenant_id: str, code: str) -> str:
    """The lookup item of a referral code (its member id)."""
    return f"T#{tenant_id}#REF#{code}"


REFERRAL_SK = "REF"


# Messages (loyalty.messaging.sending): a send record per decision in the member's partition,
# ``SEND#<kind>#<reference>`` (the deterministic key: member, kind, reference), written once. Until
# it is sent (or skipped) it is also in gsi1 under ``SENDDUE#<shard>`` with ``<not_before>#<pk>#<sk>``
# as sort key, so the hourly release job finds what is due (a morning after quiet hours, a later
# day) with one Query per shard, and a decision whose enqueue was lost is enqueued again.
# Suppressed addresses (hard bounces, complaints) are kept per tenant under a hash, never in clear.
SEND_PREFIX = "SEND#"
SEND_DUE_PREFIX = "SENDDUE#"
# 4 index partitions, not DUE_SHARDS: the release job queries every shard every hour, and 4 x
# 1,000 index writes a second is far above any SES send rate the records are sent at.
SEND_DUE_SHARDS = 4


def send_sk(kind: str, reference: str) -> str:
    return f"{SEND_PREFIX}{kind}#{reference}"


def send_due_gsi1pk(shard: int) -> str:
    return f"{SEND_DUE_PREFIX}{shard:02d}"


def send_due_gsi1sk(not_before: str, tenant_id: str, member_id: str, sk: str) -> str:
    """``<not_before>#<member pk>#<send sk>``: in time order within a shard."""
    return f"{not_before}#{member_pk(tenant_id, member_id)}#{sk}"


def parse_send_due_gsi1sk(gsi1sk: str) -> tuple[str, str]:
    """``(pk, sk)`` of the send record a ``SENDDUE`` index entry points to."""
    _, _, rest = gsi1sk.partition("#")
    pk, _, sk = rest.partition(f"#{SEND_PREFIX}")
    return pk, f"{SEND_PREFIX}{sk}"


def suppression_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}#SUPPRESS"


def suppression_sk(channel: str, address: str) -> str:
    """The address's SHA-256 (lowercased, trimmed): the table never holds it in clear."""
    return f"{channel}#{hashlib.sha256(address.strip().lower().encode()).hexdigest()}"
