"""Back-to-back redemptions of one member all post: a burn mined but not yet final is counted
once (in the chain's balance and nonce), not also as reserved."""

from support.backend import auth, confirm_all, make_member, make_partner, post, redemption_code, sign_in, token_of

from loyalty.db.models import Redemption, RedemptionStatus


def test_redeem_fifteenQuickCustodialRedemptions_allPost(client, writer):
    partner = make_partner(client, "Acme", 100_000)
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 10, "stock": 100}, partner["api_key"]).json()
    member = make_member(client, partner["api_key"])
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 200}, partner["api_key"])
    confirm_all(writer)

    ids = []
    for _ in range(15):
        response = post(
            client,
            "/v1/redemptions",
            {
                "member_id": member["id"],
                "reward_id": reward["id"],
                "redemption_code": redemption_code(client, member, partner),
            },
            partner["api_key"],
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
        writer.run_once()  # sends (and mines) the burn, settling only on a later pass
    confirm_all(writer)

    statuses = [client.get(f"/v1/redemptions/{i}", headers=auth(partner["api_key"])).json() for i in ids]
    assert [(s["status"], s["error"]) for s in statuses] == [("posted", None)] * 15
    assert token_of(client).balance_of(member["wallet_address"]) == 50


def test_redeem_whileTheLastBurnIsMinedButNotFinal_countsItOnce(client, writer):
    """With 2 confirmations a mined burn stays unfinal until the next block."""
    writer.runtime.confirmations = 2
    partner = make_partner(client, "Acme", 100_000)
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 60, "stock": 10}, partner["api_key"]).json()
    member = make_member(client, partner["api_key"])
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 100}, partner["api_key"])
    token = token_of(client)
    for _ in range(6):
        writer.run_once()
        token.client.w3.provider.make_request("evm_mine", [])

    def body():
        return {
            "member_id": member["id"],
            "reward_id": reward["id"],
            "redemption_code": redemption_code(client, member, partner),
        }

    assert post(client, "/v1/redemptions", body(), partner["api_key"]).status_code == 201
    writer.run_once()  # the burn is mined: balance 40 on-chain, redemption still reserved
    assert token.balance_of(member["wallet_address"]) == 40
    with client.app.state.runtime.sessions() as session:
        assert session.query(Redemption).one().status == RedemptionStatus.RESERVED

    again = post(client, "/v1/redemptions", body(), partner["api_key"])

    assert (again.status_code, again.json()["code"]) == (422, "insufficient_points")
    assert "40 spendable" in again.json()["detail"]  # not 40 - 60 = -20


def test_redeem_atTwoPartnersBackToBack_bothPost(client, writer):
    """One member's burns at two partners share the member's nonce and balance."""
    acme, other = make_partner(client, "Acme", 100_000), make_partner(client, "Other", 100_000)
    rewards = [
        post(client, "/v1/rewards", {"name": "Mug", "cost_points": 10, "stock": 9}, p["api_key"]).json()
        for p in (acme, other)
    ]
    member = make_member(client, acme["api_key"])
    post(client, "/v1/me/links", {"partner_id": other["id"]}, sign_in(client, member))
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 100}, acme["api_key"])
    confirm_all(writer)

    ids = []
    for _ in range(3):
        for partner, reward in zip((acme, other), rewards, strict=True):
            code = redemption_code(client, member, partner)
            body = {"member_id": member["id"], "reward_id": reward["id"], "redemption_code": code}
            response = post(client, "/v1/redemptions", body, partner["api_key"])
            assert response.status_code == 201, response.text
            ids.append((partner["api_key"], response.json()["id"]))
    confirm_all(writer)

    assert [client.get(f"/v1/redemptions/{i}", headers=auth(key)).json()["status"] for key, i in ids] == ["posted"] * 6
    assert token_of(client).balance_of(member["wallet_address"]) == 40
