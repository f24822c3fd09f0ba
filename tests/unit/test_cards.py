"""Cards: the Luhn check digit (property-based), and the card service against moto in process,
where a crash can be put between any two steps of a hand-over.

Every number the engine issues validates; any single mistyped digit and any swap of two
neighbouring digits of it fails the check. Luhn alone misses one swap, 09 <-> 90: the engine never
issues a number with a 0 next to a 9, so the property holds for every issued number.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty import cards as card_rules
from loyalty.admin import DEMO_WELCOME_BONUS, create_tenant, demo_program
from loyalty.cards import Cards
from loyalty.errors import Conflict, Forbidden, InvalidRequest, NotFound
from loyalty.ledger import Ledger, check_invariant
from loyalty.members import Stores, enrol
from loyalty.models import Actor, Profile, Role
from loyalty.store.cards import CardStore
from loyalty.store.config import ConfigStore
from loyalty.store.ledger import LedgerStore
from tests.support.aws import create_tables, dynamodb_client, moto_server
from tests.support.faults import Fault, FaultyClient
from tests.support.programs import without_one_off_bonuses

# ---------------------------------------------------------------------------- the check digit

prefixes = st.text(alphabet="0123456789", min_size=0, max_size=card_rules.MAX_PREFIX_LENGTH).filter(
    lambda prefix: not card_rules.has_blind_pair(prefix)
)


# A seeded PRNG rather than Hypothesis' own random source: ``generate`` redraws a number with a
# 0 next to a 9, which a shrunk source (all zeros) would offer forever.
seeds = st.integers(min_value=0, max_value=2**64)


@st.composite
def issued_numbers(draw: st.DrawFn) -> str:
    prefix = draw(prefixes)
    return card_rules.generate(prefix, randbelow=random.Random(draw(seeds)).randrange)


@pytest.mark.parametrize(
    ("payload", "digit"),
    [("7992739871", "3"), ("411111111111111", "1"), ("0", "0"), ("5", "9"), ("37828224631000", "5")],
)
def test_check_digit_of_known_numbers(payload: str, digit: str) -> None:
    assert card_rules.check_digit(payload) == digit
    assert card_rules.is_valid(payload + digit)


@given(prefix=prefixes, seed=seeds)
def test_every_issued_number_validates(prefix: str, seed: int) -> None:
    number = card_rules.generate(prefix, randbelow=random.Random(seed).randrange)
    assert len(number) == card_rules.NUMBER_LENGTH and number.isascii() and number.isdigit()
    assert number.startswith(prefix)
    assert prefix or number[0] != "0"  # no leading 0 unless the tenant chose one
    assert card_rules.is_valid(number)
    assert not card_rules.has_blind_pair(number)
    card_rules.check_number(number)  # no exception


@settings(max_examples=300, deadline=None)
@given(number=issued_numbers(), data=st.data())
def test_any_single_digit_change_is_caught(number: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(number) - 1))
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    typo = number[:position] + digit + number[position + 1 :]
    assert not card_rules.is_valid(typo)


@settings(deadline=None)  # timing: CI machines are slow and busy
@given(number=issued_numbers())
def test_every_single_digit_change_of_a_number_is_caught(number: str) -> None:
    for position in range(len(number)):
        for digit in "0123456789":
            if digit != number[position]:
                assert not card_rules.is_valid(number[:position] + digit + number[position + 1 :])


@settings(deadline=None)  # timing: CI machines are slow and busy
@given(number=issued_numbers())
def test_any_adjacent_transposition_is_caught(number: str) -> None:
    for position in range(len(number) - 1):
        a, b = number[position], number[position + 1]
        if a == b:
            continue  # swapping equal digits changes nothing
        swapped = number[:position] + b + a + number[position + 2 :]
        assert not card_rules.is_valid(swapped), (number, position)


def test_luhns_one_blind_spot_is_why_no_number_holds_09_or_90() -> None:
    body = "1234567" + "09" + "123456"
    number = body + card_rules.check_digit(body)
    swapped = number.replace("09", "90", 1)
    assert card_rules.is_valid(number) and card_rules.is_valid(swapped)  # Luhn cannot tell them apart
    assert card_rules.has_blind_pair(number)


def test_generate_draws_again_rather_than_issue_a_blind_pair() -> None:
    # A source that offers a 0 next to a 9 first, then only ones.
    digits = iter([0, 8, 9] + [0] * 12 + [1] * 100)  # 1, 8, 9, 0... then 1, 1, 1...
    number = card_rules.generate("", randbelow=lambda bound: next(digits) % bound)
    assert card_rules.is_valid(number) and not card_rules.has_blind_pair(number)


@pytest.mark.parametrize(
    "number",
    [
        "",
        "4",
        "4111111111111112",
        "411111111111111a",
        "\u0664111111111111111",  # ARABIC-INDIC DIGIT FOUR: a digit to str.isdigit, not to us
        "\uff14111111111111111",  # FULLWIDTH DIGIT FOUR
        " 4111111111111111",
    ],
)
def test_a_number_that_fails_the_check_is_invalid(number: str) -> None:
    assert not card_rules.is_valid(number)
    with pytest.raises(InvalidRequest) as refused:
        card_rules.check_number(number)
    assert refused.value.extra["field"] == "path:number"


@pytest.mark.parametrize("prefix", ["09", "1290", "123456789", "12a", "٤٤"])
def test_a_prefix_that_would_break_the_guarantee_is_refused(prefix: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        card_rules.check_prefix(prefix)
    assert refused.value.extra["field"] == "prefix"


# ---------------------------------------------------------------------------- the service over moto
TENANT = "demo"
# The demo program: a member starts with its welcome bonus. The hand-over program is the demo
# program with hand-overs allowed and without one-off bonuses: a member holds what the test gave it.
WELCOME = DEMO_WELCOME_BONUS
HANDOVER_PROGRAM = "handover"


class Crash(Exception):
    """The function died: nothing retries it but the client's next request."""


