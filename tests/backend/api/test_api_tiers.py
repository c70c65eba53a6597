"""Tiers end to end: gained on a purchase and multiplying the next one, kept until the yearly
review and then one step down, bought for a period (the higher of earned and paid counts), and
taken back by a refund on a real-time ladder."""

from datetime import UTC, datetime, timedelta

from support.backend import (
    ADMIN_KEY,
    auth,
    confirm_all,
    make_member,
    make_partner,
    post,
    redemption_code,
    sign_in,
    token_of,
)

from loyalty.db.models import TierSubscription
from loyalty.services import tiers

PER_DOLLAR = {"name": "1 point per dollar net", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}}
LADDER = {
    "tiers": [
        {"name": "bronze", "threshold": 0},
        {"name": "silver", "threshold": 20_000, "benefits": ["birthday treat"]},
        {
            "name": "gold",
            "threshold": 50_000,
            "multiplier_numerator": 5,
            "multiplier_denominator": 4,
            "benefits": ["free refills"],
        },
        {"name": "platinum", "threshold": 100_000, "multiplier_numerator": 3, "multiplier_denominator": 2},
    ],
    "metric": "net_spend",
    "window_days": 365,
}


def _ladder(client, **changes):
    response = client.put("/v1/programs/1/tiers", json={**LADDER, **changes}, headers=auth(ADMIN_KEY))
    assert response.status_code == 200, response.text


def _shop(client):
    partner = make_partner(client)
    assert post(client, "/v1/rules", PER_DOLLAR, partner["api_key"]).status_code == 201
    return partner, make_member(client, partner["api_key"])


def _buy(client, partner, member, order_id, dollars):
    body = {"member_id": member["id"], "order_id": order_id, "occurred_at": datetime.now(UTC).isoformat(), "currency": "USD",
            "lines": [{"sku": "beans", "quantity": 1, "unit_price_minor": dollars * 100}]}  # fmt: skip
    response = post(client, "/v1/purchases", body, partner["api_key"])
    assert response.status_code == 202, response.text
    return response.json()


