"""Consent quotes: two asked for in the same second are told apart by the signature, and a
consent stays valid until its deadline however many writes the partner sends meanwhile."""

from eth_account import Account
from support.backend import auth, confirm_all, make_member, make_partner, post, token_of

from loyalty.domain.consent import sign_typed_data


def _setup(client, writer, points=1_000):
    partner = make_partner(client, "Acme", 10**9)
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 100, "stock": 10}, partner["api_key"]).json()
    wallet = Account.create()
    member = make_member(client, partner["api_key"], wallet_address=wallet.address)
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": points}, partner["api_key"])
    confirm_all(writer)
    return partner, reward, wallet, member


def _quote(client, partner, member, reward):
    query = f"/v1/redemptions/typed-data?member_id={member['id']}&reward_id={reward['id']}"
    return client.get(query, headers=auth(partner["api_key"])).json()


def _signed(typed, wallet, member, reward):
    return {
        "member_id": member["id"],
        "reward_id": reward["id"],
        "signature": "0x" + sign_typed_data(typed, wallet.key).hex(),
        "deadline": typed["message"]["deadline"],
    }


def test_consent_secondQuoteOfTheSameSecond_isAccepted(client, writer):
    partner, reward, wallet, member = _setup(client, writer)
    first, second = _quote(client, partner, member, reward), _quote(client, partner, member, reward)
    while first["message"]["deadline"] != second["message"]["deadline"]:  # until two fall in one second
        first, second = second, _quote(client, partner, member, reward)

    response = post(client, "/v1/redemptions", _signed(second, wallet, member, reward), partner["api_key"])

    assert response.status_code == 201, response.text
    confirm_all(writer)
    assert (
        client.get(f"/v1/redemptions/{response.json()['id']}", headers=auth(partner["api_key"])).json()["status"]
        == "posted"
    )


def test_consent_staysValidAfterManyMoreWritesOfThePartner(client, writer):
    partner, reward, wallet, member = _setup(client, writer)
    typed = _quote(client, partner, member, reward)
    others = [make_member(client) for _ in range(3)]
    for i in range(70):  # 70 more earn batches: the partner's refs move 70 past the consent's
        post(client, "/v1/earn", {"member_id": others[i % 3]["id"], "amount_points": 1}, partner["api_key"])
        confirm_all(writer)

    response = post(client, "/v1/redemptions", _signed(typed, wallet, member, reward), partner["api_key"])
    confirm_all(writer)

    redemption = client.get(f"/v1/redemptions/{response.json()['id']}", headers=auth(partner["api_key"])).json()
    assert (redemption["status"], redemption["error"]) == ("posted", None)
    assert token_of(client).balance_of(wallet.address) == 900