class FailAfterWrite:
    """A DynamoDB client whose ``nth`` TransactWriteItems reaches the server, then the caller gets
    ``error()``: a ``Crash`` (the function died) or a lost response (a retryable read timeout)."""

    def __init__(self, client: Any, nth: int, error: Any = Crash) -> None:
        self._client, self.nth, self.error, self.writes = client, nth, error, 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name != "transact_write_items":
            return attribute

        def write(**kwargs: Any) -> Any:
            answer = attribute(**kwargs)
            self.writes += 1
            if self.writes == self.nth:
                raise self.error()
            return answer

        return write


def lost_response() -> Exception:
    return ReadTimeoutError(endpoint_url="http://moto")


@pytest.fixture(scope="module")
def aws() -> Iterator[tuple[Any, dict[str, str]]]:
    with moto_server() as endpoint:
        client = dynamodb_client(endpoint)
        tables = create_tables(client)
        config = ConfigStore(tables["ConfigTable"], client)
        create_tenant(config, TENANT, demo_program(TENANT), name="Demo shop")
        handover = without_one_off_bonuses(demo_program(TENANT), program_id=HANDOVER_PROGRAM, allow_card_handover=True)
        config.put_program(handover)
        yield client, tables


def service(client: Any, tables: dict[str, str]) -> tuple[Cards, Stores]:
    stores = Stores(
        ledger=LedgerStore(tables["LedgerTable"], client), config=ConfigStore(tables["ConfigTable"], client)
    )
    return Cards(stores, CardStore(tables["LedgerTable"], client)), stores


ADMIN = Actor(tenant_id=TENANT, key_id="key_admin", role=Role.ADMIN)
MANAGER = Actor(tenant_id=TENANT, key_id="key_manager", role=Role.MANAGER)


def member(stores: Stores, program_id: str = "") -> str:
    member_id = f"m-{uuid.uuid4().hex[:10]}"
    enrol(stores, TENANT, member_id, Profile(program_id=program_id))
    return member_id


def buy(stores: Stores, member_id: str, amount: int = 1_000_000) -> None:
    Ledger(stores).accrue(
        ADMIN, member_id, order_id=uuid.uuid4().hex, amount=amount, currency_code="RUB", occurred_at=None
    )


def test_accrual_and_redemption_by_card_book_on_the_member_and_name_the_card(aws) -> None:
    cards, stores = service(*aws)
    member_id = member(stores)
    card = cards.issue(MANAGER, kind="physical", member_id=member_id)
    accrued, _ = cards.accrue(
        ADMIN, card.card_number, order_id="o-1", amount=1_000_000, currency_code="RUB", occurred_at=None
    )
    redeemed, _ = cards.redeem(
        ADMIN, card.card_number, order_id="o-2", points=100, order_amount=1_000_000, currency_code="RUB"
    )
    assert (accrued["points"], redeemed["balance"]) == (300, WELCOME + 200)
    assert check_invariant(stores.ledger, TENANT, member_id)["balance"] == WELCOME + 200
    welcome, *by_card = stores.ledger.all_entries(TENANT, member_id)
    assert (welcome.type, welcome.points, welcome.details) == ("welcome_bonus", WELCOME, None)  # not by card
    details = [entry.details for entry in by_card]
    assert len(details) == 2
    assert all(d and d["card_number"] == card.card_number and "test" not in d for d in details)


