"""The bonus ledger: accrue, quote, hold, capture, release, redeem, refund, adjust, transfer.

Each operation reads one consistent snapshot of the member, decides with the pure rules, and
writes everything it changes in ONE transaction: the account (guarded by its version), the
immutable entries, the lots, the order, and the permanent guard keyed by the business key.
A retry of any kind re-runs the whole operation; the guard turns a repeat into the first result.

Lots: points sit in lots by burn date and are spent earliest-burn first. When an operation
would touch more lots than one transaction holds, the rest is carried as ``lot_debt`` on the
account (in the same transaction) and settled by follow-up transactions, so the invariant is
``balance == sum(entries) == sum(open lots) - lot_debt`` with ``lot_debt`` normally 0.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from loyalty import access, burning, clock, currency, rules
from loyalty.errors import Conflict, InsufficientPoints, InvalidRequest, NotFound
from loyalty.members import Stores, program_of
from loyalty.models import Actor, Program, Tier, TierBasis
from loyalty.store import audit, dynamo, keys
from loyalty.store.ledger import MAX_TRANSACTION_ITEMS, LedgerStore, UnitOfWork
from loyalty.store.ledger_models import Account, Entry, Hold, Lot, OpenHold, Order

T = TypeVar("T")

MAX_POINTS = 1_000_000_000
MAX_AMOUNT = 10**13  # minor units: 100 billion in a 2-digit currency is absurd for one order
LOT_ITEMS_RESERVED = 12  # room kept in a transaction for the account, entries, guard, order, hold
TIER_REVIEW_ACTOR = {"key_id": "system:tiers", "role": "admin"}  # the nightly review (as system:birthdays)

# ------------------------------------------------------------------------------- helpers


def fingerprint(**fields: Any) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _replay(guard_result: dict[str, Any], stored: str, wanted: str, what: str) -> dict[str, Any]:
    if stored != wanted:
        raise Conflict(f"{what} was already recorded with different data; use a new id for a new request.")
    return guard_result


def _commit(uow: UnitOfWork) -> None:
    """Commit; a failed condition means someone wrote this member meanwhile: start over."""
    dynamo.retry_if_condition_failed(uow.commit)


def _check_money(program: Program, amount: int, code: str, field: str = "amount") -> None:
    if not currency.is_known(code):
        raise InvalidRequest(f"currency {code!r} is not an ISO 4217 code this engine knows.", field="currency")
    if code != program.currency:
        raise InvalidRequest(
            f"This member's program runs in {program.currency}; send amounts in {program.currency}, not {code}.",
            field="currency",
        )
    if not 0 < amount <= MAX_AMOUNT:
        raise InvalidRequest(f"{field} must be a positive number of minor units up to {MAX_AMOUNT}.", field=field)


def _actor(actor: Actor) -> dict[str, str]:
    return {"key_id": actor.key_id, "role": actor.role.value}


@dataclass
class _Draft:
    """What one operation will write: balance moves, lot moves, entries, in order."""

    account: Account
    lots: dict[str, Lot]
    balance: int
    seq: int
    lot_debt: int
    holds: tuple[OpenHold, ...]
    entries: list[tuple[int, Entry]]
    lot_changes: dict[str, int]  # burn date -> new remaining

    @classmethod
    def start(cls, account: Account, lots: list[Lot], now: datetime) -> _Draft:
        return cls(
            account=account,
            lots={lot.burn_date: lot for lot in lots},
            balance=account.balance,
            seq=account.seq,
            lot_debt=account.lot_debt,
            holds=tuple(h for h in account.holds if h.live(now)),  # expired holds release themselves
            entries=[],
            lot_changes={},
        )

    def remaining(self, burn_date: str) -> int:
        if burn_date in self.lot_changes:
            return self.lot_changes[burn_date]
        lot = self.lots.get(burn_date)
        return lot.remaining if lot else 0

    def credit(self, burn_date: str, points: int) -> None:
        if points > 0:
            self.lot_changes[burn_date] = self.remaining(burn_date) + points

    def debit(self, points: int, *, prefer: str | None = None, room: int) -> list[tuple[str, int]]:
        """Take ``points`` (plus any debt carried) from the lots, earliest burn first.

        At most ``room`` lots are touched in this transaction; the rest becomes ``lot_debt``.
        """
        owed = points + self.lot_debt
        current = [(date, self.remaining(date)) for date in set(self.lots) | set(self.lot_changes)]
        plan = rules.spend_plan([lot for lot in current if lot[1] > 0], owed, prefer=prefer)
        touched = [date for date, _ in plan if date not in self.lot_changes]
        allowed = set(touched[: max(0, room)]) | set(self.lot_changes)
        taken = []
        for date, take in plan:
            if date in allowed:
                self.lot_changes[date] = self.remaining(date) - take
                owed -= take
                taken.append((date, take))
        self.lot_debt = owed
        return taken

    def entry(self, **fields: Any) -> Entry:
        self.seq += 1
        self.balance += fields["points"]
        entry = Entry(balance_after=self.balance, **fields)
        self.entries.append((self.seq, entry))
        return entry

    def lot_room(self, reserved: int = LOT_ITEMS_RESERVED) -> int:
        return MAX_TRANSACTION_ITEMS - reserved - len(self.lot_changes)

    def write(self, uow: UnitOfWork, **account_changes: Any) -> None:
        uow.update_account(
            self.account,
            balance=self.balance,
            seq=self.seq,
            holds=self.holds,
            lot_debt=self.lot_debt,
            **account_changes,
        )
        for seq, entry in self.entries:
            uow.put_entry(self.account, seq, entry)
        for date, remaining in sorted(self.lot_changes.items()):
            uow.change_lot(self.account, self.lots.get(date), date, remaining)


@dataclass
class _Window:
    """A ``spend_window`` member's qualifying spend by day (``rules.window_of``) and the day its
    tier is next reviewed, as one operation changes them. ``fields`` are the account's attributes
    to write; ``write_marker`` moves the IDX#TIER marker (gsi1) in the same transaction."""

    program: Program
    account: Account
    today: dt.date
    spend_by_day: dict[str, int]
    review: str | None

    @classmethod
    def of(cls, program: Program, account: Account, today: dt.date) -> _Window | None:
        if program.tier_basis is not TierBasis.SPEND_WINDOW or program.tier_window_days is None:
            return None
        window = cls(program, account, today, dict(account.tier_window), account.tier_review)
        window.spend_by_day = rules.window_of(account.tier_window, program.tier_window_days, window.kept_from())
        return window

    @property
    def days(self) -> int:
        return self.program.tier_window_days or 0

    def kept_from(self) -> dt.date:
        """The window is kept as it stands on this day: today, or the day of a review still due
        (which must see the spend of its own day, however late it is made)."""
        if self.review is not None and self.review < self.today.isoformat():
            return dt.date.fromisoformat(self.review)
        return self.today

    def spend(self) -> int:
        return rules.window_spend(self.spend_by_day, self.days, self.today)

    def due(self, held: Tier) -> list[rules.Downgrade]:
        """The reviews due up to today, in order (the nightly job's, if it has not run yet)."""
        due = dt.date.fromisoformat(self.review) if self.review else None
        steps, _, after = rules.review_window(self.program, held, self.spend_by_day, due, self.today)
        self.review = after.isoformat() if after else None
        self.spend_by_day = rules.window_of(self.spend_by_day, self.days, self.today)
        return steps

    def add(self, day: dt.date, amount: int) -> bool:
        """Count a qualifying purchase of ``day``; False if that day has left the window already."""
        if not rules.window_counts(day, self.days, self.today):
            return False
        self.spend_by_day = rules.window_add(self.spend_by_day, self.days, day, amount)
        return True

    def remove(self, day: dt.date, amount: int) -> None:
        self.spend_by_day = rules.window_remove(self.spend_by_day, self.days, day, amount)

    def reschedule(self, held: Tier) -> None:
        """After a purchase or a refund: the next review is the first day from tomorrow on when the
        window is below the tier held (today's review has come or is still due: a review that is
        overdue stays as it is, for the job to make)."""
        if self.review is not None and self.review <= self.today.isoformat():
            return
        after = rules.next_review(self.program, held, self.spend_by_day, self.today + timedelta(days=1))
        self.review = after.isoformat() if after else None

    def fields(self) -> dict[str, Any]:
        return {
            "tier_window": rules.window_of(self.spend_by_day, self.days, self.kept_from()),
            "tier_review": self.review,
        }

    def write_marker(self, uow: UnitOfWork) -> None:
        if self.review != self.account.tier_review:
            uow.set_tier_review(self.account, self.review)


