"""The ledger: members, their balance, entries, lots, holds and orders (the LedgerTable)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from loyalty import clock
from loyalty.models import Balance, Consents, Member, Profile
from loyalty.store import dynamo, keys
from loyalty.store.audit import AuditRecord
from loyalty.store.audit import put_item as audit_put
from loyalty.store.ledger_models import Account, Entry, Guard, Hold, Lot, OpenHold, Order


def _member_from_item(item: dict[str, Any]) -> Member:
    profile = json.loads(item["profile"])
    return Member(
        tenant_id=item["tenant_id"],
        member_id=item["member_id"],
        profile=Profile(
            email=profile.get("email"),
            phone=profile.get("phone"),
            locale=profile.get("locale", "en"),
            time_zone=profile.get("time_zone", "UTC"),
            birthday=date.fromisoformat(profile["birthday"]) if profile.get("birthday") else None,
            consents=Consents(**profile.get("consents", {})),
            program_id=item["program_id"],
        ),
        enrolled_at=datetime.fromisoformat(item["enrolled_at"]),
        erased_at=datetime.fromisoformat(item["erased_at"]) if item.get("erased_at") else None,
        enrolled_by=item.get("enrolled_by"),
        balance=Balance(
            balance=int(item.get("balance", 0)),
            held=int(item.get("held", 0)),
            lifetime_earned=int(item.get("lifetime_earned", 0)),
        ),
        lifetime_spend=int(item.get("lifetime_spend", 0)),
        tier=item["tier"],
        referral_code=item.get("referral_code") or "",
        referred_by=item.get("referred_by"),
        enrolled_profile=item.get("enrolled_profile"),
    )


class MemberStore(dynamo.Store):
    def get_member(self, tenant_id: str, member_id: str) -> Member | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.MEMBER_SK}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        return _member_from_item(dynamo.unmarshal(response["Item"]))

    def create_member(self, member: Member, *, welcome: Entry | None = None) -> str:
        """Write a new member in ONE transaction: the member (with its referral code), the code's
        lookup item, the birthday marker (gsi1) and, with ``welcome``, the welcome bonus entry and
        its lot. Answers ``created``; ``exists`` if a member with this id exists already, or
        ``code_taken`` if another member holds ``member.referral_code`` (nothing is written)."""
        profile = member.profile.model_dump(mode="json", exclude={"program_id"})
        pk = keys.member_pk(member.tenant_id, member.member_id)
        points = welcome.points if welcome else 0
        item = {
            "pk": pk,
            "sk": keys.MEMBER_SK,
            "tenant_id": member.tenant_id,
            "member_id": member.member_id,
            "program_id": member.profile.program_id,
            "profile": json.dumps(profile, sort_keys=True),
            "enrolled_at": member.enrolled_at.isoformat(),
            "tier": member.tier,
            "balance": points,
            "held": 0,
            "lifetime_earned": points,
            "lifetime_spend": 0,
            "seq": 1 if welcome else 0,
            "version": 0,
            "enrolled_by": member.enrolled_by,
            "referral_code": member.referral_code,
            "referred_by": member.referred_by,
            "referral_state": "pending" if member.referred_by else None,
            "enrolled_profile": member.enrolled_profile,
        }
        uow = UnitOfWork(self.table, self.client)
        uow._put(item)
        uow._put(
            {
                "pk": keys.referral_pk(member.tenant_id, member.referral_code),
                "sk": keys.REFERRAL_SK,
                "member_id": member.member_id,
            }
        )
        birthday = member.profile.birthday
        if birthday is not None:
            uow._put(birthday_marker(member.tenant_id, member.member_id, birthday), condition=None)
        uow._put(touch_marker(member.tenant_id, member.member_id, clock.isoformat(member.enrolled_at)), condition=None)
        if welcome is not None:
            account = _account_from_item(item)
            uow.put_entry(account, 1, welcome)
            uow.change_lot(account, None, welcome.burn_date or "", welcome.points)
        try:
            uow.commit()
        except ClientError as error:
            reasons = dynamo.cancellation_codes(error)
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return "exists"
            if reasons[1:2] == ["ConditionalCheckFailed"]:
                return "code_taken"
            raise
        return "created"

    def referral_owner(self, tenant_id: str, code: str) -> str | None:
        """The member id that holds a referral code, or None."""
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.referral_pk(tenant_id, code), "sk": keys.REFERRAL_SK}),
            ConsistentRead=True,
        )
        return dynamo.unmarshal(response["Item"])["member_id"] if "Item" in response else None

    def erase_member(self, tenant_id: str, member_id: str, erased_at: str, also: Sequence[dict[str, Any]] = ()) -> None:
        """Replace the member's profile with an anonymous one (no contacts, no birthday, no
        messages) and mark it erased; balance, entries and lots stay as they are. ``also``: more
        items for the same transaction (the audit record)."""
        update = {
            "TableName": self.table,
            "Key": dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.MEMBER_SK}),
            "UpdateExpression": "SET profile = :p, erased_at = :at REMOVE enrolled_profile",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(erased_at)",
            "ExpressionAttributeValues": dynamo.values(
                {":p": json.dumps(ERASED_PROFILE, sort_keys=True), ":at": erased_at}
            ),
        }
        marker = {
            "TableName": self.table,
            "Key": dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.BIRTHDAY_SK}),
        }
        touches = {
            "TableName": self.table,
            "Key": dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.TOUCH_SK}),
        }
        self.client.transact_write_items(
            TransactItems=[{"Update": update}, {"Delete": marker}, {"Delete": touches}, *also]
        )

    def change_program(
        self,
        tenant_id: str,
        member_id: str,
        *,
        version: int,
        from_program: str,
        to_program: str,
        tier: str,
        also: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Move the member to ``to_program`` (with its tier there), if the account is still at
        ``version`` in ``from_program``; the version moves on, so a ledger operation that read the
        old program meanwhile starts over. Balance, lots and entries stay as they are. ``also``:
        more items for the same transaction (the audit record)."""
        update = {
            "TableName": self.table,
            "Key": dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.MEMBER_SK}),
            "UpdateExpression": "SET program_id = :to, tier = :tier, version = :v1",
            "ConditionExpression": "version = :v0 AND program_id = :from",
            "ExpressionAttributeValues": dynamo.values(
                {":to": to_program, ":tier": tier, ":v0": version, ":v1": version + 1, ":from": from_program}
            ),
        }
        self.client.transact_write_items(TransactItems=[{"Update": update}, *also])


