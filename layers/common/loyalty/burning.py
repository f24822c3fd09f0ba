"""Points burn: the nightly run, the per-member burn, activity under the inactivity policy, what is
about to burn, and the reminders before.

How it fits together (docs/DECISIONS.md, "Burning"):

- Every open lot is in the sparse index gsi1 under ``BURN#<tenant>#<burn date>#<shard>``; so is
  the member's ``IDX#BURN`` marker (``loyalty.store.burn``). The scheduler runs hourly
  (:func:`run_tenants`): for each tenant whose night has begun in its own time zone (its
  settings), it reads the 16 shards of each night from the tenant's last finished one (its
  checkpoint) up to tonight, in order (:func:`run_nights`), and sends one SQS message per member;
  the worker calls :func:`burn` (``Ledger.burn``).
- fixed_lifetime: a lot burns on its own date. inactivity: the marker's ``due`` (moved by every
  activity, in the activity's own transaction: :func:`touch`) is the day every point burns; lots
  keep their own (latest possible) dates, which only count while no activity was recorded.
- A burn never takes points a live hold keeps for a checkout: it burns up to ``available``,
  and moves the marker to the next night, so the rest burns once the hold is captured (which
  spends the earliest lots first, the overdue ones), released or expired.
- Reminders (:func:`remind`): one due notice per member, burn date and offset, with the amount
  recomputed when it is recorded; nothing left, no notice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from loyalty import clock, rules
from loyalty.errors import NotFound
from loyalty.models import ActivityEvent, BurnPolicy, Program, TenantSettings
from loyalty.store import burn as burn_store
from loyalty.store import keys
from loyalty.store.ledger import MAX_TRANSACTION_ITEMS, UnitOfWork
from loyalty.store.ledger_models import Account, Lot

if TYPE_CHECKING:  # pragma: no cover
    from loyalty.ledger import Ledger

BURN_ACTOR = {"key_id": "job:burn", "role": "system"}
# A lot burned takes 3 items (the lot, its entry, its guard); the account and the marker 2 more.
LOTS_PER_TRANSACTION = (MAX_TRANSACTION_ITEMS - 4) // 3
MAX_CATCH_UP_NIGHTS = 62  # nights one scheduler run catches up; the next run goes on from there
SQS_BATCH = 10
Night = date  # a night of the burn: the local calendar date it belongs to


# ------------------------------------------------------------------------------- activity
def card_presented(uow: UnitOfWork) -> bool:
    """Whether the operation goes through a card (``loyalty.cards`` tags its unit of work)."""
    tag = getattr(uow, "tag", None)
    return bool(tag and tag.get("card_number"))


def touch(uow: UnitOfWork, program: Program, account: Account, now: datetime, event: str) -> None:
    """Under the inactivity policy, an activity (``purchase``, ``redemption``; ``card_presented``
    too when the operation goes through a card) moves the day every point burns: the marker, in
    the activity's own transaction (the account's version guards it). Nothing otherwise."""
    events = {ActivityEvent(event)} | ({ActivityEvent.CARD_PRESENTED} if card_presented(uow) else set())
    if rules.counts_as_activity(program, events):
        burn_store.put_marker(uow, account, rules.inactivity_due(program, now.date()).isoformat())


# ------------------------------------------------------------------------------- one member
@dataclass
class _Step:
    burned: list[dict[str, Any]]
    held_back: int
    done: bool


def _due(program: Program, lots: list[Lot], marker: dict[str, Any] | None, night: date) -> list[tuple[str, int]]:
    due = marker["due"] if marker and program.burn_policy is BurnPolicy.INACTIVITY else None
    return rules.lots_due(program, [(lot.burn_date, lot.remaining) for lot in lots], due, night)


def burn(ledger: Ledger, tenant_id: str, member_id: str, night: date) -> dict[str, Any]:
    """Burn every point of the member due by the night of ``night``: one ``burn`` entry per lot,
    exact to the point, the lot and the balance in the same transaction, with a guard per lot
    and night. Up to LOTS_PER_TRANSACTION lots a transaction; more lots take more transactions,
    each complete on its own, so a crash between them leaves a consistent ledger and a rerun
    goes on with what is left. A rerun of a finished night finds nothing due and writes nothing."""
    from loyalty.ledger import _commit, _Draft, fingerprint

    store = burn_store.BurnStore(ledger.store.table, ledger.store._client)
    burned: list[dict[str, Any]] = []
    held_back = 0

    def step() -> _Step:
        now = clock.now()
        account = ledger.store.snapshot(tenant_id, member_id).account
        if account is None:
            return _Step([], 0, True)
        if account.lot_debt > 0:
            ledger._settle(account)  # raises Retry: the step starts over on the settled account
        program = ledger._program(tenant_id, account.program_id)
        marker = store.marker_item(tenant_id, member_id)
        if marker and marker.get("cut_night") == night.isoformat():
            return _Step([], int(marker.get("held_back", 0)), True)  # a hold cut this night short
        lots = ledger.store.lots(tenant_id, member_id)
        due = _due(program, lots, marker, night)
        plan = rules.burn_plan(due, account.available(now))
        held = sum(r for _, r in due) - sum(take for _, take in plan)
        chunk, done = plan[:LOTS_PER_TRANSACTION], len(plan) <= LOTS_PER_TRANSACTION
        draft = _Draft.start(account, lots, now)
        uow = ledger.store.unit_of_work()
        created = clock.isoformat(now)
        results = []
        for lot_date, take in chunk:
            draft.lot_changes[lot_date] = draft.remaining(lot_date) - take
            business_key = f"{lot_date}@{night.isoformat()}"
            entry_id = keys.stable_id("ent", tenant_id, member_id, "burn", business_key)
            draft.entry(
                entry_id=entry_id,
                type="burn",
                points=-take,
                created_at=created,
                actor=BURN_ACTOR,
                burn_date=lot_date,
                ref=business_key,
                details={"policy": program.burn_policy.value, "night": night.isoformat(), "lot": lot_date},
            )
            result = {"entry_id": entry_id, "burn_date": lot_date, "points": take}
            uow.put_guard(account, "burn", business_key, fingerprint(points=take), result, created)
            results.append(result)
        if done:
            if held > 0:  # the rest burns on a later night, once the hold has ended
                burn_store.put_marker(uow, account, (night + timedelta(days=1)).isoformat(), cut=night, held=held)
            elif marker and not (program.burn_policy is BurnPolicy.INACTIVITY and marker["due"] > night.isoformat()):
                burn_store.delete_marker(uow, account)
        if results or len(uow.items):
            draft.write(uow)
            _commit(uow)
        return _Step(results, held, done)

    while True:
        outcome = ledger._retrying(step)
        burned += outcome.burned
        held_back = outcome.held_back
        if outcome.done:
            break
    return {
        "member_id": member_id,
        "night": night.isoformat(),
        "points": sum(b["points"] for b in burned),
        "burned": burned,
        "held_back": held_back,
    }


def inactivity_due(ledger: Ledger, program: Program, account: Account) -> str | None:
    """Under the inactivity policy, the day every point of the member burns (its marker), None
    before any activity; None under fixed_lifetime without reading anything."""
    if program.burn_policy is not BurnPolicy.INACTIVITY:
        return None
    marker = burn_store.BurnStore(ledger.store.table, ledger.store._client).marker_item(
        account.tenant_id, account.member_id
    )
    return marker["due"] if marker else None


def expiring(ledger: Ledger, tenant_id: str, member_id: str) -> list[dict[str, Any]]:
    """``[{date, points}]``: when the member's points burn if nothing changes, soonest first."""
    account = ledger.store.snapshot(tenant_id, member_id).account
    if account is None:
        raise NotFound(f"No member {member_id!r}.", member_id=member_id)
    program = ledger._program(tenant_id, account.program_id)
    store = burn_store.BurnStore(ledger.store.table, ledger.store._client)
    marker = store.marker_item(tenant_id, member_id)
    lots = ledger.store.lots(tenant_id, member_id)
    due = marker["due"] if marker and program.burn_policy is BurnPolicy.INACTIVITY else None
    upcoming = rules.upcoming_burns(program, [(lot.burn_date, lot.remaining) for lot in lots], due, account.lot_debt)
    if marker and marker.get("held_back") and program.burn_policy is BurnPolicy.FIXED_LIFETIME:
        # Overdue points a hold kept: they burn on the marker's night unless the checkout takes them.
        overdue = [u for u in upcoming if str(u["date"]) < marker["due"]]
        later = [u for u in upcoming if str(u["date"]) >= marker["due"]]
        if overdue:
            upcoming = [{"date": marker["due"], "points": sum(int(u["points"]) for u in overdue)}, *later]
            upcoming = _merge(upcoming)
    return upcoming


