"""Two-phase redemptions: reserved, then posted (burned, voucher) or voided (stock released)."""

import pytest
from eth_account import Account
from support.backend import ADMIN_KEY, auth, confirm_all, make_member, make_partner, post, redemption_code, token_of

from loyalty.domain.consent import sign_typed_data


@pytest.fixture
def partner(client):
    return make_partner(client, "Acme", 100_000)


@pytest.fixture
def reward(client, partner):
    body = {"name": "Coffee", "cost_points": 300, "stock": 2}
    return post(client, "/v1/rewards", body, partner["api_key"]).json()


def _fund(client, writer, partner, member, amount):
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": amount}, partner["api_key"])
    confirm_all(writer)


def _redeem_with_code(client, partner, member, reward):
    """A partner's redemption for a custodial member, with a fresh code the member made."""
    body = {
        "member_id": member["id"],
        "reward_id": reward["id"],
        "redemption_code": redemption_code(client, member, partner),
    }
    return post(client, "/v1/redemptions", body, partner["api_key"])


def _redemption(client, key, redemption_id):
    return client.get(f"/v1/redemptions/{redemption_id}", headers=auth(key)).json()


def test_redeem_custodial_reservesThenPosts(client, writer, partner, reward):
    member = make_member(client, partner["api_key"])
    _fund(client, writer, partner, member, 1_000)

    response = _redeem_with_code(client, partner, member, reward)
    assert response.status_code == 201
    assert response.json()["status"] == "reserved"
    assert client.get(f"/v1/rewards/{reward['id']}", headers=auth(ADMIN_KEY)).json()["stock"] == 1

    confirm_all(writer)

    redemption = _redemption(client, partner["api_key"], response.json()["id"])
    assert redemption["status"] == "posted"
    assert redemption["voucher_code"] and redemption["tx_hash"] and redemption["block_number"]
    assert token_of(client).balance_of(member["wallet_address"]) == 700


def test_redeem_selfCustody_withMemberSignature(client, writer, partner, reward):
    wallet = Account.create()
    member = make_member(client, partner["api_key"], wallet_address=wallet.address)
    _fund(client, writer, partner, member, 500)
    query = f"/v1/redemptions/typed-data?member_id={member['id']}&reward_id={reward['id']}"
    typed = client.get(query, headers=auth(partner["api_key"])).json()
    assert typed["primaryType"] == "Redeem" and typed["message"]["member"] == wallet.address
    signature = "0x" + sign_typed_data(typed, wallet.key).hex()

    body = {
        "member_id": member["id"],
        "reward_id": reward["id"],
        "signature": signature,
        "deadline": typed["message"]["deadline"],
    }
    response = post(client, "/v1/redemptions", body, partner["api_key"])
    assert response.status_code == 201, response.text
    confirm_all(writer)

    assert _redemption(client, partner["api_key"], response.json()["id"])["status"] == "posted"
    assert token_of(client).balance_of(wallet.address) == 200


def test_redeem_selfCustody_failsForForeignSignature(client, writer, partner, reward):
    member = make_member(client, partner["api_key"], wallet_address=Account.create().address)
    query = f"/v1/redemptions/typed-data?member_id={member['id']}&reward_id={reward['id']}"
    typed = client.get(query, headers=auth(partner["api_key"])).json()
    signature = "0x" + sign_typed_data(typed, Account.create().key).hex()
    body = {
        "member_id": member["id"],
        "reward_id": reward["id"],
        "signature": signature,
        "deadline": typed["message"]["deadline"],
    }
    response = post(client, "/v1/redemptions", body, partner["api_key"])
    assert (response.status_code, response.json()["code"]) == (422, "invalid_signature")


def test_redeem_selfCustody_needsSignature(client, partner, reward):
    member = make_member(client, partner["api_key"], wallet_address=Account.create().address)
    response = post(
        client, "/v1/redemptions", {"member_id": member["id"], "reward_id": reward["id"]}, partner["api_key"]
    )
    assert (response.status_code, response.json()["code"]) == (422, "signature_required")


def test_redeem_failsOnInsufficientPoints(client, writer, partner, reward):
    member = make_member(client, partner["api_key"])
    _fund(client, writer, partner, member, 299)
    response = _redeem_with_code(client, partner, member, reward)
    assert (response.status_code, response.json()["code"]) == (422, "insufficient_points")
    assert client.get(f"/v1/rewards/{reward['id']}", headers=auth(ADMIN_KEY)).json()["stock"] == 2


def test_redeem_reservedPointsAreNotSpendableTwice(client, writer, partner, reward):
    member = make_member(client, partner["api_key"])
    _fund(client, writer, partner, member, 500)
    assert _redeem_with_code(client, partner, member, reward).status_code == 201
    response = _redeem_with_code(client, partner, member, reward)
    assert (response.status_code, response.json()["code"]) == (422, "insufficient_points")


def test_redeem_failsOutOfStock(client, writer, partner, reward):
    member = make_member(client, partner["api_key"])
    _fund(client, writer, partner, member, 10_000)
    for _ in range(2):
        assert _redeem_with_code(client, partner, member, reward).status_code == 201
    response = _redeem_with_code(client, partner, member, reward)
    assert (response.status_code, response.json()["code"]) == (409, "reward_out_of_stock")


def test_redeem_failedBurnVoidsAndReleasesStock(client, writer, partner, reward):
    member = make_member(client, partner["api_key"])
    _fund(client, writer, partner, member, 1_000)
    reserved = _redeem_with_code(client, partner, member, reward)
    token = token_of(client)
    pause = token.contract.functions.pause().transact({"from": token.client.operator.address})
    token.client.w3.eth.wait_for_transaction_receipt(pause)
    try:
        confirm_all(writer)
    finally:
        token.client.w3.eth.wait_for_transaction_receipt(
            token.contract.functions.unpause().transact({"from": token.client.operator.address})
        )

    redemption = _redemption(client, partner["api_key"], reserved.json()["id"])
    assert redemption["status"] == "voided"
    assert "LoyaltyPaused" in redemption["error"]
    assert client.get(f"/v1/rewards/{reward['id']}", headers=auth(ADMIN_KEY)).json()["stock"] == 2
    assert token.balance_of(member["wallet_address"]) == 1_000


def test_redeem_forOtherPartnersRewardIsForbidden(client, partner, reward):
    other = make_partner(client, "Other")
    member = make_member(client, partner["api_key"])
    response = post(client, "/v1/redemptions", {"member_id": member["id"], "reward_id": reward["id"]}, other["api_key"])
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")


def test_chainBalance_equalsConfirmedEarnsMinusPostedRedemptions(client, writer, partner, reward):
    members = [make_member(client, partner["api_key"]) for _ in range(3)]
    for i, member in enumerate(members):
        for amount in (200, 150 * (i + 1)):
            post(client, "/v1/earn", {"member_id": member["id"], "amount_points": amount}, partner["api_key"])
    confirm_all(writer)
    post(
        client,
        "/v1/redemptions",
        {
            "member_id": members[2]["id"],
            "reward_id": reward["id"],
            "redemption_code": redemption_code(client, members[2], partner),
        },
        partner["api_key"],
    )
    confirm_all(writer)
    token = token_of(client)
    for member in members:
        history = client.get(f"/v1/members/{member['id']}/history", headers=auth(ADMIN_KEY)).json()["data"]
        earned = sum(h["amount_points"] for h in history if h["kind"] == "earn" and h["status"] == "confirmed")
        redeemed = sum(h["amount_points"] for h in history if h["kind"] == "redeem" and h["status"] == "posted")
        assert token.balance_of(member["wallet_address"]) == earned - redeemed
