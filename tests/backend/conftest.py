"""Fixtures for the backend tests: one Anvil node and token for the session, a fresh SQLite
database and app per test. The outbox writer is driven by the tests (`drain`), so every step is
deterministic."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.backend import ADMIN_KEY, OwnChain
from support.webhooks import Receiver, receiving
from web3 import HTTPProvider, Web3

from loyalty.api.app import create_app
from loyalty.chain.deploy import Deployment, ExchangeDeployment, TokenParams, deploy_exchange, deploy_token
from loyalty.chain.devchain import free_port, start_node, stop_node
from loyalty.settings import DEV_OPERATOR_KEY, Settings
from loyalty.workers.outbox import OutboxWriter


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


@pytest.fixture(scope="session")
def exchange_deployment(rpc_url: str, tmp_path_factory: pytest.TempPathFactory) -> ExchangeDeployment:
    """A PointsExchange (settling in a TestDollar) whose relayer is the operator."""
    w3 = Web3(HTTPProvider(rpc_url))
    operator = w3.eth.accounts[0]  # DEV_OPERATOR_KEY's account
    exchange, _ = deploy_exchange(w3, operator, relayer=operator, folder=tmp_path_factory.mktemp("exchange"))
    return exchange


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    return Path(found).resolve().parent if found else None


@pytest.fixture(scope="session")
def postgres() -> Iterator[str | None]:
    """A private PostgreSQL cluster on a free port, if PostgreSQL is installed (CI installs it)."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        yield None
        return
    # Not under pytest's tmp dir: the postgres user cannot enter root's private folders.
    folder = Path(tempfile.mkdtemp(prefix="loyalty-pg-"))
    as_postgres = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as the postgres user
        runuser = shutil.which("runuser") or next(
            (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if Path(p).exists()), None
        )
        if runuser is None:
            yield None
            return
        as_postgres = [runuser, "-u", "postgres", "--"]
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    subprocess.run([*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "start",
                    "-l", str(folder / "log")], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every backend test runs on SQLite and, when PostgreSQL is installed, on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'loyalty.db'}"
    server = request.getfixturevalue("postgres")
    if server is None:
        pytest.skip("PostgreSQL is not installed here (CI installs it)")
    name = "t_" + uuid.uuid4().hex[:16]
    import psycopg

    with psycopg.connect(server.replace("+psycopg", "") + "/postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


@pytest.fixture
def settings(
    database_url: str, rpc_url: str, deployment: Deployment, exchange_deployment: ExchangeDeployment
) -> Settings:
    return Settings(
        database_url=database_url,
        rpc_url=rpc_url,
        token_address=deployment.token_address,
        operator_private_key=DEV_OPERATOR_KEY,
        admin_api_key=ADMIN_KEY,
        master_key=secrets.token_hex(32),
        siwe_domains=("testserver",),  # TestClient's host
        exchange_address=exchange_deployment.exchange_address,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, run_outbox=False), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def writer(client: TestClient) -> Iterator[OutboxWriter]:
    writer = OutboxWriter(client.app.state.runtime, poll_s=0.01)  # type: ignore[attr-defined]
    yield writer
    writer.close()


@pytest.fixture
def own_chain(tmp_path: Path) -> Iterator[OwnChain]:
    """A fresh Anvil node (state dumped every second) and token of this test's own."""
    port, state = free_port(), tmp_path / "anvil"
    process = start_node("anvil", port, state, dump_every_s=1)
    url = f"http://127.0.0.1:{port}"
    w3 = Web3(HTTPProvider(url))
    deployment, _ = deploy_token(
        w3, w3.eth.accounts[0], TokenParams(epoch_length_s=86_400), folder=tmp_path / "deployments"
    )
    chain = OwnChain(url, port, state, deployment, process, dump_every_s=1)
    try:
        yield chain
    finally:
        chain.stop()


@pytest.fixture
def chain_settings(settings: Settings, own_chain: OwnChain) -> Settings:
    return settings.model_copy(update={"rpc_url": own_chain.url, "token_address": own_chain.deployment.token_address})


@pytest.fixture
def chain_app(chain_settings: Settings) -> Iterator[tuple[TestClient, OutboxWriter]]:
    """The app and a writer on this test's own chain (`own_chain`)."""
    with TestClient(create_app(chain_settings, run_outbox=False), raise_server_exceptions=False) as client:
        writer = OutboxWriter(client.app.state.runtime, poll_s=0.01)  # type: ignore[attr-defined]
        yield client, writer
        writer.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real local HTTP server taking webhooks (`support.webhooks.Receiver`)."""
    with receiving() as found:
        yield found
