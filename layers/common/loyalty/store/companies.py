"""Company customers in the LedgerTable, in the partitions of the members concerned (every key
starts with the tenant, through ``keys.member_pk``):

* ``COMPANY`` in the company's partition: its profile (name, the decision maker's contact),
  written whole with ``version = :v`` (a new one with ``attribute_not_exists``);
* ``MANAGES`` in a manager's partition: the member's link to the company it manages (at most one
  at a time: one item), with its stint number ``seq`` (one more at each link), ``status``
  (``linked`` or ``left``), every company it ever managed (``companies``, to find its orders
  there), and the points attributed to its purchases during the stint: ``earned_company`` (on
  the company's account) and ``earned_self`` (on its own), net of refunds;
* ``MGR#<manager>`` in the company's partition: a current manager (listed by a Query of ``MGR#``);
* ``MLEFT#<manager>`` in the company's partition: the manager's last leave, with its result (a
  repeat of that leave answers it).

The member items carry the link too: a company's ``MEMBER`` has ``is_company``, a manager's
``company_id`` (``""`` when none) and ``company_seq``, so the ledger's own read of the account
tells whether a buyer is a manager (``Account.company_id``) without a read more per purchase.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from loyalty.store import dynamo, keys

COMPANY_SK = "COMPANY"
MANAGES_SK = "MANAGES"
MANAGER_PREFIX = "MGR#"
LEFT_PREFIX = "MLEFT#"
LINKED, LEFT = "linked", "left"
NO_COMPANY = ""  # a manager's MEMBER.company_id once it left


def manager_sk(manager_id: str) -> str:
    return f"{MANAGER_PREFIX}{manager_id}"


def left_sk(manager_id: str) -> str:
    return f"{LEFT_PREFIX}{manager_id}"


@dataclass(frozen=True)
class Contact:
    """The company's decision maker, who is to get statements in copy."""

    name: str | None
    email: str | None = None
    phone: str | None = None
    locale: str = "en"


@dataclass(frozen=True)
class Company:
    tenant_id: str
    member_id: str
    name: str
    decision_maker: Contact
    created_at: str
    updated_at: str
    version: int = 0
    erased_at: str | None = None


@dataclass(frozen=True)
class Link:
    """A member's ``MANAGES`` item: its current (or last) company."""

    tenant_id: str
    member_id: str
    company_id: str
    seq: int
    status: str  # linked | left
    linked_at: str
    left_at: str | None = None
    earned_company: int = 0
    earned_self: int = 0
    companies: tuple[str, ...] = ()

    @property
    def linked(self) -> bool:
        return self.status == LINKED


@dataclass(frozen=True)
class ManagerEntry:
    """A current manager, as the company's partition lists it."""

    manager_id: str
    seq: int
    linked_at: str


@dataclass(frozen=True)
class Leave:
    """A manager's last leave of a company (``MLEFT#``), with what it answered."""

    manager_id: str
    seq: int
    left_at: str
    result: dict[str, Any] = field(default_factory=dict)


def _company_item(company: Company) -> dict[str, Any]:
    return {
        "pk": keys.member_pk(company.tenant_id, company.member_id),
        "sk": COMPANY_SK,
        "tenant_id": company.tenant_id,
        "member_id": company.member_id,
        "name": company.name,
        "decision_maker": json.dumps(vars(company.decision_maker), sort_keys=True),
        "created_at": company.created_at,
        "updated_at": company.updated_at,
        "version": company.version,
        "erased_at": company.erased_at,
    }


def _company(item: dict[str, Any]) -> Company:
    return Company(
        tenant_id=item["tenant_id"],
        member_id=item["member_id"],
        name=item["name"],
        decision_maker=Contact(**json.loads(item["decision_maker"])),
        created_at=item["created_at"],
        updated_at=item["updated_at"],
        version=int(item.get("version", 0)),
        erased_at=item.get("erased_at"),
    )


def _link(item: dict[str, Any]) -> Link:
    return Link(
        tenant_id=item["tenant_id"],
        member_id=item["member_id"],
        company_id=item["company_id"],
        seq=int(item["seq"]),
        status=item["status"],
        linked_at=item["linked_at"],
        left_at=item.get("left_at"),
        earned_company=int(item.get("earned_company", 0)),
        earned_self=int(item.get("earned_self", 0)),
        companies=tuple(item.get("companies") or ()),
    )


def _member_key(tenant_id: str, member_id: str, sk: str) -> dict[str, Any]:
    return dynamo.marshal({"pk": keys.member_pk(tenant_id, member_id), "sk": sk})


