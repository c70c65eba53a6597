"""Fixtures for the backend tests: one Anvil node and token for the session, a fresh SQLite
database and app per test. The outbox writer is driven by the tests (`drain`), so every step is
deterministic."""

from __future__ import annotations

import secrets
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web3 import HTTPProvider, Web3

from loyalty.api.app import create_app
from loyalty.deploy import Deployment, TokenParams, deploy_token
from loyalty.devchain import start_node, stop_node
from loyalty.outbox import OutboxWriter, drain
from loyalty.settings import DEV_OPERATOR_KEY, Settings

ADMIN_KEY = "adm_test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def rpc_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start_node("anvil", port, tmp_path_factory.mktemp("anvil"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_node(process)


@pytest.fixture(scope="session")
def deployment(rpc_url: str, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    w3 = Web3(HTTPProvider(rpc_url))
    params = TokenParams(epoch_length_s=86_400, validity_epochs=12)
    deployment, _ = deploy_token(w3, w3.eth.accounts[0], params, folder=tmp_path_factory.mktemp("deployments"))
    return deployment


@pytest.fixture
def settings(tmp_path: Path, rpc_url: str, deployment: Deployment) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'loyalty.db'}",
        rpc_url=rpc_url,
        token_address=deployment.token_address,
        operator_private_key=DEV_OPERATOR_KEY,
        admin_api_key=ADMIN_KEY,
        master_key=secrets.token_hex(32),
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, run_outbox=False), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def writer(client: TestClient) -> OutboxWriter:
    state = client.app.state  # type: ignore[attr-defined]
    return OutboxWriter(state.sessions, state.chain, state.custody, poll_s=0.01)


def settle(writer: OutboxWriter) -> None:
    """Send everything in the outbox and wait until it is confirmed or failed."""
    drain(writer, timeout_s=60)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post(client: TestClient, path: str, body: Any, key: str, idempotency_key: str | None = None) -> Any:
    headers = {**auth(key), "Idempotency-Key": idempotency_key or uuid.uuid4().hex}
    return client.post(path, json=body, headers=headers)


def make_partner(client: TestClient, name: str = "Acme", budget: int = 1_000_000) -> dict[str, Any]:
    response = post(client, "/v1/partners", {"name": name, "issue_budget_points": budget}, ADMIN_KEY)
    assert response.status_code == 201, response.text
    return dict(response.json())


def make_member(client: TestClient, key: str = ADMIN_KEY, **body: Any) -> dict[str, Any]:
    response = post(client, "/v1/members", {"external_id": uuid.uuid4().hex, **body}, key)
    assert response.status_code == 201, response.text
    return dict(response.json())


def chain_of(client: TestClient) -> Any:
    return client.app.state.chain  # type: ignore[attr-defined]