def _downgrade_entries(
    draft: _Draft,
    program: Program,
    steps: Sequence[rules.Downgrade],
    *,
    key: str,
    created: str,
    actor: dict[str, str],
    ref: str | None = None,
) -> None:
    """One ``tier_change`` entry per review that lowered the tier (``key`` makes their ids)."""
    account = draft.account
    for step in steps:
        spend = currency.format_amount(step.spend, program.currency)
        needed = currency.format_amount(step.source.threshold, program.currency)
        draft.entry(
            entry_id=keys.stable_id(
                "ent", account.tenant_id, account.member_id, "tier-review", key, step.as_of.isoformat()
            ),
            type="tier_change",
            points=0,
            created_at=created,
            actor=actor,
            ref=ref,
            details={
                "from": step.source.name,
                "to": step.target.name,
                "why": f"spend_window: {spend} counted in the {program.tier_window_days}-day window on "
                f"{step.as_of.isoformat()}, below the {needed} {step.source.name} needs",
                "as_of": step.as_of.isoformat(),
                "window_spend": step.spend,
            },
        )


@dataclass(frozen=True)
class Grant:
    """A one-off bonus for ``Ledger.grant``: ``kind`` is the entry type and the guard's kind,
    ``key`` the business key that makes it happen once (the year of a birthday, a referee's id)."""

    member_id: str
    kind: str
    key: str
    points: int
    details: dict[str, Any] | None = None


def _retried(read: Callable[..., T]) -> Callable[..., T]:
    """A read runs again, whole, after a transient store error, as every write does (503 at the end)."""

    @functools.wraps(read)
    def retried(self: Ledger, *args: Any, **kwargs: Any) -> T:
        return self._retrying(lambda: read(self, *args, **kwargs))

    return retried