def birthday_marker(tenant_id: str, member_id: str, birthday: date) -> dict[str, Any]:
    """The gsi1 item that lists a member under its birthday (month and day), for the birthday job."""
    pk = keys.member_pk(tenant_id, member_id)
    return {
        "pk": pk,
        "sk": keys.BIRTHDAY_SK,
        "gsi1pk": keys.birthday_gsi1pk(birthday.strftime("%m-%d"), keys.due_shard(tenant_id, member_id)),
        "gsi1sk": pk,
        "tenant_id": tenant_id,
        "member_id": member_id,
    }


def touch_marker(tenant_id: str, member_id: str, due: str) -> dict[str, Any]:
    """The gsi1 item that makes the touches job find a member at ``due`` (enrolment: day 1 of the
    welcome chain, due at once)."""
    return {
        "pk": keys.member_pk(tenant_id, member_id),
        "sk": keys.TOUCH_SK,
        **keys.touch_index(tenant_id, member_id, due),
        "tenant_id": tenant_id,
        "member_id": member_id,
    }


ERASED_PROFILE = {
    "locale": "en",
    "time_zone": "UTC",
    "consents": {"marketing": False, "bonus_notices": False, "email": False, "sms": False},
}


def _account_from_item(item: dict[str, Any]) -> Account:
    holds = tuple(
        OpenHold(hold_id=hold_id, points=int(hold["p"]), expires_at=int(hold["x"]))
        for hold_id, hold in sorted((item.get("holds") or {}).items())
    )
    return Account(
        tenant_id=item["tenant_id"],
        member_id=item["member_id"],
        program_id=item["program_id"],
        version=int(item.get("version", 0)),
        seq=int(item.get("seq", 0)),
        balance=int(item.get("balance", 0)),
        lifetime_earned=int(item.get("lifetime_earned", 0)),
        lifetime_spend=int(item.get("lifetime_spend", 0)),
        purchases=int(item.get("purchases", 0)),
        tier=item["tier"],
        lot_debt=int(item.get("lot_debt", 0)),
        holds=holds,
        referred_by=item.get("referred_by"),
        referral_state=item.get("referral_state"),
        is_company=bool(item.get("is_company", False)),
        company_id=item.get("company_id") or None,
        company_seq=int(item["company_seq"]) if item.get("company_seq") is not None else None,
        tier_window={day: int(amount) for day, amount in (item.get("tier_window") or {}).items()},
        tier_review=item.get("tier_review"),
    )