class CompanyStore(dynamo.Store):
    """Reads of company items, and the items of the transactions that write them (the service
    puts them together with the ledger's and the audit record in ONE transaction)."""

    @classmethod
    def beside(cls, ledger: dynamo.Store) -> CompanyStore:
        """The company store on the ledger store's table, with its client."""
        return cls(ledger.table, ledger._client)

    # ------------------------------------------------------------------- reads
    def _get(self, tenant_id: str, member_id: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table, Key=_member_key(tenant_id, member_id, sk), ConsistentRead=True
        )
        return dynamo.unmarshal(response["Item"]) if "Item" in response else None

    def company(self, tenant_id: str, member_id: str) -> Company | None:
        item = self._get(tenant_id, member_id, COMPANY_SK)
        return _company(item) if item else None

    def link(self, tenant_id: str, member_id: str) -> Link | None:
        item = self._get(tenant_id, member_id, MANAGES_SK)
        return _link(item) if item else None

    def manager(self, tenant_id: str, company_id: str, manager_id: str) -> ManagerEntry | None:
        item = self._get(tenant_id, company_id, manager_sk(manager_id))
        return ManagerEntry(item["manager_id"], int(item["seq"]), item["linked_at"]) if item else None

    def last_leave(self, tenant_id: str, company_id: str, manager_id: str) -> Leave | None:
        item = self._get(tenant_id, company_id, left_sk(manager_id))
        if item is None:
            return None
        return Leave(item["manager_id"], int(item["seq"]), item["left_at"], json.loads(item["result"]))

    def order_tags(self, tenant_id: str, member_id: str, order_id: str) -> dict[str, Any] | None:
        """Who booked an order on this account, if it exists: ``manager_id`` (a manager's order on
        its company's account) and ``manager_link`` (``<company>#<seq>``: the stint whose
        attributed points it counted in). ``{}`` for an order with neither; None for no order."""
        response = self.client.get_item(
            TableName=self.table,
            Key=_member_key(tenant_id, member_id, keys.order_sk(order_id)),
            ConsistentRead=True,
            ProjectionExpression="manager_id, manager_link, amount, order_amount",
        )
        if "Item" not in response:
            return None
        item = dynamo.unmarshal(response["Item"])
        return {name: item[name] for name in ("manager_id", "manager_link") if name in item}

    def managers(
        self, tenant_id: str, company_id: str, *, limit: int, after: str | None = None
    ) -> tuple[list[ManagerEntry], str | None]:
        """A page of the company's current managers, by id; and the last id if more may follow."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": dynamo.values(
                {":pk": keys.member_pk(tenant_id, company_id), ":prefix": MANAGER_PREFIX}
            ),
            "ConsistentRead": True,
            "Limit": limit,
        }
        if after is not None:
            kwargs["ExclusiveStartKey"] = _member_key(tenant_id, company_id, manager_sk(after))
        page = self.client.query(**kwargs)
        found = [dynamo.unmarshal(raw) for raw in page["Items"]]
        entries = [ManagerEntry(item["manager_id"], int(item["seq"]), item["linked_at"]) for item in found]
        more = "LastEvaluatedKey" in page and bool(entries)
        return entries, entries[-1].manager_id if more else None

    # ------------------------------------------------------------------- transaction items
    def put_company(self, company: Company, before: Company | None) -> dict[str, Any]:
        """The ``Put`` of a company's profile: new (``attribute_not_exists``) or changed from ``before``."""
        put: dict[str, Any] = {"TableName": self.table, "Item": dynamo.marshal(_company_item(company))}
        if before is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = dynamo.values({":v": before.version})
        return {"Put": put}

    def mark_company(self, tenant_id: str, member_id: str) -> dict[str, Any]:
        """The ``Update`` that makes an enrolled member a company: not erased, and managing none
        (a company cannot be a manager). Its ``version`` stays: the ledger has nothing to redo."""
        update = {
            "TableName": self.table,
            "Key": _member_key(tenant_id, member_id, keys.MEMBER_SK),
            "UpdateExpression": "SET is_company = :yes",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(erased_at) "
            "AND (attribute_not_exists(company_id) OR company_id = :none)",
            "ExpressionAttributeValues": dynamo.values({":yes": True, ":none": NO_COMPANY}),
        }
        return {"Update": update}

    def erase_company(self, tenant_id: str, member_id: str, erased_at: str) -> dict[str, Any]:
        """The ``Update`` that erases the decision maker's contact of a company whose member is
        erased (its name, e-mail and phone; the locale back to en, as on an erased member)."""
        erased = json.dumps(vars(Contact(name=None)), sort_keys=True)
        update = {
            "TableName": self.table,
            "Key": _member_key(tenant_id, member_id, COMPANY_SK),
            "UpdateExpression": "SET decision_maker = :dm, erased_at = :at, version = version + :one",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeValues": dynamo.values({":dm": erased, ":at": erased_at, ":one": 1}),
        }
        return {"Update": update}

    def no_company(self, tenant_id: str, member_id: str) -> dict[str, Any]:
        """A ``ConditionCheck`` that the member has no company profile (erasing a member that is
        not a company must not race with making it one)."""
        check = {
            "TableName": self.table,
            "Key": _member_key(tenant_id, member_id, COMPANY_SK),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        return {"ConditionCheck": check}

    def link_items(self, link: Link, before: Link | None) -> list[dict[str, Any]]:
        """A new stint: the manager's MEMBER (no company yet, not a company; its ``version`` moves
        on, so a ledger operation of the manager that read it before starts over), its
        ``MANAGES`` item (new, or after the last stint it left) and ``MGR#`` in the company."""
        tenant, manager = link.tenant_id, link.member_id
        member = {
            "TableName": self.table,
            "Key": _member_key(tenant, manager, keys.MEMBER_SK),
            "UpdateExpression": "SET company_id = :c, company_seq = :s, version = version + :one",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(is_company) "
            "AND (attribute_not_exists(company_id) OR company_id = :none)",
            "ExpressionAttributeValues": dynamo.values(
                {":c": link.company_id, ":s": link.seq, ":one": 1, ":none": NO_COMPANY}
            ),
        }
        item = {
            "pk": keys.member_pk(tenant, manager),
            "sk": MANAGES_SK,
            "tenant_id": tenant,
            "member_id": manager,
            "company_id": link.company_id,
            "seq": link.seq,
            "status": link.status,
            "linked_at": link.linked_at,
            "earned_company": link.earned_company,
            "earned_self": link.earned_self,
            "companies": list(link.companies),
        }
        manages: dict[str, Any] = {"TableName": self.table, "Item": dynamo.marshal(item)}
        if before is None:
            manages["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            manages["ConditionExpression"] = "#status = :left AND seq = :seq"
            manages["ExpressionAttributeNames"] = {"#status": "status"}
            manages["ExpressionAttributeValues"] = dynamo.values({":left": LEFT, ":seq": before.seq})
        listed = {
            "pk": keys.member_pk(tenant, link.company_id),
            "sk": manager_sk(manager),
            "tenant_id": tenant,
            "manager_id": manager,
            "seq": link.seq,
            "linked_at": link.linked_at,
        }
        put_listed = {
            "TableName": self.table,
            "Item": dynamo.marshal(listed),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        return [{"Update": member}, {"Put": manages}, {"Put": put_listed}]

    def leave_items(self, link: Link, left_at: str, result: dict[str, Any]) -> list[dict[str, Any]]:
        """The end of a stint (besides the ledger's writes): ``MANAGES`` left (if its attributed
        points are still those the leave read), ``MGR#`` gone, ``MLEFT#`` with the result."""
        tenant, manager, company = link.tenant_id, link.member_id, link.company_id
        manages = {
            "TableName": self.table,
            "Key": _member_key(tenant, manager, MANAGES_SK),
            "UpdateExpression": "SET #status = :left, left_at = :at",
            "ConditionExpression": "#status = :linked AND seq = :seq AND company_id = :c "
            "AND earned_company = :ec AND earned_self = :es",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": dynamo.values(
                {
                    ":left": LEFT,
                    ":at": left_at,
                    ":linked": LINKED,
                    ":seq": link.seq,
                    ":c": company,
                    ":ec": link.earned_company,
                    ":es": link.earned_self,
                }
            ),
        }
        unlisted = {
            "TableName": self.table,
            "Key": _member_key(tenant, company, manager_sk(manager)),
            "ConditionExpression": "seq = :seq",
            "ExpressionAttributeValues": dynamo.values({":seq": link.seq}),
        }
        record = {
            "pk": keys.member_pk(tenant, company),
            "sk": left_sk(manager),
            "tenant_id": tenant,
            "manager_id": manager,
            "seq": link.seq,
            "left_at": left_at,
            "result": json.dumps(result, sort_keys=True),
        }
        return [
            {"Update": manages},
            {"Delete": unlisted},
            {"Put": {"TableName": self.table, "Item": dynamo.marshal(record)}},
        ]

    def count_points(self, link: Link, *, on_company: bool, points: int) -> dict[str, Any]:
        """The ``Update`` that adds ``points`` (negative for a refund's clawback) to what the stint
        attributes to the manager's purchases, if the stint is still on."""
        name = "earned_company" if on_company else "earned_self"
        update = {
            "TableName": self.table,
            "Key": _member_key(link.tenant_id, link.member_id, MANAGES_SK),
            "UpdateExpression": f"ADD {name} :p",
            "ConditionExpression": "#status = :linked AND seq = :seq AND company_id = :c",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": dynamo.values(
                {":p": points, ":linked": LINKED, ":seq": link.seq, ":c": link.company_id}
            ),
        }
        return {"Update": update}

    def write(self, items: list[dict[str, Any]]) -> None:
        self.client.transact_write_items(TransactItems=items)
