"""Programs: a new program's token deployed through the outbox, an existing deployment
registered from the chain, and program 1 bound to the database's own token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account
from support.backend import ADMIN_KEY, auth, confirm_all, post, token_of
from web3 import HTTPProvider, Web3

from loyalty.chain.artifacts import load_artifact
from loyalty.chain.deploy import TokenParams, deploy_token
from loyalty.settings import DEV_OPERATOR_KEY

OPERATOR = Account.from_key(DEV_OPERATOR_KEY).address


def _program(client: Any, program_id: int) -> dict[str, Any]:
    response = client.get(f"/v1/programs/{program_id}", headers=auth(ADMIN_KEY))
    assert response.status_code == 200, response.text
    return dict(response.json())


def _deploy(rpc_url: str, tmp_path: Path, admin: str, name: str) -> str:
    w3 = Web3(HTTPProvider(rpc_url))
    deployment, _ = deploy_token(
        w3, w3.eth.accounts[1], TokenParams(name=name, symbol="AIR", epoch_length_s=7 * 86_400, validity_epochs=8),
        admin=admin, folder=tmp_path, record=False,
    )  # fmt: skip
    return deployment.token_address


def test_createProgram_deploysItsTokenThroughTheOutbox(client: Any, writer: Any, rpc_url: str) -> None:
    body = {"name": "Air Miles", "symbol": "MILES", "epoch_length_s": 86_400, "validity_epochs": 6, "currency": "EUR"}
    created = post(client, "/v1/programs", body, ADMIN_KEY, idempotency_key="program-1")
    assert created.status_code == 201, created.text
    program = created.json()
    assert (program["status"], program["token_address"], program["kind"]) == ("deploying", None, "brand")
    again = post(client, "/v1/programs", body, ADMIN_KEY, idempotency_key="program-1")
    assert again.json()["id"] == program["id"]  # a retry is the same program: one deployment

    confirm_all(writer)

    found = _program(client, program["id"])
    assert found["status"] == "active" and found["token_address"] is not None
    token = Web3(HTTPProvider(rpc_url)).eth.contract(
        address=found["token_address"], abi=load_artifact("LoyaltyPoints").abi
    )
    f = token.functions
    assert (f.name().call(), f.symbol().call(), f.epochLength().call(), f.validityEpochs().call()) == (
        "Air Miles",
        "MILES",
        86_400,
        6,
    )
    assert f.hasRole(b"\0" * 32, OPERATOR).call()
    listed = client.get("/v1/programs", headers=auth(ADMIN_KEY)).json()["data"]
    assert [p["id"] for p in listed if p["name"] == "Air Miles"] == [program["id"]]


def test_registerProgram_readsAnExistingDeploymentFromTheChain(client: Any, rpc_url: str, tmp_path: Path) -> None:
    address = _deploy(rpc_url, tmp_path, OPERATOR, "Sky Club")
    created = post(client, "/v1/programs", {"token_address": address, "kind": "coalition"}, ADMIN_KEY)
    assert created.status_code == 201, created.text
    program = created.json()
    assert (program["status"], program["name"], program["symbol"]) == ("active", "Sky Club", "AIR")
    assert (program["epoch_length_s"], program["validity_epochs"], program["kind"]) == (7 * 86_400, 8, "coalition")
    twice = post(client, "/v1/programs", {"token_address": address.lower()}, ADMIN_KEY)
    assert (twice.status_code, twice.json()["code"]) == (409, "program_exists")


def test_registerProgram_refusesATokenTheOperatorDoesNotAdminister(client: Any, rpc_url: str, tmp_path: Path) -> None:
    foreign = _deploy(rpc_url, tmp_path, Account.create().address, "Not Ours")
    refused = post(client, "/v1/programs", {"token_address": foreign}, ADMIN_KEY)
    assert (refused.status_code, refused.json()["code"]) == (422, "program_token_invalid")
    assert refused.headers["content-type"] == "application/problem+json"
    nothing = post(client, "/v1/programs", {"token_address": Account.create().address}, ADMIN_KEY)
    assert (nothing.status_code, nothing.json()["code"]) == (422, "program_token_invalid")
    unnamed = post(client, "/v1/programs", {"symbol": "X"}, ADMIN_KEY)
    assert (unnamed.status_code, unnamed.json()["code"]) == (422, "validation_error")


def test_programOne_isTheDatabasesOwnToken(client: Any) -> None:
    first = _program(client, 1)
    assert (first["token_address"], first["status"]) == (token_of(client).address, "active")


def test_cli_programs_createAndList(client: Any, settings: Any) -> None:
    from click.testing import CliRunner
    from support.backend import serving

    from loyalty.cli import main

    with serving(settings, outbox=False) as url:
        args = ["--api-url", url, "--key", ADMIN_KEY]
        made = CliRunner().invoke(
            main, ["programs", "create", "--name", "Cafe Stars", "--symbol", "STAR", "--epoch-days", "7", *args]
        )
        unnamed = CliRunner().invoke(main, ["programs", "create", *args])
        listed = CliRunner().invoke(main, ["programs", "list", *args])
    assert made.exit_code == 0, made.output
    assert '"status": "deploying"' in made.output and '"epoch_length_s": 604800' in made.output
    assert unnamed.exit_code == 2 and "Error: give --name" in unnamed.output and "Traceback" not in unnamed.output
    assert "Cafe Stars" in listed.output and listed.output.count('"id"') >= 2
