"""An issuer budget lowered on-chain, outside the service: the earns it no longer covers wait
(no transaction that would revert), the API counts against the real budget, health says so,
and raising the budget lets them go."""

from sqlalchemy import func, select
from support.backend import confirm_all, make_member, make_partner, post

from loyalty.db.models import ChainWrite, WriteStatus


def _set_budget(token, issuer, points):
    signed = token.sign_set_budget(token.client.account_nonce(token.client.operator.address), issuer, points, 0)
    token.client.broadcast(signed)
    assert token.client.w3.eth.wait_for_transaction_receipt(signed.tx_hash)["status"] == 1


def test_budgetLoweredOnChain_earnsWaitUntilItIsRaised(client, writer):
    partner = make_partner(client, "Acme", 1_000)
    member = make_member(client, partner["api_key"])
    confirm_all(writer)
    token = client.app.state.runtime.token
    _set_budget(token, partner["issuer_address"], 10)
    earn = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 50}, partner["api_key"]).json()

    confirm_all(writer)

    with client.app.state.runtime.sessions() as session:
        assert session.scalar(select(func.count()).where(ChainWrite.status == WriteStatus.FAILED)) == 0
    assert (
        client.get(f"/v1/earn/{earn['id']}", headers={"Authorization": f"Bearer {partner['api_key']}"}).json()["status"]
        == "pending"
    )
    health = client.get("/v1/health").json()
    assert any("on-chain budget is below its pending earns" in r for r in health["reasons"]), health["reasons"]
    refused = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 1}, partner["api_key"])
    assert (refused.status_code, refused.json()["code"]) == (422, "budget_exceeded")

    _set_budget(token, partner["issuer_address"], 500)
    writer._hold.clear()
    confirm_all(writer)

    assert token.balance_of(member["wallet_address"]) == 50
