"""Members whose wallet is a contract (`smart_wallet`) consent and sign in through ERC-1271,
asked of the wallet itself, as the token asks it."""

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from support.backend import auth, confirm_all, make_member, make_partner, post, siwe_message, token_of

from loyalty.chain.artifacts import load_artifact
from loyalty.chain.token import CONSENT_WALLET_GAS
from loyalty.domain.consent import sign_typed_data

REFUSING, HEAVY = 1, 4  # ConsentWallet.Mode


def _consent_wallet(client: Any, owner: Any) -> Any:
    """A ConsentWallet deployed on the API's chain, consenting to what `owner` signs."""
    w3 = token_of(client).client.w3
    artifact = load_artifact("ConsentWallet")
    deployed = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode).constructor(owner.address)
    receipt = w3.eth.wait_for_transaction_receipt(deployed.transact({"from": w3.eth.accounts[0]}))
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def _set_mode(client: Any, wallet: Any, mode: int) -> None:
    w3 = token_of(client).client.w3
    w3.eth.wait_for_transaction_receipt(wallet.functions.setMode(mode).transact({"from": w3.eth.accounts[0]}))


def _smart_member(client: Any, writer: Any, partner: dict[str, Any], wallet: Any) -> dict[str, Any]:
    member = make_member(client, partner["api_key"], wallet_address=wallet.address, smart_wallet=True)
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 500}, partner["api_key"])
    confirm_all(writer)
    return member


def _redeem(client: Any, partner: dict[str, Any], member: dict[str, Any], reward: dict[str, Any], key: bytes) -> Any:
    body = {"member_id": member["id"], "reward_id": reward["id"]}
    quote = post(client, "/v1/redemptions/consents", body, partner["api_key"]).json()
    signature = "0x" + sign_typed_data(quote["typed_data"], key).hex()
    return post(
        client, "/v1/redemptions", {**body, "signature": signature, "deadline": quote["deadline"]}, partner["api_key"]
    )


@pytest.mark.parametrize("heavy", [False, True], ids=["light", "heavy"])
def test_smartWalletMember_redeemsWithTheConsentItsWalletAccepts(client, writer, heavy):
    """Whatever the wallet spends answering (up to the token's CONSENT_WALLET_GAS), the redemption
    is given the gas for it."""
    owner = Account.create()
    wallet = _consent_wallet(client, owner)
    partner = make_partner(client)
    reward = post(client, "/v1/rewards", {"name": "Coffee", "cost_points": 300, "stock": 5}, partner["api_key"]).json()
    member = _smart_member(client, writer, partner, wallet)
    if heavy:
        _set_mode(client, wallet, HEAVY)

    redeemed = _redeem(client, partner, member, reward, owner.key)
    assert (redeemed.status_code, redeemed.json().get("status")) == (201, "reserved"), redeemed.text
    confirm_all(writer)

    status = client.get(f"/v1/redemptions/{redeemed.json()['id']}", headers=auth(partner["api_key"])).json()["status"]
    assert status == "posted"
    assert token_of(client).balance_of(wallet.address) == 200


def test_smartWalletMember_whoseWalletRefuses_holdsNothing(client, writer):
    owner = Account.create()
    wallet = _consent_wallet(client, owner)
    partner = make_partner(client)
    reward = post(client, "/v1/rewards", {"name": "Coffee", "cost_points": 300, "stock": 5}, partner["api_key"]).json()
    member = _smart_member(client, writer, partner, wallet)
    _set_mode(client, wallet, REFUSING)

    refused = _redeem(client, partner, member, reward, owner.key)

    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_signature")
    held = client.get(f"/v1/redemptions?member_id={member['id']}", headers=auth(partner["api_key"])).json()["data"]
    assert held == [] and token_of(client).balance_of(wallet.address) == 500


def test_smartWalletMember_signsInWithEthereum(client):
    owner, stranger = Account.create(), Account.create()
    wallet = _consent_wallet(client, owner)
    member = make_member(client, make_partner(client)["api_key"], wallet_address=wallet.address, smart_wallet=True)

    def attempt(signer: Any) -> Any:
        message = siwe_message(client.post("/v1/auth/siwe/nonces").json(), wallet.address)
        signature = Account.sign_message(encode_defunct(text=message), signer.key).signature
        return client.post("/v1/auth/siwe", json={"message": message, "signature": "0x" + bytes(signature).hex()})

    signed_in, forged = attempt(owner), attempt(stranger)

    assert (signed_in.status_code, signed_in.json().get("member_id")) == (201, member["id"]), signed_in.text
    assert (forged.status_code, forged.json()["code"]) == (401, "sign_in_failed")


def test_consentWalletGas_isTheTokens(client):
    assert token_of(client).contract.functions.CONSENT_WALLET_GAS().call() == CONSENT_WALLET_GAS