def _merge(upcoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[str, int] = {}
    for u in upcoming:
        merged[str(u["date"])] = merged.get(str(u["date"]), 0) + int(u["points"])
    return [{"date": d, "points": p} for d, p in sorted(merged.items())]


# ------------------------------------------------------------------------------- reminders
def remind(ledger: Ledger, tenant_id: str, member_id: str, burn_date: date, days_before: int) -> dict[str, Any] | None:
    """Record the due notice of the member's points burning on ``burn_date``, ``days_before``
    ahead, once: with the amount as it stands now (nothing left: no notice). Only offsets of the
    member's program count. Answers the notice recorded, None if none was (or it existed)."""
    account = ledger.store.snapshot(tenant_id, member_id).account
    if account is None:
        return None
    program = ledger._program(tenant_id, account.program_id)
    if days_before not in program.reminder_days:
        return None
    points = next(
        (int(u["points"]) for u in expiring(ledger, tenant_id, member_id) if u["date"] == burn_date.isoformat()), 0
    )
    if points <= 0:
        return None
    notice = {
        "kind": "burn_reminder",
        "status": "due",
        "tenant_id": tenant_id,
        "member_id": member_id,
        "program_id": account.program_id,
        "burn_date": burn_date.isoformat(),
        "days_before": days_before,
        "points": points,
        "recorded_at": clock.isoformat(clock.now()),
    }
    store = burn_store.BurnStore(ledger.store.table, ledger.store._client)
    return notice if store.put_notice(tenant_id, member_id, notice) else None


# ------------------------------------------------------------------------------- the night
def nights_to_run(checkpoint: str | None, today: date) -> list[date]:
    """The nights from the one after the checkpoint up to ``today``, in order (today alone before
    the first run; nothing if today is done); at most MAX_CATCH_UP_NIGHTS of them."""
    first = date.fromisoformat(checkpoint) + timedelta(days=1) if checkpoint else today
    nights = []
    night = first
    while night <= today and len(nights) < MAX_CATCH_UP_NIGHTS:
        nights.append(night)
        night += timedelta(days=1)
    return nights


def due_members(store: burn_store.BurnStore, tenant_id: str, day: date) -> Iterator[str]:
    """Every member of the tenant with a lot or a marker under ``day``: 16 shards, one Query each."""
    for shard in range(keys.DUE_SHARDS):
        yield from store.due_members(tenant_id, day.isoformat(), shard)


def send_all(send_batch: Callable[[list[dict[str, Any]]], None], messages: Iterable[dict[str, Any]]) -> int:
    """Send ``messages`` in batches of SQS_BATCH; answers how many."""
    batch: list[dict[str, Any]] = []
    sent = 0
    for message in messages:
        batch.append(message)
        if len(batch) == SQS_BATCH:
            send_batch(batch)
            sent += len(batch)
            batch = []
    if batch:
        send_batch(batch)
        sent += len(batch)
    return sent


def run_nights(
    store: burn_store.BurnStore,
    tenant_id: str,
    reminder_days: Iterable[int],
    send_batch: Callable[[list[dict[str, Any]]], None],
    today: date,
    *,
    checkpoint: str | None = None,
    finished_at: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """One tenant's nights: for each night from the one after ``checkpoint`` (the tenant's last
    finished night) up to ``today``, in order, a ``burn`` message per member with points due by
    that night, and a ``remind`` message per member with points due ``d`` days later for each
    offset ``d`` any program uses; then the tenant's checkpoint moves to that night. A crash
    before the checkpoint moves makes the next run send that night again (the worker's guards
    make the second delivery a no-op)."""
    offsets = sorted(set(reminder_days))
    summary: dict[str, Any] = {"nights": [], "burn": 0, "remind": 0}
    for night in nights_to_run(checkpoint, today):
        burns = send_all(
            send_batch,
            (
                {"kind": "burn", "tenant_id": tenant_id, "member_id": m, "night": night.isoformat()}
                for m in due_members(store, tenant_id, night)
            ),
        )
        reminders = 0
        for days in offsets:
            burn_day = night + timedelta(days=days)
            reminders += send_all(
                send_batch,
                (
                    {
                        "kind": "remind",
                        "tenant_id": tenant_id,
                        "member_id": m,
                        "burn_date": burn_day.isoformat(),
                        "days_before": days,
                    }
                    for m in due_members(store, tenant_id, burn_day)
                ),
            )
        done_at = finished_at() if finished_at else clock.isoformat(clock.now())
        store.set_checkpoint(tenant_id, night.isoformat(), done_at)
        summary["nights"].append(night.isoformat())
        summary["burn"] += burns
        summary["remind"] += reminders
    return summary


def night_begun(now: datetime, time_zone: tzinfo, burn_time: time) -> date:
    """The latest night whose burn has begun at ``now`` for a tenant whose nights are dates in
    ``time_zone`` and burn from ``burn_time`` local time on: the local date, or the day before
    while the local wall clock is still before ``burn_time``. Across a daylight-saving change the
    wall clock decides (a burn time skipped in spring begins at the first instant after it; one
    repeated in autumn at its first occurrence, and the checkpoint makes the second one a no-op)."""
    local = now.astimezone(time_zone)
    return local.date() if local.time().replace(tzinfo=None) >= burn_time else local.date() - timedelta(days=1)


def run_tenants(
    store: burn_store.BurnStore,
    tenants: Iterable[tuple[str, TenantSettings]],
    default_zone: str,
    reminder_days: Iterable[int],
    send_batch: Callable[[list[dict[str, Any]]], None],
    now: datetime,
) -> dict[str, Any]:
    """The scheduler's run (hourly): every tenant whose next night has begun in its own time zone
    (its settings; ``default_zone`` for a tenant that names none) runs its nights, missed ones
    first. A tenant whose night has not begun costs nothing but its line in the registry; the
    checkpoints of all tenants are one Query."""
    checkpoints = store.checkpoints()
    offsets = sorted(set(reminder_days))
    summary: dict[str, Any] = {"tenants": {}, "burn": 0, "remind": 0}
    for tenant_id, tenant_settings in tenants:
        zone = ZoneInfo(tenant_settings.burn_time_zone or default_zone)
        today = night_begun(now, zone, tenant_settings.local_burn_time())
        checkpoint = checkpoints.get(tenant_id)
        if checkpoint is not None and checkpoint >= today.isoformat():
            continue  # tonight is done, or has not begun there yet
        ran = run_nights(store, tenant_id, offsets, send_batch, today, checkpoint=checkpoint)
        summary["tenants"][tenant_id] = ran["nights"]
        summary["burn"] += ran["burn"]
        summary["remind"] += ran["remind"]
    return summary


def handle_message(ledger: Ledger, body: str) -> dict[str, Any] | None:
    """The worker's step for one message of the scheduler."""
    message = json.loads(body)
    if message["kind"] == "burn":
        return burn(ledger, message["tenant_id"], message["member_id"], date.fromisoformat(message["night"]))
    if message["kind"] == "remind":
        return remind(
            ledger,
            message["tenant_id"],
            message["member_id"],
            date.fromisoformat(message["burn_date"]),
            int(message["days_before"]),
        )
    raise ValueError(f"unknown message kind {message['kind']!r}")
