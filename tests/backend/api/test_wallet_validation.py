"""A member's own wallet must be able to hold points and sign: the zero address, the token and
any contract are refused at enrolment, so no batch ever carries them."""

import pytest
from support.backend import ADMIN_KEY, post, token_of
from web3 import HTTPProvider, Web3


@pytest.fixture
def contract_address(rpc_url):
    """A contract whose code is one STOP byte: any contract will do."""
    w3 = Web3(HTTPProvider(rpc_url))
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "data": "0x6001600c60003960016000f300"})
    return w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]


@pytest.mark.parametrize("which", ["zero", "token", "contract"])
def test_createMember_refusesAWalletThatCannotHoldPoints(client, which, contract_address):
    wallet = {
        "zero": "0x" + "00" * 20,
        "token": token_of(client).address,
        "contract": contract_address,
    }[which]
    response = post(client, "/v1/members", {"external_id": "m", "wallet_address": wallet}, ADMIN_KEY)
    assert (response.status_code, response.json()["code"]) == (422, "invalid_wallet")
    assert response.headers["content-type"] == "application/problem+json"
