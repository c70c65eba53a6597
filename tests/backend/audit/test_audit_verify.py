"""`loyalty audit verify`: the program re-derived from the chain alone, on its own Anvil node
(the scenario moves the clock) with a token of one-hour epochs valid for two.

Scenario: issuer A batch-earns 100 to m1, m2 and m3; issuer B earns 50 to m1; m1 redeems 120 at
B (taking A's 100 and 20 of B's, oldest first). Two epochs later everything left has expired: A
earns 10 more to m2 (which sweeps m2's old lot), and m3's old lot is swept by `expire`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account
from support.backend import free_port
from web3 import HTTPProvider, Web3

from loyalty.audit.events import Log
from loyalty.audit.ledger import Ledger
from loyalty.audit.rpc import Rpc
from loyalty.audit.verify import _consent_problem, read_params, verify, with_permits
from loyalty.chain.artifacts import load_artifact
from loyalty.chain.deploy import Deployment, TokenParams, deploy_token
from loyalty.chain.devchain import start_node, stop_node
from loyalty.cli import main
from loyalty.domain.consent import DOMAIN_TYPE, RedeemConsent, redeem_typed_data, sign_typed_data

HOUR = 3_600


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Any:
    port = free_port()
    node = start_node("anvil", port, tmp_path_factory.mktemp("audit-anvil"))
    try:
        url = f"http://127.0.0.1:{port}"
        w3 = Web3(HTTPProvider(url))
        admin, issuer_a, issuer_b = w3.eth.accounts[:3]
        deployment, _ = deploy_token(
            w3,
            admin,
            TokenParams(epoch_length_s=HOUR, validity_epochs=2),
            folder=tmp_path_factory.mktemp("dep"),
            record=False,
        )
        token = w3.eth.contract(address=deployment.token_address, abi=load_artifact("LoyaltyPoints").abi)
        role = token.functions.ISSUER_ROLE().call()
        m1, m2, m3 = (Account.create() for _ in range(3))

        def send(call: Any, sender: str) -> Any:
            receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": sender}))
            assert receipt["status"] == 1
            return receipt

        for issuer, budget in ((issuer_a, 1_000), (issuer_b, 500)):
            send(token.functions.grantRole(role, issuer), admin)
            send(token.functions.setIssueBudget(issuer, budget), admin)
        send(token.functions.earnBatch([m1.address, m2.address, m3.address], [100, 100, 100], 1), issuer_a)
        send(token.functions.earn(m1.address, 50, 1), issuer_b)
        deadline = w3.eth.get_block("latest")["timestamp"] + HOUR
        # m1 signs a permit first: it uses nonce 0, so the redemption's consent carries nonce 1.
        permit = sign_typed_data(
            _permit_typed_data(w3.eth.chain_id, token.address, m1.address, admin, deadline), m1.key
        )
        v, r, s = permit[64], permit[:32], permit[32:64]
        send(token.functions.permit(m1.address, admin, 1, deadline, v, r, s), admin)
        consent = RedeemConsent(m1.address, issuer_b, 120, 7, 2, 1, deadline)
        typed = redeem_typed_data(
            consent, chain_id=w3.eth.chain_id, token_address=token.address, token_name="Loyalty Points"
        )
        send(token.functions.redeem(m1.address, 120, 7, 2, deadline, sign_typed_data(typed, m1.key)), issuer_b)
        w3.provider.make_request("evm_increaseTime", [2 * HOUR])  # type: ignore[arg-type]
        send(token.functions.earn(m2.address, 10, 2), issuer_a)
        send(token.functions.expire([m3.address]), admin)
        yield url, deployment, (m1.address, m2.address, m3.address), (issuer_a, issuer_b), token
    finally:
        stop_node(node)


def _permit_typed_data(chain_id: int, token: str, owner: str, spender: str, deadline: int) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": DOMAIN_TYPE,
            "Permit": [
                {"name": n, "type": t}
                for n, t in (
                    ("owner", "address"),
                    ("spender", "address"),
                    ("value", "uint256"),
                    ("nonce", "uint256"),
                    ("deadline", "uint256"),
                )
            ],
        },
        "primaryType": "Permit",
        "domain": {"name": "Loyalty Points", "version": "1", "chainId": chain_id, "verifyingContract": token},
        "message": {"owner": owner, "spender": spender, "value": 1, "nonce": 0, "deadline": deadline},
    }


def test_verify_rederivesBalancesLiabilitiesAndExpiry(scenario: Any) -> None:
    url, deployment, (m1, m2, m3), (a, b), _ = scenario
    audit = verify(Rpc(url), deployment.token_address, deployment.block_number)

    assert audit.clean, audit.discrepancies
    figures = {m.address: (m.earned, m.redeemed, m.expired, m.balance) for m in audit.members}
    assert figures == {m1: (150, 120, 30, 0), m2: (110, 0, 100, 10), m3: (100, 0, 100, 0)}
    issuers = {
        i.address: (i.earned, i.redeemed_at, i.expired, i.outstanding, i.budget_remaining) for i in audit.issuers
    }
    assert issuers == {a: (310, 0, 200, 10, 690), b: (50, 120, 30, 0, 450)}
    assert (audit.total_supply, audit.onchain_total_supply, audit.expired) == (10, 10, 230)
    assert dict(audit.ledger.settlement) == {(a, b): 100, (b, b): 20}
    assert audit.events == 6  # five credits and one redemption
    assert [(e.kind, e.ref) for e in audit.ledger.members[m2].entries] == [("earn", 1), ("expire", None), ("earn", 2)]
    checked = {c.name: c.checked for c in audit.checks}
    assert checked["balances"] == 3 and checked["consents"] == 1 and checked["expiries"] == 2


def test_verify_fromTooLateABlock_findsWhatDisagrees(scenario: Any) -> None:
    """Skipping the batch earn leaves the derivation short, and the checks that see it fail:
    as of the redemption, balances, supply and budgets; as of the end, spends and expiries."""
    url, deployment, (m1, _, _), _, _ = scenario
    start = _first_block(url, deployment, "Transfer(address,address,uint256)") + 1
    at_redemption = _first_block(url, deployment, "Redeemed(address,address,uint256,uint256,uint256)")
    audit = verify(Rpc(url), deployment.token_address, start, at_redemption)
    failed = {d.check for d in audit.discrepancies}
    assert {"balances", "total_supply", "budgets", "spends"} <= failed
    # m2 and m3 appear in no event it read, so only the supply shows their points are missing.
    assert {d.detail.split(":")[0] for d in audit.discrepancies if d.check == "balances"} == {m1}

    later = verify(Rpc(url), deployment.token_address, start)
    assert {"budgets", "spends", "expiries"} <= {d.check for d in later.discrepancies}


def _logs(url: str, deployment: Deployment) -> list[Log]:
    rpc = Rpc(url)
    return [
        Log.of(raw)
        for chunk in rpc.logs(deployment.token_address, deployment.block_number, rpc.block_number())
        for raw in chunk
    ]


def _first_block(url: str, deployment: Deployment, event: str) -> int:
    topic = "0x" + Web3.keccak(text=event).hex().removeprefix("0x")
    return next(log.block_number for log in _logs(url, deployment) if log.topics[0] == topic)


def _replay(url: str, deployment: Deployment, logs: list[Log]) -> Ledger:
    rpc = Rpc(url)
    ledger = Ledger(read_params(rpc, deployment.token_address, rpc.block_number()))
    ledger.apply(logs, rpc.timestamps(sorted({log.block_number for log in logs})))
    return ledger


@pytest.mark.parametrize(
    ("tamper", "check"),
    [
        ("drop_batch_mint", "batch_totals"),
        ("repeat_ref", "refs_unique"),
        ("drop_redeem_burn", "burns_accounted"),
        ("mint_without_earn", "mints_by_issuers"),
        ("expire_live_lot", "expiries"),
    ],
)
def test_ledger_flagsEventsThatBreakTheRules(scenario: Any, tamper: str, check: str) -> None:
    """The chain enforces its rules, so a real chain stays clean: these feed the replay real logs
    with one changed, as a node or indexer serving doctored logs would."""
    url, deployment, _, _, _ = scenario
    logs = _logs(url, deployment)
    topic = {name: "0x" + Web3.keccak(text=sig).hex().removeprefix("0x") for name, sig in {
        "transfer": "Transfer(address,address,uint256)",
        "earned": "Earned(address,address,uint256,uint256,uint256)",
        "expired": "Expired(address,uint256,uint256)",
    }.items()}  # fmt: skip
    index = {
        "drop_batch_mint": next(i for i, log in enumerate(logs) if log.topics[0] == topic["transfer"] and int(log.topics[1], 16) == 0),
        "drop_redeem_burn": max(i for i, log in enumerate(logs) if log.topics[0] == topic["transfer"] and int(log.topics[2], 16) == 0 and i + 1 < len(logs) and logs[i + 1].topics[0] != topic["expired"]),
        "expire_live_lot": next(i for i, log in enumerate(logs) if log.topics[0] == topic["expired"]),
    }  # fmt: skip
    if tamper in ("drop_batch_mint", "drop_redeem_burn"):
        del logs[index[tamper]]
    elif tamper == "repeat_ref":
        earned = [log for log in logs if log.topics[0] == topic["earned"]]
        second = earned[1]
        data = second.data[:66] + f"{1:064x}" + second.data[130:]  # the first earn's ref (1) again
        logs[logs.index(second)] = dataclasses.replace(
            second, data=data, topics=[second.topics[0], second.topics[1], earned[0].topics[2]]
        )
    elif tamper == "mint_without_earn":
        earned = next(i for i, log in enumerate(logs) if log.topics[0] == topic["earned"])
        del logs[earned]
    elif tamper == "expire_live_lot":
        log = logs[index[tamper]]
        logs[index[tamper]] = dataclasses.replace(log, data=f"0x{1:064x}")  # not the whole lot
        burn = logs[index[tamper] - 1]
        logs[index[tamper] - 1] = dataclasses.replace(burn, data=f"0x{1:064x}")
    ledger = _replay(url, deployment, logs)
    assert check in {d.check for d in ledger.discrepancies}, ledger.discrepancies


def test_consent_countsPermitsAndFailsForAnotherNonce(scenario: Any) -> None:
    url, deployment, _, _, _ = scenario
    rpc = Rpc(url)
    ledger = _replay(url, deployment, _logs(url, deployment))
    [counted] = ledger.redemptions  # nonce 0: the events alone cannot tell the permit from an approve
    [redemption] = with_permits(rpc, ledger)
    assert (counted.nonce, redemption.nonce) == (0, 1)
    tx = rpc.transactions([redemption.tx_hash])[redemption.tx_hash]
    assert _consent_problem(ledger.params, redemption, tx) is None
    problem = _consent_problem(ledger.params, counted, tx)
    assert problem is not None and "not the member" in problem


def test_cli_writesTheReportAndExitsNonZeroOnDiscrepancies(scenario: Any, tmp_path: Path) -> None:
    url, deployment, _, _, _ = scenario
    args = ["audit", "verify", "--rpc", url, "--token", deployment.token_address, "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--from-block", str(deployment.block_number)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["clean"] and report["figures"]["outstanding_points"] == 10
    assert {c["status"] for c in report["checks"]} == {"pass"}
    assert report["timeline"][-1]["expired_points"] == 230
    assert "<svg" in (tmp_path / "report.html").read_text()
    assert len((tmp_path / "members.csv").read_text().splitlines()) == 4
    assert len((tmp_path / "partners.csv").read_text().splitlines()) == 3

    late = CliRunner().invoke(
        main, [*args, "--from-block", str(_first_block(url, deployment, "Transfer(address,address,uint256)") + 1)]
    )
    assert late.exit_code == 1
    assert json.loads((tmp_path / "report.json").read_text())["discrepancies"]