def _tier(client, partner, member, key=ADMIN_KEY):
    """The member's tier as the admin sees it (a partner sees no metric values)."""
    response = client.get(f"/v1/members/{member['id']}/tier", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def test_goldTier_isGainedAtFiveHundredDollars_andMultipliesTheNextPurchase(client, writer):
    _ladder(client)
    partner, member = _shop(client)

    first = _buy(client, partner, member, "T-1", 600)
    second = _buy(client, partner, member, "T-2", 12)
    confirm_all(writer)

    assert first["total_points"] == 600  # no tier yet when it was priced
    assert [(a["points"], a["tier"]) for a in second["awards"]] == [(12, None), (3, "gold")]
    assert token_of(client).balance_of(member["wallet_address"]) == 615
    tier = _tier(client, partner, member)
    assert (tier["tier"], tier["earned_tier"], tier["value"], tier["threshold"]) == ("gold", "gold", 61_200, 50_000)
    assert (tier["next_tier"], tier["required_for_next"], tier["points_required_to_remain"]) == ("platinum", 38_800, 0)
    assert tier["benefits"] == ["free refills"] and (tier["multiplier_numerator"], tier["multiplier_denominator"]) == (
        5,
        4,
    )
    assert tier["next_review_at"] is not None
    mine = client.get("/v1/me/tier", headers=auth(sign_in(client, member))).json()
    assert (mine["tier"], mine["value"]) == ("gold", 61_200)
    as_partner = _tier(client, partner, member, partner["api_key"])  # the spend is at every partner: not its to see
    assert (as_partner["tier"], as_partner["value"], as_partner["required_for_next"]) == ("gold", None, None)


def test_atTheAnniversary_aMemberWhoStoppedBuyingGoesOneStepDown(client):
    _ladder(client)
    partner, member = _shop(client)
    _buy(client, partner, member, "A-1", 1_200)  # platinum
    assert _tier(client, partner, member)["tier"] == "platinum"
    sessions = client.app.state.runtime.sessions

    def review(after: timedelta) -> int:
        with sessions() as session:
            reviewed = tiers.review_due(session, datetime.now(UTC) + after)
            session.commit()
            return reviewed

    assert review(timedelta(days=300)) == 0  # not due yet: kept, though nothing was bought since
    assert review(timedelta(days=366)) == 1
    assert _tier(client, partner, member)["tier"] == "gold"


def test_aPaidTier_countsWhileItRuns_andCancellingEndsIt(client, writer):
    _ladder(client)
    partner, member = _shop(client)
    path = f"/v1/members/{member['id']}/tier-subscriptions"
    body = {"tier": "gold", "period_days": 30, "currency": "USD", "price_minor": 999, "payment_ref": "pay_1"}

    bought = post(client, path, body, partner["api_key"])
    renewed = post(client, path, {**body, "payment_ref": "pay_2"}, partner["api_key"])
    reused = post(client, path, body, partner["api_key"])
    priced = _buy(client, partner, member, "P-1", 20)

    assert bought.status_code == 201 and renewed.status_code == 201, (bought.text, renewed.text)
    assert renewed.json()["starts_at"] == bought.json()["ends_at"]  # a renewal starts when the first ends
    assert (reused.status_code, reused.json()["code"]) == (409, "payment_used")
    assert priced["total_points"] == 25
    tier = _tier(client, partner, member)
    assert (tier["tier"], tier["earned_tier"], tier["paid_tier"]) == ("gold", "bronze", "gold")

    for subscription in (bought.json(), renewed.json()):
        cancelled = post(client, f"{path}/{subscription['id']}/cancel", None, partner["api_key"])
        assert cancelled.status_code == 200 and cancelled.json()["cancelled_at"], cancelled.text
    assert _tier(client, partner, member)["tier"] == "bronze"


def test_onARealTimeLadder_aRefundTakesTheTierAndItsMultiplierBack(client, writer):
    _ladder(client, review="real_time", downgrade="recompute")
    partner, member = _shop(client)
    _buy(client, partner, member, "R-1", 520)  # gold
    order = _buy(client, partner, member, "R-2", 40)  # 40 + 10 (gold)
    assert order["total_points"] == 50

    refunded = post(client, "/v1/purchases/R-1/refunds", {"refund_id": "all"}, partner["api_key"]).json()
    whole_line = post(
        client,
        "/v1/purchases/R-2/refunds",
        {"refund_id": "line", "lines": [{"sku": "beans", "quantity": 1}]},
        partner["api_key"],
    )

    assert refunded["points_reversed"] == 520
    assert _tier(client, partner, member)["tier"] == "bronze"  # $40 net left in the window
    assert (whole_line.status_code, whole_line.json()["points_reversed"]) == (201, 50)  # its 40 and the tier's 10


def test_aPartialRefund_takesTheTiersMultiplierBackInProportion(client, writer):
    _ladder(client)
    partner, member = _shop(client)
    _buy(client, partner, member, "G-1", 600)  # gold from now on
    body = {"member_id": member["id"], "order_id": "G-2", "occurred_at": datetime.now(UTC).isoformat(), "currency": "USD",
            "lines": [{"sku": "mug", "quantity": 4, "unit_price_minor": 1_000}]}  # fmt: skip
    order = post(client, "/v1/purchases", body, partner["api_key"]).json()
    half = post(
        client,
        "/v1/purchases/G-2/refunds",
        {"refund_id": "half", "lines": [{"sku": "mug", "quantity": 2}]},
        partner["api_key"],
    )
    quarter = post(
        client,
        "/v1/purchases/G-2/refunds",
        {"refund_id": "more", "lines": [{"sku": "mug", "quantity": 1}]},
        partner["api_key"],
    )

    assert [(a["points"], a["tier"]) for a in order["awards"]] == [(40, None), (10, "gold")]
    assert (half.status_code, half.json()["points_reversed"]) == (201, 20 + 5)
    assert quarter.json()["points_reversed"] == 10 + 3  # the tier keeps 5 x 10/20, rounded down: 2
    view = client.get("/v1/purchases/G-2", headers=auth(partner["api_key"])).json()
    assert view["total_points"] == 10 + 2


def test_aTierPaidInPoints_startsWhenTheRedemptionPosts(client, writer):
    _ladder(client)
    partner, member = _shop(client)
    plus = {"name": "Gold for 30 days", "cost_points": 500, "stock": 100, "tier": "gold", "tier_period_days": 30}
    reward = post(client, "/v1/rewards", plus, partner["api_key"])
    nowhere = post(client, "/v1/rewards", {**plus, "tier": "diamond"}, partner["api_key"])
    _buy(client, partner, member, "E-1", 600)  # 600 points; earns gold too, but let it lapse: bought is what counts
    confirm_all(writer)
    code = redemption_code(client, member, partner)

    redeemed = post(
        client,
        "/v1/redemptions",
        {"member_id": member["id"], "reward_id": reward.json()["id"], "redemption_code": code},
        partner["api_key"],
    )
    confirm_all(writer)

    assert reward.status_code == 201 and reward.json()["tier"] == "gold", reward.text
    assert (nowhere.status_code, nowhere.json()["code"]) == (422, "validation_error")
    assert redeemed.status_code == 201, redeemed.text
    assert token_of(client).balance_of(member["wallet_address"]) == 100
    tier = _tier(client, partner, member)
    assert (tier["paid_tier"], tier["paid_until"] is not None) == ("gold", True)
    with client.app.state.runtime.sessions() as session:
        [bought] = session.query(TierSubscription).filter_by(member_id=member["id"]).all()
    assert (bought.price_points, bought.currency, bought.redemption_id) == (500, None, redeemed.json()["id"])


def test_paidTiers_onlyTheOperatorGivesAway_andOnlyTheSellerCancels(client):
    _ladder(client)
    seller, member = _shop(client)
    other = make_partner(client, "Other")
    post(client, f"/v1/members/{member['id']}/links", {"partner_id": other["id"]}, ADMIN_KEY)
    path = f"/v1/members/{member['id']}/tier-subscriptions"
    body = {"tier": "platinum", "period_days": 30, "currency": "USD", "price_minor": 0, "payment_ref": "free"}

    free = post(client, path, body, other["api_key"])
    comped = post(client, path, body, ADMIN_KEY)
    sold = post(client, path, {**body, "price_minor": 999, "payment_ref": "p-1"}, seller["api_key"]).json()
    by_other = post(client, f"{path}/{sold['id']}/cancel", None, other["api_key"])
    by_seller = post(client, f"{path}/{sold['id']}/cancel", None, seller["api_key"])

    assert (free.status_code, free.json()["code"]) == (422, "validation_error")
    assert comped.status_code == 201
    assert by_other.status_code == 404
    assert by_seller.status_code == 200


def test_paymentReferencesOfTheProgram_andTierRewardsOffTheLadder_areRefused(client, writer):
    _ladder(client)
    partner, member = _shop(client)
    path = f"/v1/members/{member['id']}/tier-subscriptions"
    taken = post(
        client,
        path,
        {"tier": "gold", "period_days": 30, "currency": "USD", "price_minor": 999, "payment_ref": "redemption:1"},
        partner["api_key"],
    )
    reward = post(
        client,
        "/v1/rewards",
        {"name": "Gold", "cost_points": 10, "stock": 5, "tier": "gold", "tier_period_days": 30},
        partner["api_key"],
    ).json()
    _buy(client, partner, member, "L-1", 20)
    confirm_all(writer)
    _ladder(client, tiers=[{"name": "bronze", "threshold": 0}, {"name": "silver", "threshold": 20_000}])  # gold gone
    code = redemption_code(client, member, partner)
    redeemed = post(
        client,
        "/v1/redemptions",
        {"member_id": member["id"], "reward_id": reward["id"], "redemption_code": code},
        partner["api_key"],
    )

    assert (taken.status_code, taken.json()["code"]) == (422, "validation_error")
    assert (redeemed.status_code, redeemed.json()["code"]) == (409, "reward_inactive")
    assert client.get(f"/v1/rewards/{reward['id']}", headers=auth(partner["api_key"])).json()["active"] is False
    assert token_of(client).balance_of(member["wallet_address"]) == 20  # nothing burned for a tier that is gone


def test_aVoidedRedemption_endsTheTierItHadBought(client, writer):
    """Its burn posted (the tier started), a reorg took it away, and sent again it was refused."""
    from loyalty.db.models import Redemption, RedemptionStatus
    from loyalty.services import redemptions

    _ladder(client)
    partner, member = _shop(client)
    reward = post(
        client,
        "/v1/rewards",
        {"name": "Gold", "cost_points": 10, "stock": 5, "tier": "gold", "tier_period_days": 30},
        partner["api_key"],
    ).json()
    _buy(client, partner, member, "V-1", 20)
    confirm_all(writer)
    code = redemption_code(client, member, partner)
    redeemed = post(
        client,
        "/v1/redemptions",
        {"member_id": member["id"], "reward_id": reward["id"], "redemption_code": code},
        partner["api_key"],
    ).json()
    confirm_all(writer)
    assert _tier(client, partner, member)["paid_tier"] == "gold"

    with client.app.state.runtime.sessions() as session:
        row = session.get(Redemption, redeemed["id"])
        row.status = RedemptionStatus.RESERVED  # as a reorg leaves it
        session.flush()
        redemptions.void(session, row, "LoyaltyInsufficientBalance: sent again, refused")
        session.commit()
    assert _tier(client, partner, member)["paid_tier"] is None
