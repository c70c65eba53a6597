"""Campaigns end to end on Anvil: each issues from an issuer account of its own whose on-chain
budget is the campaign's (moved there from the partner's), so the chain refuses overspend; a
campaign short of budget gives what is left or nothing, as it says; caps per member; refunds
give budget back; the auditor sees each campaign's figures apart."""

from datetime import UTC, datetime, timedelta

import pytest
from support.backend import auth, confirm_all, make_member, make_partner, post, token_of
from web3.exceptions import ContractCustomError

from loyalty.db.models import ChainWrite, Partner

PER_DOLLAR = {"name": "1 point per dollar net", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}}


def _window(days: int = 10) -> dict[str, str]:
    now = datetime.now(UTC)
    return {"starts_at": (now - timedelta(days=1)).isoformat(), "ends_at": (now + timedelta(days=days)).isoformat()}


def _campaign(client, partner, **fields):
    body = {
        "name": "Holiday double points",
        **_window(),
        "effect": {"kind": "multiplier", "numerator": 2, "denominator": 1},
        **fields,
    }
    response = post(client, "/v1/campaigns", body, partner["api_key"])
    assert response.status_code == 201, response.text
    return response.json()


def _buy(client, partner, member, order_id, dollars, **line):
    body = {"member_id": member["id"], "order_id": order_id, "occurred_at": datetime.now(UTC).isoformat(), "currency": "USD",
            "lines": [{"sku": "beans", "category": "coffee", "quantity": 1, "unit_price_minor": dollars * 100, **line}]}  # fmt: skip
    response = post(client, "/v1/purchases", body, partner["api_key"])
    assert response.status_code == 202, response.text
    return response.json()


def _shop(client, budget=100_000):
    partner = make_partner(client, budget=budget)
    assert post(client, "/v1/rules", PER_DOLLAR, partner["api_key"]).status_code == 201
    return partner, make_member(client, partner["api_key"])


