"""Cards over real HTTP: issue, link, look up; accrue and redeem by card; sale and test cards;
replacing a lost card; handing a card to another member; bad input; other tenants.

The ledger stays per member: what a card does shows on its member (``GET /v1/members/{id}`` and
its entries, whose ``details`` name the card; a member of the demo program also has its welcome
bonus, booked at enrolment, not by card). The demo program does not allow hand-overs; the
hand-overs that go through run on a stack of this module's own, whose demo tenant gets a second
program that allows them and gives no one-off bonuses, so that its members hold exactly what the
test gave them (seeded into the config table through the stack's AWS endpoint: the programs API
was not there yet).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from loyalty import cards as card_rules
from loyalty.admin import demo_program
from tests.support.aws import dynamodb_client
from tests.support.programs import without_one_off_bonuses

from .conftest import CURRENCY, WELCOME, Api, new_id, retry_busy, silver_points

pytestmark = pytest.mark.e2e

BIG_ORDER = 1_000_000  # 10,000.00 RUB: 300 points at Silver
HANDOVER_PROGRAM = "cards-handover"


def key(stack: dict[str, Any], role: str, tenant: str = "demo") -> str:
    return stack["tenants"][tenant]["api_keys"][role]


@pytest.fixture(scope="module")
def staff(api: Api) -> Iterator[dict[str, Api]]:
    clients = {role: Api(api.stack, key(api.stack, role)) for role in ("manager", "senior", "admin")}
    clients["other"] = Api(api.stack, key(api.stack, "admin", "other"))
    yield clients
    for client in clients.values():
        client.session.close()


def issue(client: Api, **body: Any) -> dict[str, Any]:
    answer = client.post("/v1/cards", {"kind": "virtual", **body})
    assert answer.status_code == 201, answer.text
    card = answer.json()
    assert card_rules.is_valid(card["card_number"]) and len(card["card_number"]) == 16
    return card


def card_of(client: Api, number: str) -> dict[str, Any]:
    answer = client.get(f"/v1/cards/{number}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def purchase_body(order_id: str | None = None, amount: int = BIG_ORDER) -> dict[str, Any]:
    return {"order_id": order_id or new_id("o"), "amount": amount, "currency": CURRENCY}


def spend_body(points: int, order_id: str | None = None) -> dict[str, Any]:
    return {"order_id": order_id or new_id("r"), "points": points, "order_amount": BIG_ORDER, "currency": CURRENCY}


# ---------------------------------------------------------------------------- the life of a card


def test_issue_link_look_up_and_accrue_and_redeem_by_card(api: Api, staff: dict[str, Api]) -> None:
    member_id = api.enrol()
    card = issue(staff["manager"], kind="physical")
    assert {k: card[k] for k in ("kind", "status", "member_id", "test")} == {
        "kind": "physical",
        "status": "active",
        "member_id": None,
        "test": False,
    }
    linked = staff["manager"].post(f"/v1/cards/{card['card_number']}/link", {"member_id": member_id})
    assert linked.status_code == 200 and linked.json()["member_id"] == member_id, linked.text
    again = staff["manager"].post(f"/v1/cards/{card['card_number']}/link", {"member_id": member_id})
    assert again.status_code == 200 and again.json() == linked.json()

    number = card["card_number"]
    order = new_id("o")
    bought = api.post(f"/v1/cards/{number}/purchases", purchase_body(order))
    assert bought.status_code == 201, bought.text
    assert bought.json()["points"] == silver_points(BIG_ORDER) == 300
    assert (bought.json()["member_id"], bought.json()["card_number"]) == (member_id, number)
    repeat = api.post(f"/v1/cards/{number}/purchases", purchase_body(order))
    assert repeat.status_code == 201 and repeat.json() == bought.json()  # once per order_id
    by_member = api.post(f"/v1/members/{member_id}/purchases", purchase_body(order))
    assert by_member.status_code == 201 and by_member.json()["entry_id"] == bought.json()["entry_id"]
    spent = api.post(f"/v1/cards/{number}/redemptions", spend_body(120))
    assert spent.status_code == 201, spent.text
    assert (spent.json()["balance"], spent.json()["member_id"]) == (WELCOME + 180, member_id)

    state = api.balanced(member_id)
    assert state["member"]["balance"] == WELCOME + 180
    *by_card, welcome = state["entries"]
    assert (welcome["type"], welcome["points"]) == ("welcome_bonus", WELCOME)  # booked at enrolment
    assert [(e["type"], e["details"]["card_number"]) for e in by_card] == [
        ("redemption", number),
        ("accrual", number),
    ]
    assert all("test" not in e["details"] for e in by_card)
    seen = card_of(api, number)  # the shop's key reads cards (members:read)
    assert seen["member_id"] == member_id and seen["member"]["member_id"] == member_id
    assert (seen["member"]["balance"], seen["member"]["available"]) == (WELCOME + 180, WELCOME + 180)
    # A member may have several cards; all book on the one balance.
    second = issue(staff["manager"], member_id=member_id)
    assert api.post(f"/v1/cards/{second['card_number']}/purchases", purchase_body()).status_code == 201
    assert api.balanced(member_id)["member"]["balance"] == WELCOME + 480


def test_an_unlinked_or_blocked_card_is_a_409_and_books_nothing(api: Api, staff: dict[str, Api]) -> None:
    member_id = api.enrol()
    unlinked = issue(staff["manager"])["card_number"]
    problem = Api.problem(api.post(f"/v1/cards/{unlinked}/purchases", purchase_body()), 409, "conflict")
    assert f"/v1/cards/{unlinked}/link" in problem["detail"]
    Api.problem(api.post(f"/v1/cards/{unlinked}/redemptions", spend_body(1)), 409, "conflict")
    assert card_of(api, unlinked)["member"] is None

    lost = issue(staff["manager"], member_id=member_id)["card_number"]
    api.post(f"/v1/cards/{lost}/purchases", purchase_body()).raise_for_status()
    before = api.balanced(member_id)
    Api.problem(staff["manager"].post(f"/v1/cards/{lost}/replace"), 403, "forbidden")
    replaced = staff["senior"].post(f"/v1/cards/{lost}/replace")
    assert replaced.status_code == 201, replaced.text
    blocked, new = replaced.json()["blocked"], replaced.json()["card"]
    assert (blocked["status"], blocked["replaced_by"]) == ("blocked", new["card_number"])
    assert (new["status"], new["member_id"], new["replaces"], new["kind"]) == ("active", member_id, lost, "virtual")
    again = staff["senior"].post(f"/v1/cards/{lost}/replace")
    assert again.status_code == 201 and again.json() == replaced.json()  # the same replacement
    # The balance is the member's: nothing moved, and the new card spends it.
    assert api.balanced(member_id) == before
    problem = Api.problem(api.post(f"/v1/cards/{lost}/purchases", purchase_body()), 409, "conflict")
    assert problem["replaced_by"] == new["card_number"]
    Api.problem(api.post(f"/v1/cards/{lost}/redemptions", spend_body(1)), 409, "conflict")
    Api.problem(staff["manager"].post(f"/v1/cards/{lost}/link", {"member_id": api.enrol()}), 409, "conflict")
    assert api.balanced(member_id) == before
    spent = api.post(f"/v1/cards/{new['card_number']}/redemptions", spend_body(WELCOME + 300))  # all of it
    assert spent.status_code == 201 and spent.json()["balance"] == 0, spent.text
    assert card_of(api, lost)["status"] == "blocked"


def test_a_card_has_at_most_one_member(api: Api, staff: dict[str, Api]) -> None:
    first, second = api.enrol(), api.enrol()
    number = issue(staff["manager"], member_id=first)["card_number"]
    problem = Api.problem(staff["manager"].post(f"/v1/cards/{number}/link", {"member_id": second}), 409, "conflict")
    assert "handover" in problem["detail"]
    assert card_of(api, number)["member_id"] == first


def test_sale_and_test_cards(api: Api, staff: dict[str, Api]) -> None:
    member_id = api.enrol()
    Api.problem(staff["manager"].post("/v1/cards", {"kind": "virtual", "test": True}), 403, "forbidden")
    test_card = issue(staff["senior"], member_id=member_id, test=True)
    assert test_card["test"] is True
    number = test_card["card_number"]
    sale = {"price": 15_000, "currency": CURRENCY, "sold_at": "2026-01-05T10:00:00Z"}
    Api.problem(staff["manager"].post(f"/v1/cards/{number}/sale", sale), 403, "forbidden")
    sold = staff["senior"].post(f"/v1/cards/{number}/sale", sale)
    assert sold.status_code == 200, sold.text
    assert sold.json()["sale"] == {"price": 15_000, "currency": CURRENCY, "sold_at": "2026-01-05T10:00:00Z"}
    assert staff["senior"].post(f"/v1/cards/{number}/sale", sale).json() == sold.json()
    Api.problem(staff["senior"].post(f"/v1/cards/{number}/sale", {**sale, "price": 1}), 409, "conflict")
    assert card_of(api, number)["sale"]["price"] == 15_000

    api.post(f"/v1/cards/{number}/purchases", purchase_body()).raise_for_status()
    api.post(f"/v1/cards/{number}/redemptions", spend_body(10)).raise_for_status()
    *by_card, welcome = api.balanced(member_id)["entries"]
    assert [e["details"]["test"] for e in by_card] == [True, True]
    assert welcome["type"] == "welcome_bonus" and not (welcome["details"] or {}).get("test")  # not by card
    audit = staff["admin"].get(f"/v1/audit?member_id={member_id}").json()["records"]
    assert {"card.issue", "card.sale"} <= {r["action"] for r in audit}


def test_a_handover_is_refused_when_the_program_disallows_it(api: Api, staff: dict[str, Api]) -> None:
    giver, receiver = api.enrol(), api.enrol()
    number = issue(staff["manager"], member_id=giver)["card_number"]
    api.post(f"/v1/cards/{number}/purchases", purchase_body()).raise_for_status()
    before = (card_of(api, number), api.state(giver), api.state(receiver))
    body = {"to_member_id": receiver, "transfer_id": new_id("t")}
    Api.problem(staff["manager"].post(f"/v1/cards/{number}/handover", body), 403, "forbidden")
    problem = Api.problem(staff["senior"].post(f"/v1/cards/{number}/handover", body), 409, "conflict")
    assert "does not allow" in problem["detail"]
    assert (card_of(api, number), api.state(giver), api.state(receiver)) == before


# ---------------------------------------------------------------------------- hand-overs that go through


@pytest.fixture(scope="module")
def handover_stack(start_local_stack: Any) -> Iterator[dict[str, Api]]:
    """A stack whose demo tenant also has a program that allows card hand-overs."""
    stack = start_local_stack()
    dynamodb = dynamodb_client(stack["aws_endpoint"])
    from loyalty.store.config import ConfigStore

    program = without_one_off_bonuses(demo_program("demo"), program_id=HANDOVER_PROGRAM, allow_card_handover=True)
    ConfigStore(stack["tables"]["ConfigTable"], dynamodb).put_program(program)
    clients = {role: Api(stack, key(stack, role)) for role in ("integration", "manager", "senior", "admin")}
    yield clients
    for client in clients.values():
        client.session.close()


def test_a_handover_moves_the_card_and_the_points_exactly_once_under_retries(handover_stack: dict[str, Api]) -> None:
    api, senior = handover_stack["integration"], handover_stack["senior"]
    giver = api.enrol(program_id=HANDOVER_PROGRAM)
    receiver = api.enrol(program_id=HANDOVER_PROGRAM)
    number = issue(handover_stack["manager"], member_id=giver)["card_number"]
    api.post(f"/v1/cards/{number}/purchases", purchase_body()).raise_for_status()  # giver: 300
    api.post(f"/v1/members/{receiver}/purchases", purchase_body(amount=100_000)).raise_for_status()  # receiver: 30
    held = api.post(f"/v1/members/{giver}/holds", spend_body(50))  # held points stay with the giver
    assert held.status_code == 201, held.text

    body = {"to_member_id": receiver, "transfer_id": new_id("t")}

    def hand_over(_: int) -> requests.Response:
        with requests.Session() as session:
            return retry_busy(lambda: senior.post(f"/v1/cards/{number}/handover", body, session=session))[0]

    with ThreadPoolExecutor(max_workers=4) as pool:  # the same request four times at once...
        answers = list(pool.map(hand_over, range(4)))
    answers += [hand_over(0), hand_over(1)]  # ...and twice more after
    assert [answer.status_code for answer in answers] == [200] * 6, [answer.text for answer in answers]
    first = answers[0].json()
    assert all(answer.json() == first for answer in answers)
    assert (first["from_member_id"], first["to_member_id"], first["points"]) == (giver, receiver, 250)
    assert first["card"]["member_id"] == receiver and first["card"]["pending_handover"] is None

    giver_state, receiver_state = api.balanced(giver), api.balanced(receiver)
    assert (giver_state["member"]["balance"], giver_state["member"]["available"]) == (50, 0)
    assert receiver_state["member"]["balance"] == 280
    outs = [e for e in giver_state["entries"] if e["type"] == "transfer_out"]
    ins = [e for e in receiver_state["entries"] if e["type"] == "transfer_in"]
    assert [(e["points"], e["entry_id"]) for e in outs] == [(-250, first["entry_id"])]
    assert [(e["points"], e["entry_id"]) for e in ins] == [(250, first["to_entry_id"])]
    assert outs[0]["details"]["card_number"] == number == ins[0]["details"]["card_number"]
    # The same transfer_id for another member is refused; the card now books on the receiver.
    other = {"to_member_id": api.enrol(program_id=HANDOVER_PROGRAM), "transfer_id": body["transfer_id"]}
    Api.problem(senior.post(f"/v1/cards/{number}/handover", other), 409, "conflict")
    assert card_of(api, number)["member"]["member_id"] == receiver
    api.post(f"/v1/cards/{number}/purchases", purchase_body()).raise_for_status()
    assert api.balanced(receiver)["member"]["balance"] == 580
    assert api.balanced(giver)["member"]["balance"] == 50
    audit = handover_stack["admin"].get(f"/v1/audit?action=card.handover&member_id={receiver}").json()["records"]
    assert [(r["details"]["from_member_id"], r["target"]) for r in audit] == [(giver, number)]
    # Handing it back, under a new transfer_id, is a new hand-over.
    back = senior.post(f"/v1/cards/{number}/handover", {"to_member_id": giver, "transfer_id": new_id("t")})
    assert back.status_code == 200 and back.json()["points"] == 580, back.text
    assert api.balanced(giver)["member"]["balance"] == 630


# ---------------------------------------------------------------------------- bad input, other tenants


@pytest.fixture(scope="module")
def victim(api: Api, staff: dict[str, Api]) -> dict[str, Any]:
    member_id = api.enrol()
    number = issue(staff["manager"], member_id=member_id)["card_number"]
    api.post(f"/v1/cards/{number}/purchases", purchase_body()).raise_for_status()
    return {"member_id": member_id, "number": number}


def snapshot(api: Api, victim: dict[str, Any]) -> dict[str, Any]:
    return {"card": card_of(api, victim["number"]), **api.state(victim["member_id"])}


def mistyped(number: str) -> str:
    """The number with its last two digits swapped, or the last one changed if they are equal."""
    if number[-1] != number[-2]:
        return number[:-2] + number[-1] + number[-2]
    return number[:-1] + str((int(number[-1]) + 1) % 10)


ROUTES = {
    "get": ("GET", "", None),
    "link": ("POST", "/link", {"member_id": "someone"}),
    "purchases": ("POST", "/purchases", purchase_body("bad-1")),
    "redemptions": ("POST", "/redemptions", spend_body(1, "bad-2")),
    "sale": ("POST", "/sale", {"price": 100, "currency": CURRENCY}),
    "replace": ("POST", "/replace", None),
    "handover": ("POST", "/handover", {"to_member_id": "someone", "transfer_id": "bad-3"}),
}


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_mistyped_or_unknown_number_is_refused_and_writes_nothing(
    api: Api, staff: dict[str, Api], victim: dict[str, Any], route: str
) -> None:
    method, suffix, body = ROUTES[route]
    before = snapshot(api, victim)
    admin = staff["admin"]
    typo = admin.call(method, f"/v1/cards/{mistyped(victim['number'])}{suffix}", json_body=body)
    problem = Api.problem(typo, 422, "invalid-request")
    assert Api.fields_named(problem) == {"path:number"}, problem
    assert "check digit" in problem["detail"]
    for malformed in ("12345", "4111-1111-1111-1111", "4111111111111111111111"):
        answer = admin.call(method, f"/v1/cards/{malformed}{suffix}", json_body=body)
        assert "path:number" in Api.fields_named(Api.problem(answer, 422)), answer.text
    unknown = card_rules.generate()
    Api.problem(admin.call(method, f"/v1/cards/{unknown}{suffix}", json_body=body), 404, "not-found")
    # Another tenant's keys cannot see or use the card.
    stranger = staff["other"].call(method, f"/v1/cards/{victim['number']}{suffix}", json_body=body)
    Api.problem(stranger, 404, "not-found")
    assert snapshot(api, victim) == before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("", {"kind": "plastic"}, "kind"),
        ("", {"kind": 1}, "kind"),
        ("", {}, "kind"),
        ("", {"kind": "virtual", "test": "yes"}, "test"),
        ("", {"kind": "virtual", "member_id": 123}, "member_id"),
        ("", {"kind": "virtual", "prefix": "12a"}, "prefix"),
        ("", {"kind": "virtual", "prefix": "1290"}, "prefix"),
        ("", {"kind": "virtual", "colour": "gold"}, "colour"),
        ("", [{"kind": "virtual"}], "body"),
        ("/link", {"member_id": None}, "member_id"),
        ("/link", {}, "member_id"),
        ("/purchases", {**purchase_body(), "amount": "100"}, "amount"),
        ("/purchases", {**purchase_body(), "currency": "USD"}, "currency"),
        ("/redemptions", {**spend_body(1), "points": 1.5}, "points"),
        ("/sale", {"price": "100", "currency": CURRENCY}, "price"),
        ("/sale", {"price": -1, "currency": CURRENCY}, "price"),
        ("/sale", {"price": 100, "currency": "XXX"}, "currency"),
        ("/sale", {"price": 100, "currency": CURRENCY, "sold_at": "2026-01-05T10:00:00"}, "sold_at"),
        ("/sale", {"price": 100, "currency": CURRENCY, "sold_at": "2999-01-01T00:00:00Z"}, "sold_at"),
        ("/handover", {"to_member_id": "x"}, "transfer_id"),
        ("/handover", {"to_member_id": 5, "transfer_id": "t-1"}, "to_member_id"),
    ],
)
def test_wrong_fields_are_a_422_naming_them_and_write_nothing(
    api: Api, staff: dict[str, Api], victim: dict[str, Any], path: str, body: Any, field: str
) -> None:
    before = snapshot(api, victim)
    target = "/v1/cards" + (f"/{victim['number']}{path}" if path else "")
    client = api if path in ("/purchases", "/redemptions") else staff["admin"]
    problem = Api.problem(client.post(target, body), 422)
    assert field in Api.fields_named(problem), problem
    assert snapshot(api, victim) == before


def test_unknown_members_are_a_404_and_write_nothing(api: Api, staff: dict[str, Api], victim: dict[str, Any]) -> None:
    before = snapshot(api, victim)
    nobody = new_id("nobody")
    Api.problem(staff["manager"].post("/v1/cards", {"kind": "virtual", "member_id": nobody}), 404, "not-found")
    spare = issue(staff["manager"])["card_number"]
    Api.problem(staff["manager"].post(f"/v1/cards/{spare}/link", {"member_id": nobody}), 404, "not-found")
    assert card_of(api, spare)["member_id"] is None
    Api.problem(
        staff["admin"].post(f"/v1/cards/{victim['number']}/handover", {"to_member_id": nobody, "transfer_id": "t-x"}),
        404,
        "not-found",
    )
    assert snapshot(api, victim) == before
