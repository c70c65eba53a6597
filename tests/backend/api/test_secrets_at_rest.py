"""Secrets at rest: API keys are not kept in plaintext in idempotency records (sealed under the
master key, and forgotten after the idempotency window); the database is readable by its owner
only; the well-known development key is refused on any chain but a local dev chain; `make up`
does not print the admin key."""

import os
import secrets
import socket
import stat
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from support.backend import ADMIN_KEY, make_partner, post
from web3 import HTTPProvider, Web3

from loyalty.api.app import create_app
from loyalty.chain.deploy import TokenParams, deploy_token
from loyalty.chain.devchain import free_port, node_command
from loyalty.db.models import IdempotencyRecord
from loyalty.errors import ConfigurationError
from loyalty.paths import ROOT
from loyalty.runtime import build
from loyalty.settings import DEV_OPERATOR_KEY, Settings
from loyalty.workers.outbox import OutboxWriter


def test_idempotencyRecord_ofANewKey_holdsNoPlaintextKeyButReplaysIt(client):
    first = post(client, "/v1/partners", {"name": "Acme", "issue_budget_points": 5}, ADMIN_KEY, idempotency_key="p1")
    api_key = first.json()["api_key"]
    with client.app.state.runtime.sessions() as session:
        [record] = session.query(IdempotencyRecord).all()
        assert record.sealed and api_key not in record.response_body and "ptn_" not in record.response_body
    again = post(client, "/v1/partners", {"name": "Acme", "issue_budget_points": 5}, ADMIN_KEY, idempotency_key="p1")
    assert again.json()["api_key"] == api_key and again.headers["idempotent-replay"] == "true"
    auditor = post(client, "/v1/auditors", {"name": "Audit Co"}, ADMIN_KEY).json()["api_key"]
    with client.app.state.runtime.sessions() as session:
        assert all(auditor not in r.response_body for r in session.query(IdempotencyRecord))


def test_idempotencyKeys_areForgottenAfterTheWindow(settings):
    short = settings.model_copy(update={"idempotency_ttl_s": 1})
    with TestClient(create_app(short, run_outbox=False)) as client:
        partner = make_partner(client, "Acme")
        assert (
            post(client, "/v1/members", {"external_id": "a"}, partner["api_key"], idempotency_key="k").status_code
            == 201
        )
        time.sleep(1.5)
        # the key is new again: another body is a new request, not a conflict
        assert (
            post(client, "/v1/members", {"external_id": "b"}, partner["api_key"], idempotency_key="k").status_code
            == 201
        )
        assert (
            post(client, "/v1/earn", {"member_id": 1, "amount_points": 1}, partner["api_key"], "e").status_code == 202
        )
        time.sleep(1.5)
        assert (
            post(client, "/v1/earn", {"member_id": 2, "amount_points": 1}, partner["api_key"], "e").status_code == 202
        )
        time.sleep(1.5)
        writer = OutboxWriter(client.app.state.runtime)
        try:
            writer._housekeeping()
        finally:
            writer.close()
        with client.app.state.runtime.sessions() as session:
            assert session.query(IdempotencyRecord).count() == 0


def test_sqliteDatabase_isReadableByItsOwnerOnly(rpc_url, deployment, tmp_path):
    path = tmp_path / "loyalty.db"
    settings = Settings(
        database_url=f"sqlite:///{path}", rpc_url=rpc_url, token_address=deployment.token_address,
        operator_private_key=DEV_OPERATOR_KEY, admin_api_key=ADMIN_KEY, master_key=secrets.token_hex(32),
    )  # fmt: skip
    with TestClient(create_app(settings, run_outbox=False)) as client:
        make_partner(client, "Acme")
        files = [f"{path}{suffix}" for suffix in ("", "-wal", "-shm")]
        assert {oct(stat.S_IMODE(os.stat(f).st_mode)) for f in files} == {"0o600"}


def test_devOperatorKey_isRefusedOnAChainThatIsNotALocalDevChain(settings, tmp_path):
    port = free_port()
    command = [*node_command("anvil", port, tmp_path), "--chain-id", "8453"]  # Base's id
    node = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        w3 = Web3(HTTPProvider(url))
        for _ in range(100):
            if w3.is_connected():
                break
            time.sleep(0.1)
        deployment, _ = deploy_token(w3, w3.eth.accounts[0], TokenParams(), record=False)
        with pytest.raises(ConfigurationError, match="well-known development key"):
            build(settings.model_copy(update={"rpc_url": url, "token_address": deployment.token_address}))
    finally:
        node.terminate()
        node.wait()


def test_makeUp_printsWhereTheAdminKeyIsNotTheKey(tmp_path):
    env = {**os.environ, "LOYALTY_VAR_DIR": str(tmp_path)}
    env.pop("LOYALTY_ADMIN_KEY", None)
    chain_port = free_port()
    command = [sys.executable, "-m", "loyalty.cli", "up", "--port", str(chain_port), "--api-port", str(free_port())]
    up = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in up.stdout:
            lines.append(line)
            if line.startswith("next"):
                break
    finally:
        up.terminate()
        up.wait(timeout=60)
    with socket.socket() as sock:  # the chain it started stopped with it
        assert sock.connect_ex(("127.0.0.1", chain_port)) != 0
    key = (tmp_path / "admin.key").read_text().strip()
    shown = "".join(lines)
    assert key not in shown
    assert f"admin key {key[:8]}..." in shown and str(tmp_path / "admin.key") in shown
    assert "exchange  0x" in shown and "settles in TestDollar 0x" in shown  # make up deploys the exchange too
    assert stat.S_IMODE(os.stat(tmp_path / "admin.key").st_mode) == 0o600
