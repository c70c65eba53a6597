"""Helpers for the backend tests: calling the API as each role, driving the outbox, running
`loyalty` processes and chains of a test's own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from fastapi.testclient import TestClient
from web3 import HTTPProvider, Web3

from loyalty.chain.deploy import Deployment, TokenParams, deploy_token
from loyalty.chain.devchain import free_port, start_node, stop_node, stop_process
from loyalty.settings import DEV_OPERATOR_KEY, Settings
from loyalty.workers.outbox import OutboxWriter, drain

ADMIN_KEY = "adm_test"
PASSPHRASE = "correct horse battery staple"


def confirm_all(writer: OutboxWriter) -> None:
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
    """A member enrolled with `key` (a partner's links it to the partner). A custodial one keeps
    its enrolment token: `sign_in` sets its passphrase to `PASSPHRASE` on first use (argon2 is
    slow on purpose, so only members that sign in pay for it)."""
    response = post(client, "/v1/members", {"external_id": uuid.uuid4().hex, **body}, key)
    assert response.status_code == 201, response.text
    return dict(response.json())


def sign_in(client: Any, member: dict[str, Any], passphrase: str = PASSPHRASE) -> str:
    """A custodial member's session token (its passphrase set first, if it has none yet, with
    the link the operator gives it: its enrolment token, or a reset token from the admin)."""
    if not member.get("passphrase_set") and member.get("custodial", True) and "id" in member:
        token = member.pop("enrolment_token", None) or _reset_token(client, member)
        response = client.post("/v1/auth/passphrase", json={"token": token, "passphrase": passphrase})
        member["passphrase_set"] = True
    else:
        body = {"external_id": member["external_id"], "passphrase": passphrase}
        response = client.post("/v1/auth/sessions", json=body)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["token"])


def _reset_token(client: Any, member: dict[str, Any]) -> str:
    response = post(client, f"/v1/members/{member['id']}/passphrase-resets", None, ADMIN_KEY)
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def siwe_message(
    nonce: dict[str, Any],
    address: str,
    *,
    domain: str | None = None,
    expires_in: timedelta = timedelta(minutes=5),
    uri: str | None = None,
    issued_in: timedelta = timedelta(0),
) -> str:
    """A Sign-In with Ethereum message for `address` with a nonce from /v1/auth/siwe/nonces."""
    now = datetime.now(UTC) + issued_in
    return (
        f"{domain or nonce['domain']} wants you to sign in with your Ethereum account:\n{address}\n\n"
        f"{nonce['statement']}\n\nURI: {uri or nonce['uri']}\nVersion: 1\nChain ID: {nonce['chain_id']}\n"
        f"Nonce: {nonce['nonce']}\nIssued At: {now.isoformat()}\nExpiration Time: {(now + expires_in).isoformat()}"
    )


def link(client: TestClient, member: dict[str, Any], partner: dict[str, Any]) -> None:
    """The (custodial) member links itself to `partner`, signed in."""
    response = post(client, "/v1/me/links", {"partner_id": partner["id"]}, sign_in(client, member))
    assert response.status_code == 201, response.text


def redemption_code(
    client: TestClient, member: dict[str, Any], partner: dict[str, Any], max_points: int = 10**12
) -> str:
    """A one-time code the (custodial) member makes for a redemption at `partner`."""
    body = {"partner_id": partner["id"], "max_points": max_points}
    response = post(client, "/v1/me/redemption-codes", body, sign_in(client, member))
    assert response.status_code == 201, response.text
    return str(response.json()["code"])


def funded_member(
    client: TestClient, writer: OutboxWriter, points: int, cost_points: int, stock: int = 100, **member: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A partner, a reward of its and a member holding `points` on-chain: (partner, reward, member)."""
    partner = make_partner(client, "Acme", 100_000)
    body = {"name": "Mug", "cost_points": cost_points, "stock": stock}
    reward = dict(post(client, "/v1/rewards", body, partner["api_key"]).json())
    holder = make_member(client, partner["api_key"], **member)
    post(client, "/v1/earn", {"member_id": holder["id"], "amount_points": points}, partner["api_key"])
    confirm_all(writer)
    return partner, reward, holder


def token_of(client: TestClient) -> Any:
    return client.app.state.runtime.token  # type: ignore[attr-defined]


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
        "EXCHANGE_ADDRESS": settings.exchange_address or "",
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
def serving(
    settings: Settings, *, outbox: bool, log: Path | None = None, port: int | None = None, **extra: str
) -> Iterator[str]:
    """`loyalty serve` as its own process on `port` (default: a free one); yields its URL once it answers."""
    port = port or free_port()
    out = log.open("ab") if log else subprocess.DEVNULL
    command = [
        sys.executable,
        "-m",
        "loyalty.cli",
        "serve",
        "--port",
        str(port),
        "--outbox" if outbox else "--no-outbox",
    ]
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
        return httpx.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()[
            "result"
        ]


def wait_for(condition: Any, timeout_s: float = 60, every_s: float = 0.1) -> Any:
    """Poll `condition()` until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{getattr(condition, '__name__', 'condition')} did not hold within {timeout_s} s")
        time.sleep(every_s)
    return value


def second_program(client: Any, rpc_url: str, folder: Path, **expiry: int) -> int:
    """Program 2: a token the operator administers, registered (`expiry`: its TokenParams'
    epoch_length_s and validity_epochs, if not the defaults)."""
    w3 = Web3(HTTPProvider(rpc_url))
    operator = Account.from_key(DEV_OPERATOR_KEY).address
    params = TokenParams(name="Air Miles", symbol="MILES", **expiry)
    deployment, _ = deploy_token(w3, w3.eth.accounts[1], params, admin=operator, folder=folder, record=False)
    created = post(client, "/v1/programs", {"token_address": deployment.token_address}, ADMIN_KEY)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])
