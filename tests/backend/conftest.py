"""Fixtures for the backend tests: one Anvil node and token for the session, a fresh SQLite
database and app per test. The outbox writer is driven by the tests (`drain`), so every step is
deterministic."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from web3 import HTTPProvider, Web3

from loyalty.api.app import create_app
from loyalty.deploy import Deployment, TokenParams, deploy_token
from loyalty.devchain import free_port, start_node, stop_node, stop_process
from loyalty.outbox import OutboxWriter, drain
from loyalty.settings import DEV_OPERATOR_KEY, Settings

ADMIN_KEY = "adm_test"


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
def settings(database_url: str, rpc_url: str, deployment: Deployment) -> Settings:
    return Settings(
        database_url=database_url,
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
def writer(client: TestClient) -> Iterator[OutboxWriter]:
    writer = OutboxWriter(client.app.state.runtime, poll_s=0.01)  # type: ignore[attr-defined]
    yield writer
    writer.close()


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


def funded_member(
    client: TestClient, writer: OutboxWriter, points: int, cost_points: int, stock: int = 100, **member: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A partner, a reward of its and a member holding `points` on-chain: (partner, reward, member)."""
    partner = make_partner(client, "Acme", 100_000)
    body = {"name": "Mug", "cost_points": cost_points, "stock": stock}
    reward = dict(post(client, "/v1/rewards", body, partner["api_key"]).json())
    holder = make_member(client, **member)
    post(client, "/v1/earn", {"member_id": holder["id"], "amount_points": points}, partner["api_key"])
    settle(writer)
    return partner, reward, holder


def chain_of(client: TestClient) -> Any:
    return client.app.state.chain  # type: ignore[attr-defined]


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `loyalty` process needs to run with `settings`."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "RPC_URL": settings.rpc_url,
        "TOKEN_ADDRESS": settings.token_address or "",
        "ISSUER_PRIVATE_KEY": settings.operator_private_key,
        "LOYALTY_MASTER_KEY": settings.master_key,
        "LOYALTY_ADMIN_KEY": settings.admin_api_key,
        **extra,
    }
    return env


def start_worker(settings: Settings, log: Path | None = None, **extra: str) -> subprocess.Popen[bytes]:
    """`loyalty worker` as its own process (stopped by the caller)."""
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "loyalty.cli", "worker"], env=env_of(settings, **extra), stdout=out, stderr=out
    )


@contextmanager
def serving(settings: Settings, *, outbox: bool, log: Path | None = None, **extra: str) -> Iterator[str]:
    """`loyalty serve` as its own process on a free port; yields its URL once it answers."""
    port = free_port()
    out = log.open("ab") if log else subprocess.DEVNULL
    command = [sys.executable, "-m", "loyalty.cli", "serve", "--port", str(port), "--outbox" if outbox else "--no-outbox"]
    process = subprocess.Popen(command, env=env_of(settings, **extra), stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"loyalty serve exited with {process.returncode}")
            try:
                httpx.get(url + "/v1/health", timeout=5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        stop_process(process, timeout_s=30)


@dataclass
class OwnChain:
    """An Anvil node and token of one test's own, to stop, kill and restart (state kept in `state`)."""

    url: str
    port: int
    state: Path
    deployment: Deployment
    process: subprocess.Popen[bytes]
    dump_every_s: int | None = None

    def stop(self) -> None:
        stop_node(self.process)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        stop_node(self.process)  # releases the state folder

    def start(self) -> None:
        self.process = start_node("anvil", self.port, self.state, dump_every_s=self.dump_every_s)

    def rpc(self, method: str, *params: Any) -> Any:
        return httpx.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()["result"]


@pytest.fixture
def own_chain(tmp_path: Path) -> Iterator[OwnChain]:
    """A fresh Anvil node (state dumped every second) and token of this test's own."""
    port, state = free_port(), tmp_path / "anvil"
    process = start_node("anvil", port, state, dump_every_s=1)
    url = f"http://127.0.0.1:{port}"
    w3 = Web3(HTTPProvider(url))
    deployment, _ = deploy_token(w3, w3.eth.accounts[0], TokenParams(epoch_length_s=86_400), folder=tmp_path / "deployments")
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


def wait_for(condition: Any, timeout_s: float = 60, every_s: float = 0.1) -> Any:
    """Poll `condition()` until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{getattr(condition, '__name__', 'condition')} did not hold within {timeout_s} s")
        time.sleep(every_s)
    return value
