"""Random interleavings of every ledger operation against an in-memory reference model.

The model is written from the rules as the API promises them, independently of the engine's
code; after every step the response must match the model, and every member must satisfy
``balance == sum(entries) == sum(open lots)`` with nothing negative. The program is the demo
program: a member starts with its welcome bonus (booked with the enrolment, a lot like any other).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from loyalty import errors
from loyalty.admin import demo_program
from loyalty.ledger import check_invariant, hold_id_for
from loyalty.members import enrol
from loyalty.models import Profile
from loyalty.store import keys

PROGRAM = demo_program()
MEMBERS = ["ann", "bob", "cid"]
ORDERS = [f"o{i}" for i in range(6)]
IDS = [f"k{i}" for i in range(5)]


def tier_bp(spend: int) -> int:
    bp = 0
    for tier in PROGRAM.tiers:
        if spend >= tier.threshold:
            bp = tier.accrual_bp
    return bp


def share(total: int, part: int, whole: int) -> int:
    return total * min(part, whole) // whole


@dataclass
class ModelOrder:
    amount: int | None = None
    order_amount: int | None = None
    earned: int = 0
    spent: int = 0
    refunded: int = 0
    reversed_due: int = 0
    returned: int = 0

    @property
    def base(self) -> int | None:
        return self.amount if self.amount is not None else self.order_amount


@dataclass
class ModelHold:
    member: str
    order: str
    points: int
    order_amount: int
    expires: float
    status: str = "open"
    first: dict | None = None


@dataclass
class ModelMember:
    balance: int = 0
    spend: int = 0
    reached_bp: int = PROGRAM.tiers[0].accrual_bp  # the accrual rate of the highest tier reached
    orders: dict[str, ModelOrder] = field(default_factory=dict)
    guards: dict[tuple[str, str], tuple[tuple, dict]] = field(default_factory=dict)


class LedgerMachine(RuleBasedStateMachine):
    world = None  # set by the test

    @initialize()
    def start(self):
        self.members: dict[str, ModelMember] = {}
        self.holds: dict[str, ModelHold] = {}
        self.hold_seq: dict[tuple[str, str], int] = {}
        self.tenant = self.world.actor.tenant_id
        self.prefix = keys.stable_id("run", str(id(self)), str(self.world.clock.now()), length=8)

    # ------------------------------------------------------------------ helpers
    def mid(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def now(self) -> float:
        return self.world.clock.now().timestamp()

    def live_held(self, name: str) -> int:
        return sum(
            h.points for h in self.holds.values() if h.member == name and h.status == "open" and h.expires > self.now()
        )

    def available(self, name: str) -> int:
        return self.members[name].balance - self.live_held(name)

    def expect(self, call, error: type[errors.DomainError] | None):
        if error is None:
            return call()
        with pytest.raises(error):
            call()
        return None

    def order_of(self, name: str, order: str) -> ModelOrder:
        return self.members[name].orders.setdefault(order, ModelOrder())

    def replayed(self, name: str, kind: str, key: str, shape: tuple, call) -> bool:
        """A guarded key seen before: same data -> the first result again; other data -> 409."""
        seen = self.members[name].guards.get((kind, key))
        if seen is None:
            return False
        if seen[0] == shape:
            assert call() == seen[1]
        else:
            self.expect(call, errors.Conflict)
        return True

    # ------------------------------------------------------------------ rules
    @rule(name=st.sampled_from(MEMBERS))
    def enrol(self, name):
        member, created = enrol(self.world.stores, self.tenant, self.mid(name), Profile())
        assert created == (name not in self.members)
        assert member.member_id == self.mid(name)
        if created:  # the welcome bonus comes once, with the enrolment
            assert member.balance.balance == PROGRAM.welcome_bonus > 0
        self.members.setdefault(name, ModelMember(balance=PROGRAM.welcome_bonus))

    @rule(name=st.sampled_from(MEMBERS), order=st.sampled_from(ORDERS), amount=st.integers(1, 3_000_000))
    def purchase(self, name, order, amount):
        def call():
            return self.world.ledger.accrue(
                self.world.actor, self.mid(name), order_id=order, amount=amount, currency_code="RUB", occurred_at=None
            )

        if name not in self.members:
            return self.expect(call, errors.NotFound)
        if self.replayed(name, "purchase", order, (amount,), call):
            return None
        m = self.members[name]
        points = amount * m.reached_bp // (10_000 * PROGRAM.point_value)
        result = call()
        m.balance += points
        m.spend += amount
        m.reached_bp = max(m.reached_bp, tier_bp(m.spend))  # an upgrade is at once; a refund never lowers it
        o = self.order_of(name, order)
        o.amount, o.earned = amount, points
        assert (result["points"], result["balance"]) == (points, m.balance)
        m.guards[("purchase", order)] = ((amount,), result)
        return None

    def _spend_error(self, name, order, points, order_amount, held_for_order=0):
        cap = order_amount * PROGRAM.max_redeem_share_bp // 10_000 // PROGRAM.point_value
        cap -= self.order_of(name, order).spent + held_for_order
        if points > cap:
            return errors.Conflict
        if points > self.available(name):
            return errors.InsufficientPoints
        return None

    @rule(
        name=st.sampled_from(MEMBERS),
        order=st.sampled_from(ORDERS),
        points=st.integers(1, 400),
        order_amount=st.integers(1, 500_000),
    )
    def hold(self, name, order, points, order_amount):
        seq = self.hold_seq.get((name, order), 0)
        hold_id = hold_id_for(self.tenant, self.mid(name), order, seq)

        def call():
            return self.world.ledger.hold(
                self.world.actor,
                self.mid(name),
                order_id=order,
                points=points,
                order_amount=order_amount,
                currency_code="RUB",
            )[0]

        if name not in self.members:
            return self.expect(call, errors.NotFound)
        existing = self.holds.get(hold_id)
        if existing is not None:
            # The order's current hold answers while open or once captured; a released or
            # expired one may be followed by a new hold for the same order, under the next id.
            if existing.status == "captured" or (existing.status == "open" and existing.expires > self.now()):
                if (existing.points, existing.order_amount) == (points, order_amount):
                    assert call() == existing.first
                else:
                    self.expect(call, errors.Conflict)
                return None
            seq += 1
            hold_id = hold_id_for(self.tenant, self.mid(name), order, seq)
        error = self._spend_error(name, order, points, order_amount)
        if error:
            return self.expect(call, error)
        result = call()
        self.hold_seq[(name, order)] = seq
        o = self.order_of(name, order)
        if o.base is None:
            o.order_amount = order_amount
        self.holds[hold_id] = ModelHold(name, order, points, order_amount, self.now() + 15 * 60, first=result)
        assert result["hold_id"] == hold_id and result["points"] == points
        return None

    @rule(data=st.data())
    def capture(self, data):
        if not self.holds:
            return
        hold_id = data.draw(st.sampled_from(sorted(self.holds)))
        h = self.holds[hold_id]

        def call():
            return self.world.ledger.capture(self.world.actor, hold_id)

        if h.status == "captured":
            assert call()["status"] == "captured"
        elif h.status == "released" or h.expires <= self.now():
            self.expect(call, errors.Conflict)
        else:
            result = call()
            h.status = "captured"
            h.first = result  # what a repeat of the hold request answers from now on
            m = self.members[h.member]
            m.balance -= h.points
            o = self.order_of(h.member, h.order)
            o.spent += h.points
            if o.base is None:
                o.order_amount = h.order_amount
            assert result["balance"] == m.balance

    @rule(data=st.data())
    def release(self, data):
        if not self.holds:
            return
        hold_id = data.draw(st.sampled_from(sorted(self.holds)))
        h = self.holds[hold_id]

        def call():
            return self.world.ledger.release(self.world.actor, hold_id)

        if h.status == "captured":
            self.expect(call, errors.Conflict)
        else:
            assert call()["status"] == "released"
            h.status = "released"

    @rule(
        name=st.sampled_from(MEMBERS),
        order=st.sampled_from(ORDERS),
        points=st.integers(1, 400),
        order_amount=st.integers(1, 500_000),
    )
    def redeem(self, name, order, points, order_amount):
        def call():
            return self.world.ledger.redeem(
                self.world.actor,
                self.mid(name),
                order_id=order,
                points=points,
                order_amount=order_amount,
                currency_code="RUB",
            )

        if name not in self.members:
            return self.expect(call, errors.NotFound)
        if self.replayed(name, "redeem", order, (points, order_amount), call):
            return None
        hold_id = keys.stable_id("hold", self.tenant, self.mid(name), order)
        h = self.holds.get(hold_id)
        held = h.points if h and h.status == "open" and h.expires > self.now() else 0
        error = self._spend_error(name, order, points, order_amount, held)
        if error:
            return self.expect(call, error)
        result = call()
        m = self.members[name]
        m.balance -= points
        o = self.order_of(name, order)
        o.spent += points
        if o.base is None:
            o.order_amount = order_amount
        assert result["balance"] == m.balance
        m.guards[("redeem", order)] = ((points, order_amount), result)
        return None

    @rule(
        name=st.sampled_from(MEMBERS),
        refund=st.sampled_from(IDS),
        order=st.sampled_from(ORDERS),
        amount=st.integers(1, 3_000_000),
    )
    def refund(self, name, refund, order, amount):
        def call():
            return self.world.ledger.refund(
                self.world.actor, self.mid(name), refund_id=refund, order_id=order, amount=amount
            )

        if name not in self.members:
            return self.expect(call, errors.NotFound)
        if self.replayed(name, "refund", refund, (order, amount), call):
            return None
        o = self.members[name].orders.get(order)
        if o is None or o.base is None:
            return self.expect(call, errors.NotFound)
        if o.refunded + amount > o.base:
            return self.expect(call, errors.Conflict)
        m = self.members[name]
        refunded = o.refunded + amount
        due = share(o.earned, refunded, o.base)
        back = share(o.spent, refunded, o.base)
        take, give = due - o.reversed_due, back - o.returned
        recovered = max(0, min(take, m.balance + give - self.live_held(name)))
        result = call()
        m.balance += give - recovered
        if o.amount is not None:
            m.spend = max(0, m.spend - amount)
        o.refunded, o.reversed_due, o.returned = refunded, due, back
        assert (result["points_returned"], result["points_taken_back"], result["points_unrecovered"]) == (
            give,
            recovered,
            take - recovered,
        )
        assert result["balance"] == m.balance
        m.guards[("refund", refund)] = ((order, amount), result)
        return None

    @rule(
        name=st.sampled_from(MEMBERS), key=st.sampled_from(IDS), points=st.integers(-300, 300).filter(lambda p: p != 0)
    )
    def adjust(self, name, key, points):
        def call():
            return self.world.ledger.adjust(
                self.world.actor, self.mid(name), adjustment_id=key, points=points, reason="stateful test"
            )

        if name not in self.members:
            return self.expect(call, errors.NotFound)
        if self.replayed(name, "adjust", key, (points,), call):
            return None
        if -points > self.available(name):
            return self.expect(call, errors.InsufficientPoints)
        result = call()
        self.members[name].balance += points
        assert result["balance"] == self.members[name].balance
        self.members[name].guards[("adjust", key)] = ((points,), result)
        return None

    @rule(
        name=st.sampled_from(MEMBERS), to=st.sampled_from(MEMBERS), key=st.sampled_from(IDS), points=st.integers(1, 300)
    )
    def transfer(self, name, to, key, points):
        def call():
            return self.world.ledger.transfer(
                self.world.actor, self.mid(name), transfer_id=key, to_member_id=self.mid(to), points=points
            )

        if name == to:
            return self.expect(call, errors.InvalidRequest)
        if name not in self.members:
            return self.expect(call, errors.NotFound)
        if self.replayed(name, "transfer", key, (to, points), call):
            return None
        if to not in self.members:
            return self.expect(call, errors.NotFound)
        if points > self.available(name):
            return self.expect(call, errors.InsufficientPoints)
        result = call()
        self.members[name].balance -= points
        self.members[to].balance += points
        assert result["balance"] == self.members[name].balance
        self.members[name].guards[("transfer", key)] = ((to, points), result)
        return None

    @rule(minutes=st.sampled_from([1, 10, 20, 60 * 24]))
    def advance(self, minutes):
        self.world.clock.advance(minutes=minutes)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def books_balance(self):
        if not hasattr(self, "members"):
            return
        for name, model in self.members.items():
            figures = check_invariant(self.world.stores.ledger, self.tenant, self.mid(name))
            assert figures["balance"] == model.balance, (name, figures, model.balance)
            assert figures["available"] == self.available(name), (name, figures)


@dataclass
class _Wired:
    stores: object
    ledger: object
    actor: object
    clock: object


def test_random_interleavings_match_the_model(world, fake_clock):
    LedgerMachine.world = _Wired(world.stores, world.ledger, world.actor, fake_clock)
    runner = settings(max_examples=25, stateful_step_count=35, deadline=None, suppress_health_check=list(HealthCheck))(
        LedgerMachine
    )
    runner.TestCase().runTest()
