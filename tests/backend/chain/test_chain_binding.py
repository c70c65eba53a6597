"""A database belongs to one chain and token: every process refuses another chain (or a chain
reset under it) with one line saying what to do, and `make up` never attaches to a node it did
not start."""

import socket
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from support.backend import env_of, make_partner
from web3 import HTTPProvider, Web3

from loyalty.api.app import create_app
from loyalty.chain.deploy import TokenParams, deploy_token
from loyalty.chain.devchain import free_port, start_node, stop_node
from loyalty.errors import ChainMismatchError, ChainUnavailableError, ConfigurationError
from loyalty.runtime import build


def _bind(settings):
    with TestClient(create_app(settings, run_outbox=False)) as client:
        make_partner(client, "Acme")


def test_aResetChain_isRefusedWithOneLine(own_chain, chain_settings):
    _bind(chain_settings)
    own_chain.kill()
    (own_chain.state / "anvil-state.json").unlink(missing_ok=True)  # the dev chain starts over from nothing
    own_chain.start()
    own_chain.rpc("anvil_mine", "0x1")  # (the same deployment in the same second would be the same chain)
    w3 = Web3(HTTPProvider(own_chain.url))
    again, _ = deploy_token(w3, w3.eth.accounts[0], TokenParams(epoch_length_s=86_400), record=False)
    assert again.token_address == own_chain.deployment.token_address  # the same address on another chain

    with pytest.raises(ConfigurationError, match="the chain was reset or is another one"):
        build(chain_settings)
    result = subprocess.run(
        [sys.executable, "-m", "loyalty.cli", "worker"],
        env=env_of(chain_settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "Move the database aside" in line


def test_anotherToken_isRefused(own_chain, chain_settings):
    _bind(chain_settings)
    w3 = Web3(HTTPProvider(own_chain.url))
    second, _ = deploy_token(w3, w3.eth.accounts[0], TokenParams(name="Other"), record=False)
    other = chain_settings.model_copy(update={"token_address": second.token_address})
    with pytest.raises(ConfigurationError, match="not TOKEN_ADDRESS="):
        build(other)


def test_anotherChainId_isRefused(chain_settings, tmp_path):
    _bind(chain_settings)
    port = free_port()
    ganache = start_node("ganache", port, tmp_path / "ganache")
    try:
        other = chain_settings.model_copy(update={"rpc_url": f"http://127.0.0.1:{port}"})
        with pytest.raises(ConfigurationError, match="belongs to chain 31337"):
            build(other)
    finally:
        stop_node(ganache)


def test_startNode_refusesABusyPortAndABusyStateFolder(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ChainUnavailableError, match="already in use by another process"):
            start_node("anvil", busy.getsockname()[1], tmp_path / "a")
    node = start_node("anvil", free_port(), tmp_path / "b")
    try:
        with pytest.raises(ChainUnavailableError, match="in use by a node another command started"):
            start_node("anvil", free_port(), tmp_path / "b")
    finally:
        stop_node(node)


def test_aChainThatComesBackAsAnotherOne_isRefusedByARunningProcess(own_chain, chain_settings):
    runtime = build(chain_settings)
    try:
        assert runtime.chain.block_number() > 0
        own_chain.kill()
        with pytest.raises(ChainUnavailableError):
            runtime.chain.block_number()
        (own_chain.state / "anvil-state.json").unlink(missing_ok=True)
        own_chain.start()
        own_chain.rpc("anvil_mine", "0x1")
        w3 = Web3(HTTPProvider(own_chain.url))
        deploy_token(w3, w3.eth.accounts[0], TokenParams(epoch_length_s=86_400), record=False)

        with pytest.raises(ChainMismatchError, match="the chain was reset or is another one"):
            runtime.chain.block_number()
    finally:
        runtime.close()


def test_aNodeStopsWhenTheCommandThatStartedItIsKilled(tmp_path):
    port = free_port()
    code = f"from loyalty.chain.devchain import start_node; from pathlib import Path; start_node('anvil', {port}, Path({str(tmp_path)!r})); import time; time.sleep(60)"
    launcher = subprocess.Popen([sys.executable, "-c", code])
    w3 = Web3(HTTPProvider(f"http://127.0.0.1:{port}"))
    for _ in range(200):
        if w3.is_connected():
            break
        time.sleep(0.1)
    launcher.kill()
    launcher.wait()
    for _ in range(100):
        if not w3.is_connected():
            break
        time.sleep(0.1)
    assert not w3.is_connected()
