"""A redemption the chain would refuse is not sent: before each burn the writer reads the
member's nonce and balance and the consent's deadline, and voids a doomed one with the reason
(no transaction, no gas), or signs a custodial member's consent again when only its nonce or
deadline went stale."""

from eth_account import Account
from sqlalchemy import func, select
from support.backend import auth, confirm_all, make_member, make_partner, post, redemption_code

from loyalty.db.models import ChainWrite, WriteKind
from loyalty.domain.consent import sign_typed_data

HOUR = 3_600


def _setup(client, writer, wallet=None):
    partner = make_partner(client, "Acme", 100_000)
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 100, "stock": 5}, partner["api_key"]).json()
    member = make_member(client, partner["api_key"], **({"wallet_address": wallet.address} if wallet else {}))
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 500}, partner["api_key"])
    confirm_all(writer)
    return partner, reward, member


def _reserve_self_custody(client, partner, reward, member, wallet):
    query = f"/v1/redemptions/typed-data?member_id={member['id']}&reward_id={reward['id']}"
    typed = client.get(query, headers=auth(partner["api_key"])).json()
    body = {"member_id": member["id"], "reward_id": reward["id"],
            "signature": "0x" + sign_typed_data(typed, wallet.key).hex(), "deadline": typed["message"]["deadline"]}  # fmt: skip
    response = post(client, "/v1/redemptions", body, partner["api_key"])
    assert response.status_code == 201, response.text
    return response.json()


def _permit(client, wallet):
    """The member signs an ERC-2612 permit, which anyone relays: it uses the member's nonce."""
    token = client.app.state.runtime.token
    nonce = token.nonce_of(wallet.address)
    spender, deadline = Account.create().address, token.client.head().timestamp + HOUR
    typed = {
        "types": {
            "EIP712Domain": [{"name": n, "type": t} for n, t in (("name", "string"), ("version", "string"), ("chainId", "uint256"), ("verifyingContract", "address"))],
            "Permit": [{"name": n, "type": t} for n, t in (("owner", "address"), ("spender", "address"), ("value", "uint256"), ("nonce", "uint256"), ("deadline", "uint256"))],
        },
        "primaryType": "Permit",
        "domain": {"name": token.name, "version": "1", "chainId": token.client.chain_id, "verifyingContract": token.contract.address},
        "message": {"owner": wallet.address, "spender": spender, "value": 1, "nonce": nonce, "deadline": deadline},
    }  # fmt: skip
    signature = sign_typed_data(typed, wallet.key)
    relayer = token.client.w3.eth.accounts[2]
    r, s, v = signature[:32], signature[32:64], signature[64]
    tx = token.contract.functions.permit(wallet.address, spender, 1, deadline, v, r, s).transact({"from": relayer})
    assert token.client.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1


def _redeem_writes(client):
    with client.app.state.runtime.sessions() as session:
        return session.scalar(select(func.count()).where(ChainWrite.kind == WriteKind.REDEEM))


def test_permitAfterTheReservation_voidsWithoutATransaction(chain_app):
    client, writer = chain_app
    wallet = Account.create()
    partner, reward, member = _setup(client, writer, wallet)
    reserved = _reserve_self_custody(client, partner, reward, member, wallet)
    _permit(client, wallet)
    issuer_nonce = client.app.state.runtime.chain.account_nonce(partner["issuer_address"])

    confirm_all(writer)

    redemption = client.get(f"/v1/redemptions/{reserved['id']}", headers=auth(partner["api_key"])).json()
    assert redemption["status"] == "voided" and redemption["error"].startswith("consent_stale")
    assert (_redeem_writes(client), redemption["tx_hash"]) == (0, None)
    assert client.app.state.runtime.chain.account_nonce(partner["issuer_address"]) == issuer_nonce  # no gas spent
    assert client.get(f"/v1/rewards/{reward['id']}", headers=auth(partner["api_key"])).json()["stock"] == 5


def test_permitBeforeThePost_isRefusedAsStale(chain_app):
    client, writer = chain_app
    wallet = Account.create()
    partner, reward, member = _setup(client, writer, wallet)
    query = f"/v1/redemptions/typed-data?member_id={member['id']}&reward_id={reward['id']}"
    typed = client.get(query, headers=auth(partner["api_key"])).json()
    _permit(client, wallet)
    body = {"member_id": member["id"], "reward_id": reward["id"],
            "signature": "0x" + sign_typed_data(typed, wallet.key).hex(), "deadline": typed["message"]["deadline"]}  # fmt: skip

    response = post(client, "/v1/redemptions", body, partner["api_key"])

    assert (response.status_code, response.json()["code"]) == (409, "consent_stale")


def test_consentTooCloseToItsDeadline_voidsWithoutATransaction(chain_app, own_chain):
    client, writer = chain_app
    wallet = Account.create()
    partner, reward, member = _setup(client, writer, wallet)
    reserved = _reserve_self_custody(client, partner, reward, member, wallet)
    own_chain.rpc("evm_increaseTime", HOUR - 60)  # the chain's clock is a minute from the deadline
    own_chain.rpc("evm_mine")

    confirm_all(writer)

    redemption = client.get(f"/v1/redemptions/{reserved['id']}", headers=auth(partner["api_key"])).json()
    assert redemption["status"] == "voided" and redemption["error"].startswith("consent_expired")
    assert _redeem_writes(client) == 0


def test_custodialConsentTooCloseToItsDeadline_isSignedAgainAndPosts(chain_app, own_chain):
    client, writer = chain_app
    partner, reward, member = _setup(client, writer)
    reserved = post(
        client,
        "/v1/redemptions",
        {
            "member_id": member["id"],
            "reward_id": reward["id"],
            "redemption_code": redemption_code(client, member, partner),
        },
        partner["api_key"],
    ).json()
    own_chain.rpc("evm_increaseTime", 2 * HOUR)
    own_chain.rpc("evm_mine")

    confirm_all(writer)

    redemption = client.get(f"/v1/redemptions/{reserved['id']}", headers=auth(partner["api_key"])).json()
    assert (redemption["status"], redemption["error"]) == ("posted", None)
    assert client.app.state.runtime.token.balance_of(member["wallet_address"]) == 400


def test_pointsExpiredSinceTheReservation_voidWithoutATransaction(chain_app, own_chain):
    client, writer = chain_app
    partner, reward, member = _setup(client, writer)
    reserved = post(
        client,
        "/v1/redemptions",
        {
            "member_id": member["id"],
            "reward_id": reward["id"],
            "redemption_code": redemption_code(client, member, partner),
        },
        partner["api_key"],
    ).json()
    own_chain.rpc("evm_increaseTime", 13 * 86_400)  # past the points' 12 daily epochs
    own_chain.rpc("evm_mine")

    confirm_all(writer)

    redemption = client.get(f"/v1/redemptions/{reserved['id']}", headers=auth(partner["api_key"])).json()
    assert redemption["status"] == "voided" and redemption["error"].startswith("insufficient_points")
    assert _redeem_writes(client) == 0