class Ledger:
    """The ledger service for one process; stateless between calls."""

    def __init__(self, stores: Stores, *, attempts: int = 15) -> None:
        self.stores = stores
        self.store: LedgerStore = stores.ledger
        self.attempts = attempts

    # ------------------------------------------------------------------- plumbing
    def _retrying(self, operation: Any) -> Any:
        return dynamo.with_retries(operation, attempts=self.attempts, max_delay=0.25)

    def _program(self, tenant_id: str, program_id: str) -> Program:
        return program_of(self.stores, tenant_id, program_id)

    def _account(self, snapshot_account: Account | None, member_id: str) -> Account:
        if snapshot_account is None:
            raise NotFound(f"No member {member_id!r}. Enrol it with POST /v1/members.", member_id=member_id)
        return snapshot_account

    def _settle(self, account: Account) -> None:
        """Pay off carried lot debt (rare: an operation that touched more lots than fit)."""
        lots = self.store.lots(account.tenant_id, account.member_id)
        draft = _Draft.start(account, lots, clock.now())
        draft.holds = account.holds  # settling changes no holds
        draft.debit(0, room=draft.lot_room(2))
        uow = self.store.unit_of_work()
        draft.write(uow)
        _commit(uow)
        raise dynamo.Retry()  # the caller's operation starts over on the settled account

    def _load(
        self, tenant_id: str, member_id: str, *, guard: tuple[str, str] | None = None, order_id: str | None = None
    ) -> tuple[Any, Account]:
        snapshot = self.store.snapshot(tenant_id, member_id, guard=guard, order_id=order_id)
        if snapshot.guard is not None:
            return snapshot, snapshot.account  # type: ignore[return-value]
        account = self._account(snapshot.account, member_id)
        if account.lot_debt > 0:
            self._settle(account)
        return snapshot, account

    # ------------------------------------------------------------------- purchases
    def accrue(
        self,
        actor: Actor,
        member_id: str,
        *,
        order_id: str,
        amount: int,
        currency_code: str,
        occurred_at: datetime | None,
        extra_details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``extra_details``: more facts for the accrual entry's details (e.g. the company
        manager who bought, when the points go to the company)."""
        tenant = actor.tenant_id
        wanted = fingerprint(amount=amount, currency=currency_code)

        def attempt() -> dict[str, Any]:
            now = clock.now()
            snapshot, account = self._load(tenant, member_id, guard=("purchase", order_id), order_id=order_id)
            if snapshot.guard:
                return _replay(snapshot.guard.result, snapshot.guard.fingerprint, wanted, f"Order {order_id!r}")
            program = self._program(tenant, account.program_id)
            _check_money(program, amount, currency_code)
            earned_at = occurred_at or now
            if earned_at > now + timedelta(minutes=5):
                raise InvalidRequest("occurred_at is in the future.", field="occurred_at")
            if earned_at < now - timedelta(days=program.lifetime_days):
                raise InvalidRequest("occurred_at is older than the bonus lifetime.", field="occurred_at")
            qualifying = rules.qualifies(program, amount)
            tier = rules.tier_named(program, account.tier)
            window = _Window.of(program, account, now.date())
            # A nightly review that is due and not written yet comes first: the purchase accrues
            # at the tier it leaves (a spend window's tier is what its spend reaches that day).
            lowered = window.due(tier) if window else []
            tier = lowered[-1].target if lowered else tier
            points = rules.accrual_points(program, tier, amount) if qualifying else 0
            burn = rules.burn_date(program, earned_at).isoformat()
            purchases = account.purchases + (1 if qualifying else 0)
            spend = account.lifetime_spend + (amount if qualifying else 0)
            window_day = earned_at.astimezone(UTC).date()  # a backdated purchase counts on its own day
            counted = window is not None and qualifying and window.add(window_day, amount)
            new_tier = rules.reached_tier(
                program,
                tier.name,
                lifetime_spend=spend,
                purchases=purchases,
                window_spend=window.spend() if window else None,
            ).name
            draft = _Draft.start(account, self.store.lot(tenant, member_id, burn), now)
            _downgrade_entries(draft, program, lowered, key=order_id, created=clock.isoformat(now), actor=_actor(actor))
            entry_id = keys.stable_id("ent", tenant, member_id, "purchase", order_id)
            draft.credit(burn, points)
            details: dict[str, Any] = {
                **(extra_details or {}),
                "amount": amount,
                "currency": currency_code,
                "tier": tier.name,
            }
            if not qualifying:
                details["below_min_order_amount"] = program.min_order_amount
            draft.entry(
                entry_id=entry_id,
                type="accrual",
                points=points,
                created_at=clock.isoformat(now),
                actor=_actor(actor),
                order_id=order_id,
                burn_date=burn,
                ref=order_id,
                details=details,
            )
            if new_tier != tier.name:  # a ledger-visible event, for messages and reports
                draft.entry(
                    entry_id=keys.stable_id("ent", tenant, member_id, "tier", order_id),
                    type="tier_change",
                    points=0,
                    created_at=clock.isoformat(now),
                    actor=_actor(actor),
                    order_id=order_id,
                    ref=order_id,
                    details={
                        "from": tier.name,
                        "to": new_tier,
                        "why": f"{program.tier_basis.value} reached "
                        f"{rules.tier_named(program, new_tier).threshold} with order {order_id}",
                    },
                )
            result = {
                "entry_id": entry_id,
                "points": points,
                "balance": draft.balance,
                "tier": new_tier,
                "burn_date": burn,
            }
            uow = self.store.unit_of_work()
            if window is not None:
                window.reschedule(rules.tier_named(program, new_tier))
                window.write_marker(uow)
            draft.write(
                uow,
                earned=points,
                spend=spend - account.lifetime_spend,
                purchases=purchases - account.purchases,
                tier=new_tier,
                also_set=window.fields() if window else None,
            )
            uow.update_order(
                account,
                snapshot.order,
                amount=amount,
                currency=currency_code,
                earned=points,
                earned_burn_date=burn,
                qualified=qualifying,
                **({"window_day": window_day.isoformat()} if counted else {}),
            )
            burning.touch(uow, program, account, now, "purchase")  # the inactivity policy's burn date moves
            uow.put_guard(account, "purchase", order_id, wanted, result, clock.isoformat(now))
            _commit(uow)
            return result

        return self._retrying(attempt)

    # ------------------------------------------------------------------- redemption
    @_retried
    def quote(self, actor: Actor, member_id: str, *, order_amount: int, currency_code: str) -> dict[str, Any]:
        snapshot = self.store.snapshot(actor.tenant_id, member_id)
        account = self._account(snapshot.account, member_id)
        program = self._program(actor.tenant_id, account.program_id)
        _check_money(program, order_amount, currency_code, "order_amount")
        available = account.available(clock.now())
        max_points = rules.max_redeemable(program, order_amount, available)
        return {
            "max_points": max_points,
            "max_amount": max_points * program.point_value,
            "available": available,
            "point_value": program.point_value,
            "currency": program.currency,
        }

    def _check_spend(
        self, program: Program, order: Order, points: int, order_amount: int, available: int, held_for_order: int = 0
    ) -> None:
        if not 0 < points <= MAX_POINTS:
            raise InvalidRequest(f"points must be between 1 and {MAX_POINTS}.", field="points")
        cap = rules.max_redeemable(program, order_amount, 10**18) - order.spent - held_for_order
        if points > cap:
            raise Conflict(
                f"This order may use at most {max(cap, 0)} points "
                f"({program.max_redeem_share_bp / 100:g} % of the order); ask POST .../redemption-quote.",
                max_points=max(cap, 0),
                available=available,
            )
        if points > available:
            raise InsufficientPoints(
                f"The member has {available} points available; {points} were asked.", available=available
            )

    def hold(
        self, actor: Actor, member_id: str, *, order_id: str, points: int, order_amount: int, currency_code: str
    ) -> tuple[dict[str, Any], bool]:
        tenant = actor.tenant_id
        wanted = fingerprint(points=points, order_amount=order_amount, currency=currency_code)

        def attempt() -> tuple[dict[str, Any], bool]:
            now = clock.now()
            snapshot, account = self._load(tenant, member_id, order_id=order_id)
            # The order's current hold answers a retry while it is open, or once captured; after
            # it was released or ran out, the order may be held again under the next id.
            seq = snapshot.order.hold_seq
            hold_id = hold_id_for(tenant, member_id, order_id, seq)
            existing = self.store.hold(tenant, hold_id)
            if existing is not None:
                live = existing.status == "open" and hold_id in {h.hold_id for h in account.holds if h.live(now)}
                if live or existing.status == "captured":
                    what = f"A hold for order {order_id!r}"
                    return _replay(existing.result, existing.fingerprint, wanted, what), False
                seq += 1
                hold_id = hold_id_for(tenant, member_id, order_id, seq)
            program = self._program(tenant, account.program_id)
            _check_money(program, order_amount, currency_code, "order_amount")
            self._check_spend(program, snapshot.order, points, order_amount, account.available(now))
            expires = int((now + timedelta(minutes=program.hold_minutes)).timestamp())
            draft = _Draft.start(account, [], now)
            draft.holds = (*draft.holds, OpenHold(hold_id=hold_id, points=points, expires_at=expires))
            result = {
                "hold_id": hold_id,
                "status": "open",
                "points": points,
                "order_id": order_id,
                "expires_at": clock.isoformat(datetime.fromtimestamp(expires, now.tzinfo)),
            }
            uow = self.store.unit_of_work()
            draft.write(uow)
            uow.put_hold(
                tenant,
                Hold(
                    hold_id=hold_id,
                    member_id=member_id,
                    order_id=order_id,
                    points=points,
                    order_amount=order_amount,
                    currency=currency_code,
                    status="open",
                    expires_at=expires,
                    fingerprint=wanted,
                    result=result,
                ),
            )
            first_amount = (
                {} if snapshot.order.base_amount else {"order_amount": order_amount, "currency": currency_code}
            )
            uow.update_order(account, snapshot.order, hold_seq=seq, **first_amount)
            _commit(uow)
            return result, True

        return self._retrying(attempt)

    def _hold_or_404(self, tenant: str, hold_id: str) -> Hold:
        hold = self.store.hold(tenant, hold_id)
        if hold is None:
            raise NotFound(f"No hold {hold_id!r}.", hold_id=hold_id)
        return hold

    def capture(self, actor: Actor, hold_id: str) -> dict[str, Any]:
        tenant = actor.tenant_id

        def attempt() -> dict[str, Any]:
            now = clock.now()
            hold = self._hold_or_404(tenant, hold_id)
            if hold.status == "captured":
                return hold.result
            if hold.status == "released":
                raise Conflict(f"Hold {hold_id!r} was released; it cannot be captured.", hold_status="released")
            snapshot, account = self._load(tenant, hold.member_id, order_id=hold.order_id)
            if hold.expires_at <= int(now.timestamp()) or hold_id not in {h.hold_id for h in account.holds}:
                raise Conflict(
                    f"Hold {hold_id!r} expired; its points were released. Place a new hold for the order.",
                    hold_status="expired",
                )
            lots = self.store.lots(tenant, hold.member_id)
            draft = _Draft.start(account, lots, now)
            draft.holds = tuple(h for h in draft.holds if h.hold_id != hold_id)
            draft.debit(hold.points, room=draft.lot_room())
            entry_id = keys.stable_id("ent", tenant, hold.member_id, "capture", hold_id)
            draft.entry(
                entry_id=entry_id,
                type="redemption",
                points=-hold.points,
                created_at=clock.isoformat(now),
                actor=_actor(actor),
                order_id=hold.order_id,
                ref=hold_id,
            )
            result = {**hold.result, "status": "captured", "entry_id": entry_id, "balance": draft.balance}
            uow = self.store.unit_of_work()
            draft.write(uow)
            uow.finish_hold(tenant, hold, "captured", result)
            burning.touch(uow, self._program(tenant, account.program_id), account, now, "redemption")
            uow.update_order(
                account,
                snapshot.order,
                spent=snapshot.order.spent + hold.points,
                currency=hold.currency,
                **({} if snapshot.order.base_amount else {"order_amount": hold.order_amount}),
            )
            _commit(uow)
            return result

        return self._retrying(attempt)

    def release(self, actor: Actor, hold_id: str) -> dict[str, Any]:
        tenant = actor.tenant_id

        def attempt() -> dict[str, Any]:
            now = clock.now()
            hold = self._hold_or_404(tenant, hold_id)
            if hold.status == "released":
                return hold.result
            if hold.status == "captured":
                raise Conflict(f"Hold {hold_id!r} was captured; refund the order instead.", hold_status="captured")
            _, account = self._load(tenant, hold.member_id)
            draft = _Draft.start(account, [], now)
            draft.holds = tuple(h for h in draft.holds if h.hold_id != hold_id)
            result = {**hold.result, "status": "released"}
            uow = self.store.unit_of_work()
            draft.write(uow)
            uow.finish_hold(tenant, hold, "released", result)
            _commit(uow)
            return result

        return self._retrying(attempt)

    def redeem(
        self, actor: Actor, member_id: str, *, order_id: str, points: int, order_amount: int, currency_code: str
    ) -> dict[str, Any]:
        tenant = actor.tenant_id
        wanted = fingerprint(points=points, order_amount=order_amount, currency=currency_code)

        def attempt() -> dict[str, Any]:
            now = clock.now()
            snapshot, account = self._load(tenant, member_id, guard=("redeem", order_id), order_id=order_id)
            if snapshot.guard:
                return _replay(
                    snapshot.guard.result, snapshot.guard.fingerprint, wanted, f"A redemption for order {order_id!r}"
                )
            program = self._program(tenant, account.program_id)
            _check_money(program, order_amount, currency_code, "order_amount")
            open_hold = next(
                (
                    h
                    for h in account.holds
                    if h.live(now) and h.hold_id == hold_id_for(tenant, member_id, order_id, snapshot.order.hold_seq)
                ),
                None,
            )
            self._check_spend(
                program,
                snapshot.order,
                points,
                order_amount,
                account.available(now),
                open_hold.points if open_hold else 0,
            )
            draft = _Draft.start(account, self.store.lots(tenant, member_id), now)
            draft.debit(points, room=draft.lot_room())
            entry_id = keys.stable_id("ent", tenant, member_id, "redeem", order_id)
            draft.entry(
                entry_id=entry_id,
                type="redemption",
                points=-points,
                created_at=clock.isoformat(now),
                actor=_actor(actor),
                order_id=order_id,
                ref=order_id,
            )
            result = {
                "entry_id": entry_id,
                "points": points,
                "balance": draft.balance,
                "available": draft.balance - sum(h.points for h in draft.holds),
            }
            uow = self.store.unit_of_work()
            draft.write(uow)
            uow.update_order(
                account,
                snapshot.order,
                spent=snapshot.order.spent + points,
                currency=currency_code,
                **({} if snapshot.order.base_amount else {"order_amount": order_amount}),
            )
            burning.touch(uow, program, account, now, "redemption")
            uow.put_guard(account, "redeem", order_id, wanted, result, clock.isoformat(now))
            _commit(uow)
            return result

        return self._retrying(attempt)

    # ------------------------------------------------------------------- refunds
    def refund(self, actor: Actor, member_id: str, *, refund_id: str, order_id: str, amount: int) -> dict[str, Any]:
        tenant = actor.tenant_id
        wanted = fingerprint(order_id=order_id, amount=amount)

        def attempt() -> dict[str, Any]:
            now = clock.now()
            snapshot, account = self._load(tenant, member_id, guard=("refund", refund_id), order_id=order_id)
            if snapshot.guard:
                return _replay(snapshot.guard.result, snapshot.guard.fingerprint, wanted, f"Refund {refund_id!r}")
            order: Order = snapshot.order
            base = order.base_amount
            if base is None:
                raise NotFound(f"No order {order_id!r} for this member.", order_id=order_id)
            if not 0 < amount <= MAX_AMOUNT:
                raise InvalidRequest("amount must be a positive number of minor units.", field="amount")
            if order.refunded + amount > base:
                raise Conflict(
                    f"Order {order_id!r} has {base - order.refunded} left to refund; {amount} was asked.",
                    refundable=base - order.refunded,
                )
            program = self._program(tenant, account.program_id)
            refunded = order.refunded + amount
            reversed_due = rules.proportional_share(order.earned, refunded, base)
            returned_total = rules.proportional_share(order.spent, refunded, base)
            take_back, give_back = reversed_due - order.reversed_due, returned_total - order.returned
            draft = _Draft.start(account, self.store.lots(tenant, member_id), now)
            created = clock.isoformat(now)
            if give_back:
                burn = rules.burn_date(program, now).isoformat()
                draft.credit(burn, give_back)
                draft.entry(
                    entry_id=keys.stable_id("ent", tenant, member_id, "refund-return", refund_id),
                    type="refund_return",
                    points=give_back,
                    created_at=created,
                    actor=_actor(actor),
                    order_id=order_id,
                    burn_date=burn,
                    ref=refund_id,
                )
            available = draft.balance - sum(h.points for h in draft.holds)
            recovered = max(0, min(take_back, available))
            unrecovered = take_back - recovered
            if take_back:
                draft.debit(recovered, prefer=order.earned_burn_date, room=draft.lot_room())
                draft.entry(
                    entry_id=keys.stable_id("ent", tenant, member_id, "refund-clawback", refund_id),
                    type="refund_clawback",
                    points=-recovered,
                    created_at=created,
                    actor=_actor(actor),
                    order_id=order_id,
                    ref=refund_id,
                    details={"due": take_back, "unrecovered": unrecovered} if unrecovered else None,
                )
            result = {
                "refund_id": refund_id,
                "order_id": order_id,
                "amount": amount,
                "points_returned": give_back,
                "points_taken_back": recovered,
                "points_unrecovered": unrecovered,
                "balance": draft.balance,
            }
            uow = self.store.unit_of_work()
            # Only a qualifying purchase counted in the lifetime spend, so only its refund takes it out.
            counted_spend = order.amount is not None and order.qualified
            new_spend = max(0, account.lifetime_spend - amount) if counted_spend else account.lifetime_spend
            # The tier is re-evaluated and kept: a refund never lowers it (the program's downgrade
            # rule is "never", or the nightly window review, which sees the refund from tomorrow on).
            window = _Window.of(program, account, now.date()) if order.window_day else None
            if window is not None:
                window.remove(dt.date.fromisoformat(order.window_day), amount)
                window.reschedule(rules.tier_named(program, account.tier))
                window.write_marker(uow)
            draft.write(uow, spend=new_spend - account.lifetime_spend, also_set=window.fields() if window else None)
            uow.update_order(account, order, refunded=refunded, reversed_due=reversed_due, returned=returned_total)
            uow.put_guard(account, "refund", refund_id, wanted, result, created)
            _commit(uow)
            return result

        return self._retrying(attempt)

    # ------------------------------------------------------------------- manual and transfers
    def adjust(self, actor: Actor, member_id: str, *, adjustment_id: str, points: int, reason: str) -> dict[str, Any]:
        tenant = actor.tenant_id
        wanted = fingerprint(points=points, reason=reason)

        def attempt() -> dict[str, Any]:
            now = clock.now()
            snapshot, account = self._load(tenant, member_id, guard=("adjust", adjustment_id))
            if snapshot.guard:
                return _replay(
                    snapshot.guard.result, snapshot.guard.fingerprint, wanted, f"Adjustment {adjustment_id!r}"
                )
            if points == 0 or abs(points) > MAX_POINTS:
                raise InvalidRequest(f"points must be non-zero and at most {MAX_POINTS} either way.", field="points")
            access.check_adjustment(self.stores.config.get_access_policy(tenant), actor, points)
            program = self._program(tenant, account.program_id)
            burn = rules.burn_date(program, now).isoformat() if points > 0 else None
            # A credit touches one lot; a debit may touch any, earliest burn first.
            lots = self.store.lot(tenant, member_id, burn) if burn else self.store.lots(tenant, member_id)
            draft = _Draft.start(account, lots, now)
            if burn:
                draft.credit(burn, points)
            else:
                available = account.available(now)
                if -points > available:
                    raise InsufficientPoints(
                        f"The member has {available} points available; cannot take {-points}.", available=available
                    )
                draft.debit(-points, room=draft.lot_room())
            entry_id = keys.stable_id("ent", tenant, member_id, "adjust", adjustment_id)
            draft.entry(
                entry_id=entry_id,
                type="adjustment",
                points=points,
                created_at=clock.isoformat(now),
                actor=_actor(actor),
                burn_date=burn,
                reason=reason,
                ref=adjustment_id,
            )
            result = {"entry_id": entry_id, "points": points, "balance": draft.balance, "reason": reason}
            uow = self.store.unit_of_work()
            draft.write(uow, earned=max(points, 0))
            uow.put_guard(account, "adjust", adjustment_id, wanted, result, clock.isoformat(now))
            uow.put_audit(
                tenant,
                audit.record(
                    actor,
                    "adjustment",
                    ref=f"{member_id}/{adjustment_id}",
                    at=now,
                    reason=reason,
                    member_id=member_id,
                    target=entry_id,
                    details={"points": points},
                ),
            )
            _commit(uow)
            return result

        return self._retrying(attempt)

    def transfer(
        self,
        actor: Actor,
        member_id: str,
        *,
        transfer_id: str,
        to_member_id: str,
        points: int,
        card_handover: bool = False,
    ) -> dict[str, Any]:
        """Move points to another member. ``card_handover``: the points go with a card handed to
        that member (``loyalty.cards``), which the program allows by ``allow_card_handover``."""
        tenant = actor.tenant_id
        wanted = fingerprint(to=to_member_id, points=points)
        if to_member_id == member_id:
            raise InvalidRequest("to_member_id must be another member.", field="to_member_id")

        def attempt() -> dict[str, Any]:
            now = clock.now()
            snapshot, source = self._load(tenant, member_id, guard=("transfer", transfer_id))
            if snapshot.guard:
                return _replay(snapshot.guard.result, snapshot.guard.fingerprint, wanted, f"Transfer {transfer_id!r}")
            _, target = self._load(tenant, to_member_id)
            program = self._program(tenant, source.program_id)
            if card_handover and not program.allow_card_handover:
                raise Conflict("This member's program does not allow handing a card to another member.")
            if not card_handover and not program.allow_transfers:
                raise Conflict("This member's program does not allow transferring points.", field="points")
            if not 0 < points <= MAX_POINTS:
                raise InvalidRequest(f"points must be between 1 and {MAX_POINTS}.", field="points")
            available = source.available(now)
            if points > available:
                raise InsufficientPoints(
                    f"The member has {available} points available; {points} were asked.", available=available
                )
            out = _Draft.start(source, self.store.lots(tenant, member_id), now)
            into = _Draft.start(target, self.store.lots(tenant, to_member_id), now)
            room = (MAX_TRANSACTION_ITEMS - LOT_ITEMS_RESERVED) // 2
            moved = out.debit(points, room=room)
            carried = points - sum(take for _, take in moved)
            for date, take in moved:
                into.credit(date, take)
            if carried:  # more lots than fit: the rest keeps the earliest date still owed (never later)
                later = rules.spend_plan(
                    [(lot.burn_date, lot.remaining) for lot in out.lots.values() if lot.burn_date not in dict(moved)],
                    carried,
                )
                into.credit(later[0][0] if later else max(d for d, _ in moved), carried)
            created = clock.isoformat(now)
            out_id = keys.stable_id("ent", tenant, member_id, "transfer-out", transfer_id)
            out.entry(
                entry_id=out_id,
                type="transfer_out",
                points=-points,
                created_at=created,
                actor=_actor(actor),
                ref=transfer_id,
                details={"to_member_id": to_member_id},
            )
            in_id = keys.stable_id("ent", tenant, to_member_id, "transfer-in", transfer_id)
            into.entry(
                entry_id=in_id,
                type="transfer_in",
                points=points,
                created_at=created,
                actor=_actor(actor),
                ref=transfer_id,
                details={"from_member_id": member_id},
            )
            result = {
                "transfer_id": transfer_id,
                "points": points,
                "entry_id": out_id,
                "balance": out.balance,
                "to_member_id": to_member_id,
                "to_entry_id": in_id,
            }
            uow = self.store.unit_of_work()
            out.write(uow)
            into.write(uow, earned=0)
            uow.put_guard(source, "transfer", transfer_id, wanted, result, created)
            uow.put_audit(
                tenant,
                audit.record(
                    actor,
                    "transfer",
                    ref=f"{member_id}/{transfer_id}",
                    at=now,
                    member_id=member_id,
                    target=out_id,
                    details={"points": points, "to_member_id": to_member_id},
                ),
            )
            _commit(uow)
            return result

        return self._retrying(attempt)

    # ------------------------------------------------------------------- one-off bonuses
    def grant(
        self, actor: Actor, grants: Sequence[Grant], *, also_set: dict[str, dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """Credit one-off bonuses (birthday, referral, ...) in ONE transaction, each on its member
        with an entry of type ``kind``, a lot at the member's program's burn date and a permanent
        guard ``kind#key``: the same grant again answers the first results and credits nothing.
        ``also_set``: attributes to set on a member's item in the same transaction (by member id).
        A 0-point grant writes nothing but its member's ``also_set``; one grant per member."""
        tenant = actor.tenant_id
        also_set = also_set or {}
        # A 0-point grant credits nothing; it stays only to carry its member's ``also_set``.
        grants = [g for g in grants if g.points > 0 or g.member_id in also_set]
        if len({g.member_id for g in grants}) != len(grants):
            raise ValueError("one grant per member in a transaction")
        for g in grants:
            if g.points > MAX_POINTS:
                raise InvalidRequest(f"a bonus is at most {MAX_POINTS} points.", field="points")
        wanted = [fingerprint(kind=g.kind, key=g.key, points=g.points) for g in grants]

        def attempt() -> list[dict[str, Any]]:
            now = clock.now()
            created = clock.isoformat(now)
            loaded = [self._load(tenant, g.member_id, guard=(g.kind, g.key) if g.points else None) for g in grants]
            credits = [
                (g, snapshot, fp) for g, (snapshot, _), fp in zip(grants, loaded, wanted, strict=True) if g.points
            ]
            if credits and all(snapshot.guard for _, snapshot, _ in credits):
                return [
                    _replay(snapshot.guard.result, snapshot.guard.fingerprint, fp, f"{g.kind} {g.key!r}")
                    for g, snapshot, fp in credits
                ]
            if any(snapshot.guard for _, snapshot, _ in credits):  # pragma: no cover - written together
                raise Conflict("Part of this grant was recorded with another; use new keys.")
            uow = self.store.unit_of_work()
            results = []
            for g, (_, account), fp in zip(grants, loaded, wanted, strict=True):
                if not g.points:
                    _Draft.start(account, [], now).write(uow, also_set=also_set[g.member_id])
                    continue
                program = self._program(tenant, account.program_id)
                burn = rules.burn_date(program, now).isoformat()
                draft = _Draft.start(account, self.store.lot(tenant, g.member_id, burn), now)
                draft.credit(burn, g.points)
                entry_id = keys.stable_id("ent", tenant, g.member_id, g.kind, g.key)
                draft.entry(
                    entry_id=entry_id,
                    type=g.kind,
                    points=g.points,
                    created_at=created,
                    actor=_actor(actor),
                    burn_date=burn,
                    ref=g.key,
                    details=g.details,
                )
                result = {
                    "member_id": g.member_id,
                    "entry_id": entry_id,
                    "type": g.kind,
                    "points": g.points,
                    "balance": draft.balance,
                    "burn_date": burn,
                }
                draft.write(uow, earned=g.points, also_set=also_set.get(g.member_id))
                uow.put_guard(account, g.kind, g.key, fp, result, created)
                results.append(result)
            _commit(uow)
            return results

        return self._retrying(attempt)

    # ------------------------------------------------------------------- tier reviews
    def review_tier(self, tenant_id: str, member_id: str) -> dict[str, Any]:
        """The nightly review of one member (``loyalty.tiers``): every review due up to today, in
        order, each lowering the tier to what the spend window reaches on its day (a
        ``tier_change`` entry each), then the next review day, in ONE transaction with the
        account (version-conditioned: a purchase racing it makes one of them start over) and the
        IDX#TIER marker. Nothing is written when no review is due (a rerun of the same night, an
        index not caught up yet). A member whose program no longer lowers tiers by window loses
        the marker."""

        def attempt() -> dict[str, Any]:
            now = clock.now()
            today = now.date()
            account = self.store.snapshot(tenant_id, member_id).account
            if account is None:
                raise NotFound(f"No member {member_id!r}.", member_id=member_id)
            answer = {"member_id": member_id, "tier": account.tier, "downgrades": 0, "next_review": account.tier_review}
            if account.tier_review is None or account.tier_review > today.isoformat():
                return {**answer, "reviewed": False}
            program = self._program(tenant_id, account.program_id)
            held = rules.tier_named(program, account.tier)
            window = _Window.of(program, account, today)
            steps = window.due(held) if window else []
            draft = _Draft.start(account, [], now)
            _downgrade_entries(
                draft, program, steps, key=f"v{account.version}", created=clock.isoformat(now), actor=TIER_REVIEW_ACTOR
            )
            tier = steps[-1].target.name if steps else account.tier
            uow = self.store.unit_of_work()
            if window is not None:
                window.write_marker(uow)
                fields = window.fields()
            else:  # the program no longer reviews windows
                uow.set_tier_review(account, None)
                fields = {"tier_review": None}
            draft.write(uow, tier=tier, also_set=fields)
            _commit(uow)
            changes = {"tier": tier, "downgrades": len(steps), "next_review": fields["tier_review"]}
            return {**answer, "reviewed": True, **changes}

        return self._retrying(attempt)

    # ------------------------------------------------------------------- burning
    def burn(self, tenant_id: str, member_id: str, up_to: burning.Night) -> dict[str, Any]:
        """Burn the member's points due by the night of ``up_to`` (``loyalty.burning.burn``)."""
        return burning.burn(self, tenant_id, member_id, up_to)

    # ------------------------------------------------------------------- reads
    @_retried
    def balance_view(self, tenant_id: str, member_id: str) -> dict[str, Any]:
        now = clock.now()
        snapshot = self.store.snapshot(tenant_id, member_id)
        account = self._account(snapshot.account, member_id)
        lots = self.store.lots(tenant_id, member_id)
        program = self._program(tenant_id, account.program_id)
        # Carried lot debt is owed by the earliest lots; under the inactivity policy every point
        # burns on the member's due date (its marker, read only then).
        upcoming = rules.upcoming_burns(
            program,
            [(lot.burn_date, lot.remaining) for lot in lots],
            burning.inactivity_due(self, program, account),
            account.lot_debt,
        )
        return {
            "balance": account.balance,
            "held": account.held(now),
            "available": account.available(now),
            "lifetime_earned": account.lifetime_earned,
            "tier": account.tier,
            "next_expiry": upcoming[0] if upcoming else None,
            "tier_progress": self._progress(tenant_id, account, program),
        }

    def _progress(self, tenant_id: str, account: Account, program: Program | None = None) -> dict[str, Any] | None:
        program = program or self._program(tenant_id, account.program_id)
        window = _Window.of(program, account, clock.now().date())
        progress = rules.tier_progress(
            program,
            account.tier,
            lifetime_spend=account.lifetime_spend,
            purchases=account.purchases,
            window_spend=window.spend() if window else None,
        )
        if progress is None:
            return None
        remaining, name = progress["remaining"], progress["next_tier"]
        if program.tier_basis is TierBasis.PURCHASE_COUNT:
            message = f"make {remaining} more purchase{'s' if remaining != 1 else ''} to reach {name}"
        else:
            message = f"spend {currency.format_amount(remaining, program.currency)} more to reach {name}"
        return {**progress, "message": message}

    @_retried
    def entries(self, tenant_id: str, member_id: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
        if self.store.snapshot(tenant_id, member_id).account is None:
            raise NotFound(f"No member {member_id!r}.", member_id=member_id)
        before = decode_cursor(cursor, member_id) if cursor else None
        page, next_seq = self.store.entries(tenant_id, member_id, limit=limit, before_seq=before)
        return {"entries": page, "next_cursor": encode_cursor(next_seq, member_id) if next_seq else None}


def hold_id_for(tenant_id: str, member_id: str, order_id: str, seq: int) -> str:
    """The id of an order's ``seq``-th hold (0 for the first): the same request names the same hold."""
    parts = (tenant_id, member_id, order_id) if seq == 0 else (tenant_id, member_id, order_id, str(seq))
    return keys.stable_id("hold", *parts)


def encode_cursor(seq: int, member_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"m": member_id, "s": seq}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, member_id: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["m"] != member_id or not isinstance(data["s"], int) or data["s"] < 1:
            raise ValueError
        return data["s"]
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidRequest("cursor is not one this endpoint returned; start without it.", field="cursor") from error


def check_invariant(store: LedgerStore, tenant_id: str, member_id: str) -> dict[str, int]:
    """Prove ``balance == sum(entries) == sum(open lots) - lot_debt`` for one member.

    Also proves that every entry's ``balance_after`` chains from the one before and that
    ``available`` is not negative. Returns the figures; raises AssertionError when they disagree.
    """
    account = store.snapshot(tenant_id, member_id).account
    if account is None:
        raise NotFound(f"No member {member_id!r}.")
    running, chained = 0, True
    for entry in store.all_entries(tenant_id, member_id):
        running += entry.points
        chained = chained and entry.balance_after == running
    open_lots = store.lots(tenant_id, member_id)
    lots = sum(lot.remaining for lot in open_lots)
    now = clock.now()
    figures = {
        "balance": account.balance,
        "entries": running,
        "lots": lots,
        "lot_debt": account.lot_debt,
        "available": account.available(now),
    }
    balanced = account.balance == running == lots - account.lot_debt
    if not (balanced and chained and figures["available"] >= 0 and all(lot.remaining > 0 for lot in open_lots)):
        raise AssertionError(f"ledger out of balance for {member_id}: {figures}, entries chained: {chained}")
    marker = store.tier_review_marker(tenant_id, member_id)
    if marker != account.tier_review:
        raise AssertionError(f"tier review of {member_id}: the account says {account.tier_review}, gsi1 {marker}")
    return figures
