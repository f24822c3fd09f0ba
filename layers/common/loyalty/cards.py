"""Loyalty cards: numbers with a Luhn check digit; issue, link, look up, sell, replace, hand over;
accrual and redemption by card.

A card is a way to name a member at the till, nothing more: the balance stays with the member
(the ledger is per member), so a card's points are its member's points. Hence:

* accrual and redemption by card resolve the card to its member and run the SAME ledger
  operation (``Ledger.accrue``/``Ledger.redeem``); the entries they write carry the card number
  (and ``test: true`` for a test card) in their ``details``;
* replacing a lost card blocks it and issues a new one linked to the same member: "moving the
  card's balance" is a no-op by construction, the balance never was on the card;
* handing a card to another member (when the program allows it) relinks the card and moves the
  giver's available points with ``Ledger.transfer`` (``transfer_out``/``transfer_in``, exactly
  once by ``transfer_id``). The relink is written first, together with the hand-over's intent
  (``pending``) on the card; then the points move; then the intent is marked ``done`` with the
  result. A retry with the same ``transfer_id`` finishes a pending hand-over or answers the done
  one; a crash between the steps leaves a pending intent that names exactly what is left to do.

Numbers: ``NUMBER_LENGTH`` digits, an optional prefix, random digits and a Luhn check digit.
Luhn catches every single-digit error and every adjacent transposition except 09 <-> 90, so the
engine never issues a number with a 0 next to a 9 (and refuses such a prefix): for every number
it issues, a mistyped digit or two swapped neighbours fail the check (a 422 before any lookup).
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from loyalty import access, clock, currency
from loyalty.access import Permission
from loyalty.companies import Buyers
from loyalty.errors import Conflict, InvalidRequest, NotFound
from loyalty.ledger import Ledger
from loyalty.members import Stores, get, program_of
from loyalty.models import Actor, Member
from loyalty.store import audit, dynamo
from loyalty.store.cards import Card, CardStore, Handover, Sale
from loyalty.store.ledger import LedgerStore, UnitOfWork
from loyalty.store.ledger_models import Entry

T = TypeVar("T")

NUMBER_LENGTH = 16
MAX_PREFIX_LENGTH = 8
KINDS = ("virtual", "physical")
MAX_PRICE = 10**13
_DIGITS = re.compile(r"[0-9]+")
_BLIND_PAIRS = ("09", "90")  # the one adjacent transposition Luhn cannot see


# ------------------------------------------------------------------------------- numbers
def check_digit(payload: str) -> str:
    """The Luhn check digit to append to ``payload`` (ASCII digits)."""
    total = 0
    for position, char in enumerate(reversed(payload)):
        digit = int(char)
        if position % 2 == 0:  # doubled: the check digit will take position 0
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str(-total % 10)


def is_valid(number: str) -> bool:
    """A number of ASCII digits whose last digit is the Luhn check digit of the rest."""
    return len(number) >= 2 and bool(_DIGITS.fullmatch(number)) and check_digit(number[:-1]) == number[-1]


def has_blind_pair(digits: str) -> bool:
    return any(pair in digits for pair in _BLIND_PAIRS)


def check_prefix(prefix: str) -> None:
    if not (_DIGITS.fullmatch(prefix) and len(prefix) <= MAX_PREFIX_LENGTH):
        raise InvalidRequest(f"prefix must be 1 to {MAX_PREFIX_LENGTH} digits.", field="prefix")
    if has_blind_pair(prefix):
        raise InvalidRequest(
            "prefix must not hold a 0 next to a 9: the check digit cannot tell 09 from 90.", field="prefix"
        )


def generate(prefix: str = "", randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """A new number: ``prefix``, random digits, the check digit; never a 0 next to a 9."""
    while True:
        body = prefix
        while len(body) < NUMBER_LENGTH - 1:
            body += str(randbelow(9) + 1 if not body else randbelow(10))  # no leading 0
        number = body + check_digit(body)
        if not has_blind_pair(number):
            return number


def check_number(number: str, field: str = "path:number") -> None:
    """A mistyped number is refused before anything looks it up."""
    if not is_valid(number):
        raise InvalidRequest(
            "This is not a card number: its check digit does not match (a digit mistyped or two swapped?).",
            field=field,
        )


# ------------------------------------------------------------------------------- card-tagged ledger
class _TaggedUnitOfWork(UnitOfWork):
    def __init__(self, table: str, client: Any, tag: dict[str, Any]) -> None:
        super().__init__(table, client)
        self.tag = tag

    def put_entry(self, account: Any, seq: int, entry: Entry) -> None:
        details = {**(entry.details or {}), **self.tag}
        super().put_entry(account, seq, dataclasses.replace(entry, details=details))


class _TaggedLedgerStore(LedgerStore):
    """The ledger store of a card's operation: every entry it writes names the card in ``details``."""

    def __init__(self, base: LedgerStore, tag: dict[str, Any]) -> None:
        super().__init__(base.table, base._client)
        self.tag = tag

    def unit_of_work(self) -> UnitOfWork:
        return _TaggedUnitOfWork(self.table, self.client, self.tag)


