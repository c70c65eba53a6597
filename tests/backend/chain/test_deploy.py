"""`make up`'s pieces on their own nodes: deploy once and reuse; Ganache as the other chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.backend import free_port
from web3 import HTTPProvider, Web3
from web3.logs import DISCARD

from loyalty.chain.artifacts import load_artifact
from loyalty.chain.deploy import TokenParams, deploy_token
from loyalty.chain.devchain import ChainKind, start_node, stop_node


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Web3, Path]]:
    kind: ChainKind = request.param
    port = free_port()
    process = start_node(kind, port, tmp_path / "chain")
    try:
        yield Web3(HTTPProvider(f"http://127.0.0.1:{port}")), tmp_path
    finally:
        stop_node(process)


@pytest.mark.parametrize("node", ["anvil"], indirect=True)
def test_deploy_reusesExistingDeployment(node: tuple[Web3, Path]) -> None:
    w3, folder = node
    first, created = deploy_token(w3, w3.eth.accounts[0], folder=folder)
    again, created_again = deploy_token(w3, w3.eth.accounts[0], folder=folder)
    assert created and not created_again
    assert again == first
    assert (folder / f"{w3.eth.chain_id}.json").exists()


def test_deploy_stateSurvivesAnvilRestart(tmp_path: Path) -> None:
    port = free_port()
    process = start_node("anvil", port, tmp_path / "chain")
    w3 = Web3(HTTPProvider(f"http://127.0.0.1:{port}"))
    try:
        first, _ = deploy_token(w3, w3.eth.accounts[0], folder=tmp_path)
    finally:
        stop_node(process)
    process = start_node("anvil", port, tmp_path / "chain")
    try:
        again, created = deploy_token(w3, w3.eth.accounts[0], folder=tmp_path)
    finally:
        stop_node(process)
    assert not created
    assert again.token_address == first.token_address


@pytest.mark.parametrize("node", ["ganache"], indirect=True)
def test_ganache_deployAndEarn(node: tuple[Web3, Path]) -> None:
    w3, folder = node
    admin, issuer, member = w3.eth.accounts[:3]
    deployment, _ = deploy_token(w3, admin, TokenParams(epoch_length_s=86_400, validity_epochs=12), folder=folder)
    token = w3.eth.contract(address=deployment.token_address, abi=load_artifact("LoyaltyPoints").abi)
    for call in (
        token.functions.grantRole(token.functions.ISSUER_ROLE().call(), issuer),
        token.functions.setIssueBudget(issuer, 1_000),
    ):
        w3.eth.wait_for_transaction_receipt(call.transact({"from": admin}))
    receipt = w3.eth.wait_for_transaction_receipt(token.functions.earn(member, 250, 1).transact({"from": issuer}))

    assert receipt["status"] == 1
    assert token.functions.balanceOf(member).call() == 250
    assert token.functions.totalSupply().call() == 250
    assert token.functions.issueBudget(issuer).call() == 750
    assert len(token.events.Earned().process_receipt(receipt, errors=DISCARD)) == 1