def _order_from_item(order_id: str, item: dict[str, Any] | None) -> Order:
    if not item:
        return Order(order_id=order_id)

    def num(name: str) -> int | None:
        return int(item[name]) if name in item else None

    return Order(
        order_id=order_id,
        amount=num("amount"),
        order_amount=num("order_amount"),
        currency=item.get("currency"),
        earned=int(item.get("earned", 0)),
        earned_burn_date=item.get("earned_burn_date"),
        spent=int(item.get("spent", 0)),
        refunded=int(item.get("refunded", 0)),
        reversed_due=int(item.get("reversed_due", 0)),
        returned=int(item.get("returned", 0)),
        hold_seq=int(item.get("hold_seq", 0)),
        window_day=item.get("window_day"),
        qualified=bool(item.get("qualified", True)),
    )


def _hold_from_item(item: dict[str, Any]) -> Hold:
    return Hold(
        hold_id=item["hold_id"],
        member_id=item["member_id"],
        order_id=item["order_id"],
        points=int(item["points"]),
        order_amount=int(item["order_amount"]),
        currency=item["currency"],
        status=item["status"],
        expires_at=int(item["expires_at"]),
        fingerprint=item["fingerprint"],
        result=json.loads(item.get("result") or "{}"),
    )


@dataclass
class Snapshot:
    """One consistent BatchGetItem: the account plus whatever the operation needs next to it."""

    account: Account | None
    guard: Guard | None = None
    order: Order | None = None