def _get(client, path, key):
    response = client.get(path, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def test_campaign_issuesFromItsOwnAccount_untilItsOnChainBudgetRunsOut(client, writer):
    partner, member = _shop(client)
    campaign = _campaign(client, partner, budget_points=50, per_member_points=500)
    confirm_all(writer)  # the partner's budget lowered by 50, then the campaign's account given 50
    token = token_of(client)
    assert token.issue_budget(campaign["issuer_address"]) == 50
    assert token.issue_budget(partner["issuer_address"]) == 100_000 - 50
    assert _get(client, f"/v1/campaigns/{campaign['id']}", partner["api_key"])["status"] == "running"

    first = _buy(client, partner, member, "H-1", 30)
    second = _buy(client, partner, member, "H-2", 30)
    third = _buy(client, partner, member, "H-3", 30)
    confirm_all(writer)

    assert [(a["campaign_id"], a["points"], a["capped_by"]) for a in first["awards"]] == [
        (None, 30, None),
        (campaign["id"], 30, None),
    ]
    assert [(a["points"], a["capped_by"]) for a in second["awards"]] == [(30, None), (20, "budget")]  # what was left
    assert [(a["points"], a["capped_by"]) for a in third["awards"]] == [
        (30, None),
        (0, "budget"),
    ]  # spent: shown, gives 0
    assert token.balance_of(member["wallet_address"]) == 90 + 50
    assert token.issue_budget(campaign["issuer_address"]) == 0
    [bonus] = [a for a in first["awards"] if a["campaign_id"]]
    earn = _get(
        client, f"/v1/earn/{bonus['earn_id']}", partner["api_key"]
    )  # the partner's, from the campaign's account
    assert (earn["amount_points"], earn["status"], earn["reason"]) == (
        30,
        "confirmed",
        "order H-1: Holiday double points",
    )
    listed = _get(client, f"/v1/earn?member_id={member['id']}", partner["api_key"])["data"]
    assert sorted(e["amount_points"] for e in listed) == [20, 30, 30, 30, 30]
    view = _get(client, f"/v1/campaigns/{campaign['id']}", partner["api_key"])["budget"]
    assert (view["issued_points"], view["onchain_points"], view["available_points"]) == (50, 0, 0)
    budget = _get(client, f"/v1/partners/{partner['id']}/budget", partner["api_key"])
    assert (budget["moved_points"], budget["to_move_points"], budget["available_points"]) == (50, 0, 100_000 - 50 - 90)

    # The chain itself refuses the campaign's account a point more.
    with client.app.state.runtime.sessions() as session:
        sealed = session.get(Partner, campaign["issuer_id"]).issuer_key_sealed
    issuer = client.app.state.runtime.custody.open(campaign["issuer_address"], sealed)
    with pytest.raises(ContractCustomError) as refused:
        token.contract.functions.earnBatch([member["wallet_address"]], [1], 999).call({"from": issuer.address})
    revert = client.app.state.runtime.chain.decode_revert(refused.value.data)
    assert (revert.error, revert.error_args["budget"], revert.error_args["amount"]) == ("LoyaltyBudgetExceeded", 0, 1)

    # The auditor sees the campaign's liability apart from the partner's.
    figures = {p["issuer_address"]: p for p in _get(client, "/v1/audit/summary", "adm_test")["partners"]}
    assert (
        figures[campaign["issuer_address"]]["campaign_id"],
        figures[campaign["issuer_address"]]["outstanding_points"],
    ) == (campaign["id"], 50)
    assert figures[partner["issuer_address"]]["outstanding_points"] == 90


def test_campaign_capsEachMember_andWhenShortOfBudget_givesNothingIfItSaysSo(client, writer):
    partner, member = _shop(client)
    other = make_member(client, partner["api_key"])
    campaign = _campaign(
        client,
        partner,
        effect={"kind": "bonus", "points": 100},
        budget_points=170,
        per_member_points=150,
        when_short="none",
    )

    first = _buy(client, partner, member, "B-1", 5)
    capped = _buy(client, partner, member, "B-2", 5)
    short = _buy(client, partner, other, "B-3", 5)  # 20 left of the budget, 100 wanted: none
    confirm_all(writer)

    bonus = lambda p: [(a["points"], a["capped_by"]) for a in p["awards"] if a["campaign_id"]]  # noqa: E731
    assert bonus(first) == [(100, None)]
    assert bonus(capped) == [(50, "per_member")]
    assert bonus(short) == [(0, "budget")]
    token = token_of(client)
    assert token.balance_of(member["wallet_address"]) == 5 + 100 + 5 + 50
    assert token.balance_of(other["wallet_address"]) == 5
    assert token.issue_budget(campaign["issuer_address"]) == 20


def test_campaign_refundInsideThePendingWindow_givesItsBudgetBack(client, writer):
    response = client.patch("/v1/programs/1", json={"pending_days": 14}, headers=auth("adm_test"))
    assert response.status_code == 200
    partner, member = _shop(client)
    campaign = _campaign(client, partner, budget_points=1_000)
    bought = _buy(client, partner, member, "R-1", 40)
    held = _get(client, f"/v1/campaigns/{campaign['id']}", partner["api_key"])["budget"]

    refunded = post(client, "/v1/purchases/R-1/refunds", {"refund_id": "all"}, partner["api_key"])
    after = _get(client, f"/v1/campaigns/{campaign['id']}", partner["api_key"])["budget"]

    assert bought["total_points"] == 80 and bought["status"] == "pending"
    assert (held["pending_points"], held["available_points"]) == (40, 960)
    assert refunded.status_code == 201 and refunded.json()["points_reversed"] == 80
    assert (after["pending_points"], after["available_points"]) == (0, 1_000)
    view = _get(client, "/v1/purchases/R-1", partner["api_key"])
    assert sorted(a["points"] for a in view["awards"] if a["campaign_id"]) == [-40, 40]


def test_campaign_forASegment_onlyRewardsMembersTaggedSo(client, writer):
    partner, member = _shop(client)
    _campaign(
        client, partner, effect={"kind": "bonus", "points": 25}, budget_points=1_000, conditions={"segments": ["vip"]}
    )

    untagged = _buy(client, partner, member, "S-1", 10)
    tagged = client.put(
        f"/v1/members/{member['id']}/segments", json={"tags": ["vip"]}, headers=auth(partner["api_key"])
    )
    vip = _buy(client, partner, member, "S-2", 10)

    assert untagged["total_points"] == 10
    assert tagged.status_code == 200 and tagged.json()["tags"] == ["vip"]
    assert vip["total_points"] == 35


def test_aBrandNamedLikeACampaignsAccount_isRefused(client):
    response = post(client, "/v1/partners", {"name": "campaign:1", "issue_budget_points": 1}, "adm_test")
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_campaign_withMoreBudgetThanThePartnerHasLeft_isRefused(client):
    partner, _ = _shop(client, budget=1_000)
    response = post(
        client,
        "/v1/campaigns",
        {"name": "Too big", **_window(), "effect": {"kind": "bonus", "points": 1}, "budget_points": 1_001},
        partner["api_key"],
    )
    assert (response.status_code, response.json()["code"]) == (422, "budget_exceeded")
    backwards = post(client, "/v1/campaigns", {"name": "Backwards", "starts_at": _window()["ends_at"], "ends_at": _window()["starts_at"],
                                               "effect": {"kind": "bonus", "points": 1}, "budget_points": 1}, partner["api_key"])  # fmt: skip
    assert (backwards.status_code, backwards.json()["code"]) == (422, "invalid_campaign")


def test_campaign_isMadeAtOnce_butItsBudgetReachesTheChainOnlyAfterThePartnersIsLowered(client, writer):
    """Awards made meanwhile are held, and minted from the campaign's account once it is set up."""
    partner, member = _shop(client)
    campaign = _campaign(client, partner, budget_points=100)
    assert _get(client, f"/v1/campaigns/{campaign['id']}", partner["api_key"])["status"] == "provisioning"
    early = _buy(client, partner, member, "P-1", 10)
    confirm_all(writer)

    assert early["total_points"] == 20
    with client.app.state.runtime.sessions() as session:
        writes = {
            (w.partner_id, w.kind): w
            for w in session.query(ChainWrite).filter(ChainWrite.kind.in_(["move_budget", "set_budget"]))
        }
    moved, given = writes[(partner["id"], "move_budget")], writes[(campaign["issuer_id"], "set_budget")]
    assert (
        moved.block_number < given.block_number
    )  # the campaign's account is given its budget only once the move is final
    token = token_of(client)
    assert token.balance_of(member["wallet_address"]) == 20
    assert token.issue_budget(campaign["issuer_address"]) == 90
    assert token.issue_budget(partner["issuer_address"]) == 100_000 - 100 - 10
