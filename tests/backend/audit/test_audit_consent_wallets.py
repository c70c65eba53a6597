"""The auditor reads every consent the token takes: EIP-2098 compact signatures, and smart
contract wallets' ERC-1271 consents (asked of the wallet as of the redemption's block)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from support.backend import free_port
from web3 import HTTPProvider, Web3

from loyalty.audit.rpc import Rpc
from loyalty.audit.verify import verify
from loyalty.chain.artifacts import load_artifact
from loyalty.chain.deploy import TokenParams, deploy_token
from loyalty.chain.devchain import start_node, stop_node
from loyalty.domain.consent import RedeemConsent, redeem_typed_data, sign_typed_data
from loyalty.errors import RpcError

HOUR = 3_600


def _compact(signature: bytes) -> bytes:
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + ((v - 27) << 255 | s).to_bytes(32, "big")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Any:
    port = free_port()
    node = start_node("anvil", port, tmp_path_factory.mktemp("anvil"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_node(node)


def test_verify_acceptsCompactAndContractWalletConsents(chain: str, tmp_path: Any) -> None:
    w3 = Web3(HTTPProvider(chain))
    admin, issuer = w3.eth.accounts[:2]
    deployment, _ = deploy_token(w3, admin, TokenParams(epoch_length_s=HOUR), folder=tmp_path, record=False)
    token = w3.eth.contract(address=deployment.token_address, abi=load_artifact("LoyaltyPoints").abi)
    owner, person = Account.create(), Account.create()
    wallet_artifact = load_artifact("ConsentWallet")
    created = w3.eth.contract(abi=wallet_artifact.abi, bytecode=wallet_artifact.bytecode).constructor(owner.address)
    wallet = w3.eth.wait_for_transaction_receipt(created.transact({"from": admin}))["contractAddress"]

    def send(call: Any, sender: str) -> None:
        assert w3.eth.wait_for_transaction_receipt(call.transact({"from": sender}))["status"] == 1

    send(token.functions.grantRole(token.functions.ISSUER_ROLE().call(), issuer), admin)
    send(token.functions.setIssueBudget(issuer, 1_000), admin)
    send(token.functions.earnBatch([wallet, person.address], [100, 100], 1), issuer)
    deadline = w3.eth.get_block("latest")["timestamp"] + HOUR
    for member, key, amount, shape in ((wallet, owner.key, 30, bytes), (person.address, person.key, 40, _compact)):
        consent = RedeemConsent(member, issuer, amount, 1, 2, 0, deadline)
        typed = redeem_typed_data(
            consent, chain_id=w3.eth.chain_id, token_address=token.address, token_name="Loyalty Points"
        )
        send(token.functions.redeem(member, amount, 1, 2, deadline, shape(sign_typed_data(typed, key))), issuer)

    audit = verify(Rpc(chain), deployment.token_address, deployment.block_number)

    assert audit.clean, audit.discrepancies
    assert audit.ledger.checked["consents"] == 2
    assert {m.address: m.balance for m in audit.members} == {wallet: 70, person.address: 60}


class _NoTraces(Rpc):
    """The same node, as a provider that does not offer `debug_traceTransaction` (most don't)."""

    def call(self, method: str, params: list[Any]) -> Any:
        if method.startswith("debug_"):
            raise RpcError(method, params, {"code": -32601, "message": "the method does not exist"})
        return super().call(method, params)


def test_verify_asksTheWalletAsTheTokenDid_evenWhenItChangedEarlierInTheSameBlock(chain: str, tmp_path: Any) -> None:
    """The wallet refused until a transaction just before the redemption, in the same block: the
    state at the block before says no, the token (and the redemption's trace) said yes."""
    w3 = Web3(HTTPProvider(chain))
    admin, issuer = w3.eth.accounts[:2]
    deployment, _ = deploy_token(w3, admin, TokenParams(epoch_length_s=HOUR), folder=tmp_path, record=False)
    token = w3.eth.contract(address=deployment.token_address, abi=load_artifact("LoyaltyPoints").abi)
    owner = Account.create()
    wallet_artifact = load_artifact("ConsentWallet")
    created = w3.eth.contract(abi=wallet_artifact.abi, bytecode=wallet_artifact.bytecode).constructor(owner.address)
    address = w3.eth.wait_for_transaction_receipt(created.transact({"from": admin}))["contractAddress"]
    wallet = w3.eth.contract(address=address, abi=wallet_artifact.abi)
    for call, sender in (
        (token.functions.grantRole(token.functions.ISSUER_ROLE().call(), issuer), admin),
        (token.functions.setIssueBudget(issuer, 1_000), admin),
        (token.functions.earn(address, 100, 1), issuer),
        (wallet.functions.setMode(1), admin),  # refusing
    ):
        assert w3.eth.wait_for_transaction_receipt(call.transact({"from": sender}))["status"] == 1
    deadline = w3.eth.get_block("latest")["timestamp"] + HOUR
    typed = redeem_typed_data(
        RedeemConsent(address, issuer, 30, 1, 2, 0, deadline),
        chain_id=w3.eth.chain_id,
        token_address=token.address,
        token_name="Loyalty Points",
    )
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        honest = wallet.functions.setMode(0).transact({"from": admin, "gas": 100_000})
        redeemed = token.functions.redeem(address, 30, 1, 2, deadline, sign_typed_data(typed, owner.key)).transact(
            {"from": issuer, "gas": 300_000}
        )
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    receipts = [w3.eth.wait_for_transaction_receipt(h) for h in (honest, redeemed)]
    assert [r["status"] for r in receipts] == [1, 1] and receipts[0]["blockNumber"] == receipts[1]["blockNumber"]

    audit = verify(Rpc(chain), deployment.token_address, deployment.block_number)
    without_traces = verify(_NoTraces(chain), deployment.token_address, deployment.block_number)

    assert audit.clean, audit.discrepancies
    assert {m.address: m.balance for m in audit.members} == {address: 70}
    assert [d.detail for d in without_traces.discrepancies] == [
        f"the consent of nonce 0 recovers to {owner.address}, not the member {address}, and the contract wallet "
        "does not accept it (ERC-1271) as of the block before (this node offers no transaction traces)"
    ]
