"""The README's worked example ("Running a program"), end to end on Anvil: a coffee chain with
1 point per dollar net, 2x on pastries on Mondays, gold at $500 net over 365 days earning 1.25x,
a "plus" tier members can buy (in money or in points), a holiday campaign with a 50,000-point
budget and a 500-point cap per member, and referrals paying 200 to each side. Every number the
README quotes is asserted here."""

from datetime import UTC, datetime, timedelta, timezone

from support.backend import ADMIN_KEY, auth, confirm_all, make_member, make_partner, post, token_of

RULES = [
    {"name": "1 point per dollar net", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}},
    {"name": "2x pastries on Mondays", "conditions": {"categories": ["pastries"], "days_of_week": [1]},
     "calculator": {"strategy": "multiplier", "rule_id": 1, "numerator": 2, "denominator": 1}},
    {"name": "200 for a friend", "trigger": "referral", "beneficiary": "referrer", "conditions": {"min_net_minor": 1_000},
     "calculator": {"strategy": "fixed", "points": 200}, "limits": {"per_member": 2_000, "period": "year"}},
    {"name": "200 for joining", "trigger": "referral", "beneficiary": "friend", "conditions": {"min_net_minor": 1_000},
     "calculator": {"strategy": "fixed", "points": 200}},
]  # fmt: skip
LADDER = {
    "tiers": [
        {"name": "bronze", "threshold": 0},
        {"name": "silver", "threshold": 20_000},
        {"name": "gold", "threshold": 50_000, "multiplier_numerator": 5, "multiplier_denominator": 4, "benefits": ["free refills"]},
        {"name": "plus", "threshold": 100_000, "multiplier_numerator": 3, "multiplier_denominator": 2, "benefits": ["free delivery"]},
    ],
    "metric": "net_spend", "window_days": 365, "downgrade": "one_down", "review": "anniversary",
}  # fmt: skip
LATTES = {"sku": "latte", "category": "drinks", "quantity": 2, "unit_price_minor": 450}
CROISSANT = {"sku": "croissant", "category": "pastries", "quantity": 1, "unit_price_minor": 325, "discount_minor": 25}
DELIVERY = {"sku": "delivery", "quantity": 1, "unit_price_minor": 500, "kind": "shipping"}
BEANS = {"sku": "beans", "category": "retail", "quantity": 1}


def _monday(weeks_ago: int = 0) -> str:
    """Monday 09:30 in New York, this week (or `weeks_ago`), never in the future."""
    new_york = datetime.now(UTC).astimezone(timezone(timedelta(hours=-5)))
    monday = (new_york - timedelta(days=new_york.weekday(), weeks=weeks_ago)).replace(
        hour=9, minute=30, second=0, microsecond=0
    )
    return (monday if monday <= new_york else monday - timedelta(weeks=1)).isoformat()


def _tuesday() -> str:
    return (datetime.fromisoformat(_monday(1)) + timedelta(days=1)).isoformat()


def _order(member, order_id, *lines, at=None):
    return {
        "member_id": member["id"],
        "order_id": order_id,
        "occurred_at": at or datetime.now(UTC).isoformat(),
        "currency": "USD",
        "lines": list(lines),
    }


def _buy(client, partner, member, order_id, *lines, at=None):
    response = post(client, "/v1/purchases", _order(member, order_id, *lines, at=at), partner["api_key"])
    assert response.status_code == 202, response.text
    return response.json()


