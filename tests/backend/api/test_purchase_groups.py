"""Orders recorded together (`purchases.record_many`, what the API's group writer does under
load) end as they would one by one: each order sees what the orders before it in the group
changed (the member's caps and tier, the partner's and campaigns' budgets, the member's debt),
and a refused order changes nothing for the others."""

from datetime import UTC, datetime, timedelta

from support.backend import ADMIN_KEY, auth, confirm_all, make_member, make_partner, post, token_of

from loyalty.domain.earning.context import Line
from loyalty.errors import DomainError
from loyalty.services import purchases
from loyalty.services.uow import UnitOfWork

RULES = [
    {"name": "1 per dollar", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}},
    {"name": "5 per mug, 20 a day", "conditions": {"skus": ["mug"]}, "calculator": {"strategy": "per_item", "points": 5},
     "limits": {"per_member": 20, "period": "day"}},
]  # fmt: skip
LADDER = {
    "tiers": [
        {"name": "bronze", "threshold": 0},
        {"name": "gold", "threshold": 10_000, "multiplier_numerator": 3, "multiplier_denominator": 2},
    ]
}


def _shop(client, name):
    partner = make_partner(client, name, budget=400)
    for rule in RULES:
        assert post(client, "/v1/rules", rule, partner["api_key"]).status_code == 201
    now = datetime.now(UTC)
    campaign = {"name": "double", "starts_at": (now - timedelta(days=1)).isoformat(), "ends_at": (now + timedelta(days=1)).isoformat(),
                "effect": {"kind": "bonus", "points": 30}, "budget_points": 70, "per_member_points": 60}  # fmt: skip
    assert post(client, "/v1/campaigns", campaign, partner["api_key"]).status_code == 201
    return partner, [make_member(client, partner["api_key"]) for _ in range(2)]


def _orders(partner, members, stranger):
    now = datetime.now(UTC)
    ann, ben = members
    mugs = lambda n, dollars: [Line("mug", "", n, dollars * 100 // n)]  # noqa: E731
    plan = [
        (ann, "1", mugs(2, 120)),  # 120 + 10 (mugs) + 30 (the campaign); gold from now on (over $100)
        (ann, "2", mugs(3, 51)),  # 51 + 10 (the day's mug cap) + 30 (gold's x1.5) + 30
        (ann, "2", mugs(1, 5)),  # the same order again: refused
        (stranger, "3", mugs(1, 5)),  # not this partner's member: refused
        (ben, "4", mugs(1, 10)),  # 10 + 5, and the campaign's last 10 of its 70 (its cap per member is 60)
        (ben, "5", mugs(1, 300)),  # beyond the partner's budget: refused
        (ben, "6", mugs(1, 10)),  # the campaign spent: 0 from it, shown
    ]
    return [
        purchases.Order(partner["id"], member["id"], f"G-{order_id}", now, "USD", lines)
        for member, order_id, lines in plan
    ]


def _outcome(result):
    if isinstance(result, DomainError):
        return result.code.value
    return [(a["reason"], a["tier"], a["points"], a["capped_by"]) for a in result.awards]


def test_ordersRecordedTogether_endAsTheyWouldOneByOne(client, writer):
    assert client.put("/v1/programs/1/tiers", json=LADDER, headers=auth(ADMIN_KEY)).status_code == 200
    grouped, grouped_members = _shop(client, "Together")
    alone, alone_members = _shop(client, "Alone")
    stranger = make_member(client, make_partner(client, "Elsewhere")["api_key"])
    runtime = client.app.state.runtime

    with runtime.sessions() as session:
        together = purchases.record_many(UnitOfWork.of(runtime, session), _orders(grouped, grouped_members, stranger))
        outcomes = [_outcome(r) for r in together]  # before the session closes
        session.commit()
    one_by_one = []
    for order in _orders(alone, alone_members, stranger):
        with runtime.sessions() as session:
            one_by_one.append(_outcome(purchases.record_many(UnitOfWork.of(runtime, session), [order])[0]))
            session.commit()
    confirm_all(writer)

    assert outcomes == one_by_one
    assert outcomes[2:4] == ["order_exists", "member_not_found"] and outcomes[5] == "budget_exceeded"
    assert outcomes[1] == [("1 per dollar", None, 51, None), ("5 per mug, 20 a day", None, 10, "per_member"),
                           ("gold tier: x3/2", "gold", 30, None), ("double", None, 30, None)]  # fmt: skip
    assert outcomes[6][-1] == ("double", None, 0, "budget")
    token = token_of(client)
    balances = lambda members: [token.balance_of(m["wallet_address"]) for m in members]  # noqa: E731
    assert balances(grouped_members) == balances(alone_members) == [160 + 121, 25 + 15]


def test_aDebtPaidInAGroup_givesTheBudgetBackToTheOrdersAfterIt(client, writer):
    """A release that pays a debt issues less: the partner's budget has the rest for the next
    order in the group, as it would have one by one."""
    runtime = client.app.state.runtime
    setups = []
    for name in ("Together", "Alone"):
        partner = make_partner(client, name, budget=300)
        assert post(client, "/v1/rules", RULES[0], partner["api_key"]).status_code == 201
        member = make_member(client, partner["api_key"])
        order = {"member_id": member["id"], "order_id": "D-0", "occurred_at": datetime.now(UTC).isoformat(), "currency": "USD",
                 "lines": [{"sku": "beans", "quantity": 1, "unit_price_minor": 10_000}]}  # fmt: skip
        assert post(client, "/v1/purchases", order, partner["api_key"]).status_code == 202  # 100 minted
        assert post(client, "/v1/purchases/D-0/refunds", {"refund_id": "all"}, partner["api_key"]).status_code == 201
        setups.append((partner, member))  # 200 left, and a debt of 100
    now = datetime.now(UTC)
    plans = [
        [purchases.Order(p["id"], m["id"], f"D-{n}", now, "USD", [Line("beans", "", 1, dollars * 100)]) for n, dollars in ((1, 200), (2, 100))]
        for p, m in setups
    ]  # fmt: skip

    with runtime.sessions() as session:
        together = [_outcome(r) for r in purchases.record_many(UnitOfWork.of(runtime, session), plans[0])]
        session.commit()
    alone = []
    for order in plans[1]:
        with runtime.sessions() as session:
            alone.append(_outcome(purchases.record_many(UnitOfWork.of(runtime, session), [order])[0]))
            session.commit()
    confirm_all(writer)

    assert together == alone == [[("1 per dollar", None, 200, None)], [("1 per dollar", None, 100, None)]]
    token = token_of(client)
    assert [token.balance_of(m["wallet_address"]) for _, m in setups] == [
        100 + 100 + 100
    ] * 2  # 200 paid 100 of the debt
