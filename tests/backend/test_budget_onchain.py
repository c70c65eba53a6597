"""An issuer budget lowered on-chain, outside the service: the earns it no longer covers wait
(no transaction that would revert), the API counts against the real budget, health says so,
and raising the budget lets them go."""

from conftest import make_member, make_partner, post, settle
from sqlalchemy import func, select

from loyalty.db.models import ChainWrite, WriteStatus


def _set_budget(chain, issuer, points):
    signed = chain.sign_set_budget(chain.account_nonce(chain.operator.address), issuer, points, 0)
    chain.broadcast(signed)
    assert chain.w3.eth.wait_for_transaction_receipt(signed.tx_hash)["status"] == 1


def test_budgetLoweredOnChain_earnsWaitUntilItIsRaised(client, writer):
    partner = make_partner(client, "Acme", 1_000)
    member = make_member(client)
    settle(writer)
    chain = client.app.state.chain
    _set_budget(chain, partner["issuer_address"], 10)
    earn = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 50}, partner["api_key"]).json()

    settle(writer)

    with client.app.state.sessions() as session:
        assert session.scalar(select(func.count()).where(ChainWrite.status == WriteStatus.FAILED)) == 0
    assert client.get(f"/v1/earn/{earn['id']}", headers={"Authorization": f"Bearer {partner['api_key']}"}).json()["status"] == "pending"
    health = client.get("/v1/health").json()
    assert any("on-chain budget is below its pending earns" in r for r in health["reasons"]), health["reasons"]
    refused = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 1}, partner["api_key"])
    assert (refused.status_code, refused.json()["code"]) == (422, "budget_exceeded")

    _set_budget(chain, partner["issuer_address"], 500)
    writer._hold.clear()
    settle(writer)

    assert chain.balance_of(member["wallet_address"]) == 50