def test_theCoffeeChain_asTheReadmeWorksItThrough(client, writer):
    assert client.put("/v1/programs/1/tiers", json=LADDER, headers=auth(ADMIN_KEY)).status_code == 200
    cafe = make_partner(client, "Cafe", budget=1_000_000)
    key = cafe["api_key"]
    for rule in RULES:
        assert post(client, "/v1/rules", rule, key).status_code == 201, rule
    now = datetime.now(UTC)
    holiday = {"name": "Holiday double points", "starts_at": (now - timedelta(days=1)).isoformat(), "ends_at": (now + timedelta(days=6)).isoformat(),
               "effect": {"kind": "multiplier", "numerator": 2, "denominator": 1}, "budget_points": 50_000, "per_member_points": 500}  # fmt: skip

    # 1. A Monday basket: 12 points for $12.00 net (delivery earns nothing), 3 more for the pastry.
    simulated = post(
        client, "/v1/rules/simulate", {"occurred_at": _monday(), "lines": [LATTES, CROISSANT, DELIVERY]}, key
    ).json()
    tuesday = post(
        client, "/v1/rules/simulate", {"occurred_at": _tuesday(), "lines": [LATTES, CROISSANT, DELIVERY]}, key
    ).json()
    assert [(a["reason"], a["points"]) for a in simulated["awards"]] == [
        ("1 point per dollar net", 12),
        ("2x pastries on Mondays", 3),
    ]
    assert (simulated["total_points"], tuesday["total_points"]) == (15, 12)

    # 2. Gold at $500 of net spend: Ann's $600 of beans earn 600, then her Monday basket 15 + 3 (x1.25).
    ann = make_member(client, key)
    beans = _buy(client, cafe, ann, "A-1", {**BEANS, "unit_price_minor": 60_000})
    gold = _buy(client, cafe, ann, "A-2", LATTES, CROISSANT, DELIVERY, at=_monday())
    assert beans["total_points"] == 600
    assert [(a["tier"], a["points"]) for a in gold["awards"]] == [(None, 12), (None, 3), ("gold", 3)]

    # 3. Plus, bought for $9.99 for 30 days (or for 2,000 points): a $12 Tuesday basket earns 12 + 6.
    ben = make_member(client, key)
    bought = post(client, f"/v1/members/{ben['id']}/tier-subscriptions",
                  {"tier": "plus", "period_days": 30, "currency": "USD", "price_minor": 999, "payment_ref": "stripe:pi_1"}, key)  # fmt: skip
    assert bought.status_code == 201, bought.text
    plus = _buy(client, cafe, ben, "B-1", LATTES, CROISSANT, DELIVERY, at=_tuesday())
    assert [(a["tier"], a["points"]) for a in plus["awards"]] == [(None, 12), ("plus", 6)]
    reward = post(
        client,
        "/v1/rewards",
        {"name": "Plus for 30 days", "cost_points": 2_000, "stock": 1_000, "tier": "plus", "tier_period_days": 30},
        key,
    )
    assert reward.status_code == 201, reward.text

    # 4. The holiday campaign, from its own account: $40 earns 40 + 40; $600 earns 600 + 500 (the cap).
    campaign = post(client, "/v1/campaigns", holiday, key)
    assert campaign.status_code == 201, campaign.text
    cal = make_member(client, key)
    festive = _buy(client, cafe, cal, "C-1", {**BEANS, "unit_price_minor": 4_000})
    big = _buy(client, cafe, make_member(client, key), "C-2", {**BEANS, "unit_price_minor": 60_000})
    assert [(a["campaign_id"], a["points"]) for a in festive["awards"]] == [(None, 40), (campaign.json()["id"], 40)]
    assert [(a["campaign_id"], a["points"], a["capped_by"]) for a in big["awards"]] == [
        (None, 600, None),
        (campaign.json()["id"], 500, "per_member"),
    ]

    # 5. Referrals: Dee refers Eve; Eve's first purchase of $10 or more pays them 200 each.
    dee = make_member(client, key)
    eve = make_member(client, key, referral_code=dee["referral_code"])
    _buy(client, cafe, eve, "E-1", {**BEANS, "unit_price_minor": 1_200})

    confirm_all(writer)
    token = token_of(client)
    assert token.balance_of(ann["wallet_address"]) == 600 + 18
    assert token.balance_of(cal["wallet_address"]) == 80
    assert token.balance_of(dee["wallet_address"]) == 200
    assert token.balance_of(eve["wallet_address"]) == 12 + 12 + 200  # the holiday doubles her beans too
    assert token.issue_budget(campaign.json()["issuer_address"]) == 50_000 - 40 - 500 - 12
