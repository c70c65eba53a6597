"""The browser tests' stack: an Anvil node and contracts of their own, `loyalty serve` (API, web
UI and outbox writer in one process) on SQLite, and Debian's Chromium driven by Playwright
(pytest-playwright's `page`). Playwright's own browser download is unreachable here, so the
browser is the system's (`CHROMIUM`, default /usr/bin/chromium; `.ci/run` installs it)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from support.backend import ADMIN_KEY, serving
from support.ui import TX_URL, Stack
from web3 import HTTPProvider, Web3

from loyalty.chain.deploy import TokenParams, deploy_exchange, deploy_token
from loyalty.chain.devchain import free_port, start_node, stop_node
from loyalty.settings import DEV_OPERATOR_KEY, Settings

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (as .ci/run does), or set CHROMIUM")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("e2e")
    node_port = free_port()
    node = start_node("anvil", node_port, folder / "anvil")
    rpc_url = f"http://127.0.0.1:{node_port}"
    try:
        w3 = Web3(HTTPProvider(rpc_url))
        operator = w3.eth.accounts[0]
        token, _ = deploy_token(w3, operator, TokenParams(epoch_length_s=86_400), folder=folder / "deployments")
        exchange, _ = deploy_exchange(w3, operator, relayer=operator, folder=folder / "exchange")
        settings = Settings(
            database_url=f"sqlite:///{folder / 'loyalty.db'}", rpc_url=rpc_url, token_address=token.token_address,
            operator_private_key=DEV_OPERATOR_KEY, admin_api_key=ADMIN_KEY, master_key=secrets.token_hex(32),
            exchange_address=exchange.exchange_address,
        )  # fmt: skip
        port = free_port()
        domains = f"127.0.0.1:{port}"
        with serving(settings, outbox=True, port=port, log=folder / "serve.log", LOYALTY_SIWE_DOMAINS=domains,
                     LOYALTY_TX_URL=TX_URL, LOYALTY_SWEEP_INTERVAL_S="3600") as url:  # fmt: skip
            yield Stack(url, rpc_url)
    finally:
        stop_node(node)


@pytest.fixture(scope="session")
def base_url(stack: Stack) -> str:
    return stack.url
