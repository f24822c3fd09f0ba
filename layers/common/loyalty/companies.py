"""Company customers (B2B): a member may be a company with managers (other members linked to it).

* **A company** is an enrolled member with a company profile (``PUT .../company``): a name and a
  decision maker's contact, who is to get the company's statements in copy (the messaging engine
  reads it with ``CompanyStore.company``). A company cannot be a manager, and a manager cannot be
  made a company.
* **A manager** is linked to one company at a time (``PUT .../managers/{manager_id}``); both are
  members of the same tenant whose programs run in the same currency. Each link starts a *stint*
  (``seq``, one more at each link of that member).
* **Whose account books a manager's order** (``Buyers``): the company's, when the company's
  program (the version in force) says ``company_bonus_owner: company``, else the manager's own.
  The same account takes the order's hold, redemption and refund: an order lives on one account,
  the one its first operation booked it on (a refund finds it there, also after the manager left).
  Accruals on the company's account name the manager in the entry's ``details.manager_id``.
* **The manager's points** are the points its purchases earned during the stint, net of what
  refunds of those orders took back: ``earned_company`` (booked on the company's account) and
  ``earned_self`` (on its own, while the owner setting said ``manager``), kept on its ``MANAGES``
  item in the same transaction as each accrual and refund.
* **Leaving** (``DELETE .../managers/{manager_id}``) applies the company's program's
  ``leaving_manager_points`` (``leave_plan``) to those points, each part capped by what is still
  available on the account that holds it, in ONE transaction with an entry on both sides:
  ``manager_leave_out``/``manager_leave_in`` for points that move, ``manager_leave_burn`` for
  points that burn, and a 0-point ``manager_left`` on a side where nothing moves. The same leave
  again answers the first result (kept in the company's ``MLEFT#`` item).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from loyalty import clock, rules
from loyalty.errors import Conflict, InvalidRequest, NotFound
from loyalty.ledger import LOT_ITEMS_RESERVED, Ledger, _actor, _commit, _Draft
from loyalty.members import Stores, program_of
from loyalty.models import Actor, BonusOwner, LeavingManagerPoints
from loyalty.store import audit, dynamo, keys
from loyalty.store.companies import LINKED, NO_COMPANY, Company, CompanyStore, Contact, Link, ManagerEntry
from loyalty.store.ledger import MAX_TRANSACTION_ITEMS, LedgerStore, Snapshot, UnitOfWork
from loyalty.store.ledger_models import Account, Entry, Hold

T = TypeVar("T")

MANAGER_PAGE = 50


# ------------------------------------------------------------------------------- pure rules
@dataclass(frozen=True)
class LeavePlan:
    """What a leave does with the manager's points: ``move_to_company`` (from the manager's own
    account), ``move_to_manager`` (from the company's), and what burns on each side."""

    move_to_company: int = 0
    move_to_manager: int = 0
    burn_on_company: int = 0
    burn_on_manager: int = 0


def leave_plan(
    rule: LeavingManagerPoints,
    *,
    earned_company: int,
    earned_self: int,
    available_company: int,
    available_manager: int,
) -> LeavePlan:
    """Apply a program's ``leaving_manager_points`` to the points a manager's purchases earned
    during its stint: ``earned_company`` on the company's account, ``earned_self`` on its own.
    Each part is capped by what its account still has available (points spent or held meanwhile
    cannot move or burn), and is never negative. Pure."""
    on_company = max(0, min(earned_company, available_company))
    on_manager = max(0, min(earned_self, available_manager))
    if rule is LeavingManagerPoints.STAY_WITH_COMPANY:
        return LeavePlan(move_to_company=on_manager)
    if rule is LeavingManagerPoints.GO_WITH_MANAGER:
        return LeavePlan(move_to_manager=on_company)
    return LeavePlan(burn_on_company=on_company, burn_on_manager=on_manager)


def holder_of(owner: BonusOwner, company_id: str, manager_id: str) -> str:
    """The account that books a linked manager's new order under the company's program. Pure."""
    return company_id if owner is BonusOwner.COMPANY else manager_id


# ------------------------------------------------------------------------------- routing a buyer
class LinkChanged(Exception):
    """The buyer's link to a company (or the stint an operation counts in) changed since the
    operation's account was chosen: choose again. Not retryable by the ledger's own loop, so it
    leaves the ledger operation for ``Buyers`` to decide afresh."""


@dataclass(frozen=True)
class Route:
    """Where a buyer's operation books, and what it counts.

    ``state``: the buyer's stint when it was decided (company, seq), or None; ``counter``: the
    stint an accrual or a refund's clawback counts in (``on_company``: on the company's account,
    else on the manager's own). ``routed`` False is the optimistic first guess for every buyer
    (its own account, nothing counted), which the ledger's own read of the account confirms for
    members that never managed a company, at no extra read."""

    buyer: str
    holder: str
    state: tuple[str, int] | None = None
    counter: Link | None = None
    on_company: bool = False
    routed: bool = True

    @property
    def redirected(self) -> bool:
        return self.holder != self.buyer

    @staticmethod
    def plain(buyer: str) -> Route:
        return Route(buyer=buyer, holder=buyer, routed=False)


def _state(account: Account) -> tuple[str, int] | None:
    return (account.company_id, account.company_seq or 0) if account.company_id else None


def _link_state(link: Link | None) -> tuple[str, int] | None:
    return (link.company_id, link.seq) if link is not None and link.linked else None


def _mark(link: Link) -> str:
    """How an order names the stint its accrual counted in."""
    return f"{link.company_id}#{link.seq}"


class _RoutedUnitOfWork:
    """A unit of work of a routed operation: the ledger's items, plus the stint's counter, and the
    buyer named on the order, its guard result and its hold (so a repeat can tell whose it is)."""

    COUNTED = {"purchase": ("accrual",), "refund": ("refund_clawback",)}

    def __init__(self, inner: UnitOfWork, store: _RoutedStore) -> None:
        self.inner = inner
        self.store = store
        self.delta = 0
        self.booked = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_entry(self, account: Account, seq: int, entry: Entry) -> None:
        self.inner.put_entry(account, seq, entry)
        route = self.store.route
        if route.counter and account.member_id == route.holder and entry.type in self.COUNTED.get(self.store.kind, ()):
            self.delta += entry.points

    def update_order(self, account: Account, order: Any, **changes: Any) -> None:
        route = self.store.route
        if account.member_id == route.holder:
            if route.redirected and self.store.kind in ("purchase", "hold", "redeem"):
                changes["manager_id"] = route.buyer
            if route.counter and self.store.kind == "purchase":
                changes["manager_link"] = _mark(route.counter)
        self.inner.update_order(account, order, **changes)

    def put_guard(
        self, account: Account, kind: str, business_key: str, fingerprint: str, result: dict[str, Any], created: str
    ) -> None:
        self.booked = True
        if self.store.route.redirected:
            result = {**result, "manager_id": self.store.route.buyer}
        self.inner.put_guard(account, kind, business_key, fingerprint, result, created)

    def put_hold(self, tenant_id: str, hold: Hold) -> None:
        self.booked = True
        named = {"member_id": hold.member_id}
        if self.store.route.redirected:
            named["manager_id"] = self.store.route.buyer
        self.inner.put_hold(tenant_id, dataclasses.replace(hold, result={**hold.result, **named}))

    def commit(self) -> None:
        route = self.store.route
        if route.counter and self.delta:
            count = self.store.companies.count_points(route.counter, on_company=route.on_company, points=self.delta)
            self.inner.items.append(count)
        self.inner.commit()
        if self.booked:
            self.store.booked = True


class _RoutedStore(LedgerStore):
    """The ledger store of one routed operation: every read of the buyer's or the holder's account
    checks that the route still holds (else ``LinkChanged``); its units of work are routed."""

    def __init__(self, base: LedgerStore, companies: CompanyStore, route: Route, kind: str) -> None:
        super().__init__(base.table, base._client)
        self.base = base
        self.companies = companies
        self.route = route
        self.kind = kind
        self.booked = False  # a unit of work that booked the operation committed (not a replay)

    def snapshot(self, tenant_id: str, member_id: str, **wanted: Any) -> Snapshot:
        snapshot = self.base.snapshot(tenant_id, member_id, **wanted)
        if snapshot.account is not None:
            self._check(tenant_id, member_id, snapshot.account)
        return snapshot

    def _check(self, tenant_id: str, member_id: str, account: Account) -> None:
        route = self.route
        if not route.routed:
            involved = account.company_id or account.company_seq is not None
            if member_id == route.buyer and (involved or (self.kind == "refund" and account.is_company)):
                raise LinkChanged(member_id)
            return
        if member_id == route.buyer:
            if _state(account) != route.state:
                raise LinkChanged(member_id)
        elif member_id == route.holder and _link_state(self.companies.link(tenant_id, route.buyer)) != route.state:
            raise LinkChanged(member_id)
        counter = route.counter
        if member_id != route.holder or counter is None or counter.member_id == route.buyer:
            return
        if _link_state(self.companies.link(tenant_id, counter.member_id)) != (counter.company_id, counter.seq):
            raise LinkChanged(counter.member_id)

    def unit_of_work(self) -> UnitOfWork:
        return _RoutedUnitOfWork(self.base.unit_of_work(), self)  # type: ignore[return-value]


class Buyers:
    """The ledger as a buyer (the member the shop names in an order) sees it: each order-scoped
    operation books on the account the buyer's company link says (``Route``), and answers which
    account that was (``member_id``; ``manager_id`` when it was a manager's company).

    ``stores`` may be a card's (``loyalty.cards``): its entries name the card as before."""

    def __init__(self, stores: Stores, *, attempts: int = 15) -> None:
        self.stores = stores
        self.companies = CompanyStore.beside(stores.ledger)
        self.attempts = attempts

    def _run(
        self,
        actor: Actor,
        buyer: str,
        kind: str,
        order_id: str | None,
        operation: Callable[[Ledger, str], dict[str, Any]],
    ) -> dict[str, Any]:
        tenant = actor.tenant_id
        routed = [False]  # the first attempt guesses the buyer's own account; the ledger's read confirms it

        def attempt() -> dict[str, Any]:
            route = self.route(tenant, buyer, kind, order_id) if routed[0] else Route.plain(buyer)
            store = _RoutedStore(self.stores.ledger, self.companies, route, kind)
            ledger = Ledger(Stores(ledger=store, config=self.stores.config), attempts=self.attempts)
            try:
                result = operation(ledger, route.holder)
            except LinkChanged as error:
                routed[0] = True
                raise dynamo.Retry() from error
            booked_by = result.get("manager_id")
            if route.redirected and not store.booked and kind != "quote" and kind != "refund" and booked_by != buyer:
                raise Conflict(
                    f"Order {order_id!r} is already booked on company {route.holder!r}'s account by another "
                    "buyer; use a new order_id.",
                    member_id=route.holder,
                )
            answer = {name: value for name, value in result.items() if name != "manager_id"}
            answer["member_id"] = route.holder
            if route.redirected:
                answer["manager_id"] = buyer
            return answer

        return dynamo.with_retries(attempt, attempts=self.attempts, max_delay=0.25)

    # ------------------------------------------------------------------- where it books
    def route(self, tenant_id: str, buyer: str, kind: str, order_id: str | None) -> Route:
        """Decide where a buyer's operation books (see the module's docstring) and what it counts."""
        snapshot = self.stores.ledger.snapshot(tenant_id, buyer, order_id=order_id)
        account = snapshot.account
        if account is None:
            return Route(buyer=buyer, holder=buyer)  # the ledger answers 404
        state = _state(account)
        current = Link(tenant_id, buyer, state[0], state[1], LINKED, "") if state else None
        holder: str | None = None
        if order_id is not None and snapshot.order is not None and snapshot.order.base_amount is not None:
            holder = buyer  # the order is on the buyer's own account
        elif order_id is not None and account.company_seq is not None:
            holder = self._order_on_companies(tenant_id, buyer, order_id, current)
        if holder is None:
            holder = buyer
            if current is not None:
                company = self.stores.ledger.snapshot(tenant_id, current.company_id).account
                if company is not None:
                    program = program_of(self.stores, tenant_id, company.program_id)
                    holder = holder_of(program.company_bonus_owner, current.company_id, buyer)
            if holder != buyer and order_id is not None:
                tags = self.companies.order_tags(tenant_id, holder, order_id)
                if tags is not None and tags.get("manager_id") != buyer:
                    raise Conflict(
                        f"Order {order_id!r} is already booked on company {holder!r}'s account by another "
                        "buyer; use a new order_id.",
                        member_id=holder,
                    )
        counter, on_company = None, False
        if kind == "purchase" and current is not None and holder in (buyer, current.company_id):
            counter, on_company = current, holder == current.company_id
        elif kind == "refund" and order_id is not None:
            counter, on_company = self._refund_counter(tenant_id, holder, order_id)
        return Route(buyer=buyer, holder=holder, state=state, counter=counter, on_company=on_company)

    def _order_on_companies(self, tenant_id: str, buyer: str, order_id: str, current: Link | None) -> str | None:
        """The company account on which the buyer booked this order earlier, if any."""
        link = self.companies.link(tenant_id, buyer)
        if link is None:
            return None
        candidates = sorted(link.companies, key=lambda company: current is None or company != current.company_id)
        for company in candidates:
            tags = self.companies.order_tags(tenant_id, company, order_id)
            if tags is not None and tags.get("manager_id") == buyer:
                return company
        return None

    def _refund_counter(self, tenant_id: str, holder: str, order_id: str) -> tuple[Link | None, bool]:
        """The stint a refund's clawback counts in: the one the order's accrual counted in, if
        that stint is still on."""
        tags = self.companies.order_tags(tenant_id, holder, order_id) or {}
        mark = tags.get("manager_link")
        if not mark:
            return None, False
        company, _, seq = str(mark).rpartition("#")
        manager = tags.get("manager_id") or holder
        if holder not in (company, manager):
            return None, False
        link = self.companies.link(tenant_id, manager)
        if _link_state(link) != (company, int(seq)):
            return None, False
        return link, holder == company

    # ------------------------------------------------------------------- the operations
    def accrue(
        self, actor: Actor, buyer: str, *, order_id: str, amount: int, currency_code: str, occurred_at: Any
    ) -> dict[str, Any]:
        def operation(ledger: Ledger, holder: str) -> dict[str, Any]:
            details = {"manager_id": buyer} if holder != buyer else None
            return ledger.accrue(
                actor,
                holder,
                order_id=order_id,
                amount=amount,
                currency_code=currency_code,
                occurred_at=occurred_at,
                extra_details=details,
            )

        return self._run(actor, buyer, "purchase", order_id, operation)

    def quote(self, actor: Actor, buyer: str, *, order_amount: int, currency_code: str) -> dict[str, Any]:
        def operation(ledger: Ledger, holder: str) -> dict[str, Any]:
            return ledger.quote(actor, holder, order_amount=order_amount, currency_code=currency_code)

        return self._run(actor, buyer, "quote", None, operation)

    def hold(
        self, actor: Actor, buyer: str, *, order_id: str, points: int, order_amount: int, currency_code: str
    ) -> dict[str, Any]:
        def operation(ledger: Ledger, holder: str) -> dict[str, Any]:
            result, _ = ledger.hold(
                actor, holder, order_id=order_id, points=points, order_amount=order_amount, currency_code=currency_code
            )
            return result

        return self._run(actor, buyer, "hold", order_id, operation)

    def redeem(
        self, actor: Actor, buyer: str, *, order_id: str, points: int, order_amount: int, currency_code: str
    ) -> dict[str, Any]:
        def operation(ledger: Ledger, holder: str) -> dict[str, Any]:
            return ledger.redeem(
                actor, holder, order_id=order_id, points=points, order_amount=order_amount, currency_code=currency_code
            )

        return self._run(actor, buyer, "redeem", order_id, operation)

    def refund(self, actor: Actor, buyer: str, *, refund_id: str, order_id: str, amount: int) -> dict[str, Any]:
        def operation(ledger: Ledger, holder: str) -> dict[str, Any]:
            return ledger.refund(actor, holder, refund_id=refund_id, order_id=order_id, amount=amount)

        return self._run(actor, buyer, "refund", order_id, operation)


# ------------------------------------------------------------------------------- companies and managers
def encode_cursor(company_id: str, after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"c": company_id, "a": after}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, company_id: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["c"] != company_id or not isinstance(data["a"], str) or not data["a"]:
            raise ValueError
        return data["a"]
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidRequest("cursor is not one this endpoint returned; start without it.", field="cursor") from error


class Companies:
    """Company profiles, managers' links, and a manager's leave; stateless between calls."""

    def __init__(self, stores: Stores, *, audit_table: str | None = None, attempts: int = 15) -> None:
        self.stores = stores
        self.store = CompanyStore.beside(stores.ledger)
        self.audit_table = audit_table or stores.ledger.table
        self.ledger = Ledger(stores, attempts=attempts)
        self.attempts = attempts

    def _retrying(self, operation: Callable[[], T]) -> T:
        return dynamo.with_retries(operation, attempts=self.attempts, max_delay=0.25)

    def _write(self, items: list[dict[str, Any]]) -> None:
        """Commit; a failed condition means something changed meanwhile: decide again."""
        dynamo.retry_if_condition_failed(lambda: self.store.write(items))

    def _account(self, tenant_id: str, member_id: str, field: str) -> Account:
        account = self.stores.ledger.snapshot(tenant_id, member_id).account
        if account is None:
            raise NotFound(f"No member {member_id!r}. Enrol it with POST /v1/members.", field=field)
        return account

    def _company(self, tenant_id: str, member_id: str, field: str = "path:member_id") -> Company:
        account = self._account(tenant_id, member_id, field)
        company = self.store.company(tenant_id, member_id)
        if company is None:
            manages = f"; it manages company {account.company_id!r}" if account.company_id else ""
            raise NotFound(
                f"Member {member_id!r} is not a company{manages}. "
                f"Make it one with PUT /v1/members/{member_id}/company.",
                field=field,
                company_id=account.company_id,
            )
        return company

    # ------------------------------------------------------------------- the profile
    def put(self, actor: Actor, member_id: str, *, name: str, decision_maker: Contact) -> Company:
        """Make an enrolled member a company, or change its profile. The same profile again writes
        nothing; each change is a new ``version``, audited (``company.put``) in its transaction."""
        tenant = actor.tenant_id

        def attempt() -> Company:
            now = clock.now()
            account = self._account(tenant, member_id, "path:member_id")
            existing = self.store.company(tenant, member_id)
            erased = existing.erased_at is not None if existing is not None else self._erased(tenant, member_id)
            if erased:
                raise Conflict(
                    f"Member {member_id!r} was erased; its company profile cannot be written again.",
                    member_id=member_id,
                )
            if account.company_id:
                raise Conflict(
                    f"Member {member_id!r} manages company {account.company_id!r}; a manager cannot be a company "
                    f"(unlink it first with DELETE /v1/members/{account.company_id}/managers/{member_id}).",
                    company_id=account.company_id,
                )
            if existing is not None and (existing.name, existing.decision_maker) == (name, decision_maker):
                return existing
            created = clock.isoformat(now)
            company = Company(
                tenant_id=tenant,
                member_id=member_id,
                name=name,
                decision_maker=decision_maker,
                created_at=existing.created_at if existing else created,
                updated_at=created,
                version=existing.version + 1 if existing else 0,
            )
            record = audit.record(
                actor,
                "company.put",
                ref=f"{member_id}/{company.version}",
                at=now,
                member_id=member_id,
                target=member_id,
                details={"version": company.version, "created": existing is None},
            )
            items = [self.store.put_company(company, existing)]
            if existing is None:
                items.append(self.store.mark_company(tenant, member_id))
            self._write([*items, audit.put_item(self.audit_table, tenant, record)])
            return company

        return self._retrying(attempt)

    def _erased(self, tenant_id: str, member_id: str) -> bool:
        member = self.stores.ledger.get_member(tenant_id, member_id)
        return member is not None and member.erased_at is not None

    def get(
        self, tenant_id: str, member_id: str, *, limit: int = MANAGER_PAGE, cursor: str | None = None
    ) -> tuple[Company, list[ManagerEntry], str | None]:
        """The company's profile and a page of its current managers (by member id)."""
        after = decode_cursor(cursor, member_id) if cursor else None

        def read() -> tuple[Company, list[ManagerEntry], str | None]:
            company = self._company(tenant_id, member_id)
            managers, last = self.store.managers(tenant_id, member_id, limit=limit, after=after)
            return company, managers, encode_cursor(member_id, last) if last else None

        return self._retrying(read)

    # ------------------------------------------------------------------- managers
    def link(self, actor: Actor, company_id: str, manager_id: str) -> Link:
        """Link an enrolled member to a company as its manager (a new stint). Linking it again to
        the same company answers the stint as it is; to another company is a conflict."""
        tenant = actor.tenant_id
        if company_id == manager_id:
            raise InvalidRequest("A company cannot be its own manager.", field="path:manager_id")

        def attempt() -> Link:
            now = clock.now()
            company = self._account(tenant, company_id, "path:member_id")
            self._company(tenant, company_id)
            manager = self._account(tenant, manager_id, "path:manager_id")
            if manager.is_company:
                raise Conflict(
                    f"Member {manager_id!r} is a company; a company cannot be another company's manager.",
                    field="path:manager_id",
                )
            before = self.store.link(tenant, manager_id)
            if before is not None and before.linked:
                if before.company_id == company_id:
                    return before
                raise Conflict(
                    f"Member {manager_id!r} manages company {before.company_id!r}; a member manages one company at "
                    f"a time (unlink it first with DELETE /v1/members/{before.company_id}/managers/{manager_id}).",
                    company_id=before.company_id,
                )
            company_program = program_of(self.stores, tenant, company.program_id)
            manager_program = program_of(self.stores, tenant, manager.program_id)
            if company_program.currency != manager_program.currency:
                raise Conflict(
                    f"Company {company_id!r}'s program runs in {company_program.currency}, member {manager_id!r}'s "
                    f"in {manager_program.currency}: a manager's points may move to or from the company, so both "
                    "need programs of one currency.",
                    currency=company_program.currency,
                    member_currency=manager_program.currency,
                )
            companies = tuple(dict.fromkeys((*(before.companies if before else ()), company_id)))
            link = Link(
                tenant_id=tenant,
                member_id=manager_id,
                company_id=company_id,
                seq=before.seq + 1 if before else 1,
                status=LINKED,
                linked_at=clock.isoformat(now),
                companies=companies,
            )
            record = audit.record(
                actor,
                "company.manager.link",
                ref=f"{company_id}/{manager_id}/{link.seq}",
                at=now,
                member_id=company_id,
                target=manager_id,
                details={"seq": link.seq},
            )
            self._write([*self.store.link_items(link, before), audit.put_item(self.audit_table, tenant, record)])
            return link

        return self._retrying(attempt)

    def leave(self, actor: Actor, company_id: str, manager_id: str) -> dict[str, Any]:
        """Unlink a manager: its points follow the company's program's ``leaving_manager_points``
        (``leave_plan``), with an entry on both accounts, in ONE transaction with the end of the
        stint and the audit record. The same leave again answers the first result."""
        tenant = actor.tenant_id
        if company_id == manager_id:
            raise InvalidRequest("A company cannot be its own manager.", field="path:manager_id")

        def attempt() -> dict[str, Any]:
            now = clock.now()
            listed = self.store.manager(tenant, company_id, manager_id)
            if listed is None:
                last = self.store.last_leave(tenant, company_id, manager_id)
                if last is not None:
                    return last.result
                self._company(tenant, company_id)
                self._account(tenant, manager_id, "path:manager_id")
                raise NotFound(
                    f"Member {manager_id!r} is not a manager of company {company_id!r}.", field="path:manager_id"
                )
            link = self.store.link(tenant, manager_id)
            if _link_state(link) != (company_id, listed.seq):
                raise dynamo.Retry()  # read across a link or leave being written: read again
            assert link is not None
            _, company = self.ledger._load(tenant, company_id)
            _, manager = self.ledger._load(tenant, manager_id)
            program = program_of(self.stores, tenant, company.program_id)
            rule = program.leaving_manager_points
            plan = leave_plan(
                rule,
                earned_company=link.earned_company,
                earned_self=link.earned_self,
                available_company=company.available(now),
                available_manager=manager.available(now),
            )
            moves = any(dataclasses.astuple(plan))
            side_c = _Draft.start(company, self.stores.ledger.lots(tenant, company_id) if moves else [], now)
            side_m = _Draft.start(manager, self.stores.ledger.lots(tenant, manager_id) if moves else [], now)
            room = (MAX_TRANSACTION_ITEMS - LOT_ITEMS_RESERVED) // 2
            if plan.move_to_company:
                _move(side_m, side_c, plan.move_to_company, room)
            if plan.move_to_manager:
                _move(side_c, side_m, plan.move_to_manager, room)
            if plan.burn_on_company:
                side_c.debit(plan.burn_on_company, room=room)
            if plan.burn_on_manager:
                side_m.debit(plan.burn_on_manager, room=room)
            created = clock.isoformat(now)
            common = {"company_id": company_id, "manager_id": manager_id, "rule": rule.value}
            entries = []
            for draft, member_id, kind_points, attributed in (
                (side_c, company_id, _side(plan, company=True), link.earned_company),
                (side_m, manager_id, _side(plan, company=False), link.earned_self),
            ):
                kind, points = kind_points
                entry_id = keys.stable_id(
                    "ent", tenant, member_id, "manager-leave", company_id, manager_id, str(link.seq)
                )
                entry = draft.entry(
                    entry_id=entry_id,
                    type=kind,
                    points=points,
                    created_at=created,
                    actor=_actor(actor),
                    ref=f"{company_id}/{manager_id}/{link.seq}",
                    details={**common, "attributed": attributed},
                )
                entries.append(
                    {
                        "member_id": member_id,
                        "entry_id": entry_id,
                        "type": kind,
                        "points": points,
                        "balance": entry.balance_after,
                    }
                )
            result = {
                **common,
                "left_at": created,
                "attributed": {"company": link.earned_company, "manager": link.earned_self},
                "points": sum(abs(e["points"]) for e in entries if e["points"] < 0),
                "entries": entries,
            }
            uow = self.stores.ledger.unit_of_work()
            side_c.write(uow)
            side_m.write(uow, also_set={"company_id": NO_COMPANY})
            uow.items.extend(self.store.leave_items(link, created, result))
            uow.put_audit(
                tenant,
                audit.record(
                    actor,
                    "company.manager.leave",
                    ref=f"{company_id}/{manager_id}/{link.seq}",
                    at=now,
                    member_id=company_id,
                    target=manager_id,
                    details={"seq": link.seq, "rule": rule.value, "points": result["points"]},
                ),
            )
            _commit(uow)
            return result

        return self._retrying(attempt)


def _side(plan: LeavePlan, *, company: bool) -> tuple[str, int]:
    """The entry a leave writes on one side: its type and points."""
    if company:
        moved_in, moved_out, burned = plan.move_to_company, plan.move_to_manager, plan.burn_on_company
    else:
        moved_in, moved_out, burned = plan.move_to_manager, plan.move_to_company, plan.burn_on_manager
    if moved_out:
        return "manager_leave_out", -moved_out
    if moved_in:
        return "manager_leave_in", moved_in
    if burned:
        return "manager_leave_burn", -burned
    return "manager_left", 0


def _move(out: _Draft, into: _Draft, points: int, room: int) -> None:
    """Move ``points`` between two accounts' lots, keeping their burn dates (as a transfer does):
    what did not fit in the transaction keeps the earliest date still owed, never a later one."""
    moved = out.debit(points, room=room)
    for date, take in moved:
        into.credit(date, take)
    carried = points - sum(take for _, take in moved)
    if carried > 0:
        rest = [(lot.burn_date, lot.remaining) for lot in out.lots.values() if lot.burn_date not in dict(moved)]
        later = rules.spend_plan(rest, carried)
        into.credit(later[0][0] if later else max(date for date, _ in moved), carried)