def entry_tag(card: Card) -> dict[str, Any]:
    """What an entry made through ``card`` records: the number, and ``test: true`` for a test card."""
    return {"card_number": card.card_number, **({"test": True} if card.test else {})}


# ------------------------------------------------------------------------------- the service
class Cards:
    """The card service for one process; stateless between calls."""

    def __init__(self, stores: Stores, store: CardStore, *, attempts: int = 15) -> None:
        self.stores = stores
        self.store = store
        self.attempts = attempts

    # ------------------------------------------------------------------- plumbing
    def _retrying(self, operation: Callable[[], T]) -> T:
        return dynamo.with_retries(operation, attempts=self.attempts, max_delay=0.25)

    def _write(self, items: list[dict[str, Any]]) -> None:
        """Commit; a failed condition means the card (or number) changed meanwhile: start over."""
        dynamo.retry_if_condition_failed(lambda: self.store.write(items))

    def _audit(self, actor: Actor, action: str, card: Card, ref: str, now: datetime, **details: Any) -> dict[str, Any]:
        record = audit.record(
            actor,
            action,
            ref=f"{card.card_number}/{ref}",
            at=now,
            member_id=card.member_id,
            target=card.card_number,
            details={k: v for k, v in details.items() if v is not None} or None,
        )
        return audit.put_item(self.store.table, actor.tenant_id, record)

    def _card(self, tenant_id: str, number: str) -> Card:
        card = self.store.get(tenant_id, number)
        if card is None:
            raise NotFound(f"No card {number}. Issue one with POST /v1/cards.", card_number=number)
        return card

    def _member_exists(self, tenant_id: str, member_id: str, field: str = "member_id") -> None:
        if self.stores.ledger.snapshot(tenant_id, member_id).account is None:
            raise NotFound(f"No member {member_id!r}. Enrol it with POST /v1/members.", field=field)

    @staticmethod
    def _check_active(card: Card) -> None:
        if card.status != "active":
            instead = f"; use its replacement {card.replaced_by}" if card.replaced_by else ""
            raise Conflict(
                f"Card {card.card_number} is blocked{instead}.",
                card_status=card.status,
                replaced_by=card.replaced_by,
            )

    @classmethod
    def _member_of(cls, card: Card) -> str:
        cls._check_active(card)
        if card.member_id is None:
            raise Conflict(
                f"Card {card.card_number} is not linked to a member; link it first with "
                f"POST /v1/cards/{card.card_number}/link.",
                card_status="unlinked",
            )
        return card.member_id

    def ledger_for(self, card: Card) -> Ledger:
        """A ledger whose entries name ``card`` (and flag a test card)."""
        tagged = Stores(ledger=_TaggedLedgerStore(self.stores.ledger, entry_tag(card)), config=self.stores.config)
        return Ledger(tagged, attempts=self.attempts)

    # ------------------------------------------------------------------- issue, link, read
    def issue(
        self, actor: Actor, *, kind: str, member_id: str | None = None, test: bool = False, prefix: str = ""
    ) -> Card:
        """Issue a card with a new number (unique in the tenant), linked to ``member_id`` if given.

        Flagging a test card is an administrative act: it needs cards:admin besides cards:issue.
        """
        tenant = actor.tenant_id
        if kind not in KINDS:
            raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}.", field="kind")
        if prefix:
            check_prefix(prefix)
        if test:
            policy = self._retrying(lambda: self.stores.config.get_access_policy(tenant))
            access.require(policy, actor, Permission.CARDS_ADMIN)
        issue_id = secrets.token_hex(8)
        numbers = [generate(prefix)]  # the same number again after a lost response, a new one after a clash

        def attempt() -> Card:
            now = clock.now()
            number = numbers[-1]
            existing = self.store.get(tenant, number)
            if existing is not None:
                if existing.issue_id == issue_id:
                    return existing  # ours: the response of the write was lost
                numbers.append(generate(prefix))
                raise dynamo.Retry()
            if member_id is not None:
                self._member_exists(tenant, member_id)
            created = clock.isoformat(now)
            card = Card(
                tenant_id=tenant,
                card_number=number,
                kind=kind,
                status="active",
                issued_at=created,
                issued_by={"key_id": actor.key_id, "role": actor.role.value},
                issue_id=issue_id,
                member_id=member_id,
                linked_at=created if member_id else None,
                test=test,
            )
            audit_item = self._audit(actor, "card.issue", card, "issue", now, kind=kind, test=test or None)
            self._write([self.store.put_new(card), audit_item])
            return card

        return self._retrying(attempt)

    def get(self, tenant_id: str, number: str) -> Card:
        return self._retrying(lambda: self._card(tenant_id, number))

    def link(self, actor: Actor, number: str, member_id: str) -> Card:
        """Link the card to a member. Linking it to its member again answers the card; a card
        linked to another member is a conflict (hand it over instead)."""
        tenant = actor.tenant_id

        def attempt() -> Card:
            now = clock.now()
            card = self._card(tenant, number)
            if card.member_id == member_id:
                return card
            self._check_active(card)
            if card.member_id is not None:
                raise Conflict(
                    f"Card {number} is linked to another member; a card has one member at a time "
                    f"(hand it over with POST /v1/cards/{number}/handover).",
                    card_status="linked",
                )
            self._member_exists(tenant, member_id)
            linked = card.changed(member_id=member_id, linked_at=clock.isoformat(now))
            self._write([self.store.put_changed(card, linked), self._audit(actor, "card.link", linked, member_id, now)])
            return linked

        return self._retrying(attempt)

    # ------------------------------------------------------------------- the ledger by card
    def buyers_for(self, card: Card) -> Buyers:
        """The card's member as a buyer: a company's manager books on the company's account when
        the company's program says so (``loyalty.companies``), the entries naming the card."""
        return Buyers(self.ledger_for(card).stores, attempts=self.attempts)

    def accrue(self, actor: Actor, number: str, **purchase: Any) -> tuple[dict[str, Any], Card]:
        card = self.get(actor.tenant_id, number)
        member_id = self._member_of(card)
        return self.buyers_for(card).accrue(actor, member_id, **purchase), card

    def redeem(self, actor: Actor, number: str, **spend: Any) -> tuple[dict[str, Any], Card]:
        card = self.get(actor.tenant_id, number)
        member_id = self._member_of(card)
        return self.buyers_for(card).redeem(actor, member_id, **spend), card

    # ------------------------------------------------------------------- administration
    def sell(
        self, actor: Actor, number: str, *, price: int, currency_code: str, sold_at: datetime | None = None
    ) -> Card:
        """Record the card's sale (once: the same sale again answers the card, another is a conflict)."""
        tenant = actor.tenant_id
        if not currency.is_known(currency_code):
            raise InvalidRequest(f"currency {currency_code!r} is not an ISO 4217 code.", field="currency")
        if not 0 <= price <= MAX_PRICE:
            raise InvalidRequest(f"price must be 0 to {MAX_PRICE} minor units.", field="price")

        def attempt() -> Card:
            now = clock.now()
            when = sold_at or now
            if when > now + timedelta(minutes=5):
                raise InvalidRequest("sold_at is in the future.", field="sold_at")
            card = self._card(tenant, number)
            if card.sale is not None:
                same = (card.sale.price, card.sale.currency) == (price, currency_code)
                if same and (sold_at is None or card.sale.sold_at == clock.isoformat(sold_at)):
                    return card
                raise Conflict(
                    f"Card {number} was already sold ({card.sale.price} {card.sale.currency} at {card.sale.sold_at}).",
                    card_status="sold",
                )
            self._check_active(card)
            sale = Sale(price=price, currency=currency_code, sold_at=clock.isoformat(when), recorded_by=_who(actor))
            sold = card.changed(sale=sale)
            audit_item = self._audit(
                actor, "card.sale", sold, "sale", now, price=price, currency=currency_code, test=card.test or None
            )
            self._write([self.store.put_changed(card, sold), audit_item])
            return sold

        return self._retrying(attempt)

    def replace(self, actor: Actor, number: str) -> tuple[Card, Card]:
        """Block a lost card and issue a new one (same kind, test flag and member). The balance is
        the member's, so nothing moves. Replacing it again answers the same replacement."""
        tenant = actor.tenant_id
        issue_id = secrets.token_hex(8)
        numbers = [generate()]

        def attempt() -> tuple[Card, Card]:
            now = clock.now()
            card = self._card(tenant, number)
            if card.replaced_by is not None:
                return card, self._card(tenant, card.replaced_by)
            self._check_active(card)
            if self.store.get(tenant, numbers[-1]) is not None:
                numbers.append(generate())
                raise dynamo.Retry()
            created = clock.isoformat(now)
            new = Card(
                tenant_id=tenant,
                card_number=numbers[-1],
                kind=card.kind,
                status="active",
                issued_at=created,
                issued_by=_who(actor),
                issue_id=issue_id,
                member_id=card.member_id,
                linked_at=created if card.member_id else None,
                test=card.test,
                replaces=card.card_number,
            )
            blocked = card.changed(status="blocked", blocked_at=created, replaced_by=new.card_number)
            audit_item = self._audit(actor, "card.replace", blocked, "replace", now, replaced_by=new.card_number)
            self._write([self.store.put_changed(card, blocked), self.store.put_new(new), audit_item])
            return blocked, new

        return self._retrying(attempt)

    def handover(self, actor: Actor, number: str, *, to_member_id: str, transfer_id: str) -> dict[str, Any]:
        """Hand the card to another member with the giver's available points (see the module's
        docstring for the steps). The same ``transfer_id`` again finishes or answers it."""
        tenant = actor.tenant_id

        def start() -> tuple[Card, Handover]:
            now = clock.now()
            card = self._card(tenant, number)
            record = card.handovers.get(transfer_id)
            if record is not None:
                if record.to_member_id != to_member_id:
                    raise Conflict(
                        f"transfer_id {transfer_id!r} already handed this card to another member; "
                        "use a new transfer_id for a new hand-over."
                    )
                return card, record
            if card.pending_handover is not None:
                raise Conflict(
                    f"Card {number} is being handed over under transfer_id {card.pending_handover!r}; "
                    "retry that request to finish it first.",
                    transfer_id=card.pending_handover,
                )
            giver = self._member_of(card)
            if giver == to_member_id:
                raise Conflict(f"Card {number} belongs to {to_member_id!r} already.", card_status="linked")
            account = self.stores.ledger.snapshot(tenant, giver).account
            if account is None:  # pragma: no cover - members are never deleted
                raise NotFound(f"No member {giver!r}.")
            self._member_exists(tenant, to_member_id, field="to_member_id")
            program = program_of(self.stores, tenant, account.program_id)
            if not program.allow_card_handover:
                raise Conflict(
                    f"The program {program.program_id!r} of this card's member does not allow handing a card "
                    "to another member.",
                    program_id=program.program_id,
                )
            created = clock.isoformat(now)
            record = Handover(transfer_id, giver, to_member_id, "pending", created)
            moved = card.changed(
                member_id=to_member_id,
                linked_at=created,
                pending_handover=transfer_id,
                handovers={**card.handovers, transfer_id: record},
            )
            audit_item = self._audit(
                actor, "card.handover", moved, transfer_id, now, from_member_id=giver, to_member_id=to_member_id
            )
            self._write([self.store.put_changed(card, moved), audit_item])
            return moved, record

        card, record = self._retrying(start)
        if record.status != "done":
            result = self._move_points(actor, card, record)
            card, record = self._retrying(lambda: self._finish(tenant, number, transfer_id, result))
        return {"card": card, **_handover_view(record)}

    def _move_points(self, actor: Actor, card: Card, record: Handover) -> dict[str, Any]:
        """Move what the giver has available to the receiver, once for ``transfer_id``: the transfer's
        own guard answers a repeat; a giver with nothing available moves nothing."""
        tenant, giver, tid = actor.tenant_id, record.from_member_id, record.transfer_id
        ledger = self.ledger_for(card)

        def attempt() -> dict[str, Any]:
            snapshot = self.stores.ledger.snapshot(tenant, giver, guard=("transfer", tid))
            if snapshot.guard is not None:
                return snapshot.guard.result
            available = snapshot.account.available(clock.now()) if snapshot.account else 0
            if available <= 0:
                return {"transfer_id": tid, "points": 0}
            try:
                return ledger.transfer(
                    actor,
                    giver,
                    transfer_id=tid,
                    to_member_id=record.to_member_id,
                    points=available,
                    card_handover=True,
                )
            except Conflict as error:
                # Its points changed meanwhile (or a concurrent retry moved them): look again.
                raise dynamo.Retry() from error

        return self._retrying(attempt)

    def _finish(self, tenant_id: str, number: str, transfer_id: str, result: dict[str, Any]) -> tuple[Card, Handover]:
        card = self._card(tenant_id, number)
        record = card.handovers[transfer_id]
        if record.status == "done":
            return card, record
        done = dataclasses.replace(record, status="done", result=result)
        pending = None if card.pending_handover == transfer_id else card.pending_handover
        finished = card.changed(pending_handover=pending, handovers={**card.handovers, transfer_id: done})
        self._write([self.store.put_changed(card, finished)])
        return finished, done


def _who(actor: Actor) -> dict[str, str]:
    return {"key_id": actor.key_id, "role": actor.role.value}


def _handover_view(record: Handover) -> dict[str, Any]:
    result = record.result or {}
    return {
        "transfer_id": record.transfer_id,
        "from_member_id": record.from_member_id,
        "to_member_id": record.to_member_id,
        "points": int(result.get("points", 0)),
        "entry_id": result.get("entry_id"),
        "to_entry_id": result.get("to_entry_id"),
    }


def member_view(stores: Stores, ledger: Ledger, card: Card) -> tuple[Member, dict[str, Any]] | None:
    """The card's member and its balance view, if it has one."""
    if card.member_id is None:
        return None
    member = get(stores, card.tenant_id, card.member_id)
    return member, ledger.balance_view(card.tenant_id, card.member_id)