class LedgerReader(dynamo.Store):
    """Reads for the ledger service (mixed into LedgerStore)."""

    def snapshot(
        self, tenant_id: str, member_id: str, *, guard: tuple[str, str] | None = None, order_id: str | None = None
    ) -> Snapshot:
        pk = keys.member_pk(tenant_id, member_id)
        wanted = {"member": {"pk": pk, "sk": keys.MEMBER_SK}}
        if guard:
            wanted["guard"] = {"pk": pk, "sk": keys.guard_sk(*guard)}
        if order_id:
            wanted["order"] = {"pk": pk, "sk": keys.order_sk(order_id)}
        request = {self.table: {"Keys": [dynamo.marshal(k) for k in wanted.values()], "ConsistentRead": True}}
        found: dict[str, dict[str, Any]] = {}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for raw in response["Responses"].get(self.table, []):
                item = dynamo.unmarshal(raw)
                found[item["sk"]] = item
            request = response.get("UnprocessedKeys") or {}
        member = found.get(keys.MEMBER_SK)
        guard_item = found.get(keys.guard_sk(*guard)) if guard else None
        return Snapshot(
            account=_account_from_item(member) if member else None,
            guard=Guard(guard_item["fingerprint"], json.loads(guard_item["result"])) if guard_item else None,
            order=_order_from_item(order_id, found.get(keys.order_sk(order_id))) if order_id else None,
        )

    def lots(self, tenant_id: str, member_id: str) -> list[Lot]:
        return [
            Lot(burn_date=item["burn_date"], remaining=int(item["remaining"]))
            for item in self.query_all(keys.member_pk(tenant_id, member_id), "L#", consistent=True)
        ]

    def lot(self, tenant_id: str, member_id: str, burn_date: str) -> list[Lot]:
        """The one lot that burns on ``burn_date`` (empty if none): all that a credit needs.

        One small consistent read instead of a Query of every open lot, so an accrual costs the
        same for a member with one lot as for one with hundreds.
        """
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.lot_sk(burn_date)}),
            ConsistentRead=True,
        )
        if "Item" not in response:
            return []
        item = dynamo.unmarshal(response["Item"])
        return [Lot(burn_date=item["burn_date"], remaining=int(item["remaining"]))]

    def hold(self, tenant_id: str, hold_id: str) -> Hold | None:
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.hold_pk(tenant_id, hold_id), "sk": keys.HOLD_SK}),
            ConsistentRead=True,
        )
        return _hold_from_item(dynamo.unmarshal(response["Item"])) if "Item" in response else None

    def entries(
        self, tenant_id: str, member_id: str, *, limit: int, before_seq: int | None = None
    ) -> tuple[list[Entry], int | None]:
        """Newest first; returns the page and the seq to continue before (None at the end)."""
        pk = keys.member_pk(tenant_id, member_id)
        # BETWEEN is inclusive: a page after a cursor ends just below the entry it names.
        upper = keys.entry_sk(before_seq - 1) if before_seq is not None else "E$"
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues=dynamo.values({":pk": pk, ":lo": "E#", ":hi": upper}),
            ScanIndexForward=False,
            Limit=limit + 1,
            ConsistentRead=True,
        )
        items = [dynamo.unmarshal(raw) for raw in response["Items"]]
        page, more = items[:limit], len(items) > limit
        entries = [_entry_from_item(item) for item in page]
        next_seq = int(page[-1]["seq"]) if more and page else None
        return entries, next_seq

    def all_entries(self, tenant_id: str, member_id: str) -> list[Entry]:
        items = self.query_all(keys.member_pk(tenant_id, member_id), "E#", consistent=True)
        return [_entry_from_item(item) for item in items]

    def tier_review_marker(self, tenant_id: str, member_id: str) -> str | None:
        """The day the member's IDX#TIER marker names (None without one): the invariant's check."""
        response = self.client.get_item(
            TableName=self.table,
            Key=dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": keys.TIER_REVIEW_SK}),
            ConsistentRead=True,
        )
        return dynamo.unmarshal(response["Item"])["review"] if "Item" in response else None

    def due_tier_reviews(self, shard: int, through: date) -> Iterator[tuple[str, str, str]]:
        """``(day, tenant_id, member_id)`` of the tier reviews due up to ``through`` in one shard of
        gsi1, earliest first, page by page: only what is due is read. The index is eventually
        consistent and holds keys only: the account is the truth (``Ledger.review_tier``)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk < :until",
            "ExpressionAttributeValues": dynamo.values(
                {":pk": keys.tier_review_gsi1pk(shard), ":until": (through + timedelta(days=1)).isoformat()}
            ),
        }
        for page in self.pages("query", kwargs):
            for raw in page["Items"]:
                item = dynamo.unmarshal(raw)
                day, _, pk = item["gsi1sk"].partition("#")
                yield (day, *keys.parse_member_pk(pk))


def _entry_from_item(item: dict[str, Any]) -> Entry:
    return Entry(
        entry_id=item["entry_id"],
        type=item["type"],
        points=int(item["points"]),
        balance_after=int(item["balance_after"]),
        created_at=item["created_at"],
        actor=item.get("actor") or {},
        order_id=item.get("order_id"),
        burn_date=item.get("burn_date"),
        reason=item.get("reason"),
        ref=item.get("ref"),
        details=json.loads(item["details"]) if item.get("details") else None,
    )


MAX_TRANSACTION_ITEMS = 100


class UnitOfWork:
    """One TransactWriteItems: every item conditional, all or nothing.

    The account's ``version`` condition serializes writers of one member; the guard's
    ``attribute_not_exists`` makes the business key permanent.
    """

    def __init__(self, table: str, client: Any) -> None:
        self.table = table
        self.client = client
        self.items: list[dict[str, Any]] = []

    @property
    def room(self) -> int:
        return MAX_TRANSACTION_ITEMS - len(self.items)

    def _update(
        self,
        key: dict[str, Any],
        expression: str,
        names: dict[str, str] | None,
        vals: dict[str, Any],
        condition: str | None,
    ) -> None:
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": dynamo.marshal(key),
            "UpdateExpression": expression,
        }
        if names:
            update["ExpressionAttributeNames"] = names
        if vals:
            update["ExpressionAttributeValues"] = dynamo.values(vals)
        if condition:
            update["ConditionExpression"] = condition
        self.items.append({"Update": update})

    def _put(self, item: dict[str, Any], condition: str | None = "attribute_not_exists(pk)") -> None:
        put: dict[str, Any] = {"TableName": self.table, "Item": dynamo.marshal(item)}
        if condition:
            put["ConditionExpression"] = condition
        self.items.append({"Put": put})

    def update_account(
        self,
        account: Account,
        *,
        balance: int,
        seq: int,
        holds: tuple[OpenHold, ...],
        lot_debt: int,
        earned: int = 0,
        spend: int = 0,
        purchases: int = 0,
        tier: str | None = None,
        also_set: dict[str, Any] | None = None,
    ) -> None:
        """``also_set``: more attributes of the member item to set in the same update."""
        sets = [
            "balance = :b",
            "seq = :s",
            "holds = :h",
            "lot_debt = :d",
            "version = :v1",
            "tier = :t",
            "held_total = :held",
        ]
        vals: dict[str, Any] = {
            ":b": balance,
            ":s": seq,
            ":d": lot_debt,
            ":v0": account.version,
            ":v1": account.version + 1,
            ":h": {hold.hold_id: {"p": hold.points, "x": hold.expires_at} for hold in holds},
            ":t": tier or account.tier,
            ":held": sum(h.points for h in holds),
        }
        adds = []
        for name, value in (("lifetime_earned", earned), ("lifetime_spend", spend), ("purchases", purchases)):
            if value:
                adds.append(f"{name} :{name}")
                vals[f":{name}"] = value
        names = {}
        for i, (name, value) in enumerate(sorted((also_set or {}).items())):
            names[f"#x{i}"] = name
            vals[f":x{i}"] = value
            sets.append(f"#x{i} = :x{i}")
        expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
        self._update(
            {"pk": keys.member_pk(account.tenant_id, account.member_id), "sk": keys.MEMBER_SK},
            expression,
            names or None,
            vals,
            "version = :v0",
        )

    def put_entry(self, account: Account, seq: int, entry: Entry) -> None:
        item = {
            "pk": keys.member_pk(account.tenant_id, account.member_id),
            "sk": keys.entry_sk(seq),
            "seq": seq,
            "tenant_id": account.tenant_id,
            "member_id": account.member_id,
            "program_id": account.program_id,
            "entry_id": entry.entry_id,
            "type": entry.type,
            "points": entry.points,
            "balance_after": entry.balance_after,
            "created_at": entry.created_at,
            "actor": entry.actor,
            "order_id": entry.order_id,
            "burn_date": entry.burn_date,
            "reason": entry.reason,
            "ref": entry.ref,
            "details": json.dumps(entry.details, sort_keys=True) if entry.details else None,
        }
        self._put(item)

    def change_lot(self, account: Account, lot: Lot | None, burn_date: str, new_remaining: int) -> None:
        """Set a lot to ``new_remaining`` given what was read (``lot``); 0 deletes it."""
        key = {"pk": keys.member_pk(account.tenant_id, account.member_id), "sk": keys.lot_sk(burn_date)}
        if new_remaining <= 0:
            if lot is None:
                return
            self.items.append(
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": dynamo.marshal(key),
                        "ConditionExpression": "remaining = :r",
                        "ExpressionAttributeValues": dynamo.values({":r": lot.remaining}),
                    }
                }
            )
            return
        item = {
            **key,
            "burn_date": burn_date,
            "remaining": new_remaining,
            "tenant_id": account.tenant_id,
            "member_id": account.member_id,
            # The sparse due index: the nightly burn finds the lot under its date (loyalty.burning).
            **keys.burn_index(account.tenant_id, account.member_id, burn_date),
        }
        if lot is None:
            self._put(item)
        else:
            put = {
                "TableName": self.table,
                "Item": dynamo.marshal(item),
                "ConditionExpression": "remaining = :r",
                "ExpressionAttributeValues": dynamo.values({":r": lot.remaining}),
            }
            self.items.append({"Put": put})

    def set_tier_review(self, account: Account, day: str | None) -> None:
        """Put the member's IDX#TIER marker for a review on ``day``, or delete it (None). No
        condition of its own: the account's version, in the same transaction, guards it."""
        key = {"pk": keys.member_pk(account.tenant_id, account.member_id), "sk": keys.TIER_REVIEW_SK}
        if day is None:
            self.items.append({"Delete": {"TableName": self.table, "Key": dynamo.marshal(key)}})
            return
        self._put(
            {
                **key,
                "gsi1pk": keys.tier_review_gsi1pk(keys.due_shard(account.tenant_id, account.member_id)),
                "gsi1sk": keys.tier_review_gsi1sk(day, account.tenant_id, account.member_id),
                "review": day,
            },
            condition=None,
        )

    def put_guard(
        self, account: Account, kind: str, business_key: str, fingerprint: str, result: dict[str, Any], created_at: str
    ) -> None:
        self._put(
            {
                "pk": keys.member_pk(account.tenant_id, account.member_id),
                "sk": keys.guard_sk(kind, business_key),
                "fingerprint": fingerprint,
                "result": json.dumps(result, sort_keys=True),
                "created_at": created_at,
            }
        )

    def update_order(self, account: Account, order: Order, **changes: Any) -> None:
        """Set fields of the order item. No condition of its own: the account's version, in the
        same transaction, already proves nobody changed this member (and so this order) since."""
        names = {f"#{name}": name for name in changes}
        vals = {f":{name}": value for name, value in changes.items()}
        sets = [f"#{name} = :{name}" for name in changes]
        self._update(
            {"pk": keys.member_pk(account.tenant_id, account.member_id), "sk": keys.order_sk(order.order_id)},
            "SET " + ", ".join(sets),
            names,
            vals,
            None,
        )

    def put_hold(self, tenant_id: str, hold: Hold) -> None:
        self._put(
            {
                "pk": keys.hold_pk(tenant_id, hold.hold_id),
                "sk": keys.HOLD_SK,
                "tenant_id": tenant_id,
                "hold_id": hold.hold_id,
                "member_id": hold.member_id,
                "order_id": hold.order_id,
                "points": hold.points,
                "order_amount": hold.order_amount,
                "currency": hold.currency,
                "status": hold.status,
                "expires_at": hold.expires_at,
                "fingerprint": hold.fingerprint,
                "result": json.dumps(hold.result, sort_keys=True),
            }
        )

    def finish_hold(self, tenant_id: str, hold: Hold, status: str, result: dict[str, Any]) -> None:
        self._update(
            {"pk": keys.hold_pk(tenant_id, hold.hold_id), "sk": keys.HOLD_SK},
            "SET #s = :s, #r = :r",
            {"#s": "status", "#r": "result"},
            {":s": status, ":r": json.dumps(result, sort_keys=True), ":open": "open"},
            "#s = :open",
        )

    def put_audit(self, tenant_id: str, record: AuditRecord) -> None:
        self.items.append(audit_put(self.table, tenant_id, record))

    def commit(self) -> None:
        if not self.items:
            return
        if len(self.items) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"a transaction holds {MAX_TRANSACTION_ITEMS} items at most, not {len(self.items)}")
        self.client.transact_write_items(TransactItems=self.items)


class LedgerStore(MemberStore, LedgerReader):
    """Members, balances, entries, lots, holds and orders."""

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.table, self.client)