def test_a_test_card_flags_its_entries_and_needs_cards_admin(aws) -> None:
    cards, stores = service(*aws)
    member_id = member(stores)
    with pytest.raises(Forbidden):
        cards.issue(MANAGER, kind="virtual", member_id=member_id, test=True)
    card = cards.issue(ADMIN, kind="virtual", member_id=member_id, test=True)
    assert card.test
    cards.accrue(ADMIN, card.card_number, order_id="t-1", amount=100_000, currency_code="RUB", occurred_at=None)
    welcome, entry = stores.ledger.all_entries(TENANT, member_id)
    assert (welcome.type, welcome.details) == ("welcome_bonus", None)  # booked at enrolment: not a test entry
    assert entry.details == {
        "amount": 100_000,
        "currency": "RUB",
        "tier": "Silver",
        "card_number": card.card_number,
    } | {"test": True}


def test_a_lost_response_on_every_write_books_each_card_change_once(aws) -> None:
    client, tables = aws
    faulty = FaultyClient(client)
    cards, stores = service(faulty, tables)
    giver, receiver = member(stores, HANDOVER_PROGRAM), member(stores, HANDOVER_PROGRAM)
    buy(stores, giver)
    before = len(client.scan(TableName=tables["LedgerTable"])["Items"])
    faulty.fail_next("TransactWriteItems", Fault.LOST_RESPONSE)
    card = cards.issue(ADMIN, kind="virtual")
    assert cards.get(TENANT, card.card_number) == card
    after_issue = len(client.scan(TableName=tables["LedgerTable"])["Items"])
    assert after_issue == before + 2  # the card and its audit record, once
    faulty.fail_next("TransactWriteItems", Fault.LOST_RESPONSE)
    assert cards.link(ADMIN, card.card_number, giver).member_id == giver
    faulty.fail_next("TransactWriteItems", Fault.LOST_RESPONSE)
    sold = cards.sell(ADMIN, card.card_number, price=50_000, currency_code="RUB")
    assert sold.sale is not None and sold.sale.price == 50_000
    faulty.fail_next("TransactWriteItems", Fault.LOST_RESPONSE)
    done = cards.handover(ADMIN, card.card_number, to_member_id=receiver, transfer_id="lost-1")
    assert done["points"] == 300 and done["card"].member_id == receiver and done["card"].pending_handover is None
    assert check_invariant(stores.ledger, TENANT, giver)["balance"] == 0
    assert check_invariant(stores.ledger, TENANT, receiver)["balance"] == 300
    faulty.fail_next("TransactWriteItems", Fault.LOST_RESPONSE)
    blocked, new = cards.replace(ADMIN, card.card_number)
    assert cards.replace(ADMIN, card.card_number) == (blocked, new)
    assert (blocked.status, blocked.replaced_by, new.member_id, new.replaces) == (
        "blocked",
        new.card_number,
        receiver,
        card.card_number,
    )


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_a_handover_that_crashed_between_its_steps_finishes_on_retry_and_moves_points_once(aws, crash_after) -> None:
    """Write 1 relinks the card with the intent, write 2 moves the points, write 3 marks it done."""
    client, tables = aws
    cards, stores = service(client, tables)
    giver, receiver = member(stores, HANDOVER_PROGRAM), member(stores, HANDOVER_PROGRAM)
    buy(stores, giver)
    buy(stores, receiver, 100_000)  # 30 points of its own
    card = cards.issue(ADMIN, kind="physical", member_id=giver)
    crashing, _ = service(FailAfterWrite(client, crash_after), tables)
    with pytest.raises(Crash):
        crashing.handover(ADMIN, card.card_number, to_member_id=receiver, transfer_id="crash-1")
    halfway = cards.get(TENANT, card.card_number)
    assert halfway.member_id == receiver
    assert halfway.pending_handover == ("crash-1" if crash_after < 3 else None)
    if crash_after < 3:  # another hand-over waits for this one; the same one finishes it
        with pytest.raises(Conflict):
            cards.handover(ADMIN, card.card_number, to_member_id=giver, transfer_id="crash-2")
    first = cards.handover(ADMIN, card.card_number, to_member_id=receiver, transfer_id="crash-1")
    again = cards.handover(ADMIN, card.card_number, to_member_id=receiver, transfer_id="crash-1")
    assert first == again and first["points"] == 300 and first["card"].pending_handover is None
    assert check_invariant(stores.ledger, TENANT, giver)["balance"] == 0
    assert check_invariant(stores.ledger, TENANT, receiver)["balance"] == 330
    kinds = [entry.type for entry in stores.ledger.all_entries(TENANT, receiver)]
    assert kinds.count("transfer_in") == 1
    with pytest.raises(Conflict):  # the same transfer_id for another receiver
        cards.handover(ADMIN, card.card_number, to_member_id=giver, transfer_id="crash-1")


