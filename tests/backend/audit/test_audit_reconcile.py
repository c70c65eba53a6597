"""`loyalty audit reconcile`: the database held up against the chain. Each test has its own token
(the session token carries every other test's earns, which this database never saw)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import delete, update
from support.backend import ADMIN_KEY, auth, confirm_all, make_member, make_partner, post, redemption_code
from web3 import HTTPProvider, Web3

from loyalty.api.app import create_app
from loyalty.audit.reconcile import reconcile
from loyalty.audit.rpc import Rpc
from loyalty.audit.verify import verify
from loyalty.chain.deploy import TokenParams, deploy_token
from loyalty.cli import main
from loyalty.db.models import Earn, Redemption, RedemptionStatus
from loyalty.settings import Settings
from loyalty.workers.outbox import OutboxWriter


@pytest.fixture
def own_settings(settings: Settings, rpc_url: str, tmp_path: Path) -> Settings:
    w3 = Web3(HTTPProvider(rpc_url))
    deployment, _ = deploy_token(w3, w3.eth.accounts[0], TokenParams(), folder=tmp_path, record=False)
    return settings.model_copy(update={"token_address": deployment.token_address})


@pytest.fixture
def program(own_settings: Settings) -> Iterator[dict[str, Any]]:
    """A partner, two members with earns, and one posted redemption, all on-chain."""
    with TestClient(create_app(own_settings, run_outbox=False), raise_server_exceptions=False) as client:
        state = client.app.state  # type: ignore[attr-defined]
        writer = OutboxWriter(state.runtime, poll_s=0.01)
        partner = make_partner(client, "Acme", 100_000)
        alice, bob = make_member(client, partner["api_key"]), make_member(client, partner["api_key"])
        items = [{"member_id": alice["id"], "amount_points": 500}, {"member_id": bob["id"], "amount_points": 300}]
        earn_ids = post(client, "/v1/earn/batch", {"items": items}, partner["api_key"]).json()["ids"]
        reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 200, "stock": 5}, partner["api_key"]).json()
        confirm_all(writer)
        redemption = post(
            client,
            "/v1/redemptions",
            {
                "member_id": alice["id"],
                "reward_id": reward["id"],
                "redemption_code": redemption_code(client, alice, partner),
            },
            partner["api_key"],
        ).json()
        confirm_all(writer)
        assert client.get(f"/v1/redemptions/{redemption['id']}", headers=auth(ADMIN_KEY)).json()["status"] == "posted"
        yield {"client": client, "sessions": state.runtime.sessions, "earn_ids": earn_ids, "alice": alice, "bob": bob,
               "reward": reward, "redemption": redemption, "settings": own_settings, "partner_key": partner["api_key"],
               "writer": writer}  # fmt: skip
        writer.close()


def _findings(program: dict[str, Any]) -> list[Any]:
    settings = program["settings"]
    audit = verify(Rpc(settings.rpc_url), settings.token_address)
    with program["sessions"]() as session:
        return reconcile(session, audit)


def test_reconcile_ofAnHonestDatabase_findsNothing(program: dict[str, Any]) -> None:
    assert _findings(program) == []


def test_reconcile_findsAChangedEarnAmount(program: dict[str, Any]) -> None:
    earn_id = program["earn_ids"][1]
    with program["sessions"]() as session:
        session.execute(update(Earn).where(Earn.id == earn_id).values(amount_points=3_000))
        session.commit()
    findings = _findings(program)
    by_code = {f.code: f for f in findings}
    assert set(by_code) == {"earn_not_on_chain", "mint_unknown_to_database", "balance_mismatch"}
    assert by_code["earn_not_on_chain"].row == f"earns/{earn_id}"
    assert by_code["earn_not_on_chain"].tx_hash == by_code["mint_unknown_to_database"].tx_hash is not None
    assert by_code["balance_mismatch"].row == f"members/{program['bob']['id']}"


def test_reconcile_findsADeletedEarn(program: dict[str, Any]) -> None:
    with program["sessions"]() as session:
        session.execute(delete(Earn).where(Earn.id == program["earn_ids"][0]))
        session.commit()
    findings = _findings(program)
    assert {f.code for f in findings} == {"mint_unknown_to_database", "balance_mismatch"}
    [mint] = [f for f in findings if f.code == "mint_unknown_to_database"]
    assert program["alice"]["wallet_address"] in mint.detail and mint.tx_hash and mint.block_number


def test_reconcile_findsAnInventedRedemption(program: dict[str, Any]) -> None:
    with program["sessions"]() as session:
        invented = Redemption(
            partner_id=1, member_id=program["bob"]["id"], reward_id=program["reward"]["id"], amount_points=200,
            ref=999, nonce=0, deadline=0, signature=b"\0" * 65, status=RedemptionStatus.POSTED,
        )  # fmt: skip
        session.add(invented)
        session.commit()
        invented_id = invented.id
    findings = _findings(program)
    assert {f.code for f in findings} == {"redemption_without_burn", "balance_mismatch"}
    [found] = [f for f in findings if f.code == "redemption_without_burn"]
    assert found.row == f"redemptions/{invented_id}" and "no transaction" in found.detail


def test_cli_reconcile_exitsNonZeroAndWritesFindings(program: dict[str, Any], tmp_path: Path) -> None:
    settings = program["settings"]
    env = {"DATABASE_URL": settings.database_url, "RPC_URL": settings.rpc_url, "TOKEN_ADDRESS": settings.token_address,
           "LOYALTY_ADMIN_KEY": ADMIN_KEY, "LOYALTY_MASTER_KEY": settings.master_key}  # fmt: skip
    clean = CliRunner().invoke(main, ["audit", "reconcile", "--out", str(tmp_path)], env=env)
    assert clean.exit_code == 0, clean.output
    with program["sessions"]() as session:
        session.execute(delete(Earn).where(Earn.id == program["earn_ids"][1]))
        session.commit()
    doctored = CliRunner().invoke(main, ["audit", "reconcile", "--out", str(tmp_path)], env=env)
    assert doctored.exit_code == 1
    codes = {f["code"] for f in json.loads((tmp_path / "reconcile.json").read_text())["findings"]}
    assert codes == {"mint_unknown_to_database", "balance_mismatch"}


def test_auditApi_showsTheChainsFiguresWithTransactions(program: dict[str, Any]) -> None:
    client, alice = program["client"], program["alice"]
    auditor = post(client, "/v1/auditors", {"name": "Ledger & Co"}, ADMIN_KEY).json()["api_key"]

    detail = client.get(f"/v1/audit/members/{alice['id']}", headers=auth(auditor))
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert (body["earned_points"], body["redeemed_points"], body["balance_points"]) == (500, 200, 300)
    assert body["balance_onchain_points"] == 300
    earn = client.get(f"/v1/earn/{program['earn_ids'][0]}", headers=auth(ADMIN_KEY)).json()
    redemption = client.get(f"/v1/redemptions/{program['redemption']['id']}", headers=auth(ADMIN_KEY)).json()
    assert [(e["kind"], e["tx_hash"], e["block_number"]) for e in body["entries"]] == [
        ("earn", earn["tx_hash"], earn["block_number"]),
        ("redeem", redemption["tx_hash"], redemption["block_number"]),
    ]

    summary = client.get("/v1/audit/summary", headers=auth(auditor)).json()
    [partner] = summary["partners"]
    assert partner["partner_id"] == 1 and partner["earned_points"] == 800 and partner["redeemed_at_points"] == 200
    assert (
        partner["outstanding_points"] == 600 == summary["outstanding_points"] == summary["total_supply_onchain_points"]
    )
    assert partner["budget_remaining_points"] == partner["budget_onchain_points"] == 100_000 - 800
    assert partner["last_tx_hash"] == redemption["tx_hash"]
    assert summary["discrepancies"] == []

    post(client, "/v1/earn", {"member_id": alice["id"], "amount_points": 5}, program["partner_key"])
    confirm_all(program["writer"])
    again = client.get(f"/v1/audit/members/{alice['id']}", headers=auth(auditor)).json()
    assert again["balance_points"] == again["balance_onchain_points"] == 305  # the new block, replayed on demand


def test_auditApi_isForAuditorsAndAdmins(program: dict[str, Any]) -> None:
    client = program["client"]
    response = client.get("/v1/audit/summary", headers=auth(program["partner_key"]))
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
    assert client.get("/v1/audit/members/999999", headers=auth(ADMIN_KEY)).json()["code"] == "member_not_found"
