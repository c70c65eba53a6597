"""ERC-2612 permit shares the member's nonce with redemptions."""

from brownie import chain
from eth_account import Account
from eth_account.messages import encode_typed_data
from support.contracts import TOKEN_NAME


def test_permit_setsAllowanceAndUsesSharedNonce(token, issuer, member, sign_redeem):
    spender = Account.create().address
    deadline = 2**40
    data = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": TOKEN_NAME,
            "version": "1",
            "chainId": chain.id,
            "verifyingContract": token.address,
        },
        "message": {
            "owner": member.address,
            "spender": spender,
            "value": 5,
            "nonce": 0,
            "deadline": deadline,
        },
    }
    signed = Account.sign_message(encode_typed_data(full_message=data), member.key)
    token.permit(member.address, spender, 5, deadline, signed.v, signed.r, signed.s, {"from": issuer})
    assert token.allowance(member.address, spender) == 5
    assert token.nonces(member.address) == 1