@pytest.mark.parametrize("lost", [1, 2, 3])
def test_a_lost_response_at_any_step_of_a_handover_is_retried_within_the_request(aws, lost) -> None:
    client, tables = aws
    cards, stores = service(client, tables)
    giver, receiver = member(stores, HANDOVER_PROGRAM), member(stores, HANDOVER_PROGRAM)
    buy(stores, giver)
    card = cards.issue(ADMIN, kind="physical", member_id=giver)
    flaky, _ = service(FailAfterWrite(client, lost, lost_response), tables)
    done = flaky.handover(ADMIN, card.card_number, to_member_id=receiver, transfer_id="flaky-1")
    assert done == cards.handover(ADMIN, card.card_number, to_member_id=receiver, transfer_id="flaky-1")
    assert done["points"] == 300 and done["card"].pending_handover is None
    assert check_invariant(stores.ledger, TENANT, receiver)["balance"] == 300
    assert check_invariant(stores.ledger, TENANT, giver)["balance"] == 0


def test_a_handover_when_the_program_disallows_it_changes_nothing(aws) -> None:
    cards, stores = service(*aws)
    giver, receiver = member(stores), member(stores)  # the demo program: no hand-over
    buy(stores, giver)
    card = cards.issue(ADMIN, kind="physical", member_id=giver)
    with pytest.raises(Conflict) as refused:
        cards.handover(ADMIN, card.card_number, to_member_id=receiver, transfer_id="no-1")
    assert "does not allow" in refused.value.detail
    assert cards.get(TENANT, card.card_number) == card
    assert check_invariant(stores.ledger, TENANT, giver)["balance"] == WELCOME + 300


def test_a_handover_of_a_giver_without_points_moves_nothing(aws) -> None:
    cards, stores = service(*aws)
    giver, receiver = member(stores, HANDOVER_PROGRAM), member(stores, HANDOVER_PROGRAM)
    card = cards.issue(ADMIN, kind="virtual", member_id=giver)
    done = cards.handover(ADMIN, card.card_number, to_member_id=receiver, transfer_id="empty-1")
    assert (done["points"], done["entry_id"], done["card"].member_id) == (0, None, receiver)
    assert stores.ledger.all_entries(TENANT, giver) == [] == stores.ledger.all_entries(TENANT, receiver)


def test_unlinked_blocked_unknown_cards_and_members_are_refused(aws) -> None:
    cards, stores = service(*aws)
    member_id = member(stores)
    card = cards.issue(ADMIN, kind="virtual")
    with pytest.raises(Conflict) as unlinked:
        cards.accrue(ADMIN, card.card_number, order_id="u-1", amount=100, currency_code="RUB", occurred_at=None)
    assert "link it first" in unlinked.value.detail
    with pytest.raises(NotFound):
        cards.link(ADMIN, card.card_number, "nobody-here")
    with pytest.raises(NotFound):
        cards.issue(ADMIN, kind="virtual", member_id="nobody-here")
    with pytest.raises(NotFound):
        cards.get(TENANT, card_rules.generate())
    with pytest.raises(NotFound):  # another tenant's keys never find it
        cards.get("other", card.card_number)
    cards.link(ADMIN, card.card_number, member_id)
    assert cards.link(ADMIN, card.card_number, member_id).member_id == member_id
    with pytest.raises(Conflict):
        cards.link(ADMIN, card.card_number, member(stores))
    _, new = cards.replace(ADMIN, card.card_number)
    with pytest.raises(Conflict) as blocked:
        cards.redeem(ADMIN, card.card_number, order_id="b-1", points=1, order_amount=100_000, currency_code="RUB")
    assert blocked.value.extra["replaced_by"] == new.card_number
    with pytest.raises(InvalidRequest):
        cards.issue(ADMIN, kind="plastic")
    with pytest.raises(InvalidRequest):
        cards.sell(ADMIN, new.card_number, price=1, currency_code="XXX")
    with pytest.raises(Conflict):
        cards.sell(ADMIN, card.card_number, price=1, currency_code="RUB")  # blocked


def test_a_prefix_starts_every_number_and_numbers_are_unique(aws) -> None:
    cards, _ = service(*aws)
    numbers = {cards.issue(ADMIN, kind="virtual", prefix="7788").card_number for _ in range(20)}
    assert len(numbers) == 20 and all(n.startswith("7788") and card_rules.is_valid(n) for n in numbers)


def test_a_number_clash_draws_another_number(aws, monkeypatch) -> None:
    cards, _ = service(*aws)
    taken = cards.issue(ADMIN, kind="virtual").card_number
    fresh = card_rules.generate()
    offered = iter([taken, fresh])
    monkeypatch.setattr(card_rules, "generate", lambda prefix="": next(offered))
    assert cards.issue(ADMIN, kind="physical").card_number == fresh
